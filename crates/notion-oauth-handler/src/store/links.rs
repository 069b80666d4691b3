//! One-time connect links made through the API.

use super::sql::query;
use super::{SqlStore, StoreError, now};

/// A one-time link, as using it gives it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedLink {
    /// The `ref` it was made for.
    pub reference: Option<String>,
    /// Where the flow ends.
    pub return_to: Option<String>,
    /// Until when it would have worked (seconds since the Unix epoch): a link to start the flow
    /// again lives no longer.
    pub expires_at: i64,
}

/// One-time connect links (only their digests are kept).
#[async_trait::async_trait]
pub trait ConnectLinks: Send + Sync {
    /// Stores a one-time link by its token's digest.
    async fn insert_connect_link(
        &self,
        token_digest: &[u8],
        reference: Option<&str>,
        return_to: Option<&str>,
        expires_at: i64,
    ) -> Result<(), StoreError>;

    /// Uses a one-time link: what it was made with, or `None` when it is unknown, used or
    /// expired. One statement, so two clicks cannot both use it.
    async fn use_connect_link(&self, token_digest: &[u8]) -> Result<Option<UsedLink>, StoreError>;
}

#[async_trait::async_trait]
impl ConnectLinks for SqlStore {
    async fn insert_connect_link(
        &self,
        token_digest: &[u8],
        reference: Option<&str>,
        return_to: Option<&str>,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let digest = token_digest.to_vec();
        let (reference, return_to) = (reference.map(str::to_owned), return_to.map(str::to_owned));
        self.writer
            .statement(move |connection| {
                Box::pin(async move {
                    query("INSERT INTO connect_links (token_hash, ref, return_to, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)")
                        .bind(digest)
                        .bind(reference)
                        .bind(return_to)
                        .bind(expires_at)
                        .bind(now())
                        .execute(connection)
                        .await?;
                    Ok(())
                })
            })
            .await
    }

    async fn use_connect_link(&self, token_digest: &[u8]) -> Result<Option<UsedLink>, StoreError> {
        let digest = token_digest.to_vec();
        self.writer
            .statement(move |connection| {
                Box::pin(async move {
                    let row = query(
                        "UPDATE connect_links SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2
                         RETURNING ref, return_to, expires_at",
                    )
                    .bind(digest)
                    .bind(now())
                    .fetch_optional(connection)
                    .await?;
                    let Some(row) = row else { return Ok(None) };
                    Ok(Some(UsedLink {
                        reference: row.try_get("ref")?,
                        return_to: row.try_get("return_to")?,
                        expires_at: row.try_get("expires_at")?,
                    }))
                })
            })
            .await
    }
}
