//! Twilio settings: the REST API's address and credentials, and the sidecars' webhook
//! URLs given to the calls the control plane places.
//!
//! Twilio accounts authenticate REST calls in one of two ways, and both are accepted:
//! the account SID with its auth token, or an API key (`SK…`) with its secret. The
//! account SID is needed either way, since every REST path names the account.

use std::path::PathBuf;

use super::ca::CaBundle;
use super::{error, ConfigError, Secret};

pub const ENV_TWILIO_ACCOUNT_SID: &str = "TWILIO_ACCOUNT_SID";
pub const ENV_TWILIO_AUTH_TOKEN: &str = "TWILIO_AUTH_TOKEN";
/// An API key SID (`SK…`); when set, REST calls authenticate as the key, not the account.
pub const ENV_TWILIO_API_KEY: &str = "TWILIO_API_KEY";
/// The secret of [`ENV_TWILIO_API_KEY`], shown once when the key is created.
pub const ENV_TWILIO_API_SECRET: &str = "TWILIO_API_SECRET";
pub const ENV_TWILIO_API_URL: &str = "SWITCHBOARD_TWILIO_API_URL";
pub const DEFAULT_TWILIO_API_URL: &str = "https://api.twilio.com";
/// A PEM file of extra CAs trusted towards the Twilio API (a TLS-inspecting proxy).
pub const ENV_TWILIO_CA_FILE: &str = "SWITCHBOARD_TWILIO_CA_FILE";
/// The media sidecar's voice webhook as Twilio reaches it (`https://…/api/twilio/voice`):
/// the `Url` of calls the control plane places. Unset: no calls are placed.
pub const ENV_VOICE_WEBHOOK_URL: &str = "SWITCHBOARD_VOICE_WEBHOOK_URL";
/// The media sidecar's call-status webhook, the `StatusCallback` of placed calls.
/// Default: the voice webhook URL with its last path segment `voice` replaced by `status`.
pub const ENV_STATUS_WEBHOOK_URL: &str = "SWITCHBOARD_STATUS_WEBHOOK_URL";
/// The account's outbound calls per second (Twilio's CPS limit, 1 unless raised). It
/// bounds every campaign's pace: a campaign asking for more is refused.
pub const ENV_TWILIO_MAX_CPS: &str = "SWITCHBOARD_TWILIO_MAX_CPS";
pub const DEFAULT_TWILIO_MAX_CPS: usize = 1;

/// Credentials and address of Twilio's REST API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TwilioConfig {
    pub account_sid: Option<String>,
    pub auth_token: Option<Secret>,
    /// [`ENV_TWILIO_API_KEY`] and [`ENV_TWILIO_API_SECRET`], set together or not at all.
    pub api_key: Option<ApiKey>,
    pub api_url: String,
    /// [`ENV_TWILIO_CA_FILE`].
    pub ca: Option<CaBundle>,
    /// [`ENV_TWILIO_MAX_CPS`].
    pub max_cps: usize,
}

/// An API key: its SID (not secret, it names the key) and its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub sid: String,
    pub secret: Secret,
}

/// Who REST requests authenticate as: the Basic auth user and password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestCredentials {
    /// The account SID, for the request paths.
    pub account_sid: String,
    /// The API key SID when a key is configured, else the account SID.
    pub user: String,
    pub password: Secret,
}

/// Where Twilio reaches the media sidecars, for the calls the control plane places.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookConfig {
    /// [`ENV_VOICE_WEBHOOK_URL`]; `None` when calls cannot be placed.
    pub voice_url: Option<reqwest::Url>,
    /// [`ENV_STATUS_WEBHOOK_URL`], or derived from the voice URL; set whenever `voice_url` is.
    pub status_url: Option<reqwest::Url>,
}

// === impl TwilioConfig ===

