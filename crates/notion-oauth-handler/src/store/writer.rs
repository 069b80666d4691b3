//! Where the built-in store's writes go: on SQLite one connection on a thread of its own, fed by
//! a queue, committing whatever queued up meanwhile in one transaction (group commit); on
//! PostgreSQL the pool.
//!
//! Why SQLite gets one writer: SQLite lets one transaction write at a time, and a connection that
//! finds the lock taken sleeps and retries (1, 2, 5 … 100 ms) instead of being woken when it
//! frees. With every pooled connection writing, a busy server spent more time asleep in that
//! retry loop than working, and each transaction paid its own fsync. A single writer never meets
//! its own lock, takes it up front (`BEGIN IMMEDIATE`) so a transaction never fails half-way to
//! upgrade a read lock, and one fsync serves every write of a batch. A write of several
//! statements runs inside a savepoint, so one that fails is undone alone; nobody is answered
//! before the batch is committed, so an answer still means "on disk".
//!
//! Why that writer is rusqlite on its own thread, not sqlx: sqlx's SQLite driver runs each
//! connection on a thread of its own and sends every statement there and back, about eleven
//! thread switches per callback, which made the scheduler the server's top cost. The same write
//! measured both ways (`crates/bench/sqlite-floor`): 389 µs of CPU and 12.4 switches per write
//! with sqlx, 101 µs and 0.23 on one rusqlite thread, 3.7 times the writes per second. Reads
//! stay on sqlx's pool, which the migrations and PostgreSQL need anyway.
//!
//! Why the writer checkpoints by itself: SQLite copies its write-ahead log back into the database
//! file (a checkpoint: page writes and an fsync of the database) inside the commit that brings
//! the log to 1 000 pages, so under load every few dozen milliseconds one batch stalled while the
//! queue behind it grew, and a quarter of the machine sat idle. The writer takes that over: a
//! quiet server (the batch came after the writer had waited [`Checkpoints::QUIET`]) still
//! checkpoints at [`Checkpoints::IDLE`] pages, a busy one only at [`Checkpoints::BUSY`], so it
//! stalls a tenth as often, and a page written many times in between is copied once. Measured
//! with `noh-bench` (`docs/BENCHMARKS.md`, eighth session): callbacks 3.96 → 4.68 times the
//! Python package's, complete flows 3.00 → 3.14 times, for a longer tail (a rarer stall is a
//! longer one: callback p99 26 → 30 ms).
//! (An empty queue is no sign of quiet: under load, a batch takes everything queued.)
//!
//! Why PostgreSQL does not: it has row locks and commits concurrent transactions together by
//! itself, so its writes run on the pool, and a single statement runs without a transaction
//! around it (two round trips fewer). What it does not share is the work of each statement, so
//! the two writes of every flow, its state's nonce and (when no target hears of it) its
//! connection, are each made for many callbacks by one statement (see `batched`).

use std::cell::Cell;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_util::future::BoxFuture;
use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use super::sql::Writes;

/// Writes waiting for the SQLite writer. Enough to absorb a burst; beyond it callers wait to
/// queue, which is the backpressure a full disk or a slow fsync needs.
const QUEUE: usize = 1024;

/// The most writes committed together. Bounded so the first in a batch does not wait long for
/// the last.
const BATCH: usize = 128;

/// Statements the writer runs for every batch: kept prepared.
const STATEMENTS_KEPT: usize = 64;

/// When the writer checkpoints: how many pages the write-ahead log holds before its content is
/// copied back into the database file.
#[derive(Debug, Clone, Copy)]
pub(super) struct Checkpoints {
    /// After a batch that came while the server was quiet. SQLite's own default for every
    /// commit, so a quiet server keeps a log of about 4 MB.
    pub(super) idle: i32,
    /// After any batch: the log's bound under sustained load (about 40 MB of 4 KiB pages).
    pub(super) busy: i32,
}

impl Checkpoints {
    pub(super) const IDLE: i32 = 1_000;
    pub(super) const BUSY: i32 = 10_000;
    /// How long the writer waits for a write before the server counts as quiet. Under load the
    /// next write is queued before a batch ends; below about twenty writes a second it is not.
    pub(super) const QUIET: Duration = Duration::from_millis(50);

