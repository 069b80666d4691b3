//! `connections …` and `api-keys …`: operator commands on the same store the server uses.

use std::sync::Arc;

use anyhow::{Context, bail};
use secrecy::ExposeSecret;

use super::{load_config, storage_url};
use crate::cli::{ApiKeysCommand, ConfigArg, ConnectionsCommand, DeliveriesCommand, KeysCommand};
use crate::config::{count, plural, redacted_url};
use crate::domain::{BotId, WorkspaceId};
use crate::lifecycle::{Coalesce, Freshness, Lifecycle, WhichTokens};
use crate::startup::{Additions, Services};
use crate::store::{self, ApiKeys, ConnectionFilter, Routing, SqlStore, Store};
use crate::vault::Vault;

/// The store alone: listing needs neither the master key nor Notion's credentials.
async fn open_store(args: &ConfigArg) -> anyhow::Result<Arc<dyn Store>> {
    let url = storage_url(args)?;
    store::open_existing(&url)
        .await
        .with_context(|| format!("cannot open the database at {}", redacted_url(&url)))
}

fn time(unix: Option<i64>) -> String {
    unix.and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| "-".into())
}

/// Prints `items` as JSON, or `empty` when there are none, or the table `table` prints.
fn print_list<T: serde::Serialize>(
    items: &[T],
    json: bool,
    empty: &str,
    table: impl FnOnce(&[T]),
) -> anyhow::Result<()> {
    if json {
        out!("{}", serde_json::to_string_pretty(items)?);
    } else if items.is_empty() {
        out!("{empty}");
    } else {
        table(items);
    }
    Ok(())
}

/// `text` in at most `width` characters, control characters escaped (see [`printable`]).
fn clip(text: &str, width: usize) -> String {
    let text = printable(text);
    if text.chars().count() <= width {
        return text;
    }
    let mut clipped: String = text.chars().take(width.saturating_sub(1)).collect();
    clipped.push('…');
    clipped
}

/// Text from Notion or an app (names, refs, messages), safe to print on a terminal: a control
/// character is shown escaped (`\u{1b}`) instead of being sent, since an escape sequence could
/// rewrite the screen or the terminal's title.
fn printable(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            let escaped = c.is_control().then(|| c.escape_default());
            escaped.into_iter().flatten().chain((!c.is_control()).then_some(c))
        })
        .collect()
}

pub(super) async fn connections(command: ConnectionsCommand) -> anyhow::Result<()> {
    match command {
        ConnectionsCommand::List { config, json, status, workspace_id, reference } => {
            let filter = ConnectionFilter {
                status,
                workspace_id: workspace_id.map(WorkspaceId::new),
                reference,
                after: None,
                limit: i64::MAX,
            };
            list_connections(&config, &filter, json).await
        }
        ConnectionsCommand::Show { bot_id, config, json } => {
            show_connection(&config, &BotId::new(bot_id), json).await
        }
        ConnectionsCommand::Refresh { bot_id, config } => {
            let bot_id = BotId::new(bot_id);
            let lifecycle = open_lifecycle(&config).await?;
            // The operator wants a pair newer than the one stored now, even a moment old.
            let seen =
                lifecycle.token(&bot_id, Freshness::Stored, WhichTokens::Access).await?.generation;
            let token = lifecycle.refresh_after(&bot_id, seen, Coalesce::OnlyNewer).await?;
            out!("Refreshed {bot_id}: the token pair is now at generation {}.", token.generation);
            Ok(())
        }
        ConnectionsCommand::Check { bot_id, config } => {
            let bot_id = BotId::new(bot_id);
            let checked = open_lifecycle(&config).await?.check(&bot_id).await?;
            out!(
                "{bot_id}: Notion reports the token {}; status {}.",
                if checked.active { "active" } else { "inactive" },
                checked.status
            );
            Ok(())
        }
        ConnectionsCommand::Revoke { bot_id, config } => {
            let bot_id = BotId::new(bot_id);
            open_lifecycle(&config).await?.revoke(&bot_id, "revoked by an operator").await?;
            out!(
                "Revoked {bot_id}: Notion no longer accepts its token, and it is no longer stored."
            );
            Ok(())
        }
    }
}

