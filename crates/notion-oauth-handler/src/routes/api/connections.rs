//! `/api/v1/connections…`: the connections, their tokens and their history.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::responses::{Invalid, Keyed, LifecycleFailures, UnknownConnection};
use super::{ApiError, WholeNumber, bad_query};
use crate::domain::{BotId, ConnectionStatus, WorkspaceId};
use crate::lifecycle::{Freshness, Lifecycle, LifecycleError, Token, WhichTokens};
use crate::links::Links;
use crate::store::{ConnectionFilter, ConnectionSummary, Event, Store};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct ListQuery {
    /// Only connections in this workspace.
    #[param(value_type = Option<String>)]
    workspace_id: Option<WorkspaceId>,
    /// Only connections started with this `ref`.
    #[serde(rename = "ref")]
    #[param(rename = "ref")]
    reference: Option<String>,
    /// Only connections in this state.
    status: Option<ConnectionStatus>,
    /// `next_cursor` of the previous page.
    #[param(value_type = Option<String>)]
    cursor: Option<BotId>,
    /// Page size, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200, value_type = Option<i64>)]
    limit: Option<WholeNumber>,
}

/// A page of connections.
#[derive(Serialize, ToSchema)]
pub(super) struct ConnectionList {
    connections: Vec<ConnectionSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[schema(value_type = Option<String>)]
    next_cursor: Option<BotId>,
}

/// List connections (never tokens).
#[utoipa::path(get, path = "/connections", params(ListQuery), tag = "connections",
    responses((status = 200, description = "OK", body = ConnectionList), Invalid, Keyed))]
pub(super) async fn list_connections(
    State(store): State<Arc<dyn Store>>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<ConnectionList>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let limit = query.limit.map_or(50, |limit| limit.0);
    if !(1..=200).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 200"));
    }
    let filter = ConnectionFilter {
        workspace_id: query.workspace_id,
        reference: query.reference,
        status: query.status,
        after: query.cursor,
        limit: limit + 1,
    };
    let mut connections =
        store.list_connections(&filter).await.map_err(|e| ApiError::internal(&e))?;
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
    responses((status = 200, description = "OK", body = ConnectionSummary), UnknownConnection, Keyed))]
pub(super) async fn get_connection(
    State(store): State<Arc<dyn Store>>,
    Path(bot_id): Path<BotId>,
) -> Result<Json<ConnectionSummary>, ApiError> {
    match store.connection(&bot_id).await {
        Ok(Some(connection)) => Ok(Json(connection)),
        Ok(None) => Err(LifecycleError::NotFound(bot_id).into()),
        Err(error) => Err(ApiError::internal(&error)),
    }
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct TokenQuery {
    /// Refresh first (coalesced with any refresh under way or just done).
    force_refresh: Option<bool>,
    /// Also return the refresh token. Only for apps that refresh by themselves.
    include_refresh_token: Option<bool>,
}

/// A connection's token.
#[derive(Serialize, ToSchema)]
pub(super) struct TokenBody {
    #[schema(value_type = String)]
    bot_id: BotId,
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

/// The answer: the refresh token is in it when the lifecycle was asked for it
/// ([`WhichTokens::AccessAndRefresh`]), and only then opened.
fn token_body(bot_id: BotId, token: Token) -> TokenBody {
    TokenBody {
        bot_id,
        token_type: "bearer",
        access_token: token.access_token.expose_secret().to_owned(),
        refresh_token: token.refresh_token.map(|t| t.expose_secret().to_owned()),
        generation: token.generation,
        refreshed: token.refreshed,
    }
}

/// The connection's current access token.
#[utoipa::path(get, path = "/connections/{bot_id}/token", params(("bot_id" = String, Path), TokenQuery), tag = "tokens",
    responses((status = 200, description = "OK", body = TokenBody), Invalid, LifecycleFailures, Keyed))]
pub(super) async fn get_token(
    State(lifecycle): State<Arc<Lifecycle>>,
    State(links): State<Arc<Links>>,
    Path(bot_id): Path<BotId>,
    query: Result<Query<TokenQuery>, QueryRejection>,
) -> Result<Json<TokenBody>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let freshness =
        if query.force_refresh == Some(true) { Freshness::Refreshed } else { Freshness::Stored };
    let which = if query.include_refresh_token == Some(true) {
        WhichTokens::AccessAndRefresh
    } else {
        WhichTokens::Access
    };
    match lifecycle.token(&bot_id, freshness, which).await {
        Ok(token) => Ok(Json(token_body(bot_id, token))),
        Err(error) => Err(ApiError::from_lifecycle(&links, &bot_id, error).await),
    }
}

