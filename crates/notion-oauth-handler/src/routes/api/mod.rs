//! `/api/v1`: what the developer's backend calls, authenticated by an API key.
//!
//! Every error is `{"error": {"code", "message"}}`; a connection that needs its user again
//! answers 409 with the `connect_url` to send them to. The OpenAPI document is generated from
//! these handlers, and the error statuses each route lists come from the shared sets in
//! [`responses`], which a test holds to the error mapping, so the document cannot drift from the
//! answers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::{Json, Router};
use notion_oauth::NotionError;
use serde::Serialize;
use url::Url;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

mod connections;
mod deliveries;
mod proxy;
mod responses;

use connections::{
    CheckBody, ConnectionList, EventList, TokenBody, check_connection, connection_events,
    get_connection, get_token, list_connections, refresh_connection, revoke_connection,
};
use deliveries::{
    ConnectLink, DeliveryList, NewConnectLink, create_connect_link, list_deliveries, redeliver,
};

use crate::api_keys;
use crate::domain::BotId;
use crate::lifecycle::LifecycleError;
use crate::links::Links;
use crate::rate_limits::{Limited, RateLimits};
use crate::state::AppState;
use crate::store::{ConnectionSummary, DeliverySummary, Event, Store, now};
use crate::telemetry::Chain;

/// The API, to be nested at `/api/v1`, which the public reaches at `api_url`.
pub(super) fn router(state: AppState, api_url: Url) -> Router<AppState> {
    // Built once: it is the same for every request.
    let document = Bytes::from(this_servers_document(api_url, state.links.return_to_origins()));
    Router::new()
        .route("/connections", get(list_connections))
        .route("/connections/{bot_id}", get(get_connection).delete(revoke_connection))
        .route("/connections/{bot_id}/token", get(get_token))
        .route("/connections/{bot_id}/refresh", post(refresh_connection))
        .route("/connections/{bot_id}/check", post(check_connection))
        .route("/connections/{bot_id}/events", get(connection_events))
        .route("/connections/{bot_id}/notion/{*path}", any(proxy::call_notion))
        .route("/connect-links", post(create_connect_link))
        .route("/deliveries", get(list_deliveries))
        .route("/deliveries/{id}/redeliver", post(redeliver))
        .layer(axum::middleware::from_fn_with_state(state, require_api_key))
        .route("/openapi.json", get(move || openapi_document(document.clone())))
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "This route does not take that method; see /api/v1/openapi.json.",
            )
        })
        .fallback(|| async {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                "There is no such API route; see /api/v1/openapi.json.",
            )
        })
}

/// An API error, as every route answers it.
#[derive(Debug)]
pub(super) struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    connect_url: Option<String>,
    retry_after: Option<u64>,
}

/// Every error's body.
#[derive(Serialize, ToSchema)]
pub(super) struct ErrorBody {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
pub(super) struct ErrorDetail {
    /// Stable: `unauthorized`, `rate_limited`, `not_found`, `invalid_request`, `needs_reauth`,
    /// `revoked`, `notion_unauthorized`, `busy`, `body_too_large`, `notion_unavailable`,
    /// `notion_timeout`, `notion_rejected`, `internal`.
    code: String,
    /// For people; may change.
    message: String,
    /// For `needs_reauth` and `revoked`: where to send the user to connect again.
    #[serde(skip_serializing_if = "Option::is_none")]
    connect_url: Option<String>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), connect_url: None, retry_after: None }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    fn unauthorized() -> Self {
        // Nothing about why: a wrong key, a revoked key and no key look the same from outside.
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "A valid API key is required: Authorization: Bearer noh_…",
        )
    }

    /// A body that could not be read as JSON: 408 when it stopped coming
    /// (`server.header_timeout_seconds` without a byte), else 400 with what was wrong.
    fn from_body(rejection: JsonRejection) -> Self {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(&rejection);
        while let Some(error) = cause {
            if error.is::<tower_http::timeout::TimeoutError>() {
                return Self::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    "The request body stopped coming; send it whole and promptly.",
                );
            }
            cause = error.source();
        }
        Self::invalid(rejection.body_text())
    }

    fn rate_limited(limited: Limited) -> Self {
        Self {
            retry_after: Some(limited.retry_after_seconds),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Too many requests with an API key that is not valid came from this address; wait for Retry-After seconds.",
            )
        }
    }

    fn internal(error: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %Chain(error), "an API request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on our side; try again.",
        )
    }

    /// A lifecycle failure of `bot_id`'s connection, naming the page that reconnects the user
    /// where that helps.
    async fn from_lifecycle(links: &Links, bot_id: &BotId, error: LifecycleError) -> Self {
        let reconnect =
            matches!(error, LifecycleError::NeedsReauth(_) | LifecycleError::Revoked(_));
        let mut api_error = Self::from(error);
        if reconnect {
            let url = links.reconnect_url_for(bot_id).await;
            api_error.connect_url = url.map(|url| url.to_string());
        }
        api_error
    }
}

