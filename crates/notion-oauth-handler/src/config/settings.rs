//! The configuration file as written, and how it is read: a TOML file, then environment
//! variables. `NOH_<SECTION>__<KEY>` overrides any key (`NOH_SERVER__BIND`); `NOTION_CLIENT_ID`,
//! `NOTION_CLIENT_SECRET` and `NOH_MASTER_KEY` are accepted as well, because that is how users of
//! other Notion tools already keep them.

use std::path::PathBuf;

use notion_oauth::{DEFAULT_API_BASE_URL, DEFAULT_NOTION_VERSION};
use secrecy::SecretString;
use serde::Deserialize;

/// The configuration file as written, one field per section. Only the integration's
/// credentials, the master key and `server.public_url` have no default.
///
/// Keys it does not know are ignored when deserialized: [`load_settings`](super::load_settings)
/// reports them, each with the key meant, together with every other problem.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct Settings {
    /// `[server]`: where it listens and is reached.
    #[serde(default)]
    pub server: ServerSettings,
    /// `[notion]`: the integration's credentials.
    #[serde(default)]
    pub notion: NotionSettings,
    /// `[storage]`: the database.
    #[serde(default)]
    pub storage: StorageSettings,
    /// `[security]`: the master key and the flow's limits.
    #[serde(default)]
    pub security: SecuritySettings,
    /// `[lifecycle]`: refreshes and checks.
    #[serde(default)]
    pub lifecycle: LifecycleSettings,
    /// `[[documents]]`: files served as written.
    #[serde(default)]
    pub documents: Vec<DocumentSettings>,
    /// `[[webhooks]]`: signed POSTs of each event.
    #[serde(default)]
    pub webhooks: Vec<WebhookSettings>,
    /// `[command_hook]`: a program run for each event.
    pub command_hook: Option<CommandHookSettings>,
    /// `[delivery]`: retries.
    #[serde(default)]
    pub delivery: DeliverySettings,
    /// `[connect]`: where the browser goes afterwards, and which links are trusted.
    #[serde(default)]
    pub connect: ConnectSettings,
    /// `[pages]`: the look of the pages.
    #[serde(default)]
    pub pages: PagesSettings,
    /// `[branding]`: the app's name, logo and colour on the pages.
    #[serde(default)]
    pub branding: BrandingSettings,
    /// `[proxy]`: the Notion API proxy's limits.
    #[serde(default)]
    pub proxy: ProxySettings,
    /// How often one client may start flows and fail API keys.
    #[serde(default)]
    pub rate_limit: RateLimitSettings,
    /// `[tls]`: HTTPS served by the process itself.
    #[serde(default)]
    pub tls: TlsSettings,
    /// `[acme]`: HTTPS with a certificate the process obtains and renews itself.
    pub acme: Option<AcmeSettings>,
}

/// `[tls]`: the certificate `serve` answers HTTPS with. Both files or neither.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct TlsSettings {
    /// PEM: the server's certificate first, then the intermediates.
    pub cert_file: Option<PathBuf>,
    /// PEM: the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: Option<PathBuf>,
}

/// `[acme]`: a certificate obtained and renewed from an ACME certificate authority (Let's
/// Encrypt by default). Configuring it agrees to that authority's terms of service.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct AcmeSettings {
    /// The names the certificate is for; empty is the host of `server.public_url`.
    pub domains: Vec<String>,
    /// An email address the authority may write to about the account.
    pub contact: Option<String>,
    /// `letsencrypt`, `letsencrypt-staging`, or the directory URL of any RFC 8555 server.
    pub directory_url: String,
    /// Where the account key and the certificates are kept (made 0700, files 0600). Several
    /// instances may share it: one orders at a time, the others serve what it wrote.
    pub cache_dir: PathBuf,
    /// `tls-alpn-01` (answered on `server.bind`, which must be reached on port 443) or
    /// `http-01` (answered on `server.http_bind`, which must be reached on port 80).
    pub challenge: String,
    /// Trust only this CA (PEM) for the ACME server's own HTTPS: a private or test authority.
    pub ca_file: Option<PathBuf>,
    /// Renew this long before expiry (or at a third of a shorter certificate's lifetime).
    pub renew_before_days: u64,
}