/// Refresh the connection's token pair now.
#[utoipa::path(post, path = "/connections/{bot_id}/refresh", params(("bot_id" = String, Path)), tag = "tokens",
    responses((status = 200, description = "OK", body = TokenBody), LifecycleFailures, Keyed))]
pub(super) async fn refresh_connection(
    State(lifecycle): State<Arc<Lifecycle>>,
    State(links): State<Arc<Links>>,
    Path(bot_id): Path<BotId>,
) -> Result<Json<TokenBody>, ApiError> {
    match lifecycle.token(&bot_id, Freshness::Refreshed, WhichTokens::Access).await {
        Ok(token) => Ok(Json(token_body(bot_id, token))),
        Err(error) => Err(ApiError::from_lifecycle(&links, &bot_id, error).await),
    }
}

/// What Notion says of a connection's token.
#[derive(Serialize, ToSchema)]
pub(super) struct CheckBody {
    #[schema(value_type = String)]
    bot_id: BotId,
    /// Whether Notion considers the token usable (after refreshing one that had expired).
    active: bool,
    /// The connection's status after the check.
    status: ConnectionStatus,
    /// The connection's capabilities, as Notion reports them.
    scope: Option<String>,
    /// When Notion issued the token, in milliseconds since the Unix epoch.
    iat: Option<i64>,
}

/// Ask Notion whether the connection still works; an inactive one becomes `revoked`.
#[utoipa::path(post, path = "/connections/{bot_id}/check", params(("bot_id" = String, Path)), tag = "connections",
    responses((status = 200, description = "OK", body = CheckBody), LifecycleFailures, Keyed))]
pub(super) async fn check_connection(
    State(lifecycle): State<Arc<Lifecycle>>,
    State(links): State<Arc<Links>>,
    Path(bot_id): Path<BotId>,
) -> Result<Json<CheckBody>, ApiError> {
    match lifecycle.check(&bot_id).await {
        Ok(checked) => Ok(Json(CheckBody {
            bot_id,
            active: checked.active,
            status: checked.status,
            scope: checked.scope,
            iat: checked.issued_at_ms,
        })),
        Err(error) => Err(ApiError::from_lifecycle(&links, &bot_id, error).await),
    }
}

/// Revoke the connection at Notion and forget its tokens. Repeating it changes nothing.
#[utoipa::path(delete, path = "/connections/{bot_id}", params(("bot_id" = String, Path)), tag = "connections",
    responses((status = 204, description = "Revoked (or already revoked)"), LifecycleFailures, Keyed))]
pub(super) async fn revoke_connection(
    State(lifecycle): State<Arc<Lifecycle>>,
    State(links): State<Arc<Links>>,
    Path(bot_id): Path<BotId>,
) -> Result<StatusCode, ApiError> {
    match lifecycle.revoke(&bot_id, "revoked through the API").await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(error) => Err(ApiError::from_lifecycle(&links, &bot_id, error).await),
    }
}

/// A connection's history.
#[derive(Serialize, ToSchema)]
pub(super) struct EventList {
    /// Newest first.
    events: Vec<Event>,
}

/// What happened to the connection: connected, refreshed, checked, revoked…
#[utoipa::path(get, path = "/connections/{bot_id}/events", params(("bot_id" = String, Path)), tag = "connections",
    responses((status = 200, description = "OK", body = EventList), UnknownConnection, Keyed))]
pub(super) async fn connection_events(
    State(store): State<Arc<dyn Store>>,
    Path(bot_id): Path<BotId>,
) -> Result<Json<EventList>, ApiError> {
    match store.connection(&bot_id).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err(LifecycleError::NotFound(bot_id).into()),
        Err(error) => return Err(ApiError::internal(&error)),
    }
    let events = store.events(&bot_id, 200).await.map_err(|e| ApiError::internal(&e))?;
    Ok(Json(EventList { events }))
}
