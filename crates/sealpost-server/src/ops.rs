//! For operators: liveness, readiness, Prometheus metrics, and the OpenAPI description.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::error::ApiError;
use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Status {
    status: &'static str,
}

/// The protocol version this server implements in full (PROTOCOL.md §4).
pub const PROTOCOL: &str = "1.1";

/// What `/healthz` answers.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    status: &'static str,
    /// The protocol version implemented in full; a server without it speaks 1.0.
    protocol: &'static str,
}

/// Liveness: the process answers, and says which protocol it speaks.
#[utoipa::path(get, path = "/healthz", tag = "ops", responses((status = 200, body = Health)))]
async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok",
        protocol: PROTOCOL,
    })
}

/// Readiness: the database answers. A database that does not is `unavailable` (503), which an
/// orchestrator must not confuse with load shedding (`overloaded`).
#[utoipa::path(get, path = "/readyz", tag = "ops", responses((status = 200, body = Status),
    (status = 503, body = Status, description = "unavailable: the database does not answer")))]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Status>) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(Status { status: "ready" })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed: the database does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(Status {
                    status: "unavailable",
                }),
            )
        }
    }
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "ops", responses((status = 200, content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> Response {
    if state.config.metrics_listen.is_some() {
        return ApiError::not_found("metrics are served on --metrics-listen").into_response();
    }
    render_metrics(State(state)).await.into_response()
}

/// The router of `--metrics-listen`: `/metrics` alone.
pub fn metrics_only(state: AppState) -> axum::Router {
    axum::Router::new()
        .route("/metrics", axum::routing::get(render_metrics))
        .with_state(state)
}

async fn render_metrics(State(state): State<AppState>) -> impl IntoResponse {
    let body = state.metrics.render(
        state.store.backend().name(),
        state.store.pool_usage(),
        &state.pages,
    );
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        body,
    )
}
