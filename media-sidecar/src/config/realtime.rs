//! The Realtime settings: where OpenAI and Azure OpenAI are reached, with which
//! credentials, which certificate authorities are trusted for them, and which proxy
//! the sockets go through. The variables are declared in `config.rs`; this module
//! parses and checks them.
//!
//! Every endpoint is checked at start-up with the same URL builder the calls use
//! ([`ConnectParams`]), so a URL no call could open stops the process (exit 64)
//! instead of failing every call.

use std::path::PathBuf;

use rustls::pki_types::CertificateDer;
use switchboard_realtime::{ConnectParams, Provider};

use super::{
    error, single_word, ConfigError, Secret, DEFAULT_OPENAI_MODEL, DEFAULT_OPENAI_URL,
    ENV_AZURE_OPENAI_AD_TOKEN, ENV_AZURE_OPENAI_API_KEY, ENV_AZURE_OPENAI_API_VERSION,
    ENV_AZURE_OPENAI_DEPLOYMENT, ENV_AZURE_OPENAI_ENDPOINT, ENV_AZURE_OPENAI_TOKEN_FILE,
    ENV_HTTPS_PROXY, ENV_HTTP_PROXY, ENV_NO_PROXY, ENV_OPENAI_API_KEY, ENV_OPENAI_CA_FILE,
    ENV_OPENAI_DIALECT, ENV_OPENAI_MODEL, ENV_OPENAI_URL,
};
use crate::proxy::{NoProxy, ProxyUrl};

/// How to reach the Realtime API: OpenAI always, Azure OpenAI when configured. Each
/// call uses the provider its agent names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAiConfig {
    /// OpenAI's endpoint (or a gateway or simulator standing in for it).
    pub url: String,
    /// `None` only makes sense against a local simulator.
    pub api_key: Option<Secret>,
    /// The model when the agent names none.
    pub default_model: String,
    /// Azure OpenAI, for agents whose provider is `AZURE_OPENAI`.
    pub azure: Option<AzureConfig>,
    /// Extra certificate authorities trusted for the Realtime sockets (besides the
    /// public roots and the platform's store).
    pub extra_ca: Option<CaBundle>,
    /// The proxies the Realtime sockets go through.
    pub proxy: ProxyConfig,
}

/// An Azure OpenAI resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AzureConfig {
    /// `https://<resource>.openai.azure.com` or a full realtime URL.
    pub endpoint: String,
    /// `None`: the GA `/openai/v1` endpoint (unless the URL carries `api-version`).
    pub api_version: Option<String>,
    /// The deployment when the agent names none.
    pub default_deployment: String,
    /// `None` only makes sense against a local simulator.
    pub auth: Option<AzureAuth>,
}

/// How calls authenticate to Azure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AzureAuth {
    /// The resource's key (`api-key` header).
    ApiKey(Secret),
    /// A Microsoft Entra ID access token (`Authorization: Bearer`), fixed.
    Token(Secret),
    /// A file holding a Microsoft Entra ID access token, read again for every call, so
    /// whatever refreshes it (a sidecar container, a cron job) is picked up.
    TokenFile(PathBuf),
}

/// PEM certificates from a file, checked at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaBundle {
    /// The file.
    pub path: PathBuf,
    /// Its certificates (at least one).
    pub certs: Vec<CertificateDer<'static>>,
}

/// `HTTPS_PROXY`, `HTTP_PROXY` and `NO_PROXY`, as curl reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyConfig {
    /// For `wss://` endpoints.
    pub https: Option<ProxyUrl>,
    /// For `ws://` endpoints.
    pub http: Option<ProxyUrl>,
    /// Hosts reached directly.
    pub no_proxy: NoProxy,
}

// === impl OpenAiConfig ===

impl OpenAiConfig {
    pub(super) fn parse(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        if let Some(dialect) = get(ENV_OPENAI_DIALECT) {
            return Err(error(
                ENV_OPENAI_DIALECT,
                format!(
                    "is no longer read (it is {dialect:?}): each agent's provider (OPENAI, \
                     OPENAI_BETA or AZURE_OPENAI) chooses the API and its dialect; for Azure \
                     set {ENV_AZURE_OPENAI_ENDPOINT}. Remove the variable"
                ),
            ));
        }
        let default_model = single_word(
            ENV_OPENAI_MODEL,
            get(ENV_OPENAI_MODEL).unwrap_or_else(|| DEFAULT_OPENAI_MODEL.into()),
        )?;
        let url = get(ENV_OPENAI_URL).unwrap_or_else(|| DEFAULT_OPENAI_URL.into());
        let url = check_endpoint(ENV_OPENAI_URL, Provider::OpenAi, url, &default_model)?;
        Ok(OpenAiConfig {
            url,
            api_key: get(ENV_OPENAI_API_KEY).map(Secret::new),
            azure: AzureConfig::parse(get, &default_model)?,
            default_model,
            extra_ca: get(ENV_OPENAI_CA_FILE)
                .map(|path| CaBundle::read(ENV_OPENAI_CA_FILE, path))
                .transpose()?,
            proxy: ProxyConfig::parse(get)?,
        })
    }
}

