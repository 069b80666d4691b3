//! `/connections/{bot_id}/notion/{path}`: Notion's API, called with the connection's token.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use super::ApiError;
use super::responses::{Keyed, LifecycleFailures};
use crate::domain::BotId;
use crate::links::Links;
use crate::proxy::{
    ApiMethod, ApiPath, ApiRequest, MAX_QUERY_BYTES, NotionProxy, ProxyError, is_notion_version,
};

/// Notion's headers passed back: the body's type, when to come back, and Notion's request id
/// (for its support). Nothing else: no cookies, no hop-by-hop or caching headers of Notion's.
const ANSWER_HEADERS: [&str; 4] =
    ["content-type", "retry-after", "x-notion-request-id", "x-request-id"];

/// Call Notion's API with the connection's token: `{path}` (one or more segments, such as
/// `users/me` or `blocks/{id}/children`) goes to `{notion.api_base_url}/v1/{path}` with the
/// query string, the body, `Content-Type` and `Notion-Version` (yours, else the configured
/// one). A 401 refreshes the token once and sends again; a 429 or 529 is waited out within
/// `proxy.retry_budget_seconds`. Notion's status, body, `Retry-After` and request id come back
/// as they are; errors of this server have an `ErrorBody` and the header `Noh-Error` naming
/// their code.
#[utoipa::path(
    method(get, post, patch, delete),
    path = "/connections/{bot_id}/notion/{path}",
    params(
        ("bot_id" = String, Path),
        ("path" = String, Path, description = "A Notion API path after /v1/, such as users/me, search or pages/{page_id}: letters, digits, - and _ in each segment, and the slashes between segments sent as they are (an encoded slash, %2F, is refused)."),
        ("Notion-Version" = Option<String>, Header, description = "Sent to Notion; the configured version when absent"),
    ),
    request_body(content = Option<serde_json::Value>, description = "Passed on as it is (at most proxy.max_request_bytes)", content_type = "application/json"),
    tag = "notion",
    responses(
        (status = 200, description = "Notion's answer, as it came", body = serde_json::Value),
        (status = "default", description = "Notion's answer, as it came (its own error body), or this server's error (an ErrorBody): 400 a path, query or body that cannot be passed on, 409 a user who has to connect again (connect_url), 413 a body over proxy.max_request_bytes, 429 over proxy.requests_per_second, 502 Notion unreachable or its answer too large, 504 Notion too slow", body = serde_json::Value),
        LifecycleFailures,
        Keyed,
    )
)]
pub(super) async fn call_notion(
    State(proxy): State<Arc<NotionProxy>>,
    State(links): State<Arc<Links>>,
    path: Result<Path<(BotId, String)>, PathRejection>,
    request: Request,
) -> Response {
    let answer = match path {
        Ok(Path((bot_id, _))) => forward(&proxy, &links, bot_id, request).await,
        Err(rejection) => Err(ApiError::invalid(rejection.body_text())),
    };
    // Our own refusals say so in a header: a 404, 409 or 502 can also be Notion's own, passed
    // back as it came.
    answer.unwrap_or_else(|error| {
        let code = error.code;
        let mut response = error.into_response();
        response.headers_mut().insert(OWN_ERROR, HeaderValue::from_static(code));
        response
    })
}

/// The header on every answer of this server's rather than Notion's, naming its error code.
pub(super) const OWN_ERROR: HeaderName = HeaderName::from_static("noh-error");

