//! Builds the running server from a checked [`Config`]: the services, the state requests reach
//! them through, the work beside the requests, and the listener.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use notion_oauth::OAuthClient;
use tokio::net::TcpListener;

use crate::acme::{Challenges, Resolver};
use crate::config::{Challenge, Config, ConnectionLimits, LifecyclePolicy, Tls};
use crate::delivery::{Deliverer, NamedHook, Workers};
use crate::domain::EventType;
use crate::flow::Flow;
use crate::hooks::ConnectView;
use crate::lifecycle::{Lifecycle, Passes};
use crate::links::Links;
use crate::metrics::Metrics;
use crate::notion::Notion;
use crate::pages::Pages;
use crate::proxy::NotionProxy;
use crate::rate_limits::RateLimits;
use crate::state::{AppState, BrowserCookie, RequestServices};
use crate::store::{Routing, SqlStore, Store, StoreError};
use crate::tls::{Certificate, Hangups};
use crate::vault::Vault;

/// Opens the store an embedding app brings, given the event routing it must follow.
pub(crate) type StoreFactory = Box<dyn FnOnce(Routing) -> OpeningStore + Send>;

/// A store being opened.
pub(crate) type OpeningStore =
    Pin<Box<dyn Future<Output = Result<Arc<dyn Store>, StoreError>> + Send>>;

/// What an embedding app adds to a configuration.
#[derive(Default)]
pub(crate) struct Additions {
    pub(crate) hooks: Vec<NamedHook>,
    pub(crate) view: Option<Arc<dyn ConnectView>>,
    pub(crate) store: Option<StoreFactory>,
}

/// The services, built once and shared by the requests and the background work.
pub(crate) struct Services {
    pub(crate) state: AppState,
    deliverer: Arc<Deliverer>,
    lifecycle_policy: LifecyclePolicy,
    delivery_retention: Duration,
}

impl Services {
    /// Opens the store (running migrations) and builds every service: everything but the
    /// listener, which is also what the operator commands need.
    ///
    /// # Errors
    /// With context naming what failed: the database, an HTTP client, the pages.
    pub(crate) async fn open(config: &Config, additions: Additions) -> anyhow::Result<Self> {
        // reqwest is built without a default TLS provider so that only ring is compiled in:
        // install it before the first client (a provider installed already is kept).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let Additions { hooks, view, store } = additions;
        let routing = routing(config, &hooks);
        let store = match store {
            Some(open) => open(routing).await.context("the app's own store cannot be opened")?,
            None => {
                let url = &config.storage_url;
                let opened = SqlStore::connect(url, routing).await.with_context(|| {
                    format!("cannot open the database at {}", crate::config::redacted_url(url))
                })?;
                Arc::new(opened)
            }
        };
        let vault = Arc::new(Vault::new(&config.master_key, &config.previous_master_keys));
        check_keys(store.as_ref(), &vault).await?;
        let metrics = Arc::new(Metrics::new());
        let client =
            OAuthClient::new(config.notion.clone()).context("cannot build the Notion client")?;
        let client = Notion::new(client, metrics.clone());
        let deliverer = Deliverer::new(
            store.clone(),
            vault.clone(),
            config.targets.clone(),
            hooks,
            config.delivery,
            metrics.clone(),
        )
        .context("cannot build the webhook client")?;
        let lifecycle = Arc::new(Lifecycle::new(
            client.clone(),
            store.clone(),
            vault.clone(),
            &config.lifecycle,
        ));
        let proxy = NotionProxy::new(config, lifecycle.clone(), metrics.clone())
            .context("cannot build the Notion API proxy's client")?;
        let own_success_page = view.is_none();
        let pages = Pages::new(config, view).context("the pages do not load")?;
        let state = AppState::new(RequestServices {
            flow: Arc::new(Flow::new(config, client, store.clone(), vault, own_success_page)),
            links: Arc::new(Links::new(config, store.clone())),
            lifecycle,
            proxy: Arc::new(proxy),
            store,
            pages: Arc::new(pages),
            browser_cookie: BrowserCookie::new(config),
            rate_limits: Arc::new(RateLimits::new(&config.clients)),
            metrics,
        });
        Ok(Self {
            state,
            deliverer: Arc::new(deliverer),
            lifecycle_policy: config.lifecycle,
            delivery_retention: config.delivery.retention,
        })
    }

