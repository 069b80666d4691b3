//! In-memory emulator of Notion's public-connection OAuth flow and a small API subset, for dev and tests.
//!
//! The behaviour follows the shared Notion OAuth reference (`shared/notion-oauth.md`, §8
//! "Recommended mock behaviour"); where Notion's real behaviour is unconfirmed the emulator picks
//! the documented or RFC 6749 answer and says so in a comment next to the decision.

mod admin;
mod api;
mod authorize;
mod body;
mod content;
mod credentials;
mod errors;
mod faults;
#[cfg(test)]
mod flow_tests;
mod limits;
mod middleware;
mod pages;
mod random;
mod recording;
mod store;
mod token;

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};

pub use admin::{FaultSpec, Settings};
pub use content::{ContentFile, WorkspaceContent};
pub use faults::Fault;
pub use recording::{Endpoint, RecordedRequest};

use faults::FaultTable;
use pages::Pages;
use recording::RequestLog;
use store::Store;

/// How error bodies of the `/v1/oauth/*` endpoints look; Notion's docs disagree with themselves (§2.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorShape {
    /// RFC 6749 shape `{error, error_description, request_id}`: the latest live evidence (Oct 2025).
    #[serde(rename = "oauth")]
    OAuth,
    /// Notion common shape `{object:"error", status, code, message, request_id}`: the current OpenAPI.
    Notion,
}

/// What a re-authorization by the same user in the same workspace returns (§6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReauthMode {
    /// Since 2026-06-08: a new access+refresh pair; the bot's previous pair dies.
    FreshPair,
    /// Legacy connections: the bot's still-active pair is returned again.
    SameToken,
}

/// What `POST /v1/oauth/revoke` ends. Notion does not say whether revoking an access token also
/// ends its refresh token (UNCONFIRMED, §4.2), so a client must work either way.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Revocation {
    /// Revoking either token of the current pair ends both.
    WholePair,
    /// Only the token given dies: after revoking the access token, its refresh token still
    /// mints new pairs until it is revoked too.
    OnlyThatToken,
}

/// The API's rate limit (§5.4: about 3 requests per second per connection on average, and a
/// limit per workspace). Off unless set: a test suite that did not ask for 429s should not get
/// them. The OAuth endpoints are never limited (whether Notion limits them is UNCONFIRMED).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// The sustained rate.
    pub requests_per_second: u32,
    /// How many requests may come at once before the rate applies (at least 1).
    #[serde(default = "RateLimit::default_burst")]
    pub burst: u32,
    /// What one budget covers.
    #[serde(default = "RateLimit::default_scope")]
    pub per: RateLimitScope,
}

impl RateLimit {
    fn default_burst() -> u32 {
        // Notion speaks of an average and allows "some bursts".
        10
    }

    fn default_scope() -> RateLimitScope {
        RateLimitScope::Token
    }
}

/// What one rate-limit budget covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitScope {
    /// Each access token (a connection): 429 with `rate_limit_reason`
    /// `public_api_request_rate_limit`.
    Token,
    /// Each workspace, whichever connection calls: `public_api_space_request_rate_limit`.
    Workspace,
    /// Every API request together.
    Integration,
}

/// Settings of the one emulated public connection.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// The only client id the emulator accepts, at authorize and in HTTP Basic on the back channel.
    pub client_id: String,
    /// The secret the back-channel endpoints expect in HTTP Basic; `Debug` prints it redacted.
    pub client_secret: String,
    /// The integration's name, as Notion's consent page shows it; `None` shows the client id.
    pub integration_name: Option<String>,
    /// Registered redirect URIs, compared byte for byte as Notion does.
    pub redirect_uris: Vec<String>,
    /// `GET /v1/oauth/authorize` approves at once instead of showing the consent page.
    pub auto_approve: bool,
    /// How long an authorization code stays exchangeable after it is issued (default 10 minutes).
    pub code_ttl: Duration,
    /// How the `/v1/oauth/*` endpoints shape error bodies; the API endpoints always use Notion's.
    pub error_shape: ErrorShape,
    /// Which token pair a repeated authorization by the same user in the same workspace gets.
    pub reauth: ReauthMode,
    /// What a revocation ends.
    pub revocation: Revocation,
    /// How long the previous access token keeps working after a refresh (default 0: it dies at
    /// once). Notion does not say (UNCONFIRMED, §3).
    pub old_token_grace: Duration,
    /// The API's rate limit, if any.
    pub rate_limit: Option<RateLimit>,
    /// How long an access token is accepted after it was issued (default: for good, as Notion
    /// sends no `expires_in`; the real lifetime is UNCONFIRMED, §3.2). Its refresh token still
    /// works after it: a client must refresh on 401.
    pub access_token_ttl: Option<Duration>,
    /// `false` sends `state=` empty on deny, exactly like Notion's doc example (§1.3).
    pub echo_state_on_deny: bool,
    /// Refuse an authorize URL without `owner=user`, as the documentation has it (default:
    /// accepted, as Notion's changelog says it is).
    pub require_owner: bool,
    /// Workspace names offered on the consent page; the first is the default.
    pub workspaces: Vec<String>,
    /// What the workspaces hold; `None` gives each the default set of 22 pages and 3 databases.
    pub content: Option<ContentFile>,
    /// Load-target mode for benchmarks (default off): authorize approves at once, and the token
    /// endpoint exchanges *any* non-empty code without checking `redirect_uri`, giving each
    /// distinct code its own bot (ids derived from the code, so the same code means the same bot)
    /// and a fresh token pair. Client credentials are still checked. So that a long run stays
    /// cheap, nothing is recorded (no request log, no [`Emulator::issued_secrets`]) and only the
    /// most recent bench bots are remembered (a forgotten bot's tokens read as inactive).
    pub bench: bool,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            // The client id of Notion's own authorize-URL example, so dev URLs look familiar.
            client_id: "463558a3-725e-4f37-b6d3-0889894f68de".to_owned(),
            client_secret: "secret_dev".to_owned(),
            integration_name: None,
            redirect_uris: Vec::new(),
            auto_approve: false,
            code_ttl: Duration::from_secs(10 * 60),
            error_shape: ErrorShape::OAuth,
            reauth: ReauthMode::FreshPair,
            revocation: Revocation::WholePair,
            old_token_grace: Duration::ZERO,
            rate_limit: None,
            access_token_ttl: None,
            echo_state_on_deny: true,
            require_owner: false,
            workspaces: vec!["Acme Corp".to_owned(), "Personal".to_owned()],
            content: None,
            bench: false,
        }
    }
}

