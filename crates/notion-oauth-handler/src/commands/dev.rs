//! `dev`: the server and a Notion emulator in one process, with nothing to configure.
//!
//! Secrets are generated once into the data folder, and a real configuration file is written
//! there and loaded the way `serve` loads one, so `dev` exercises the production path and
//! `connections list --config <data folder>/notion-oauth-handler.toml` works on its data.

use std::path::Path;

use anyhow::Context;
use mock_notion::{Emulator, EmulatorConfig};
use tokio::net::TcpListener;

use super::private_file::write_private;
use super::{
    init::SAMPLE_PRIVACY, init::SAMPLE_TERMS, load_config_at, shell_quoted, shutdown_signal,
    this_program,
};
use crate::cli::DevArgs;
use crate::startup::Application;
use crate::vault::MasterKey;

pub(super) async fn dev(args: DevArgs) -> anyhow::Result<()> {
    if let Some(name) = &args.app_name
        && (name.trim().is_empty()
            || name.chars().count() > 60
            || name.chars().any(char::is_control))
    {
        anyhow::bail!("--app-name must be 1 to 60 characters, without line breaks or tabs");
    }
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let data_dir = args
        .data_dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", args.data_dir.display()))?;
    let client_id =
        read_or_create(&data_dir.join("client_id"), || Ok(uuid::Uuid::new_v4().to_string()))?;
    let client_secret = read_or_create(&data_dir.join("client_secret"), || {
        Ok(format!("secret_{}", random_hex()?))
    })?;
    read_or_create(&data_dir.join("master.key"), || {
        let (_, text) = MasterKey::generate()?;
        Ok(secrecy::ExposeSecret::expose_secret(&text).to_owned())
    })?;
    read_or_create(&data_dir.join("privacy.html"), || Ok(SAMPLE_PRIVACY.to_owned()))?;
    read_or_create(&data_dir.join("terms.html"), || Ok(SAMPLE_TERMS.to_owned()))?;

    let listener = TcpListener::bind(args.bind).await.with_context(|| {
        format!(
            "cannot listen on {} (is it in use? pick another with --bind 127.0.0.1:8090)",
            args.bind
        )
    })?;
    let bound = listener.local_addr()?;
    // Notion accepts a plain-http redirect URI only at localhost, so that is the address used
    // on this machine (0.0.0.0 is not one a browser can open anyway).
    let ip = bound.ip();
    let host = if ip.is_unspecified() || ip.is_loopback() {
        "localhost".to_owned()
    } else {
        ip.to_string()
    };
    let host = if bound.is_ipv6() && host != "localhost" { format!("[{host}]") } else { host };
    let public_url = format!("http://{host}:{}", bound.port());
    let emulator = Emulator::spawn(
        EmulatorConfig {
            client_id: client_id.clone(),
            client_secret,
            redirect_uris: vec![format!("{public_url}/callback")],
            auto_approve: args.auto_approve,
            integration_name: args.app_name.clone(),
            ..EmulatorConfig::default()
        },
        &args.notion_bind.to_string(),
    )
    .await
    .with_context(|| format!("cannot start the Notion emulator on {}", args.notion_bind))?;

    let config_path = data_dir.join("notion-oauth-handler.toml");
    let mut config_text = format!(
        "# Written by `notion-oauth-handler dev` at each start; edits are overwritten.\n\
         [server]\nbind = {bind:?}\npublic_url = {public_url:?}\n\n\
         [notion]\nclient_id = {client_id:?}\nclient_secret_file = \"client_secret\"\napi_base_url = {api:?}\n\n\
         [storage]\nurl = \"sqlite://dev.db\"\n\n\
         [security]\nmaster_key_file = \"master.key\"\n\n\
         [[documents]]\npath = \"/privacy\"\nfile = \"privacy.html\"\n\n\
         [[documents]]\npath = \"/terms\"\nfile = \"terms.html\"\n",
        bind = listener.local_addr()?.to_string(),
        api = emulator.base_url(),
    );
    if let Some(name) = &args.app_name {
        // A TOML basic string: its quote and backslash escaped (control characters were
        // refused above).
        let quoted = name.replace('\\', "\\\\").replace('"', "\\\"");
        config_text.push_str(&format!("\n[branding]\napp_name = \"{quoted}\"\n"));
    }
    std::fs::write(&config_path, config_text)
        .with_context(|| format!("cannot write {}", config_path.display()))?;
    let config = load_config_at(Some(&config_path))?;
    let app = Application::build_with_listener(config, listener).await?;

    out!("notion-oauth-handler dev is running (Ctrl-C to stop)\n");
    out!("  Open in a browser:  {public_url}/");
    out!(
        "  Notion emulator:    {}  (consent page: {})",
        emulator.base_url(),
        if args.auto_approve { "skipped" } else { "shown" }
    );
    out!("  Data folder:        {}", data_dir.display());
    // As a command that works pasted into a shell, also after `cargo run` (not on PATH).
    out!(
        "  Stored connections: {} connections list --config {}\n",
        this_program(),
        shell_quoted(&config_path.display().to_string())
    );
    app.run_until(shutdown_signal()).await.context("the server stopped with an error")
}

/// The file's contents, or `make()` written to it (readable by this user only) on first run.
fn read_or_create(
    path: &Path,
    make: impl FnOnce() -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    if let Ok(existing) = std::fs::read_to_string(path) {
        return Ok(existing.trim().to_owned());
    }
    let value = make()?;
    write_private(path, &value).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(value)
}

fn random_hex() -> anyhow::Result<String> {
    let mut bytes = [0u8; 20];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    Ok(crate::crypto::hex(&bytes))
}
