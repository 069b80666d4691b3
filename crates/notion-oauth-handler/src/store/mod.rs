//! Where everything lives, behind the [`Store`] trait: SQLite (embedded, the default) or
//! PostgreSQL (to run several instances), or an app's own implementation when it embeds the flow.
//!
//! The trait is the sum of one trait per concern, each in its own file with its SQL: connections,
//! their history, the refresh lock and its outcomes, the delivery outbox, API keys and connect
//! links. Each method is one atomic step: where it reports a change, the change, its history
//! entry and the deliveries queued for it are written together or not at all; that is what keeps
//! "at least once, in order" true across crashes, so a custom store must keep it too.
//!
//! Tokens reach a store sealed by the vault ([`SealedGrant`]) and leave it sealed
//! ([`SealedTokens`]); a store never holds the key. Webhook bodies are built by [`QueuedEvent`],
//! so that every store sends the same.
//!
//! A store is given its [`Routing`] (which targets hear which events) once, when it is made. An
//! embedding app that picks the store makes it from the routing the flow hands it:
//!
//! ```no_run
//! # async fn run(config: notion_oauth_handler::config::Config) -> anyhow::Result<()> {
//! use notion_oauth_handler::embed::NotionOAuth;
//! use notion_oauth_handler::store::SqlStore;
//!
//! // The built-in store, in a database the app chose at run time.
//! let notion = NotionOAuth::new(config)
//!     .with_store(|routing| SqlStore::connect("postgres://app@127.0.0.1/app", routing))
//!     .build()
//!     .await?;
//! # Ok(())
//! # }
//! ```
//!
//! [`SqlStore`] is both built-in backends: their SQL is the same (numbered parameters,
//! `ON CONFLICT`, `UPDATE … RETURNING`), so only the migrations and a few connection settings
//! differ, and one implementation keeps them from drifting apart. Locks are rows with leases, not
//! backend features, so the same code keeps refreshes and deliveries single across processes on
//! either.

mod api_keys;
mod batched;
mod connections;
mod events;
mod links;
mod outbox;
mod recent;
mod refresh;
mod routing;
mod sql;
mod summary;
mod used_states;
mod writer;

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AnyPool, Executor, SqlSafeStr};

pub use api_keys::{ApiKeys, StoredApiKey};
/// For implementing [`Store`] without depending on `async-trait` yourself.
pub use async_trait::async_trait;
pub use connections::{
    ConnectionFilter, Connections, Resealed, SealedGrant, SealedPair, SealedTokens, StoredTokens,
    WhichTokens,
};
pub use events::{DENIED_WINDOW, Event, History, HistoryEntry, QueuedEvent};
pub use links::{ConnectLinks, UsedLink};
pub use outbox::{Delivery, DeliverySummary, Outbox, Retry};
pub use recent::MAX_AGE as RECENT;
pub use refresh::{Claim, LeaseFor, RefreshFailure, RefreshFailureKind, Refreshes};
pub use routing::Routing;
pub use summary::ConnectionSummary;

use std::sync::Arc;

use crate::config::Backend;
use crate::domain::{BotId, ConnectionStatus};
use crate::vault::{Vault, VaultError};
use recent::Recent;
use sql::{Columns, query};
use writer::{Statements, Writer};

