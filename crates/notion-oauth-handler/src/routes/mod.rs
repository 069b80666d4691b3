//! The HTTP surface: which path does what, and the layers every response goes through.

mod api;
mod callback;
mod connect;
mod health;

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{FromRequestParts, MatchedPath, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::util::MapResponseLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::config::Config;
use crate::flow::BrowserCookies;
use crate::metrics::Metrics;
use crate::pages::{Page, Pages};
use crate::state::{AppState, BrowserCookie};
use crate::store::Store;
use crate::telemetry::Chain;

/// Pages a browser walks through hold codes and states: keep them out of caches, frames and
/// Referer headers, and let them load nothing from elsewhere (the workspace icon excepted).
const SECURITY_HEADERS: [(header::HeaderName, &str); SECURITY_HEADER_COUNT] = [
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::CACHE_CONTROL, "no-store"),
];

/// Headers a page's answer gets besides its own: the security headers, its policy, HSTS over
/// https, and the length axum adds.
const PAGE_HEADERS_AT_MOST: usize = SECURITY_HEADER_COUNT + 3;
const SECURITY_HEADER_COUNT: usize = 4;

/// The whole application, mounted under `config.base_path`, with `config.documents` served.
///
/// Each `Router::layer` wraps every route in one more boxed service that is cloned per request,
/// so every group gets its headers from one layer and nothing is layered that a route does not
/// use: under load on `/connect`, nine layers cost about a fifth of the throughput (see
/// `docs/BENCHMARKS.md`).
pub(crate) fn router(state: AppState, config: &Config) -> Router {
    let state_metrics = state.metrics.clone();
    // Served at an https address, browsers are told to come back only over https. Subdomains
    // are not ours to speak for.
    let hsts = config
        .is_https()
        .then(|| (header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000")));
    let mut page_headers: Vec<_> = SECURITY_HEADERS
        .into_iter()
        .map(|(name, value)| (name, HeaderValue::from_static(value)))
        .collect();
    page_headers.push((header::CONTENT_SECURITY_POLICY, page_policy(config)));
    page_headers.extend(hsts.clone());
    let pages = Router::new()
        .route("/", get(landing_page))
        .route("/connect", get(connect::start_connect).head(safe_only))
        .route("/callback", get(callback::oauth_callback).head(safe_only))
        .fallback(not_found)
        .layer(finish_answers(page_headers, Fill::IfMissing));
    let mut others =
        Router::new().route("/healthz", get(health::healthz)).route("/readyz", get(health::readyz));
    // Documents are the operator's own files, served as written, without our page policy (it
    // would block their styles and images), but never sniffed as another type or framed.
    for document in &config.documents {
        let (body, content_type) =
            (Bytes::from(document.body.clone()), document.content_type.clone());
        others = others.route(
            &document.path,
            get(move || async move {
                let headers = [
                    (header::CONTENT_TYPE, content_type),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
                    (header::X_FRAME_OPTIONS, "DENY".to_owned()),
                ];
                (headers, body)
            }),
        );
    }
    others = others.layer(finish_answers(hsts.iter().cloned().collect(), Fill::IfMissing));
    // API answers are JSON holding tokens: no browser may take one for a script or a page.
    // Only the API reads request bodies, so only its routes time a body that stops coming
    // (hyper times headers; bodies are read by the handlers, so the layer times each read).
    let mut api_headers =
        vec![(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"))];
    api_headers.extend(hsts);
    let api = api::router(state.clone(), config.public_link("/api/v1"))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(config.limits.header_timeout))
        .layer(finish_answers(api_headers, Fill::Always));
    let routes = pages.merge(others).nest("/api/v1", api).with_state(state);
    let mut routes = match config.base_path.as_str() {
        "" => routes,
        base => Router::new().nest(base, routes),
    };
    if config.metrics_bind.is_some() {
        routes = routes
            .layer(axum::middleware::from_fn_with_state(state_metrics.clone(), record_request));
    }
    // A line per request is for debugging (RUST_LOG=debug): at the default level the log has
    // one line per finished flow, and a request costs no span and no layer (a line per request
    // took a fifth of the throughput of /connect and the token API; the layer alone, its span
    // disabled, still cost a clock read and a wrapped body per request). The level is read
    // once, here: the server's filter is set before the router is built and never changes.
    // Failures (5xx) are logged at any level by `finish_answers`.
    let debugging = tracing::enabled!(Level::DEBUG)
        || tracing::enabled!(target: "tower_http::trace::on_response", Level::DEBUG);
    if debugging {
        routes = routes.layer(
            TraceLayer::new_for_http()
                // The span names the route, never the query string: it carries codes and states.
                .make_span_with(|request: &Request| {
                    let route = request
                        .extensions()
                        .get::<MatchedPath>()
                        .map_or("unmatched", MatchedPath::as_str);
                    tracing::debug_span!("request", method = %request.method(), route)
                })
                .on_response(DefaultOnResponse::new().level(Level::DEBUG)),
        );
    }
    routes
}

/// What pages may load: nothing from elsewhere but images (a workspace icon), from https or,
/// for a local emulator, from its own loopback origin.
fn page_policy(config: &Config) -> HeaderValue {
    let images = match config.local_notion_origin() {
        Some(origin) => format!("https: data: {origin}"),
        None => "https: data:".to_owned(),
    };
    let policy = |images: &str| {
        format!(
            "default-src 'none'; style-src 'unsafe-inline'; img-src {images}; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
    };
    // An origin is always header-safe; were it not, the stricter policy still applies.
    HeaderValue::try_from(policy(&images))
        .or_else(|_| HeaderValue::try_from(policy("https: data:")))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"))
}

/// Whether [`finish_answers`] keeps a value the handler set.
#[derive(Clone, Copy)]
enum Fill {
    /// The handler's own value stays.
    IfMissing,
    /// Ours replaces it.
    Always,
}

/// One layer for what every answer of a router gets: `headers` (one boxed service per route
/// instead of one per header; a clone of it is one shared count), and a log line for a server
/// error (5xx) at any log level, which the trace layer gave before it became debug-only.
fn finish_answers(
    headers: Vec<(header::HeaderName, HeaderValue)>,
    fill: Fill,
) -> MapResponseLayer<impl FnOnce(Response) -> Response + Clone + Send + Sync + 'static> {
    let headers: Arc<[(header::HeaderName, HeaderValue)]> = headers.into();
    MapResponseLayer::new(move |mut response: Response| {
        if response.status().is_server_error() {
            tracing::error!(status = response.status().as_u16(), "a request failed");
        }
        let answer = response.headers_mut();
        // Room for all at once: growing the map header by header rehashed it twice, 4 % of the
        // CPU of `/connect`.
        answer.reserve(headers.len());
        for (name, value) in headers.iter() {
            match fill {
                Fill::IfMissing if answer.contains_key(name) => {}
                _ => {
                    answer.insert(name.clone(), value.clone());
                }
            }
        }
        response
    })
}

/// Counts and times each answer by its route's pattern (never the path itself: it can hold a
/// bot id), when metrics are served.
async fn record_request(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let started = std::time::Instant::now();
    let route = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned());
    let response = next.run(request).await;
    let route = route.as_deref().unwrap_or("unmatched");
    metrics.http_request(route, response.status().as_u16(), started.elapsed());
    response
}

/// `GET /metrics`, Prometheus's text format, on `server.metrics_bind` only.
pub(crate) fn metrics_router(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> Router {
    Router::new().route("/metrics", get(move || scrape(store.clone(), metrics.clone())))
}

async fn scrape(store: Arc<dyn Store>, metrics: Arc<Metrics>) -> impl IntoResponse {
    match store.gauges().await {
        Ok(gauges) => {
            let age = gauges.oldest_pending_at.map_or(0, |at| (crate::store::now() - at).max(0));
            let age = std::time::Duration::from_secs(u64::try_from(age).unwrap_or(0));
            metrics.set_state(&gauges.connections, gauges.pending_deliveries, age);
        }
        // The counters are still worth having; the gauges keep their last values.
        Err(error) => tracing::warn!(error = %Chain(&error), "metrics could not read the database"),
    }
    let content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    ([(header::CONTENT_TYPE, content_type)], metrics.render())
}

/// The landing page passes its query (`ref`, `return_to`, a signed or one-time link) on to its
/// button unchanged: `/connect` checks it, and nothing is used up by viewing this page.
async fn landing_page(State(pages): State<Arc<Pages>>, RawQuery(query): RawQuery) -> Page {
    pages.landing(query)
}

/// `HEAD` of a page that uses something up (a state, a one-time link): link checkers and
/// previewers send it, and it must not spend what the user's own `GET` needs.
async fn safe_only() -> impl IntoResponse {
    (StatusCode::METHOD_NOT_ALLOWED, [(header::ALLOW, "GET")])
}

/// A request to a flow's endpoints admitted within its client's rate
/// (`rate_limit.flow_requests_*`), with the metrics its outcome is counted in; past the rate,
/// the handler is not run and the browser gets a page saying when to come back.
pub(super) struct Admitted {
    pub(super) metrics: Arc<Metrics>,
}

impl FromRequestParts<AppState> for Admitted {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match state.rate_limits.flow_request(parts) {
            Ok(()) => Ok(Self { metrics: state.metrics.clone() }),
            Err(limited) => {
                state.metrics.flow_refused("rate_limited");
                Err(state.pages.rate_limited(limited.retry_after_seconds))
            }
        }
    }
}

/// The flow's cookies as the browser sent them ([`BrowserCookie::sent`]).
pub(super) struct SentCookies {
    binding: Option<String>,
    finished: Option<String>,
}

impl SentCookies {
    pub(super) fn as_browser(&self) -> BrowserCookies<'_> {
        BrowserCookies { binding: self.binding.as_deref(), finished: self.finished.as_deref() }
    }
}

impl FromRequestParts<AppState> for SentCookies {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let sent = |name| BrowserCookie::sent(name, &parts.headers).map(str::to_owned);
        let names = &state.browser_cookie;
        Ok(Self { binding: sent(names.name), finished: sent(names.finished_name) })
    }
}

async fn not_found(State(pages): State<Arc<Pages>>) -> Page {
    pages.not_found()
}
