//! The connection loop: what one client may hold of the server.
//!
//! `axum::serve` sets no header timeout and takes every connection, so a client dribbling a
//! header, or a thousand idle sockets, held the server until it ran out of file descriptors.
//! This loop is axum's own, with the limits added:
//! - a client has `header_timeout` to send a request's headers, and a kept-alive connection
//!   closes after waiting that long for its next request (hyper times the wait for a head from
//!   the moment the connection is ready for one, so one timer covers both);
//! - at most `max_connections` are served at once, and at most `max_connections_per_client`
//!   from one client address (trusted proxies excepted: they carry many clients); one more is
//!   closed as soon as it is accepted, so it cannot hold a descriptor or memory, the listen
//!   queue keeps moving, and one client's idle sockets cannot keep everyone else out.
//!
//! - after a burst of connections has closed, the memory their buffers took goes back to the
//!   system ([`Burst`]).
//!
//! Handlers are not cut short by a timer: a callback stopped between Notion's answer and the
//! write would lose the connection Notion just granted. Their time is bounded by the calls they
//! make (`notion.timeout_seconds`, the database's). Only at shutdown, past [`DRAIN`], are the
//! requests still running abandoned (and logged as an error).

use std::collections::HashMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tower::ServiceExt;

use crate::config::ConnectionLimits;
use crate::rate_limits::Client;
use crate::telemetry::Chain;
use ipnet::IpNet;

/// How long shutdown waits for requests in flight before it stops waiting.
const DRAIN: Duration = Duration::from_secs(30);

/// Serves `router` on `listener` within `limits` until `shutdown` completes, then lets the
/// requests in flight finish (up to [`DRAIN`]).
pub(crate) async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    trusted_proxies: &[IpNet],
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let per_client = Arc::new(PerClient {
        limit: limits.max_connections_per_client,
        trusted: trusted_proxies.to_vec(),
        open: Mutex::new(HashMap::new()),
    });
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let burst = Arc::new(Burst::default());
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
        let Some(client_slot) = per_client.admit(peer.ip()) else {
            drop(stream);
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(
                    refused,
                    client = %Client::of(peer.ip()),
                    max_connections_per_client = limits.max_connections_per_client,
                    "connections refused: a client holds server.max_connections_per_client (if it is your load balancer, add it to server.trusted_proxies)"
                );
            }
            continue;
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
        burst.opened();
        let closed = Closed(burst.clone());
        // The peer's address is what rate limits tell clients apart by.
        let service = router.clone().map_request(move |request: hyper::Request<Incoming>| {
            let mut request = request.map(Body::new);
            request.extensions_mut().insert(ConnectInfo(peer));
            request
        });
        let stopping = stopping.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let _client_slot = client_slot;
            let _closed = closed;
            let service = TowerToHyperService::new(service);
            match tls {
                None => http1(TokioIo::new(stream), service, limits, stopping).await,
                Some(acceptor) => {
                    // The handshake is held to the header timeout too: a client that opens a
                    // connection and says nothing is dropped the same way over TLS.
                    let handshake = acceptor.accept(stream);
                    let Ok(Ok(stream)) =
                        tokio::time::timeout(limits.header_timeout, handshake).await
                    else {
                        return;
                    };
                    // An ACME validator only looks at the certificate (RFC 8737 §3).
                    if stream.get_ref().1.alpn_protocol() == Some(crate::tls::ACME_TLS_ALPN) {
                        return;
                    }
                    secure(TokioIo::new(stream), service, limits, stopping).await;
                }
            }
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

/// HTTP/1.1, in clear (behind a proxy) or inside TLS: the header timer runs from the first
/// byte, so a connection that never sends one is closed after `header_timeout` too.
async fn http1<I, S>(io: I, service: S, limits: ConnectionLimits, stopping: watch::Receiver<bool>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::Service<hyper::Request<Incoming>, Response = axum::response::Response>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_timeout);
    let connection = http.serve_connection(io, service);
    until_stopped(connection, stopping, |c| c.graceful_shutdown()).await;
}

/// HTTPS: HTTP/2 when ALPN chose it, else HTTP/1.1. The protocol is taken from ALPN rather
/// than sniffed: sniffing reads the first bytes with no timer, so a client that said nothing
/// after the handshake held its connection for good.
async fn secure<S>(
    io: TokioIo<tokio_rustls::server::TlsStream<TcpStream>>,
    service: S,
    limits: ConnectionLimits,
    stopping: watch::Receiver<bool>,
) where
    S: hyper::service::Service<hyper::Request<Incoming>, Response = axum::response::Response>
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    if io.inner().get_ref().1.alpn_protocol() != Some(b"h2") {
        return http1(io, service, limits, stopping).await;
    }
    let activity = Arc::new(Activity::new());
    let service = Tracked { inner: service, activity: activity.clone() };
    let mut http = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    // A client that went away is noticed by its missing ping answer; one that stays but asks
    // nothing is closed below, as an idle HTTP/1.1 connection would be.
    http.timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.header_timeout))
        .keep_alive_timeout(limits.header_timeout)
        // A browser needs a handful at once; hyper's default of 200 would let one connection
        // run 200 handlers.
        .max_concurrent_streams(32);
    let connection = http.serve_connection(io, service);
    let mut connection = std::pin::pin!(connection);
    let mut stopping = stopping;
    let idle = loop {
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = stopping.wait_for(|stop| *stop) => break false,
            () = tokio::time::sleep(limits.header_timeout) => {
                if activity.idle_for() >= limits.header_timeout {
                    break true;
                }
            }
        }
    };
    connection.as_mut().graceful_shutdown();
    if idle {
        // A client that never sent its preface leaves the goodbye unanswered: with nothing
        // under way, dropping the connection loses nothing.
        let _ = tokio::time::timeout(limits.header_timeout, connection).await;
    } else {
        let _ = connection.await;
    }
}

