//! Used states on PostgreSQL: the nonces of callbacks that arrive together, recorded by one
//! statement (`batched` says why).
//!
//! A replayed callback still reaches Notion at most once: `ON CONFLICT DO NOTHING RETURNING`
//! names the nonces this statement inserted, and only their callbacks go on; the unique key
//! decides between instances as before. A nonce twice in one batch (a replay racing its
//! original) goes in once, and only its first claim can win. If the batch's statement fails,
//! each nonce is tried alone, so each callback gets its own answer or its own error.

use std::collections::HashSet;

use futures_util::future::join_all;
use sqlx::{AnyPool, Row};

use super::StoreError;
use super::batched::{Batched, Reply};

/// One nonce, recorded unless it is there already.
const ONE: &str =
    "INSERT INTO used_states (nonce, expires_at) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING";

/// Several nonces, `$1` a JSON array of `{"nonce": …, "expires_at": …}`; answers the nonces it
/// inserted. The driver binds no arrays, so they travel as JSON.
const SEVERAL: &str = "INSERT INTO used_states (nonce, expires_at)
     SELECT nonce, expires_at FROM json_to_recordset($1::json) AS claimed(nonce text, expires_at bigint)
     ON CONFLICT (nonce) DO NOTHING
     RETURNING nonce";

/// A callback's claim on its state's nonce.
struct Claim {
    nonce: String,
    expires_at: i64,
}

#[derive(serde::Serialize)]
struct Used<'a> {
    nonce: &'a str,
    expires_at: i64,
}

/// Where callbacks claim their state's nonce.
#[derive(Clone, Debug)]
pub(super) struct UsedStates(Batched<Claim, bool>);

impl UsedStates {
    pub(super) fn start(pool: AnyPool) -> Self {
        Self(Batched::start(pool, record))
    }

    /// Records `nonce` as used until `expires_at`; `true` if this call recorded it, `false`
    /// if it was used already. Answers once the record is committed.
    pub(super) async fn consume(&self, nonce: &str, expires_at: i64) -> Result<bool, StoreError> {
        self.0.request(Claim { nonce: nonce.to_owned(), expires_at }).await
    }
}

/// Records the nonces of `batch` and answers each claim.
async fn record(pool: AnyPool, batch: Vec<(Claim, Reply<bool>)>) {
    let mut seen = HashSet::with_capacity(batch.len());
    let mut firsts = Vec::with_capacity(batch.len());
    for (claim, reply) in batch {
        if seen.insert(claim.nonce.clone()) {
            firsts.push((claim, reply));
        } else {
            // The same nonce claimed twice at once: whichever way the first goes, this one
            // does not win.
            let _ = reply.send(Ok(false));
        }
    }
    if firsts.len() > 1 {
        // In one order everywhere: two instances' batches that share nonces wait for each
        // other's in the same order instead of deadlocking.
        firsts.sort_unstable_by(|(a, _), (b, _)| a.nonce.cmp(&b.nonce));
        match record_several(&pool, &firsts).await {
            Ok(inserted) => {
                for (claim, reply) in firsts {
                    let _ = reply.send(Ok(inserted.contains(claim.nonce.as_str())));
                }
                return;
            }
            Err(error) => {
                tracing::warn!(error = %crate::telemetry::Chain(&error), count = firsts.len(), "used states could not be recorded together; recording each alone");
            }
        }
    }
    // All at once: if the database cannot be reached, every claim fails within one timeout.
    let recorded = join_all(firsts.iter().map(|(claim, _)| record_one(&pool, claim))).await;
    for ((_, reply), recorded) in firsts.into_iter().zip(recorded) {
        let _ = reply.send(recorded);
    }
}

async fn record_one(pool: &AnyPool, claim: &Claim) -> Result<bool, StoreError> {
    let done = sqlx::query(ONE).bind(&claim.nonce).bind(claim.expires_at).execute(pool).await?;
    Ok(done.rows_affected() == 1)
}

async fn record_several(
    pool: &AnyPool,
    claims: &[(Claim, Reply<bool>)],
) -> Result<HashSet<String>, StoreError> {
    let rows: Vec<Used<'_>> = claims
        .iter()
        .map(|(claim, _)| Used { nonce: &claim.nonce, expires_at: claim.expires_at })
        .collect();
    let rows = serde_json::to_string(&rows).map_err(|error| StoreError::Other(Box::new(error)))?;
    let inserted = sqlx::query(SEVERAL).bind(rows).fetch_all(pool).await?;
    inserted.iter().map(|row| row.try_get::<String, _>("nonce").map_err(StoreError::from)).collect()
}
