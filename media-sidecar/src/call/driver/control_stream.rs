//! The control-plane stream of one call, as the driver sees it: open it (`Hello`, then
//! the `CallConfig`), read it, close it so the last messages are delivered, and wait to
//! reopen it. Read `driver.rs` first.

use std::time::{Duration, Instant};

use switchboard_proto::v1 as pb;
use switchboard_proto::v1::connect_response::Message as Down;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use super::START_TIMEOUT;
use crate::AppState;

/// Depth of the outgoing control-plane queue of one call. A stream that lets it fill up
/// is stuck: the driver reopens it (everything unanswered is in the outbox).
const CONTROL_QUEUE: usize = 256;
/// How long closing waits for the control plane to finish the stream.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The control-plane stream of one call.
pub(super) struct ControlStream {
    pub(super) sender: mpsc::Sender<pb::ConnectRequest>,
    inbound: Streaming<pb::ConnectResponse>,
}

impl ControlStream {
    /// Ends the stream the way a finished call does: no more requests, then whatever
    /// the control plane still answers, so the last messages are delivered, not reset.
    pub(super) async fn close(self) {
        let ControlStream {
            sender,
            mut inbound,
        } = self;
        drop(sender);
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Ok(Some(_)) = inbound.message().await {}
        })
        .await;
    }
}

/// Opens the call's stream: `Hello`, then the first answer, which must be its config.
pub(super) async fn open_control(
    state: &AppState,
    hello: pb::ConnectRequest,
) -> Result<(ControlStream, pb::CallConfig), tonic::Status> {
    let (sender, outgoing) = mpsc::channel(CONTROL_QUEUE);
    sender
        .send(hello)
        .await
        .map_err(|_| tonic::Status::internal("control queue closed"))?;
    let opened = tokio::time::timeout(START_TIMEOUT, async {
        let mut inbound = state.control.connect(ReceiverStream::new(outgoing)).await?;
        let first = inbound.message().await?;
        Ok::<_, tonic::Status>((inbound, first))
    })
    .await
    .map_err(|_| tonic::Status::deadline_exceeded("the control plane did not answer hello"))??;
    match opened {
        (
            inbound,
            Some(pb::ConnectResponse {
                message: Some(Down::Config(config)),
            }),
        ) => Ok((ControlStream { sender, inbound }, config)),
        _ => Err(tonic::Status::internal(
            "the control plane answered hello without a call config",
        )),
    }
}

/// The next message of the stream; pending forever while there is none.
pub(super) async fn next_control(
    control: &mut Option<ControlStream>,
) -> Result<Option<pb::ConnectResponse>, tonic::Status> {
    match control {
        Some(control) => control.inbound.message().await,
        None => std::future::pending().await,
    }
}

/// Resolves at `at`; pending forever without one.
pub(super) async fn reconnect_due(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}