    pub(super) const DEFAULT: Self = Self { idle: Self::IDLE, busy: Self::BUSY };

    /// Whether a log of `pages` pages is checkpointed after a batch that came after the writer
    /// had waited `waited`.
    fn due(self, pages: i32, waited: Duration) -> bool {
        pages >= self.busy || (waited >= Self::QUIET && pages >= self.idle)
    }
}

thread_local! {
    /// Pages in the write-ahead log after the writer's last commit, as SQLite reports them. Each
    /// writer has a thread of its own, so its count is its own.
    static LOG_PAGES: Cell<i32> = const { Cell::new(0) };
}

/// Notes the log's size after each commit. Registering it replaces SQLite's automatic
/// checkpoint, which the writer runs itself ([`Checkpoints`]).
fn note_log_pages(_: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    LOG_PAGES.with(|count| count.set(pages));
    Ok(())
}

/// A write: statements run on the connection it is given, which is inside a transaction unless
/// the write is a [`Writer::statement`] on PostgreSQL. On SQLite its future must not wait on
/// anything but its statements (it is polled once, on the writer's thread).
pub(super) trait Work<T>:
    for<'c> FnOnce(&'c mut dyn Writes) -> BoxFuture<'c, Result<T, StoreError>> + Send + 'static
{
}

impl<T, F> Work<T> for F where
    F: for<'c> FnOnce(&'c mut dyn Writes) -> BoxFuture<'c, Result<T, StoreError>> + Send + 'static
{
}

/// Where writes go.
#[derive(Clone, Debug)]
pub(super) enum Writer {
    /// PostgreSQL: each write on a pooled connection.
    Pool(AnyPool),
    /// SQLite: the queue of the one writing connection.
    Queue(mpsc::Sender<Message>),
}

/// What the SQLite writer is asked to do.
pub(super) enum Message {
    Write(Box<dyn Job>),
    /// Finish what is queued before, close the connection, then say so.
    Close(oneshot::Sender<()>),
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Write(_) => "Write",
            Self::Close(_) => "Close",
        })
    }
}

impl Writer {
    /// Starts the thread that owns SQLite's writing connection to the database file at `path`
    /// (which exists: the migration made it). The thread ends, closing the connection, when
    /// every clone of the writer is dropped.
    pub(super) async fn sqlite(path: PathBuf) -> Result<Self, StoreError> {
        Self::sqlite_checkpointing(path, Checkpoints::DEFAULT).await
    }

    /// [`Writer::sqlite`], checkpointing as `checkpoints` says.
    pub(super) async fn sqlite_checkpointing(
        path: PathBuf,
        checkpoints: Checkpoints,
    ) -> Result<Self, StoreError> {
        let (queue, messages) = mpsc::channel(QUEUE);
        let (opened, open) = oneshot::channel();
        std::thread::Builder::new()
            .name("sqlite-writer".to_owned())
            .spawn(move || match open_writing(&path) {
                Ok((connection, file)) => {
                    let _ = opened.send(Ok(()));
                    write_in_batches(connection, &file, checkpoints, messages);
                }
                Err(error) => {
                    let _ = opened.send(Err(error));
                }
            })
            .map_err(|error| StoreError::Other(Box::new(error)))?;
        open.await.map_err(|_| StoreError::WriterStopped)??;
        Ok(Self::Queue(queue))
    }

    /// Closes SQLite's writing connection once the writes queued before are done (SQLite
    /// checkpoints its write-ahead log when the last connection closes). Later writes fail with
    /// [`StoreError::WriterStopped`].
    pub(super) async fn close(&self) {
        if let Self::Queue(queue) = self {
            let (closed, done) = oneshot::channel();
            if queue.send(Message::Close(closed)).await.is_ok() {
                let _ = done.await;
            }
        }
    }

