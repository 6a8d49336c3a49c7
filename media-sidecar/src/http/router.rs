//! The Twilio-facing router: routes, paths and the layers every request passes.
//!
//! Layers, outermost first, and why they sit there:
//! 1. security headers — outermost so that every response gets them, including the 413
//!    of the body limit and the 404 of unknown paths;
//! 2. a 64 KiB request body limit — Twilio's webhook bodies are a few KiB, so anything
//!    bigger is refused (413) before a handler buffers it.
//!
//! Unknown paths answer 404 with an empty body; a known path with the wrong method 405.

use axum::http::StatusCode;
use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use tower_http::limit::RequestBodyLimitLayer;

use super::headers::security_headers;
use super::{media_socket, webhooks, AppState};

/// The voice webhook (the number's Voice URL, and the `Url` of calls we place).
pub const VOICE_PATH: &str = "/api/twilio/voice";
/// The call status callback.
pub const STATUS_PATH: &str = "/api/twilio/status";
/// The `<Stream statusCallback>`.
pub const STREAM_STATUS_PATH: &str = "/api/twilio/stream-status";
/// The Media Stream WebSocket is at this prefix followed by the call id.
pub const MEDIA_STREAM_PATH_PREFIX: &str = "/api/twilio/media-stream/";
/// Largest request body accepted, in bytes.
pub const WEBHOOK_BODY_LIMIT: usize = 64 * 1024;

/// The router for Twilio ingress, with its layers, over `state`.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(VOICE_PATH, post(webhooks::voice))
        .route(STATUS_PATH, post(webhooks::call_status))
        .route(STREAM_STATUS_PATH, post(webhooks::stream_status))
        .route(
            &format!("{MEDIA_STREAM_PATH_PREFIX}{{call_id}}"),
            get(media_socket::media_stream),
        )
        .fallback(not_found)
        .layer(RequestBodyLimitLayer::new(WEBHOOK_BODY_LIMIT))
        .layer(middleware::map_response(security_headers))
        .with_state(state)
}

/// Any path not routed.
pub(super) async fn not_found() -> StatusCode {
    StatusCode::NOT_FOUND
}
