//! What each subcommand does, given its parsed arguments.

mod dev;
mod init;
mod mock;

use std::path::{Path, PathBuf};

use anyhow::Context;

pub use dev::dev;
pub use init::init;
pub use mock::mock_notion;

use crate::cli::ConfigArg;
use crate::config::{Config, load_settings};
use crate::startup::Application;
use crate::store::Store;

/// Loads and checks the configuration; relative paths in it are relative to its folder.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let settings = load_settings(path)?;
    Ok(settings.validate(&base_dir(path))?)
}

fn base_dir(path: Option<&Path>) -> PathBuf {
    path.and_then(Path::parent)
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// `serve`: the production server, until SIGINT or SIGTERM.
pub async fn serve(args: ConfigArg) -> anyhow::Result<()> {
    let config = load_config(args.config.as_deref())?;
    let redirect_uri = config.redirect_uri();
    let app = Application::build(config).await?;
    tracing::info!(address = %app.local_addr()?, %redirect_uri, "notion-oauth-handler is listening");
    app.run_until(shutdown_signal()).await.context("the server stopped with an error")
}

/// `check`: every problem at once, or what to register in Notion's portal.
pub fn check(args: &ConfigArg) -> anyhow::Result<()> {
    let config = load_config(args.config.as_deref())?;
    println!("The configuration is valid.");
    println!("Redirect URI to register in Notion's Developer portal: {}", config.redirect_uri());
    for document in &config.documents {
        println!("Document served at: {}", config.public_link(&document.path));
    }
    Ok(())
}

/// `connections list`: what is stored, never a token.
pub async fn list_connections(args: &ConfigArg, json: bool) -> anyhow::Result<()> {
    let settings = load_settings(args.config.as_deref())?;
    let url =
        crate::config::resolve_sqlite_url(&settings.storage.url, &base_dir(args.config.as_deref()));
    let store = Store::open_existing(&url)
        .await
        .with_context(|| format!("cannot open the database at {url}"))?;
    let connections = store.list_connections().await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&connections)?);
        return Ok(());
    }
    if connections.is_empty() {
        println!("No connections yet.");
        return Ok(());
    }
    println!(
        "{:<36}  {:<24}  {:<20}  {:<16}  {:<8}  UPDATED",
        "BOT ID", "WORKSPACE", "OWNER", "REF", "STATUS"
    );
    for c in &connections {
        let updated = time::OffsetDateTime::from_unix_timestamp(c.updated_at)
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
            .unwrap_or_default();
        println!(
            "{:<36}  {:<24}  {:<20}  {:<16}  {:<8}  {updated}",
            c.bot_id,
            clip(c.workspace_name.as_deref().unwrap_or(&c.workspace_id), 24),
            clip(c.owner_name.as_deref().or(c.owner_email.as_deref()).unwrap_or(&c.owner_type), 20),
            clip(c.reference.as_deref().unwrap_or("-"), 16),
            c.status,
        );
    }
    Ok(())
}

fn clip(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_owned();
    }
    let mut clipped: String = text.chars().take(width - 1).collect();
    clipped.push('…');
    clipped
}

/// Completes on Ctrl-C or SIGTERM (what service managers send).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
