//! What each subcommand does, given its parsed arguments.

mod admin;
mod dev;
mod init;
mod mock;

use std::path::{Path, PathBuf};

use anyhow::Context;

pub use admin::{api_keys, connections, deliveries};
pub use dev::dev;
pub use init::init;
pub use mock::mock_notion;

use crate::cli::ConfigArg;
use crate::config::{Config, load_settings};
use crate::startup::Application;

/// Loads and checks the configuration; relative paths in it are relative to its folder.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    let settings = load_settings(path)?;
    Ok(settings.validate(&base_dir(path))?)
}

pub(crate) fn base_dir(path: Option<&Path>) -> PathBuf {
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
