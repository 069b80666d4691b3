//! `/api/v1`: what the developer's backend calls, authenticated by an API key.
//!
//! Every error is `{"error": {"code", "message"}}`; a connection that needs its user again
//! answers 409 with the `connect_url` to send them to. The OpenAPI document is generated from
//! these handlers, so it cannot drift from them.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

use crate::api_keys;
use crate::lifecycle::{self, LifecycleError};
use crate::startup::AppState;
use crate::store::{ConnectionFilter, ConnectionSummary, Event};

/// The API, to be nested at `/api/v1`.
pub fn router(app: AppState) -> Router<AppState> {
    Router::new()
        .route("/connections", get(list_connections))
        .route("/connections/{bot_id}", get(get_connection).delete(revoke_connection))
        .route("/connections/{bot_id}/token", get(get_token))
        .route("/connections/{bot_id}/refresh", post(refresh_connection))
        .route("/connections/{bot_id}/check", post(check_connection))
        .route("/connections/{bot_id}/events", get(connection_events))
        .route("/connect-links", post(create_connect_link))
        .route("/deliveries", get(list_deliveries))
        .route("/deliveries/{id}/redeliver", post(redeliver))
        .layer(axum::middleware::from_fn_with_state(app, require_api_key))
        .route("/openapi.json", get(openapi_document))
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
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    connect_url: Option<String>,
    retry_after: Option<u64>,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable: `unauthorized`, `not_found`, `invalid_request`, `needs_reauth`, `revoked`,
    /// `busy`, `notion_unavailable`, `notion_timeout`, `notion_rejected`, `internal`.
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

    fn unauthorized() -> Self {
        // Nothing about why: a wrong key, a revoked key and no key look the same from outside.
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "A valid API key is required: Authorization: Bearer noh_…",
        )
    }

    fn internal(error: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %error, "an API request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "Something went wrong on our side; try again.",
        )
    }

    /// Maps a lifecycle failure, naming the page that reconnects the user where that helps.
    async fn from_lifecycle(app: &AppState, bot_id: &str, error: LifecycleError) -> Self {
        let connect_url = || async {
            let reference =
                app.store.connection(bot_id).await.ok().flatten().and_then(|c| c.reference);
            let mut url = app.config.public_link("/connect");
            if let Some(reference) = reference {
                url.query_pairs_mut().append_pair("ref", &reference);
            }
            Some(url.to_string())
        };
        match error {
            LifecycleError::NotFound(_) => {
                Self::new(StatusCode::NOT_FOUND, "not_found", error.to_string())
            }
            LifecycleError::NeedsReauth(_) => Self {
                connect_url: connect_url().await,
                ..Self::new(StatusCode::CONFLICT, "needs_reauth", error.to_string())
            },
            LifecycleError::Revoked(_) => Self {
                connect_url: connect_url().await,
                ..Self::new(StatusCode::CONFLICT, "revoked", error.to_string())
            },
            LifecycleError::Busy => Self {
                retry_after: Some(5),
                ..Self::new(StatusCode::SERVICE_UNAVAILABLE, "busy", error.to_string())
            },
            LifecycleError::Notion(ref notion) | LifecycleError::NotionUncertain(ref notion) => {
                let retry_after = match notion {
                    notion_oauth::NotionError::Api(api) => api.retry_after.map(|d| d.as_secs()),
                    _ => None,
                };
                let (status, code) = match notion {
                    notion_oauth::NotionError::Timeout(_) => {
                        (StatusCode::GATEWAY_TIMEOUT, "notion_timeout")
                    }
                    e if e.is_invalid_client() => (StatusCode::BAD_GATEWAY, "notion_rejected"),
                    notion_oauth::NotionError::Api(api)
                        if api.status == 429 || api.status == 503 =>
                    {
                        (StatusCode::SERVICE_UNAVAILABLE, "notion_unavailable")
                    }
                    _ => (StatusCode::BAD_GATEWAY, "notion_unavailable"),
                };
                let message = match notion.request_id() {
                    Some(id) => format!("{error} (Notion request id {id})"),
                    None => error.to_string(),
                };
                Self { retry_after, ..Self::new(status, code, message) }
            }
            LifecycleError::Store(error) => Self::internal(&error),
            LifecycleError::Task => Self::internal(&error),
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

fn bad_query(rejection: QueryRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", rejection.body_text())
}

async fn require_api_key(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .and_then(|(_, key)| api_keys::parse(key.trim()));
    let Some((id, secret)) = presented else {
        return ApiError::unauthorized().into_response();
    };
    let key = match app.store.api_key(id).await {
        Ok(key) => key,
        Err(error) => return ApiError::internal(&error).into_response(),
    };
    // The digest is computed whether or not the id exists, so timing says nothing of it.
    let stored = key.as_ref().map_or(&[0u8; 32][..], |k| k.secret_hash.as_slice());
    let matches = api_keys::matches(stored, secret);
    if !matches || key.is_none_or(|k| k.revoked_at.is_some()) {
        return ApiError::unauthorized().into_response();
    }
    if let Err(error) = app.store.touch_api_key(id).await {
        tracing::warn!(error = %error, "could not record an API key's use");
    }
    let mut response = next.run(request).await;
    // Answers can hold tokens: no cache may keep them.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only connections in this workspace.
    workspace_id: Option<String>,
    /// Only connections started with this `ref`.
    #[serde(rename = "ref")]
    #[param(rename = "ref")]
    reference: Option<String>,
    /// Only connections in this state: `active`, `needs_reauth` or `revoked`.
    status: Option<String>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 200 (default 50).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectionList {
    connections: Vec<ConnectionSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    next_cursor: Option<String>,
}

/// List connections (never tokens).
#[utoipa::path(get, path = "/connections", params(ListQuery), tag = "connections",
    responses((status = 500, description = "Something failed on our side", body = ErrorBody), (status = 200, description = "OK", body = ConnectionList), (status = 400, description = "The query is not valid", body = ErrorBody), (status = 401, description = "No valid API key", body = ErrorBody)))]
async fn list_connections(
    State(app): State<AppState>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ConnectionList>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let limit = query.limit.unwrap_or(50);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "limit must be between 1 and 200",
        ));
    }
    if query
        .status
        .as_deref()
        .is_some_and(|status| !["active", "needs_reauth", "revoked"].contains(&status))
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "status must be active, needs_reauth or revoked",
        ));
    }
    let filter = ConnectionFilter {
        workspace_id: query.workspace_id,
        reference: query.reference,
        status: query.status,
        after: query.cursor,
        limit: limit + 1,
    };
    let mut connections =
        app.store.list_connections(&filter).await.map_err(|e| ApiError::internal(&e))?;
    let next_cursor = if connections.len() as i64 > limit {
        connections.truncate(limit as usize);
        connections.last().map(|c| c.bot_id.clone())
    } else {
        None
    };
    Ok(Json(ConnectionList { connections, next_cursor }))
}

