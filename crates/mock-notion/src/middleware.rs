//! The layer around every request: request id, recording (before any check), fault injection, logging.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{Extensions, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use axum::http::{HeaderMap, Method};

use crate::errors::ApiError;
use crate::faults::{self, Fault};
use crate::{
    Emulator, Endpoint, ErrorShape, Inner, RateLimitScope, RecordedRequest, credentials, random,
};

/// Real request bodies here are a few hundred bytes; the cap only stops a runaway client.
const MAX_BODY_BYTES: usize = 1024 * 1024;

/// The id echoed in `x-notion-request-id` and in JSON bodies of the same response.
#[derive(Clone, Debug)]
pub(crate) struct RequestId(pub(crate) String);

/// Tells the authorize handler to redirect back without a `code` (its form of "missing fields").
#[derive(Clone, Copy, Debug)]
pub(crate) struct MissingCodeFault;

/// The error shape an endpoint answers in: the API always uses Notion's own (§5.4).
pub(crate) fn shape_for(endpoint: Option<Endpoint>, configured: ErrorShape) -> ErrorShape {
    match endpoint {
        Some(e) if e.is_oauth() => configured,
        _ => ErrorShape::Notion,
    }
}

pub(crate) async fn around_request(
    State(emulator): State<Emulator>,
    request: Request,
    next: Next,
) -> Response {
    let request_id = random::uuid().to_string();
    // The API sends CORS headers (§5.1): a browser's preflight is answered before anything else
    // (it carries no token; it is neither recorded nor faulted).
    if request.method() == Method::OPTIONS && request.uri().path().starts_with("/v1/") {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("GET, POST, PATCH, DELETE, OPTIONS"),
        );
        // Whatever headers the browser asks to send (the SDK adds its own user-agent).
        let asked =
            request.headers().get(header::ACCESS_CONTROL_REQUEST_HEADERS).cloned().unwrap_or_else(
                || HeaderValue::from_static("authorization, content-type, notion-version"),
            );
        headers.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, asked);
        headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("86400"));
        return response;
    }
    let (mut parts, body) = request.into_parts();
    let endpoint = Endpoint::from_path(parts.uri.path());
    let method = parts.method.to_string();

    let (bytes, too_large) = match axum::body::to_bytes(body, MAX_BODY_BYTES).await {
        Ok(bytes) => (bytes, false),
        Err(_) => (Bytes::new(), true),
    };
    let record = || RecordedRequest {
        endpoint,
        method: method.clone(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_ascii_lowercase(), value)
            })
            .collect(),
        body: recorded_body(&bytes),
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
        status: None,
        seq: 0,
    };
    // Made before the lock is taken: copying a body is the slow part.
    let recorded = (!emulator.with(|s| s.config.bench)).then(record);
    let (seq, fault, limited, shape) = emulator.with(|s| {
        // A load target records nothing: copying every request would be most of its work.
        let seq = recorded.map(|recorded| s.log.push(recorded));
        let fault = endpoint.and_then(|e| s.faults.take(e));
        let limited = if fault.is_none() { over_limit(s, endpoint, &parts.headers) } else { None };
        (seq, fault, limited, shape_for(endpoint, s.config.error_shape))
    });

    parts.extensions.insert(RequestId(request_id.clone()));
    let outcome = if too_large {
        Outcome::Respond(
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request",
                "Request body too large.",
            )
            .into_response(shape, &request_id),
        )
    } else if let Some(limited) = limited {
        Outcome::Respond(limited.into_response(ErrorShape::Notion, &request_id))
    } else {
        match (endpoint, fault) {
            (Some(endpoint), Some(fault)) => {
                apply_fault(&emulator, endpoint, fault, shape, &request_id, &mut parts.extensions)
            }
            _ => Outcome::Proceed(None),
        }
    };
    let mut response = match outcome {
        Outcome::Respond(response) => response,
        Outcome::Stall(delay) => {
            tokio::time::sleep(delay).await;
            ApiError::from_fault(504, "gateway_timeout", "Gateway Timeout")
                .into_response(ErrorShape::Notion, &request_id)
        }
        Outcome::Proceed(None) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        // A slow Notion still finishes what it started when the caller gives up: run the
        // handler in its own task, so a client that times out and disconnects (dropping this
        // future) does not cancel it, and a refresh it asked for really rotates the pair.
        Outcome::Proceed(Some(delay)) => {
            let request = Request::from_parts(parts, Body::from(bytes));
            let handled = tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                next.run(request).await
            });
            match handled.await {
                Ok(response) => response,
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            }
        }
    };

    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-notion-request-id", value);
    }
    // The browser leg is a page, not an API answer.
    if endpoint != Some(Endpoint::Authorize) {
        let headers = response.headers_mut();
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        // So that code in a page can honour a 429 and quote the request id.
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("retry-after, x-notion-request-id"),
        );
    }
    if let Some(seq) = seq {
        let status = response.status().as_u16();
        emulator.with(|s| s.log.answered(seq, status));
    }
    // Only the endpoint and outcome: URLs and bodies may carry codes, tokens or secrets.
    tracing::debug!(?endpoint, %method, status = response.status().as_u16(), "mock-notion request");
    response
}

