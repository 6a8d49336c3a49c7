//! The harness's floor: a trivial echo server, one socket per call, that answers every
//! Twilio `media` frame with a `media` frame of the same payload and does nothing else.
//! What the load side measures through it is what loopback sockets, the scheduler and the
//! load side itself cost; everything the relay adds is above it.

use std::net::SocketAddr;

use futures::{SinkExt as _, StreamExt as _};
use switchboard_twilio::media_stream::{encode_media, parse_inbound, InboundMessage};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Serves until the process is killed.
pub async fn serve(listen: SocketAddr) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(echo(stream));
    }
}

async fn echo(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let mut out = String::with_capacity(400);
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        if let Ok(InboundMessage::Media(media)) = parse_inbound(&text) {
            out.clear();
            encode_media(&media.stream_sid, &media.payload, &mut out);
            if ws.send(Message::text(out.as_str())).await.is_err() {
                return;
            }
        }
    }
}
