//! Configuration: a TOML file and environment variables ([`Settings`], in [`settings`]),
//! checked once into the plain data the server runs with ([`Config`]).
//!
//! Each section has its own checks: `[connect]` in [`connect`], where events are delivered in
//! [`delivery`], documents in `documents`, single values (URLs, paths, secrets given inline or
//! in a file) in `checks`. They all add to one [`Problems`] collector, so every problem is
//! reported at once.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use notion_oauth::{ClientConfig, ClientId, ClientSecret, DEFAULT_NOTION_VERSION};
use secrecy::ExposeSecret;
use url::Url;

use crate::vault::MasterKey;

mod branding;
mod checks;
mod clients;
mod connect;
mod delivery;
mod documents;
mod https;
mod placeholders;
mod problems;
mod proxy;
mod reading;
mod settings;

pub use branding::{Accent, Branding};
pub(crate) use checks::{Backend, redacted_url, resolve_sqlite_url};
use checks::{
    Secret, check_api_base_url, check_base_path, check_public_url, in_range, is_loopback_host,
    is_notion_version, secret_from,
};
pub use clients::{ClientPolicy, ForwardedHeader, Rate};
pub use connect::Connect;
pub(crate) use connect::{check_return_to, fill};
pub(crate) use delivery::check_target_name;
pub use delivery::{DeliveryPolicy, Target, TargetKind};
pub use documents::Document;
pub use https::{Acme, Challenge, Tls, TlsFiles};
use problems::Problems;
pub use problems::{ConfigError, Problem};
pub(crate) use problems::{count, plural};
pub use proxy::{Pace, ProxyPolicy};
pub use reading::load_settings;
pub use settings::{
    AcmeSettings, BrandingSettings, CommandHookSettings, ConnectSettings, DeliverySettings,
    DocumentSettings, LifecycleSettings, NotionSettings, PagesSettings, ProxySettings,
    RateLimitSettings, SecuritySettings, ServerSettings, Settings, StorageSettings, TlsSettings,
    WebhookSettings,
};

/// The checked configuration the server runs with: plain data, nothing running.
#[derive(Debug)]
pub struct Config {
    /// The address to listen on.
    pub bind: SocketAddr,
    /// Where metrics are served, if anywhere.
    pub metrics_bind: Option<SocketAddr>,
    /// What one client may hold of the server.
    pub limits: ConnectionLimits,
    /// Who a client is (behind trusted proxies) and how often it may start flows and fail keys.
    pub clients: ClientPolicy,
    /// The address users reach this server at.
    pub public_url: Url,
    /// HTTPS in the process, from files or ACME; `None` is plain HTTP (behind a proxy).
    pub tls: Option<Tls>,
    /// The plain-HTTP listener that redirects to https (and answers ACME HTTP-01), if any.
    pub http_bind: Option<SocketAddr>,
    /// `""` for the root, else `/prefix` without a trailing slash.
    pub base_path: String,
    /// The integration's credentials and how Notion is called.
    pub notion: ClientConfig,
    /// The database, with a relative SQLite path resolved.
    pub storage_url: String,
    /// The key new tokens are sealed with.
    pub master_key: MasterKey,
    /// Keys that sealed older rows.
    pub previous_master_keys: Vec<MasterKey>,
    /// How long a flow may take.
    pub state_ttl: Duration,
    /// Whether installs started from Notion (without a state) are accepted.
    pub allow_notion_initiated: bool,
    /// Refreshes and checks.
    pub lifecycle: LifecyclePolicy,
    /// Files served as written.
    pub documents: Vec<Document>,
    /// Where connection events are delivered.
    pub targets: Vec<Target>,
    /// How deliveries are retried.
    pub delivery: DeliveryPolicy,
    /// Where the browser goes afterwards, and which links to `/connect` are trusted.
    pub connect: Connect,
    /// The folder of page overrides, if any.
    pub templates_dir: Option<PathBuf>,
    /// Whether the success page lists what the user shared.
    pub show_shared: bool,
    /// The app's name, logo and colour on the pages.
    pub branding: Branding,
    /// The Notion API proxy's limits.
    pub proxy: ProxyPolicy,
}

/// `[server]`'s limits, checked.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// To send a request's headers, or to start the next request on a kept-alive connection.
    pub header_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections one client address may hold at once (trusted proxies excepted).
    pub max_connections_per_client: usize,
}