impl fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("redirect_uris", &self.redirect_uris)
            .field("auto_approve", &self.auto_approve)
            .field("code_ttl", &self.code_ttl)
            .field("error_shape", &self.error_shape)
            .field("reauth", &self.reauth)
            .field("revocation", &self.revocation)
            .field("old_token_grace", &self.old_token_grace)
            .field("rate_limit", &self.rate_limit)
            .field("access_token_ttl", &self.access_token_ttl)
            .field("echo_state_on_deny", &self.echo_state_on_deny)
            .field("require_owner", &self.require_owner)
            .field("workspaces", &self.workspaces)
            .field("content", &self.content)
            .field("bench", &self.bench)
            .finish()
    }
}

/// Everything mutable sits behind one mutex so a request sees config, tokens and faults consistently.
struct Inner {
    config: EmulatorConfig,
    store: Store,
    faults: FaultTable,
    log: RequestLog,
    /// Built from `config.rate_limit`, again whenever it changes.
    limiter: Option<limits::Limiter>,
    content: content::Content,
}

struct Shared {
    inner: Mutex<Inner>,
    pages: Pages,
}

/// Handle to one emulator; clones share the same state.
#[derive(Clone)]
pub struct Emulator {
    shared: Arc<Shared>,
}

impl fmt::Debug for Emulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Emulator").finish_non_exhaustive()
    }
}

impl Emulator {
    /// An emulator with no codes, tokens, faults or recorded requests yet; nothing listens until
    /// it is served ([`Emulator::serve`], [`Emulator::spawn`]) or its [`Emulator::router`] mounted.
    pub fn new(config: EmulatorConfig) -> Self {
        let mut store = Store::new(config.bench);
        let limiter = config.rate_limit.and_then(limits::Limiter::new);
        let content = content::Content::new(config.content.as_ref());
        store.access_ttl = config.access_token_ttl;
        Self {
            shared: Arc::new(Shared {
                inner: Mutex::new(Inner {
                    config,
                    store,
                    faults: FaultTable::default(),
                    log: RequestLog::default(),
                    limiter,
                    content,
                }),
                pages: Pages::new(),
            }),
        }
    }

