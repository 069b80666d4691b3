//! The API subset a handler touches after OAuth (`/v1/users/me`, `/v1/search`) and the catch-all errors.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::errors::ApiError;
use crate::middleware::RequestId;
use crate::store::Identity;
use crate::token::owner_json;
use crate::{Emulator, ErrorShape, body, credentials};

/// Display name of the emulated integration's bot user.
const BOT_NAME: &str = "Notion emulator integration";
/// The per-workspace upload limit Notion reports for paid plans (§5.2 example).
const MAX_UPLOAD_BYTES: u64 = 5_368_709_120;

impl Emulator {
    /// Bearer first, then `Notion-Version`: an unknown token is `unauthorized` whatever the version.
    fn api_caller(&self, headers: &HeaderMap) -> Result<Identity, ApiError> {
        let token = credentials::bearer(headers).ok_or_else(ApiError::unauthorized)?;
        let identity = self
            .with(|s| s.store.access_token_bot(token).cloned())
            .ok_or_else(ApiError::unauthorized)?;
        let has_version =
            headers.get("notion-version").is_some_and(|v| !v.as_bytes().trim_ascii().is_empty());
        if has_version { Ok(identity) } else { Err(ApiError::missing_version()) }
    }
}

/// API errors always use Notion's shape, whatever the OAuth endpoints are configured to (§5.4).
fn respond(result: Result<Value, ApiError>, request_id: &str) -> Response {
    match result {
        Ok(value) => (StatusCode::OK, Json(value)).into_response(),
        Err(error) => error.into_response(ErrorShape::Notion, request_id),
    }
}

pub(crate) async fn users_me(
    State(emulator): State<Emulator>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
) -> Response {
    let result = emulator.api_caller(&headers).map(|identity| {
        // id = bot_id: "likely but UNCONFIRMED" for real Notion (§2.4); the emulator makes it so.
        json!({
            "object": "user",
            "id": identity.bot_id,
            "name": BOT_NAME,
            "avatar_url": null,
            "type": "bot",
            "bot": {
                "owner": owner_json(&identity),
                "workspace_id": identity.workspace_id,
                "workspace_name": identity.workspace_name,
                "workspace_limits": { "max_file_upload_size_in_bytes": MAX_UPLOAD_BYTES },
            },
            "request_id": request_id,
        })
    });
    respond(result, &request_id)
}

pub(crate) async fn search(
    State(emulator): State<Emulator>,
    Extension(RequestId(request_id)): Extension<RequestId>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = emulator.api_caller(&headers).and_then(|_| {
        let content_type = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        body::parse(content_type, &body)?;
        // Nothing has been shared with an emulated bot, as for a fresh real one (§5.3).
        Ok(json!({
            "object": "list",
            "results": [],
            "next_cursor": null,
            "has_more": false,
            "type": "page_or_data_source",
            "page_or_data_source": {},
            "request_id": request_id,
        }))
    });
    respond(result, &request_id)
}

pub(crate) async fn not_found(Extension(RequestId(request_id)): Extension<RequestId>) -> Response {
    // Notion answers an unknown path with 400, not 404 (reference §5.4).
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request_url", "Invalid request URL.")
        .into_response(ErrorShape::Notion, &request_id)
}

pub(crate) async fn method_not_allowed(
    Extension(RequestId(request_id)): Extension<RequestId>,
    method: Method,
    uri: Uri,
) -> Response {
    // Notion's wording for a request it has no handler for (§5.4 table).
    ApiError::invalid_request(format!("Unsupported request: {method} {}.", uri.path()))
        .into_response(ErrorShape::Notion, &request_id)
}
