//! Calls to Notion's API made for one connection, with its access token, so that the app's
//! backend never holds a token: what `/api/v1/connections/{bot_id}/notion/…` forwards, and
//! what an embedding app calls directly ([`ConnectionApi`]).
//!
//! Notion answers 401 when an access token no longer works and rotates the pair on refresh, so
//! a 401 sends the connection through the lifecycle's single refresh (however many calls got
//! 401 at once, Notion sees one refresh), then the call once more with the new token. A 429 or
//! 529 with `Retry-After` is waited out and sent again while that fits the request's budget.
//! Only those answers, and a connection that was refused before any byte was sent, lead to a
//! second send: whatever else Notion answers goes back as it came, so a POST is never made
//! twice by us.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use governor::clock::Clock;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use notion_oauth::AccessToken;
use reqwest::header::{self, HeaderMap, HeaderValue};
use url::Url;

use crate::config::{Config, ProxyPolicy};
use crate::domain::BotId;
use crate::lifecycle::{Coalesce, Freshness, Lifecycle, LifecycleError, WhichTokens};
use crate::metrics::{ApiFamily, Metrics, ProxyRetry};

/// Longest path passed on, in bytes; Notion's are a few ids deep.
const MAX_PATH_BYTES: usize = 512;
/// Longest query string passed on.
pub const MAX_QUERY_BYTES: usize = 4096;
/// Sends of one request at most, whatever the budget: a Notion that keeps answering 429 with
/// `Retry-After: 0` must not be hammered.
const MAX_SENDS: u32 = 6;
/// The wait before sending again a request whose connection was refused.
const NOT_SENT_PAUSE: Duration = Duration::from_millis(250);

/// Why a proxied call has no answer from Notion to pass back.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The path is not one of Notion's API paths.
    #[error("{0}")]
    InvalidPath(&'static str),
    /// The connection has no usable token, or its refresh failed.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
    /// Notion refused the token again right after a refresh: the user has probably removed
    /// the integration.
    #[error(
        "Notion refused this connection's token even after refreshing it; the user may have removed the integration and has to connect again"
    )]
    StillUnauthorized {
        /// Notion's request id of the last refusal.
        request_id: Option<String>,
    },
    /// The per-connection pacing (`proxy.requests_per_second`) would hold the request past
    /// its retry budget.
    #[error(
        "this connection is sending more than proxy.requests_per_second allows; retry after {0} s"
    )]
    Paced(u64),
    /// No answer within `proxy.timeout_seconds`.
    #[error("Notion did not answer within {0:?}")]
    Timeout(Duration),
    /// Notion could not be reached.
    #[error("Notion could not be reached: {0}")]
    Unreachable(#[source] reqwest::Error),
    /// Notion's answer is longer than `proxy.max_response_bytes`.
    #[error("Notion's answer is longer than proxy.max_response_bytes ({0} bytes)")]
    AnswerTooLarge(usize),
    /// A query or `Notion-Version` that cannot be sent.
    #[error("{0}")]
    InvalidRequest(String),
}

/// The methods Notion's API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiMethod {
    /// Reads.
    Get,
    /// Creates and queries.
    Post,
    /// Updates.
    Patch,
    /// Deletes (archives).
    Delete,
}

impl ApiMethod {
    /// The method, if Notion's API uses it.
    pub fn from_http(method: &reqwest::Method) -> Option<Self> {
        match *method {
            reqwest::Method::GET => Some(Self::Get),
            reqwest::Method::POST => Some(Self::Post),
            reqwest::Method::PATCH => Some(Self::Patch),
            reqwest::Method::DELETE => Some(Self::Delete),
            _ => None,
        }
    }

    fn http(self) -> reqwest::Method {
        match self {
            Self::Get => reqwest::Method::GET,
            Self::Post => reqwest::Method::POST,
            Self::Patch => reqwest::Method::PATCH,
            Self::Delete => reqwest::Method::DELETE,
        }
    }
}

