//! The outbox: claiming due deliveries (in order per connection and target), and their fate.
//!
//! An outbox row keeps its event type as the text it was queued with: in a fleet being upgraded,
//! a newer instance may queue a type this one does not know, and it must still be delivered
//! (webhooks and the command hook pass it on as it is) and listed, not jam the queue.

use serde::Serialize;
use sqlx::Row;
use sqlx::any::AnyRow;
use utoipa::ToSchema;

use super::sql::query;
use super::{SqlStore, StoreError, now, word};
use crate::domain::{BotId, DeliveryStatus};

/// A delivery claimed by a worker.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The outbox row.
    pub id: i64,
    /// The event's id, the same for every target and retry: receivers deduplicate by it.
    pub event_id: String,
    /// The target's name.
    pub target: String,
    /// What the app hears: an [`crate::domain::EventType`]'s text, as queued.
    pub event_type: String,
    /// The connection, for events about one.
    pub bot_id: Option<BotId>,
    /// The body, as built when the event was queued.
    pub payload: String,
    /// Attempts before this one.
    pub attempts: i64,
}

/// A delivery as operators see it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeliverySummary {
    /// The outbox row: redeliver by it.
    pub id: i64,
    /// The event's id, the same for every target and retry.
    pub event_id: String,
    /// The target's name.
    pub target: String,
    /// What the app hears, e.g. `connection.created`.
    pub event_type: String,
    /// The connection, for events about one.
    #[schema(value_type = Option<String>)]
    pub bot_id: Option<BotId>,
    /// `pending`, `delivered` or `dead`.
    pub status: DeliveryStatus,
    /// Attempts so far.
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// Seconds since the Unix epoch.
    pub next_attempt_at: i64,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// Seconds since the Unix epoch.
    pub delivered_at: Option<i64>,
}

/// What becomes of a delivery whose attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Try again at this time (seconds since the Unix epoch).
    At(i64),
    /// No more attempts: it waits, holding back its connection's later events for the target,
    /// until an operator redelivers it.
    DeadLetter,
}

fn delivery_summary(row: &AnyRow) -> Result<DeliverySummary, sqlx::Error> {
    Ok(DeliverySummary {
        id: row.try_get("id")?,
        event_id: row.try_get("event_id")?,
        target: row.try_get("target")?,
        event_type: row.try_get("event_type")?,
        bot_id: row.try_get::<Option<String>, _>("bot_id")?.map(BotId::new),
        status: word(row, "status")?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        next_attempt_at: row.try_get("next_attempt_at")?,
        created_at: row.try_get("created_at")?,
        delivered_at: row.try_get("delivered_at")?,
    })
}

/// The deliveries queued with each event: claimed by workers, retried, dead-lettered, redelivered.
#[async_trait::async_trait]
pub trait Outbox: Send + Sync {
    /// Claims the oldest due delivery (pending, `next_attempt_at` passed, not locked or its lock
    /// ran out) to one of `targets` for `worker` until `locked_until`, skipping any that has an
    /// earlier undelivered (pending or dead) delivery with the same target and ordering key:
    /// order per connection is strict, so a dead letter holds back what came after it until it
    /// is redelivered. Targets this process does not know stay queued for one that does. One
    /// statement, so two workers or processes never claim the same row.
    async fn claim_delivery(
        &self,
        worker: &str,
        locked_until: i64,
        targets: &[&str],
    ) -> Result<Option<Delivery>, StoreError>;

    /// Marks a claimed delivery done, counting the attempt, and unlocks it; `false` when `worker`
    /// no longer held it.
    async fn mark_delivered(&self, id: i64, worker: &str) -> Result<bool, StoreError>;

    /// Records a failed attempt (counted in `attempts`, which the worker's limit reads) and
    /// unlocks it, to be retried or dead-lettered as `retry` says. `false` when `worker` no
    /// longer held it.
    async fn mark_failed(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        retry: Retry,
    ) -> Result<bool, StoreError>;

    /// Extends `worker`'s lock on a delivery (a command hook with a long timeout).
    async fn extend_delivery_lock(
        &self,
        id: i64,
        worker: &str,
        locked_until: i64,
    ) -> Result<(), StoreError>;

    /// Frees every delivery locked by a worker of this process (`worker_prefix`), so that a
    /// restart does not wait out leases of attempts a shutdown cut short.
    async fn release_delivery_locks(&self, worker_prefix: &str) -> Result<u64, StoreError>;

    /// Deliveries, newest first, optionally only those in `status`.
    async fn deliveries(
        &self,
        status: Option<DeliveryStatus>,
        limit: i64,
    ) -> Result<Vec<DeliverySummary>, StoreError>;

    /// Puts a dead (or delivered) delivery back in the queue, due now, with a fresh count of
    /// attempts. `false` when there is no such delivery or it is still pending.
    async fn redeliver(&self, id: i64) -> Result<bool, StoreError>;

    /// Puts every dead delivery back in the queue; returns how many.
    async fn redeliver_dead(&self) -> Result<u64, StoreError>;
}