impl Default for AcmeSettings {
    fn default() -> Self {
        Self {
            domains: Vec::new(),
            contact: None,
            directory_url: "letsencrypt".into(),
            cache_dir: PathBuf::from("acme"),
            challenge: "tls-alpn-01".into(),
            ca_file: None,
            // Let's Encrypt's own advice for 90-day certificates: a month of room for retries.
            renew_before_days: 30,
        }
    }
}

/// `[rate_limit]`: per client address (per /64 network for IPv6). A `_per_minute` of 0 turns
/// that limit off.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct RateLimitSettings {
    /// Requests to `/connect` and `/callback` (a flow makes one of each).
    pub flow_requests_per_minute: u32,
    /// How many of those may come at once before the rate applies.
    pub flow_burst: u32,
    /// API requests with a key that is not valid; past the limit every API request from that
    /// client is refused, a valid key too, until it has waited.
    pub failed_api_keys_per_minute: u32,
    /// How many failures may come at once before the rate applies.
    pub failed_api_key_burst: u32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        // An office behind one address starting flows together stays well within these; a
        // script guessing API keys gets ten a minute.
        Self {
            flow_requests_per_minute: 120,
            flow_burst: 60,
            failed_api_keys_per_minute: 10,
            failed_api_key_burst: 10,
        }
    }
}

/// `[pages]`: the look of the pages.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct PagesSettings {
    /// A folder whose `landing.html`, `success.html`, `denied.html`, `error.html` or `base.html`
    /// replace the built-in ones.
    pub templates_dir: Option<PathBuf>,
    /// List the pages the user shared on the success page (one search call to Notion per
    /// connection, which counts toward the integration's rate limit).
    pub show_shared: bool,
}

impl Default for PagesSettings {
    fn default() -> Self {
        Self { templates_dir: None, show_shared: true }
    }
}

/// `[proxy]`: the Notion API proxy (`/api/v1/connections/{bot_id}/notion/…`).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct ProxySettings {
    /// The largest request body passed on (it is held, to be sent again after a refresh or a
    /// rate limit).
    pub max_request_bytes: u64,
    /// The largest answer passed back; a longer one is cut off (the client sees the connection
    /// end early).
    pub max_response_bytes: u64,
    /// How long one call to Notion may take.
    pub timeout_seconds: u64,
    /// How long one proxied request may spend waiting on Notion's `Retry-After` and the pacing
    /// below before the rate limit is passed back instead.
    pub retry_budget_seconds: u64,
    /// Requests per second per connection sent to Notion at most (0: not paced); Notion's limit
    /// is about 3 per integration on average.
    pub requests_per_second: f64,
    /// Requests a connection may send at once before the pacing applies.
    pub burst: u32,
}

impl Default for ProxySettings {
    fn default() -> Self {
        Self {
            max_request_bytes: 1024 * 1024,
            max_response_bytes: 16 * 1024 * 1024,
            timeout_seconds: 30,
            retry_budget_seconds: 10,
            requests_per_second: 0.0,
            burst: 3,
        }
    }
}

/// `[branding]`: the app's name, logo and colour on the pages.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct BrandingSettings {
    /// The app's name, as the pages say it: "Connect <app> to Notion".
    pub app_name: Option<String>,
    /// The app's logo: an https URL, or an .svg, .png, .jpg or .webp file of at most 64 KiB.
    pub logo: Option<String>,
    /// The colour of buttons and focus rings, `#rrggbb`.
    pub accent_color: Option<String>,
    /// Where users get help: an https or mailto: address.
    pub support_url: Option<String>,
    /// The app's own address, for the success page's "Back to <app>".
    pub app_url: Option<String>,
}

