//! Builds the running server from a checked [`Config`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use notion_oauth::{OAuthClient, StateSigner};
use tokio::net::TcpListener;

use crate::config::Config;
use crate::lifecycle::{self, RefreshLocks};
use crate::pages::Pages;
use crate::store::{self, Store};

/// What every request handler can reach.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub client: OAuthClient,
    pub signer: StateSigner,
    pub store: Arc<dyn Store>,
    pub pages: Pages,
    pub refresh_locks: RefreshLocks,
    /// For webhook deliveries: its own timeout, and no redirects (a redirect would resend the
    /// signed body, tokens perhaps included, somewhere else).
    pub webhook_client: reqwest::Client,
    /// An embedding app's own pages (see [`crate::embed`]), set once after opening.
    view: std::sync::OnceLock<ViewHandle>,
}

/// An embedding app's view, for the state.
#[derive(Clone)]
pub struct ViewHandle(pub Arc<dyn crate::hooks::ConnectView>);

impl std::fmt::Debug for ViewHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ViewHandle")
    }
}

impl App {
    /// Sets the embedding app's view; a second call is ignored.
    pub fn set_view(&self, view: Option<Arc<dyn crate::hooks::ConnectView>>) {
        if let Some(view) = view {
            let _ = self.view.set(ViewHandle(view));
        }
    }

    /// The embedding app's response for `outcome`, if it has a view and the view answers.
    pub fn view_response(
        &self,
        outcome: &crate::hooks::Outcome<'_>,
    ) -> Option<axum::response::Response> {
        self.view.get().and_then(|view| view.0.respond(outcome))
    }
}

pub type AppState = Arc<App>;

/// Opens the database (running migrations) and builds the Notion client: everything but the
/// listener, which is also what the operator commands need.
///
/// # Errors
/// With context naming what failed: the database, the HTTP client, the pages.
pub async fn open_app(config: Config) -> anyhow::Result<AppState> {
    let store = store::connect(&config.storage_url)
        .await
        .with_context(|| format!("cannot open the database at {}", config.storage_url))?;
    open_app_with_store(config, store).await
}

/// [`open_app`] with a store opened already (an embedding app's own, say).
///
/// # Errors
/// See [`open_app`].
pub async fn open_app_with_store(
    config: Config,
    store: Arc<dyn Store>,
) -> anyhow::Result<AppState> {
    // reqwest is built without a default TLS provider so that only ring is compiled in: install
    // it before the first client (a provider installed already is kept).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let webhook_client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(config.deliveries.timeout)
        .user_agent(concat!("notion-oauth-handler/", env!("CARGO_PKG_VERSION"), " (webhooks)"))
        .build()
        .context("cannot build the webhook client")?;
    let client =
        OAuthClient::new(config.notion.clone()).context("cannot build the Notion client")?;
    let signer = StateSigner::new(config.vault.state_key(), config.state_ttl);
    let pages = Pages::new(&config.base_path, &config.documents, config.templates_dir.as_deref())
        .context("the built-in pages do not load")?;
    Ok(Arc::new(App {
        config,
        client,
        signer,
        store,
        pages,
        refresh_locks: RefreshLocks::default(),
        webhook_client,
        view: std::sync::OnceLock::new(),
    }))
}

/// A server bound to its address, ready to run.
pub struct Application {
    listener: TcpListener,
    state: AppState,
}

impl Application {
    /// Opens the app and binds `config.bind`.
    ///
    /// # Errors
    /// See [`open_app`], or the address cannot be bound.
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
    /// See [`open_app`].
    pub async fn build_with_listener(
        config: Config,
        listener: TcpListener,
    ) -> anyhow::Result<Self> {
        Ok(Self { listener, state: open_app(config).await? })
    }

    /// The address actually bound.
    ///
    /// # Errors
    /// When the socket cannot say.
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves (with the background work the configuration turns on) until `shutdown`
    /// completes, then finishes in-flight requests and closes the database.
    ///
    /// # Errors
    /// When serving fails.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let state = self.state.clone();
        let background = spawn_background_work(&self.state);
        let router = crate::routes::router(self.state);
        let served = axum::serve(self.listener, router).with_graceful_shutdown(shutdown).await;
        background.stop(&state).await;
        state.store.close().await;
        served
    }
}

/// The work that runs beside the requests: event deliveries whenever targets are configured
/// (the outbox may hold events from before a restart, or written by operator commands), and
/// the optional periodic refresh and check. Each lifecycle pass goes through the same single
/// refresh as API calls, so several instances cannot race.
pub struct Background {
    lifecycle: Vec<tokio::task::JoinHandle<()>>,
    deliveries: Option<crate::delivery::Workers>,
}

impl Background {
    /// Lets deliveries and refreshes under way finish (within bounds), stops the rest.
    pub async fn stop(mut self, app: &AppState) {
        for worker in self.lifecycle.drain(..) {
            worker.abort();
        }
        if let Some(deliveries) = self.deliveries.take() {
            deliveries.stop(app, Duration::from_secs(15)).await;
        }
        // A refresh runs in its own task; let one that Notion may already have answered store
        // its pair before the database closes.
        app.refresh_locks.wait_idle(Duration::from_secs(30)).await;
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for worker in &self.lifecycle {
            worker.abort();
        }
    }
}

pub(crate) fn spawn_background_work(app: &AppState) -> Background {
    let deliveries =
        (!app.config.deliveries.targets.is_empty()).then(|| crate::delivery::Workers::start(app));
    let mut lifecycle = Vec::new();
    if let Some(older_than) = app.config.refresh_older_than {
        let app = app.clone();
        lifecycle.push(tokio::spawn(async move {
            loop {
                lifecycle::refresh_old_tokens(&app, older_than).await;
                tokio::time::sleep((older_than / 4).min(Duration::from_secs(300))).await;
            }
        }));
    }
    if let Some(interval) = app.config.check_interval {
        let app = app.clone();
        lifecycle.push(tokio::spawn(async move {
            loop {
                lifecycle::check_connections(&app, interval).await;
                tokio::time::sleep((interval / 4).min(Duration::from_secs(300))).await;
            }
        }));
    }
    Background { lifecycle, deliveries }
}
