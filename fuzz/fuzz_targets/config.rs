//! The configuration: TOML text read into `Settings` the way `load_settings` reads a file (with
//! figment, without the environment), then `Settings::validate` against a fixed temporary
//! directory holding a few fixture files. Nothing is written per input.
//!
//! `validate` reads the files the settings name. Inputs naming a path that exists outside the
//! fixture directory are skipped, so that the fuzzer never reads `/dev/zero` or the host's files.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use figment::Figment;
use figment::providers::{Format, Toml};
use libfuzzer_sys::fuzz_target;
use notion_oauth_handler::config::Settings;

static BASE: LazyLock<(tempfile::TempDir, PathBuf)> = LazyLock::new(|| {
    let dir = tempfile::Builder::new().prefix("noh-fuzz-config-").tempdir().expect("a temp dir");
    let write =
        |name: &str, text: &str| std::fs::write(dir.path().join(name), text).expect("a fixture");
    write("master.key", "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=\n");
    write("client_secret.txt", "secret_fuzzing_client_secret_value_123\n");
    write("link_secret.txt", "fuzzing-link-secret-0123456789abcdef\n");
    write("privacy.html", "<h1>Privacy</h1>");
    std::fs::create_dir(dir.path().join("templates")).expect("a fixture");
    std::fs::write(dir.path().join("templates/landing.html"), "{% extends \"base.html\" %}")
        .expect("a fixture");
    let canonical = dir.path().canonicalize().expect("a canonical temp dir");
    (dir, canonical)
});

/// Whether every file or folder `settings` names either does not exist or is in `base`.
fn stays_inside(settings: &Settings, base: &Path) -> bool {
    let mut paths: Vec<&Path> = Vec::new();
    paths.extend(settings.pages.templates_dir.as_deref());
    paths.extend(settings.notion.client_secret_file.as_deref());
    paths.extend(settings.security.master_key_file.as_deref());
    paths.extend(settings.connect.link_secret_file.as_deref());
    paths.extend(settings.webhooks.iter().filter_map(|w| w.secret_file.as_deref()));
    paths.extend(settings.documents.iter().map(|d| d.file.as_path()));
    paths.iter().all(|path| {
        let joined = base.join(path);
        match joined.canonicalize() {
            Ok(real) => real.starts_with(base),
            // Missing, or not reachable: reading it fails the same way, harmlessly. Anything
            // else that exists but cannot be canonicalized is skipped to be safe.
            Err(_) => std::fs::symlink_metadata(&joined).is_err(),
        }
    })
}

fuzz_target!(|input: &str| {
    let Ok(settings) = Figment::from(Toml::string(input)).extract::<Settings>() else { return };
    let base = &BASE.1;
    if !stays_inside(&settings, base) {
        return;
    }
    let _ = settings.validate(base);
});
