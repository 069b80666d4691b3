//! `mock-notion`: the emulator alone, for testing a deployment or another client against it.

use std::path::Path;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Format, Toml};
use mock_notion::{Emulator, EmulatorConfig};
use serde::Deserialize;

use super::shutdown_signal;
use crate::cli::MockNotionArgs;

/// The emulator's file: who the integration is and where it may redirect.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct MockFile {
    client_id: Option<String>,
    client_secret: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    auto_approve: bool,
    #[serde(default)]
    bench: bool,
}

pub(super) async fn mock_notion(args: MockNotionArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(path) => read_file(path)?,
        None => MockFile::default(),
    };
    let mut redirect_uris = file.redirect_uris;
    redirect_uris.extend(args.redirect_uris);
    let (Some(client_id), Some(client_secret)) =
        (args.client_id.or(file.client_id), args.client_secret.or(file.client_secret))
    else {
        bail!(
            "the emulator needs the client id and secret it should accept: pass --client-id and --client-secret (or MOCK_NOTION_CLIENT_SECRET), or put client_id and client_secret in --config"
        );
    };
    if redirect_uris.is_empty() {
        bail!(
            "register at least one redirect URI: --redirect-uri http://127.0.0.1:8080/callback (repeatable), or redirect_uris in --config"
        );
    }
    for uri in &redirect_uris {
        url::Url::parse(uri).with_context(|| format!("the redirect URI `{uri}` is not a URL"))?;
    }
    let bench = args.bench || file.bench;
    let config = EmulatorConfig {
        client_id,
        client_secret,
        redirect_uris,
        auto_approve: args.auto_approve || file.auto_approve,
        bench,
        ..EmulatorConfig::default()
    };
    let running = Emulator::spawn(config, &args.bind.to_string())
        .await
        .with_context(|| format!("cannot listen on {} (pick another with --bind)", args.bind))?;
    println!("Notion emulator listening on {}", running.base_url());
    if bench {
        println!("Bench mode: any code is exchanged, each as its own install; nothing is recorded");
    }
    println!("Point the server at it with: NOH_NOTION__API_BASE_URL={}", running.base_url());
    shutdown_signal().await;
    Ok(())
}

fn read_file(path: &Path) -> anyhow::Result<MockFile> {
    Figment::new()
        .merge(Toml::file_exact(path))
        .extract()
        .with_context(|| format!("cannot read the emulator configuration {}", path.display()))
}
