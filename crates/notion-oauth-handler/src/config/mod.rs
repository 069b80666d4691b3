//! Configuration: a TOML file, then environment variables, checked once into a [`Config`].
//!
//! Where events are delivered is its own file: [`delivery`].
//!
//! `NOH_<SECTION>__<KEY>` overrides any key (`NOH_SERVER__BIND`); `NOTION_CLIENT_ID`,
//! `NOTION_CLIENT_SECRET` and `NOH_MASTER_KEY` are accepted as well, because that is how users of
//! other Notion tools already keep them. Every secret can come from a file instead (`*_file`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use notion_oauth::{
    ClientConfig, ClientId, ClientSecret, DEFAULT_API_BASE_URL, DEFAULT_NOTION_VERSION,
};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::vault::{MasterKey, Vault};

mod checks;
pub mod connect;
pub mod delivery;
mod documents;

pub use checks::{Backend, is_loopback_host, resolve_sqlite_url};
use checks::{
    check_api_base_url, check_base_path, check_public_url, is_notion_version, secret_from,
};
use documents::load_document;
pub use documents::{Document, DocumentSettings};

pub use delivery::{Deliveries, Target, TargetKind};

/// The configuration file as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    #[serde(default)]
    pub server: ServerSettings,
    #[serde(default)]
    pub notion: NotionSettings,
    #[serde(default)]
    pub storage: StorageSettings,
    #[serde(default)]
    pub security: SecuritySettings,
    #[serde(default)]
    pub lifecycle: LifecycleSettings,
    #[serde(default)]
    pub documents: Vec<DocumentSettings>,
    #[serde(default)]
    pub webhooks: Vec<delivery::WebhookSettings>,
    pub command_hook: Option<delivery::CommandHookSettings>,
    #[serde(default)]
    pub delivery: delivery::DeliverySettings,
    #[serde(default)]
    pub connect: connect::ConnectSettings,
    #[serde(default)]
    pub pages: PagesSettings,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PagesSettings {
    /// A folder whose `landing.html`, `success.html`, `denied.html`, `error.html` or `base.html`
    /// replace the built-in ones.
    pub templates_dir: Option<PathBuf>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
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

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub bind: String,
    pub public_url: Option<String>,
    pub base_path: String,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self { bind: "127.0.0.1:8080".into(), public_url: None, base_path: "/".into() }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotionSettings {
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub client_secret_file: Option<PathBuf>,
    pub api_base_url: String,
    pub version: String,
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

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSettings {
    pub url: String,
}

impl Default for StorageSettings {
    fn default() -> Self {
        Self { url: "sqlite://notion-oauth-handler.db".into() }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySettings {
    pub master_key: Option<SecretString>,
    pub master_key_file: Option<PathBuf>,
    pub previous_master_keys: Vec<SecretString>,
    pub state_ttl_seconds: u64,
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

/// One thing wrong with the configuration: which key, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem found, so an operator fixes them in one go.
#[derive(Debug, thiserror::Error)]
#[error("the configuration has {} problem(s):\n{}", .0.len(), render(.0))]
pub struct ConfigError(pub Vec<Problem>);

fn render(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("  - {p}")).collect::<Vec<_>>().join("\n")
}

/// The checked configuration the server runs with.
#[derive(Debug)]
pub struct Config {
    pub bind: SocketAddr,
    pub public_url: Url,
    /// `""` for the root, else `/prefix` without a trailing slash.
    pub base_path: String,
    pub notion: ClientConfig,
    pub storage_url: String,
    pub vault: Vault,
    pub state_ttl: Duration,
    pub allow_notion_initiated: bool,
    pub min_refresh_interval_secs: i64,
    /// Background refresh of tokens older than this; `None` is off.
    pub refresh_older_than: Option<Duration>,
    /// Background introspection every this often; `None` is off.
    pub check_interval: Option<Duration>,
    pub documents: Vec<Document>,
    /// Where connection events are delivered.
    pub deliveries: Deliveries,
    /// Where the browser goes afterwards, and which links to `/connect` are trusted.
    pub connect: connect::Connect,
    /// The folder of page overrides, if any.
    pub templates_dir: Option<PathBuf>,
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

    /// Whether cookies must be `Secure`.
    pub fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }
}

/// Reads `path` (if given) and the environment into [`Settings`].
///
/// # Errors
/// Unreadable TOML, unknown keys and wrong types, each as a [`Problem`].
pub fn load_settings(path: Option<&Path>) -> Result<Settings, ConfigError> {
    let mut figment = Figment::new();
    if let Some(path) = path {
        if !path.exists() {
            return Err(ConfigError(vec![Problem {
                key: "--config".into(),
                message: format!(
                    "{} does not exist; create one with `notion-oauth-handler init`",
                    path.display()
                ),
            }]));
        }
        figment = figment.merge(Toml::file_exact(path));
    }
    let figment = figment
        .merge(Env::raw().only(&["NOTION_CLIENT_ID"]).map(|_| "notion.client_id".into()))
        .merge(Env::raw().only(&["NOTION_CLIENT_SECRET"]).map(|_| "notion.client_secret".into()))
        .merge(Env::raw().only(&["NOH_MASTER_KEY"]).map(|_| "security.master_key".into()))
        // Only NOH_SECTION__KEY names are settings, so NOH_MASTER_KEY and NOH_LOG_FORMAT are not
        // mistaken for unknown top-level keys.
        .merge(Env::prefixed("NOH_").filter(|key| key.as_str().contains("__")).split("__"));
    figment
        .extract()
        .map_err(|error| ConfigError(error.into_iter().map(describe_load_error).collect()))
}

/// A figment error as a problem that never quotes a value: figment quotes the value it found, and
/// a TOML syntax error quotes the source line, either of which can be a secret.
fn describe_load_error(error: figment::Error) -> Problem {
    use figment::error::Kind;
    let key = if error.path.is_empty() { "(file)".into() } else { error.path.join(".") };
    let mut message = match &error.kind {
        Kind::InvalidType(_, expected) => format!("has the wrong type: expected {expected}"),
        Kind::InvalidValue(_, expected) => format!("has an invalid value: expected {expected}"),
        Kind::Message(text) => {
            // TOML syntax errors read "TOML parse error at line L, column C", the offending
            // line, a caret, then the reason: keep the first and last lines only.
            let lines: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            match (lines.first(), lines.last()) {
                (Some(first), Some(last)) if lines.len() > 1 => format!("{first}: {last}"),
                _ => text.clone(),
            }
        }
        other => other.to_string(),
    };
    let origin = error
        .metadata
        .as_ref()
        .map(|m| m.source.as_ref().map_or_else(|| m.name.to_string(), ToString::to_string));
    if let Some(origin) = origin {
        message.push_str(&format!(" (in {origin})"));
    }
    Problem { key, message }
}

impl Settings {
    /// Checks everything and resolves files and keys. `base_dir` anchors relative file paths.
    ///
    /// # Errors
    /// Every problem found, not just the first.
    pub fn validate(self, base_dir: &Path) -> Result<Config, ConfigError> {
        let mut problems = Vec::new();
        let mut problem = |key: &str, message: String| {
            problems.push(Problem { key: key.into(), message });
        };

        let bind = self.server.bind.parse::<SocketAddr>().map_err(|_| {
            problem(
                "server.bind",
                format!(
                    "`{}` is not an address such as 127.0.0.1:8080 or 0.0.0.0:8080",
                    self.server.bind
                ),
            )
        });

        let api_base_url = check_api_base_url(&self.notion.api_base_url)
            .map_err(|m| problem("notion.api_base_url", m));
        let notion_is_local = api_base_url.as_ref().is_ok_and(is_loopback_host);
        let public_url = match &self.server.public_url {
            None => {
                problem("server.public_url", "is required: the https address users reach this server at, e.g. https://notion.example.com (the redirect URI is built from it)".into());
                Err(())
            }
            Some(text) => check_public_url(text, notion_is_local)
                .map_err(|message| problem("server.public_url", message)),
        };

        let base_path =
            check_base_path(&self.server.base_path).map_err(|m| problem("server.base_path", m));

        let client_id = match self.notion.client_id.as_deref().map(str::trim) {
            None | Some("") => {
                problem("notion.client_id", "is required: copy the OAuth client ID from your integration's page in Notion's Developer portal (or set NOTION_CLIENT_ID)".into());
                Err(())
            }
            Some(id) => Ok(ClientId::new(id)),
        };
        let client_secret = secret_from(
            "notion.client_secret",
            self.notion.client_secret.as_ref(),
            self.notion.client_secret_file.as_deref(),
            base_dir,
            "copy the OAuth client secret from the Developer portal (or set NOTION_CLIENT_SECRET)",
        )
        .map(|secret| ClientSecret::new(secret.expose_secret()))
        .map_err(|(key, message)| problem(&key, message));

        let version_ok = is_notion_version(&self.notion.version);
        if !version_ok {
            problem(
                "notion.version",
                format!(
                    "`{}` is not a Notion-Version date such as {DEFAULT_NOTION_VERSION}",
                    self.notion.version
                ),
            );
        }
        if !(1..=120).contains(&self.notion.timeout_seconds) {
            problem("notion.timeout_seconds", "must be between 1 and 120".into());
        }

        let in_memory =
            self.storage.url.contains(":memory:") || self.storage.url.contains("mode=memory");
        if in_memory {
            problem("storage.url", "an in-memory SQLite database is not supported (each pooled connection would get its own); use a file, e.g. sqlite://notion-oauth-handler.db".into());
        }
        let storage_ok = Backend::of(&self.storage.url).is_some() && !in_memory;
        if !storage_ok && !in_memory {
            problem(
                "storage.url",
                "must be a SQLite URL such as sqlite://notion-oauth-handler.db, or a PostgreSQL one such as postgres://user@db.example.com/notion".into(),
            );
        }

        let master_key = secret_from(
            "security.master_key",
            self.security.master_key.as_ref(),
            self.security.master_key_file.as_deref(),
            base_dir,
            "generate one with `openssl rand -base64 32` (or set NOH_MASTER_KEY) and keep it safe: without it stored tokens cannot be read",
        )
        .map_err(|(key, message)| problem(&key, message))
        .and_then(|text| MasterKey::from_base64(&text).map_err(|m| problem("security.master_key", format!("{m}; generate one with `openssl rand -base64 32`"))));
        let mut previous = Vec::new();
        for (index, text) in self.security.previous_master_keys.iter().enumerate() {
            match MasterKey::from_base64(text) {
                Ok(key) => previous.push(key),
                Err(message) => {
                    problem(&format!("security.previous_master_keys[{index}]"), message)
                }
            }
        }
        if !(60..=3600).contains(&self.security.state_ttl_seconds) {
            problem("security.state_ttl_seconds", "must be between 60 and 3600 seconds".into());
        }

        if self.lifecycle.min_refresh_interval_seconds > 300 {
            problem("lifecycle.min_refresh_interval_seconds", "must be at most 300 seconds".into());
        }
        if (1..60).contains(&self.lifecycle.refresh_older_than_seconds) {
            problem(
                "lifecycle.refresh_older_than_seconds",
                "must be 0 (off) or at least 60 seconds".into(),
            );
        }
        if (1..60).contains(&self.lifecycle.check_interval_seconds) {
            problem(
                "lifecycle.check_interval_seconds",
                "must be 0 (off) or at least 60 seconds".into(),
            );
        }

        let mut section_problems = Vec::new();
        let deliveries = delivery::validate(
            &self.webhooks,
            self.command_hook.as_ref(),
            &self.delivery,
            base_dir,
            &mut section_problems,
        );
        let connect = connect::validate(&self.connect, base_dir, &mut section_problems);
        let templates_dir = self.pages.templates_dir.as_ref().map(|dir| base_dir.join(dir));
        if let Some(Err(message)) = templates_dir.as_deref().map(crate::templates::check_overrides)
        {
            section_problems.push(("pages.templates_dir".into(), message));
        }
        for (key, message) in section_problems {
            problem(&key, message);
        }

        let mut documents = Vec::new();
        for (index, document) in self.documents.iter().enumerate() {
            match load_document(document, base_dir, &documents) {
                Ok(loaded) => documents.push(loaded),
                Err((field, message)) => problem(&format!("documents[{index}].{field}"), message),
            }
        }

        match (bind, public_url, base_path, client_id, client_secret, api_base_url, master_key) {
            (
                Ok(bind),
                Ok(public_url),
                Ok(base_path),
                Ok(client_id),
                Ok(client_secret),
                Ok(api_base_url),
                Ok(master_key),
            ) if problems.is_empty() && version_ok && storage_ok => {
                let mut notion = ClientConfig::new(client_id, client_secret, api_base_url);
                notion.notion_version = self.notion.version;
                notion.timeout = Duration::from_secs(self.notion.timeout_seconds);
                Ok(Config {
                    bind,
                    public_url,
                    base_path,
                    notion,
                    storage_url: resolve_sqlite_url(&self.storage.url, base_dir),
                    vault: Vault::new(&master_key, &previous),
                    state_ttl: Duration::from_secs(self.security.state_ttl_seconds),
                    allow_notion_initiated: self.security.allow_notion_initiated,
                    min_refresh_interval_secs: i64::try_from(
                        self.lifecycle.min_refresh_interval_seconds,
                    )
                    .unwrap_or(i64::MAX),
                    refresh_older_than: (self.lifecycle.refresh_older_than_seconds > 0)
                        .then(|| Duration::from_secs(self.lifecycle.refresh_older_than_seconds)),
                    check_interval: (self.lifecycle.check_interval_seconds > 0)
                        .then(|| Duration::from_secs(self.lifecycle.check_interval_seconds)),
                    documents,
                    deliveries,
                    connect,
                    templates_dir,
                })
            }
            _ => Err(ConfigError(problems)),
        }
    }
}