/// A path under Notion's `/v1/`, such as `pages/{id}` or `blocks/{id}/children`: segments of
/// letters, digits, `-` and `_`, so nothing can climb out of `/v1/`, name another host or hide
/// a slash in an escape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPath {
    path: String,
    family: ApiFamily,
}

impl ApiPath {
    /// Checks a path as it was written (not percent-decoded), without the `/v1/` prefix.
    ///
    /// # Errors
    /// [`ProxyError::InvalidPath`] saying what is wrong.
    pub fn parse(raw: &str) -> Result<Self, ProxyError> {
        let path = raw.strip_prefix('/').unwrap_or(raw);
        let path = path.strip_suffix('/').unwrap_or(path);
        if path.is_empty() {
            return Err(ProxyError::InvalidPath(
                "name a Notion API path after /notion/, such as users/me or pages/{page_id}",
            ));
        }
        if path.len() > MAX_PATH_BYTES {
            return Err(ProxyError::InvalidPath("the path is longer than 512 bytes"));
        }
        for segment in path.split('/') {
            if segment.is_empty() {
                return Err(ProxyError::InvalidPath("the path has an empty segment (//)"));
            }
            if !segment.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(ProxyError::InvalidPath(
                    "a path segment holds something other than letters, digits, - and _ (no dots, escapes or other hosts): Notion's API paths are words and ids",
                ));
            }
        }
        let first = path.split('/').next().unwrap_or_default();
        // Paths are case-sensitive at Notion, but no spelling of these is one to send a
        // connection's token to.
        if first.eq_ignore_ascii_case("oauth") || first.eq_ignore_ascii_case("v1") {
            return Err(ProxyError::InvalidPath(
                "the path starts after /v1/ and is not one of Notion's OAuth endpoints (this server makes those calls itself)",
            ));
        }
        Ok(Self { family: ApiFamily::of(first), path: path.to_owned() })
    }

    /// The path, without `/v1/`.
    pub fn as_str(&self) -> &str {
        &self.path
    }
}

/// One call to Notion's API, as the proxy sends it (with the connection's token added).
#[derive(Debug, Clone)]
pub struct ApiRequest {
    /// GET, POST, PATCH or DELETE.
    pub method: ApiMethod,
    /// Under `/v1/`.
    pub path: ApiPath,
    /// The query string, as written (at most [`MAX_QUERY_BYTES`]).
    pub query: Option<String>,
    /// The body, whole: it may have to be sent again.
    pub body: Bytes,
    /// The body's type (`application/json` when there is a body and none is given).
    pub content_type: Option<HeaderValue>,
    /// `Notion-Version`; the configured one when `None`.
    pub notion_version: Option<String>,
}

impl ApiRequest {
    /// A request with no query, body or version of its own.
    pub fn new(method: ApiMethod, path: ApiPath) -> Self {
        Self {
            method,
            path,
            query: None,
            body: Bytes::new(),
            content_type: None,
            notion_version: None,
        }
    }

    /// With `body` as JSON.
    pub fn json(mut self, body: &serde_json::Value) -> Self {
        self.body = Bytes::from(body.to_string());
        self.content_type = Some(HeaderValue::from_static("application/json"));
        self
    }
}

/// Notion's answer to a proxied call: its status, headers and body as they came (read the body
/// with [`ApiAnswer::bytes`] or [`ApiAnswer::chunk`], within `proxy.max_response_bytes`).
#[derive(Debug)]
pub struct ApiAnswer {
    response: reqwest::Response,
    limit: usize,
    read: usize,
}

impl ApiAnswer {
    /// Notion's status.
    pub fn status(&self) -> u16 {
        self.response.status().as_u16()
    }

    /// Notion's headers.
    pub fn headers(&self) -> &HeaderMap {
        self.response.headers()
    }

    /// Notion's request id, if it sent one.
    pub fn request_id(&self) -> Option<&str> {
        header_text(self.headers(), "x-notion-request-id")
    }