#[async_trait::async_trait]
impl Outbox for SqlStore {
    async fn claim_delivery(
        &self,
        worker: &str,
        locked_until: i64,
        targets: &[&str],
    ) -> Result<Option<Delivery>, StoreError> {
        if targets.is_empty() {
            return Ok(None);
        }
        // One numbered parameter per target name: the same SQL on SQLite and PostgreSQL.
        let names: Vec<String> = (0..targets.len()).map(|i| format!("${}", i + 4)).collect();
        // The row's own conditions are repeated outside the subquery: when two claims race for
        // one row, PostgreSQL re-checks those (not the subquery) after the first one commits.
        let sql = format!(
            "UPDATE outbox SET locked_by = $1, locked_until = $2
             WHERE status = 'pending' AND (locked_until IS NULL OR locked_until < $3) AND id = (
                 SELECT o.id FROM outbox o
                 WHERE o.status = 'pending' AND o.next_attempt_at <= $3
                   AND (o.locked_until IS NULL OR o.locked_until < $3)
                   AND o.target IN ({})
                   AND NOT EXISTS (SELECT 1 FROM outbox e WHERE e.target = o.target
                                   AND e.ordering_key = o.ordering_key AND e.status != 'delivered' AND e.id < o.id)
                 ORDER BY (o.bot_id IS NULL), o.id LIMIT 1)
             RETURNING id, event_id, target, event_type, bot_id, payload, attempts",
            names.join(", ")
        );
        let worker = worker.to_owned();
        let targets: Vec<String> = targets.iter().map(|&target| target.to_owned()).collect();
        let row = self
            .writer
            .statement(move |connection| {
                Box::pin(async move {
                    let mut query = query(sql).bind(worker).bind(locked_until).bind(now());
                    for target in targets {
                        query = query.bind(target);
                    }
                    query.fetch_optional(connection).await
                })
            })
            .await?;
        row.map(|row| {
            Ok(Delivery {
                id: row.try_get("id")?,
                event_id: row.try_get("event_id")?,
                target: row.try_get("target")?,
                event_type: row.try_get("event_type")?,
                bot_id: row.try_get::<Option<String>>("bot_id")?.map(BotId::new),
                payload: row.try_get("payload")?,
                attempts: row.try_get("attempts")?,
            })
        })
        .transpose()
    }

    async fn mark_delivered(&self, id: i64, worker: &str) -> Result<bool, StoreError> {
        let worker = worker.to_owned();
        self.writer
            .statement(move |connection| {
                Box::pin(async move {
        let done = query(
            "UPDATE outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = $3, last_error = NULL,
                 locked_by = NULL, locked_until = NULL
             WHERE id = $1 AND locked_by = $2",
        )
        .bind(id)
        .bind(worker)
        .bind(now())
        .execute(connection)
        .await?;
Ok(done.rows_affected() == 1)
                })
            })
            .await
    }

    async fn mark_failed(
        &self,
        id: i64,
        worker: &str,
        error: &str,
        retry: Retry,
    ) -> Result<bool, StoreError> {
        let (next_attempt_at, dead) = match retry {
            Retry::At(at) => (Some(at), false),
            Retry::DeadLetter => (None, true),
        };
        let (worker, error) = (worker.to_owned(), error.to_owned());
        self.writer
            .statement(move |connection| {
                Box::pin(async move {
        let done = query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $3,
                 next_attempt_at = COALESCE($4, next_attempt_at),
                 status = CASE WHEN $5 THEN 'dead' ELSE status END, locked_by = NULL, locked_until = NULL
             WHERE id = $1 AND locked_by = $2",
        )
        .bind(id)
        .bind(worker)
        .bind(error)
        .bind(next_attempt_at)
        .bind(dead)
        .execute(connection)
        .await?;
Ok(done.rows_affected() == 1)
                })
            })
            .await
    }

    async fn extend_delivery_lock(
        &self,
        id: i64,
        worker: &str,
        locked_until: i64,
    ) -> Result<(), StoreError> {
        let worker = worker.to_owned();
        self.writer
            .statement(move |connection| {
                Box::pin(async move {
                    query("UPDATE outbox SET locked_until = $3 WHERE id = $1 AND locked_by = $2")
                        .bind(id)
                        .bind(worker)
                        .bind(locked_until)
                        .execute(connection)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn release_delivery_locks(&self, worker_prefix: &str) -> Result<u64, StoreError> {
        let worker_prefix = worker_prefix.to_owned();
        self.writer
            .statement(move |connection| {
                Box::pin(async move {
        let done = query(
            "UPDATE outbox SET locked_by = NULL, locked_until = NULL WHERE status = 'pending' AND substr(locked_by, 1, length($1)) = $1",
        )
        .bind(worker_prefix)
        .execute(connection)
        .await?;
Ok(done.rows_affected())
                })
            })
            .await
    }

    async fn deliveries(
        &self,
        status: Option<DeliveryStatus>,
        limit: i64,
    ) -> Result<Vec<DeliverySummary>, StoreError> {
        let rows = sqlx::query(
            "SELECT * FROM outbox WHERE ($1 IS NULL OR status = $1) ORDER BY id DESC LIMIT $2",
        )
        .bind(status.map(DeliveryStatus::as_str))
        .bind(limit)
        .fetch_all(&self.reads)
        .await?;
        Ok(rows.iter().map(delivery_summary).collect::<Result<_, _>>()?)
    }

    async fn redeliver(&self, id: i64) -> Result<bool, StoreError> {
        self.writer
            .statement(move |connection| {
                Box::pin(async move {
        let done = query(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $2, last_error = NULL
             WHERE id = $1 AND status != 'pending'",
        )
        .bind(id)
        .bind(now())
        .execute(connection)
        .await?;
Ok(done.rows_affected() == 1)
                })
            })
            .await
    }

    async fn redeliver_dead(&self) -> Result<u64, StoreError> {
        self.writer
            .statement(move |connection| {
                Box::pin(async move {
        let done = query(
            "UPDATE outbox SET status = 'pending', attempts = 0, next_attempt_at = $1, last_error = NULL WHERE status = 'dead'",
        )
        .bind(now())
        .execute(connection)
        .await?;
Ok(done.rows_affected())
                })
            })
            .await
    }
}
