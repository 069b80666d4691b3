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
//! // The peer's address is what per-client rate limits tell clients apart by.
//! axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>()).await?;
//! # Ok(())
//! # }
//! ```
//!
//! A connection's token, refreshed once however many ask:
//!
//! ```no_run
//! # async fn run(notion: notion_oauth_handler::embed::Embedded) -> anyhow::Result<()> {
//! use notion_oauth_handler::domain::BotId;
//! use notion_oauth_handler::lifecycle::{Freshness, WhichTokens};
//!
//! let bot_id = BotId::new("6d2a7f0e-1c9b-4e1a-9f8e-2f6b1e3a4c5d");
//! let token = notion.lifecycle().token(&bot_id, Freshness::Stored, WhichTokens::Access).await?;
//! // Notion answered 401 to that token: ask for a newer one.
//! let token =
//!     notion.lifecycle().token(&bot_id, Freshness::Refreshed, WhichTokens::Access).await?;
//! # drop(token);
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::sync::Arc;

use axum::Router;

use crate::config::Config;
use crate::config::check_target_name;
use crate::domain::BotId;
pub use crate::hooks::{ConnectView, ConnectionHook, HookError, HookEvent, HookFuture, Outcome};
use crate::lifecycle::Lifecycle;
use crate::proxy::ConnectionApi;
use crate::startup::{Additions, Background, Services};
use crate::store::{Routing, Store, StoreError};

/// Builds the embeddable flow.
pub struct NotionOAuth {
    config: Config,
    additions: Additions,
    /// A mistake found while building, reported by [`NotionOAuth::build`].
    problem: Option<String>,
}

impl NotionOAuth {
    /// From a checked configuration (see [`crate::config::Settings::validate`]).
    pub fn new(config: Config) -> Self {
        Self { config, additions: Additions::default(), problem: None }
    }

    /// Adds a hook for every connection event, named `name` in delivery listings (letters,
    /// digits, `-`, `_` or `.`, unlike any other target's; [`NotionOAuth::build`] refuses
    /// another).
    #[must_use]
    pub fn with_hook(mut self, name: &str, hook: impl ConnectionHook) -> Self {
        let configured = self.config.targets.iter().map(|t| t.name.as_str());
        let hooks = self.additions.hooks.iter().map(|(name, _)| name.as_str());
        if let Err(message) = check_target_name(name, configured.chain(hooks)) {
            self.problem.get_or_insert(format!("hook name: {message}"));
            return self;
        }
        self.additions.hooks.push((name.to_owned(), Arc::new(hook)));
        self
    }

    /// Replaces the pages shown when a flow ends (where the view returns a response).
    #[must_use]
    pub fn with_view(mut self, view: impl ConnectView) -> Self {
        self.additions.view = Some(Arc::new(view));
        self
    }

    /// Keeps connections, their history and deliveries in the store `open` makes instead of
    /// the database that `storage.url` names: the app's own, say (see [`crate::store`] for
    /// what it must uphold). `open` is given the event routing the store must follow (which
    /// targets: webhooks, the command hook, this app's hooks, hear which events), and is run by
    /// [`NotionOAuth::build`], which reports its failure.
    #[must_use]
    pub fn with_store<S, F>(mut self, open: impl FnOnce(Routing) -> F + Send + 'static) -> Self
    where
        S: Store,
        F: Future<Output = Result<S, StoreError>> + Send + 'static,
    {
        self.additions.store = Some(Box::new(move |routing| {
            Box::pin(async move { Ok(Arc::new(open(routing).await?) as Arc<dyn Store>) })
        }));
        self
    }

    /// Opens the database (unless given a store) and starts the delivery workers and
    /// configured background work.
    ///
    /// # Errors
    /// A hook name that is not allowed; the database, the Notion client or the pages cannot be
    /// set up.
    pub async fn build(self) -> anyhow::Result<Embedded> {
        if let Some(problem) = self.problem {
            anyhow::bail!(problem);
        }
        let services = Services::open(&self.config, self.additions).await?;
        let background = Some(services.start_background());
        Ok(Embedded { services, config: self.config, background })
    }
}

/// The running flow: its router, its token lifecycle, and the work behind it (stopped when
/// dropped).
pub struct Embedded {
    services: Services,
    config: Config,
    background: Option<Background>,
}

impl Embedded {
    /// Every route of the flow, under the configured `server.base_path`: merge it into the
    /// app's router.
    pub fn router(&self) -> Router {
        crate::routes::router(self.services.state.clone(), &self.config)
    }

    /// Tokens of the stored connections, refreshed once however many ask; checks and
    /// revocations.
    pub fn lifecycle(&self) -> &Arc<Lifecycle> {
        &self.services.state.lifecycle
    }

    /// Notion's API for `bot_id`'s connection: calls made with its token, refreshed once on a
    /// 401 and waited out on a 429, as `/api/v1/connections/{bot_id}/notion/…` makes them.
    ///
    /// ```no_run
    /// # async fn run(notion: notion_oauth_handler::embed::Embedded) -> anyhow::Result<()> {
    /// use notion_oauth_handler::domain::BotId;
    ///
    /// let api = notion.notion_api(BotId::new("3c90c3cc-0d44-4b50-8888-8dd25736052a"));
    /// let me = api.get("users/me").await?;
    /// println!("{} {}", me.status(), String::from_utf8_lossy(&me.bytes().await?));
    /// # Ok(())
    /// # }
    /// ```
    pub fn notion_api(&self, bot_id: BotId) -> ConnectionApi {
        ConnectionApi::new(self.services.state.proxy.clone(), bot_id)
    }

    /// Where connections, their history and deliveries are kept.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.services.state.store
    }

    /// Lets deliveries and refreshes under way finish, stops the background work, and closes
    /// the database. Dropping an `Embedded` stops the work without waiting.
    pub async fn shutdown(mut self) {
        if let Some(background) = self.background.take() {
            background.stop().await;
        }
        self.services.state.store.close().await;
    }
}
