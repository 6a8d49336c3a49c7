//! Connection parameters: provider, endpoint, model and credentials → the
//! WebSocket URL and headers to open, and the dialect to speak. Pure data; the
//! sidecar's client does the I/O. This is the one place Realtime URLs are built.
//!
//! | provider | URL | auth | dialect |
//! |---|---|---|---|
//! | OpenAI | `wss://api.openai.com/v1/realtime?model=M` | `Authorization: Bearer K` | GA |
//! | OpenAI beta | same | same + `OpenAI-Beta: realtime=v1` | beta |
//! | Azure GA | `wss://R.openai.azure.com/openai/v1/realtime?model=D` | `api-key: K` or `Authorization: Bearer <Entra token>` | GA |
//! | Azure preview | `wss://R.openai.azure.com/openai/realtime?api-version=V&deployment=D` | same | beta |
//!
//! The endpoint may be given as `https://…` (as Azure's portal shows it) or
//! `wss://…`, as a bare host (the provider's path is added) or with a path and
//! query of its own (kept: a gateway, or the simulator on `ws://127.0.0.1:PORT`).
//! Parameters it already carries are not added twice; what is added is
//! percent-encoded. Secrets never appear in `Debug` output.

use std::fmt;

use crate::dialect::Dialect;

/// OpenAI's Realtime endpoint (GA and beta).
pub const OPENAI_URL: &str = "wss://api.openai.com/v1/realtime";

/// A secret (API key or token) whose `Debug` prints stars.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl From<String> for Secret {
    fn from(secret: String) -> Self {
        Self(secret)
    }
}

/// How to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Auth {
    /// An API key: `Authorization: Bearer` at OpenAI, `api-key` at Azure.
    ApiKey(Secret),
    /// A bearer token (Azure: a Microsoft Entra token):
    /// `Authorization: Bearer` everywhere.
    BearerToken(Secret),
}

/// Who serves the Realtime API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Provider {
    /// OpenAI, GA protocol.
    OpenAi,
    /// OpenAI, retired beta protocol (`OpenAI-Beta: realtime=v1`).
    OpenAiBeta,
    /// Azure OpenAI on your resource.
    Azure {
        /// `None`: the GA `/openai/v1/realtime` endpoint, unless the endpoint URL
        /// carries an `api-version` itself. `Some` (e.g. `2025-04-01-preview`): the
        /// preview endpoint, beta dialect.
        api_version: Option<String>,
    },
}

/// An endpoint or model no URL can be built from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The endpoint is not a usable `ws`, `wss`, `http` or `https` URL.
    #[error("realtime url {url:?} {reason}")]
    InvalidBaseUrl {
        /// The URL (cut short).
        url: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Model or deployment missing.
    #[error("realtime {0} must not be empty")]
    Missing(&'static str),
}

/// Everything needed to open one Realtime WebSocket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectParams {
    /// The provider.
    pub provider: Provider,
    /// Where the provider is reached: a `ws`, `wss`, `http` or `https` URL (the
    /// HTTP schemes become their WebSocket twins). A bare host gets the
    /// provider's path (`/v1/realtime` at OpenAI, `/openai/v1/realtime` or
    /// `/openai/realtime` at Azure); a path or query given here is kept, so a
    /// gateway or the simulator can sit in front.
    pub endpoint: String,
    /// The model (OpenAI) or deployment (Azure). Added to the URL unless the
    /// endpoint already names one.
    pub model: String,
    /// Credentials; `None` only for a local simulator.
    pub auth: Option<Auth>,
}

/// Request headers; `Debug` hides the secret ones.
#[derive(Clone, PartialEq, Eq)]
pub struct Headers(Vec<(&'static str, String)>);

impl Headers {
    /// `(name, value)` pairs, secrets included, to put on the request.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0.iter().map(|(name, value)| (*name, value.as_str()))
    }

    /// The value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    }

    /// Number of headers.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// No headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.iter().map(|(name, value)| {
                let shown = if is_secret_header(name) {
                    "****"
                } else {
                    value.as_str()
                };
                (name, shown)
            }))
            .finish()
    }
}

fn is_secret_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("authorization") || name.eq_ignore_ascii_case("api-key")
}

impl ConnectParams {
    /// The dialect this provider speaks: Azure's preview endpoint (an
    /// `api-version`, configured or in the endpoint's query) speaks beta.
    pub fn dialect(&self) -> Dialect {
        match &self.provider {
            Provider::OpenAi => Dialect::Ga,
            Provider::OpenAiBeta => Dialect::Beta,
            Provider::Azure { api_version } => {
                let in_url =
                    Endpoint::parse(&self.endpoint).is_ok_and(|e| e.has_param("api-version"));
                if api_version.is_some() || in_url {
                    Dialect::Beta
                } else {
                    Dialect::Ga
                }
            }
        }
    }

