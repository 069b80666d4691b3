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

/// `connect-link`: a link to /connect that the server will trust, signed the way the README
/// shows apps how to sign one.
pub fn connect_link(args: &crate::cli::ConnectLinkArgs) -> anyhow::Result<()> {
    let config = load_config(args.config.config.as_deref())?;
    let Some(secret) = &config.connect.link_secret else {
        anyhow::bail!(
            "connect.link_secret is not set: add one (`openssl rand -hex 32`) to sign links"
        );
    };
    if let Some(return_to) = &args.return_to
        && crate::config::connect::check_return_to(return_to, &config.connect.return_to_origins)
            .is_none()
    {
        anyhow::bail!("{return_to} is not at one of connect.return_to_origins");
    }
    let ttl = i64::try_from(args.ttl).unwrap_or(i64::MAX).min(30 * 24 * 3600);
    let expires = crate::store::now() + ttl;
    let (reference, return_to) =
        (args.reference.as_deref().unwrap_or(""), args.return_to.as_deref().unwrap_or(""));
    let mut url = config.public_link("/connect");
    {
        let mut query = url.query_pairs_mut();
        if !reference.is_empty() {
            query.append_pair("ref", reference);
        }
        if !return_to.is_empty() {
            query.append_pair("return_to", return_to);
        }
        query.append_pair("expires", &expires.to_string());
        query.append_pair(
            "sig",
            &crate::signatures::connect_link(secret, reference, return_to, expires),
        );
    }
    println!("{url}");
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
