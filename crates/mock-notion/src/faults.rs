//! Test-injected faults per endpoint (errors, non-JSON, incomplete JSON, delays) and their countdown.

use std::collections::HashMap;
use std::time::Duration;

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::Endpoint;

/// A misbehaviour the emulator adopts for one endpoint.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this HTTP status and a well-formed error body (in the configured shape) carrying `code`.
    Error {
        /// The HTTP status; a number that is not a valid status code becomes 500.
        status: u16,
        /// The error code: `error` in the OAuth shape, `code` in Notion's.
        code: String,
        /// The explanation: `error_description` or `message`; on Authorize, the error page's text.
        message: String,
    },
    /// Answer 200 with a body that is not JSON (an HTML "Bad gateway" page), as a proxy in the way would.
    NonJson,
    /// Answer 200 with JSON that lacks required fields; on Authorize, redirect back without a `code`.
    MissingFields,
    /// Sleep this long, then handle the request normally (to exceed the client's timeout): a
    /// slow Notion that still acts, e.g. rotates a refresh token whose answer never arrives.
    Delay(Duration),
    /// Sleep this long, then answer 504 without acting: a Notion that never got to the request.
    Stall(Duration),
    /// 429 `rate_limited` with `Retry-After` (seconds), whatever the configured rate limit.
    RateLimited {
        /// The `Retry-After` sent.
        retry_after: u64,
    },
    /// 529 `service_overload` with `Retry-After` (seconds).
    Overloaded {
        /// The `Retry-After` sent.
        retry_after: u64,
    },
    /// Close the connection without a complete answer, as a reset proxy would.
    Drop,
}

struct Armed {
    fault: Fault,
    /// `None`: until cleared.
    remaining: Option<u32>,
    /// Requests still to pass untouched before the fault applies.
    skip: u32,
}

#[derive(Default)]
pub(crate) struct FaultTable {
    armed: HashMap<Endpoint, Armed>,
}

impl FaultTable {
    pub(crate) fn set(&mut self, endpoint: Endpoint, fault: Fault, times: Option<u32>, skip: u32) {
        if times == Some(0) {
            self.armed.remove(&endpoint);
        } else {
            self.armed.insert(endpoint, Armed { fault, remaining: times, skip });
        }
    }

    pub(crate) fn clear(&mut self) {
        self.armed.clear();
    }

    /// The fault for this request, counting it against a limited fault.
    pub(crate) fn take(&mut self, endpoint: Endpoint) -> Option<Fault> {
        let armed = self.armed.get_mut(&endpoint)?;
        if armed.skip > 0 {
            armed.skip -= 1;
            return None;
        }
        let fault = armed.fault.clone();
        if let Some(remaining) = armed.remaining.as_mut() {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                self.armed.remove(&endpoint);
            }
        }
        Some(fault)
    }
}

/// What an intermediary returns when Notion is unreachable: HTML with a 200, to test content checks.
pub(crate) fn non_json_response() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        "<html><body><h1>Bad gateway</h1></body></html>",
    )
        .into_response()
}

/// An answer whose body fails at once: hyper closes the connection, so the client gets no
/// complete response.
pub(crate) fn dropped_connection() -> Response {
    let failing = futures_util::stream::once(std::future::ready(Err::<axum::body::Bytes, _>(
        std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "dropped by a fault"),
    )));
    Response::new(axum::body::Body::from_stream(failing))
}

/// A 200 JSON body that would fail schema validation of `endpoint`'s success response.
pub(crate) fn missing_fields_response(endpoint: Endpoint, request_id: &str) -> Response {
    (StatusCode::OK, Json(missing_fields_body(endpoint, request_id))).into_response()
}

fn missing_fields_body(endpoint: Endpoint, request_id: &str) -> Value {
    match endpoint {
        // Authorize is handled by its own handler (a redirect without `code`); this is a fallback.
        Endpoint::Token | Endpoint::Authorize => {
            json!({ "token_type": "bearer", "request_id": request_id })
        }
        Endpoint::Introspect => json!({ "scope": "read_content", "request_id": request_id }),
        // `request_id` is the only (optional) field of a revoke answer, so drop it too.
        Endpoint::Revoke => json!({}),
        Endpoint::UsersMe => json!({ "object": "user", "request_id": request_id }),
        Endpoint::Search => json!({ "object": "list", "request_id": request_id }),
        Endpoint::Pages | Endpoint::Databases | Endpoint::DataSources => {
            json!({ "object": "page", "request_id": request_id })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error() -> Fault {
        Fault::Error {
            status: 500,
            code: "internal_server_error".to_owned(),
            message: "boom".to_owned(),
        }
    }

    #[test]
    fn limited_fault_counts_down_then_clears() {
        let mut table = FaultTable::default();
        table.set(Endpoint::Token, error(), Some(2), 0);
        assert!(table.take(Endpoint::Introspect).is_none());
        assert!(table.take(Endpoint::Token).is_some());
        assert!(table.take(Endpoint::Token).is_some());
        assert!(table.take(Endpoint::Token).is_none());
    }

    #[test]
    fn a_skipped_fault_lets_the_first_requests_through() {
        let mut table = FaultTable::default();
        table.set(Endpoint::Revoke, error(), Some(1), 2);
        assert!(table.take(Endpoint::Revoke).is_none());
        assert!(table.take(Endpoint::Revoke).is_none());
        assert!(table.take(Endpoint::Revoke).is_some());
        assert!(table.take(Endpoint::Revoke).is_none());
    }

    #[test]
    fn unlimited_fault_stays_until_cleared() {
        let mut table = FaultTable::default();
        table.set(Endpoint::Search, Fault::NonJson, None, 0);
        for _ in 0..5 {
            assert!(matches!(table.take(Endpoint::Search), Some(Fault::NonJson)));
        }
        table.clear();
        assert!(table.take(Endpoint::Search).is_none());
    }

    #[test]
    fn zero_times_disarms() {
        let mut table = FaultTable::default();
        table.set(Endpoint::Token, error(), None, 0);
        table.set(Endpoint::Token, error(), Some(0), 0);
        assert!(table.take(Endpoint::Token).is_none());
    }

    #[test]
    fn missing_fields_token_body_lacks_access_token() {
        let body = missing_fields_body(Endpoint::Token, "rid");
        assert!(body.get("access_token").is_none());
        assert_eq!(body["token_type"], "bearer");
    }
}