/// Requests under way on an HTTP/2 connection, and when the last one ended.
struct Activity {
    in_flight: AtomicUsize,
    last_end: Mutex<std::time::Instant>,
}

impl Activity {
    fn new() -> Self {
        Self { in_flight: AtomicUsize::new(0), last_end: Mutex::new(std::time::Instant::now()) }
    }

    /// Zero while a request is under way.
    fn idle_for(&self) -> Duration {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return Duration::ZERO;
        }
        self.last_end.lock().unwrap_or_else(|e| e.into_inner()).elapsed()
    }
}

/// Counts a request as under way until its response is ready.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        *self.0.last_end.lock().unwrap_or_else(|e| e.into_inner()) = std::time::Instant::now();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A service whose requests are counted in an [`Activity`].
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> hyper::service::Service<hyper::Request<Incoming>> for Tracked<S>
where
    S: hyper::service::Service<hyper::Request<Incoming>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn call(&self, request: hyper::Request<Incoming>) -> Self::Future {
        self.activity.in_flight.fetch_add(1, Ordering::AcqRel);
        let in_flight = InFlight(self.activity.clone());
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await;
            drop(in_flight);
            response
        })
    }
}

/// Drives `connection` to its end, or, once shutdown begins, lets it finish what it is doing.
async fn until_stopped<C: Future>(
    connection: C,
    mut stopping: watch::Receiver<bool>,
    graceful: impl FnOnce(std::pin::Pin<&mut C>),
) {
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = stopping.wait_for(|stop| *stop) => {}
    }
    graceful(connection.as_mut());
    let _ = connection.await;
}

/// Connections open per client address.
struct PerClient {
    limit: usize,
    trusted: Vec<IpNet>,
    open: Mutex<HashMap<Client, usize>>,
}

impl PerClient {
    /// A slot for one more connection from `peer`, if it holds fewer than the limit.
    fn admit(self: &Arc<Self>, peer: IpAddr) -> Option<ClientSlot> {
        let canonical = peer.to_canonical();
        if self.trusted.iter().any(|network| network.contains(&canonical)) {
            return Some(ClientSlot(None));
        }
        let client = Client::of(peer);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(client).or_insert(0);
        if *count >= self.limit {
            return None;
        }
        *count += 1;
        Some(ClientSlot(Some((self.clone(), client))))
    }
}

/// One connection counted against its client until it closes.
struct ClientSlot(Option<(Arc<PerClient>, Client)>);

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let Some((per_client, client)) = self.0.take() else { return };
        let mut open = per_client.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&client);
            }
        }
    }
}

/// Open connections, and the most seen since memory was last given back.
///
/// glibc's allocator keeps what a burst of connections freed (their buffers, spread over its
/// per-thread arenas) for reuse, and gives back only the top of each heap: 2 000 kept-alive
/// sockets, once closed, left RSS 8 MiB above idle for good, and `malloc_trim` brought it back
/// to idle. mimalloc (idle +11 MiB, nothing returned: it frees with `MADV_FREE`) and jemalloc
/// (idle +4 MiB, nothing returned while idle, and three minutes of build) did worse. So once
/// the open connections fall to a sixteenth of a peak of at least [`Burst::WORTH_IT`], every
/// free page is handed back. The trim walks the heap (about a millisecond), so it runs on the
/// blocking pool, and only after a burst, never per connection.
#[derive(Default)]
struct Burst {
    open: AtomicUsize,
    peak: AtomicUsize,
}

impl Burst {
    /// Fewer connections than this never leave enough behind to be worth a trim.
    const WORTH_IT: usize = 256;

    fn opened(&self) {
        let open = self.open.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(open, Ordering::Relaxed);
    }

    fn closed(&self) {
        let open = self.open.fetch_sub(1, Ordering::Relaxed).saturating_sub(1);
        let peak = self.peak.load(Ordering::Relaxed);
        // The exchange makes one closing connection, not every one, start the trim.
        if peak >= Self::WORTH_IT
            && open <= peak / 16
            && self.peak.compare_exchange(peak, open, Ordering::Relaxed, Ordering::Relaxed).is_ok()
        {
            tokio::task::spawn_blocking(give_back_free_memory);
        }
    }
}

/// Counts a connection as closed when its task ends, however it ends.
struct Closed(Arc<Burst>);

impl Drop for Closed {
    fn drop(&mut self) {
        self.0.closed();
    }
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub(crate) fn give_back_free_memory() {
    // SAFETY: `malloc_trim` takes no pointers and only releases free memory the allocator owns,
    // under the allocator's own locks, so it is sound while other threads allocate.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub(crate) fn give_back_free_memory() {}