impl From<LifecycleError> for ApiError {
    fn from(error: LifecycleError) -> Self {
        let message = match error.request_id() {
            Some(id) => format!("{error} (Notion request id {id})"),
            None => error.to_string(),
        };
        match &error {
            LifecycleError::NotFound(_) => Self::new(StatusCode::NOT_FOUND, "not_found", message),
            LifecycleError::NeedsReauth(_) => {
                Self::new(StatusCode::CONFLICT, "needs_reauth", message)
            }
            LifecycleError::Revoked(_) => Self::new(StatusCode::CONFLICT, "revoked", message),
            LifecycleError::Busy => Self {
                retry_after: Some(5),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", message)
            },
            LifecycleError::Notion(notion) | LifecycleError::NotionUncertain(notion) => {
                let retry_after = match notion {
                    NotionError::Api(api) => api.retry_after.map(|d| d.as_secs()),
                    _ => None,
                };
                let (status, code) = match notion {
                    NotionError::Timeout(_) => (StatusCode::GATEWAY_TIMEOUT, "notion_timeout"),
                    e if e.is_invalid_client() => (StatusCode::BAD_GATEWAY, "notion_rejected"),
                    NotionError::Api(api) if api.status == 429 || api.status == 503 => {
                        (StatusCode::SERVICE_UNAVAILABLE, "notion_unavailable")
                    }
                    _ => (StatusCode::BAD_GATEWAY, "notion_unavailable"),
                };
                Self { retry_after, ..Self::new(status, code, message) }
            }
            LifecycleError::Store(_) | LifecycleError::Task => Self::internal(&error),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
                connect_url: self.connect_url,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// An integer as JSON Schema counts them: `60` and `60.0` alike (and, in a query string, their
/// text). Clients that only have floating-point numbers send the second.
#[derive(Debug, Clone, Copy)]
pub(super) struct WholeNumber(pub(super) i64);

impl<'de> serde::Deserialize<'de> for WholeNumber {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = WholeNumber;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a whole number")
            }

            fn visit_i64<E: serde::de::Error>(self, value: i64) -> Result<WholeNumber, E> {
                Ok(WholeNumber(value))
            }

            fn visit_u64<E: serde::de::Error>(self, value: u64) -> Result<WholeNumber, E> {
                i64::try_from(value).map(WholeNumber).map_err(|_| E::custom("too large"))
            }

            fn visit_f64<E: serde::de::Error>(self, value: f64) -> Result<WholeNumber, E> {
                // Beyond ±2^53 a float no longer names one integer; no limit here comes near.
                const EXACT: f64 = 9_007_199_254_740_992.0;
                if value.fract() == 0.0 && value.abs() <= EXACT {
                    #[allow(clippy::cast_possible_truncation)]
                    return Ok(WholeNumber(value as i64));
                }
                Err(E::custom("expected a whole number"))
            }

            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<WholeNumber, E> {
                match text.parse::<i64>() {
                    Ok(value) => Ok(WholeNumber(value)),
                    Err(_) => self.visit_f64(
                        text.parse::<f64>().map_err(|_| E::custom("expected a whole number"))?,
                    ),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError::invalid(rejection.body_text())
}

async fn require_api_key(
    State(store): State<Arc<dyn Store>>,
    State(limits): State<Arc<RateLimits>>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    if let Err(limited) = limits.api_request(&parts) {
        return ApiError::rate_limited(limited).into_response();
    }
    let refused = || match limits.failed_api_key(&parts) {
        Ok(()) => ApiError::unauthorized().into_response(),
        Err(limited) => ApiError::rate_limited(limited).into_response(),
    };
    let presented = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .and_then(|(_, key)| api_keys::parse(key.trim()));
    let Some((id, secret)) = presented else {
        return refused();
    };
    // A key revoked by another process stops working within `store::RECENT`.
    let key = match store.recent_api_key(id).await {
        Ok(key) => key,
        Err(error) => return ApiError::internal(&error).into_response(),
    };
    // The digest is computed and compared in constant time whether or not the id exists, so
    // timing tells nothing about the secret. It may tell whether an id exists (one is read from
    // the database, or its copy is recent): ids are not secret, they are listed and logged.
    let stored = key.as_ref().map_or(&[0u8; 32][..], |k| k.secret_hash.as_slice());
    let matches = api_keys::matches(stored, secret);
    let Some(key) = key.filter(|k| matches && k.revoked_at.is_none()) else {
        return refused();
    };
    // Failures sent alongside may have shut the client out while this key was looked up:
    // asked again, so a wave of guesses cannot carry a right one through.
    if let Err(limited) = limits.api_request(&parts) {
        return ApiError::rate_limited(limited).into_response();
    }
    // Noting the use is a write: at most once a minute per key, not on every call of a hot path.
    if key.last_used_at.is_none_or(|at| now() - at >= 60)
        && let Err(error) = store.touch_api_key(id).await
    {
        tracing::warn!(error = %Chain(&error), "could not record an API key's use");
    }
    let request = Request::from_parts(parts, body);
    let mut response = next.run(request).await;
    // Answers can hold tokens: no cache may keep them.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

struct ApiKeyAuth;

impl Modify for ApiKeyAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("noh_<id>_<secret>, from `notion-oauth-handler api-keys create`")
                    .build(),
            ),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "notion-oauth-handler API", description = "Tokens and lifecycle of the Notion connections this server stores."),
    paths(connections::list_connections, connections::get_connection, connections::get_token, connections::refresh_connection, connections::check_connection, connections::revoke_connection, connections::connection_events, deliveries::list_deliveries, deliveries::redeliver, deliveries::create_connect_link, proxy::call_notion, openapi_document),
    components(schemas(ConnectionList, ConnectionSummary, TokenBody, CheckBody, EventList, Event, ErrorBody, ErrorDetail, DeliveryList, DeliverySummary, NewConnectLink, ConnectLink)),
    modifiers(&ApiKeyAuth),
    security(("api_key" = []))
)]
struct ApiDoc;

/// The OpenAPI 3.1 document of this API, with this server's address.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", security(()), responses((status = 200, description = "This document")))]
async fn openapi_document(document: Bytes) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], document)
}

