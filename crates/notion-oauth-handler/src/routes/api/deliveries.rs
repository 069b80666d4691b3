//! `/api/v1/deliveries…` and `/api/v1/connect-links`: what the app is told, and links it can hand out.

use std::sync::Arc;

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::responses::{Invalid, Keyed, SlowBody};
use super::{ApiError, WholeNumber, bad_query};
use crate::domain::{DeliveryStatus, Reference};
use crate::links::Links;
use crate::store::{DeliverySummary, Store, now};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(super) struct DeliveryQuery {
    /// Only deliveries in this state.
    status: Option<DeliveryStatus>,
    /// How many, newest first (1 to 500, default 100).
    #[param(minimum = 1, maximum = 500, value_type = Option<i64>)]
    limit: Option<WholeNumber>,
}

/// Deliveries, newest first.
#[derive(Serialize, ToSchema)]
pub(super) struct DeliveryList {
    deliveries: Vec<DeliverySummary>,
}

/// Deliveries of connection events to webhooks and the command hook, newest first.
#[utoipa::path(get, path = "/deliveries", params(DeliveryQuery), tag = "deliveries",
    responses((status = 200, description = "OK", body = DeliveryList), Invalid, Keyed))]
pub(super) async fn list_deliveries(
    State(store): State<Arc<dyn Store>>,
    query: Result<Query<DeliveryQuery>, QueryRejection>,
) -> Result<Json<DeliveryList>, ApiError> {
    let Query(query) = query.map_err(bad_query)?;
    let limit = query.limit.map_or(100, |limit| limit.0);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::invalid("limit must be between 1 and 500"));
    }
    let deliveries =
        store.deliveries(query.status, limit).await.map_err(|e| ApiError::internal(&e))?;
    Ok(Json(DeliveryList { deliveries }))
}

/// Queue a delivered or dead delivery again, due now, with a fresh count of attempts.
#[utoipa::path(post, path = "/deliveries/{id}/redeliver", params(("id" = i64, Path)), tag = "deliveries",
    responses((status = 202, description = "Queued again"), Invalid,
        (status = 404, description = "No delivered or dead delivery with this id", body = super::ErrorBody), Keyed))]
pub(super) async fn redeliver(
    State(store): State<Arc<dyn Store>>,
    id: Result<Path<i64>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let Path(id) = id.map_err(|_| ApiError::invalid("the delivery id is a number"))?;
    match store.redeliver(id).await {
        Ok(true) => Ok(StatusCode::ACCEPTED),
        Ok(false) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("there is no delivered or dead delivery {id}"),
        )),
        Err(error) => Err(ApiError::internal(&error)),
    }
}

/// What a one-time link is for.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewConnectLink {
    /// Your own id for the user, stored with the connection.
    #[serde(rename = "ref")]
    #[schema(rename = "ref", max_length = 256, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    reference: Option<String>,
    /// Where to send the browser afterwards (one of connect.return_to_origins).
    return_to: Option<String>,
    /// How long the link works in seconds, 60 to 604800 (default 3600).
    #[schema(minimum = 60, maximum = 604_800, value_type = Option<i64>)]
    ttl_seconds: Option<WholeNumber>,
}

/// A one-time link.
#[derive(Serialize, ToSchema)]
pub(super) struct ConnectLink {
    /// Send the user here; it works once.
    url: String,
    /// Seconds since the Unix epoch.
    expires_at: i64,
}

/// A one-time link to /connect bound to your user's `ref` (and `return_to`).
#[utoipa::path(post, path = "/connect-links", request_body = NewConnectLink, tag = "connect",
    responses((status = 201, description = "Created", body = ConnectLink), Invalid, SlowBody, Keyed))]
pub(super) async fn create_connect_link(
    State(links): State<Arc<Links>>,
    body: Result<Json<NewConnectLink>, JsonRejection>,
) -> Result<(StatusCode, Json<ConnectLink>), ApiError> {
    let Json(body) = body.map_err(ApiError::from_body)?;
    let reference = body
        .reference
        .filter(|r| !r.is_empty())
        .map(Reference::parse)
        .transpose()
        .map_err(|e| ApiError::invalid(e.to_string()))?;
    let return_to = match body.return_to.filter(|r| !r.is_empty()) {
        Some(raw) => Some(links.check_return_to(&raw).ok_or_else(|| {
            ApiError::invalid(
                "return_to must be a URL of at most 1024 bytes at one of connect.return_to_origins",
            )
        })?),
        None => None,
    };
    let ttl = body.ttl_seconds.map_or(3600, |ttl| ttl.0);
    if !(60..=604_800).contains(&ttl) {
        return Err(ApiError::invalid("ttl_seconds must be between 60 and 604800"));
    }
    let expires_at = now() + ttl;
    let reference = reference.as_ref().map(Reference::as_str);
    let return_to = return_to.as_ref().map(url::Url::as_str);
    let url = links
        .one_time(reference, return_to, expires_at)
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok((StatusCode::CREATED, Json(ConnectLink { url: url.to_string(), expires_at })))
}