impl TwilioConfig {
    /// Reads and checks the Twilio variables through `get` (which drops blank values).
    pub(super) fn parse(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let api_url = get(ENV_TWILIO_API_URL).unwrap_or_else(|| DEFAULT_TWILIO_API_URL.into());
        let parsed = reqwest::Url::parse(&api_url)
            .map_err(|e| error(ENV_TWILIO_API_URL, format!("{api_url:?} is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(error(ENV_TWILIO_API_URL, "must be an http(s) URL"));
        }
        let account_sid = get(ENV_TWILIO_ACCOUNT_SID);
        if let Some(sid) = &account_sid {
            if !is_sid(sid, "AC") {
                return Err(error(
                    ENV_TWILIO_ACCOUNT_SID,
                    "must be an account SID: AC followed by 32 hex digits",
                ));
            }
        }
        let auth_token = get(ENV_TWILIO_AUTH_TOKEN);
        if auth_token.as_deref().is_some_and(has_whitespace) {
            return Err(error(ENV_TWILIO_AUTH_TOKEN, "must contain no whitespace"));
        }
        let api_key = parse_api_key(
            get(ENV_TWILIO_API_KEY),
            get(ENV_TWILIO_API_SECRET),
            account_sid.is_some(),
        )?;
        let ca = get(ENV_TWILIO_CA_FILE)
            .map(|path| CaBundle::load(ENV_TWILIO_CA_FILE, &PathBuf::from(path)))
            .transpose()?;
        let max_cps = super::positive(
            ENV_TWILIO_MAX_CPS,
            get(ENV_TWILIO_MAX_CPS),
            DEFAULT_TWILIO_MAX_CPS,
        )?;
        Ok(TwilioConfig {
            max_cps,
            account_sid,
            auth_token: auth_token.map(Secret::new),
            api_key,
            api_url: api_url.trim_end_matches('/').to_owned(),
            ca,
        })
    }

    /// The credentials REST calls use: the API key when one is set, else the auth
    /// token. `None` when neither is complete.
    pub fn rest_credentials(&self) -> Option<RestCredentials> {
        let account_sid = self.account_sid.clone()?;
        let (user, password) = match (&self.api_key, &self.auth_token) {
            (Some(key), _) => (key.sid.clone(), key.secret.clone()),
            (None, Some(token)) => (account_sid.clone(), token.clone()),
            (None, None) => return None,
        };
        Some(RestCredentials {
            account_sid,
            user,
            password,
        })
    }
}

fn parse_api_key(
    sid: Option<String>,
    secret: Option<String>,
    has_account: bool,
) -> Result<Option<ApiKey>, ConfigError> {
    let (sid, secret) = match (sid, secret) {
        (None, None) => return Ok(None),
        (Some(_), None) => {
            return Err(error(
                ENV_TWILIO_API_SECRET,
                format!("must be set when {ENV_TWILIO_API_KEY} is"),
            ))
        }
        (None, Some(_)) => {
            return Err(error(
                ENV_TWILIO_API_KEY,
                format!("must be set when {ENV_TWILIO_API_SECRET} is"),
            ))
        }
        (Some(sid), Some(secret)) => (sid, secret),
    };
    if !is_sid(&sid, "SK") {
        let hint = if sid.starts_with("AC") {
            ": this is an account SID, which belongs in TWILIO_ACCOUNT_SID"
        } else {
            ""
        };
        return Err(error(
            ENV_TWILIO_API_KEY,
            format!("must be an API key SID: SK followed by 32 hex digits{hint}"),
        ));
    }
    if has_whitespace(&secret) {
        return Err(error(ENV_TWILIO_API_SECRET, "must contain no whitespace"));
    }
    if !has_account {
        return Err(error(
            ENV_TWILIO_ACCOUNT_SID,
            format!("must be set when {ENV_TWILIO_API_KEY} is: REST paths name the account"),
        ));
    }
    Ok(Some(ApiKey {
        sid,
        secret: Secret::new(secret),
    }))
}

/// `prefix` followed by 32 hex digits, as Twilio writes SIDs.
fn is_sid(value: &str, prefix: &str) -> bool {
    value
        .strip_prefix(prefix)
        .is_some_and(|hex| hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

fn has_whitespace(value: &str) -> bool {
    value.chars().any(|c| c.is_whitespace() || c.is_control())
}

// === impl WebhookConfig ===

impl WebhookConfig {
    pub(super) fn parse(voice: Option<&str>, status: Option<&str>) -> Result<Self, ConfigError> {
        let url = |variable, value: &str| {
            let url = reqwest::Url::parse(value)
                .map_err(|e| error(variable, format!("{value:?} is not a URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
                return Err(error(variable, "must be an http(s) URL"));
            }
            Ok(url)
        };
        let Some(voice) = voice else {
            if status.is_some() {
                return Err(error(
                    ENV_STATUS_WEBHOOK_URL,
                    format!("is set but {ENV_VOICE_WEBHOOK_URL} is not; set both or neither"),
                ));
            }
            return Ok(WebhookConfig::default());
        };
        let voice = url(ENV_VOICE_WEBHOOK_URL, voice)?;
        let status = match status {
            Some(status) => url(ENV_STATUS_WEBHOOK_URL, status)?,
            None => derive_status_url(&voice).ok_or_else(|| {
                error(
                    ENV_STATUS_WEBHOOK_URL,
                    format!("must be set when {ENV_VOICE_WEBHOOK_URL} does not end in /voice"),
                )
            })?,
        };
        Ok(WebhookConfig {
            voice_url: Some(voice),
            status_url: Some(status),
        })
    }
}

/// `…/api/twilio/voice?x` → `…/api/twilio/status?x`: the sidecar serves both side by side.
fn derive_status_url(voice: &reqwest::Url) -> Option<reqwest::Url> {
    let path = voice.path().strip_suffix("/voice")?;
    let mut status = voice.clone();
    status.set_path(&format!("{path}/status"));
    Some(status)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";
    const KEY: &str = "SK0123456789abcdef0123456789abcdef";

    fn twilio(vars: &[(&str, &str)]) -> Result<TwilioConfig, ConfigError> {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        TwilioConfig::parse(|name| map.get(name).map(|v| (*v).to_owned()))
    }

    #[test]
    fn an_api_key_is_the_basic_auth_user_and_the_account_names_the_paths() {
        let c = twilio(&[
            (ENV_TWILIO_ACCOUNT_SID, ACCOUNT),
            (ENV_TWILIO_AUTH_TOKEN, "token-for-signatures"),
            (ENV_TWILIO_API_KEY, KEY),
            (ENV_TWILIO_API_SECRET, "key-secret"),
        ])
        .unwrap();
        let credentials = c.rest_credentials().unwrap();
        assert_eq!(credentials.account_sid, ACCOUNT);
        assert_eq!(credentials.user, KEY);
        assert_eq!(credentials.password.expose(), "key-secret");
        let text = format!("{c:?}");
        assert!(!text.contains("key-secret") && !text.contains("token-for-signatures"));
    }

    #[test]
    fn the_account_cps_defaults_to_one_and_must_be_a_positive_whole_number() {
        assert_eq!(twilio(&[]).unwrap().max_cps, DEFAULT_TWILIO_MAX_CPS);
        assert_eq!(twilio(&[(ENV_TWILIO_MAX_CPS, "25")]).unwrap().max_cps, 25);
        for bad in ["0", "-1", "1.5", "many"] {
            let err = twilio(&[(ENV_TWILIO_MAX_CPS, bad)]).unwrap_err();
            assert_eq!(err.variable, ENV_TWILIO_MAX_CPS, "{bad}");
        }
    }

    #[test]
    fn without_a_key_the_account_and_its_token_authenticate() {
        let c = twilio(&[
            (ENV_TWILIO_ACCOUNT_SID, ACCOUNT),
            (ENV_TWILIO_AUTH_TOKEN, "auth-token"),
        ])
        .unwrap();
        let credentials = c.rest_credentials().unwrap();
        assert_eq!(credentials.user, ACCOUNT);
        assert_eq!(credentials.password.expose(), "auth-token");
        assert_eq!(
            twilio(&[(ENV_TWILIO_ACCOUNT_SID, ACCOUNT)])
                .unwrap()
                .rest_credentials(),
            None
        );
    }

    #[test]
    fn incomplete_or_misshapen_keys_name_the_variable_to_fix() {
        for (vars, variable) in [
            (vec![(ENV_TWILIO_API_KEY, KEY)], ENV_TWILIO_API_SECRET),
            (vec![(ENV_TWILIO_API_SECRET, "s")], ENV_TWILIO_API_KEY),
            (
                vec![(ENV_TWILIO_API_KEY, ACCOUNT), (ENV_TWILIO_API_SECRET, "s")],
                ENV_TWILIO_API_KEY,
            ),
            (
                vec![(ENV_TWILIO_API_KEY, "SK123"), (ENV_TWILIO_API_SECRET, "s")],
                ENV_TWILIO_API_KEY,
            ),
            (
                vec![(ENV_TWILIO_API_KEY, KEY), (ENV_TWILIO_API_SECRET, "s")],
                ENV_TWILIO_ACCOUNT_SID,
            ),
            (
                vec![
                    (ENV_TWILIO_ACCOUNT_SID, ACCOUNT),
                    (ENV_TWILIO_API_KEY, KEY),
                    (ENV_TWILIO_API_SECRET, "has space"),
                ],
                ENV_TWILIO_API_SECRET,
            ),
            (
                vec![(ENV_TWILIO_ACCOUNT_SID, "AC0123")],
                ENV_TWILIO_ACCOUNT_SID,
            ),
            (
                vec![(ENV_TWILIO_CA_FILE, "/nonexistent/ca.pem")],
                ENV_TWILIO_CA_FILE,
            ),
        ] {
            let err = twilio(&vars).unwrap_err();
            assert_eq!(err.variable, variable, "{vars:?}: {err}");
            assert!(!err.to_string().contains("has space"), "{err}");
        }
    }
}