    /// The WebSocket URL: the endpoint with a WebSocket scheme, the provider's
    /// path when it has none, and the query parameters it lacks (`model`, or at
    /// Azure's preview endpoint `api-version` and `deployment`), percent-encoded.
    pub fn url(&self) -> Result<String, ConnectionError> {
        let endpoint = Endpoint::parse(&self.endpoint)?;
        let preview = self.dialect() == Dialect::Beta && self.is_azure();
        let default_path = match (&self.provider, preview) {
            (Provider::Azure { .. }, true) => "/openai/realtime",
            (Provider::Azure { .. }, false) => "/openai/v1/realtime",
            _ => "/v1/realtime",
        };
        let mut url = format!("{}://{}", endpoint.scheme, endpoint.authority);
        url.push_str(endpoint.path.unwrap_or(default_path));
        let mut params: Vec<String> = endpoint.query.map(str::to_owned).into_iter().collect();
        if let Provider::Azure {
            api_version: Some(version),
        } = &self.provider
        {
            if !endpoint.has_param("api-version") {
                params.push(format!("api-version={}", encode_query(version)));
            }
        }
        let model_param = if preview { "deployment" } else { "model" };
        // A URL that names its model (or deployment) already keeps it.
        if !endpoint.has_param("model") && !endpoint.has_param("deployment") {
            if self.model.trim().is_empty() {
                return Err(ConnectionError::Missing(if self.is_azure() {
                    "deployment"
                } else {
                    "model"
                }));
            }
            params.push(format!("{model_param}={}", encode_query(&self.model)));
        }
        if !params.is_empty() {
            url.push('?');
            url.push_str(&params.join("&"));
        }
        Ok(url)
    }

    /// Checks the endpoint alone (at start-up, before any model is known).
    pub fn check_endpoint(&self) -> Result<(), ConnectionError> {
        Endpoint::parse(&self.endpoint).map(|_| ())
    }

    /// The host and port the socket goes to (for proxies and TLS), and whether it
    /// is TLS.
    pub fn host_port(&self) -> Result<(String, u16, bool), ConnectionError> {
        let endpoint = Endpoint::parse(&self.endpoint)?;
        let tls = endpoint.scheme == "wss";
        let default_port = if tls { 443 } else { 80 };
        let authority = endpoint.authority;
        // `[v6]:port`, `[v6]`, `host:port`, `host`.
        let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
            let (host, after) = rest.split_once(']').unwrap_or((rest, ""));
            (host, after.strip_prefix(':'))
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port = match port {
            None | Some("") => default_port,
            Some(port) => port.parse().map_err(|_| ConnectionError::InvalidBaseUrl {
                url: shown(&self.endpoint),
                reason: "has a port that is not a number",
            })?,
        };
        Ok((host.to_owned(), port, tls))
    }

    fn is_azure(&self) -> bool {
        matches!(self.provider, Provider::Azure { .. })
    }

    /// The request headers (besides the WebSocket handshake's own).
    pub fn headers(&self) -> Headers {
        let azure = matches!(self.provider, Provider::Azure { .. });
        let mut headers = Vec::with_capacity(2);
        match &self.auth {
            Some(Auth::ApiKey(key)) if azure => {
                headers.push(("api-key", key.expose().to_owned()));
            }
            Some(Auth::ApiKey(token) | Auth::BearerToken(token)) => {
                headers.push(("Authorization", format!("Bearer {}", token.expose())));
            }
            None => {}
        }
        if self.provider == Provider::OpenAiBeta {
            headers.push(("OpenAI-Beta", "realtime=v1".to_owned()));
        }
        Headers(headers)
    }
}

/// An endpoint URL taken apart: WebSocket scheme, authority, optional path and
/// query. Refuses what would be ambiguous or unsafe to send a key to: other
/// schemes, no host, credentials in the URL, fragments, whitespace.
#[derive(Debug)]
struct Endpoint<'a> {
    scheme: &'static str,
    authority: &'a str,
    /// `None` for a bare host (or `/`).
    path: Option<&'a str>,
    query: Option<&'a str>,
}

impl<'a> Endpoint<'a> {
    fn parse(url: &'a str) -> Result<Self, ConnectionError> {
        let url = url.trim();
        let invalid = |reason| ConnectionError::InvalidBaseUrl {
            url: shown(url),
            reason,
        };
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(invalid(
                "must start with ws://, wss://, http:// or https://",
            ));
        };
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "wss" | "https" => "wss",
            "ws" | "http" => "ws",
            _ => {
                return Err(invalid(
                    "must start with ws://, wss://, http:// or https://",
                ))
            }
        };
        if rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("must not contain whitespace"));
        }
        if rest.contains('#') {
            return Err(invalid("must not have a fragment"));
        }
        let (before_query, query) = match rest.split_once('?') {
            Some((before, query)) => (before, Some(query).filter(|q| !q.is_empty())),
            None => (rest, None),
        };
        let (authority, path) = match before_query.find('/') {
            Some(slash) => before_query.split_at(slash),
            None => (before_query, ""),
        };
        if authority.is_empty() {
            return Err(invalid("names no host"));
        }
        if authority.contains('@') {
            return Err(invalid(
                "must not carry credentials (the key goes in a header, never in the url)",
            ));
        }
        let path = path.trim_end_matches('/');
        Ok(Endpoint {
            scheme,
            authority,
            path: (!path.is_empty()).then_some(path),
            query,
        })
    }

    /// True when the query has a parameter `name` (with or without a value).
    fn has_param(&self, name: &str) -> bool {
        self.query.is_some_and(|query| {
            query
                .split('&')
                .any(|pair| pair.split('=').next() == Some(name))
        })
    }
}

/// A URL as an error may show it: cut short, with any `user:password@` starred.
fn shown(url: &str) -> String {
    let url = crate::wire::truncate(url.trim(), 64);
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.into_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://****{}", &rest[at..]),
        None => url.into_owned(),
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
