//! Where the built-in store's writes go: on SQLite one connection fed by a queue, committing
//! whatever queued up meanwhile in one transaction (group commit); on PostgreSQL the pool.
//!
//! Why SQLite gets one writer: SQLite lets one transaction write at a time, and a connection that
//! finds the lock taken sleeps and retries (1, 2, 5 … 100 ms) instead of being woken when it
//! frees. With every pooled connection writing, a busy server spent more time asleep in that
//! retry loop than working, and each transaction paid its own fsync. A single writer never meets
//! its own lock, takes it up front (`BEGIN IMMEDIATE`) so a transaction never fails half-way to
//! upgrade a read lock, and one fsync serves every write of a batch. Each write of a batch runs
//! inside a savepoint, so one that fails is undone alone; nobody is answered before the batch is
//! committed, so an answer still means "on disk".
//!
//! Why PostgreSQL does not: it has row locks and commits concurrent transactions together by
//! itself, so its writes run on the pool, and a single statement runs without a transaction
//! around it (two round trips fewer).

use std::sync::Arc;

use futures_util::future::BoxFuture;
use sqlx::{AnyConnection, AnyPool, Connection, Executor};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// Writes waiting for the SQLite writer. Enough to absorb a burst; beyond it callers wait to
/// queue, which is the backpressure a full disk or a slow fsync needs.
const QUEUE: usize = 1024;

/// The most writes committed together. Bounded so the first in a batch does not wait long for
/// the last.
const BATCH: usize = 128;

/// A write: statements run on the connection it is given, which is inside a transaction unless
/// the write is a [`Writer::statement`] on PostgreSQL.
pub(super) trait Work<T>:
    for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, StoreError>> + Send + 'static
{
}

impl<T, F> Work<T> for F where
    F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T, StoreError>>
        + Send
        + 'static
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
    /// Starts the task that owns SQLite's writing connection. It ends, closing the connection,
    /// when every clone of the writer is dropped.
    pub(super) async fn sqlite(url: &str) -> Result<Self, StoreError> {
        let connection = open_writing(url).await?;
        let (queue, jobs) = mpsc::channel(QUEUE);
        tokio::spawn(write_in_batches(url.to_owned(), connection, jobs));
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

    /// Runs `work` in a transaction of its own (PostgreSQL) or of its batch (SQLite); answers
    /// once it is committed.
    pub(super) async fn transaction<T: Send + 'static>(
        &self,
        work: impl Work<T>,
    ) -> Result<T, StoreError> {
        match self {
            Self::Pool(pool) => {
                let mut transaction = pool.begin().await?;
                let value = work(&mut transaction).await?;
                transaction.commit().await?;
                Ok(value)
            }
            Self::Queue(queue) => queued(queue, Statements::Several, work).await,
        }
    }

    /// Runs `work`, which writes with one statement (and may read besides): on its own on
    /// PostgreSQL, in a batch on SQLite; either way with no savepoint or transaction of its
    /// own, since a statement that fails leaves nothing behind by itself.
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
    /// Runs the write's statements; what it returns is answered after the commit.
    fn run(self: Box<Self>, connection: &mut AnyConnection) -> BoxFuture<'_, Box<dyn Ran>>;

    /// Whether it changes things with one statement or several.
    fn statements(&self) -> Statements;

    /// Answers without running: the batch could not start.
    fn abandon(self: Box<Self>, error: Arc<sqlx::Error>);

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

    /// Answers the caller: its own result once committed, or why the commit failed.
    fn answer(self: Box<Self>, committed: Result<(), Arc<sqlx::Error>>);
}

struct Queued<T, F> {
    work: F,
    statements: Statements,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

struct Outcome<T> {
    result: Result<T, StoreError>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T: Send + 'static, F: Work<T>> Job for Queued<T, F> {
    fn run(self: Box<Self>, connection: &mut AnyConnection) -> BoxFuture<'_, Box<dyn Ran>> {
        let Queued { work, reply, .. } = *self;
        Box::pin(async move {
            let result = work(connection).await;
            Box::new(Outcome { result, reply }) as Box<dyn Ran>
        })
    }