    /// Starts the work that runs beside the requests: event deliveries whenever there is a
    /// target (the outbox may hold events from before a restart, or written by operator
    /// commands), and the periodic refresh and check the configuration turns on. Each
    /// lifecycle pass goes through the same single refresh as API calls, so several instances
    /// cannot race.
    pub(crate) fn start_background(&self) -> Background {
        let deliverer = &self.deliverer;
        let workers = deliverer.has_targets().then(|| Workers::start(deliverer.clone()));
        let passes =
            self.state.lifecycle.spawn_passes(&self.lifecycle_policy, self.delivery_retention);
        Background { passes: Some(passes), workers, lifecycle: self.state.lifecycle.clone() }
    }
}

/// Which targets hear which events: the configured ones, and the embedding app's hooks (every
/// event).
fn routing(config: &Config, hooks: &[NamedHook]) -> Routing {
    let configured = config.targets.iter().map(|t| (t.name.as_str(), t.events.as_slice()));
    let hooks = hooks.iter().map(|(name, _)| (name.as_str(), EventType::ALL));
    configured
        .chain(hooks)
        .fold(Routing::none(), |routing, (name, events)| routing.with_target(name, events))
}

/// The work beside the requests (see [`Services::start_background`]); dropping it stops the
/// work without waiting.
pub(crate) struct Background {
    passes: Option<Passes>,
    workers: Option<Workers>,
    lifecycle: Arc<Lifecycle>,
}

impl Background {
    /// Lets deliveries and refreshes under way finish (within bounds), stops the rest.
    pub(crate) async fn stop(mut self) {
        drop(self.passes.take());
        if let Some(workers) = self.workers.take() {
            workers.stop(Duration::from_secs(15)).await;
        }
        // A refresh runs in its own task; let one that Notion may already have answered store
        // its pair before the database closes.
        self.lifecycle.wait_idle(Duration::from_secs(30)).await;
    }
}

/// Refuses keys that cannot open the stored tokens: started anyway, every token request would
/// fail, and a refresh would lose the pair for good. The usual cause is a master key made anew in
/// a new shell (`export NOH_MASTER_KEY=$(openssl rand …)`) instead of the one kept.
///
/// # Errors
/// The database cannot say which keys sealed its tokens, or some of them are not configured.
pub(crate) async fn check_keys(store: &dyn Store, vault: &Vault) -> anyhow::Result<()> {
    let stored =
        store.sealing_key_ids().await.context("cannot read which keys sealed the stored tokens")?;
    let missing: Vec<String> = stored.into_iter().filter(|id| !vault.opens(id)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let previous = vault.previous_key_ids();
    let previous = if previous.is_empty() { "none".to_owned() } else { previous.join(", ") };
    anyhow::bail!(
        "the stored tokens are sealed with master key {missing}, which this configuration does \
         not have (security.master_key is key {active}; previous_master_keys: {previous}), so \
         none of them could be opened. Set security.master_key (or NOH_MASTER_KEY, or \
         master_key_file) to the key that sealed them; after a rotation, list the old key in \
         security.previous_master_keys. `notion-oauth-handler check` shows a key's id.",
        missing = missing.join(", "),
        active = vault.active_key_id(),
    )
}

/// A server bound to its address, ready to run.
pub struct Application {
    listener: TcpListener,
    services: Services,
    config: Config,
    /// The certificate served, when `[tls]` or `[acme]` is on.
    certificate: Option<Arc<Certificate>>,
    /// Where metrics are served, when `server.metrics_bind` is set.
    metrics_listener: Option<TcpListener>,
    /// The plain-HTTP listener, when `server.http_bind` is set.
    http_listener: Option<TcpListener>,
    /// SIGHUP, taken over at build: a certificate reload, never the end of the process.
    hangups: Hangups,
}

impl Application {
    /// Opens the app and binds `config.bind`.
    ///
    /// # Errors
    /// The database, the Notion client or the pages cannot be set up, or the address cannot be
    /// bound.
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
        let hangups = crate::tls::hangups();
        // Read before anything is opened: a certificate that does not load stops the start.
        let certificate = match &config.tls {
            Some(Tls::Files(files)) => {
                Some(Certificate::open(files).context("[tls] cannot be served")?)
            }
            // Served from the cache when it holds a pair; ordered once serving has started
            // (TLS-ALPN-01 is answered on this very listener).
            Some(Tls::Acme(acme)) => {
                crate::acme::prepare_cache(acme)?;
                Some(Certificate::cached(&acme.files))
            }
            None => None,
        };
        let http_listener = match config.http_bind {
            Some(address) => Some(TcpListener::bind(address).await.with_context(|| {
                format!("cannot listen on {address} (is another program using it? binding port 80 needs CAP_NET_BIND_SERVICE; set server.http_bind)")
            })?),
            None => None,
        };
        let metrics_listener = match config.metrics_bind {
            Some(address) => Some(TcpListener::bind(address).await.with_context(|| {
                format!("cannot serve metrics on {address} (is another program using it? set server.metrics_bind)")
            })?),
            None => None,
        };
        let services = Services::open(&config, Additions::default()).await?;
        Ok(Self {
            listener,
            services,
            config,
            certificate,
            metrics_listener,
            http_listener,
            hangups,
        })
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
        let Self {
            listener,
            services,
            config,
            certificate,
            metrics_listener,
            http_listener,
            hangups,
        } = self;
        let background = services.start_background();
        let router = crate::routes::router(services.state.clone(), &config);
        let metrics_server = metrics_listener.map(|listener| {
            let state = &services.state;
            let metrics = crate::routes::metrics_router(state.store.clone(), state.metrics.clone());
            // Held to limits of its own: its sockets share the process's descriptors with the
            // public listener's, and a scraper needs one or two.
            let limits = ConnectionLimits {
                header_timeout: config.limits.header_timeout,
                max_connections: 8,
                max_connections_per_client: 8,
            };
            let never = std::future::pending();
            tokio::spawn(crate::serving::serve(listener, metrics, limits, &[], None, never))
        });
        let metrics = services.state.metrics.clone();
        let https = Https::start(&config, certificate, metrics, hangups)?;
        let http_server = http_listener.map(|listener| {
            let router =
                crate::acme::plain_http_router(&config.public_url, https.challenges.clone());
            let trusted = config.clients.trusted_proxies.clone();
            let never = std::future::pending();
            tokio::spawn(async move {
                crate::serving::serve(listener, router, config.limits, &trusted, None, never).await
            })
        });
        // What starting up allocated and freed (the configuration read, the migrations, the
        // templates parsed) is handed back before the first request, not kept for good. About
        // a millisecond, once, before anything is served: no blocking pool thread for it.
        crate::serving::give_back_free_memory();
        let trusted = &config.clients.trusted_proxies;
        let served =
            crate::serving::serve(listener, router, config.limits, trusted, https.tls, shutdown)
                .await;
        let servers = [metrics_server, http_server].into_iter().flatten();
        for task in https.tasks.into_iter().chain(servers.map(|server| server.abort_handle())) {
            task.abort();
        }
        background.stop().await;
        services.state.store.close().await;
        served
    }
}