/// The document as this server answers: its address, and the `return_to` values it accepts
/// (those at `connect.return_to_origins`), so that a client generated from it, or a fuzzer,
/// finds every value the document allows accepted.
fn this_servers_document(api_url: Url, return_to_origins: &[url::Origin]) -> Vec<u8> {
    let mut document = ApiDoc::openapi();
    document.servers = Some(vec![utoipa::openapi::Server::new(api_url.to_string())]);
    let mut document = serde_json::to_value(document).unwrap_or_default();
    let return_to =
        &mut document["components"]["schemas"]["NewConnectLink"]["properties"]["return_to"];
    if let Some(schema) = return_to.as_object_mut() {
        if return_to_origins.is_empty() {
            // Only the empty string, which is the same as leaving it out.
            schema.insert("maxLength".into(), 0.into());
        } else {
            let origins: Vec<String> = return_to_origins
                .iter()
                .map(|origin| regex_escape(&origin.ascii_serialization()))
                .collect();
            // Empty is the same as leaving it out.
            let pattern = format!(
                r"^(?:(?:{})(?:[/?#][^\s\\\u0000-\u001f\u007f-\u009f]*)?)?$",
                origins.join("|")
            );
            schema.insert("pattern".into(), pattern.into());
            // The server's limit is 1024 bytes; 256 characters stay within it in any script.
            schema.insert("maxLength".into(), 256.into());
        }
    }
    add_links(&mut document);
    describe_proxy(&mut document);
    serde_json::to_vec(&document).unwrap_or_default()
}