/// The lifecycle of a whole configuration: refreshing, checking and revoking need the master
/// key and Notion's credentials, and report to the configured targets.
async fn open_lifecycle(config: &ConfigArg) -> anyhow::Result<Arc<Lifecycle>> {
    let config = load_config(config)?;
    let services = Services::open(&config, Additions::default()).await?;
    Ok(services.state.lifecycle.clone())
}

async fn list_connections(
    config: &ConfigArg,
    filter: &ConnectionFilter,
    json: bool,
) -> anyhow::Result<()> {
    let connections = open_store(config).await?.list_connections(filter).await?;
    print_list(&connections, json, "No connections.", |connections| {
        out!(
            "{:<36}  {:<24}  {:<20}  {:<16}  {:<12}  UPDATED",
            "BOT ID",
            "WORKSPACE",
            "OWNER",
            "REF",
            "STATUS"
        );
        for c in connections {
            let workspace = c.workspace_name.as_deref().unwrap_or(c.workspace_id.as_str());
            let owner =
                c.owner_name.as_deref().or(c.owner_email.as_deref()).unwrap_or(&c.owner_type);
            out!(
                "{:<36}  {:<24}  {:<20}  {:<16}  {:<12}  {}",
                printable(c.bot_id.as_str()),
                clip(workspace, 24),
                clip(owner, 20),
                clip(c.reference.as_deref().unwrap_or("-"), 16),
                c.status.as_str(),
                time(Some(c.updated_at)),
            );
        }
    })
}

async fn show_connection(config: &ConfigArg, bot_id: &BotId, json: bool) -> anyhow::Result<()> {
    let store = open_store(config).await?;
    let Some(connection) = store.connection(bot_id).await? else {
        bail!("there is no connection with bot id {bot_id}; see `connections list`");
    };
    let events = store.events(bot_id, 50).await?;
    if json {
        let shown = serde_json::json!({ "connection": connection, "events": events });
        out!("{}", serde_json::to_string_pretty(&shown)?);
        return Ok(());
    }
    out!("{}", serde_json::to_string_pretty(&connection)?);
    out!("\nEVENTS (newest first)");
    for event in events {
        let request =
            event.request_id.map(|id| format!(" [Notion request {id}]")).unwrap_or_default();
        out!(
            "  {}  {:<20} {}{request}",
            time(Some(event.created_at)),
            event.kind.as_str(),
            printable(&event.message.unwrap_or_default())
        );
    }
    Ok(())
}

pub(super) async fn api_keys(command: ApiKeysCommand) -> anyhow::Result<()> {
    match command {
        ApiKeysCommand::Create { name, config } => {
            let name = name.trim();
            if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
                bail!("--name must be 1 to 100 printable characters, e.g. --name billing-service");
            }
            let url = storage_url(&config)?;
            // Creating a key is often the first thing done on a new database: create it.
            let store = SqlStore::connect(&url, Routing::none())
                .await
                .with_context(|| format!("cannot open the database at {}", redacted_url(&url)))?;
            let made =
                crate::api_keys::generate().map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            store.insert_api_key(&made.id, name, &made.digest).await?;
            out!("{}", made.key.expose_secret());
            eprintln!(
                "\nThis is the only time the key is shown: store it in your app's secrets now."
            );
            eprintln!(
                "Use it as: Authorization: Bearer <key>. Revoke it with: api-keys revoke {}",
                made.id
            );
        }
        ApiKeysCommand::List { config, json } => {
            let keys = open_store(&config).await?.api_keys().await?;
            print_list(
                &keys,
                json,
                "No API keys; make one with `api-keys create --name NAME`.",
                |keys| {
                    out!(
                        "{:<12}  {:<24}  {:<20}  {:<20}  REVOKED",
                        "ID",
                        "NAME",
                        "CREATED",
                        "LAST USED"
                    );
                    for key in keys {
                        out!(
                            "{:<12}  {:<24}  {:<20}  {:<20}  {}",
                            key.id,
                            clip(&key.name, 24),
                            time(Some(key.created_at)),
                            time(key.last_used_at),
                            time(key.revoked_at)
                        );
                    }
                },
            )?;
        }
        ApiKeysCommand::Revoke { id, config } => {
            if !open_store(&config).await?.revoke_api_key(&id).await? {
                bail!("there is no active API key with id {id}; see `api-keys list`");
            }
            out!("Revoked API key {id}: it no longer opens the API.");
        }
    }
    Ok(())
}

