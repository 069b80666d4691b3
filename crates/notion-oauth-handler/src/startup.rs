//! Builds the running server from a checked [`Config`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use notion_oauth::{OAuthClient, StateSigner};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::pages::Pages;
use crate::store::Store;

/// What every request handler can reach.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub client: OAuthClient,
    pub signer: StateSigner,
    pub store: Store,
    pub pages: Pages,
}

pub type AppState = Arc<App>;

/// A server bound to its address, ready to run.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Opens the database (running migrations), builds the Notion client, binds `config.bind`.
    ///
    /// # Errors
    /// With context naming what failed: the address, the database, the HTTP client.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(config.bind).await.with_context(|| {
            format!(
                "cannot listen on {} (is another program using it? set server.bind)",
                config.bind
            )
        })?;
        Self::build_with_listener(config, listener).await
    }

    /// As [`Application::build`], on a listener bound by the caller (tests and `dev` bind port 0
    /// first, to learn the public URL before the configuration is made).
    ///
    /// # Errors
    /// See [`Application::build`].
    pub async fn build_with_listener(
        config: Config,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        let store = Store::connect(&config.storage_url)
            .await
            .with_context(|| format!("cannot open the database at {}", config.storage_url))?;
        let client =
            OAuthClient::new(config.notion.clone()).context("cannot build the Notion client")?;
        let signer = StateSigner::new(config.vault.state_key(), config.state_ttl);
        let pages = Pages::new(&config.base_path, &config.documents)
            .context("the built-in pages do not load")?;
        let state = Arc::new(App { config, client, signer, store, pages });
        Ok(Self { listener, state })
    }

    /// The address actually bound.
    ///
    /// # Errors
    /// When the socket cannot say.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and closes the database.
    ///
    /// # Errors
    /// When serving fails.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let store = self.state.store.clone();
        let router = crate::routes::router(self.state);
        let served = axum::serve(self.listener, router).with_graceful_shutdown(shutdown).await;
        store.close().await;
        served
    }
}
