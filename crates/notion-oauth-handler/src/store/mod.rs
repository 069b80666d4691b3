//! Where everything lives: SQLite (embedded, the default) or PostgreSQL (to run several
//! instances), with tokens sealed by the vault before they are written.
//!
//! One `Store` handle, with the queries split by what they are about: connections (and their
//! refresh lock), their events and deliveries, API keys and connect links. The SQL is the same for
//! both backends (numbered parameters, `ON CONFLICT`, `UPDATE … RETURNING`); only the migrations
//! and a few connection settings differ. Locks are rows with leases, not backend features, so the
//! same code keeps refreshes and deliveries single across processes on either.

mod api_keys;
mod connections;
mod events;
mod links;
mod outbox;
mod refresh;

use std::time::Duration;

use sqlx::AnyPool;
use sqlx::Executor;
use sqlx::SqlSafeStr;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};

pub use api_keys::StoredApiKey;
pub use connections::{ConnectionFilter, ConnectionSummary, StoredTokens, Upserted};
pub use events::Event;
pub use outbox::{Delivery, DeliverySummary};
pub use refresh::Claim;

use std::sync::Arc;

use crate::config::Deliveries;

use crate::vault::VaultError;

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database failed: {0}")]
    Database(#[from] sqlx::Error),
    #[error("the database schema could not be brought up to date: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error(transparent)]
    Vault(#[from] VaultError),
    #[error("a stored token is not valid text")]
    Corrupt,
    #[error("Notion's answer could not be serialized for storage: {0}")]
    Serialize(#[source] serde_json::Error),
    #[error("storage.url must be a SQLite file (sqlite:…) or a PostgreSQL database (postgres://…)")]
    UnknownBackend,
}

/// The database, shared by all requests. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    /// Which targets want which events: consulted when an event is recorded.
    deliveries: Arc<Deliveries>,
}

/// Which database a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `sqlite:` or `postgres:`/`postgresql:` URLs; `None` for anything else.
    pub fn of(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Self::Postgres)
        } else {
            None
        }
    }
}

fn migrator(backend: Backend) -> Migrator {
    let migration = |version: i64, description: &'static str, sql: &'static str| {
        Migration::new(
            version,
            description.into(),
            MigrationType::Simple,
            sql.into_sql_str(),
            false,
        )
    };
    let first = match backend {
        Backend::Sqlite => include_str!("../../migrations/sqlite/0001_connections.sql"),
        Backend::Postgres => include_str!("../../migrations/postgres/0001_connections.sql"),
    };
    Migrator::with_migrations(vec![migration(1, "connections", first)])
}

/// A SQLite URL that creates the file (or refuses to), whatever else it says.
fn sqlite_url(url: &str, create: bool) -> String {
    let mode = if create { "rwc" } else { "rw" };
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let kept: Vec<&str> =
        query.split('&').filter(|p| !p.is_empty() && !p.starts_with("mode=")).collect();
    let mut joined = format!("{path}?mode={mode}");
    for param in kept {
        joined.push('&');
        joined.push_str(param);
    }
    joined
}

/// Seconds since the Unix epoch: every instant in the database is one of these.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl Store {
    /// Opens (creating if needed) the database at `url` and brings its schema up to date.
    ///
    /// # Errors
    /// An unusable URL or file, or a failed migration.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::open(url, true).await
    }

    /// Opens a database that must exist already (for inspection commands, which should not
    /// leave an empty database behind a mistyped path).
    ///
    /// # Errors
    /// A missing file, or see [`Store::connect`].
    pub async fn open_existing(url: &str) -> Result<Self, StoreError> {
        Self::open(url, false).await
    }

    async fn open(url: &str, create: bool) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url).ok_or(StoreError::UnknownBackend)?;
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::UnknownBackend);
        }
        let url = match backend {
            Backend::Sqlite => sqlite_url(url, create),
            Backend::Postgres => url.to_owned(),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(8)
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        // Wait for a busy writer rather than failing at once: several processes
                        // can share the file.
                        connection.execute("PRAGMA busy_timeout = 5000").await?;
                        connection.execute("PRAGMA foreign_keys = ON").await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await?;
        if backend == Backend::Sqlite {
            // WAL lets readers (readiness checks, listings) run beside the writer; it is a
            // property of the file, so once is enough.
            pool.execute("PRAGMA journal_mode = WAL").await?;
        }
        // sqlx's SQLite migrator takes no lock: two processes opening a new database at once can
        // both try the first migration, and one fails. A second look finds it applied.
        let mut attempt = 0;
        loop {
            match migrator(backend).run(&pool).await {
                Ok(()) => break,
                Err(_) if attempt < 3 => {
                    attempt += 1;
                    tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
                }
                Err(error) => return Err(error.into()),
            }
        }
        let deliveries = Arc::new(Deliveries::none());
        Ok(Self { pool, deliveries })
    }

    /// The same store, queueing events for `deliveries`' targets.
    #[must_use]
    pub fn with_deliveries(mut self, deliveries: Deliveries) -> Self {
        self.deliveries = Arc::new(deliveries);
        self
    }

    /// Whether the database answers.
    ///
    /// # Errors
    /// When it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Records a state's nonce as used. `false` when it was used before: a replay.
    ///
    /// # Errors
    /// Database failures.
    pub async fn consume_state(&self, nonce: &str, expires_at: i64) -> Result<bool, StoreError> {
        // Expired nonces can never verify again (their state is too old), so they can go.
        sqlx::query("DELETE FROM used_states WHERE expires_at < $1")
            .bind(now())
            .execute(&self.pool)
            .await?;
        let inserted =
            sqlx::query("INSERT INTO used_states (nonce, expires_at) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING")
                .bind(nonce)
                .bind(expires_at)
                .execute(&self.pool)
                .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Closes the pool, flushing SQLite's write-ahead log.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}
