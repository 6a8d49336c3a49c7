//! Settings that are valid but probably wrong: the control plane starts, and says so at
//! `warn` once, before it serves.
//!
//! Most are about the webhook URLs given to the calls it places. Twilio fetches them
//! from the internet, so on the real API a URL Twilio cannot reach (loopback, a private
//! address, a cluster-internal name) or that is not the sidecar's voice route makes
//! every placed call fail only once it is answered — long after start-up.

use std::net::IpAddr;

use super::twilio::{
    DEFAULT_TWILIO_API_URL, ENV_STATUS_WEBHOOK_URL, ENV_TWILIO_ACCOUNT_SID, ENV_TWILIO_API_KEY,
    ENV_TWILIO_API_URL, ENV_TWILIO_AUTH_TOKEN, ENV_VOICE_WEBHOOK_URL,
};
use super::{Config, ENV_API_TOKEN, ENV_TLS_CERT, ENV_TLS_KEY, ENV_TOOL_SIGNING_SECRET};

/// The media sidecar's voice route, the path the voice webhook URL should end with.
pub const SIDECAR_VOICE_PATH: &str = "/api/twilio/voice";
/// The media sidecar's call-status route.
pub const SIDECAR_STATUS_PATH: &str = "/api/twilio/status";

impl Config {
    /// Warnings about settings that are allowed but probably a mistake, one sentence
    /// each naming the variable; empty when nothing looks wrong.
    pub fn startup_warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.api_token.is_some() && self.tls.is_none() && !self.grpc_addr.ip().is_loopback() {
            warnings.push(format!(
                "{ENV_API_TOKEN} is set but gRPC is served in plaintext on {}: the token \
                 crosses the network in clear unless a service mesh encrypts it; set \
                 {ENV_TLS_CERT} and {ENV_TLS_KEY}",
                self.grpc_addr
            ));
        }
        let twilio = &self.twilio;
        let real_twilio = twilio.api_url == DEFAULT_TWILIO_API_URL;
        let has_credentials = twilio.rest_credentials().is_some();
        if !has_credentials {
            let missing = if twilio.account_sid.is_none() {
                ENV_TWILIO_ACCOUNT_SID.to_owned()
            } else {
                format!("{ENV_TWILIO_AUTH_TOKEN} (or {ENV_TWILIO_API_KEY})")
            };
            let consequence = if self.webhooks.voice_url.is_some() {
                format!("calls cannot be placed although {ENV_VOICE_WEBHOOK_URL} is set, and ")
            } else {
                String::new()
            };
            warnings.push(format!(
                "{missing} is not set: {consequence}live calls cannot be redirected to \
                 fallbacks or transfers"
            ));
        } else if self.webhooks.voice_url.is_none() {
            warnings.push(format!(
                "{ENV_VOICE_WEBHOOK_URL} is not set: Twilio credentials are configured but \
                 outbound calls cannot be placed"
            ));
        }
        if let Ok(api) = reqwest::Url::parse(&twilio.api_url) {
            if api.scheme() == "http" && !host_is_local(&api) {
                warnings.push(format!(
                    "{ENV_TWILIO_API_URL} is http://: Twilio credentials cross the network \
                     unencrypted"
                ));
            }
        }
        let urls = [
            (
                ENV_VOICE_WEBHOOK_URL,
                &self.webhooks.voice_url,
                SIDECAR_VOICE_PATH,
            ),
            (
                ENV_STATUS_WEBHOOK_URL,
                &self.webhooks.status_url,
                SIDECAR_STATUS_PATH,
            ),
        ];
        for (variable, url, sidecar_path) in urls {
            let Some(url) = url else { continue };
            warnings.extend(webhook_warnings(variable, url, sidecar_path, real_twilio));
        }
        if self.tool_signing_secret.is_none() {
            warnings.push(format!(
                "{ENV_TOOL_SIGNING_SECRET} is not set: tool webhooks cannot tell our requests \
                 from anyone else's"
            ));
        }
        warnings
    }
}

/// What is wrong with `url` as the public URL of a sidecar route.
fn webhook_warnings(
    variable: &str,
    url: &reqwest::Url,
    sidecar_path: &str,
    real_twilio: bool,
) -> Vec<String> {
    let mut warnings = Vec::new();
    if url.scheme() == "http" {
        warnings.push(format!(
            "{variable} is http://: Twilio's requests and the media stream would travel \
             unencrypted; give the sidecar's public https:// URL"
        ));
    }
    if real_twilio && !host_is_public(url) {
        warnings.push(format!(
            "{variable} names {}, which Twilio cannot reach from the internet; give the \
             sidecar's public host",
            url.host_str().unwrap_or("no host")
        ));
    }
    if !url.path().ends_with(sidecar_path) {
        warnings.push(format!(
            "{variable} has path {}, not the sidecar's {sidecar_path}; Twilio would fetch a \
             route the sidecar does not serve (unless a proxy rewrites it)",
            url.path()
        ));
    }
    warnings
}

/// The host of `url`: an IP address, or a name (lowercase, without a trailing dot).
enum Host {
    Ip(IpAddr),
    Name(String),
}

fn host(url: &reqwest::Url) -> Option<Host> {
    let text = url.host_str()?;
    let bare = text.trim_start_matches('[').trim_end_matches(']');
    Some(match bare.parse::<IpAddr>() {
        Ok(ip) => Host::Ip(ip),
        Err(_) => Host::Name(bare.trim_end_matches('.').to_ascii_lowercase()),
    })
}

/// Loopback or unspecified: only this machine.
fn host_is_local(url: &reqwest::Url) -> bool {
    match host(url) {
        Some(Host::Ip(ip)) => ip.is_loopback() || ip.is_unspecified(),
        Some(Host::Name(name)) => name == "localhost",
        None => true,
    }
}