fn throttled(
    emulator: &Emulator,
    endpoint: Endpoint,
    error: ApiError,
    shape: ErrorShape,
    request_id: &str,
) -> Response {
    if endpoint == Endpoint::Authorize {
        return emulator.pages().error(error.status, &error.message);
    }
    error.into_response(shape, request_id)
}

/// The API's rate limit, for a request to `endpoint` (`None`: a path the emulator does not
/// serve, which Notion would count as well). The OAuth endpoints are not limited.
fn over_limit(s: &Inner, endpoint: Option<Endpoint>, headers: &HeaderMap) -> Option<ApiError> {
    let limiter = s.limiter.as_ref()?;
    if endpoint.is_some_and(Endpoint::is_oauth) {
        return None;
    }
    // A token Notion does not know gets its 401, never a 429; a known one is counted for its
    // connection, whichever of its tokens (one in its grace after a refresh too) it uses.
    let identity = s.store.access_token_bot(credentials::bearer(headers)?)?;
    let (key, reason) = match limiter.scope() {
        RateLimitScope::Token => (identity.bot_id.to_string(), "public_api_request_rate_limit"),
        RateLimitScope::Workspace => {
            (identity.workspace_id.to_string(), "public_api_space_request_rate_limit")
        }
        RateLimitScope::Integration => (String::new(), "public_api_request_rate_limit"),
    };
    let wait = limiter.check(&key).err()?;
    Some(ApiError::rate_limited(reason, wait))
}

/// What a recorded body keeps: real ones are a few hundred bytes; a runaway client's megabyte
/// would make the log (1000 requests) a gigabyte.
const RECORDED_BODY_BYTES: usize = 64 * 1024;

fn recorded_body(bytes: &[u8]) -> String {
    let kept = &bytes[..bytes.len().min(RECORDED_BODY_BYTES)];
    let mut text = String::from_utf8_lossy(kept).into_owned();
    if bytes.len() > RECORDED_BODY_BYTES {
        text.push_str(&format!("… ({} bytes in all; the rest not recorded)", bytes.len()));
    }
    text
}

enum Outcome {
    /// The fault answers in place of the handler.
    Respond(Response),
    /// The handler runs, after an optional injected delay.
    Proceed(Option<Duration>),
    /// Nothing runs: a timeout after the delay.
    Stall(Duration),
}

fn apply_fault(
    emulator: &Emulator,
    endpoint: Endpoint,
    fault: Fault,
    shape: ErrorShape,
    request_id: &str,
    extensions: &mut Extensions,
) -> Outcome {
    match fault {
        Fault::Error { status, code, message } => {
            let error = ApiError::from_fault(status, &code, &message);
            Outcome::Respond(if endpoint == Endpoint::Authorize {
                // A browser lands here, so it gets a page rather than JSON.
                emulator.pages().error(error.status, &error.message)
            } else {
                error.into_response(shape, request_id)
            })
        }
        Fault::NonJson => Outcome::Respond(faults::non_json_response()),
        Fault::MissingFields if endpoint == Endpoint::Authorize => {
            extensions.insert(MissingCodeFault);
            Outcome::Proceed(None)
        }
        Fault::MissingFields => {
            Outcome::Respond(faults::missing_fields_response(endpoint, request_id))
        }
        Fault::Delay(delay) => Outcome::Proceed(Some(delay)),
        Fault::Stall(delay) => Outcome::Stall(delay),
        Fault::Drop => Outcome::Respond(faults::dropped_connection()),
        Fault::RateLimited { retry_after } => Outcome::Respond(throttled(
            emulator,
            endpoint,
            ApiError::rate_limited("public_api_request_rate_limit", retry_after),
            shape,
            request_id,
        )),
        Fault::Overloaded { retry_after } => Outcome::Respond(throttled(
            emulator,
            endpoint,
            ApiError::overloaded(retry_after),
            shape,
            request_id,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_body_keeps_64_kib_and_says_how_long_it_was() {
        let big = vec![0xFF_u8; RECORDED_BODY_BYTES + 10];
        let kept = recorded_body(&big);
        assert!(kept.len() < RECORDED_BODY_BYTES * 3 + 100, "{}", kept.len());
        assert!(kept.ends_with(&format!("({} bytes in all; the rest not recorded)", big.len())));
        assert_eq!(recorded_body(b"code=abc"), "code=abc");
    }
}