/// Why storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused, or could not be reached.
    #[error("the database failed: {0}")]
    Database(#[from] sqlx::Error),
    /// The schema could not be created or upgraded.
    #[error("the database schema could not be brought up to date: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored token does not open (wrong key, tampering), or one could not be sealed.
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// A stored token opened to bytes that are not text.
    #[error("a stored token is not valid text")]
    Corrupt,
    /// Notion's answer could not be turned into JSON (not expected).
    #[error("Notion's answer could not be serialized for storage: {0}")]
    Serialize(#[source] serde_json::Error),
    /// The SQLite file could not be made (its folder is missing or not writable).
    #[error("the database file {} cannot be created ({source}): does its folder exist, and may this user write there?", path.display())]
    CreateFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why the system refused.
        source: std::io::Error,
    },
    /// The URL names no database this build knows, or an in-memory one.
    #[error("storage.url must be a SQLite file (sqlite:…) or a PostgreSQL database (postgres://…)")]
    UnknownBackend,
    /// A write ran, but the transaction it was part of did not commit (SQLite commits several
    /// writes together; all of them get this).
    #[error("the database did not commit the write: {0}")]
    Commit(#[source] Arc<rusqlite::Error>),
    /// SQLite's writer refused a write.
    #[error("the database failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The task that writes to SQLite has stopped (the store was closed).
    #[error("the store is closed")]
    WriterStopped,
    /// A failure of a store other than the built-in one.
    #[error("the store failed: {0}")]
    Other(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Everything the server keeps. Shared by all requests as `Arc<dyn Store>`.
///
/// Implementations must make each method atomic and safe to call from several processes at
/// once (leases and claims are single statements in [`SqlStore`] for that reason). The tests in
/// `tests/api/store.rs` hold both built-in backends to this contract; a custom store can be
/// checked the same way.
#[async_trait::async_trait]
pub trait Store:
    Connections + History + Refreshes + Outbox + ApiKeys + ConnectLinks + std::fmt::Debug + 'static
{
    /// Whether the storage answers and takes writes (an error when it does not): what
    /// readiness reports.
    async fn ping(&self) -> Result<(), StoreError>;

    /// The ids of the master keys the stored tokens are sealed with, so that a configuration
    /// whose keys cannot open them is refused at start instead of failing every request. A
    /// store that cannot tell keeps the default, which names none.
    async fn sealing_key_ids(&self) -> Result<Vec<String>, StoreError> {
        Ok(Vec::new())
    }

    /// Up to `limit` connections whose tokens are sealed under a key other than `active_key_id`,
    /// for a key rotation. A store that cannot tell refuses (the default), rather than letting
    /// a rotation report that nothing needs the old key.
    async fn sealed_with_other_keys(
        &self,
        active_key_id: &str,
        limit: i64,
    ) -> Result<Vec<(BotId, SealedTokens)>, StoreError> {
        let _ = (active_key_id, limit);
        Err(StoreError::Other("this store cannot list tokens by key, so it cannot rotate".into()))
    }

    /// Stores `resealed` in place of `bot_id`'s tokens, if the connection is still at
    /// `generation` (a refresh or a new authorization meanwhile sealed its own pair).
    async fn reseal(
        &self,
        bot_id: &BotId,
        generation: i64,
        resealed: &Resealed,
    ) -> Result<bool, StoreError> {
        let _ = (bot_id, generation, resealed);
        Err(StoreError::Other("this store cannot rotate keys".into()))
    }

    /// Records a state's nonce as used until `expires_at`. `false` when it was used before: a
    /// replay. Two concurrent calls with one nonce must not both get `true`.
    async fn consume_state(&self, nonce: &str, expires_at: i64) -> Result<bool, StoreError>;

    /// Deletes what can never be used again: state nonces past their expiry, used or expired
    /// connect links, and deliveries delivered or dead before `deliveries_before` (seconds since
    /// the Unix epoch; a dead one deleted no longer holds back its connection's later events).
    /// Run now and then by a background pass; returns how many rows went. A store that expires
    /// them by itself can keep the default, which deletes nothing.
    async fn forget_expired(&self, deliveries_before: i64) -> Result<u64, StoreError> {
        let _ = deliveries_before;
        Ok(0)
    }

    /// What the metrics read at each scrape. A store that cannot tell keeps the default, which
    /// reports nothing stored and nothing waiting.
    async fn gauges(&self) -> Result<Gauges, StoreError> {
        Ok(Gauges::default())
    }

    /// Lets go of the storage (for SQLite, flushing its write-ahead log).
    async fn close(&self);
}

/// Counts the metrics report as gauges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Gauges {
    /// Connections by status; a status with none may be left out.
    pub connections: Vec<(ConnectionStatus, i64)>,
    /// Deliveries waiting to be made.
    pub pending_deliveries: i64,
    /// When the oldest of them was created (seconds since the Unix epoch).
    pub oldest_pending_at: Option<i64>,
}

impl dyn Store {
    /// A connection's tokens, opened; `None` when there is no such connection.
    ///
    /// # Errors
    /// Storage failures, or a ciphertext that does not open (wrong key, tampering).
    pub async fn tokens(
        &self,
        vault: &Vault,
        bot_id: &BotId,
    ) -> Result<Option<StoredTokens>, StoreError> {
        let sealed = self.sealed_tokens(bot_id).await?;
        sealed.map(|sealed| sealed.open(vault, bot_id, WhichTokens::AccessAndRefresh)).transpose()
    }

    /// Like [`tokens`](Self::tokens), from [`Connections::recent_sealed_tokens`], opening
    /// `which`: for answering a caller, never for deciding whether to refresh.
    ///
    /// # Errors
    /// See [`tokens`](Self::tokens).
    pub async fn recent_tokens(
        &self,
        vault: &Vault,
        bot_id: &BotId,
        which: WhichTokens,
    ) -> Result<Option<StoredTokens>, StoreError> {
        self.recent_sealed_tokens(bot_id)
            .await?
            .map(|sealed| sealed.open(vault, bot_id, which))
            .transpose()
    }
}

/// Opens a database that must exist already, for tools (see [`SqlStore::open_existing`]).
///
/// # Errors
/// See [`SqlStore::open_existing`].
pub async fn open_existing(url: &str) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(SqlStore::open_existing(url).await?))
}

