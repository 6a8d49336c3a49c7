//! `GET /api/twilio/media-stream/{callId}`: the Media Stream WebSocket upgrade, and the
//! hook that runs the call behind it.
//!
//! Before upgrading, this checks what it can without reading a frame: the call id's
//! shape (400), the upgrade's `x-twilio-signature` when present — over the `wss://` (or,
//! for an http public URL, `ws://`) URL rebuilt from `SWITCHBOARD_PUBLIC_URL` and the
//! path, with no parameters (docs/protocols.md §1.5) — (403 on mismatch), and that the replica
//! is not draining (503) unless the call is one it already answered with a stream (the
//! voice webhook registered it as expected with the drain, and this socket consumes that
//! expectation). The socket gets small buffers (8 KiB read and write):
//! Twilio's frames are about 400 bytes and a replica holds hundreds of calls. Messages
//! may be larger than the codec's limit (`MAX_FRAME_BYTES`, 64 KiB), up to
//! [`MAX_MESSAGE_SIZE`], so that an oversized frame reaches the call, which counts and
//! skips it while the call goes on; only a message beyond that ends the socket. The
//! accepted socket is handed to the [`MediaHandler`] on its own task, and the call counts
//! as active with the drain for exactly as long as the handler's future runs (the guard
//! wraps the future, so it cannot be dropped early by a handler that only uses some of
//! [`MediaSocket`]'s fields).
//!
//! The stream token (`start.customParameters.token`) is verified by the handler, since
//! it only arrives in the first frames.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{close_code, CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use switchboard_twilio::signature::HEADER as SIGNATURE_HEADER;

use super::AppState;
use crate::metrics::{CallOutcome, WebhookRoute};

/// Read buffer of a media socket.
pub const READ_BUFFER_SIZE: usize = 2 * 1024;
/// Write buffer of a media socket.
pub const WRITE_BUFFER_SIZE: usize = 8 * 1024;
/// Largest message (and frame) accepted on a media socket: four times what the codec
/// accepts, so that a frame the codec refuses as too large is counted and skipped by the
/// call rather than breaking its socket.
pub const MAX_MESSAGE_SIZE: usize = 4 * switchboard_twilio::media_stream::MAX_FRAME_BYTES;
/// Longest call id accepted in the path.
pub const MAX_CALL_ID_LEN: usize = 64;

/// An accepted Media Stream WebSocket, with what the upgrade established.
#[derive(Debug)]
pub struct MediaSocket {
    /// The upgraded socket; Twilio's `connected` and `start` come next.
    pub socket: WebSocket,
    /// The call id from the path (shape checked; not yet checked against the token).
    pub call_id: String,
    /// What the upgrade's signature header showed.
    pub signature: UpgradeSignature,
    /// The shared services: control plane, token signer, metrics, config.
    pub state: AppState,
}

/// What the upgrade request's `x-twilio-signature` showed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpgradeSignature {
    /// Present and valid.
    Valid,
    /// Absent: the stream token alone authenticates the call.
    Absent,
    /// Not checked: `TWILIO_AUTH_TOKEN` is unset.
    Unchecked,
}

/// Runs one call's media stream, from the socket's first frame to its end. The call
/// driver (`call/`) implements it; any `Fn(MediaSocket) -> BoxFuture<'static, ()>` does
/// too. Each call's future runs on its own task, and the call counts as active (for the
/// drain and the active-calls gauge) until that future returns: keep the call's work in
/// it, or the drain will not wait for it.
pub trait MediaHandler: Send + Sync + 'static {
    /// Takes over the socket for the whole call.
    fn handle(&self, socket: MediaSocket) -> BoxFuture<'static, ()>;
}

impl<F> MediaHandler for F
where
    F: Fn(MediaSocket) -> BoxFuture<'static, ()> + Send + Sync + 'static,
{
    fn handle(&self, socket: MediaSocket) -> BoxFuture<'static, ()> {
        self(socket)
    }
}

/// PLACEHOLDER until the call driver (`call/driver.rs`) lands and replaces it in
/// `main.rs`: closes every media socket at once with code 1011 and the reason
/// "media bridge unavailable", and counts the call as failed. With it, an answered
/// realtime call hears nothing and Twilio hangs up. It is not a bridge.
#[derive(Debug, Clone, Copy, Default)]
pub struct MediaBridgeUnavailable;