    /// Runs `f` under the state lock. A poisoned lock is recovered: every mutation is a plain
    /// insert/flag flip, so the state stays coherent even if a holder panicked.
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        let mut guard = self.shared.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut guard)
    }

    fn pages(&self) -> &Pages {
        &self.shared.pages
    }

    /// All emulated routes with the recording / request-id / fault layer applied.
    pub fn router(&self) -> Router {
        Router::new()
            .route(
                "/v1/oauth/authorize",
                get(authorize::authorize_get).post(authorize::authorize_post),
            )
            .route("/v1/oauth/token", post(token::token))
            .route("/v1/oauth/introspect", post(token::introspect))
            .route("/v1/oauth/revoke", post(token::revoke))
            .route("/v1/users/me", get(api::users_me))
            .route("/v1/search", post(api::search))
            .route("/v1/pages/{id}", get(api::page))
            .route("/v1/databases/{id}", get(api::database))
            .route("/v1/data_sources/{id}", get(api::data_source))
            .fallback(api::not_found)
            .method_not_allowed_fallback(api::method_not_allowed)
            .layer(axum::middleware::from_fn_with_state(self.clone(), middleware::around_request))
            .with_state(self.clone())
            // Outside the recording and the faults: switching a fault is not a call to Notion.
            .nest("/_mock", admin::router(self.clone()))
    }

    /// Serves on an already-bound listener until the future is dropped or the task aborted.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// Binds `addr` (e.g. `"127.0.0.1:0"`) and serves it on a new tokio task.
    pub async fn spawn(config: EmulatorConfig, addr: &str) -> std::io::Result<RunningEmulator> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let emulator = Emulator::new(config);
        let task = tokio::spawn(emulator.clone().serve(listener));
        Ok(RunningEmulator { emulator, addr, task })
    }

    /// Binds `addr` and serves this emulator (faults armed, settings applied) on a new task.
    ///
    /// # Errors
    /// The address cannot be bound.
    pub async fn spawn_on(self, addr: &str) -> std::io::Result<RunningEmulator> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(self.clone().serve(listener));
        Ok(RunningEmulator { emulator: self, addr, task })
    }

    /// Installs a fault that stays until [`Emulator::clear_faults`].
    pub fn set_fault(&self, endpoint: Endpoint, fault: Fault) {
        self.with(|s| s.faults.set(endpoint, fault, None, 0));
    }

    /// Installs a fault for the next `times` requests to `endpoint` only.
    pub fn set_fault_times(&self, endpoint: Endpoint, fault: Fault, times: u32) {
        self.with(|s| s.faults.set(endpoint, fault, Some(times), 0));
    }

    /// Lets the next `skip` requests to `endpoint` through, then installs `fault` for `times`
    /// requests: the second call of a sequence fails while the first succeeds.
    pub fn set_fault_after(&self, endpoint: Endpoint, skip: u32, fault: Fault, times: u32) {
        self.with(|s| s.faults.set(endpoint, fault, Some(times), skip));
    }

    /// Removes every installed fault, so all endpoints behave normally again.
    pub fn clear_faults(&self) {
        self.with(|s| s.faults.clear());
    }

    /// Turns [`EmulatorConfig::auto_approve`] on or off for the following authorize requests.
    pub fn set_auto_approve(&self, on: bool) {
        self.with(|s| s.config.auto_approve = on);
    }

    /// Simulates a secret rotated in the portal: token calls with the old one get `invalid_client`.
    pub fn set_client_secret(&self, secret: &str) {
        self.with(|s| secret.clone_into(&mut s.config.client_secret));
    }

    /// Registers one more redirect URI (if new), e.g. once the app's port is known.
    pub fn add_redirect_uri(&self, uri: &str) {
        self.with(|s| {
            if !s.config.redirect_uris.iter().any(|u| u == uri) {
                s.config.redirect_uris.push(uri.to_owned());
            }
        });
    }

    /// Everything received (at most the last 1000), oldest first; nothing in bench mode.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.with(|s| s.log.all())
    }

    /// The recorded requests to `endpoint` only, oldest first (from the same last 1000).
    pub fn requests_to(&self, endpoint: Endpoint) -> Vec<RecordedRequest> {
        self.with(|s| s.log.to(endpoint))
    }

    /// Every code, access token and refresh token ever minted, so tests can grep logs and DB files
    /// (none in bench mode).
    pub fn issued_secrets(&self) -> Vec<String> {
        self.with(|s| s.store.issued_secrets().to_vec())
    }

    /// Whether `token` is still a bot's current access token: not rotated, replaced or revoked.
    pub fn is_access_token_active(&self, token: &str) -> bool {
        self.with(|s| s.store.access_token_bot(token).is_some())
    }

    /// Whether `token` is still a bot's current refresh token, so a refresh could still use it.
    pub fn is_refresh_token_active(&self, token: &str) -> bool {
        self.with(|s| s.store.is_refresh_token_active(token))
    }

    /// Simulates an access token expiring: Notion no longer accepts it (introspection calls it
    /// inactive), while the refresh token of its pair still works, so a refresh revives the
    /// connection.
    pub fn expire_access_token(&self, token: &str) {
        self.with(|s| s.store.expire_access_token(token));
    }

    /// Simulates the user removing the connection in Notion: every token of the bot dies.
    pub fn revoke_all_for_bot(&self, bot_id: &str) {
        self.with(|s| s.store.revoke_bot(bot_id));
    }
}

/// An emulator serving on a spawned task; dropping it stops the server.
pub struct RunningEmulator {
    /// The served emulator, to install faults and inspect requests and tokens while it runs.
    pub emulator: Emulator,
    /// The address actually bound: the real port when `:0` was asked for.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningEmulator {
    /// `http://HOST:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting connections, to play a Notion that cannot be reached.
    pub fn stop(&self) {
        self.task.abort();
    }
}

impl fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunningEmulator").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_debug_redacts_secret() {
        let config = EmulatorConfig {
            client_secret: "very-secret-value".to_owned(),
            ..EmulatorConfig::default()
        };
        let printed = format!("{config:?}");
        assert!(printed.contains("[redacted]"));
        assert!(!printed.contains("very-secret-value"));
    }
}
