//! The history of each connection, and the outbox rows that deliver it to the developer's app.

use serde::Serialize;
use sqlx::Row;
use utoipa::ToSchema;

use super::routing::Routing;
use super::sql::{Writes, query};
use super::summary::{ConnectionSummary, SUMMARY_COLUMNS, summary};
use super::{SqlStore, StoreError, now, word};
use crate::domain::{BotId, EventType, HistoryKind, RefSource};

/// One thing that happened to a connection.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Event {
    /// Increases with each entry.
    pub id: i64,
    /// The connection's bot.
    #[schema(value_type = String)]
    pub bot_id: BotId,
    /// What happened.
    pub kind: HistoryKind,
    /// In words, for people.
    pub message: Option<String>,
    /// Notion's id for the request behind the event, when there was one.
    pub request_id: Option<String>,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
}

/// A history entry to write.
#[derive(Debug, Clone, Copy)]
pub struct HistoryEntry<'a> {
    /// What happened.
    pub kind: HistoryKind,
    /// In words, for people.
    pub message: Option<&'a str>,
    /// Notion's id for the request behind it.
    pub request_id: Option<&'a str>,
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// An event as the outbox keeps it: one row per target that wants its type, all with the same
/// `event_id` (receivers deduplicate by it). Built here so that every store sends the same body.
#[derive(Debug, Clone)]
pub struct QueuedEvent {
    /// `evt_…`, the same for every target and every retry.
    pub event_id: String,
    /// What the app hears.
    pub event_type: EventType,
    /// Deliveries with the same key and target go out in the order they were queued.
    pub ordering_key: String,
    /// The connection, for events about one.
    pub bot_id: Option<BotId>,
    /// The body webhooks receive: `{id, type, created_at, data}`.
    pub payload: String,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
}

impl QueuedEvent {
    fn new(
        event_type: EventType,
        ordering_key: String,
        bot_id: Option<BotId>,
        data: serde_json::Value,
    ) -> Result<Self, StoreError> {
        let created_at = now();
        let event_id = format!("evt_{}", uuid::Uuid::new_v4().simple());
        let payload = serde_json::json!({ "id": event_id, "type": event_type, "created_at": rfc3339(created_at), "data": data });
        let payload = serde_json::to_string(&payload).map_err(StoreError::Serialize)?;
        Ok(Self { event_id, event_type, ordering_key, bot_id, payload, created_at })
    }

    /// The event for a history entry of `kind`, with the connection as it is after the change
    /// (`None` for the kinds apps do not hear about: see [`HistoryKind::event_type`]).
    ///
    /// # Errors
    /// A connection that does not serialize (not expected).
    pub fn for_change(
        kind: HistoryKind,
        connection: &ConnectionSummary,
    ) -> Result<Option<Self>, StoreError> {
        let Some(event_type) = kind.event_type() else { return Ok(None) };
        let data = serde_json::to_value(connection).map_err(StoreError::Serialize)?;
        let bot_id = connection.bot_id.clone();
        Self::new(event_type, bot_id.to_string(), Some(bot_id), data).map(Some)
    }

    /// `connection.denied`: there is no connection, only the app's `ref`.
    ///
    /// # Errors
    /// See [`QueuedEvent::for_change`].
    pub fn denied(reference: Option<&str>, source: RefSource) -> Result<Self, StoreError> {
        let data = serde_json::json!({
            "ref": reference,
            "ref_signed": source == RefSource::Vouched,
            "error": "access_denied",
        });
        // The source is part of the key: a typed `?ref=` must not hold back, for the window,
        // the denial of a link the app signed for the same ref.
        let source_word = match source {
            RefSource::Vouched => "signed",
            RefSource::Plain => "plain",
        };
        let ordering_key = format!("denied:{source_word}:{}", reference.unwrap_or(""));
        Self::new(EventType::Denied, ordering_key, None, data)
    }
}

/// How long a denial keeps others with the same `ref` from being queued: cancelling on Notion's
/// page needs no consent, so without it anyone could make the server sign and send events at
/// will (3 000 in 8 s, delaying real ones).
pub const DENIED_WINDOW: std::time::Duration = std::time::Duration::from_secs(600);

