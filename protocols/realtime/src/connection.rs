//! Connection parameters: provider, model and key → the WebSocket URL and
//! headers to open, and the dialect to speak (PROTOCOLS §3.1 and §5). Pure
//! data; the sidecar's client does the I/O.
//!
//! | provider | URL | auth | dialect |
//! |---|---|---|---|
//! | OpenAI | `wss://api.openai.com/v1/realtime?model=M` | `Authorization: Bearer K` | GA |
//! | OpenAI beta | same | same + `OpenAI-Beta: realtime=v1` | beta |
//! | Azure GA | `wss://R.openai.azure.com/openai/v1/realtime?model=D` | `api-key: K` | GA |
//! | Azure preview | `wss://R.openai.azure.com/openai/realtime?api-version=V&deployment=D` | `api-key: K` | beta |
//!
//! A base-URL override (e.g. `ws://127.0.0.1:PORT` for the simulator)
//! replaces scheme and host; the path and query stay. Secrets never appear
//! in `Debug` output.

use std::fmt;

use crate::dialect::Dialect;

/// The OpenAI endpoint (GA and beta).
pub const OPENAI_BASE_URL: &str = "wss://api.openai.com";

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
        /// `https://<resource>.openai.azure.com` (or `wss://…`).
        endpoint: String,
        /// The deployment name (Azure's "model").
        deployment: String,
        /// `None`: the GA `/openai/v1/realtime` endpoint. `Some` (e.g.
        /// `2025-04-01-preview`): the preview endpoint, beta dialect.
        api_version: Option<String>,
    },
}

/// A base URL or endpoint that is not `ws`, `wss`, `http` or `https`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The URL has no supported scheme.
    #[error("realtime url {url:?} must start with ws://, wss://, http:// or https://")]
    InvalidBaseUrl {
        /// The URL (cut short).
        url: String,
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
    /// The model (OpenAI); ignored for Azure, which uses the deployment.
    pub model: String,
    /// Credentials.
    pub auth: Auth,
    /// Replaces scheme and host of the URL (the simulator's
    /// `ws://127.0.0.1:PORT`).
    pub base_url: Option<String>,
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
    /// The dialect this provider speaks.
    pub fn dialect(&self) -> Dialect {
        match &self.provider {
            Provider::OpenAi => Dialect::Ga,
            Provider::OpenAiBeta => Dialect::Beta,
            Provider::Azure { api_version, .. } => match api_version {
                None => Dialect::Ga,
                Some(_) => Dialect::Beta,
            },
        }
    }

    /// The WebSocket URL.
    pub fn url(&self) -> Result<String, ConnectionError> {
        let (host, path_and_query) = match &self.provider {
            Provider::OpenAi | Provider::OpenAiBeta => {
                if self.model.is_empty() {
                    return Err(ConnectionError::Missing("model"));
                }
                (
                    OPENAI_BASE_URL,
                    format!("/v1/realtime?model={}", encode_query(&self.model)),
                )
            }
            Provider::Azure {
                endpoint,
                deployment,
                api_version,
            } => {
                if deployment.is_empty() {
                    return Err(ConnectionError::Missing("deployment"));
                }
                let deployment = encode_query(deployment);
                let path = match api_version {
                    None => format!("/openai/v1/realtime?model={deployment}"),
                    Some(version) => format!(
                        "/openai/realtime?api-version={}&deployment={deployment}",
                        encode_query(version)
                    ),
                };
                (endpoint.as_str(), path)
            }
        };
        let base = websocket_base(self.base_url.as_deref().unwrap_or(host))?;
        Ok(format!("{base}{path_and_query}"))
    }

    /// The request headers (besides the WebSocket handshake's own).
    pub fn headers(&self) -> Headers {
        let azure = matches!(self.provider, Provider::Azure { .. });
        let mut headers = Vec::with_capacity(2);
        match &self.auth {
            Auth::ApiKey(key) if azure => headers.push(("api-key", key.expose().to_owned())),
            Auth::ApiKey(token) | Auth::BearerToken(token) => {
                headers.push(("Authorization", format!("Bearer {}", token.expose())));
            }
        }
        if self.provider == Provider::OpenAiBeta {
            headers.push(("OpenAI-Beta", "realtime=v1".to_owned()));
        }
        Headers(headers)
    }
}

