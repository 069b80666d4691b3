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
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::config::Config;
use crate::pages::{Page, Pages};
use crate::state::AppState;

/// Pages a browser walks through hold codes and states: keep them out of caches, frames and
/// Referer headers, and let them load nothing from elsewhere (the workspace icon excepted).
const SECURITY_HEADERS: [(header::HeaderName, &str); 5] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; img-src https: data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::CACHE_CONTROL, "no-store"),
];

/// The whole application, mounted under `config.base_path`, with `config.documents` served.
pub(crate) fn router(state: AppState, config: &Config) -> Router {
    let mut pages = Router::new()
        .route("/", get(landing_page))
        .route("/connect", get(connect::start_connect).head(safe_only))
        .route("/callback", get(callback::oauth_callback).head(safe_only))
        .fallback(not_found);
    for (name, value) in SECURITY_HEADERS {
        pages = pages
            .layer(SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value)));
    }
    let mut routes =
        pages.route("/healthz", get(health::healthz)).route("/readyz", get(health::readyz));
    // Documents are the operator's own files, served as written, without our page policy (it
    // would block their styles and images), but never sniffed as another type or framed.
    for document in &config.documents {
        let (body, content_type) =
            (Bytes::from(document.body.clone()), document.content_type.clone());
        routes = routes.route(
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
    // API answers are JSON holding tokens: no browser may take one for a script or a page.
    let api = api::router(state.clone(), config.public_link("/api/v1")).layer(
        SetResponseHeaderLayer::overriding(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    );
    let routes = routes.nest("/api/v1", api).with_state(state);
    let mut routes = match config.base_path.as_str() {
        "" => routes,
        base => Router::new().nest(base, routes),
    };
    // Served at an https address (by a proxy in front, today), browsers are told to come back
    // only over https. Subdomains are not ours to speak for.
    if config.is_https() {
        routes = routes.layer(SetResponseHeaderLayer::if_not_present(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000"),
        ));
    }
    // A line per request is for debugging (RUST_LOG=debug): at the default level the log has
    // one line per finished flow, and a request costs no span (a line per request took a fifth
    // of the throughput of /connect and the token API). Failures (5xx) are logged at any level.
    routes.layer(
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
    )
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

/// A request to a flow's endpoints within its client's rate (`rate_limit.flow_requests_*`);
/// past it, the handler is not run and the browser gets a page saying when to come back.
pub(super) struct WithinFlowLimit;

impl FromRequestParts<AppState> for WithinFlowLimit {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        match state.rate_limits.flow_request(parts) {
            Ok(()) => Ok(Self),
            Err(limited) => Err(state.pages.rate_limited(limited.retry_after_seconds)),
        }
    }
}

async fn not_found(State(pages): State<Arc<Pages>>) -> Page {
    pages.not_found()
}