    /// Runs `work` as [`transaction`](Self::transaction) or [`statement`](Self::statement) does,
    /// as `statements` says.
    pub(super) async fn write<T: Send + 'static>(
        &self,
        statements: Statements,
        work: impl Work<T>,
    ) -> Result<T, StoreError> {
        match statements {
            Statements::One => self.statement(work).await,
            Statements::Several => self.transaction(work).await,
        }
    }

    /// Runs `work` in a transaction of its own (PostgreSQL) or of its batch (SQLite); answers
    /// once it is committed.
    pub(super) async fn transaction<T: Send + 'static>(
        &self,
        work: impl Work<T>,
    ) -> Result<T, StoreError> {
        match self {
            Self::Pool(pool) => {
                let mut transaction = pool.begin().await?;
                let value = work(&mut *transaction).await?;
                transaction.commit().await?;
                Ok(value)
            }
            Self::Queue(queue) => queued(queue, Statements::Several, work).await,
        }
    }

    /// Runs `work`, which writes with one statement (and may read besides): on its own on
    /// PostgreSQL, in a batch on SQLite; either way with no savepoint or transaction of its
    /// own, since a statement that fails leaves nothing behind by itself. Work that fails after
    /// its statement succeeded (decoding the row it returned, say) may see that statement kept
    /// or undone with its batch: only use this where either is harmless.
    pub(super) async fn statement<T: Send + 'static>(
        &self,
        work: impl Work<T>,
    ) -> Result<T, StoreError> {
        match self {
            Self::Pool(pool) => work(&mut *pool.acquire().await?).await,
            Self::Queue(queue) => queued(queue, Statements::One, work).await,
        }
    }
}

/// How many statements of a write change something: one needs no savepoint to be undone alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Statements {
    One,
    Several,
}

async fn queued<T: Send + 'static>(
    queue: &mpsc::Sender<Message>,
    statements: Statements,
    work: impl Work<T>,
) -> Result<T, StoreError> {
    let (reply, answer) = oneshot::channel();
    queue
        .send(Message::Write(Box::new(Queued { work, statements, reply })))
        .await
        .map_err(|_| StoreError::WriterStopped)?;
    // A write already queued runs and commits even if the caller stops waiting: its caller may
    // be gone, but what it reported (a consumed state, a stored pair) must not be half-done.
    answer.await.map_err(|_| StoreError::WriterStopped)?
}

/// A queued write, its result type erased.
pub(super) trait Job: Send {
    /// Runs the write's statements, which run as the write is polled and never wait, so one
    /// poll finishes it; what it returns is answered after the commit.
    fn run(self: Box<Self>, connection: &mut dyn Writes) -> Box<dyn Ran>;

    /// Whether it changes things with one statement or several.
    fn statements(&self) -> Statements;

    /// Answers without running: the batch could not start or went wrong before it.
    fn abandon(self: Box<Self>, error: Arc<rusqlite::Error>);

    /// Answers without running: the writer has stopped.
    fn abandon_stopped(self: Box<Self>);
}

impl std::fmt::Debug for dyn Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

/// A write that ran, waiting for its batch's commit.
pub(super) trait Ran: Send {
    /// Whether its statements are to be kept.
    fn succeeded(&self) -> bool;

    /// Whether it waited on something besides its statements, so that it did not finish and
    /// what it did cannot be told apart from what it would have done.
    fn waited(&self) -> bool;

    /// Answers the caller: its own result once committed, or why the commit failed.
    fn answer(self: Box<Self>, committed: Result<(), Arc<rusqlite::Error>>);
}

struct Queued<T, F> {
    work: F,
    statements: Statements,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

struct Outcome<T> {
    result: Result<T, StoreError>,
    reply: oneshot::Sender<Result<T, StoreError>>,
    waited: bool,
}

impl<T: Send + 'static, F: Work<T>> Job for Queued<T, F> {
    fn run(self: Box<Self>, connection: &mut dyn Writes) -> Box<dyn Ran> {
        let Queued { work, reply, .. } = *self;
        let mut write = work(connection);
        let (result, waited) = match write.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(result) => (result, false),
            Poll::Pending => (Err(StoreError::Sqlite(failure(WAITED))), true),
        };
        Box::new(Outcome { result, reply, waited })
    }

    fn statements(&self) -> Statements {
        self.statements
    }

    fn abandon(self: Box<Self>, error: Arc<rusqlite::Error>) {
        // The caller may have gone; then nobody needs the answer.
        let _ = self.reply.send(Err(StoreError::Commit(error)));
    }

    fn abandon_stopped(self: Box<Self>) {
        let _ = self.reply.send(Err(StoreError::WriterStopped));
    }
}

