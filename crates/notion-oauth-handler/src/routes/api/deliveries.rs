//! `/api/v1/deliveries…` and `/api/v1/connect-links`: what the app is told, and links it can hand out.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{ApiError, ErrorBody, bad_query};
use crate::startup::AppState;

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
pub(super) async fn list_deliveries(
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
pub(super) async fn redeliver(
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
pub(super) async fn create_connect_link(
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