/// HTTPS as configured: what the listener answers TLS with, the ACME challenge answers (for the
/// port-80 listener too), and the work that keeps the certificate fresh.
struct Https {
    tls: Option<Arc<rustls::ServerConfig>>,
    challenges: Option<Arc<Challenges>>,
    /// The certificate's watcher (or the SIGHUP answerer without TLS) and the ACME orders.
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Https {
    fn start(
        config: &Config,
        certificate: Option<Arc<Certificate>>,
        metrics: Arc<Metrics>,
        hangups: Hangups,
    ) -> std::io::Result<Self> {
        let Some(certificate) = certificate else {
            let answering = tokio::spawn(crate::tls::nothing_to_reload(hangups));
            return Ok(Self { tls: None, challenges: None, tasks: vec![answering.abort_handle()] });
        };
        let (tls, challenges) = match &config.tls {
            Some(Tls::Acme(acme)) => {
                let challenges = Challenges::new(acme);
                let resolver = Arc::new(Resolver {
                    certificate: certificate.clone(),
                    challenges: challenges.clone(),
                });
                // A TLS-ALPN-01 validator offers only this protocol; it must be on the list.
                let alpn: &[&[u8]] = match acme.challenge {
                    Challenge::TlsAlpn01 => &[crate::tls::ACME_TLS_ALPN],
                    Challenge::Http01 => &[],
                };
                (crate::tls::server_config(resolver, alpn), Some(challenges))
            }
            _ => (crate::tls::server_config(certificate.clone(), &[]), None),
        };
        let tls = Some(tls.map_err(std::io::Error::other)?);
        let watcher = tokio::spawn(certificate.clone().watch(metrics.clone(), hangups));
        let mut tasks = vec![watcher.abort_handle()];
        if let (Some(Tls::Acme(acme)), Some(challenges)) = (&config.tls, &challenges) {
            let ordering = crate::acme::keep_certified(
                acme.as_ref().clone(),
                certificate,
                challenges.clone(),
                metrics,
            );
            tasks.push(tokio::spawn(ordering).abort_handle());
        }
        Ok(Self { tls, challenges, tasks })
    }
}