/// One connection's metadata (never tokens).
#[utoipa::path(get, path = "/connections/{bot_id}", params(("bot_id" = String, Path)), tag = "connections",
    responses((status = 500, description = "Something failed on our side", body = ErrorBody), (status = 200, description = "OK", body = ConnectionSummary), (status = 401, description = "No valid API key", body = ErrorBody), (status = 404, description = "No such connection", body = ErrorBody)))]
async fn get_connection(
    State(app): State<AppState>,
    Path(bot_id): Path<String>,
) -> Result<Json<ConnectionSummary>, ApiError> {
    match app.store.connection(&bot_id).await {
        Ok(Some(connection)) => Ok(Json(connection)),
        Ok(None) => {
            Err(ApiError::from_lifecycle(&app, &bot_id, LifecycleError::NotFound(bot_id.clone()))
                .await)
        }
        Err(error) => Err(ApiError::internal(&error)),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TokenQuery {
    /// Refresh first (coalesced with any refresh under way or just done).
    force_refresh: Option<bool>,
    /// Also return the refresh token. Only for apps that refresh by themselves.
    include_refresh_token: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct TokenBody {
    bot_id: String,
    /// Always `bearer`.
    token_type: &'static str,
    access_token: String,
    /// Only with `include_refresh_token=true`.
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    /// Increases with every new token pair.
    generation: i64,
    /// Whether this call obtained a newer token than the one stored when it arrived.
    refreshed: bool,
}

fn token_body(bot_id: String, grant: lifecycle::Grant, include_refresh_token: bool) -> TokenBody {
    TokenBody {
        bot_id,
        token_type: "bearer",
        access_token: grant.access_token.expose_secret().to_owned(),
        refresh_token: grant
            .refresh_token
            .filter(|_| include_refresh_token)
            .map(|t| t.expose_secret().to_owned()),
        generation: grant.generation,
        refreshed: grant.refreshed,
    }
}

/// The connection's current access token.
#[utoipa::path(get, path = "/connections/{bot_id}/token", params(("bot_id" = String, Path), TokenQuery), tag = "tokens",
    responses((status = 400, description = "The query is not valid", body = ErrorBody), (status = 500, description = "Something failed on our side", body = ErrorBody), (status = 200, description = "OK", body = TokenBody), (status = 401, description = "No valid API key", body = ErrorBody), (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "The user has to connect again: send them to connect_url", body = ErrorBody),
        (status = 502, description = "Notion failed; the message says whether the stored pair is still usable", body = ErrorBody), (status = 503, description = "Busy, or Notion asks to slow down: see Retry-After", body = ErrorBody), (status = 503, description = "Busy, or Notion asks to slow down: see Retry-After", body = ErrorBody), (status = 504, description = "Notion did not answer in time", body = ErrorBody)))]
async fn get_token(
    State(app): State<AppState>,
    Path(bot_id): Path<String>,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Result<Json<TokenBody>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    match lifecycle::token(&app, &bot_id, query.force_refresh.unwrap_or(false)).await {
        Ok(grant) => {
            Ok(Json(token_body(bot_id, grant, query.include_refresh_token.unwrap_or(false))))
        }
        Err(error) => Err(ApiError::from_lifecycle(&app, &bot_id, error).await),
    }
}

/// Refresh the connection's token pair now.
#[utoipa::path(post, path = "/connections/{bot_id}/refresh", params(("bot_id" = String, Path)), tag = "tokens",
    responses((status = 500, description = "Something failed on our side", body = ErrorBody), (status = 200, description = "OK", body = TokenBody), (status = 401, description = "No valid API key", body = ErrorBody), (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "The user has to connect again: send them to connect_url", body = ErrorBody), (status = 502, description = "Notion failed; the message says whether the stored pair is still usable", body = ErrorBody), (status = 503, description = "Busy, or Notion asks to slow down: see Retry-After", body = ErrorBody), (status = 504, description = "Notion did not answer in time", body = ErrorBody)))]