/// `[lifecycle]`, checked.
#[derive(Debug, Clone, Copy)]
pub struct LifecyclePolicy {
    /// A forced refresh this soon after the last one returns that one's token instead.
    pub min_refresh_interval: Duration,
    /// Background refresh of tokens older than this; `None` is off.
    pub refresh_older_than: Option<Duration>,
    /// Background introspection every this often; `None` is off.
    pub check_interval: Option<Duration>,
}

impl Config {
    /// Where Notion sends the browser back: `public_url` + `base_path` + `/callback`.
    pub fn redirect_uri(&self) -> Url {
        self.public_link("/callback")
    }

    /// A public URL for one of this server's paths.
    pub fn public_link(&self, path: &str) -> Url {
        let mut url = self.public_url.clone();
        let prefix = url.path().trim_end_matches('/').to_owned();
        url.set_path(&format!("{prefix}{}{path}", self.base_path));
        url
    }

    /// The emulator's origin when Notion is one on this machine over plain http: the workspace
    /// icons it hands out load from there.
    pub fn local_notion_origin(&self) -> Option<String> {
        let url = &self.notion.api_base_url;
        (url.scheme() == "http" && is_loopback_host(url))
            .then(|| url.origin().ascii_serialization())
    }

    /// Whether cookies must be `Secure`.
    pub fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

/// Reads the configuration at `path` (or the environment alone) and checks it: every problem
/// at once, those found reading (unknown keys, wrong types) and those found checking.
/// `base_dir` anchors relative file paths.
///
/// # Errors
/// Every problem found.
pub fn load(path: Option<&Path>, base_dir: &Path) -> Result<Config, ConfigError> {
    load_with(path, base_dir, Placeholders::Allow)
}

/// Whether values `init` wrote for the operator to replace are problems.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholders {
    /// They are reported with every other problem: `check`.
    Refuse,
    /// They are not problems here: the server may still be of use against an emulator.
    Allow,
}

/// [`load`], with placeholders refused or allowed.
///
/// # Errors
/// Every problem found.
pub fn load_with(
    path: Option<&Path>,
    base_dir: &Path,
    placeholders: Placeholders,
) -> Result<Config, ConfigError> {
    let mut read = reading::read_settings(path)?;
    let mut problems = std::mem::take(&mut read.problems);
    let placeholders = match placeholders {
        Placeholders::Refuse => placeholders::placeholders(
            read.settings.notion.client_id.as_deref(),
            read.settings.server.public_url.as_deref(),
        ),
        Placeholders::Allow => Vec::new(),
    };
    let checked = std::mem::take(&mut read.settings).validate(base_dir);
    let config = match checked {
        Ok(config) => Some(config),
        Err(ConfigError(found)) => {
            problems.extend(found.into_iter().filter(|problem| !read.is_about_unreadable(problem)));
            None
        }
    };
    // A key already found wrong (an http public_url at the placeholder host) is reported once.
    let fresh: Vec<Problem> = placeholders
        .into_iter()
        .filter(|placeholder| !problems.iter().any(|problem| problem.key == placeholder.key))
        .collect();
    problems.extend(fresh);
    match config {
        Some(config) if problems.is_empty() => Ok(config),
        _ => Err(ConfigError(problems)),
    }
}