/// Whether the host looks reachable from the internet. A guess from the name alone (no
/// DNS lookup at start-up): private and link-local addresses, single-label names
/// (`media-sidecar`, a Kubernetes service) and the usual internal suffixes are not.
fn host_is_public(url: &reqwest::Url) -> bool {
    const INTERNAL_SUFFIXES: [&str; 5] = [".local", ".internal", ".localhost", ".svc", ".lan"];
    if host_is_local(url) {
        return false;
    }
    match host(url) {
        Some(Host::Ip(ip)) => !is_private(ip),
        Some(Host::Name(name)) => {
            name.contains('.')
                && !INTERNAL_SUFFIXES
                    .iter()
                    .any(|suffix| name.ends_with(suffix))
                && !name.ends_with(".cluster.local")
        }
        None => false,
    }
}

/// RFC 1918, link-local and carrier-grade NAT for IPv4; unique-local and link-local
/// for IPv6.
fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            let shared = a == 100 && (64..128).contains(&b);
            ip.is_private() || ip.is_link_local() || shared
        }
        IpAddr::V6(ip) => {
            let first = ip.segments()[0];
            (first & 0xfe00) == 0xfc00 || (first & 0xffc0) == 0xfe80
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::ConfigError;

    const ACCOUNT: &str = "AC0123456789abcdef0123456789abcdef";

    fn warnings(vars: &[(&str, &str)]) -> Vec<String> {
        config(vars).unwrap().startup_warnings()
    }

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let mut map: HashMap<&str, &str> = [
            (ENV_TWILIO_ACCOUNT_SID, ACCOUNT),
            (ENV_TWILIO_AUTH_TOKEN, "token"),
            (ENV_TOOL_SIGNING_SECRET, "tool-secret"),
        ]
        .into_iter()
        .collect();
        map.extend(vars.iter().copied());
        map.retain(|_, v| !v.is_empty());
        Config::from_lookup(|name| map.get(name).map(|v| (*v).to_owned()))
    }

    fn mentions(warnings: &[String], variable: &str, words: &str) -> bool {
        warnings
            .iter()
            .any(|w| w.starts_with(variable) && w.contains(words))
    }

    #[test]
    fn a_public_https_sidecar_url_on_real_twilio_is_quiet() {
        let w = warnings(&[(
            ENV_VOICE_WEBHOOK_URL,
            "https://calls.example.com/api/twilio/voice",
        )]);
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn a_webhook_twilio_cannot_reach_is_named() {
        for host in [
            "127.0.0.1:8080",
            "localhost",
            "10.1.2.3",
            "192.168.0.7",
            "[fd00::1]",
            "media-sidecar",
            "sidecar.calls.svc.cluster.local",
            "0.0.0.0",
        ] {
            let url = format!("https://{host}/api/twilio/voice");
            let w = warnings(&[(ENV_VOICE_WEBHOOK_URL, &url)]);
            assert!(
                mentions(&w, ENV_VOICE_WEBHOOK_URL, "cannot reach"),
                "{host}: {w:?}"
            );
        }
        // Against a simulator on loopback, loopback webhooks are what a test wants.
        let w = warnings(&[
            (ENV_TWILIO_API_URL, "http://127.0.0.1:9999"),
            (
                ENV_VOICE_WEBHOOK_URL,
                "https://127.0.0.1:8080/api/twilio/voice",
            ),
        ]);
        assert!(w.is_empty(), "{w:?}");
    }

    #[test]
    fn plain_http_and_wrong_paths_are_named() {
        let w = warnings(&[(
            ENV_VOICE_WEBHOOK_URL,
            "http://calls.example.com/api/twilio/voice",
        )]);
        assert!(mentions(&w, ENV_VOICE_WEBHOOK_URL, "http://"), "{w:?}");
        assert!(mentions(&w, ENV_STATUS_WEBHOOK_URL, "http://"), "{w:?}");
        let w = warnings(&[
            (ENV_VOICE_WEBHOOK_URL, "https://calls.example.com/voice"),
            (
                ENV_STATUS_WEBHOOK_URL,
                "https://calls.example.com/api/twilio/status",
            ),
        ]);
        assert!(
            mentions(&w, ENV_VOICE_WEBHOOK_URL, "/api/twilio/voice"),
            "{w:?}"
        );
        assert!(
            !w.iter().any(|w| w.starts_with(ENV_STATUS_WEBHOOK_URL)),
            "{w:?}"
        );
    }

    #[test]
    fn missing_credentials_with_webhooks_set_are_named() {
        let w = warnings(&[
            (ENV_TWILIO_AUTH_TOKEN, ""),
            (
                ENV_VOICE_WEBHOOK_URL,
                "https://calls.example.com/api/twilio/voice",
            ),
        ]);
        assert!(
            mentions(&w, ENV_TWILIO_AUTH_TOKEN, "calls cannot be placed"),
            "{w:?}"
        );
        let w = warnings(&[(ENV_TWILIO_ACCOUNT_SID, ""), (ENV_TWILIO_AUTH_TOKEN, "")]);
        assert!(mentions(&w, ENV_TWILIO_ACCOUNT_SID, "redirected"), "{w:?}");
        let w = warnings(&[]);
        assert!(
            mentions(&w, ENV_VOICE_WEBHOOK_URL, "cannot be placed"),
            "{w:?}"
        );
        let w = warnings(&[(ENV_TOOL_SIGNING_SECRET, "")]);
        assert!(mentions(&w, ENV_TOOL_SIGNING_SECRET, "not set"), "{w:?}");
    }
}
