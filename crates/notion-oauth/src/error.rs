//! Errors from Notion's OAuth endpoints, in both of the shapes Notion is known to answer with.

use std::time::Duration;

use serde_json::Value;

/// Longest Notion error message kept: a misbehaving server must not fill logs and pages.
const MAX_MESSAGE_CHARS: usize = 500;

/// Why a call to Notion failed.
///
/// The `Display` text never contains a token, code or secret: Notion's own messages are kept,
/// but bodies that could not be understood are described, not quoted.
#[derive(Debug, thiserror::Error)]
pub enum NotionError {
    /// Notion answered with an error body (either shape).
    #[error("{0}")]
    Api(NotionApiError),
    /// Notion answered with an error status and a body that is not a Notion error.
    #[error("Notion answered HTTP {status} with a body that is not a Notion error")]
    UnexpectedStatus {
        /// The HTTP status.
        status: u16,
        /// From the `x-notion-request-id` header, if any.
        request_id: Option<String>,
    },
    /// Notion answered success, but the body is not JSON or lacks a required field.
    #[error("Notion answered HTTP {status} with a body that could not be understood: {reason}")]
    InvalidResponse {
        /// The HTTP status.
        status: u16,
        /// What was wrong, without quoting the body.
        reason: String,
        /// From the `x-notion-request-id` header, if any.
        request_id: Option<String>,
    },
    /// Notion did not answer in time.
    #[error("Notion did not answer within {} seconds", .0.as_secs_f32())]
    Timeout(Duration),
    /// Notion could not be reached, or the connection broke.
    #[error("could not reach Notion: {}", cause_chain(.0))]
    Network(#[source] reqwest::Error),
}

/// An error body from Notion, read from `{error, error_description}` (the OAuth shape) or from
/// `{object: "error", status, code, message}` (Notion's API shape).
#[derive(Clone, Debug, thiserror::Error)]
#[error("Notion answered HTTP {status} {code}: {message}")]
pub struct NotionApiError {
    /// The HTTP status.
    pub status: u16,
    /// `error` or `code`, e.g. `invalid_grant`, `invalid_client`, `unauthorized`.
    pub code: String,
    /// `error_description` or `message`; may be empty.
    pub message: String,
    /// From the body, or else the `x-notion-request-id` header.
    pub request_id: Option<String>,
    /// From a `Retry-After` header, when Notion asks to slow down.
    pub retry_after: Option<Duration>,
}

impl NotionError {
    /// Notion's id for the failed request, for support tickets and error pages.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            NotionError::Api(api) => api.request_id.as_deref(),
            NotionError::UnexpectedStatus { request_id, .. }
            | NotionError::InvalidResponse { request_id, .. } => request_id.as_deref(),
            NotionError::Timeout(_) | NotionError::Network(_) => None,
        }
    }

    /// The error code Notion sent, if it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            NotionError::Api(api) => Some(&api.code),
            _ => None,
        }
    }

    /// The code or token was rejected for good (used, expired, revoked, rotated away).
    /// Never retry this: the user has to authorize again.
    pub fn is_invalid_grant(&self) -> bool {
        self.code() == Some("invalid_grant")
    }

    /// The connection to Notion could not even be opened, so the request certainly did not
    /// reach it.
    pub fn is_connect_failure(&self) -> bool {
        matches!(self, NotionError::Network(error) if error.is_connect())
    }

    /// The client id or secret was rejected: an operator has to fix the configuration.
    pub fn is_invalid_client(&self) -> bool {
        self.code() == Some("invalid_client")
    }
}

/// "error sending request: client error (Connect): tcp connect error: Connection refused": the
/// top-level message alone does not say what to fix. The URL was removed with `without_url`.
fn cause_chain(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Reads an error body in either shape; `None` when it is neither.
pub(crate) fn parse_error_body(
    status: u16,
    body: &[u8],
    header_request_id: Option<String>,
    retry_after: Option<Duration>,
) -> Option<NotionApiError> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let text = |key: &str| value.get(key).and_then(Value::as_str);
    let code = text("error").or_else(|| text("code"))?;
    let message = text("error_description").or_else(|| text("message")).unwrap_or("");
    Some(NotionApiError {
        status,
        code: sanitize(code, 100),
        message: sanitize(message, MAX_MESSAGE_CHARS),
        request_id: text("request_id").map(|id| sanitize(id, 100)).or(header_request_id),
        retry_after,
    })
}

/// Text from Notion fit for a page or a log line: bounded, without control characters.
pub(crate) fn sanitize(text: &str, max_chars: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max_chars).collect()
}

/// Problems building an [`crate::OAuthClient`].
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The API base URL cannot have paths joined to it.
    #[error(
        "the Notion API base URL {0} cannot be used: it must be an http(s) URL such as https://api.notion.com"
    )]
    BaseUrl(String),
    /// The HTTP client could not be built (for example, no TLS roots).
    #[error("could not build the HTTP client: {0}")]
    Http(#[source] reqwest::Error),
    /// The client id and secret cannot be sent as HTTP Basic credentials.
    #[error("the client id and secret cannot be sent in an HTTP header")]
    Credentials,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn both_error_shapes_parse_to_the_same_fields() {
        let oauth = br#"{"error":"invalid_grant","error_description":"Invalid refresh token","request_id":"r1"}"#;
        let api = br#"{"object":"error","status":400,"code":"invalid_grant","message":"Invalid refresh token","request_id":"r1"}"#;
        for body in [&oauth[..], &api[..]] {
            let parsed = parse_error_body(400, body, None, None).unwrap();
            assert_eq!(parsed.code, "invalid_grant");
            assert_eq!(parsed.message, "Invalid refresh token");
            assert_eq!(parsed.request_id.as_deref(), Some("r1"));
        }
    }

    #[test]
    fn the_header_request_id_is_used_when_the_body_has_none() {
        let parsed =
            parse_error_body(401, br#"{"error":"invalid_client"}"#, Some("h1".into()), None)
                .unwrap();
        assert_eq!(parsed.request_id.as_deref(), Some("h1"));
        assert_eq!(parsed.message, "");
    }

    #[test]
    fn bodies_that_are_not_notion_errors_are_refused() {
        assert!(parse_error_body(500, b"<html>oops</html>", None, None).is_none());
        assert!(parse_error_body(500, br#"{"unrelated":1}"#, None, None).is_none());
        assert!(parse_error_body(500, br#"{"error":42}"#, None, None).is_none());
    }
}