/// `scheme://host[:port][/prefix]` with a WebSocket scheme and no trailing
/// slash.
fn websocket_base(url: &str) -> Result<String, ConnectionError> {
    let url = url.trim().trim_end_matches('/');
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "wss" | "https" => "wss",
        "ws" | "http" => "ws",
        _ => {
            return Err(ConnectionError::InvalidBaseUrl {
                url: crate::wire::truncate(url, 64).into_owned(),
            })
        }
    };
    if rest.is_empty() {
        return Err(ConnectionError::InvalidBaseUrl {
            url: url.to_owned(),
        });
    }
    Ok(format!("{scheme}://{rest}"))
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
mod tests {
    use super::*;

    fn params(provider: Provider) -> ConnectParams {
        ConnectParams {
            provider,
            model: "gpt-realtime".into(),
            auth: Auth::ApiKey(Secret::new("sk-test-123")),
            base_url: None,
        }
    }

    fn azure(api_version: Option<&str>) -> Provider {
        Provider::Azure {
            endpoint: "https://contoso.openai.azure.com/".into(),
            deployment: "my realtime".into(),
            api_version: api_version.map(str::to_owned),
        }
    }

    #[test]
    fn openai_ga_and_beta() {
        let ga = params(Provider::OpenAi);
        assert_eq!(
            ga.url().as_deref(),
            Ok("wss://api.openai.com/v1/realtime?model=gpt-realtime")
        );
        assert_eq!(
            ga.headers().get("authorization"),
            Some("Bearer sk-test-123")
        );
        assert_eq!(ga.headers().len(), 1);
        assert_eq!(ga.dialect(), Dialect::Ga);
        let beta = params(Provider::OpenAiBeta);
        assert_eq!(beta.url(), ga.url());
        assert_eq!(beta.headers().get("OpenAI-Beta"), Some("realtime=v1"));
        assert_eq!(beta.dialect(), Dialect::Beta);
    }

    #[test]
    fn azure_ga_and_preview() {
        let ga = params(azure(None));
        assert_eq!(
            ga.url().as_deref(),
            Ok("wss://contoso.openai.azure.com/openai/v1/realtime?model=my%20realtime")
        );
        assert_eq!(ga.headers().get("api-key"), Some("sk-test-123"));
        assert_eq!(ga.headers().get("authorization"), None);
        assert_eq!(ga.dialect(), Dialect::Ga);
        let preview = params(azure(Some("2025-04-01-preview")));
        assert_eq!(
            preview.url().as_deref(),
            Ok("wss://contoso.openai.azure.com/openai/realtime?api-version=2025-04-01-preview&deployment=my%20realtime")
        );
        assert_eq!(preview.dialect(), Dialect::Beta);
        assert_eq!(preview.headers().get("OpenAI-Beta"), None);
        let entra = ConnectParams {
            auth: Auth::BearerToken(Secret::new("eyJ0")),
            ..preview
        };
        assert_eq!(entra.headers().get("Authorization"), Some("Bearer eyJ0"));
    }

    #[test]
    fn base_url_override_for_the_simulator() {
        let sim = ConnectParams {
            base_url: Some("http://127.0.0.1:4010/".into()),
            ..params(Provider::OpenAi)
        };
        assert_eq!(
            sim.url().as_deref(),
            Ok("ws://127.0.0.1:4010/v1/realtime?model=gpt-realtime")
        );
        let bad = ConnectParams {
            base_url: Some("127.0.0.1:4010".into()),
            ..params(Provider::OpenAi)
        };
        assert!(matches!(
            bad.url(),
            Err(ConnectionError::InvalidBaseUrl { .. })
        ));
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        for provider in [Provider::OpenAi, Provider::OpenAiBeta, azure(None)] {
            let p = params(provider);
            let shown = format!("{p:?} {:?}", p.headers());
            assert!(!shown.contains("sk-test-123"), "{shown}");
            assert!(shown.contains("****"), "{shown}");
        }
    }
}
