//! The load: closed loops over keep-alive HTTP/1 connections, one hyper connection per task.
//!
//! hyper's connection-level client is used rather than a pooled one so that the generator costs
//! as little as possible per request and each task owns exactly one connection.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;

/// A connection whose requests carry `Host: <addr>`.
pub(crate) struct Connection {
    sender: SendRequest<Empty<Bytes>>,
    host: HeaderValue,
}

/// An answer, body read to the end so the connection can carry the next request.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// Why an iteration did not succeed.
#[derive(Debug)]
enum Failure {
    /// The connection is unusable; the task opens another.
    Connection(String),
    /// An answer came, but not the one expected.
    Unexpected(String),
}

impl Connection {
    pub(crate) async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        // Requests are small and latency is what is measured: no Nagle delay.
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        // The connection task ends when the sender is dropped or the peer closes.
        tokio::spawn(connection);
        let host = HeaderValue::from_str(&addr.to_string())?;
        Ok(Self { sender, host })
    }

    /// `GET path` with `headers`; any status is an answer.
    pub(crate) async fn get(
        &mut self,
        path: &str,
        headers: &[(header::HeaderName, HeaderValue)],
    ) -> anyhow::Result<Answer> {
        self.sender.ready().await?;
        let mut request = Request::get(path).header(header::HOST, self.host.clone());
        for (name, value) in headers {
            request = request.header(name, value);
        }
        let response = self.sender.send_request(request.body(Empty::new())?).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Answer { status: parts.status, headers: parts.headers, body })
    }
}

/// One request on a new connection, for probes and set-up; bounded, so set-up cannot hang.
pub(crate) async fn get_once(
    addr: SocketAddr,
    path: &str,
    headers: &[(header::HeaderName, HeaderValue)],
) -> anyhow::Result<Answer> {
    let request = async { Connection::open(addr).await?.get(path, headers).await };
    tokio::time::timeout(Duration::from_secs(30), request)
        .await
        .map_err(|_| anyhow!("no answer to GET {path} within 30 s"))?
}

/// What one iteration of a task does.
pub(crate) enum Work {
    /// One GET; with `code`, `code=<a code never sent before>` is appended to `path`.
    Get {
        path: String,
        code: bool,
        headers: Vec<(header::HeaderName, HeaderValue)>,
        expect: &'static [u16],
    },
    /// `GET /connect` (302 to Notion, not followed), then `GET /callback` with a new code, the
    /// state from the redirect and the cookie it set: one whole "Add to Notion".
    Flow,
}

/// When a run's tasks measure.
#[derive(Clone, Copy)]
pub(crate) struct Window {
    pub(crate) measure_from: Instant,
    pub(crate) end: Instant,
}

/// What the tasks of one run counted, merged.
#[derive(Debug, Default)]
pub(crate) struct Tally {
    pub(crate) successes: u64,
    pub(crate) errors: u64,
    /// Microseconds per successful iteration, in no order.
    pub(crate) latencies_us: Vec<u32>,
    /// How many errors of each kind (first line of the error).
    pub(crate) error_kinds: BTreeMap<String, u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.successes += other.successes;
        self.errors += other.errors;
        self.latencies_us.extend(other.latencies_us);
        for (kind, count) in other.error_kinds {
            *self.error_kinds.entry(kind).or_default() += count;
        }
    }

    fn error(&mut self, kind: String) {
        self.errors += 1;
        *self.error_kinds.entry(kind).or_default() += 1;
    }
}

/// Runs `connections` closed loops of `work` against `addr` for `warmup`, then `duration`.
/// `code_tag` keeps this run's codes apart from every other run's.
pub(crate) async fn run(
    addr: SocketAddr,
    work: Arc<Work>,
    connections: usize,
    warmup: Duration,
    duration: Duration,
    code_tag: &str,
) -> anyhow::Result<Tally> {
    let start = Instant::now();
    let window = Window { measure_from: start + warmup, end: start + warmup + duration };
    let tasks: Vec<_> = (0..connections)
        .map(|task| {
            let work = Arc::clone(&work);
            let tag = format!("{code_tag}-{task}");
            tokio::spawn(async move { worker(addr, &work, window, &tag).await })
        })
        .collect();
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await.context("a load task failed")?);
    }
    Ok(tally)
}

/// How long after the end of a run an unanswered request is waited for: a server that stops
/// answering must not hold the benchmark up for ever.
const STRAGGLER_GRACE: Duration = Duration::from_secs(10);

