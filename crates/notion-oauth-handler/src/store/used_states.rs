//! Used states on PostgreSQL: the nonces of callbacks that arrive together, recorded by one
//! statement.
//!
//! Why: a complete flow sends PostgreSQL two statements, the state's nonce and the connection,
//! each its own commit, and under load PostgreSQL's own processes took two fifths of the
//! machine, most of it per statement (executor set-up, the protocol's messages, a commit and
//! its log flush, a context switch each way) rather than per row. So the nonces waiting while
//! one statement runs go in the next one together, through a JSON array (the database driver
//! binds no arrays): one round trip and one commit for all of them.
//!
//! A replayed callback still reaches Notion at most once: `ON CONFLICT DO NOTHING RETURNING`
//! names the nonces this statement inserted, and only their callbacks go on; the unique key
//! decides between instances as before. A nonce twice in one batch (a replay racing its
//! original) goes in once, and only its first claim can win. Nobody is answered before the
//! statement has committed. If the batch's statement fails, each nonce is tried alone, so each
//! callback gets its own answer or its own error.

use std::collections::HashSet;

use sqlx::{AnyPool, Row};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// Claims waiting for the statement in flight. Beyond it callers wait to queue.
const QUEUE: usize = 1024;

/// The most nonces one statement records.
const BATCH: usize = 128;

/// One nonce, recorded unless it is there already.
const ONE: &str =
    "INSERT INTO used_states (nonce, expires_at) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING";

/// Several nonces, `$1` a JSON array of `{"nonce": …, "expires_at": …}`; answers the nonces it
/// inserted.
const SEVERAL: &str = "INSERT INTO used_states (nonce, expires_at)
     SELECT nonce, expires_at FROM json_to_recordset($1::json) AS claimed(nonce text, expires_at bigint)
     ON CONFLICT (nonce) DO NOTHING
     RETURNING nonce";

/// Where callbacks claim their state's nonce.
#[derive(Clone, Debug)]
pub(super) struct UsedStates {
    claims: mpsc::Sender<Claim>,
}

#[derive(Debug)]
struct Claim {
    nonce: String,
    expires_at: i64,
    answer: oneshot::Sender<Result<bool, StoreError>>,
}

#[derive(serde::Serialize)]
struct Used<'a> {
    nonce: &'a str,
    expires_at: i64,
}

impl UsedStates {
    /// Starts the task that records claims on `pool`; it ends when every clone is dropped.
    pub(super) fn start(pool: AnyPool) -> Self {
        let (claims, queue) = mpsc::channel(QUEUE);
        tokio::spawn(record_in_batches(pool, queue));
        Self { claims }
    }

    /// Records `nonce` as used until `expires_at`; `true` if this call recorded it, `false`
    /// if it was used already. Answers once the record is committed.
    pub(super) async fn consume(&self, nonce: &str, expires_at: i64) -> Result<bool, StoreError> {
        let (answer, answered) = oneshot::channel();
        let claim = Claim { nonce: nonce.to_owned(), expires_at, answer };
        self.claims.send(claim).await.map_err(|_| StoreError::WriterStopped)?;
        // A claim already queued is recorded even if its caller stops waiting, as on SQLite.
        answered.await.map_err(|_| StoreError::WriterStopped)?
    }
}

async fn record_in_batches(pool: AnyPool, mut queue: mpsc::Receiver<Claim>) {
    let mut batch = Vec::with_capacity(BATCH);
    while queue.recv_many(&mut batch, BATCH).await > 0 {
        record(&pool, &mut batch).await;
    }
}

/// Records the nonces of `batch` and answers each claim.
async fn record(pool: &AnyPool, batch: &mut Vec<Claim>) {
    let mut seen = HashSet::with_capacity(batch.len());
    let mut firsts = Vec::with_capacity(batch.len());
    for claim in batch.drain(..) {
        if seen.insert(claim.nonce.clone()) {
            firsts.push(claim);
        } else {
            // The same nonce claimed twice at once: whichever way the first goes, this one
            // does not win.
            let _ = claim.answer.send(Ok(false));
        }
    }
    if let [claim] = firsts.as_slice() {
        let recorded = record_one(pool, &claim.nonce, claim.expires_at).await;
        if let Some(claim) = firsts.pop() {
            let _ = claim.answer.send(recorded);
        }
        return;
    }
    match record_several(pool, &firsts).await {
        Ok(inserted) => {
            for claim in firsts {
                let recorded = inserted.contains(claim.nonce.as_str());
                let _ = claim.answer.send(Ok(recorded));
            }
        }
        Err(error) => {
            tracing::warn!(error = %crate::telemetry::Chain(&error), count = firsts.len(), "used states could not be recorded together; recording each alone");
            for claim in firsts {
                let recorded = record_one(pool, &claim.nonce, claim.expires_at).await;
                let _ = claim.answer.send(recorded);
            }
        }
    }
}

async fn record_one(pool: &AnyPool, nonce: &str, expires_at: i64) -> Result<bool, StoreError> {
    let done = sqlx::query(ONE).bind(nonce).bind(expires_at).execute(pool).await?;
    Ok(done.rows_affected() == 1)
}

async fn record_several(pool: &AnyPool, claims: &[Claim]) -> Result<HashSet<String>, StoreError> {
    let rows: Vec<Used<'_>> = claims
        .iter()
        .map(|claim| Used { nonce: &claim.nonce, expires_at: claim.expires_at })
        .collect();
    let rows = serde_json::to_string(&rows).map_err(|error| StoreError::Other(Box::new(error)))?;
    let inserted = sqlx::query(SEVERAL).bind(rows).fetch_all(pool).await?;
    inserted.iter().map(|row| row.try_get::<String, _>("nonce").map_err(StoreError::from)).collect()
}
