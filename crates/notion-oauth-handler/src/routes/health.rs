//! Liveness and readiness, for load balancers and orchestrators.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::{Value, json};

use crate::store::Store;
use crate::telemetry::Chain;

/// The process is up and serving.
pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// The process can do its job: the database answers and takes a write.
pub(super) async fn readyz(State(store): State<Arc<dyn Store>>) -> (StatusCode, Json<Value>) {
    match store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(error) => {
            tracing::error!(error = %Chain(&error), "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({
                    "status": "unavailable",
                    "reason": "the database does not answer or refuses writes; the server log says why",
                })),
            )
        }
    }
}