pub(super) async fn deliveries(command: DeliveriesCommand) -> anyhow::Result<()> {
    match command {
        DeliveriesCommand::List { config, status, json } => {
            let deliveries = open_store(&config).await?.deliveries(status, 500).await?;
            print_list(&deliveries, json, "No deliveries.", |deliveries| {
                out!(
                    "{:<6}  {:<24}  {:<12}  {:<10}  {:<8}  LAST ERROR",
                    "ID",
                    "EVENT",
                    "TARGET",
                    "STATUS",
                    "ATTEMPTS"
                );
                for d in deliveries {
                    out!(
                        "{:<6}  {:<24}  {:<12}  {:<10}  {:<8}  {}",
                        d.id,
                        d.event_type.as_str(),
                        clip(&d.target, 12),
                        d.status.as_str(),
                        d.attempts,
                        d.last_error.as_deref().unwrap_or_default()
                    );
                }
            })?;
        }
        DeliveriesCommand::Redeliver { id, dead, config } => {
            let store = open_store(&config).await?;
            match (id, dead) {
                (Some(id), false) => {
                    if !store.redeliver(id).await? {
                        bail!("there is no delivered or dead delivery {id}; see `deliveries list`");
                    }
                    out!(
                        "Delivery {id} is queued again; a running server sends it within a second."
                    );
                }
                (None, true) => {
                    let count = store.redeliver_dead().await?;
                    out!("{count} dead deliveries are queued again.");
                }
                _ => bail!("name a delivery id, or pass --dead for every dead one"),
            }
        }
    }
    Ok(())
}

/// Connections re-sealed per round trip: small enough that a running server's writes go
/// between batches.
const RESEAL_BATCH: i64 = 100;

pub(super) async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    let KeysCommand::Rotate { config } = command;
    let checked = super::load_config(&config)?;
    let vault = Vault::new(&checked.master_key, &checked.previous_master_keys);
    let store = open_store(&config).await?;
    let active = vault.active_key_id();
    let (mut resealed, mut stalled) = (0u64, 0);
    loop {
        let batch = store.sealed_with_other_keys(&active, RESEAL_BATCH).await?;
        if batch.is_empty() {
            break;
        }
        let before = resealed;
        for (bot_id, sealed) in batch {
            let pair = sealed.resealed(&vault, &bot_id).with_context(|| {
                format!("the tokens of {bot_id} do not open with any configured key")
            })?;
            // A refresh meanwhile sealed a new pair of its own: the next batch looks again.
            if store.reseal(&bot_id, sealed.generation, &pair).await? {
                resealed += 1;
            }
        }
        // Every connection of a batch refreshed in between, three times over: a server still
        // sealing under the old key as fast as this re-seals.
        stalled = if resealed == before { stalled + 1 } else { 0 };
        if stalled == 3 {
            bail!(
                "connections keep being sealed under another key: restart every instance with \
                 security.master_key = the new key, then run this again"
            );
        }
    }
    store.close().await;
    let resealed_count = count(usize::try_from(resealed).unwrap_or(usize::MAX), "connection");
    out!("Re-sealed {resealed_count} under key {active}.");
    let previous = vault.previous_key_ids();
    if !previous.is_empty() {
        out!(
            "No stored token needs {} {} any more: {} can be removed from security.previous_master_keys.",
            plural(previous.len(), "key"),
            previous.join(", "),
            if previous.len() == 1 { "it" } else { "they" }
        );
    }
    Ok(())
}