    fn statements(&self) -> Statements {
        self.statements
    }

    fn abandon(self: Box<Self>, error: Arc<sqlx::Error>) {
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

    fn answer(self: Box<Self>, committed: Result<(), Arc<sqlx::Error>>) {
        let answer = match (self.result, committed) {
            (Ok(_), Err(error)) => Err(StoreError::Commit(error)),
            (result, _) => result,
        };
        let _ = self.reply.send(answer);
    }
}

/// The writing connection, set up as every batch expects it.
async fn open_writing(url: &str) -> Result<AnyConnection, StoreError> {
    let mut connection = AnyConnection::connect(url).await?;
    // FULL makes each commit durable before it is answered; with one fsync per batch it costs
    // little. The busy timeout is for other processes' writes (the CLI, a second instance).
    for pragma in
        ["PRAGMA busy_timeout = 5000", "PRAGMA synchronous = FULL", "PRAGMA foreign_keys = ON"]
    {
        connection.execute(pragma).await?;
    }
    Ok(connection)
}

async fn write_in_batches(
    url: String,
    mut connection: AnyConnection,
    mut messages: mpsc::Receiver<Message>,
) {
    let mut received = Vec::with_capacity(BATCH);
    let mut batch = Vec::with_capacity(BATCH);
    let mut closes = Vec::new();
    while closes.is_empty() && messages.recv_many(&mut received, BATCH).await > 0 {
        for message in received.drain(..) {
            match message {
                Message::Write(job) if closes.is_empty() => batch.push(job),
                // Behind a close: the writer will be gone.
                Message::Write(job) => job.abandon_stopped(),
                Message::Close(reply) => closes.push(reply),
            }
        }
        if !batch.is_empty() && commit_batch(&mut connection, &mut batch).await == Sound::Doubtful {
            // A transaction SQLite ended by itself (a full disk, an I/O error) leaves sqlx
            // believing it is still open, and it would refuse every later BEGIN: start afresh.
            match open_writing(&url).await {
                Ok(fresh) => connection = fresh,
                Err(error) => tracing::error!(
                    error = %crate::telemetry::Chain(&error),
                    "the SQLite writer could not reopen its connection; it tries again with the next write"
                ),
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
    if let Err(error) = connection.close().await {
        tracing::warn!(error = %crate::telemetry::Chain(&error), "the SQLite writer did not close cleanly");
    }
    for reply in closes {
        let _ = reply.send(());
    }
}

/// Whether the connection came out of a batch as sqlx and SQLite both think it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sound {
    Yes,
    /// A transaction statement (begin, savepoint, commit, rollback) failed.
    Doubtful,
}

/// Runs and commits one batch, then answers each of its writes.
async fn commit_batch(connection: &mut AnyConnection, batch: &mut Vec<Box<dyn Job>>) -> Sound {
    let mut transaction = match connection.begin_with("BEGIN IMMEDIATE").await {
        Ok(transaction) => transaction,
        Err(error) => {
            let error = Arc::new(error);
            batch.drain(..).for_each(|job| job.abandon(error.clone()));
            return Sound::Doubtful;
        }
    };
    let mut ran: Vec<Box<dyn Ran>> = Vec::with_capacity(batch.len());
    let mut broken = None;
    if batch.len() == 1 {
        // Alone in its batch, a write needs no savepoint: a failure rolls back the transaction.
        for job in batch.drain(..) {
            ran.push(job.run(&mut transaction).await);
        }
    } else {
        let mut jobs = batch.drain(..);
        for job in jobs.by_ref() {
            // A failed statement undoes itself; the savepoint's two round trips to the driver's
            // thread are for writes of several statements.
            if job.statements() == Statements::One {
                let outcome = job.run(&mut transaction).await;
                let failed = !outcome.succeeded();
                ran.push(outcome);
                if failed && let Err(error) = still_in_transaction(&mut transaction).await {
                    broken = Some(error);
                    break;
                }
                continue;
            }
            let mut savepoint = match transaction.begin().await {
                Ok(savepoint) => savepoint,
                Err(error) => {
                    let error = Arc::new(error);
                    job.abandon(error.clone());
                    broken = Some(error);
                    break;
                }
            };
            let outcome = job.run(&mut savepoint).await;
            let kept = if outcome.succeeded() {
                savepoint.commit().await
            } else {
                savepoint.rollback().await
            };
            ran.push(outcome);
            if let Err(error) = kept {
                broken = Some(Arc::new(error));
                break;
            }
        }
        // A savepoint that could not be set or ended leaves the transaction in doubt: undo it
        // all, and answer the writes not yet run with the same error.
        if let Some(error) = &broken {
            jobs.for_each(|job| job.abandon(error.clone()));
        }
    }
    let only_failures = ran.iter().all(|outcome| !outcome.succeeded());
    let (committed, sound) = match broken {
        Some(error) => {
            let _ = transaction.rollback().await;
            (Err(error), Sound::Doubtful)
        }
        // Nothing to keep: a rollback spares the fsync.
        None if only_failures => ended(transaction.rollback().await),
        None => ended(transaction.commit().await),
    };
    for outcome in ran {
        outcome.answer(committed.clone());
    }
    sound
}

fn ended(result: Result<(), sqlx::Error>) -> (Result<(), Arc<sqlx::Error>>, Sound) {
    match result {
        Ok(()) => (Ok(()), Sound::Yes),
        Err(error) => (Err(Arc::new(error)), Sound::Doubtful),
    }
}

/// After a write failed on its own (no savepoint around it): whether the batch's transaction is
/// still open. SQLite rolls a transaction back by itself on some errors (a full disk, an I/O
/// error); the writes after it would then each commit on their own, outside the batch. `BEGIN`
/// is refused only inside a transaction, so it tells; if it is accepted, the batch is lost.
async fn still_in_transaction(connection: &mut AnyConnection) -> Result<(), Arc<sqlx::Error>> {
    match connection.execute("BEGIN").await {
        Err(sqlx::Error::Database(error)) if error.message().contains("within a transaction") => {
            Ok(())
        }
        Err(error) => Err(Arc::new(error)),
        Ok(_) => Err(Arc::new(sqlx::Error::Io(std::io::Error::other(
            "SQLite undid the whole batch after a failed write (is the disk full?)",
        )))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use futures_util::future::join_all;

    #[tokio::test]
    async fn a_write_of_several_statements_that_fails_in_a_batch_is_undone_alone() {
        sqlx::any::install_default_drivers();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("batch.db").display());
        let mut setup = AnyConnection::connect(&url).await.unwrap();
        setup.execute("PRAGMA journal_mode = WAL").await.unwrap();
        setup.execute("CREATE TABLE t (n INTEGER PRIMARY KEY)").await.unwrap();
        setup.close().await.unwrap();
        let writer = Writer::sqlite(&url).await.unwrap();

        // On this single-threaded test runtime all 64 are queued before the writer runs, so
        // they make one batch. Each inserts two rows; every eighth fails between its two.
        let writes = (0..64i64).map(|n| {
            let writer = writer.clone();
            async move {
                let insert = "INSERT INTO t (n) VALUES ($1)";
                writer
                    .transaction(move |connection| {
                        Box::pin(async move {
                            sqlx::query(insert).bind(n * 2).execute(&mut *connection).await?;
                            if n % 8 == 0 {
                                return Err(StoreError::Corrupt);
                            }
                            sqlx::query(insert).bind(n * 2 + 1).execute(&mut *connection).await?;
                            Ok(n)
                        })
                    })
                    .await
            }
        });
        let answers = join_all(writes).await;

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
}