async fn refresh_connection(
    State(app): State<AppState>,
    Path(bot_id): Path<String>,
) -> Result<Json<TokenBody>, ApiError> {
    match lifecycle::token(&app, &bot_id, true).await {
        Ok(grant) => Ok(Json(token_body(bot_id, grant, false))),
        Err(error) => Err(ApiError::from_lifecycle(&app, &bot_id, error).await),
    }
}

#[derive(Serialize, ToSchema)]
pub struct CheckBody {
    bot_id: String,
    /// Whether Notion considers the token usable (after refreshing one that had expired).
    active: bool,
    /// The connection's status after the check.
    status: String,
    /// The connection's capabilities, as Notion reports them.
    scope: Option<String>,
    /// When Notion issued the token, in milliseconds since the Unix epoch.
    iat: Option<i64>,
}

/// Ask Notion whether the connection still works; an inactive one becomes `revoked`.
#[utoipa::path(post, path = "/connections/{bot_id}/check", params(("bot_id" = String, Path)), tag = "connections",
    responses((status = 500, description = "Something failed on our side", body = ErrorBody), (status = 200, description = "OK", body = CheckBody), (status = 401, description = "No valid API key", body = ErrorBody), (status = 404, description = "No such connection", body = ErrorBody),
        (status = 409, description = "The user has to connect again: send them to connect_url", body = ErrorBody), (status = 502, description = "Notion failed; the message says whether the stored pair is still usable", body = ErrorBody), (status = 504, description = "Notion did not answer in time", body = ErrorBody)))]
