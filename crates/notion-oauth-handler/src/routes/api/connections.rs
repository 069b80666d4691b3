//! `/api/v1/connections…`: the connections, their tokens and their history.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ErrorBody, bad_query};
use crate::lifecycle::{self, LifecycleError};
use crate::startup::AppState;
use crate::store::{ConnectionFilter, ConnectionSummary, Event};

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
pub(super) async fn list_connections(
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
pub(super) async fn get_connection(
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

pub(super) fn token_body(
    bot_id: String,
    grant: lifecycle::Grant,
    include_refresh_token: bool,
) -> TokenBody {
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
pub(super) async fn get_token(
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
pub(super) async fn refresh_connection(
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
pub(super) async fn check_connection(
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
pub(super) async fn revoke_connection(
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
pub(super) async fn connection_events(
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