impl<T: Send> Ran for Outcome<T> {
    fn succeeded(&self) -> bool {
        self.result.is_ok()
    }

    fn waited(&self) -> bool {
        self.waited
    }

    fn answer(self: Box<Self>, committed: Result<(), Arc<rusqlite::Error>>) {
        let answer = match (self.result, committed) {
            (Ok(_), Err(error)) => Err(StoreError::Commit(error)),
            (result, _) => result,
        };
        let _ = self.reply.send(answer);
    }
}

/// The writing connection, set up as every batch expects it, and the file it writes.
fn open_writing(path: &Path) -> Result<(rusqlite::Connection, DatabaseFile), StoreError> {
    use rusqlite::OpenFlags;
    let connection = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    // FULL makes each commit durable before it is answered; with one fsync per batch it costs
    // little. The busy timeout is for other processes' writes (the CLI, a second instance).
    connection.execute_batch(
        "PRAGMA busy_timeout = 5000; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
    )?;
    connection.set_prepared_statement_cache_capacity(STATEMENTS_KEPT);
    connection.wal_hook(Some(note_log_pages));
    let file = DatabaseFile::of(path)
        .map_err(|source| StoreError::CreateFile { path: path.to_owned(), source })?;
    Ok((connection, file))
}

/// The database file the writer opened. A file deleted (or replaced) under a running server
/// keeps taking writes through the open handle, and they vanish with the handle: the writer
/// checks before each batch, and refuses instead.
struct DatabaseFile {
    path: PathBuf,
    #[cfg(unix)]
    identity: (u64, u64),
}

impl DatabaseFile {
    fn of(path: &Path) -> std::io::Result<Self> {
        #[cfg(unix)]
        let identity = {
            use std::os::unix::fs::MetadataExt;
            let metadata = std::fs::metadata(path)?;
            (metadata.dev(), metadata.ino())
        };
        Ok(Self {
            path: path.to_owned(),
            #[cfg(unix)]
            identity,
        })
    }

    /// Whether the path still names the file opened; the error says what to do if not.
    fn still_there(&self) -> Result<(), rusqlite::Error> {
        #[cfg(unix)]
        {
            let now = Self::of(&self.path).ok().map(|file| file.identity);
            if now != Some(self.identity) {
                return Err(failure(&format!(
                    "the database file {} was deleted or replaced while the server ran, so \
                     nothing more is written to it: put the file back from a backup and restart",
                    self.path.display()
                )));
            }
        }
        Ok(())
    }
}

fn write_in_batches(
    mut connection: rusqlite::Connection,
    file: &DatabaseFile,
    checkpoints: Checkpoints,
    mut messages: mpsc::Receiver<Message>,
) {
    let mut batch = Vec::with_capacity(BATCH);
    let mut closes = Vec::new();
    while closes.is_empty() {
        // Sleep until a write comes, then take what queued meanwhile.
        let waiting = Instant::now();
        let Some(first) = messages.blocking_recv() else { break };
        let waited = waiting.elapsed();
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Write(job) if closes.is_empty() => batch.push(job),
                // Behind a close: the writer will be gone.
                Message::Write(job) => job.abandon_stopped(),
                Message::Close(reply) => closes.push(reply),
            }
            if batch.len() < BATCH {
                next = messages.try_recv().ok();
            }
        }
        if batch.is_empty() {
            continue;
        }
        match file.still_there().and_then(|()| writable(&mut connection, file)) {
            Ok(()) => {
                commit_batch(&mut connection, &mut batch);
                if checkpoints.due(LOG_PAGES.with(Cell::get), waited) {
                    checkpoint(&connection);
                }
            }
            Err(error) => {
                tracing::error!(error = %crate::telemetry::Chain(&error), "SQLite writes refused");
                let error = Arc::new(error);
                batch.drain(..).for_each(|job| job.abandon(error.clone()));
            }
        }
    }
    // Later writes find the queue closed rather than waiting on a writer that is gone.
    messages.close();
    while let Ok(message) = messages.try_recv() {
        match message {
            Message::Write(job) => job.abandon_stopped(),
            Message::Close(reply) => closes.push(reply),
        }
    }
    if let Err((_, error)) = connection.close() {
        tracing::warn!(error = %crate::telemetry::Chain(&error), "the SQLite writer did not close cleanly");
    }
    for reply in closes {
        let _ = reply.send(());
    }
}

