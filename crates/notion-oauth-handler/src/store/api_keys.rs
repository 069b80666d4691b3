//! API keys: only a digest of each secret is stored.

use serde::Serialize;
use sqlx::Row;

use super::recent::Lookup;
use super::sql::query;
use super::{SqlStore, StoreError, now};

/// An API key as stored: never the secret.
#[derive(Debug, Clone, Serialize)]
pub struct StoredApiKey {
    /// The key's public part.
    pub id: String,
    /// What the key is for, as its creator said.
    pub name: String,
    /// The digest of its secret.
    #[serde(skip)]
    pub secret_hash: Vec<u8>,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// Last use, to the minute.
    pub last_used_at: Option<i64>,
    /// When it stopped opening the API.
    pub revoked_at: Option<i64>,
}

fn from_row(row: &sqlx::any::AnyRow) -> Result<StoredApiKey, sqlx::Error> {
    Ok(StoredApiKey {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        secret_hash: row.try_get("secret_hash")?,
        created_at: row.try_get("created_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

/// The keys of the pull API (only their hashes are kept).
#[async_trait::async_trait]
pub trait ApiKeys: Send + Sync {
    /// Stores a new key's id, name and secret digest.
    ///
    /// An id collision among 2^48 ids fails as any database error would.
    async fn insert_api_key(
        &self,
        id: &str,
        name: &str,
        secret_hash: &[u8],
    ) -> Result<(), StoreError>;

    /// Every key, newest first.
    async fn api_keys(&self) -> Result<Vec<StoredApiKey>, StoreError>;

    /// One key by id.
    async fn api_key(&self, id: &str) -> Result<Option<StoredApiKey>, StoreError>;

    /// Revokes a key; `false` when there is no such key or it was revoked already.
    async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError>;

    /// Notes a key's use, at most once a minute so busy keys do not turn reads into writes.
    async fn touch_api_key(&self, id: &str) -> Result<(), StoreError>;

    /// Like [`api_key`](Self::api_key), but a store may answer with what it read up to
    /// [`RECENT`](super::RECENT) ago, provided it drops that copy whenever it writes the key
    /// itself: a key revoked elsewhere stops opening the API within that bound.
    async fn recent_api_key(&self, id: &str) -> Result<Option<StoredApiKey>, StoreError> {
        self.api_key(id).await
    }
}

#[async_trait::async_trait]
impl ApiKeys for SqlStore {
    async fn recent_api_key(&self, id: &str) -> Result<Option<StoredApiKey>, StoreError> {
        let key = id.to_owned();
        match self.keys.get(&key) {
            Lookup::Hit(stored) => Ok(stored),
            Lookup::Miss(miss) => {
                let stored = self.api_key(id).await?;
                self.keys.store(&key, miss, stored.clone());
                Ok(stored)
            }
        }
    }

    async fn insert_api_key(
        &self,
        id: &str,
        name: &str,
        secret_hash: &[u8],
    ) -> Result<(), StoreError> {
        let key = id;
        let (id, name, secret_hash) = (id.to_owned(), name.to_owned(), secret_hash.to_vec());
        self.change_api_key(key, move |connection| {
                Box::pin(async move {
                    query(
                        "INSERT INTO api_keys (id, name, secret_hash, created_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(id)
                    .bind(name)
                    .bind(secret_hash)
                    .bind(now())
                    .execute(connection)
                    .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn api_keys(&self) -> Result<Vec<StoredApiKey>, StoreError> {
        let rows = sqlx::query("SELECT * FROM api_keys ORDER BY created_at DESC, id")
            .fetch_all(&self.reads)
            .await?;
        Ok(rows.iter().map(from_row).collect::<Result<_, _>>()?)
    }

    async fn api_key(&self, id: &str) -> Result<Option<StoredApiKey>, StoreError> {
        let row = sqlx::query("SELECT * FROM api_keys WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.reads)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    async fn revoke_api_key(&self, id: &str) -> Result<bool, StoreError> {
        let key = id;
        let id = id.to_owned();
        self.change_api_key(key, move |connection| {
            Box::pin(async move {
                let done = query(
                    "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
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

    async fn touch_api_key(&self, id: &str) -> Result<(), StoreError> {
        let key = id;
        let id = id.to_owned();
        self.change_api_key(key, move |connection| {
                Box::pin(async move {
                    let now = now();
                    query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)")
                        .bind(id)
                        .bind(now)
                        .bind(now - 60)
                        .execute(connection)
                        .await?;
                    Ok(())
                })
            })
            .await
    }
}
