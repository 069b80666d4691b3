//! `[[webhooks]]`, `[command_hook]` and `[delivery]`: where each connection event is sent.

use std::path::Path;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

/// Every event a target can ask for.
pub const EVENT_TYPES: [&str; 6] = [
    "connection.created",
    "connection.updated",
    "connection.refreshed",
    "connection.needs_reauth",
    "connection.revoked",
    "connection.denied",
];

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookSettings {
    /// A short name, shown in delivery listings; stable across restarts.
    pub name: String,
    pub url: String,
    pub secret: Option<SecretString>,
    pub secret_file: Option<std::path::PathBuf>,
    /// Which events; all of them when absent.
    pub events: Option<Vec<String>>,
    /// Add the connection's current tokens to each body (https or loopback URLs only).
    #[serde(default)]
    pub include_tokens: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandHookSettings {
    /// The program and its arguments; the event's JSON arrives on its standard input.
    pub command: Vec<String>,
    #[serde(default = "default_command_timeout")]
    pub timeout_seconds: u64,
    pub events: Option<Vec<String>>,
    /// Environment variables passed on to the hook (beyond PATH, HOME and LANG).
    #[serde(default)]
    pub env: Vec<String>,
}

fn default_command_timeout() -> u64 {
    30
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DeliverySettings {
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: u32,
    /// The first retry waits about this long; each next one twice as long (capped at an hour).
    pub retry_base_ms: u64,
    /// Limit for one webhook call.
    pub timeout_seconds: u64,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self { max_attempts: 12, retry_base_ms: 5_000, timeout_seconds: 10 }
    }
}

/// Where events go, checked.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub events: Vec<String>,
    pub kind: TargetKind,
}

#[derive(Clone, Debug)]
pub enum TargetKind {
    Webhook {
        url: Url,
        secret: SecretString,
        include_tokens: bool,
    },
    Command {
        program: String,
        args: Vec<String>,
        env: Vec<String>,
        timeout: Duration,
    },
    /// A Rust function in the same process (see [`crate::embed`]).
    InProcess(HookHandle),
}

/// An in-process hook, for the target list.
#[derive(Clone)]
pub struct HookHandle(pub std::sync::Arc<dyn crate::hooks::ConnectionHook>);

impl std::fmt::Debug for HookHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HookHandle")
    }
}

/// Name of the command hook in delivery listings.
pub const COMMAND_TARGET: &str = "command";

#[derive(Clone, Debug)]
pub struct Deliveries {
    pub targets: Vec<Target>,
    pub max_attempts: u32,
    pub retry_base: Duration,
    pub timeout: Duration,
}

impl Deliveries {
    /// No targets: events are recorded but delivered nowhere.
    pub fn none() -> Self {
        let defaults = DeliverySettings::default();
        Self {
            targets: Vec::new(),
            max_attempts: defaults.max_attempts,
            retry_base: Duration::from_millis(defaults.retry_base_ms),
            timeout: Duration::from_secs(defaults.timeout_seconds),
        }
    }

    /// The names of the targets that want `event_type`.
    pub fn targets_for(&self, event_type: &str) -> impl Iterator<Item = &str> {
        self.targets
            .iter()
            .filter(move |t| t.events.iter().any(|e| e == event_type))
            .map(|t| t.name.as_str())
    }

    pub fn target(&self, name: &str) -> Option<&Target> {
        self.targets.iter().find(|t| t.name == name)
    }
}

fn check_events(
    key: &str,
    events: Option<&Vec<String>>,
    problems: &mut Vec<(String, String)>,
) -> Vec<String> {
    let Some(events) = events else {
        return EVENT_TYPES.iter().map(|e| (*e).to_owned()).collect();
    };
    for event in events {
        if !EVENT_TYPES.contains(&event.as_str()) {
            problems.push((
                key.into(),
                format!("`{event}` is not an event; use some of {}", EVENT_TYPES.join(", ")),
            ));
        }
    }
    events.clone()
}

/// A target's name: letters, digits, `-`, `_` or `.`, not the command hook's, not taken.
///
/// # Errors
/// What is wrong with it.
pub fn check_target_name<'a>(
    name: &str,
    taken: impl IntoIterator<Item = &'a str>,
) -> Result<(), String> {
    if name.is_empty()
        || name == COMMAND_TARGET
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
    {
        return Err(format!(
            "`{name}` must be letters, digits, - _ or . and not `{COMMAND_TARGET}`"
        ));
    }
    if taken.into_iter().any(|t| t == name) {
        return Err(format!("`{name}` is already the name of another delivery target"));
    }
    Ok(())
}