/// Copies the write-ahead log into the database file as far as no reader still needs it
/// (`PASSIVE`, as SQLite's automatic checkpoint does); the next write then starts the log
/// over. A checkpoint that fails (a full disk) loses nothing: the pages stay in the log, and
/// the next one tries again.
fn checkpoint(connection: &rusqlite::Connection) {
    LOG_PAGES.with(|count| count.set(0));
    let done =
        connection.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get::<_, i64>(0));
    if let Err(error) = done {
        tracing::warn!(error = %crate::telemetry::Chain(&error), "SQLite could not copy its write-ahead log into the database file; it keeps the pages and tries again later");
    }
}

/// Makes sure the connection can write. SQLite opens a file it may not write read-only without
/// a word, and stays so: a server started while its database was not writable (mode, owner, a
/// read-only mount) would refuse every write until a restart. So a read-only connection is
/// opened again before each batch, until the file can be written.
fn writable(
    connection: &mut rusqlite::Connection,
    file: &DatabaseFile,
) -> Result<(), rusqlite::Error> {
    if !connection.is_readonly(rusqlite::MAIN_DB)? {
        return Ok(());
    }
    let not_writable = || {
        failure(&format!(
            "the database file {} (or its folder, for the -wal and -shm files) cannot be written by this process: check its mode, owner and mount; writing resumes by itself once it can",
            file.path.display()
        ))
    };
    match open_writing(&file.path) {
        Ok((reopened, _)) if !reopened.is_readonly(rusqlite::MAIN_DB)? => {
            tracing::info!(path = %file.path.display(), "the database file can be written again");
            *connection = reopened;
            Ok(())
        }
        _ => Err(not_writable()),
    }
}

/// Runs and commits one batch, then answers each of its writes.
fn commit_batch(connection: &mut rusqlite::Connection, batch: &mut Vec<Box<dyn Job>>) {
    if let Err(error) = control(connection, "BEGIN IMMEDIATE") {
        let error = Arc::new(error);
        batch.drain(..).for_each(|job| job.abandon(error.clone()));
        return;
    }
    // Alone in its batch, a write needs no savepoint: a failure rolls back the transaction.
    let alone = batch.len() == 1;
    let mut ran: Vec<Box<dyn Ran>> = Vec::with_capacity(batch.len());
    let mut broken = None;
    let mut jobs = batch.drain(..);
    for job in jobs.by_ref() {
        // A failed statement undoes itself; a savepoint is for writes of several.
        let savepoint = !alone && job.statements() == Statements::Several;
        if savepoint && let Err(error) = control(connection, "SAVEPOINT write") {
            let error = Arc::new(error);
            job.abandon(error.clone());
            broken = Some(error);
            break;
        }
        // A write that panics must not take the writer, and every later write, with it.
        let outcome = match std::panic::catch_unwind(AssertUnwindSafe(|| job.run(connection))) {
            Ok(outcome) => outcome,
            Err(_) => {
                broken = Some(Arc::new(failure(PANICKED)));
                break;
            }
        };
        let (failed, waited) = (!outcome.succeeded(), outcome.waited());
        ran.push(outcome);
        if waited {
            broken = Some(Arc::new(failure(WAITED)));
            break;
        }
        if savepoint {
            let ended = if failed {
                control(connection, "ROLLBACK TO write")
                    .and_then(|()| control(connection, "RELEASE write"))
            } else {
                control(connection, "RELEASE write")
            };
            if let Err(error) = ended {
                broken = Some(Arc::new(error));
                break;
            }
        }
        // SQLite ends a transaction by itself on some failures (a full disk, an I/O error),
        // even under a write that then reported success; the writes after would each commit
        // alone, outside the batch.
        if connection.is_autocommit() {
            broken = Some(Arc::new(failure(
                "SQLite undid the whole batch after a failed write (is the disk full?)",
            )));
            break;
        }
    }
    // The batch's transaction is in doubt: undo it all, and answer the writes not yet run
    // with the same error.
    if let Some(error) = &broken {
        jobs.for_each(|job| job.abandon(error.clone()));
    } else {
        drop(jobs);
    }
    let only_failures = ran.iter().all(|outcome| !outcome.succeeded());
    let committed = match broken {
        Some(error) => {
            roll_back(connection);
            Err(error)
        }
        // Nothing to keep: a rollback spares the fsync.
        None if only_failures => {
            roll_back(connection);
            Ok(())
        }
        None => control(connection, "COMMIT").map_err(|error| {
            roll_back(connection);
            Arc::new(error)
        }),
    };
    for outcome in ran {
        outcome.answer(committed.clone());
    }
}