impl Settings {
    /// Checks everything and resolves files and keys. `base_dir` anchors relative file paths.
    ///
    /// # Errors
    /// Every problem found, not just the first.
    pub fn validate(self, base_dir: &Path) -> Result<Config, ConfigError> {
        let mut problems = Problems::default();
        let api_base_url =
            problems.check("notion.api_base_url", check_api_base_url(&self.notion.api_base_url));
        // Plain http is fine for a server whose Notion is an emulator on this machine.
        let notion_is_local = api_base_url.as_ref().is_some_and(is_loopback_host);
        let server = server(&self.server, notion_is_local, &mut problems);
        let header_timeout = problems.check(
            "server.header_timeout_seconds",
            in_range(self.server.header_timeout_seconds, 1..=300, "seconds"),
        );
        let max_connections = problems.check(
            "server.max_connections",
            in_range(self.server.max_connections, 1..=1_000_000, "connections"),
        );
        let per_client = problems.check(
            "server.max_connections_per_client",
            in_range(self.server.max_connections_per_client, 1..=1_000_000, "connections"),
        );
        let clients = clients::validate(&self.server, &self.rate_limit, &mut problems);
        let metrics_bind = metrics_bind(&self.server, &mut problems);
        let https = https::validate(
            &self.tls,
            self.acme.as_ref(),
            &self.server,
            base_dir,
            server.as_ref().map(|(_, url, _)| url),
            &mut problems,
        );
        let notion = notion(&self.notion, api_base_url, base_dir, &mut problems);
        let storage_url = storage(&self.storage.url, base_dir, &mut problems);
        let keys = master_keys(&self.security, base_dir, &mut problems);
        let state_ttl = problems.check(
            "security.state_ttl_seconds",
            in_range(self.security.state_ttl_seconds, 60..=3600, "seconds"),
        );
        let lifecycle = lifecycle(&self.lifecycle, &mut problems);
        let (targets, delivery) = delivery::validate(&self, base_dir, &mut problems);
        let connect = connect::validate(&self.connect, base_dir, &mut problems);
        let templates_dir = self.pages.templates_dir.as_ref().map(|dir| base_dir.join(dir));
        if let Some(Err(message)) = templates_dir.as_deref().map(crate::templates::check_overrides)
        {
            problems.add("pages.templates_dir", message);
        }
        let documents = documents::load_all(&self.documents, base_dir, &mut problems);
        let branding = branding::validate(&self.branding, base_dir, &mut problems);
        let proxy = proxy::validate(&self.proxy, &mut problems);

        let (
            Some((bind, public_url, base_path)),
            Some(notion),
            Some(storage_url),
            Some((master_key, previous_master_keys)),
            Some(state_ttl),
            Some(lifecycle),
            Some(delivery),
            Some(header_timeout),
            Some(max_connections),
            Some(per_client),
            Some(clients),
            Some((tls, http_bind)),
            Some(metrics_bind),
            Some(proxy),
        ) = (
            server,
            notion,
            storage_url,
            keys,
            state_ttl,
            lifecycle,
            delivery,
            header_timeout,
            max_connections,
            per_client,
            clients,
            https,
            metrics_bind,
            proxy,
        )
        else {
            return problems.or_value(None);
        };
        problems.or_value(Some(Config {
            bind,
            metrics_bind,
            limits: ConnectionLimits {
                header_timeout: Duration::from_secs(header_timeout),
                max_connections: usize::try_from(max_connections).unwrap_or(usize::MAX),
                max_connections_per_client: usize::try_from(per_client).unwrap_or(usize::MAX),
            },
            clients,
            tls,
            http_bind,
            public_url,
            base_path,
            notion,
            storage_url,
            master_key,
            previous_master_keys,
            state_ttl: Duration::from_secs(state_ttl),
            allow_notion_initiated: self.security.allow_notion_initiated,
            lifecycle,
            documents,
            targets,
            delivery,
            connect,
            templates_dir,
            show_shared: self.pages.show_shared,
            branding,
            proxy,
        }))
    }
}

/// `Some(None)` is metrics off; `None` a problem reported.
fn metrics_bind(settings: &ServerSettings, problems: &mut Problems) -> Option<Option<SocketAddr>> {
    let Some(text) = settings.metrics_bind.as_deref() else { return Some(None) };
    let parsed = text
        .parse::<SocketAddr>()
        .map_err(|_| format!("`{text}` is not an address such as 127.0.0.1:9090"));
    let address = problems.check("server.metrics_bind", parsed)?;
    // Metrics tell how many connections there are and how the server is doing: not for users.
    if settings.bind.parse::<SocketAddr>().is_ok_and(|bind| bind.port() == address.port()) {
        problems.add(
            "server.metrics_bind",
            "must be another port than server.bind: metrics are never served on the public address",
        );
        return None;
    }
    Some(Some(address))
}

fn server(
    settings: &ServerSettings,
    notion_is_local: bool,
    problems: &mut Problems,
) -> Option<(SocketAddr, Url, String)> {
    let bind = problems.check(
        "server.bind",
        settings.bind.parse::<SocketAddr>().map_err(|_| {
            format!("`{}` is not an address such as 127.0.0.1:8080 or 0.0.0.0:8080", settings.bind)
        }),
    );
    let public_url = match &settings.public_url {
        None => {
            problems.add("server.public_url", "is required: the https address users reach this server at, e.g. https://notion.example.com (the redirect URI is built from it)");
            None
        }
        Some(text) => problems.check("server.public_url", check_public_url(text, notion_is_local)),
    };
    let base_path = problems.check("server.base_path", check_base_path(&settings.base_path));
    Some((bind?, public_url?, base_path?))
}