/// Checks the delivery sections, adding `(key, message)` problems.
pub fn validate(
    webhooks: &[WebhookSettings],
    command_hook: Option<&CommandHookSettings>,
    settings: &DeliverySettings,
    base_dir: &Path,
    problems: &mut Vec<(String, String)>,
) -> Deliveries {
    let mut targets = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (index, webhook) in webhooks.iter().enumerate() {
        let key = |field: &str| format!("webhooks[{index}].{field}");
        let name = webhook.name.trim();
        if let Err(message) = check_target_name(name, names.iter().copied()) {
            problems.push((key("name"), message));
        }
        names.push(name);
        let url = match Url::parse(&webhook.url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
            _ => {
                problems.push((key("url"), format!("`{}` is not an http(s) URL", webhook.url)));
                None
            }
        };
        if webhook.include_tokens
            && url
                .as_ref()
                .is_some_and(|url| url.scheme() != "https" && !super::is_loopback_host(url))
        {
            problems.push((key("include_tokens"), "tokens are sent only to https URLs (or loopback): fix the URL or turn include_tokens off".into()));
        }
        let secret = match (&webhook.secret, &webhook.secret_file) {
            (Some(secret), None) if secret.expose_secret().trim().len() >= 16 => {
                Some(secret.clone())
            }
            (Some(_), None) => {
                problems.push((
                    key("secret"),
                    "must be at least 16 characters: e.g. `openssl rand -hex 32`".into(),
                ));
                None
            }
            (None, Some(path)) => match std::fs::read_to_string(base_dir.join(path)) {
                Ok(text) if text.trim().len() >= 16 => {
                    Some(SecretString::from(text.trim().to_owned()))
                }
                Ok(_) => {
                    problems.push((key("secret_file"), "holds fewer than 16 characters".into()));
                    None
                }
                Err(error) => {
                    problems.push((
                        key("secret_file"),
                        format!("cannot read {}: {error}", path.display()),
                    ));
                    None
                }
            },
            (Some(_), Some(_)) => {
                problems.push((
                    key("secret"),
                    "is set both inline and in secret_file; keep one".into(),
                ));
                None
            }
            (None, None) => {
                problems.push((
                    key("secret"),
                    "is required: receivers verify each delivery with it (`openssl rand -hex 32`)"
                        .into(),
                ));
                None
            }
        };
        let events = check_events(&key("events"), webhook.events.as_ref(), problems);
        if let (Some(url), Some(secret)) = (url, secret) {
            targets.push(Target {
                name: name.to_owned(),
                events,
                kind: TargetKind::Webhook { url, secret, include_tokens: webhook.include_tokens },
            });
        }
    }
    if let Some(hook) = command_hook {
        let events = check_events("command_hook.events", hook.events.as_ref(), problems);
        match hook.command.split_first() {
            Some((program, args)) if !program.trim().is_empty() => {
                if !(1..=600).contains(&hook.timeout_seconds) {
                    problems.push((
                        "command_hook.timeout_seconds".into(),
                        "must be between 1 and 600".into(),
                    ));
                }
                targets.push(Target {
                    name: COMMAND_TARGET.into(),
                    events,
                    kind: TargetKind::Command {
                        program: program.clone(),
                        args: args.to_vec(),
                        env: hook.env.clone(),
                        timeout: Duration::from_secs(hook.timeout_seconds),
                    },
                });
            }
            _ => problems.push((
                "command_hook.command".into(),
                "must name a program, e.g. [\"/usr/local/bin/on-notion-event\"]".into(),
            )),
        }
    }
    if !(1..=100).contains(&settings.max_attempts) {
        problems.push(("delivery.max_attempts".into(), "must be between 1 and 100".into()));
    }
    if !(1..=120).contains(&settings.timeout_seconds) {
        problems.push(("delivery.timeout_seconds".into(), "must be between 1 and 120".into()));
    }
    Deliveries {
        targets,
        max_attempts: settings.max_attempts,
        retry_base: Duration::from_millis(settings.retry_base_ms.max(1)),
        timeout: Duration::from_secs(settings.timeout_seconds),
    }
}
