//! The admin listener: `/healthz`, `/readyz` and `/metrics`, for Kubernetes and
//! Prometheus. Kept off the Twilio-facing listener so it is never exposed publicly.
//!
//! - `/healthz`: 200 while the process serves (liveness).
//! - `/readyz`: 200 once the listeners serve, 503 before and for good once the drain
//!   began (the readiness latch in `drain.rs`), so no new call reaches a draining replica.
//! - `/metrics`: every metric of `metrics.rs`, OpenMetrics text.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::headers::security_headers;
use super::router::not_found;
use super::AppState;

/// The content type of OpenMetrics text, which Prometheus negotiates.
const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The admin router over `state`, with the security headers.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::map_response(security_headers))
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.drain.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else if state.drain.is_draining() {
        (StatusCode::SERVICE_UNAVAILABLE, "draining\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)], text).into_response(),
        Err(error) => {
            tracing::error!(%error, "metrics could not be encoded");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}
