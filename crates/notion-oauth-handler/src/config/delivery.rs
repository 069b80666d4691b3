//! `[[webhooks]]`, `[command_hook]` and `[delivery]`: where each connection event is sent, and
//! how often a failed delivery is tried again.

use std::path::Path;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

use super::checks::{Secret, in_range, is_secure_or_loopback, secret_from};
use super::problems::Problems;
use super::settings::{CommandHookSettings, DeliverySettings, Settings, WebhookSettings};
use crate::domain::EventType;

/// A target events are delivered to, checked.
#[derive(Clone, Debug)]
pub struct Target {
    /// Its name in delivery listings, which outbox rows are queued under: renaming a target
    /// leaves its queued rows to nobody.
    pub name: String,
    /// The events it hears.
    pub events: Vec<EventType>,
    /// How it is reached.
    pub kind: TargetKind,
}

/// How a target is reached.
#[derive(Clone, Debug)]
pub enum TargetKind {
    /// A signed POST of the event's JSON.
    Webhook {
        /// The receiver; https, or loopback, whenever the body carries tokens.
        url: Url,
        /// The key receivers check the `Notion-OAuth-Signature` header with.
        secret: SecretString,
        /// Whether the body carries the connection's current tokens, read at send time.
        include_tokens: bool,
    },
    /// A program run once per event, the event's JSON on its standard input.
    Command {
        /// Run without a shell, so nothing in an event is ever interpreted.
        program: String,
        /// Passed as given.
        args: Vec<String>,
        /// Variables passed on from the server's environment; nothing else is (the server's
        /// holds the master key and the client secret).
        env: Vec<String>,
        /// How long one run may take before it is stopped and counted as failed.
        timeout: Duration,
    },
}

/// Name of the command hook in delivery listings.
pub(super) const COMMAND_TARGET: &str = "command";

/// `[delivery]`, checked: how failed deliveries are retried.
#[derive(Clone, Copy, Debug)]
pub struct DeliveryPolicy {
    /// Attempts before a delivery is dead-lettered.
    pub max_attempts: u32,
    /// The first retry waits about this long; each next one twice as long (capped at an hour).
    pub retry_base: Duration,
    /// Limit for one webhook call or in-process hook.
    pub timeout: Duration,
    /// Delivered and dead deliveries older than this are deleted.
    pub retention: Duration,
    /// Deliveries under way at once in this process.
    pub concurrency: usize,
}

fn check_events(
    key: &str,
    events: Option<&Vec<String>>,
    problems: &mut Problems,
) -> Vec<EventType> {
    let Some(events) = events else {
        return EventType::ALL.to_vec();
    };
    events
        .iter()
        .filter_map(|event| {
            problems
                .check(key, event.parse().map_err(|e: crate::domain::UnknownWord| e.to_string()))
        })
        .collect()
}

/// A target's name: letters, digits, `-`, `_` or `.`, not the command hook's, not taken.
///
/// # Errors
/// What is wrong with it.
pub(crate) fn check_target_name<'a>(
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

/// Checks `[[webhooks]]`, `[command_hook]` and `[delivery]`: the targets, and how deliveries
/// to them are retried.
pub(super) fn validate(
    settings: &Settings,
    base_dir: &Path,
    problems: &mut Problems,
) -> (Vec<Target>, Option<DeliveryPolicy>) {
    let mut targets = Vec::new();
    let mut names: Vec<&str> = Vec::new();
    for (index, webhook) in settings.webhooks.iter().enumerate() {
        let name = webhook.name.trim();
        // A clashing name is reported, and the target still checked for its other problems.
        if let Err(message) = check_target_name(name, names.iter().copied()) {
            problems.add(format!("webhooks[{index}].name"), message);
        }
        names.push(name);
        targets.extend(webhook_target(index, webhook, base_dir, problems));
    }
    if let Some(hook) = &settings.command_hook {
        targets.extend(command_target(hook, problems));
    }
    (targets, policy(&settings.delivery, problems))
}

fn policy(delivery: &DeliverySettings, problems: &mut Problems) -> Option<DeliveryPolicy> {
    let max_attempts = problems
        .check("delivery.max_attempts", in_range(delivery.max_attempts.into(), 1..=100, ""));
    let timeout = problems
        .check("delivery.timeout_seconds", in_range(delivery.timeout_seconds, 1..=120, "seconds"));
    let retention = problems
        .check("delivery.retention_days", in_range(delivery.retention_days, 1..=3650, "days"));
    let concurrency = problems
        .check("delivery.concurrency", in_range(delivery.concurrency, 1..=64, "deliveries"));
    Some(DeliveryPolicy {
        concurrency: usize::try_from(concurrency?).ok()?,
        max_attempts: u32::try_from(max_attempts?).ok()?,
        retry_base: Duration::from_millis(delivery.retry_base_ms.max(1)),
        timeout: Duration::from_secs(timeout?),
        retention: Duration::from_secs(retention? * 24 * 3600),
    })
}

fn webhook_target(
    index: usize,
    webhook: &WebhookSettings,
    base_dir: &Path,
    problems: &mut Problems,
) -> Option<Target> {
    let key = |field: &str| format!("webhooks[{index}].{field}");
    let url = match Url::parse(&webhook.url) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Some(url),
        _ => {
            problems.add(key("url"), format!("`{}` is not an http(s) URL", webhook.url));
            None
        }
    };
    if webhook.include_tokens && url.as_ref().is_some_and(|url| !is_secure_or_loopback(url)) {
        problems.add(key("include_tokens"), "tokens are sent only to https URLs (or loopback): fix the URL or turn include_tokens off");
    }
    let secret = secret_from(
        &key("secret"),
        webhook.secret.as_ref(),
        webhook.secret_file.as_deref(),
        base_dir,
        Secret::required("receivers verify each delivery with it (`openssl rand -hex 32`)")
            .min_chars(16),
        problems,
    );
    let events = check_events(&key("events"), webhook.events.as_ref(), problems);
    Some(Target {
        name: webhook.name.trim().to_owned(),
        events,
        kind: TargetKind::Webhook {
            url: url?,
            secret: secret?,
            include_tokens: webhook.include_tokens,
        },
    })
}

fn command_target(hook: &CommandHookSettings, problems: &mut Problems) -> Option<Target> {
    let events = check_events("command_hook.events", hook.events.as_ref(), problems);
    let timeout =
        problems.check("command_hook.timeout_seconds", in_range(hook.timeout_seconds, 1..=600, ""));
    let Some((program, args)) = hook.command.split_first().filter(|(p, _)| !p.trim().is_empty())
    else {
        problems.add(
            "command_hook.command",
            "must name a program, e.g. [\"/usr/local/bin/on-notion-event\"]",
        );
        return None;
    };
    Some(Target {
        name: COMMAND_TARGET.into(),
        events,
        kind: TargetKind::Command {
            program: program.clone(),
            args: args.to_vec(),
            env: hook.env.clone(),
            timeout: Duration::from_secs(timeout?),
        },
    })
}