/// A transaction statement, kept prepared.
fn control(connection: &rusqlite::Connection, sql: &str) -> Result<(), rusqlite::Error> {
    connection.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Ends a failed batch's transaction, unless SQLite already has.
fn roll_back(connection: &rusqlite::Connection) {
    if !connection.is_autocommit()
        && let Err(error) = control(connection, "ROLLBACK")
    {
        tracing::error!(error = %crate::telemetry::Chain(&error), "the SQLite writer could not roll back a failed batch");
    }
}

/// Why a write that waited was refused, with the rest of its batch. Not expected: every write
/// is the store's own code.
const WAITED: &str = "a write waited on something other than SQLite, so its batch was undone";

/// Why a batch was undone when one of its writes panicked (a bug; the writer goes on).
const PANICKED: &str = "a write failed unexpectedly (a bug), so its batch was undone";

/// An error of the writer's own, worded for the log.
fn failure(message: &str) -> rusqlite::Error {
    rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
        Some(message.to_owned()),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::sql::query;
    use super::*;
    use futures_util::future::join_all;
    use sqlx::{AnyConnection, Connection, Executor};

    #[tokio::test]
    async fn a_write_of_several_statements_that_fails_in_a_batch_is_undone_alone() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("batch.db").display());
        let mut setup = AnyConnection::connect(&url).await.unwrap();
        setup.execute("PRAGMA journal_mode = WAL").await.unwrap();
        setup.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)").await.unwrap();
        setup.close().await.unwrap();
        let writer = Writer::sqlite(dir.path().join("batch.db")).await.unwrap();

        // The writer's thread is held by a first write while the 64 queue up, so they make one
        // batch (savepoints and all). Each inserts two rows; every eighth fails between its two.
        let holder = writer.clone();
        let held = tokio::spawn(async move {
            holder
                .statement(|_connection| {
                    Box::pin(async move {
                        std::thread::sleep(std::time::Duration::from_millis(300));
                        Ok(())
                    })
                })
                .await
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let writes = (0..64i64).map(|n| {
            let writer = writer.clone();
            async move {
                let insert = "INSERT INTO t (n) VALUES ($1)";
                writer
                    .transaction(move |connection| {
                        Box::pin(async move {
                            query(insert).bind(n * 2).execute(&mut *connection).await?;
                            if n % 8 == 0 {
                                return Err(StoreError::Corrupt);
                            }
                            query(insert).bind(n * 2 + 1).execute(&mut *connection).await?;
                            Ok(n)
                        })
                    })
                    .await
            }
        });
        let answers = join_all(writes).await;
        held.await.unwrap().unwrap();

        for (n, answer) in (0..64i64).zip(&answers) {
            assert_eq!(answer.is_err(), n % 8 == 0, "{n}: {answer:?}");
        }
        let mut reader = AnyConnection::connect(&url).await.unwrap();
        let stored: Vec<i64> =
            sqlx::query_scalar("SELECT n FROM t ORDER BY n").fetch_all(&mut reader).await.unwrap();
        let expected: Vec<i64> =
            (0..64).filter(|n| n % 8 != 0).flat_map(|n| [n * 2, n * 2 + 1]).collect();
        assert_eq!(stored, expected, "a failed write left a row, or a good one lost its rows");
        writer.close().await;
    }

    #[tokio::test]
    async fn a_write_that_waits_on_something_besides_sqlite_is_undone_and_the_writer_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("waits.db");
        let setup = rusqlite::Connection::open(&path).unwrap();
        setup.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER)").unwrap();
        let writer = Writer::sqlite(path.clone()).await.unwrap();
        let insert = "INSERT INTO t (n) VALUES ($1)";

        let waited = writer
            .statement(move |connection| {
                Box::pin(async move {
                    query(insert).bind(1).execute(&mut *connection).await?;
                    std::future::pending::<()>().await;
                    Ok(())
                })
            })
            .await;
        let message = waited.unwrap_err().to_string();
        assert!(message.contains("waited on something other than SQLite"), "{message}");
        writer
            .statement(move |connection| {
                Box::pin(async move { query(insert).bind(2).execute(connection).await.map(drop) })
            })
            .await
            .unwrap();

        let stored: Vec<i64> = setup
            .prepare("SELECT n FROM t")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(stored, [2], "the write that waited left its row");
        writer.close().await;
    }

    #[test]
    fn a_busy_server_checkpoints_only_a_long_log_and_a_quiet_one_a_shorter_one() {
        let checkpoints = Checkpoints::DEFAULT;
        let (busy, quiet) = (Duration::ZERO, Checkpoints::QUIET);
        assert!(!checkpoints.due(Checkpoints::IDLE - 1, quiet));
        assert!(checkpoints.due(Checkpoints::IDLE, quiet));
        assert!(!checkpoints.due(Checkpoints::IDLE, busy));
        assert!(!checkpoints.due(Checkpoints::BUSY - 1, busy));
        assert!(checkpoints.due(Checkpoints::BUSY, busy));
        assert!(checkpoints.due(Checkpoints::BUSY, quiet));
    }

    /// The database file's size: in WAL mode only a checkpoint writes it.
    fn file_pages(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len() / 4096
    }

    #[tokio::test]
    async fn the_writer_checkpoints_a_long_log_when_quiet_and_leaves_it_while_busy() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("checkpoints.db");
        let setup = rusqlite::Connection::open(&path).unwrap();
        setup
            .execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE t (n INTEGER, b BLOB)")
            .unwrap();
        drop(setup);
        let checkpoints = Checkpoints { idle: 8, busy: 60 };
        let writer = Writer::sqlite_checkpointing(path.clone(), checkpoints).await.unwrap();
        let insert = |writer: &Writer, n: i64| {
            let writer = writer.clone();
            async move {
                writer
                    .statement(move |connection| {
                        Box::pin(async move {
                            // About a page each: every row lands in a page of its own.
                            query("INSERT INTO t (n, b) VALUES ($1, zeroblob(3000))")
                                .bind(n)
                                .execute(connection)
                                .await
                                .map(drop)
                        })
                    })
                    .await
            }
        };
        let before = file_pages(&path);

        // Busy: twenty writes queue behind one that holds the writer, so the batch after it comes
        // without a wait. Its log passes `idle` but not `busy`: nothing is copied back yet.
        let holder = writer.clone();
        let held = tokio::spawn(async move {
            holder
                .statement(|_connection| {
                    Box::pin(async move {
                        std::thread::sleep(Duration::from_millis(200));
                        Ok(())
                    })
                })
                .await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        futures_util::future::try_join_all((0..20).map(|n| insert(&writer, n))).await.unwrap();
        held.await.unwrap().unwrap();
        assert_eq!(file_pages(&path), before, "a busy writer checkpointed a log under `busy`");

        // Quiet: a write after a pause longer than QUIET, with the log over `idle`, is followed
        // by a checkpoint, which copies every row into the file.
        tokio::time::sleep(Checkpoints::QUIET * 2).await;
        insert(&writer, 20).await.unwrap();
        // The checkpoint follows the answers of its batch; a write after it waits for it.
        writer.statement(|_connection| Box::pin(async { Ok(()) })).await.unwrap();
        assert!(
            file_pages(&path) >= before + 21,
            "a quiet writer left its log of 21 rows uncopied: {} pages, {before} before",
            file_pages(&path)
        );
        writer.close().await;
    }
}