    /// The next piece of the body; `None` at its end.
    ///
    /// # Errors
    /// The body stopped coming, or went past `proxy.max_response_bytes`.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ProxyError> {
        let chunk = self.response.chunk().await.map_err(ProxyError::Unreachable)?;
        if let Some(chunk) = &chunk {
            self.read += chunk.len();
            if self.read > self.limit {
                return Err(ProxyError::AnswerTooLarge(self.limit));
            }
        }
        Ok(chunk)
    }

    /// The whole body.
    ///
    /// # Errors
    /// See [`ApiAnswer::chunk`].
    pub async fn bytes(mut self) -> Result<Bytes, ProxyError> {
        let mut body = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            body.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(body))
    }
}

/// Sends calls to Notion's API for connections, refreshing and waiting as needed.
pub struct NotionProxy {
    lifecycle: Arc<Lifecycle>,
    http: reqwest::Client,
    /// `{api_base_url}/v1/`.
    v1: Url,
    notion_version: String,
    policy: ProxyPolicy,
    metrics: Arc<Metrics>,
    pacing: Option<DefaultKeyedRateLimiter<BotId>>,
    /// Calls since pacing last forgot idle connections.
    since_cleanup: AtomicU32,
    /// Per connection, the token generation Notion refused right after it was refreshed: a
    /// token Notion keeps refusing is not refreshed again on every call (each refresh rotates
    /// the pair and writes the history), until a newer pair (a re-authorization) replaces it.
    refused_after_refresh: Mutex<HashMap<BotId, i64>>,
    /// Request bodies held at once, in KiB, across all proxied calls: each is held whole (it
    /// may be sent again), so without a bound many slow or large ones together could take
    /// the machine's memory.
    body_budget: Arc<tokio::sync::Semaphore>,
}

/// Request bodies held at once: this many times `proxy.max_request_bytes`, at least 64 MiB.
const BODIES_HELD: usize = 32;

impl std::fmt::Debug for NotionProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NotionProxy").field("v1", &self.v1.as_str()).finish_non_exhaustive()
    }
}

impl NotionProxy {
    /// The proxy `config` describes, refreshing through `lifecycle`.
    ///
    /// # Errors
    /// The HTTP client could not be built (no TLS roots).
    pub(crate) fn new(
        config: &Config,
        lifecycle: Arc<Lifecycle>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        let policy = config.proxy;
        let http = reqwest::Client::builder()
            // A redirect would carry the token elsewhere; Notion's API does not redirect.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(policy.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("notion-oauth-handler/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let mut v1 = config.notion.api_base_url.clone();
        let prefix = v1.path().trim_end_matches('/').to_owned();
        v1.set_path(&format!("{prefix}/v1/"));
        v1.set_query(None);
        let pacing = policy.pace.map(|pace| {
            let burst = NonZeroU32::new(pace.burst).unwrap_or(NonZeroU32::MIN);
            let quota = Quota::with_period(pace.interval)
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                .allow_burst(burst);
            RateLimiter::keyed(quota)
        });
        Ok(Self {
            lifecycle,
            http,
            v1,
            notion_version: config.notion.notion_version.clone(),
            policy,
            metrics,
            pacing,
            since_cleanup: AtomicU32::new(0),
            refused_after_refresh: Mutex::default(),
            body_budget: Arc::new(tokio::sync::Semaphore::new(
                (policy.max_request_bytes.saturating_mul(BODIES_HELD) / 1024).max(64 * 1024),
            )),
        })
    }

    /// The limits in force.
    pub fn policy(&self) -> &ProxyPolicy {
        &self.policy
    }

    /// Room to hold a request body of up to `bytes`, for as long as the permit lives; `None`
    /// when the bodies held already fill the budget (the caller answers "busy").
    pub(crate) fn hold_body(&self, bytes: usize) -> Option<tokio::sync::OwnedSemaphorePermit> {
        let kib = u32::try_from(bytes.div_ceil(1024).max(1)).unwrap_or(u32::MAX);
        self.body_budget.clone().try_acquire_many_owned(kib).ok()
    }

