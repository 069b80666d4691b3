//! Writes that PostgreSQL records for many requests with one statement.
//!
//! Why: under load PostgreSQL's own processes took two fifths of the machine, and what they
//! spend is per statement (executor set-up, the protocol's messages, a commit and its log
//! flush, a context switch each way) much more than per row: on the project's machine,
//! `pgbench` inserted 6 880 rows a second one statement each, 45 700 ten to a statement. So
//! the writes that queue while one statement runs go into the next together. Each kind of
//! write says how a batch is recorded and how each request learns its own outcome (the states'
//! nonces in `used_states`, connections in `connections`); this is the queue and the task that
//! feeds them. A request is answered only once its batch has committed, and a request queued is
//! recorded even if its caller stops waiting, as on SQLite.

use std::future::Future;

use sqlx::AnyPool;
use tokio::sync::{mpsc, oneshot};

use super::StoreError;

/// Requests waiting for the statement in flight. Beyond it callers wait to queue, which is the
/// backpressure a slow database needs.
const QUEUE: usize = 1024;

/// The most requests one statement records.
const BATCH: usize = 128;

/// Where one request's outcome goes.
pub(super) type Reply<A> = oneshot::Sender<Result<A, StoreError>>;

/// A queue of requests of one kind, `T`, each answered with an `A`.
pub(super) struct Batched<T, A> {
    requests: mpsc::Sender<(T, Reply<A>)>,
}

impl<T, A> Clone for Batched<T, A> {
    fn clone(&self) -> Self {
        Self { requests: self.requests.clone() }
    }
}

impl<T, A> std::fmt::Debug for Batched<T, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batched").finish_non_exhaustive()
    }
}

impl<T: Send + 'static, A: Send + 'static> Batched<T, A> {
    /// Starts the task that hands what queued to `record`, one batch at a time, on `pool`; it
    /// ends when every clone is dropped. `record` answers every request it is given.
    pub(super) fn start<F, Fut>(pool: AnyPool, record: F) -> Self
    where
        F: Fn(AnyPool, Vec<(T, Reply<A>)>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let (requests, mut queue) = mpsc::channel(QUEUE);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while queue.recv_many(&mut batch, BATCH).await > 0 {
                record(pool.clone(), std::mem::take(&mut batch)).await;
            }
        });
        Self { requests }
    }

    /// Queues `request` and waits for its outcome, given once its batch has committed.
    pub(super) async fn request(&self, request: T) -> Result<A, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests.send((request, reply)).await.map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }
}
