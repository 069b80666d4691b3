//! The connection loop: what one client may hold of the server.
//!
//! `axum::serve` sets no header timeout and takes every connection, so a client dribbling a
//! header, or a thousand idle sockets, held the server until it ran out of file descriptors.
//! This loop is axum's own, with the limits added:
//! - a client has `header_timeout` to send a request's headers, and a kept-alive connection
//!   closes after waiting that long for its next request (hyper times the wait for a head from
//!   the moment the connection is ready for one, so one timer covers both);
//! - at most `max_connections` are served at once; one more is closed as soon as it is
//!   accepted, so it cannot hold a descriptor or memory, and the listen queue keeps moving.
//!
//! Handlers are not cut short by a timer: a callback stopped between Notion's answer and the
//! write would lose the connection Notion just granted. Their time is bounded by the calls they
//! make (`notion.timeout_seconds`, the database's). Only at shutdown, past [`DRAIN`], are the
//! requests still running abandoned (and logged as an error).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use crate::config::ConnectionLimits;
use crate::telemetry::Chain;

/// How long shutdown waits for requests in flight before it stops waiting.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then lets the
/// requests in flight finish (up to [`DRAIN`]).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut refused: u64 = 0;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of descriptors or memory for a moment: wait instead of spinning.
                tracing::warn!(error = %Chain(&error), "could not accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            refused += 1;
            // One line per power of two: a flood shows in the log without filling it.
            if refused.is_power_of_two() {
                tracing::warn!(
                    refused,
                    max_connections = limits.max_connections,
                    "connections refused: server.max_connections are open"
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        // The peer's address is what rate limits tell clients apart by.
        let service = router.clone().map_request(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let mut stopping = stopping.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut http = hyper::server::conn::http1::Builder::new();
            http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
            let connection =
                http.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => return,
                _ = stopping.wait_for(|stop| *stop) => {}
            }
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        });
    }
    drop(listener);
    let _ = stop.send(true);
    // Every slot back means every connection has finished.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN, slots.acquire_many(all)).await.is_err() {
        tracing::error!(
            "requests still in flight after {DRAIN:?} of shutdown were cut off; a callback among them may have lost its connection"
        );
    }
    Ok(())
}
