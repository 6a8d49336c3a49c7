//! Connects a call to the Realtime API: OpenAI (GA or beta) or Azure OpenAI, or any
//! endpoint standing in for them (the simulator, a proxy), per `SWITCHBOARD_OPENAI_*`.
//!
//! It only opens the socket — URL, headers, small buffers; the call driver
//! (`call/driver.rs`) speaks over it through the call core.

use std::time::Duration;

use switchboard_proto::v1 as pb;
use switchboard_realtime::Dialect;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::config::{OpenAiConfig, OpenAiDialect};

/// The Realtime socket of one call.
pub type RealtimeSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long the handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Read buffer per socket: frames are small, and a large buffer is zero-filled on
/// reads (PERFORMANCE.md).
const READ_BUFFER: usize = 2 * 1024;
const MAX_MESSAGE: usize = 1024 * 1024;

/// Why the Realtime API could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum RealtimeConnectError {
    #[error("invalid realtime url: {0}")]
    Url(String),
    #[error("realtime handshake did not finish within {0:?}")]
    Timeout(Duration),
    #[error("realtime handshake failed: {0}")]
    Handshake(String),
}

/// The dialect a call speaks: the agent's provider when it asks for beta, else the
/// endpoint's.
pub fn dialect_for(config: &OpenAiConfig, agent: &pb::AgentSettings) -> Dialect {
    if agent.provider == pb::RealtimeProvider::OpenaiBeta as i32 {
        return Dialect::Beta;
    }
    match config.dialect {
        OpenAiDialect::Ga => Dialect::Ga,
        OpenAiDialect::Beta => Dialect::Beta,
        // Azure's preview path (`api-version=…`) speaks beta; `/openai/v1` speaks GA.
        OpenAiDialect::Azure if config.url.contains("api-version=") => Dialect::Beta,
        OpenAiDialect::Azure => Dialect::Ga,
    }
}

/// The URL of a call's socket: the endpoint with the agent's model (or the default).
pub fn url_for(config: &OpenAiConfig, agent: &pb::AgentSettings) -> String {
    let model = if agent.model.is_empty() {
        &config.default_model
    } else {
        &agent.model
    };
    let separator = if config.url.contains('?') { '&' } else { '?' };
    let key = if config.dialect == OpenAiDialect::Azure && config.url.contains("api-version=") {
        "deployment"
    } else {
        "model"
    };
    format!("{}{separator}{key}={model}", config.url)
}

/// Opens the socket for a call.
pub async fn connect(
    config: &OpenAiConfig,
    agent: &pb::AgentSettings,
    dialect: Dialect,
) -> Result<RealtimeSocket, RealtimeConnectError> {
    let url = url_for(config, agent);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| RealtimeConnectError::Url(e.to_string()))?;
    let headers = request.headers_mut();
    if let Some(key) = &config.api_key {
        let (name, value) = match config.dialect {
            OpenAiDialect::Azure => ("api-key", key.expose().to_owned()),
            _ => ("authorization", format!("Bearer {}", key.expose())),
        };
        let value = HeaderValue::from_str(&value)
            .map_err(|_| RealtimeConnectError::Url("api key is not a valid header value".into()))?;
        headers.insert(name, value);
    }
    if dialect == Dialect::Beta && config.dialect != OpenAiDialect::Azure {
        headers.insert("openai-beta", HeaderValue::from_static("realtime=v1"));
    }
    let mut ws_config = WebSocketConfig::default();
    ws_config.read_buffer_size = READ_BUFFER;
    ws_config.max_message_size = Some(MAX_MESSAGE);
    ws_config.max_frame_size = Some(MAX_MESSAGE);
    let handshake = tokio_tungstenite::connect_async_with_config(request, Some(ws_config), true);
    match tokio::time::timeout(CONNECT_TIMEOUT, handshake).await {
        Err(_) => Err(RealtimeConnectError::Timeout(CONNECT_TIMEOUT)),
        // The error may echo the request; report only its kind, never the key.
        Ok(Err(e)) => Err(RealtimeConnectError::Handshake(handshake_error(&e))),
        Ok(Ok((socket, _response))) => Ok(socket),
    }
}

fn handshake_error(e: &tokio_tungstenite::tungstenite::Error) -> String {
    use tokio_tungstenite::tungstenite::Error;
    match e {
        Error::Http(response) => format!("http {}", response.status()),
        Error::Io(io) => format!("io: {}", io.kind()),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: &str, dialect: OpenAiDialect) -> OpenAiConfig {
        OpenAiConfig {
            url: url.into(),
            dialect,
            default_model: "gpt-realtime".into(),
            api_key: None,
        }
    }

    #[test]
    fn urls_carry_the_agents_model_or_the_default() {
        let agent = pb::AgentSettings {
            model: "gpt-realtime-mini".into(),
            ..Default::default()
        };
        assert_eq!(
            url_for(
                &config("wss://api.openai.com/v1/realtime", OpenAiDialect::Ga),
                &agent
            ),
            "wss://api.openai.com/v1/realtime?model=gpt-realtime-mini"
        );
        let default = pb::AgentSettings::default();
        assert_eq!(
            url_for(
                &config("ws://127.0.0.1:1/v1/realtime", OpenAiDialect::Ga),
                &default
            ),
            "ws://127.0.0.1:1/v1/realtime?model=gpt-realtime"
        );
        let azure = config(
            "wss://r.openai.azure.com/openai/realtime?api-version=2024-10-01-preview",
            OpenAiDialect::Azure,
        );
        assert!(url_for(&azure, &default).ends_with("&deployment=gpt-realtime"));
        assert_eq!(dialect_for(&azure, &default), Dialect::Beta);
    }

    #[test]
    fn an_agent_may_ask_for_the_beta_dialect() {
        let beta = pb::AgentSettings {
            provider: pb::RealtimeProvider::OpenaiBeta.into(),
            ..Default::default()
        };
        let ga = config("wss://api.openai.com/v1/realtime", OpenAiDialect::Ga);
        assert_eq!(dialect_for(&ga, &beta), Dialect::Beta);
        assert_eq!(dialect_for(&ga, &pb::AgentSettings::default()), Dialect::Ga);
    }
}