    /// Sends `request` for `bot_id`'s connection: with its token, refreshed once on a 401, and
    /// again after a 429 or 529 whose `Retry-After` fits the budget.
    ///
    /// # Errors
    /// See [`ProxyError`]. Every answer Notion gives otherwise, errors included, is an
    /// [`ApiAnswer`].
    #[tracing::instrument(name = "proxy.send", level = "debug", skip_all, fields(bot_id = %bot_id, path = request.path.as_str()))]
    pub async fn send(
        &self,
        bot_id: &BotId,
        request: &ApiRequest,
    ) -> Result<ApiAnswer, ProxyError> {
        let family = request.path.family;
        check_request(request)?;
        let result = self.send_with_retries(bot_id, request).await;
        let status = match &result {
            Ok(answer) => answer.status(),
            // Notion did answer this one.
            Err(ProxyError::StillUnauthorized { .. }) => 401,
            Err(_) => 0,
        };
        self.metrics.proxy_call(family, status);
        result
    }

    async fn send_with_retries(
        &self,
        bot_id: &BotId,
        request: &ApiRequest,
    ) -> Result<ApiAnswer, ProxyError> {
        let deadline = Instant::now() + self.policy.retry_budget;
        let mut token =
            self.lifecycle.token(bot_id, Freshness::Stored, WhichTokens::Access).await?;
        // A pair Notion refused even fresh: refreshing it again would only rotate it.
        match self.refused_generation(bot_id) {
            Some(generation) if generation >= token.generation => {
                return Err(ProxyError::StillUnauthorized { request_id: None });
            }
            // The user connected again since: a new pair, worth trying.
            Some(_) => drop(self.lock_refused().remove(bot_id)),
            None => {}
        }
        let mut refreshed = false;
        let mut sends = 0;
        loop {
            self.pace(bot_id, deadline).await?;
            sends += 1;
            let response = match self.call(&token.access_token, request).await {
                Ok(response) => response,
                // Refused before a byte went out: nothing reached Notion, so any method may go
                // again.
                Err(error)
                    if error.is_connect()
                        && sends < MAX_SENDS
                        && fits(deadline, NOT_SENT_PAUSE) =>
                {
                    tracing::debug!(error = %error, "Notion refused the connection; sending again");
                    self.metrics.proxy_retry(ProxyRetry::NotSent);
                    tokio::time::sleep(NOT_SENT_PAUSE).await;
                    continue;
                }
                Err(error) if error.is_timeout() => {
                    return Err(ProxyError::Timeout(self.policy.timeout));
                }
                Err(error) => return Err(ProxyError::Unreachable(error.without_url())),
            };
            let status = response.status().as_u16();
            if status == 401 {
                let request_id = header_text(response.headers(), "x-notion-request-id");
                if refreshed {
                    self.lock_refused().insert(bot_id.clone(), token.generation);
                    tracing::warn!(
                        bot_id = %bot_id,
                        request_id,
                        "Notion refused the connection's token again right after refreshing it; not refreshing it again until the user connects again"
                    );
                    return Err(ProxyError::StillUnauthorized {
                        request_id: request_id.map(str::to_owned),
                    });
                }
                tracing::info!(
                    bot_id = %bot_id,
                    request_id,
                    "Notion refused the connection's access token; refreshing it once"
                );
                self.metrics.proxy_retry(ProxyRetry::Unauthorized);
                // Only a pair newer than the one refused helps; callers that got the same 401
                // at the same time share the one refresh.
                token = self
                    .lifecycle
                    .refresh_after(bot_id, token.generation, Coalesce::OnlyNewer)
                    .await?;
                refreshed = true;
                continue;
            }
            if matches!(status, 429 | 529) && sends < MAX_SENDS {
                let wait = retry_after(response.headers());
                if let Some(wait) = wait.filter(|wait| fits(deadline, *wait)) {
                    tracing::debug!(status, ?wait, "Notion asked to slow down; waiting");
                    self.metrics.proxy_retry(ProxyRetry::RateLimited);
                    drop(response);
                    tokio::time::sleep(wait).await;
                    continue;
                }
            }
            let limit = self.policy.max_response_bytes;
            if response.content_length().is_some_and(|length| length > limit as u64) {
                return Err(ProxyError::AnswerTooLarge(limit));
            }
            return Ok(ApiAnswer { response, limit, read: 0 });
        }
    }

