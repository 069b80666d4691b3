//! The HTTP surface: which path does what, and the layers every response goes through.

mod api;
mod callback;
mod connect;
mod health;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{MatchedPath, RawQuery, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use minijinja::context;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::pages::Page;
use crate::startup::AppState;

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

/// The whole application, mounted under `base_path`.
pub fn router(app: AppState) -> Router {
    let mut pages = Router::new()
        .route("/", get(landing_page))
        .route("/connect", get(connect::start_connect))
        .route("/callback", get(callback::oauth_callback))
        .fallback(not_found);
    for (name, value) in SECURITY_HEADERS {
        pages = pages
            .layer(SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value)));
    }
    let mut routes =
        pages.route("/healthz", get(health::healthz)).route("/readyz", get(health::readyz));
    // Documents are the operator's own files, served as written, without our page policy.
    for document in &app.config.documents {
        let (body, content_type) =
            (Bytes::from(document.body.clone()), document.content_type.clone());
        routes = routes.route(
            &document.path,
            get(move || async move { ([(header::CONTENT_TYPE, content_type)], body) }),
        );
    }
    let routes = routes.nest("/api/v1", api::router(app.clone())).with_state(app.clone());
    let routes = match app.config.base_path.as_str() {
        "" => routes,
        base => Router::new().nest(base, routes),
    };
    routes.layer(
        TraceLayer::new_for_http()
            // The span names the route, never the query string: it carries codes and states.
            .make_span_with(|request: &Request| {
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map_or("unmatched", MatchedPath::as_str);
                tracing::info_span!("request", method = %request.method(), route)
            })
            .on_response(DefaultOnResponse::new().level(Level::INFO)),
    )
}

/// The landing page passes its query (`ref`, `return_to`, a signed or one-time link) on to its
/// button unchanged: `/connect` checks it, and nothing is used up by viewing this page.
async fn landing_page(State(app): State<AppState>, RawQuery(query): RawQuery) -> Page {
    let query = query.filter(|q| !q.is_empty() && q.len() <= 4096);
    app.pages.render(StatusCode::OK, "landing.html", context! { query })
}

/// The response for a flow that could not go on: the embedding app's view if it answers, else
/// our error page.
pub(crate) fn flow_error(
    app: &AppState,
    error: &crate::flow::FlowError,
) -> axum::response::Response {
    let ttl_minutes = app.config.state_ttl.as_secs() / 60;
    let (status, reason, _, message) = crate::pages::describe(error, ttl_minutes);
    let outcome = crate::hooks::Outcome::Failed {
        reason,
        status: status.as_u16(),
        message: &message,
        request_id: error.request_id(),
    };
    app.view_response(&outcome)
        .unwrap_or_else(|| app.pages.error(error, ttl_minutes).into_response())
}

async fn not_found(State(app): State<AppState>) -> impl IntoResponse {
    let values = context! {
        reason => "not_found",
        title => "Page not found",
        message => "There is nothing at this address. To connect Notion, start from the button below.",
    };
    app.pages.render(StatusCode::NOT_FOUND, "error.html", values)
}
