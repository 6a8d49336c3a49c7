//! A bare relay, for calibration: the kind of ~120-line tokio-tungstenite relay that was
//! measured as a reference before the sidecar was written (README, "The relay under load"),
//! rebuilt on the project's codecs. One task per call, the Twilio socket and one Realtime
//! socket, `media` → `input_audio_buffer.append` and audio delta → `media` + `mark` (one
//! flush), mark echoes read and dropped — and nothing else: no webhook, no token, no
//! control plane, no barge-in bookkeeping, no transcripts, no metrics.
//!
//! Measured on the same harness as the sidecar, the gap between the two is the cost of
//! the sidecar's real work; the gap between this and the floor is what any relay with a
//! second socket pays.

use std::fmt::Write as _;
use std::net::SocketAddr;

use futures::{SinkExt as _, StreamExt as _};
use switchboard_realtime::{encode_audio_append, parse_server_event, ServerEvent};
use switchboard_twilio::media_stream::{encode_mark, encode_media, parse_inbound, InboundMessage};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

/// Serves until the process is killed; each call opens a socket to `openai_url`.
pub async fn serve(listen: SocketAddr, openai_url: String) -> anyhow::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(relay(stream, openai_url.clone()));
    }
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default().read_buffer_size(2 * 1024)
}

async fn relay(stream: TcpStream, openai_url: String) {
    let _ = stream.set_nodelay(true);
    let Ok(mut twilio) = tokio_tungstenite::accept_async_with_config(stream, Some(config())).await
    else {
        return;
    };
    let mut stream_sid = String::new();
    while let Some(Ok(message)) = twilio.next().await {
        if let Message::Text(text) = message {
            if let Ok(InboundMessage::Start(start)) = parse_inbound(&text) {
                stream_sid = start.stream_sid.into_owned();
                break;
            }
        }
    }
    let Ok(mut request) = openai_url.as_str().into_client_request() else {
        return;
    };
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_static("Bearer bench-openai-key"),
    );
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config()), true);
    let Ok((mut openai, _)) = connecting.await else {
        return;
    };
    let mut out = String::with_capacity(512);
    let mut marks = 0_u64;
    let mut mark = String::with_capacity(16);
    loop {
        tokio::select! {
            message = twilio.next() => {
                let Some(Ok(message)) = message else { break };
                let Message::Text(text) = message else { continue };
                match parse_inbound(&text) {
                    Ok(InboundMessage::Media(media)) => {
                        out.clear();
                        encode_audio_append(&media.payload, &mut out);
                        if openai.send(Message::text(out.as_str())).await.is_err() {
                            break;
                        }
                    }
                    Ok(InboundMessage::Stop(_)) => break,
                    _ => {}
                }
            }
            message = openai.next() => {
                let Some(Ok(message)) = message else { break };
                let Message::Text(text) = message else { continue };
                if let Ok(ServerEvent::ResponseOutputAudioDelta(delta)) = parse_server_event(&text) {
                    out.clear();
                    encode_media(&stream_sid, &delta.delta, &mut out);
                    marks += 1;
                    mark.clear();
                    let _ = write!(mark, "{marks}");
                    let mut mark_frame = String::with_capacity(96);
                    encode_mark(&stream_sid, &mark, &mut mark_frame);
                    let sent = async {
                        twilio.feed(Message::text(out.as_str())).await?;
                        twilio.feed(Message::text(mark_frame)).await?;
                        twilio.flush().await
                    };
                    if sent.await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    let _ = openai.close(None).await;
    let _ = twilio.close(None).await;
}