fn notion(
    settings: &NotionSettings,
    api_base_url: Option<Url>,
    base_dir: &Path,
    problems: &mut Problems,
) -> Option<ClientConfig> {
    let client_id = match settings.client_id.as_deref().map(str::trim) {
        None | Some("") => {
            problems.add("notion.client_id", "is required: copy the OAuth client ID from your integration's page in Notion's Developer portal (or set NOTION_CLIENT_ID)");
            None
        }
        Some(id) => Some(ClientId::new(id)),
    };
    let client_secret = secret_from(
        "notion.client_secret",
        settings.client_secret.as_ref(),
        settings.client_secret_file.as_deref(),
        base_dir,
        Secret::required(
            "copy the OAuth client secret from the Developer portal (or set NOTION_CLIENT_SECRET)",
        ),
        problems,
    )
    .map(|secret| ClientSecret::new(secret.expose_secret()));
    if !is_notion_version(&settings.version) {
        problems.add(
            "notion.version",
            format!(
                "`{}` is not a Notion-Version date such as {DEFAULT_NOTION_VERSION}",
                settings.version
            ),
        );
    }
    let timeout =
        problems.check("notion.timeout_seconds", in_range(settings.timeout_seconds, 1..=120, ""));
    let mut notion = ClientConfig::new(client_id?, client_secret?, api_base_url?);
    notion.notion_version.clone_from(&settings.version);
    notion.timeout = Duration::from_secs(timeout?);
    Some(notion)
}

fn storage(url: &str, base_dir: &Path, problems: &mut Problems) -> Option<String> {
    if url.contains(":memory:") || url.contains("mode=memory") {
        problems.add("storage.url", "an in-memory SQLite database is not supported (each pooled connection would get its own); use a file, e.g. sqlite://notion-oauth-handler.db");
        return None;
    }
    if Backend::of(url).is_none() {
        problems.add(
            "storage.url",
            "must be a SQLite URL such as sqlite://notion-oauth-handler.db, or a PostgreSQL one such as postgres://user@db.example.com/notion",
        );
        return None;
    }
    Some(resolve_sqlite_url(url, base_dir))
}

fn master_keys(
    settings: &SecuritySettings,
    base_dir: &Path,
    problems: &mut Problems,
) -> Option<(MasterKey, Vec<MasterKey>)> {
    let how = "generate one with `openssl rand -base64 32`";
    let active = secret_from(
        "security.master_key",
        settings.master_key.as_ref(),
        settings.master_key_file.as_deref(),
        base_dir,
        Secret::required("generate one with `openssl rand -base64 32` (or set NOH_MASTER_KEY) and keep it safe: without it stored tokens cannot be read"),
        problems,
    )
    .and_then(|text| {
        let parsed = MasterKey::from_base64(&text).map_err(|message| format!("{message}; {how}"));
        problems.check("security.master_key", parsed)
    });
    let previous: Vec<Option<MasterKey>> = settings
        .previous_master_keys
        .iter()
        .enumerate()
        .map(|(index, text)| {
            let key = format!("security.previous_master_keys[{index}]");
            problems.check(&key, MasterKey::from_base64(text))
        })
        .collect();
    Some((active?, previous.into_iter().collect::<Option<_>>()?))
}

fn lifecycle(settings: &LifecycleSettings, problems: &mut Problems) -> Option<LifecyclePolicy> {
    let min_refresh_interval = problems.check(
        "lifecycle.min_refresh_interval_seconds",
        in_range(settings.min_refresh_interval_seconds, 0..=300, "seconds"),
    );
    // 0 is off; anything else is a period, and a short one would hammer Notion.
    let mut period = |key: &str, seconds: u64| {
        let checked = match seconds {
            0 => Ok(None),
            1..60 => Err("must be 0 (off) or at least 60 seconds".to_owned()),
            _ => Ok(Some(Duration::from_secs(seconds))),
        };
        problems.check(key, checked)
    };
    let refresh_older_than =
        period("lifecycle.refresh_older_than_seconds", settings.refresh_older_than_seconds);
    let check_interval =
        period("lifecycle.check_interval_seconds", settings.check_interval_seconds);
    Some(LifecyclePolicy {
        min_refresh_interval: Duration::from_secs(min_refresh_interval?),
        refresh_older_than: refresh_older_than?,
        check_interval: check_interval?,
    })
}