    /// The generation refused right after a refresh, while it is still the stored one.
    fn refused_generation(&self, bot_id: &BotId) -> Option<i64> {
        self.lock_refused().get(bot_id).copied()
    }

    fn lock_refused(&self) -> std::sync::MutexGuard<'_, HashMap<BotId, i64>> {
        self.refused_after_refresh.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One send to Notion.
    async fn call(
        &self,
        token: &AccessToken,
        request: &ApiRequest,
    ) -> Result<reqwest::Response, reqwest::Error> {
        let mut url = self.v1.clone();
        let base = url.path().to_owned();
        url.set_path(&format!("{base}{}", request.path.as_str()));
        url.set_query(request.query.as_deref().filter(|q| !q.is_empty()));
        let version = request.notion_version.as_deref().unwrap_or(&self.notion_version);
        let mut call = self
            .http
            .request(request.method.http(), url)
            .timeout(self.policy.timeout)
            .bearer_auth(token.expose_secret())
            .header("Notion-Version", version);
        if !request.body.is_empty() {
            let content_type = request
                .content_type
                .clone()
                .unwrap_or_else(|| HeaderValue::from_static("application/json"));
            call = call.header(header::CONTENT_TYPE, content_type).body(request.body.clone());
        }
        call.send().await
    }

    /// Waits for `bot_id`'s turn under `proxy.requests_per_second`, if pacing is on.
    async fn pace(&self, bot_id: &BotId, deadline: Instant) -> Result<(), ProxyError> {
        let Some(limiter) = &self.pacing else { return Ok(()) };
        if self.since_cleanup.fetch_add(1, Ordering::Relaxed) >= 10_000 {
            self.since_cleanup.store(0, Ordering::Relaxed);
            limiter.retain_recent();
        }
        loop {
            let Err(not_until) = limiter.check_key(bot_id) else { return Ok(()) };
            let wait = not_until.wait_time_from(limiter.clock().now());
            if !fits(deadline, wait) {
                return Err(ProxyError::Paced(wait.as_secs().max(1)));
            }
            tokio::time::sleep(wait).await;
        }
    }
}

/// What the HTTP route checks too, for callers that build an [`ApiRequest`] themselves: a query
/// within [`MAX_QUERY_BYTES`], a `Notion-Version` shaped as Notion writes them.
fn check_request(request: &ApiRequest) -> Result<(), ProxyError> {
    if request.query.as_ref().is_some_and(|query| query.len() > MAX_QUERY_BYTES) {
        return Err(ProxyError::InvalidRequest(format!(
            "the query string is longer than {MAX_QUERY_BYTES} bytes"
        )));
    }
    if let Some(version) = &request.notion_version
        && !is_notion_version(version)
    {
        return Err(ProxyError::InvalidRequest(
            "Notion-Version must be a date such as 2026-03-11".into(),
        ));
    }
    Ok(())
}

/// `YYYY-MM-DD`, as Notion's versions are written.
pub fn is_notion_version(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() == 10
        && bytes.iter().enumerate().all(|(i, b)| match i {
            4 | 7 => *b == b'-',
            _ => b.is_ascii_digit(),
        })
}