/// Queues an event for every target that wants its type, inside the caller's transaction.
async fn enqueue(
    connection: &mut dyn Writes,
    routing: &Routing,
    event: &QueuedEvent,
) -> Result<(), StoreError> {
    for target in routing.targets_for(event.event_type) {
        query(
            "INSERT INTO outbox (event_id, target, event_type, ordering_key, bot_id, payload, next_attempt_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(&event.event_id)
        .bind(target)
        .bind(event.event_type.as_str())
        .bind(&event.ordering_key)
        .bind(event.bot_id.as_ref().map(BotId::as_str))
        .bind(&event.payload)
        .bind(event.created_at)
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// Adds a history entry inside the caller's transaction, with its deliveries: both are written
/// with the change they report, or neither is.
pub(super) async fn record(
    connection: &mut dyn Writes,
    routing: &Routing,
    bot_id: &BotId,
    entry: HistoryEntry<'_>,
) -> Result<(), StoreError> {
    query("INSERT INTO connection_events (bot_id, kind, message, request_id, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(bot_id.as_str())
        .bind(entry.kind.as_str())
        .bind(entry.message)
        .bind(entry.request_id)
        .bind(now())
        .execute(&mut *connection)
        .await?;
    // Nothing to queue: spare the read of the connection and the body.
    if !entry.kind.event_type().is_some_and(|event| routing.wants(event)) {
        return Ok(());
    }
    let sql = format!("SELECT {SUMMARY_COLUMNS} FROM connections WHERE bot_id = $1");
    let row = query(sql).bind(bot_id.as_str()).fetch_one(&mut *connection).await?;
    match QueuedEvent::for_change(entry.kind, &summary(&row)?)? {
        Some(event) => enqueue(connection, routing, &event).await,
        None => Ok(()),
    }
}

/// Each connection's history, and the events queued with it.
///
/// Every method that writes a history entry of a kind apps hear of
/// ([`HistoryKind::event_type`]) also queues [`QueuedEvent::for_change`], built from the
/// connection as it is after the change, once for each target the store's [`Routing`] names for
/// that event type, in the same transaction.
#[async_trait::async_trait]
pub trait History: Send + Sync {
    /// Records a history entry on its own (for changes that touch nothing else), with its event
    /// (see [`QueuedEvent::for_change`]) queued in the same transaction.
    async fn record_event(&self, bot_id: &BotId, entry: HistoryEntry<'_>)
    -> Result<(), StoreError>;

    /// Queues [`QueuedEvent::denied`] for a flow the user cancelled on Notion's page: there is no
    /// connection, so no history entry, only the app's `ref` (when the state carried one) and
    /// where it came from. Anyone can start and cancel flows, so a denial with the same `ref` as
    /// one queued within [`DENIED_WINDOW`] is not queued again.
    async fn record_denied(
        &self,
        reference: Option<&str>,
        source: RefSource,
    ) -> Result<(), StoreError>;

    /// A connection's events, newest first.
    async fn events(&self, bot_id: &BotId, limit: i64) -> Result<Vec<Event>, StoreError>;
}

#[async_trait::async_trait]
impl History for SqlStore {
    async fn record_event(
        &self,
        bot_id: &BotId,
        entry: HistoryEntry<'_>,
    ) -> Result<(), StoreError> {
        let (bot_id, routing) = (bot_id.clone(), self.routing.clone());
        let (kind, message, request_id) =
            (entry.kind, entry.message.map(str::to_owned), entry.request_id.map(str::to_owned));
        self.writer
            .transaction(move |transaction| {
                Box::pin(async move {
                    let entry = HistoryEntry {
                        kind,
                        message: message.as_deref(),
                        request_id: request_id.as_deref(),
                    };
                    record(transaction, &routing, &bot_id, entry).await
                })
            })
            .await
    }

    async fn record_denied(
        &self,
        reference: Option<&str>,
        source: RefSource,
    ) -> Result<(), StoreError> {
        if !self.routing.wants(EventType::Denied) {
            return Ok(());
        }
        let (event, routing) = (QueuedEvent::denied(reference, source)?, self.routing.clone());
        let window = i64::try_from(DENIED_WINDOW.as_secs()).unwrap_or(i64::MAX);
        self.writer
            .transaction(move |transaction| {
                Box::pin(async move {
                    for target in routing.targets_for(event.event_type) {
                        query(
                            "INSERT INTO outbox (event_id, target, event_type, ordering_key, payload,
                                 next_attempt_at, created_at)
                             SELECT $1, $2, $3, $4, $5, $6, $6
                             WHERE NOT EXISTS (SELECT 1 FROM outbox WHERE target = $2
                                 AND ordering_key = $4 AND created_at > $6 - $7)",
                        )
                        .bind(&event.event_id)
                        .bind(target)
                        .bind(event.event_type.as_str())
                        .bind(&event.ordering_key)
                        .bind(&event.payload)
                        .bind(event.created_at)
                        .bind(window)
                        .execute(&mut *transaction)
                        .await?;
                    }
                    Ok(())
                })
            })
            .await
    }

    async fn events(&self, bot_id: &BotId, limit: i64) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, bot_id, kind, message, request_id, created_at FROM connection_events
             WHERE bot_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(bot_id.as_str())
        .bind(limit)
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Event {
                    id: row.try_get("id")?,
                    bot_id: BotId::new(row.try_get::<String, _>("bot_id")?),
                    kind: word(row, "kind")?,
                    message: row.try_get("message")?,
                    request_id: row.try_get("request_id")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }
}
