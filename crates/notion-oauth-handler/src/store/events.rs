//! The history of each connection, for operators and the API.

use serde::Serialize;
use sqlx::{Row, Sqlite};
use utoipa::ToSchema;

use super::{Store, StoreError, now};

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

/// Adds an event inside the caller's transaction, so it is written with the change it reports.
pub(super) async fn record<'c>(
    executor: impl sqlx::Executor<'c, Database = Sqlite>,
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
        .execute(executor)
        .await?;
    Ok(())
}

impl Store {
    /// Records an event on its own (for changes that touch nothing else).
    ///
    /// # Errors
    /// Database failures.
    pub async fn record_event(
        &self,
        bot_id: &str,
        kind: &str,
        message: Option<&str>,
        request_id: Option<&str>,
    ) -> Result<(), StoreError> {
        record(&self.pool, bot_id, kind, message, request_id).await
    }

    /// A connection's events, newest first.
    ///
    /// # Errors
    /// Database failures.
    pub async fn events(&self, bot_id: &str, limit: i64) -> Result<Vec<Event>, StoreError> {
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