async fn forward(
    proxy: &NotionProxy,
    links: &Links,
    bot_id: BotId,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let Some(method) = ApiMethod::from_http(&parts.method) else {
        let refused = ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "Notion's API takes GET, POST, PATCH and DELETE.",
        );
        let mut response = refused.into_response();
        let headers = response.headers_mut();
        headers.insert(header::ALLOW, HeaderValue::from_static("GET, POST, PATCH, DELETE"));
        headers.insert(OWN_ERROR, HeaderValue::from_static("method_not_allowed"));
        return Ok(response);
    };
    // The path as it was sent, not decoded: `%2F` must not become a separator, nor `%2e%2e` a
    // way up.
    let raw = parts.uri.path();
    let tail = raw
        .split_once("/connections/")
        .and_then(|(_, rest)| rest.split_once("/notion/"))
        .map_or("", |(_, tail)| tail);
    let path = ApiPath::parse(tail).map_err(|error| ApiError::invalid(error.to_string()))?;
    let query = parts.uri.query().map(str::to_owned);
    if query.as_ref().is_some_and(|q| q.len() > MAX_QUERY_BYTES) {
        return Err(ApiError::invalid(format!(
            "the query string is longer than {MAX_QUERY_BYTES} bytes"
        )));
    }
    let notion_version = match parts.headers.get("notion-version") {
        None => None,
        Some(value) => Some(checked_version(value)?),
    };
    let limit = proxy.policy().max_request_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|text| text.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        return Err(body_too_large(limit));
    }
    // Room for the body before a byte of it is read: what it declares, else the most it may be.
    let room = declared.map_or(limit, |length| usize::try_from(length).unwrap_or(limit));
    let _held = proxy.hold_body(room).ok_or_else(|| ApiError {
        retry_after: Some(1),
        ..ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "The proxy holds as many request bodies as it may at once; retry in a moment.",
        )
    })?;
    // However its bytes trickle in, a body gets one call's time in all.
    let body = tokio::time::timeout(proxy.policy().timeout, read_body(body, limit))
        .await
        .map_err(|_| body_stopped())??;
    if method == ApiMethod::Get && !body.is_empty() {
        return Err(ApiError::invalid("a GET request carries no body; Notion reads none"));
    }
    let request = ApiRequest {
        method,
        path,
        query,
        body,
        content_type: parts.headers.get(header::CONTENT_TYPE).cloned(),
        notion_version,
    };
    match proxy.send(&bot_id, &request).await {
        Ok(answer) => Ok(pass_back(answer)),
        Err(error) => Err(from_proxy(links, &bot_id, error).await),
    }
}

/// A `Notion-Version` as Notion writes them (`2026-03-11`): anything else is refused here
/// rather than sent.
fn checked_version(value: &HeaderValue) -> Result<String, ApiError> {
    let text = value.to_str().unwrap_or_default();
    if is_notion_version(text) {
        Ok(text.to_owned())
    } else {
        Err(ApiError::invalid("Notion-Version must be a date such as 2026-03-11"))
    }
}

fn body_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("The body is longer than proxy.max_request_bytes ({limit} bytes)."),
    )
}

fn body_stopped() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "request_timeout",
        "The request body stopped coming; send it whole and promptly.",
    )
}

/// The request body, whole (it may be sent twice), refused past `limit` without reading on.
async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => Err(body_too_large(limit)),
        Err(error) => {
            let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error.as_ref());
            while let Some(inner) = cause {
                if inner.is::<tower_http::timeout::TimeoutError>() {
                    return Err(body_stopped());
                }
                cause = inner.source();
            }
            Err(ApiError::invalid("the request body could not be read"))
        }
    }
}

/// Notion's answer as the client's: its status, the headers that matter, and its body streamed
/// on (cut off past `proxy.max_response_bytes`, which ends the response with an error rather
/// than pass on part of a JSON document as if it were whole).
fn pass_back(answer: crate::proxy::ApiAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let mut headers = HeaderMap::new();
    for name in ANSWER_HEADERS {
        if let Some(value) = answer.headers().get(name) {
            headers.insert(HeaderName::from_static(name), value.clone());
        }
    }
    let stream = futures_util::stream::unfold(answer, |mut answer| async move {
        match answer.chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), answer)),
            Ok(None) => None,
            Err(error) => {
                tracing::warn!(error = %error, "a proxied answer was cut off");
                Some((Err(std::io::Error::other(error.to_string())), answer))
            }
        }
    });
    let mut response = (status, Body::from_stream(stream)).into_response();
    response.headers_mut().extend(headers);
    response
}

async fn from_proxy(links: &Links, bot_id: &BotId, error: ProxyError) -> ApiError {
    match error {
        ProxyError::Lifecycle(error) => ApiError::from_lifecycle(links, bot_id, error).await,
        ProxyError::InvalidPath(message) => ApiError::invalid(message),
        ProxyError::InvalidRequest(message) => ApiError::invalid(message),
        ProxyError::StillUnauthorized { ref request_id } => {
            let message = match request_id {
                Some(id) => format!("{error} (Notion request id {id})"),
                None => error.to_string(),
            };
            let mut api_error = ApiError::new(StatusCode::CONFLICT, "notion_unauthorized", message);
            api_error.connect_url =
                links.reconnect_url_for(bot_id).await.map(|url| url.to_string());
            api_error
        }
        ProxyError::Paced(seconds) => ApiError {
            retry_after: Some(seconds),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", error.to_string())
        },
        ProxyError::Timeout(_) => {
            ApiError::new(StatusCode::GATEWAY_TIMEOUT, "notion_timeout", error.to_string())
        }
        ProxyError::Unreachable(_) | ProxyError::AnswerTooLarge(_) => {
            ApiError::new(StatusCode::BAD_GATEWAY, "notion_unavailable", error.to_string())
        }
    }
}