/// The built-in store: a SQLite file or a PostgreSQL database. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SqlStore {
    /// Reads. On SQLite these connections refuse to write (`query_only`), so a write that
    /// bypasses the writer fails loudly instead of bringing back the lock convoy.
    reads: AnyPool,
    writer: Writer,
    routing: Arc<Routing>,
    /// Tokens read a moment ago, for the token API (see [`recent`] for why they stay honest).
    tokens: Arc<Recent<BotId, Option<SealedTokens>>>,
    /// API keys read a moment ago, for every API call.
    keys: Arc<Recent<String, Option<StoredApiKey>>>,
    /// On PostgreSQL, where concurrent callbacks' nonces are recorded together (on SQLite the
    /// writer's batches do that).
    used_states: Option<used_states::UsedStates>,
    /// On PostgreSQL, where connections nobody is routed to hear of are stored together.
    unheard_connections: Option<connections::UnheardConnections>,
}

/// Read connections. On SQLite, readers never wait for the writer (WAL), so a few are enough,
/// and each costs a thread and a page cache.
const READERS: u32 = 4;

/// Connections on PostgreSQL, where reads and writes share the pool.
const POSTGRES_CONNECTIONS: u32 = 8;

/// How long a SQLite connection waits for another process's write lock (the CLI, a second
/// instance) before failing.
const BUSY_TIMEOUT: &str = "PRAGMA busy_timeout = 5000";

/// Whether opening a database may create it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenMode {
    CreateIfMissing,
    /// For inspection commands, which should not leave an empty database behind a mistyped path.
    MustExist,
}

/// A text column read as one of the domain's words; an unknown one is a decoding error.
fn word<T>(row: &impl Columns, column: &str) -> Result<T, sqlx::Error>
where
    T: std::str::FromStr<Err = crate::domain::UnknownWord>,
{
    let text: String = row.column(column)?;
    text.parse().map_err(|error| sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: Box::new(error),
    })
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
    let (first, second) = match backend {
        Backend::Sqlite => (
            include_str!("../../migrations/sqlite/0001_connections.sql"),
            include_str!("../../migrations/sqlite/0002_readiness.sql"),
        ),
        Backend::Postgres => (
            include_str!("../../migrations/postgres/0001_connections.sql"),
            include_str!("../../migrations/postgres/0002_readiness.sql"),
        ),
    };
    Migrator::with_migrations(vec![
        migration(1, "connections", first),
        migration(2, "readiness", second),
    ])
}

