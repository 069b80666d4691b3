//! Error values and their two wire shapes: RFC 6749 `{error, error_description}` and Notion's `{object:"error", …}`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::ErrorShape;

/// An error answer before it is given a shape and a request id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) code: String,
    pub(crate) message: String,
    /// Seconds, sent as `Retry-After` (429 and 529).
    pub(crate) retry_after: Option<u64>,
    /// Notion's `additional_data` (a 429's `rate_limit_reason`).
    pub(crate) additional_data: Option<Value>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            message: message.into(),
            retry_after: None,
            additional_data: None,
        }
    }

    /// Notion's 429 (§5.4), with why: `public_api_request_rate_limit` (the connection's own
    /// rate) or `public_api_space_request_rate_limit` (the workspace's).
    pub(crate) fn rate_limited(reason: &str, retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            additional_data: Some(json!({ "rate_limit_reason": reason })),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "You have been rate limited. Please try again in a few minutes.",
            )
        }
    }

    /// Notion's 529: overloaded for a moment.
    pub(crate) fn overloaded(retry_after: u64) -> Self {
        let status = StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                status,
                "service_overload",
                "Notion is temporarily overloaded. Please try again later.",
            )
        }
    }

    /// Fault statuses come from tests as bare numbers; nonsense ones degrade to 500 rather than panic.
    pub(crate) fn from_fault(status: u16, code: &str, message: &str) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Self::new(status, code, message)
    }

    pub(crate) fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub(crate) fn invalid_grant(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", message)
    }

    /// The wording Notion's validator uses for an absent body field (quoted in §2.3).
    pub(crate) fn missing_field(field: &str) -> Self {
        Self::invalid_request(format!(
            "body failed validation: body.{field} should be defined, instead was `undefined`."
        ))
    }

    pub(crate) fn invalid_client() -> Self {
        // The exact message is UNCONFIRMED; the status and code follow the OpenAPI (§2.1).
        Self::new(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "Client authentication failed: invalid client_id or client_secret.",
        )
    }

    pub(crate) fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "API token is invalid.")
    }

    pub(crate) fn missing_version() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "missing_version",
            "Notion-Version header failed validation: Notion-Version header should be defined, instead was `undefined`.",
        )
    }

    pub(crate) fn invalid_json() -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", "Error parsing JSON body.")
    }

    pub(crate) fn body(&self, shape: ErrorShape, request_id: &str) -> Value {
        match shape {
            ErrorShape::OAuth => json!({
                "error": self.code,
                "error_description": self.message,
                "request_id": request_id,
            }),
            ErrorShape::Notion => {
                let mut body = json!({
                    "object": "error",
                    "status": self.status.as_u16(),
                    "code": self.code,
                    "message": self.message,
                    "request_id": request_id,
                });
                if let (Some(data), Some(object)) = (&self.additional_data, body.as_object_mut()) {
                    object.insert("additional_data".to_owned(), data.clone());
                }
                body
            }
        }
    }

    pub(crate) fn into_response(self, shape: ErrorShape, request_id: &str) -> Response {
        let body = self.body(shape, request_id);
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_shape() {
        let body = ApiError::missing_field("redirect_uri").body(ErrorShape::OAuth, "rid");
        assert_eq!(
            body,
            json!({
                "error": "invalid_request",
                "error_description": "body failed validation: body.redirect_uri should be defined, instead was `undefined`.",
                "request_id": "rid",
            })
        );
    }

    #[test]
    fn notion_shape() {
        let body = ApiError::unauthorized().body(ErrorShape::Notion, "rid");
        assert_eq!(
            body,
            json!({
                "object": "error",
                "status": 401,
                "code": "unauthorized",
                "message": "API token is invalid.",
                "request_id": "rid",
            })
        );
    }

    #[test]
    fn bogus_fault_status_degrades_to_500() {
        assert_eq!(ApiError::from_fault(42, "x", "y").status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            ApiError::from_fault(429, "rate_limited", "slow down").status,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
}