/// `[lifecycle]`: refreshes and checks.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct LifecycleSettings {
    /// A forced refresh this soon after the last one returns that one's token instead.
    pub min_refresh_interval_seconds: u64,
    /// Refresh connections whose tokens are older than this, in the background (0: off).
    pub refresh_older_than_seconds: u64,
    /// Introspect every connection this often, in the background (0: off).
    pub check_interval_seconds: u64,
}

impl Default for LifecycleSettings {
    fn default() -> Self {
        Self {
            min_refresh_interval_seconds: 5,
            refresh_older_than_seconds: 0,
            check_interval_seconds: 0,
        }
    }
}

/// `[server]`: where the server listens and is reached.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct ServerSettings {
    /// The address to listen on, e.g. `127.0.0.1:8080`.
    pub bind: String,
    /// The https address users reach this server at; the redirect URI is built from it.
    pub public_url: Option<String>,
    /// The path every route lives under, e.g. `/notion`.
    pub base_path: String,
    /// How long a client has to send a request's headers, and how long a kept-alive connection
    /// may wait for its next request, before it is closed.
    pub header_timeout_seconds: u64,
    /// The most connections served at once; more are closed as soon as they are accepted.
    pub max_connections: u64,
    /// The most of those one client address (an IPv6 /64) may hold; a trusted proxy, which
    /// carries many clients, is held only to `max_connections`.
    pub max_connections_per_client: u64,
    /// Addresses and networks (`10.0.0.0/8`) of the proxies in front of this server: only a
    /// request from one of them may name its client in `forwarded_header`.
    pub trusted_proxies: Vec<String>,
    /// Which header trusted proxies name the client in: `X-Forwarded-For` or `Forwarded`.
    pub forwarded_header: String,
    /// Where Prometheus metrics are served (`GET /metrics`), e.g. `127.0.0.1:9090`; never on
    /// the public address. Off when absent.
    pub metrics_bind: Option<String>,
    /// A plain-HTTP listener (port 80, e.g. `0.0.0.0:80`) that answers ACME HTTP-01
    /// challenges and redirects everything else to `public_url`. Only with `[tls]` or `[acme]`.
    pub http_bind: Option<String>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8080".into(),
            public_url: None,
            base_path: "/".into(),
            header_timeout_seconds: 10,
            // Under the usual limit of 1024 open files, leaving room for the database, the
            // calls to Notion and webhooks.
            max_connections: 768,
            // Far above what a browser opens (six or so per host), far below the cap: one
            // client cannot take every slot.
            max_connections_per_client: 64,
            // A proxy on this machine (nginx, Caddy) works without setting anything.
            trusted_proxies: vec!["127.0.0.0/8".into(), "::1".into()],
            forwarded_header: "X-Forwarded-For".into(),
            metrics_bind: None,
            http_bind: None,
        }
    }
}

/// `[notion]`: the integration's credentials and how Notion is called.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct NotionSettings {
    /// The OAuth client ID from the integration's page in Notion's Developer portal.
    pub client_id: Option<String>,
    /// The OAuth client secret.
    pub client_secret: Option<SecretString>,
    /// A file holding the client secret, instead of `client_secret`.
    pub client_secret_file: Option<PathBuf>,
    /// Notion's API, or an emulator's.
    pub api_base_url: String,
    /// The `Notion-Version` sent with each call.
    pub version: String,
    /// How long one call to Notion may take.
    pub timeout_seconds: u64,
}

impl Default for NotionSettings {
    fn default() -> Self {
        Self {
            client_id: None,
            client_secret: None,
            client_secret_file: None,
            api_base_url: DEFAULT_API_BASE_URL.into(),
            version: DEFAULT_NOTION_VERSION.into(),
            timeout_seconds: 10,
        }
    }
}

/// `[storage]`: the database.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct StorageSettings {
    /// `sqlite://file.db` or `postgres://…`.
    pub url: String,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self { url: "sqlite://notion-oauth-handler.db".into() }
    }
}