/// A SQLite URL that creates the file (or refuses to), whatever else it says.
fn sqlite_url(url: &str, mode: OpenMode) -> String {
    let mode = match mode {
        OpenMode::CreateIfMissing => "rwc",
        OpenMode::MustExist => "rw",
    };
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

/// The file a SQLite URL names; `None` for PostgreSQL (or a URL that names no file).
pub fn sqlite_file(url: &str) -> Option<std::path::PathBuf> {
    if Backend::of(url)? != Backend::Sqlite {
        return None;
    }
    Some(SqliteConnectOptions::from_str(url).ok()?.get_filename().to_owned())
}

/// Seconds since the Unix epoch: every instant in the database is one of these.
pub fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

impl SqlStore {
    /// Opens (creating if needed) the database at `url`, brings its schema up to date, and
    /// queues each event for the targets `routing` names. [`Routing::none`] is for tools that
    /// make changes nobody hears of.
    ///
    /// # Errors
    /// An unusable URL or file, or a failed migration.
    pub async fn connect(url: &str, routing: Routing) -> Result<Self, StoreError> {
        Self::open(url, OpenMode::CreateIfMissing, routing).await
    }

    /// Opens a database that must exist already, for tools that inspect it: they should not
    /// leave an empty database behind a mistyped path, and the few changes they make
    /// (redelivering, revoking an API key) are heard by nobody.
    ///
    /// # Errors
    /// A missing file, or see [`SqlStore::connect`].
    pub async fn open_existing(url: &str) -> Result<Self, StoreError> {
        Self::open(url, OpenMode::MustExist, Routing::none()).await
    }

    async fn open(url: &str, mode: OpenMode, routing: Routing) -> Result<Self, StoreError> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url).ok_or(StoreError::UnknownBackend)?;
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::UnknownBackend);
        }
        let routing = Arc::new(routing);
        match backend {
            Backend::Sqlite => Self::open_sqlite(&sqlite_url(url, mode), mode, routing).await,
            Backend::Postgres => {
                let pool = AnyPoolOptions::new()
                    .max_connections(POSTGRES_CONNECTIONS)
                    // A dead connection fails its query and leaves the pool; a ping before
                    // every checkout cost the token path a fifth of its time to find that out
                    // sooner.
                    .test_before_acquire(false)
                    .connect(url)
                    .await?;
                migrate(Backend::Postgres, &pool).await?;
                let mut store = Self::new(pool.clone(), Writer::Pool(pool.clone()), routing);
                store.used_states = Some(used_states::UsedStates::start(pool.clone()));
                store.unheard_connections = Some(connections::UnheardConnections::start(pool));
                Ok(store)
            }
        }
    }

    async fn open_sqlite(
        url: &str,
        mode: OpenMode,
        routing: Arc<Routing>,
    ) -> Result<Self, StoreError> {
        let path = SqliteConnectOptions::from_str(url)?.get_filename().to_owned();
        if mode == OpenMode::CreateIfMissing {
            create_private(&path)
                .map_err(|source| StoreError::CreateFile { path: path.clone(), source })?;
        }
        // The migrator takes a pool (given one connection, its future is not `Send`, which an
        // embedding app's store factory needs); a pool of one, for the migration only.
        let setup = AnyPoolOptions::new().max_connections(1).connect(url).await?;
        let migrated = migrate(Backend::Sqlite, &setup).await;
        setup.close().await;
        migrated?;
        // The file exists now: a reader opened later must not make an empty one in its place.
        let existing = sqlite_url(url, OpenMode::MustExist);
        let reads = AnyPoolOptions::new()
            .max_connections(READERS)
            .test_before_acquire(false)
            .after_connect(|connection, _| {
                Box::pin(async move {
                    connection.execute(BUSY_TIMEOUT).await?;
                    connection.execute("PRAGMA query_only = ON").await?;
                    Ok(())
                })
            })
            .connect(&existing)
            .await?;
        Ok(Self::new(reads, Writer::sqlite(path).await?, routing))
    }

    /// A transaction that changes `bot_id`'s connection: its recent copy is dropped before the
    /// answer (see [`recent`]).
    async fn change_connection<T: Send + 'static>(
        &self,
        bot_id: &BotId,
        statements: Statements,
        work: impl writer::Work<T>,
    ) -> Result<T, StoreError> {
        let (writer, tokens, bot_id) = (self.writer.clone(), self.tokens.clone(), bot_id.clone());
        let write = async move { writer.write(statements, work).await };
        then_forget(write, move || tokens.forget(&bot_id)).await
    }

    /// A statement that changes API key `id`: its recent copy is dropped before the answer.
    async fn change_api_key<T: Send + 'static>(
        &self,
        id: &str,
        work: impl writer::Work<T>,
    ) -> Result<T, StoreError> {
        let (writer, keys, id) = (self.writer.clone(), self.keys.clone(), id.to_owned());
        let write = async move { writer.write(Statements::One, work).await };
        then_forget(write, move || keys.forget(&id)).await
    }

    fn new(reads: AnyPool, writer: Writer, routing: Arc<Routing>) -> Self {
        let (tokens, keys) = (Arc::new(Recent::new()), Arc::new(Recent::new()));
        Self { reads, writer, routing, tokens, keys, used_states: None, unheard_connections: None }
    }
}