async fn worker(addr: SocketAddr, work: &Work, window: Window, tag: &str) -> Tally {
    let mut tally = Tally::default();
    let mut connection: Option<Connection> = None;
    let mut iteration: u64 = 0;
    let deadline = tokio::time::Instant::from_std(window.end + STRAGGLER_GRACE);
    while Instant::now() < window.end {
        let began = Instant::now();
        iteration += 1;
        let code = format!("{tag}-{iteration}");
        let step = tokio::time::timeout_at(deadline, once(addr, &mut connection, work, &code));
        let Ok(outcome) = step.await else {
            tally.error(format!("no answer within {STRAGGLER_GRACE:?} after the end"));
            break;
        };
        let done = Instant::now();
        let counted = began >= window.measure_from && done <= window.end;
        match outcome {
            Ok(()) if counted => {
                let micros = done.duration_since(began).as_micros();
                tally.successes += 1;
                tally.latencies_us.push(u32::try_from(micros).unwrap_or(u32::MAX));
            }
            Ok(()) => {}
            Err(Failure::Connection(error) | Failure::Unexpected(error)) if counted => {
                tally.error(error);
            }
            Err(_) => {}
        }
    }
    tally
}

/// One iteration on the task's connection, opened first if it has none (or lost it).
async fn once(
    addr: SocketAddr,
    connection: &mut Option<Connection>,
    work: &Work,
    code: &str,
) -> Result<(), Failure> {
    let conn = match connection {
        Some(conn) => conn,
        None => match Connection::open(addr).await {
            Ok(conn) => connection.insert(conn),
            Err(error) => {
                // A server that refuses connections would otherwise be spun against.
                tokio::time::sleep(Duration::from_millis(10)).await;
                return Err(Failure::Connection(format!("connect: {}", first_line(&error))));
            }
        },
    };
    let outcome = match work {
        Work::Get { path, code: with_code, headers, expect } => {
            let path = if *with_code { format!("{path}code={code}") } else { path.clone() };
            get_expecting(conn, &path, headers, expect).await.map(|_| ())
        }
        Work::Flow => flow(conn, code).await,
    };
    if let Err(Failure::Connection(_)) = outcome {
        *connection = None;
    }
    outcome
}

async fn get_expecting(
    conn: &mut Connection,
    path: &str,
    headers: &[(header::HeaderName, HeaderValue)],
    expect: &[u16],
) -> Result<Answer, Failure> {
    let answer = conn.get(path, headers).await.map_err(|e| Failure::Connection(first_line(&e)))?;
    if expect.contains(&answer.status.as_u16()) {
        Ok(answer)
    } else {
        let route = path.split('?').next().unwrap_or(path);
        Err(Failure::Unexpected(format!("{route}: status {}", answer.status.as_u16())))
    }
}

/// One "Add to Notion" as a browser makes it, without the emulator's leg in between: the
/// authorize redirect is not followed, the code is made up (the emulator in bench mode takes any).
async fn flow(conn: &mut Connection, code: &str) -> Result<(), Failure> {
    let started = get_expecting(conn, "/connect", &[], &[302, 303]).await?;
    let unexpected = |what: &str| Failure::Unexpected(format!("/connect: {what}"));
    let location = started
        .headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unexpected("no Location"))?;
    let location = url::Url::parse(location).map_err(|_| unexpected("Location is not a URL"))?;
    let state = location
        .query_pairs()
        .find(|(name, _)| name == "state")
        .map(|(_, value)| value.into_owned())
        .ok_or_else(|| unexpected("no state in Location"))?;
    let cookie = started
        .headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next())
        .collect::<Vec<_>>()
        .join("; ");
    let cookie = HeaderValue::from_str(&cookie).map_err(|_| unexpected("unusable Set-Cookie"))?;
    let state: String = url::form_urlencoded::byte_serialize(state.as_bytes()).collect();
    let path = format!("/callback?code={code}&state={state}");
    get_expecting(conn, &path, &[(header::COOKIE, cookie)], &[200]).await.map(|_| ())
}

fn first_line(error: &anyhow::Error) -> String {
    let text = format!("{error:#}");
    text.lines().next().unwrap_or_default().to_owned()
}

/// The answer's body as JSON, or why not.
pub(crate) fn json(answer: &Answer) -> anyhow::Result<serde_json::Value> {
    serde_json::from_slice(&answer.body)
        .map_err(|e| anyhow!("the answer ({}) is not JSON: {e}", answer.status))
}

/// The value at `q` (0..=1) of sorted `values`: the smallest with at least that share at or
/// below it.
pub(crate) fn percentile(sorted: &[u32], q: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let values: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&values, 0.5), Some(50));
        assert_eq!(percentile(&values, 0.99), Some(99));
        assert_eq!(percentile(&values, 1.0), Some(100));
        assert_eq!(percentile(&values, 0.0), Some(1));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
