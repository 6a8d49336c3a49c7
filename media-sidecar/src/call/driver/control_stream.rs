//! The control-plane stream of one call, as the driver sees it: open it (`Hello`, then
//! the `CallConfig`), read it, close it so the last messages are delivered, and wait to
//! reopen it. Read `driver.rs` first.

use std::time::{Duration, Instant};

use switchboard_proto::v1 as pb;
use switchboard_proto::v1::connect_response::Message as Down;
use tokio::sync::mpsc;
use tonic::Streaming;

use super::START_TIMEOUT;
use crate::control::ControlLease;
use crate::AppState;

/// Depth of the outgoing control-plane queue of one call. A stream that lets it fill up
/// is stuck: the driver reopens it (everything unanswered is in the outbox).
const CONTROL_QUEUE: usize = 256;
/// How long closing waits for the control plane to finish the stream.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The control-plane stream of one call, open on one replica.
pub(super) struct ControlStream {
    pub(super) sender: mpsc::Sender<pb::ConnectRequest>,
    inbound: Streaming<pb::ConnectResponse>,
    /// The replica, counted busier while the stream lives.
    pub(super) lease: ControlLease,
}

impl ControlStream {
    /// Ends the stream the way a finished call does: no more requests, then whatever
    /// the control plane still answers, so the last messages are delivered, not reset.
    pub(super) async fn close(self) {
        let ControlStream {
            sender,
            mut inbound,
            lease,
        } = self;
        drop(sender);
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Ok(Some(_)) = inbound.message().await {}
        })
        .await;
        drop(lease);
    }
}

/// Opens the call's stream on a live replica (the control plane client picks it and
/// skips unreachable ones): `Hello`, then the first answer, which must be its config.
pub(super) async fn open_control(
    state: &AppState,
    hello: pb::ConnectRequest,
) -> Result<(ControlStream, pb::CallConfig), tonic::Status> {
    let opened = tokio::time::timeout(START_TIMEOUT, async {
        let mut stream = state.control.connect(hello, CONTROL_QUEUE).await?;
        let first = match stream.inbound.message().await {
            Ok(first) => first,
            Err(status) => {
                stream.lease.broke();
                return Err(status);
            }
        };
        Ok::<_, tonic::Status>((stream, first))
    })
    .await
    .map_err(|_| tonic::Status::deadline_exceeded("the control plane did not answer hello"))??;
    match opened {
        (
            stream,
            Some(pb::ConnectResponse {
                message: Some(Down::Config(config)),
            }),
        ) => Ok((
            ControlStream {
                sender: stream.sender,
                inbound: stream.inbound,
                lease: stream.lease,
            },
            config,
        )),
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