/// Runs `write`, then `forget` (dropping a recent copy), in a task of their own: a write whose
/// caller went away (a client that disconnected) still commits, and its copy must still go.
async fn then_forget<T: Send + 'static>(
    write: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    forget: impl FnOnce() + Send + 'static,
) -> Result<T, StoreError> {
    let change = tokio::spawn(async move {
        let written = write.await;
        forget();
        written
    });
    change.await.map_err(|_| StoreError::WriterStopped)?
}

/// Makes an empty database file that only its owner can read, unless there is one: it holds
/// sealed tokens and the API keys' digests. SQLite gives its `-wal` and `-shm` files the mode of
/// the database file.
fn create_private(path: &std::path::Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

/// Brings the schema up to date (on SQLite, in WAL mode first).
async fn migrate(backend: Backend, pool: &AnyPool) -> Result<(), StoreError> {
    // Several processes may open a new database at once. Switching the file to WAL needs a lock
    // that SQLite does not wait for, and sqlx's SQLite migrator takes none, so two processes can
    // both try the first migration and one fails: on a failure, a second look finds it done.
    let mut attempt = 0;
    loop {
        let prepared = async {
            if backend == Backend::Sqlite {
                // WAL lets readers run beside the writer; it is a property of the file.
                pool.execute("PRAGMA journal_mode = WAL").await?;
            }
            migrator(backend).run(pool).await.map_err(StoreError::from)
        };
        match prepared.await {
            Ok(()) => return Ok(()),
            Err(_) if attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

#[async_trait::async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.reads).await?;
        // A read can succeed on a database that refuses every write (a full disk, a read-only
        // or deleted file): readiness writes, through the same writer as everything else.
        self.writer
            .statement(|connection| {
                Box::pin(async move {
                    query(
                        "INSERT INTO readiness (id, checked_at) VALUES (1, $1)
                         ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
                    )
                    .bind(now())
                    .execute(connection)
                    .await
                    .map(drop)
                })
            })
            .await
    }

    async fn sealed_with_other_keys(
        &self,
        active_key_id: &str,
        limit: i64,
    ) -> Result<Vec<(BotId, SealedTokens)>, StoreError> {
        let rows = sqlx::query(
            "SELECT bot_id, access_token, refresh_token, status, status_reason, generation,
                 refreshed_at FROM connections
             WHERE key_id != $1 AND (access_token IS NOT NULL OR refresh_token IS NOT NULL)
             ORDER BY bot_id LIMIT $2",
        )
        .bind(active_key_id)
        .bind(limit)
        .fetch_all(&self.reads)
        .await?;
        rows.iter()
            .map(|row| {
                let bot_id = BotId::new(row.column::<String>("bot_id")?);
                Ok((bot_id, connections::sealed_tokens(row)?))
            })
            .collect()
    }

    async fn reseal(
        &self,
        bot_id: &BotId,
        generation: i64,
        resealed: &Resealed,
    ) -> Result<bool, StoreError> {
        let (bot, resealed) = (bot_id.clone(), resealed.clone());
        self.change_connection(bot_id, Statements::One, move |connection| {
            Box::pin(async move {
                let done = query(
                    "UPDATE connections SET access_token = $3, refresh_token = $4, key_id = $5
                     WHERE bot_id = $1 AND generation = $2",
                )
                .bind(bot.as_str())
                .bind(generation)
                .bind(resealed.access_token.as_deref())
                .bind(resealed.refresh_token.as_deref())
                .bind(resealed.key_id)
                .execute(connection)
                .await?;
                Ok(done.rows_affected() == 1)
            })
        })
        .await
    }

    async fn gauges(&self) -> Result<Gauges, StoreError> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT status, COUNT(*) FROM connections GROUP BY status")
                .fetch_all(&self.reads)
                .await?;
        let connections = rows
            .into_iter()
            .map(|(status, count)| Ok((status.parse().map_err(|_| StoreError::Corrupt)?, count)))
            .collect::<Result<_, StoreError>>()?;
        let (pending_deliveries, oldest_pending_at): (i64, Option<i64>) =
            sqlx::query_as("SELECT COUNT(*), MIN(created_at) FROM outbox WHERE status = 'pending'")
                .fetch_one(&self.reads)
                .await?;
        Ok(Gauges { connections, pending_deliveries, oldest_pending_at })
    }

    async fn sealing_key_ids(&self) -> Result<Vec<String>, StoreError> {
        let ids = sqlx::query_scalar(
            "SELECT DISTINCT key_id FROM connections
             WHERE access_token IS NOT NULL OR refresh_token IS NOT NULL ORDER BY key_id",
        )
        .fetch_all(&self.reads)
        .await?;
        Ok(ids)
    }

    async fn consume_state(&self, nonce: &str, expires_at: i64) -> Result<bool, StoreError> {
        if let Some(used_states) = &self.used_states {
            return used_states.consume(nonce, expires_at).await;
        }
        let nonce = nonce.to_owned();
        self.writer
            .statement(move |connection| {
                Box::pin(async move {
                    let inserted = query(
                        "INSERT INTO used_states (nonce, expires_at) VALUES ($1, $2) ON CONFLICT (nonce) DO NOTHING",
                    )
                    .bind(nonce)
                    .bind(expires_at)
                    .execute(connection)
                    .await?;
                    Ok(inserted.rows_affected() == 1)
                })
            })
            .await
    }

    async fn forget_expired(&self, deliveries_before: i64) -> Result<u64, StoreError> {
        self.writer
            .transaction(move |connection| {
                Box::pin(async move {
                    let now = now();
                    // Expired nonces can never verify again (their state is too old), and used
                    // or expired links can never be used again.
                    let states = query("DELETE FROM used_states WHERE expires_at < $1")
                        .bind(now)
                        .execute(&mut *connection)
                        .await?;
                    let links = query(
                        "DELETE FROM connect_links WHERE expires_at < $1 OR used_at IS NOT NULL",
                    )
                    .bind(now)
                    .execute(&mut *connection)
                    .await?;
                    // A dead delivery's next_attempt_at is when its last attempt was due: the
                    // retention counts from then, and a redelivered one starts again.
                    let deliveries = query(
                        "DELETE FROM outbox WHERE (status = 'delivered' AND delivered_at < $1)
                             OR (status = 'dead' AND next_attempt_at < $1)",
                    )
                    .bind(deliveries_before)
                    .execute(&mut *connection)
                    .await?;
                    Ok(states.rows_affected() + links.rows_affected() + deliveries.rows_affected())
                })
            })
            .await
    }

    async fn close(&self) {
        self.writer.close().await;
        self.reads.close().await;
    }
}
