//! The history of each connection, and the outbox rows that deliver it to the developer's app.

use serde::Serialize;
use sqlx::AnyConnection;
use sqlx::Row;
use utoipa::ToSchema;

use super::connections::{SUMMARY_COLUMNS, summary};
use super::{SqlStore, StoreError, now};
use crate::config::Deliveries;

/// One thing that happened to a connection.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Event {
    pub id: i64,
    pub bot_id: String,
    /// `connected`, `reconnected`, `refreshed`, `refresh_failed`, `refresh_interrupted`,
    /// `needs_reauth`, `checked`, `revoked`.
    pub kind: String,
    pub message: Option<String>,
    /// Notion's id for the request behind the event, when there was one.
    pub request_id: Option<String>,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
}

/// The event type delivered for a history entry, if it is one the app hears about.
fn delivered_as(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "connected" => "connection.created",
        "reconnected" => "connection.updated",
        "refreshed" => "connection.refreshed",
        "needs_reauth" => "connection.needs_reauth",
        "revoked" => "connection.revoked",
        _ => return None,
    })
}

fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// Queues an event for every target that wants its type, inside the caller's transaction.
async fn enqueue(
    connection: &mut AnyConnection,
    deliveries: &Deliveries,
    event_type: &str,
    ordering_key: &str,
    bot_id: Option<&str>,
    data: serde_json::Value,
) -> Result<(), StoreError> {
    let targets: Vec<&str> = deliveries.targets_for(event_type).collect();
    if targets.is_empty() {
        return Ok(());
    }
    let now = now();
    let event_id = format!("evt_{}", uuid::Uuid::new_v4().simple());
    let payload = serde_json::json!({ "id": event_id, "type": event_type, "created_at": rfc3339(now), "data": data });
    let payload = serde_json::to_string(&payload).map_err(StoreError::Serialize)?;
    for target in targets {
        sqlx::query(
            "INSERT INTO outbox (event_id, target, event_type, ordering_key, bot_id, payload, next_attempt_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        )
        .bind(&event_id)
        .bind(target)
        .bind(event_type)
        .bind(ordering_key)
        .bind(bot_id)
        .bind(&payload)
        .bind(now)
        .execute(&mut *connection)
        .await?;
    }
    Ok(())
}

/// Adds a history entry inside the caller's transaction, with its deliveries: both are written
/// with the change they report, or neither is.
pub(super) async fn record(
    connection: &mut AnyConnection,
    deliveries: &Deliveries,
    bot_id: &str,
    kind: &str,
    message: Option<&str>,
    request_id: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO connection_events (bot_id, kind, message, request_id, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(bot_id)
        .bind(kind)
        .bind(message)
        .bind(request_id)
        .bind(now())
        .execute(&mut *connection)
        .await?;
    let Some(event_type) = delivered_as(kind) else {
        return Ok(());
    };
    let sql = format!("SELECT {SUMMARY_COLUMNS} FROM connections WHERE bot_id = $1");
    let row =
        sqlx::query(sqlx::AssertSqlSafe(sql)).bind(bot_id).fetch_one(&mut *connection).await?;
    let data = serde_json::to_value(summary(&row)?).map_err(StoreError::Serialize)?;
    enqueue(connection, deliveries, event_type, bot_id, Some(bot_id), data).await
}

/// Each connection's history, and events that belong to no connection.
#[async_trait::async_trait]
pub trait History: Send + Sync {
    /// Records an event on its own (for changes that touch nothing else).
    ///
    /// # Errors
    /// Database failures.
    async fn record_event(
        &self,
        bot_id: &str,
        kind: &str,
        message: Option<&str>,
        request_id: Option<&str>,
        deliveries: &Deliveries,
    ) -> Result<(), StoreError>;

    /// Queues `connection.denied` for a flow the user cancelled on Notion's page: there is no
    /// connection, only the app's `ref` (when the state carried one).
    ///
    /// # Errors
    /// Database failures.
    async fn record_denied(
        &self,
        reference: Option<&str>,
        deliveries: &Deliveries,
    ) -> Result<(), StoreError>;

    /// A connection's events, newest first.
    ///
    /// # Errors
    /// Database failures.
    async fn events(&self, bot_id: &str, limit: i64) -> Result<Vec<Event>, StoreError>;
}

#[async_trait::async_trait]
impl History for SqlStore {
    async fn record_event(
        &self,
        bot_id: &str,
        kind: &str,
        message: Option<&str>,
        request_id: Option<&str>,
        deliveries: &Deliveries,
    ) -> Result<(), StoreError> {
        let mut transaction = self.pool.begin().await?;
        record(&mut transaction, deliveries, bot_id, kind, message, request_id).await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn record_denied(
        &self,
        reference: Option<&str>,
        deliveries: &Deliveries,
    ) -> Result<(), StoreError> {
        let data = serde_json::json!({ "ref": reference, "error": "access_denied" });
        let ordering_key = format!("denied:{}", reference.unwrap_or(""));
        let mut transaction = self.pool.begin().await?;
        enqueue(&mut transaction, deliveries, "connection.denied", &ordering_key, None, data)
            .await?;
        transaction.commit().await?;
        Ok(())
    }

    async fn events(&self, bot_id: &str, limit: i64) -> Result<Vec<Event>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, bot_id, kind, message, request_id, created_at FROM connection_events
             WHERE bot_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(bot_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Event {
                    id: row.try_get("id")?,
                    bot_id: row.try_get("bot_id")?,
                    kind: row.try_get("kind")?,
                    message: row.try_get("message")?,
                    request_id: row.try_get("request_id")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }
}