/// `[security]`: the master key and the flow's limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct SecuritySettings {
    /// The key tokens are sealed with, base64 of 32 bytes.
    pub master_key: Option<SecretString>,
    /// A file holding the master key, instead of `master_key`.
    pub master_key_file: Option<PathBuf>,
    /// Keys that sealed older rows, still used to open them.
    pub previous_master_keys: Vec<SecretString>,
    /// How long a flow may take from `/connect` to the callback.
    pub state_ttl_seconds: u64,
    /// Accept installs started from Notion's own pages, which carry no state.
    pub allow_notion_initiated: bool,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        Self {
            master_key: None,
            master_key_file: None,
            previous_master_keys: Vec::new(),
            state_ttl_seconds: 600,
            allow_notion_initiated: false,
        }
    }
}

/// One `[[webhooks]]` entry.
#[derive(Clone, Debug, Deserialize)]
pub struct WebhookSettings {
    /// A short name, shown in delivery listings; stable across restarts.
    pub name: String,
    /// Where to POST each event.
    pub url: String,
    /// The key receivers verify each delivery's signature with.
    pub secret: Option<SecretString>,
    /// A file holding the secret, instead of `secret`.
    pub secret_file: Option<std::path::PathBuf>,
    /// Which events; all of them when absent.
    pub events: Option<Vec<String>>,
    /// Add the connection's current tokens to each body (https or loopback URLs only).
    #[serde(default)]
    pub include_tokens: bool,
}

/// `[command_hook]`.
#[derive(Clone, Debug, Deserialize)]
pub struct CommandHookSettings {
    /// The program and its arguments; the event's JSON arrives on its standard input.
    pub command: Vec<String>,
    /// How long one run may take before it is stopped.
    #[serde(default = "default_command_timeout")]
    pub timeout_seconds: u64,
    /// Which events; all of them when absent.
    pub events: Option<Vec<String>>,
    /// Environment variables passed on to the hook (beyond PATH, HOME and LANG).
    #[serde(default)]
    pub env: Vec<String>,
}

fn default_command_timeout() -> u64 {
    30
}

/// `[delivery]`: retries.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct DeliverySettings {
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: u32,
    /// The first retry waits about this long; each next one twice as long (capped at an hour).
    pub retry_base_ms: u64,
    /// Limit for one webhook call.
    pub timeout_seconds: u64,
    /// How long delivered and dead deliveries are kept (for listings and redelivery).
    pub retention_days: u64,
    /// Deliveries under way at once, each for another connection: a slow or hanging one holds
    /// up only its own connection's next events.
    pub concurrency: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            max_attempts: 12,
            retry_base_ms: 5_000,
            timeout_seconds: 10,
            retention_days: 7,
            concurrency: 8,
        }
    }
}

/// `[connect]` as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ConnectSettings {
    /// Instead of the success page: e.g. `https://app.example.com/notion/done?bot={bot_id}&ref={ref}`.
    pub success_redirect: Option<String>,
    /// Instead of the "access was not granted" page.
    pub denied_redirect: Option<String>,
    /// Origins `return_to` may point at, e.g. `["https://app.example.com"]`; none: `return_to` is refused.
    pub return_to_origins: Vec<String>,
    /// Refuse links that carry `ref` or `return_to` without a valid signature (or one-time link).
    pub require_signed_ref: bool,
    /// The secret your app signs connect links with.
    pub link_secret: Option<SecretString>,
    /// A file holding the link secret, instead of `link_secret`.
    pub link_secret_file: Option<PathBuf>,
}

/// One `[[documents]]` entry.
#[derive(Clone, Debug, Deserialize)]
pub struct DocumentSettings {
    /// Where it is served, e.g. `/privacy`.
    pub path: String,
    /// The file, relative to the configuration file's folder.
    pub file: PathBuf,
    /// Its type; guessed from the file's extension when absent.
    pub content_type: Option<String>,
}
