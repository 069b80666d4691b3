//! What an embedding app plugs in: a hook for each connection event, and a view for the pages a
//! flow ends on. These are contracts only, so that the configuration, the delivery workers and
//! the pages can name them without depending on the embedding facade that registers them.

use std::future::Future;
use std::pin::Pin;

use axum::response::Response;

use crate::domain::{BotId, EventType, Upserted, WorkspaceId};

/// Why a hook failed: any error (`?` converts one), or words (`Err("…".into())`). Its words are
/// what delivery listings show.
pub type HookError = Box<dyn std::error::Error + Send + Sync>;

/// What a hook returns: `Err` is retried like a failed webhook, then dead-lettered.
pub type HookFuture<'a> = Pin<Box<dyn Future<Output = Result<(), HookError>> + Send + 'a>>;

/// A connection event, as webhooks receive it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct HookEvent {
    /// Stable across retries: deduplicate by it.
    pub id: String,
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When the event happened, as RFC 3339.
    pub created_at: String,
    /// The connection as the API shows it (with the app's `ref`); for `connection.denied`, the
    /// `ref` only. Never tokens: ask the lifecycle for one.
    pub data: serde_json::Value,
}

/// Called for each connection event, at least once and in order per connection, from the same
/// durable outbox that feeds webhooks.
pub trait ConnectionHook: Send + Sync + 'static {
    /// Handles one event; an `Err` (or a panic) fails this delivery, which is retried.
    fn on_event<'a>(&'a self, event: &'a HookEvent) -> HookFuture<'a>;
}

/// How a flow ended, for a [`ConnectView`].
#[derive(Debug)]
pub enum Outcome<'a> {
    /// The user approved and the connection is stored.
    Connected {
        /// The connection's bot.
        bot_id: &'a BotId,
        /// The workspace it was installed in.
        workspace_id: &'a WorkspaceId,
        /// The workspace's name, if it has one.
        workspace_name: Option<&'a str>,
        /// The app's `ref` from the link that started the flow.
        reference: Option<&'a str>,
        /// Whether the bot is new, or was authorized again.
        outcome: Upserted,
        /// The browser that finished this flow came back to its callback (a reload, or Back
        /// then Allow on Notion's page): nothing new was stored or delivered.
        reloaded: bool,
    },
    /// The user cancelled on Notion's page.
    Denied {
        /// The app's `ref` from the link that started the flow.
        reference: Option<&'a str>,
    },
    /// The flow could not finish; nothing was stored.
    Failed {
        /// The stable reason, e.g. `expired_state`, `code_rejected`, `notion_unavailable`.
        reason: &'a str,
        /// The HTTP status the built-in page would have.
        status: u16,
        /// The built-in page's words, for the user.
        message: &'a str,
        /// Notion's request id, when Notion caused the failure.
        request_id: Option<&'a str>,
    },
}

/// The pages the browser sees when a flow ends: return `None` to keep the built-in one.
pub trait ConnectView: Send + Sync + 'static {
    /// The app's own response for `outcome`, or `None` for the built-in page.
    fn respond(&self, outcome: &Outcome<'_>) -> Option<Response>;
}