impl MediaHandler for MediaBridgeUnavailable {
    fn handle(&self, media: MediaSocket) -> BoxFuture<'static, ()> {
        Box::pin(async move {
            let MediaSocket {
                mut socket,
                call_id,
                state,
                ..
            } = media;
            tracing::error!(%call_id, "no media bridge in this build; closing the media stream");
            let close = CloseFrame {
                code: close_code::ERROR,
                reason: "media bridge unavailable".into(),
            };
            if socket.send(Message::Close(Some(close))).await.is_ok() {
                // Let the peer answer the close so the socket ends cleanly.
                let _ = tokio::time::timeout(Duration::from_secs(1), async {
                    while let Some(Ok(_)) = socket.recv().await {}
                })
                .await;
            }
            state.metrics.call_finished(CallOutcome::Failed);
        })
    }
}

/// True for 1 to [`MAX_CALL_ID_LEN`] ASCII letters, digits, `-` or `_`: safe in a path,
/// a query and a log line without escaping.
pub(crate) fn is_valid_call_id(call_id: &str) -> bool {
    (1..=MAX_CALL_ID_LEN).contains(&call_id.len())
        && call_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// `GET /api/twilio/media-stream/{call_id}`.
pub(super) async fn media_stream(
    State(state): State<AppState>,
    Path(call_id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let response = accept(state.clone(), call_id, &uri, &headers, upgrade);
    state
        .metrics
        .webhook_request(WebhookRoute::MediaStream, response.status().as_u16());
    response
}

fn accept(
    state: AppState,
    call_id: String,
    uri: &Uri,
    headers: &HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    if !is_valid_call_id(&call_id) {
        tracing::warn!(path = uri.path(), "media stream for a malformed call id");
        return (StatusCode::BAD_REQUEST, "invalid call id").into_response();
    }
    let signature = match check_upgrade_signature(&state, uri, headers) {
        Ok(signature) => signature,
        Err(reason) => {
            tracing::warn!(%call_id, reason, "media stream upgrade signature refused");
            return (StatusCode::FORBIDDEN, "forbidden").into_response();
        }
    };
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    // Consumes the expectation the voice webhook registered: while draining, only a call
    // this replica already answered gets in.
    let Some(guard) = state.drain.admit(&call_id) else {
        tracing::warn!(%call_id, "media stream refused: draining");
        return (StatusCode::SERVICE_UNAVAILABLE, "draining").into_response();
    };
    tracing::debug!(%call_id, ?signature, "media stream accepted");
    upgrade
        .read_buffer_size(READ_BUFFER_SIZE)
        .write_buffer_size(WRITE_BUFFER_SIZE)
        .max_message_size(MAX_MESSAGE_SIZE)
        .max_frame_size(MAX_MESSAGE_SIZE)
        .on_upgrade(move |socket| async move {
            let handler = state.media_handler.clone();
            let call = handler.handle(MediaSocket {
                socket,
                call_id,
                signature,
                state,
            });
            call.await;
            drop(guard);
        })
}

/// Validates a present `x-twilio-signature` over the WebSocket URL of the path.
fn check_upgrade_signature(
    state: &AppState,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<UpgradeSignature, &'static str> {
    let Some(header) = headers.get(SIGNATURE_HEADER) else {
        return Ok(UpgradeSignature::Absent);
    };
    let Some(validator) = state.validator() else {
        return Ok(UpgradeSignature::Unchecked);
    };
    let signature = header
        .to_str()
        .map_err(|_| "signature header is not text")?;
    let url = state.config.public_url.websocket_url(uri.path());
    validator
        .validate_url(&url, signature)
        .map(|()| UpgradeSignature::Valid)
        .map_err(|_| "signature does not match the stream url")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_socket_takes_frames_the_codec_refuses_as_too_large() {
        // Otherwise an oversized frame ends the call instead of being counted and skipped.
        const _: () = assert!(MAX_MESSAGE_SIZE > switchboard_twilio::media_stream::MAX_FRAME_BYTES);
        let frame = " ".repeat(switchboard_twilio::media_stream::MAX_FRAME_BYTES + 1);
        assert!(frame.len() <= MAX_MESSAGE_SIZE);
        assert!(matches!(
            switchboard_twilio::media_stream::parse_inbound(&frame),
            Err(switchboard_twilio::media_stream::ParseError::TooLarge { .. })
        ));
    }

    #[test]
    fn call_ids_are_plain_words() {
        for good in ["65a9f001c2b3d4e5f6a7b8c9", "0190-abcd_EF", "x"] {
            assert!(is_valid_call_id(good), "{good}");
        }
        let too_long = "a".repeat(MAX_CALL_ID_LEN + 1);
        for bad in ["", "a b", "a/b", "a?b", "é", "a.b", too_long.as_str()] {
            assert!(!is_valid_call_id(bad), "{bad:?}");
        }
    }
}