async fn check_connection(
    State(app): State<AppState>,
    Path(bot_id): Path<String>,
) -> Result<Json<CheckBody>, ApiError> {
    match lifecycle::check(&app, &bot_id).await {
        Ok(checked) => Ok(Json(CheckBody {
            bot_id,
            active: checked.active,
            status: checked.status,
            scope: checked.scope,
            iat: checked.issued_at_ms,
        })),
        Err(error) => Err(ApiError::from_lifecycle(&app, &bot_id, error).await),
    }
}

/// Revoke the connection at Notion and forget its tokens. Repeating it changes nothing.
#[utoipa::path(delete, path = "/connections/{bot_id}", params(("bot_id" = String, Path)), tag = "connections",
    responses((status = 500, description = "Something failed on our side", body = ErrorBody), (status = 204, description = "Revoked (or already revoked)"), (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 404, description = "No such connection", body = ErrorBody), (status = 502, description = "Notion failed; the message says whether the stored pair is still usable", body = ErrorBody), (status = 503, description = "Busy, or Notion asks to slow down: see Retry-After", body = ErrorBody), (status = 504, description = "Notion did not answer in time", body = ErrorBody)))]
async fn revoke_connection(
    State(app): State<AppState>,
    Path(bot_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    match lifecycle::revoke(&app, &bot_id, "revoked through the API").await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(error) => Err(ApiError::from_lifecycle(&app, &bot_id, error).await),
    }
}

#[derive(Serialize, ToSchema)]
pub struct EventList {
    /// Newest first.
    events: Vec<Event>,
}

/// What happened to the connection: connected, refreshed, checked, revoked…
#[utoipa::path(get, path = "/connections/{bot_id}/events", params(("bot_id" = String, Path)), tag = "connections",
    responses((status = 500, description = "Something failed on our side", body = ErrorBody), (status = 200, description = "OK", body = EventList), (status = 401, description = "No valid API key", body = ErrorBody), (status = 404, description = "No such connection", body = ErrorBody)))]
async fn connection_events(
    State(app): State<AppState>,
    Path(bot_id): Path<String>,
) -> Result<Json<EventList>, ApiError> {
    match app.store.connection(&bot_id).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(ApiError::from_lifecycle(
                &app,
                &bot_id,
                LifecycleError::NotFound(bot_id.clone()),
            )
            .await);
        }
        Err(error) => return Err(ApiError::internal(&error)),
    }
    let events = app.store.events(&bot_id, 200).await.map_err(|e| ApiError::internal(&e))?;
    Ok(Json(EventList { events }))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeliveryQuery {
    /// Only deliveries in this state: `pending`, `delivered` or `dead`.
    status: Option<String>,
    /// How many, newest first (1 to 500, default 100).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    deliveries: Vec<crate::store::DeliverySummary>,
}

/// Deliveries of connection events to webhooks and the command hook, newest first.
#[utoipa::path(get, path = "/deliveries", params(DeliveryQuery), tag = "deliveries",
    responses((status = 200, description = "OK", body = DeliveryList), (status = 400, description = "The query is not valid", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody), (status = 500, description = "Something failed on our side", body = ErrorBody)))]
async fn list_deliveries(
    State(app): State<AppState>,
    query: Result<Query<DeliveryQuery>, QueryRejection>,
) -> Result<Json<DeliveryList>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "limit must be between 1 and 500",
        ));
    }
    if query.status.as_deref().is_some_and(|s| !["pending", "delivered", "dead"].contains(&s)) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "status must be pending, delivered or dead",
        ));
    }
    let deliveries = app
        .store
        .deliveries(query.status.as_deref(), limit)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(Json(DeliveryList { deliveries }))
}

/// Queue a delivered or dead delivery again, due now, with a fresh count of attempts.
#[utoipa::path(post, path = "/deliveries/{id}/redeliver", params(("id" = i64, Path)), tag = "deliveries",
        responses((status = 202, description = "Queued again"), (status = 400, description = "The id is not a number", body = ErrorBody), (status = 401, description = "No valid API key", body = ErrorBody),
        (status = 404, description = "No delivered or dead delivery with this id", body = ErrorBody), (status = 500, description = "Something failed on our side", body = ErrorBody)))]
