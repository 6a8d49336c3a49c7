//! The WebSocket upgrade request, judged like the real endpoints judge it
//! (docs/protocols.md §3.1): which path, which dialect, which model, whose
//! key, and which faults the URL asks for. Pure: request in, verdict out.
//!
//! | path | dialect | model from |
//! |---|---|---|
//! | `/v1/realtime` | GA, or beta with `OpenAI-Beta: realtime=v1` | `model` |
//! | `/openai/v1/realtime` (Azure GA) | GA | `model` |
//! | `/openai/realtime` (Azure preview) | beta | `deployment` (+ `api-version`) |
//!
//! Any of them may sit under a `/faults/SPEC[,SPEC]` prefix.

use switchboard_realtime::{Dialect, Secret};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request};
use tokio_tungstenite::tungstenite::http::{header, HeaderValue, StatusCode};

use crate::openai::faults::Fault;

/// An accepted upgrade.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConnInfo {
    pub(crate) dialect: Dialect,
    pub(crate) model: String,
    /// The request path, without the query.
    pub(crate) path: String,
    /// Faults from the configuration, the queue and the URL.
    pub(crate) faults: Vec<Fault>,
}

/// A refused upgrade: the HTTP answer, with an OpenAI-style error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub(crate) status: u16,
    pub(crate) kind: &'static str,
    pub(crate) code: &'static str,
    pub(crate) message: String,
}

impl Refusal {
    fn new(
        status: u16,
        kind: &'static str,
        code: &'static str,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            kind,
            code,
            message: message.into(),
        }
    }

    fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request_error", code, message)
    }

    /// The response tungstenite writes before closing.
    pub(crate) fn into_response(self) -> ErrorResponse {
        let body = serde_json::json!({"error": {
            "message": self.message,
            "type": self.kind,
            "code": self.code,
            "param": null,
        }});
        let mut response = ErrorResponse::new(Some(body.to_string()));
        *response.status_mut() =
            StatusCode::from_u16(self.status).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// Judges an upgrade request. `faults` are the ones chosen before the
/// request was read; the URL may add more.
pub(crate) fn check(
    request: &Request,
    api_key: Option<&Secret>,
    faults: &[Fault],
) -> Result<ConnInfo, Refusal> {
    let path = request.uri().path();
    let mut faults = faults.to_vec();
    let mut endpoint = path.trim_start_matches('/');
    if let Some(rest) = endpoint.strip_prefix("faults/") {
        let (specs, rest) = rest.split_once('/').unwrap_or((rest, ""));
        faults.extend(parse_faults(&percent_decode(specs))?);
        endpoint = rest;
    }
    let query = Query::parse(request.uri().query().unwrap_or_default());
    for specs in query.all("sim_fault") {
        faults.extend(parse_faults(specs)?);
    }
    let (dialect, model_param) = match endpoint {
        "v1/realtime" => {
            let beta = request
                .headers()
                .get_all("openai-beta")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .any(|v| v.contains("realtime=v1"));
            (if beta { Dialect::Beta } else { Dialect::Ga }, "model")
        }
        "openai/v1/realtime" => (Dialect::Ga, "model"),
        "openai/realtime" => (Dialect::Beta, "deployment"),
        _ => {
            return Err(Refusal::new(
                404,
                "invalid_request_error",
                "not_found",
                "Invalid URL: not a Realtime endpoint",
            ))
        }
    };
    if let Some(status) = faults.iter().find_map(|f| match f {
        Fault::Refuse { status } => Some(*status),
        _ => None,
    }) {
        return Err(Refusal::new(
            status,
            "server_error",
            "service_unavailable",
            "The server is overloaded or not ready yet.",
        ));
    }
    if let Some(expected) = api_key {
        check_key(request, expected)?;
    }
    if endpoint == "openai/realtime" && query.first("api-version").is_none() {
        return Err(Refusal::bad_request(
            "missing_required_parameter",
            "Missing required parameter: 'api-version'.",
        ));
    }
    let model = match query.first(model_param) {
        Some(model) if !model.is_empty() => model.to_owned(),
        _ => {
            return Err(Refusal::bad_request(
                "missing_required_parameter",
                format!("Missing required parameter: '{model_param}'."),
            ))
        }
    };
    Ok(ConnInfo {
        dialect,
        model,
        path: path.to_owned(),
        faults,
    })
}

fn check_key(request: &Request, expected: &Secret) -> Result<(), Refusal> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let bearer = header("authorization").and_then(|v| v.strip_prefix("Bearer "));
    let presented = bearer.or_else(|| header("api-key"));
    match presented {
        None => Err(Refusal::new(
            401,
            "invalid_request_error",
            "missing_api_key",
            "You didn't provide an API key. Provide it in an Authorization header using \
             Bearer auth (or, on Azure, in an api-key header).",
        )),
        Some(key) if key.trim() == expected.expose() => Ok(()),
        Some(_) => Err(Refusal::new(
            401,
            "invalid_request_error",
            "invalid_api_key",
            "Incorrect API key provided.",
        )),
    }
}

/// Faults named in the URL; `reset` cannot be, the request is already read.
fn parse_faults(specs: &str) -> Result<Vec<Fault>, Refusal> {
    let faults = Fault::parse_list(specs)
        .map_err(|e| Refusal::bad_request("invalid_value", e.to_string()))?;
    if faults.contains(&Fault::Reset) {
        return Err(Refusal::bad_request(
            "invalid_value",
            "the reset fault cannot be selected from the url",
        ));
    }
    Ok(faults)
}

/// Decoded query pairs, in order.
#[derive(Debug)]
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(query: &str) -> Self {
        let pairs = query
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(key), percent_decode(value))
            })
            .collect();
        Self(pairs)
    }

    fn first<'q>(&'q self, key: &'q str) -> Option<&'q str> {
        self.all(key).next()
    }

    fn all<'q>(&'q self, key: &'q str) -> impl Iterator<Item = &'q str> + 'q {
        self.0
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// `%XX` and `+` decoding; invalid escapes are kept as they are.
fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push((hi * 16 + lo) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests;