/// Whether waiting `wait` from now still ends before `deadline`.
fn fits(deadline: Instant, wait: Duration) -> bool {
    Instant::now().checked_add(wait).is_some_and(|end| end <= deadline)
}

/// `Retry-After` in seconds, as Notion sends it (an HTTP date is not expected, and is taken as
/// no advice).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds = header_text(headers, header::RETRY_AFTER.as_str())?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(seconds))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

/// Notion's API for one connection, for an app that embeds the server: the same calls, with the
/// same refresh on 401 and waits on 429, as the HTTP proxy.
#[derive(Debug, Clone)]
pub struct ConnectionApi {
    proxy: Arc<NotionProxy>,
    bot_id: BotId,
}

impl ConnectionApi {
    pub(crate) fn new(proxy: Arc<NotionProxy>, bot_id: BotId) -> Self {
        Self { proxy, bot_id }
    }

    /// Sends `request`.
    ///
    /// # Errors
    /// See [`ProxyError`].
    pub async fn send(&self, request: &ApiRequest) -> Result<ApiAnswer, ProxyError> {
        self.proxy.send(&self.bot_id, request).await
    }

    /// `GET /v1/{path}`.
    ///
    /// # Errors
    /// See [`ProxyError`].
    pub async fn get(&self, path: &str) -> Result<ApiAnswer, ProxyError> {
        self.send(&ApiRequest::new(ApiMethod::Get, ApiPath::parse(path)?)).await
    }

    /// `POST /v1/{path}` with a JSON body.
    ///
    /// # Errors
    /// See [`ProxyError`].
    pub async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<ApiAnswer, ProxyError> {
        self.send(&ApiRequest::new(ApiMethod::Post, ApiPath::parse(path)?).json(body)).await
    }

    /// `DELETE /v1/{path}`.
    ///
    /// # Errors
    /// See [`ProxyError`].
    pub async fn delete(&self, path: &str) -> Result<ApiAnswer, ProxyError> {
        self.send(&ApiRequest::new(ApiMethod::Delete, ApiPath::parse(path)?)).await
    }

    /// `PATCH /v1/{path}` with a JSON body.
    ///
    /// # Errors
    /// See [`ProxyError`].
    pub async fn patch(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<ApiAnswer, ProxyError> {
        self.send(&ApiRequest::new(ApiMethod::Patch, ApiPath::parse(path)?).json(body)).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn only_plain_paths_under_v1_are_accepted() {
        for good in [
            "users/me",
            "/pages/59833787-2cf9-4fdf-8782-e53db20768a5",
            "blocks/abc/children/",
            "search",
        ] {
            assert!(ApiPath::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "/",
            "../oauth/token",
            "pages/..",
            "pages/./x",
            "pages//x",
            "pages%2F..%2Fx",
            "pages/%2e%2e",
            "http://evil.example/x",
            "//evil.example/x",
            "pages\\x",
            "pages/a b",
            "oauth/token",
            "OAuth/token",
            "OAUTH/revoke",
            "V1/users",
            "v1/users/me",
            "pages/é",
            "pages/x?y",
            "pages/x#y",
            "pages/x;y",
        ] {
            assert!(ApiPath::parse(bad).is_err(), "{bad}");
        }
        assert!(ApiPath::parse(&"a/".repeat(300)).is_err());
        assert_eq!(ApiPath::parse("/blocks/b1/children/").unwrap().as_str(), "blocks/b1/children");
        assert_eq!(ApiPath::parse("data_sources/x/query").unwrap().family, ApiFamily::DataSources);
        assert_eq!(ApiPath::parse("whatever").unwrap().family, ApiFamily::Other);
    }

    #[test]
    fn retry_after_is_whole_seconds_or_nothing() {
        let mut headers = HeaderMap::new();
        assert_eq!(retry_after(&headers), None);
        headers.insert(header::RETRY_AFTER, HeaderValue::from_static(" 2 "));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers
            .insert(header::RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&headers), None);
    }
}