/// What one annotation of the proxy's route cannot say: GET and DELETE carry no body; the path
/// is segments of letters, digits, `-` and `_`, not Notion's OAuth endpoints; `Notion-Version`
/// is a date; and the statuses Notion shares with this server carry either body.
fn describe_proxy(document: &mut serde_json::Value) {
    let route = &mut document["paths"]["/connections/{bot_id}/notion/{path}"];
    let either = serde_json::json!({ "anyOf": [
        { "$ref": "#/components/schemas/ErrorBody" },
        { "type": "object", "description": "Notion's own error body" },
    ] });
    for method in ["get", "post", "patch", "delete"] {
        let Some(operation) = route[method].as_object_mut() else { continue };
        // One id per operation, as the specification requires.
        operation.insert("operationId".into(), format!("call_notion_{method}").into());
        if matches!(method, "get" | "delete") {
            operation.remove("requestBody");
        } else if let Some(content) = operation
            .get_mut("requestBody")
            .and_then(|body| body.get_mut("content"))
            .and_then(|content| content.as_object_mut())
        {
            // File uploads go to Notion as multipart; any type is passed on.
            content.insert("multipart/form-data".into(), serde_json::json!({ "schema": {} }));
        }
        if let Some(parameters) = operation.get_mut("parameters").and_then(|p| p.as_array_mut()) {
            for parameter in parameters.iter_mut() {
                match parameter["name"].as_str() {
                    Some("path") => {
                        parameter["schema"]["pattern"] =
                            r"^(?![oO][aA][uU][tT][hH](/|$)|[vV]1(/|$))[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$"
                                .into();
                        parameter["schema"]["maxLength"] = 512.into();
                    }
                    Some("Notion-Version") => {
                        parameter["schema"]["pattern"] = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$".into();
                    }
                    _ => {}
                }
            }
        }
        if let Some(responses) = operation.get_mut("responses").and_then(|r| r.as_object_mut()) {
            for (status, description) in [
                ("405", "Not GET, POST, PATCH or DELETE (see Allow)"),
                ("408", "The request body stopped coming"),
                ("413", "The body is longer than proxy.max_request_bytes"),
            ] {
                responses.insert(
                    status.into(),
                    serde_json::json!({ "description": description, "content": { "application/json": {
                        "schema": { "$ref": "#/components/schemas/ErrorBody" } } } }),
                );
            }
            for (status, response) in responses.iter_mut() {
                if ["404", "409", "429", "502", "503", "504"].contains(&status.as_str()) {
                    response["content"]["application/json"]["schema"] = either.clone();
                }
                // What may come with any answer: Notion's headers passed back, or ours.
                response["headers"] = serde_json::json!({
                    "Retry-After": { "description": "Seconds to wait (Notion's, or ours on 429 and 503)", "schema": { "type": "string" } },
                    "x-notion-request-id": { "description": "Notion's id for the request, on Notion's answers", "schema": { "type": "string" } },
                    "Noh-Error": { "description": "This server's error code, on its own refusals only (never on Notion's answers)", "schema": { "type": "string" } },
                });
            }
        }
    }
}