// === impl AzureConfig ===

impl AzureConfig {
    fn parse(
        get: &impl Fn(&str) -> Option<String>,
        default_model: &str,
    ) -> Result<Option<Self>, ConfigError> {
        let settings = [
            ENV_AZURE_OPENAI_API_KEY,
            ENV_AZURE_OPENAI_AD_TOKEN,
            ENV_AZURE_OPENAI_TOKEN_FILE,
            ENV_AZURE_OPENAI_API_VERSION,
            ENV_AZURE_OPENAI_DEPLOYMENT,
        ];
        let Some(endpoint) = get(ENV_AZURE_OPENAI_ENDPOINT) else {
            if let Some(orphan) = settings.into_iter().find(|name| get(name).is_some()) {
                return Err(error(
                    orphan,
                    format!("is set but {ENV_AZURE_OPENAI_ENDPOINT} is not"),
                ));
            }
            return Ok(None);
        };
        let api_version = get(ENV_AZURE_OPENAI_API_VERSION)
            .map(|v| single_word(ENV_AZURE_OPENAI_API_VERSION, v))
            .transpose()?;
        let default_deployment = match get(ENV_AZURE_OPENAI_DEPLOYMENT) {
            Some(deployment) => single_word(ENV_AZURE_OPENAI_DEPLOYMENT, deployment)?,
            None => default_model.to_owned(),
        };
        let provider = Provider::Azure {
            api_version: api_version.clone(),
        };
        let endpoint = check_endpoint(
            ENV_AZURE_OPENAI_ENDPOINT,
            provider,
            endpoint,
            &default_deployment,
        )?;
        let mut auth = Vec::new();
        if let Some(key) = get(ENV_AZURE_OPENAI_API_KEY) {
            auth.push((
                ENV_AZURE_OPENAI_API_KEY,
                AzureAuth::ApiKey(Secret::new(key)),
            ));
        }
        if let Some(token) = get(ENV_AZURE_OPENAI_AD_TOKEN) {
            auth.push((
                ENV_AZURE_OPENAI_AD_TOKEN,
                AzureAuth::Token(Secret::new(token)),
            ));
        }
        if let Some(path) = get(ENV_AZURE_OPENAI_TOKEN_FILE) {
            let path = PathBuf::from(path.trim());
            if let Err(e) = std::fs::metadata(&path) {
                return Err(error(
                    ENV_AZURE_OPENAI_TOKEN_FILE,
                    format!("cannot read {}: {e}", path.display()),
                ));
            }
            auth.push((ENV_AZURE_OPENAI_TOKEN_FILE, AzureAuth::TokenFile(path)));
        }
        if auth.len() > 1 {
            return Err(error(
                auth[1].0,
                format!(
                    "set only one of {ENV_AZURE_OPENAI_API_KEY}, {ENV_AZURE_OPENAI_AD_TOKEN} \
                     and {ENV_AZURE_OPENAI_TOKEN_FILE}"
                ),
            ));
        }
        Ok(Some(AzureConfig {
            endpoint,
            api_version,
            default_deployment,
            auth: auth.pop().map(|(_, auth)| auth),
        }))
    }
}

// === impl CaBundle ===

impl CaBundle {
    /// Reads and checks the PEM file `path` names.
    pub(super) fn read(variable: &'static str, path: String) -> Result<Self, ConfigError> {
        let path = PathBuf::from(path.trim());
        let certs = super::parse::read_ca_file(variable, &path)?;
        Ok(CaBundle { path, certs })
    }
}

// === impl ProxyConfig ===

impl ProxyConfig {
    /// Reads the upper-case variables, then the lower-case ones curl also accepts.
    fn parse(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let either = |name: &'static str| get(name).or_else(|| get(&name.to_ascii_lowercase()));
        let proxy = |name: &'static str| {
            either(name)
                .map(|value| ProxyUrl::parse(&value).map_err(|reason| error(name, reason)))
                .transpose()
        };
        Ok(ProxyConfig {
            https: proxy(ENV_HTTPS_PROXY)?,
            http: proxy(ENV_HTTP_PROXY)?,
            no_proxy: NoProxy::parse(&either(ENV_NO_PROXY).unwrap_or_default()),
        })
    }

    /// The proxy for a socket to `host`, if any.
    pub fn for_host(&self, host: &str, tls: bool) -> Option<&ProxyUrl> {
        let proxy = if tls { &self.https } else { &self.http };
        proxy.as_ref().filter(|_| !self.no_proxy.matches(host))
    }
}

/// Builds a URL from `endpoint` as a call would, so a bad one stops start-up.
fn check_endpoint(
    variable: &'static str,
    provider: Provider,
    endpoint: String,
    model: &str,
) -> Result<String, ConfigError> {
    let endpoint = endpoint.trim().to_owned();
    let params = ConnectParams {
        provider,
        endpoint,
        model: model.to_owned(),
        auth: None,
    };
    params.url().map_err(|e| error(variable, e.to_string()))?;
    Ok(params.endpoint)
}
