//! "Add to Notion" inside an existing axum app: the whole flow as a [`Router`] to merge, with a
//! hook for each connection event and a view for the pages, as the Python package's "consumer"
//! and "view" were.
//!
//! ```no_run
//! use notion_oauth_handler::config::Settings;
//! use notion_oauth_handler::embed::{ConnectionHook, HookEvent, HookFuture, NotionOAuth};
//!
//! struct SaveConnection;
//!
//! impl ConnectionHook for SaveConnection {
//!     fn on_event<'a>(&'a self, event: &'a HookEvent) -> HookFuture<'a> {
//!         Box::pin(async move {
//!             println!("{} for ref {:?}", event.event_type, event.data["ref"]);
//!             Ok(())
//!         })
//!     }
//! }
//!
//! # async fn run(settings: Settings) -> anyhow::Result<()> {
//! // settings.server.base_path is where the flow's pages live, e.g. "/notion".
//! let config = settings.validate(std::path::Path::new("."))?;
//! let notion = NotionOAuth::new(config).with_hook("my-app", SaveConnection).build().await?;
//! let app = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "my app" }))
//!     .merge(notion.router());
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```

use std::sync::Arc;

use axum::Router;

use crate::config::{Config, Target, TargetKind};
use crate::startup::{AppState, open_app, open_app_with_store, spawn_background_work};
use crate::store::Store;

pub use crate::hooks::{ConnectView, ConnectionHook, HookEvent, HookFuture, Outcome};

/// Builds the embeddable flow.
pub struct NotionOAuth {
    config: Config,
    view: Option<Arc<dyn ConnectView>>,
    store: Option<Arc<dyn Store>>,
    /// A mistake found while building, reported by [`NotionOAuth::build`].
    problem: Option<String>,
}

impl NotionOAuth {
    /// From a checked configuration (see [`crate::config::Settings::validate`]).
    pub fn new(config: Config) -> Self {
        Self { config, view: None, store: None, problem: None }
    }

    /// Adds a hook for every connection event, named `name` in delivery listings (letters,
    /// digits, `-`, `_` or `.`, unlike any other target's; [`NotionOAuth::build`] refuses
    /// another).
    #[must_use]
    pub fn with_hook(mut self, name: &str, hook: impl ConnectionHook) -> Self {
        let taken = self.config.deliveries.targets.iter().map(|t| t.name.as_str());
        if let Err(message) = crate::config::delivery::check_target_name(name, taken) {
            self.problem.get_or_insert(format!("hook name: {message}"));
            return self;
        }
        self.config.deliveries.targets.push(Target {
            name: name.to_owned(),
            events: crate::config::delivery::EVENT_TYPES.iter().map(|e| (*e).to_owned()).collect(),
            kind: TargetKind::InProcess(crate::config::delivery::HookHandle(Arc::new(hook))),
        });
        self
    }

    /// Replaces the pages shown when a flow ends (where the view returns a response).
    #[must_use]
    pub fn with_view(mut self, view: impl ConnectView) -> Self {
        self.view = Some(Arc::new(view));
        self
    }

    /// Keeps connections, their history and deliveries in `store` instead of the database that
    /// `storage.url` names: the app's own, say (see [`crate::store`] for what it must uphold).
    #[must_use]
    pub fn with_store(mut self, store: impl Store) -> Self {
        self.store = Some(Arc::new(store));
        self
    }

    /// Opens the database (unless given a store) and starts the delivery workers and
    /// configured background work.
    ///
    /// # Errors
    /// A hook name that is not allowed, or see [`open_app`].
    pub async fn build(self) -> anyhow::Result<Embedded> {
        if let Some(problem) = self.problem {
            anyhow::bail!(problem);
        }
        let state = match self.store {
            Some(store) => open_app_with_store(self.config, store).await?,
            None => open_app(self.config).await?,
        };
        state.set_view(self.view);
        let background = Some(spawn_background_work(&state));
        Ok(Embedded { state, background })
    }
}

/// The running flow: its router, and the work behind it (stopped when dropped).
pub struct Embedded {
    state: AppState,
    background: Option<crate::startup::Background>,
}

impl Embedded {
    /// Every route of the flow, under the configured `server.base_path`: merge it into the
    /// app's router.
    pub fn router(&self) -> Router {
        crate::routes::router(self.state.clone())
    }

    /// The shared state, for the lifecycle functions ([`crate::lifecycle::token`] and friends).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Lets deliveries and refreshes under way finish, stops the background work, and closes
    /// the database. Dropping an `Embedded` stops the work without waiting.
    pub async fn shutdown(mut self) {
        if let Some(background) = self.background.take() {
            background.stop(&self.state).await;
        }
        self.state.store.close().await;
    }
}