/// OpenAPI links: a listed connection's `bot_id` (and a listed delivery's `id`) feed the routes
/// on one of them, so generated clients and fuzzers can walk from a list to its items.
fn add_links(document: &mut serde_json::Value) {
    let connection = "$response.body#/connections/0/bot_id";
    let per_connection = [
        "get_connection",
        "get_token",
        "refresh_connection",
        "check_connection",
        "connection_events",
        "revoke_connection",
    ];
    let lists = [
        ("/connections", "bot_id", connection, &per_connection[..]),
        ("/deliveries", "id", "$response.body#/deliveries/0/id", &["redeliver"][..]),
    ];
    for (path, parameter, value, operations) in lists {
        let links: serde_json::Map<String, serde_json::Value> = operations
            .iter()
            .map(|operation| {
                let link = serde_json::json!({
                    "operationId": operation,
                    "parameters": { parameter: value },
                });
                ((*operation).to_owned(), link)
            })
            .collect();
        if let Some(ok) = document["paths"][path]["get"]["responses"]["200"].as_object_mut() {
            ok.insert("links".into(), links.into());
        }
    }
}

/// `text` as a regular expression that matches only it (ECMA-262's syntax characters escaped,
/// nothing else: an escaped letter or colon is an error there).
fn regex_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if "^$\\.*+?()[]{}|/".contains(c) {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use notion_oauth::NotionApiError;

    use super::responses::{Keyed, LifecycleFailures};
    use super::*;

    fn api(status: u16, code: &str) -> NotionError {
        NotionError::Api(NotionApiError {
            status,
            code: code.into(),
            message: String::new(),
            request_id: None,
            retry_after: None,
        })
    }

    /// Every kind of lifecycle failure, with each way Notion can fail.
    fn examples() -> Vec<LifecycleError> {
        use LifecycleError as L;
        let garbled =
            NotionError::InvalidResponse { status: 200, reason: "x".into(), request_id: None };
        vec![
            L::NotFound(BotId::new("b")),
            L::NeedsReauth(String::new()),
            L::Revoked(String::new()),
            L::Busy,
            L::Notion(NotionError::Timeout(Duration::from_secs(1))),
            L::Notion(api(401, "invalid_client")),
            L::Notion(api(429, "rate_limited")),
            L::NotionUncertain(api(503, "service_unavailable")),
            L::Notion(api(500, "internal_server_error")),
            L::Notion(NotionError::UnexpectedStatus { status: 502, request_id: None }),
            L::NotionUncertain(garbled),
            L::Store(crate::store::StoreError::Corrupt),
            L::Task,
        ]
    }

    /// Fails to compile when a variant is added, as a reminder to give it an example above.
    fn _every_variant_has_an_example(error: &LifecycleError) {
        use LifecycleError as L;
        match error {
            L::NotFound(_) | L::NeedsReauth(_) | L::Revoked(_) | L::Busy => {}
            L::Notion(_) | L::NotionUncertain(_) | L::Store(_) | L::Task => {}
        }
    }

    #[test]
    fn the_documented_lifecycle_answers_are_exactly_those_given() {
        let given: BTreeSet<u16> =
            examples().into_iter().map(|e| ApiError::from(e).status.as_u16()).collect();
        let documented: BTreeSet<u16> = LifecycleFailures::TABLE
            .iter()
            .chain(Keyed::TABLE)
            .map(|(status, _)| *status)
            .filter(|status| ![401, 429].contains(status))
            .collect();
        assert_eq!(given, documented);
    }
}
