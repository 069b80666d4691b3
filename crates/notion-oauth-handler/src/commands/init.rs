//! `init`: the files a new deployment starts from.

use anyhow::{Context, bail};

use crate::cli::InitArgs;

pub(super) const SAMPLE_PRIVACY: &str = include_str!("../../init/privacy.html");
pub(super) const SAMPLE_TERMS: &str = include_str!("../../init/terms.html");

pub(super) fn init(args: &InitArgs) -> anyhow::Result<()> {
    let files = [
        ("notion-oauth-handler.toml", include_str!("../../init/notion-oauth-handler.toml")),
        (".env.example", include_str!("../../init/env.example")),
        ("legal/privacy.html", SAMPLE_PRIVACY),
        ("legal/terms.html", SAMPLE_TERMS),
    ];
    let existing: Vec<_> =
        files.iter().map(|(name, _)| args.dir.join(name)).filter(|path| path.exists()).collect();
    if !args.force && !existing.is_empty() {
        let names: Vec<_> = existing.iter().map(|p| p.display().to_string()).collect();
        bail!(
            "{} already {}; nothing was written. Pass --force to overwrite.",
            names.join(", "),
            if names.len() == 1 { "exists" } else { "exist" }
        );
    }
    for (name, contents) in files {
        let path = args.dir.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
        out!("wrote {}", path.display());
    }
    // Never replaced, not even with --force: a new key would open none of the stored tokens.
    let key_path = args.dir.join("master.key");
    if key_path.exists() {
        out!("kept {} (a new key would open none of the stored tokens)", key_path.display());
    } else {
        let (_, key) = crate::vault::MasterKey::generate()
            .map_err(|error| anyhow::anyhow!("the system gave no randomness for a key: {error}"))?;
        super::private_file::write_private(&key_path, secrecy::ExposeSecret::expose_secret(&key))
            .with_context(|| format!("cannot write {}", key_path.display()))?;
        out!(
            "wrote {} (readable by you only: keep it, and back it up with the database)",
            key_path.display()
        );
    }
    out!("\nNext: fill in notion-oauth-handler.toml (or .env), then run");
    // In the folder written to, `check` finds the file by itself.
    if args.dir == std::path::Path::new(".") {
        out!("  {} check", super::this_program());
    } else {
        out!(
            "  {} check --config {}",
            super::this_program(),
            super::shell_quoted(&args.dir.join("notion-oauth-handler.toml").display().to_string())
        );
    }
    Ok(())
}