async fn redeliver(
    State(app): State<AppState>,
    id: Result<Path<i64>, axum::extract::rejection::PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id.map_err(|_| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", "the delivery id is a number")
    })?;
    match app.store.redeliver(id).await {
        Ok(true) => Ok(StatusCode::ACCEPTED),
        Ok(false) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("there is no delivered or dead delivery {id}"),
        )),
        Err(error) => Err(ApiError::internal(&error)),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewConnectLink {
    /// Your own id for the user, stored with the connection.
    #[serde(rename = "ref")]
    #[schema(rename = "ref")]
    reference: Option<String>,
    /// Where to send the browser afterwards (one of connect.return_to_origins).
    return_to: Option<String>,
    /// How long the link works (default 3600, at most 604800).
    ttl_seconds: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ConnectLink {
    /// Send the user here; it works once.
    url: String,
    /// Seconds since the Unix epoch.
    expires_at: i64,
}

/// A one-time link to /connect bound to your user's `ref` (and `return_to`).
#[utoipa::path(post, path = "/connect-links", request_body = NewConnectLink, tag = "connect",
    responses((status = 201, description = "Created", body = ConnectLink), (status = 400, description = "The body is not valid", body = ErrorBody),
        (status = 401, description = "No valid API key", body = ErrorBody), (status = 500, description = "Something failed on our side", body = ErrorBody)))]
async fn create_connect_link(
    State(app): State<AppState>,
    body: Result<Json<NewConnectLink>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<ConnectLink>), ApiError> {
    let invalid = |message: &str| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", message.to_owned())
    };
    let Json(body) = body.map_err(|rejection| invalid(&rejection.body_text()))?;
    let reference = body.reference.filter(|r| !r.is_empty());
    if reference.as_ref().is_some_and(|r| {
        r.chars().count() > crate::flow::MAX_REF_CHARS || r.chars().any(char::is_control)
    }) {
        return Err(invalid("ref must be at most 256 characters, without control characters"));
    }
    let return_to = match body.return_to.filter(|r| !r.is_empty()) {
        Some(raw) => Some(
            crate::config::connect::check_return_to(&raw, &app.config.connect.return_to_origins)
                .ok_or_else(|| invalid("return_to must be a URL of at most 1024 bytes at one of connect.return_to_origins"))?
                .to_string(),
        ),
        None => None,
    };
    let ttl = body.ttl_seconds.unwrap_or(3600);
    if !(60..=604_800).contains(&ttl) {
        return Err(invalid("ttl_seconds must be between 60 and 604800"));
    }
    let (token, digest) = crate::links::new_token().map_err(|e| ApiError::internal(&e))?;
    let expires_at = crate::store::now() + ttl;
    app.store
        .insert_connect_link(&digest, reference.as_deref(), return_to.as_deref(), expires_at)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    let mut url = app.config.public_link("/connect");
    url.query_pairs_mut().append_pair("link", &token);
    Ok((StatusCode::CREATED, Json(ConnectLink { url: url.to_string(), expires_at })))
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
    paths(list_connections, get_connection, get_token, refresh_connection, check_connection, revoke_connection, connection_events, list_deliveries, redeliver, create_connect_link, openapi_document),
    components(schemas(ConnectionList, ConnectionSummary, TokenBody, CheckBody, EventList, Event, ErrorBody, ErrorDetail, DeliveryList, crate::store::DeliverySummary, NewConnectLink, ConnectLink)),
    modifiers(&ApiKeyAuth),
    security(("api_key" = []))
)]
pub struct ApiDoc;

/// The OpenAPI 3.1 document of this API, with this server's address.
#[utoipa::path(get, path = "/openapi.json", tag = "meta", security(()), responses((status = 200, description = "This document")))]
async fn openapi_document(State(app): State<AppState>) -> Json<utoipa::openapi::OpenApi> {
    let mut document = ApiDoc::openapi();
    document.servers =
        Some(vec![utoipa::openapi::Server::new(app.config.public_link("/api/v1").to_string())]);
    Json(document)
}
