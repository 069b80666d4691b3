//! Files only their owner may read: the master key, the client secret `dev` makes.

use std::path::Path;

/// Writes `contents` to a new file at `path`, readable and writable by its owner only; fails if
/// the file exists (a key is never overwritten).
pub(super) fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, contents.as_bytes())
}
