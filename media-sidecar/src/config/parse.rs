//! Value parsers for `config.rs`: addresses, URLs, durations, tokens, phone numbers, and
//! the public base URL type the HTTP edge builds its URLs from.

use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};

use super::{error, ConfigError, ENV_CONTROL_PLANE_URL};

/// The base URL Twilio reaches this sidecar at: `http(s)://host[:port][/prefix]`, with no
/// query, fragment or trailing slash.
///
/// Signatures are checked against this URL plus the path the router sees, never against
/// request headers a proxy may rewrite (docs/protocols.md §2.5 step 6). A proxy that strips
/// a path prefix must have that prefix here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrl {
    base: String,
    https: bool,
    /// Where the path prefix (possibly empty) starts in `base`.
    path_start: usize,
}

impl PublicUrl {
    /// Parses and normalises a base URL; the error says what is wrong with it.
    pub fn parse(value: &str) -> Result<PublicUrl, String> {
        let value = value.trim().trim_end_matches('/');
        let (https, rest) = if let Some(rest) = value.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = value.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!("{value:?} is not an http:// or https:// URL"));
        };
        if rest.contains(['?', '#']) || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "{value:?} must have no query, fragment or whitespace"
            ));
        }
        let authority_len = rest.find('/').unwrap_or(rest.len());
        if authority_len == 0 {
            return Err(format!("{value:?} names no host"));
        }
        Ok(PublicUrl {
            base: value.to_owned(),
            https,
            path_start: value.len() - rest.len() + authority_len,
        })
    }

    /// The normalised base URL.
    pub fn as_str(&self) -> &str {
        &self.base
    }

    /// True for an `https://` base (what Twilio needs in production).
    pub fn is_https(&self) -> bool {
        self.https
    }

    /// True when the host is `localhost` or a loopback address: a local run, where
    /// plain http is what Twilio's stand-in really calls.
    pub fn is_loopback(&self) -> bool {
        let scheme_len = if self.https {
            "https://".len()
        } else {
            "http://".len()
        };
        let authority = &self.base[scheme_len..self.path_start];
        let host = match authority.strip_prefix('[') {
            Some(rest) => rest.split(']').next().unwrap_or_default(),
            None => authority.split(':').next().unwrap_or_default(),
        };
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// The URL Twilio requested for `path_and_query` (as the router saw it, starting with
    /// `/`): what webhook signatures are computed over.
    pub fn http_url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    /// The same URL with the WebSocket scheme (`wss` for an https base, `ws` for http):
    /// what Twilio signs on the Media Stream upgrade (docs/protocols.md §1.5).
    pub fn websocket_url(&self, path: &str) -> String {
        let scheme_len = if self.https {
            "https".len()
        } else {
            "http".len()
        };
        let scheme = if self.https { "wss" } else { "ws" };
        format!("{scheme}{}{path}", &self.base[scheme_len..])
    }

    /// The `<Stream url>` for `path`. For an https base, the absolute `wss://` URL. For an
    /// http base (local runs), the absolute-path reference (prefix + `path`): Twilio only
    /// speaks `wss`, so the TwiML writer refuses an absolute `ws://` URL, and a client
    /// resolves the reference against the webhook URL to the `ws://` URL that
    /// [`websocket_url`](Self::websocket_url) rebuilds.
    pub fn stream_url(&self, path: &str) -> String {
        if self.https {
            self.websocket_url(path)
        } else {
            format!("{}{path}", &self.base[self.path_start..])
        }
    }
}

pub(super) fn parse_addr(variable: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.trim().parse().map_err(|_| {
        error(
            variable,
            format!("{value:?} is not a socket address like 127.0.0.1:8080"),
        )
    })
}

/// One or more (comma-separated) `http://host:port` or `https://host:port`, with nothing
/// after the authority but an optional `/`, all of one scheme; duplicates dropped.
pub(super) fn parse_control_plane_urls(value: &str) -> Result<Vec<String>, ConfigError> {
    let mut urls: Vec<String> = Vec::new();
    for part in value.split(',') {
        let url = parse_control_plane_url(part)?;
        if !urls.contains(&url) {
            urls.push(url);
        }
    }
    let https = urls
        .iter()
        .filter(|url| url.starts_with("https://"))
        .count();
    if https != 0 && https != urls.len() {
        return Err(error(
            ENV_CONTROL_PLANE_URL,
            format!("{value:?} mixes http:// and https:// replicas; use one scheme"),
        ));
    }
    Ok(urls)
}

/// `http://host:port` or `https://host:port`, with nothing after the authority but an
/// optional `/`.
fn parse_control_plane_url(value: &str) -> Result<String, ConfigError> {
    let value = value.trim().trim_end_matches('/');
    let parsed = value.parse::<axum::http::Uri>().ok();
    let usable = parsed.as_ref().is_some_and(|uri| {
        matches!(uri.scheme_str(), Some("http" | "https"))
            && uri.authority().is_some_and(|a| !a.host().is_empty())
            && matches!(uri.path(), "" | "/")
            && uri.query().is_none()
    });
    if !usable {
        return Err(error(
            ENV_CONTROL_PLANE_URL,
            format!(
                "{value:?} is not a URL like http://127.0.0.1:50051 or https://control-plane:50051"
            ),
        ));
    }
    Ok(value.to_owned())
}

/// The extra CA file, and the client certificate and key files, of the control-plane
/// client.
pub(super) type ControlPlaneTlsFiles = (Option<PathBuf>, Option<(PathBuf, PathBuf)>);

/// The control-plane client's TLS files, read and checked once at start-up: the extra CA
/// ([`super::ENV_CONTROL_PLANE_CA_FILE`]) and the client certificate and key for mutual
/// TLS (both or neither). They only mean something for an `https://` `url`, so setting
/// them for `http://` is an error rather than a silent plaintext connection.
pub(super) fn parse_control_plane_tls(
    get: &impl Fn(&str) -> Option<String>,
    url: &str,
) -> Result<ControlPlaneTlsFiles, ConfigError> {
    use super::{
        ENV_CONTROL_PLANE_CA_FILE as CA, ENV_CONTROL_PLANE_CLIENT_CERT as CERT,
        ENV_CONTROL_PLANE_CLIENT_KEY as KEY,
    };
    let ca_file = get(CA).map(PathBuf::from);
    let identity = match (get(CERT).map(PathBuf::from), get(KEY).map(PathBuf::from)) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(error(
                KEY,
                format!("is not set but {CERT} is; set both or neither"),
            ))
        }
        (None, Some(_)) => {
            return Err(error(
                CERT,
                format!("is not set but {KEY} is; set both or neither"),
            ))
        }
    };
    if !url.starts_with("https://") {
        let set = [(CA, ca_file.is_some()), (CERT, identity.is_some())];
        if let Some((variable, _)) = set.into_iter().find(|(_, set)| *set) {
            return Err(error(
                variable,
                format!("is set but {ENV_CONTROL_PLANE_URL} is not https://; tls settings need an https url"),
            ));
        }
    }
    if let Some(path) = &ca_file {
        read_ca_file(CA, path)?;
    }
    if let Some((cert, key)) = &identity {
        read_cert_and_key((CERT, cert), (KEY, key))?;
    }
    Ok((ca_file, identity))
}

/// True when `url`'s host is `localhost` or a loopback address: traffic to it stays on
/// this host (or pod).
pub(super) fn is_loopback_url(url: &str) -> bool {
    let Some(host) = url
        .parse::<axum::http::Uri>()
        .ok()
        .and_then(|uri| uri.host().map(str::to_owned))
    else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// The certificates of a readable PEM file of CA certificates, each one rustls accepts
/// as a trust anchor.
pub(super) fn read_ca_file(
    variable: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs = pem_certificates(variable, path)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in &certs {
        roots.add(cert.clone()).map_err(|e| {
            error(
                variable,
                format!("{}: not a usable ca certificate: {e}", path.display()),
            )
        })?;
    }
    Ok(certs)
}

/// A PEM certificate chain and the private key that belongs to its leaf: the chain, and
/// the key's PEM.
pub(super) fn read_cert_and_key(
    (cert_variable, cert_path): (&'static str, &Path),
    (key_variable, key_path): (&'static str, &Path),
) -> Result<(Vec<CertificateDer<'static>>, Vec<u8>), ConfigError> {
    use rustls::pki_types::pem::PemObject;
    let chain = pem_certificates(cert_variable, cert_path)?;
    let key_pem = read_file(key_variable, key_path)?;
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        error(
            key_variable,
            format!("{}: no usable pem private key: {e}", key_path.display()),
        )
    })?;
    // The provider is named, not taken from the process default: tests and libraries
    // validate configs without installing one.
    let provider = rustls::crypto::ring::default_provider();
    rustls::sign::CertifiedKey::from_der(chain.clone(), key, &provider).map_err(|e| {
        error(
            key_variable,
            format!(
                "{} does not fit the certificate in {}: {e}",
                key_path.display(),
                cert_path.display()
            ),
        )
    })?;
    Ok((chain, key_pem))
}

/// Every certificate of a PEM file; none at all is an error.
fn pem_certificates(
    variable: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    use rustls::pki_types::pem::PemObject;
    let pem = read_file(variable, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(variable, format!("{}: unreadable pem: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(error(
            variable,
            format!("{}: no pem certificate found", path.display()),
        ));
    }
    Ok(certs)
}

fn read_file(variable: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| error(variable, format!("cannot read {}: {e}", path.display())))
}

/// `500ms`, `30s`, `2m`, `1h`.
pub(super) fn parse_duration(variable: &'static str, value: &str) -> Result<Duration, ConfigError> {
    let value = value.trim();
    let digits_end = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(digits_end);
    let bad = || {
        error(
            variable,
            format!("{value:?} is not a duration like 500ms, 30s, 2m or 1h"),
        )
    };
    let number: u64 = number.parse().map_err(|_| bad())?;
    let duration = match unit {
        "ms" => Duration::from_millis(number),
        "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number.checked_mul(60).ok_or_else(bad)?),
        "h" => Duration::from_secs(number.checked_mul(3600).ok_or_else(bad)?),
        _ => return Err(bad()),
    };
    Ok(duration)
}

/// A bearer token: non-empty visible ASCII, no whitespace (it goes into a header).
pub(super) fn check_token(variable: &'static str, token: &str) -> Result<(), ConfigError> {
    if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(error(
            variable,
            "must be non-empty printable ascii with no whitespace",
        ));
    }
    Ok(())
}

/// `+` and 2 to 15 digits, the first not 0.
pub(super) fn require_e164(variable: &'static str, value: String) -> Result<String, ConfigError> {
    let value = value.trim().to_owned();
    let valid = value.strip_prefix('+').is_some_and(|digits| {
        (2..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0')
    });
    if !valid {
        return Err(error(
            variable,
            format!("{value:?} is not an E.164 number like +14155550100"),
        ));
    }
    Ok(value)
}

/// `bytes` random bytes as lower-case hex, from the operating system's generator. Where
/// `/dev/urandom` is missing, std's per-process random hash keys (themselves from the OS)
/// are stretched with SHA-256.
pub(super) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    let from_os = std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut buf))
        .is_ok();
    if !from_os {
        let mut seed = Sha256::new();
        for round in 0u64..4 {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(round);
            seed.update(hasher.finish().to_le_bytes());
        }
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        seed.update(nanos.to_le_bytes());
        seed.update(std::process::id().to_le_bytes());
        let mut block = seed.finalize();
        for chunk in buf.chunks_mut(32) {
            chunk.copy_from_slice(&block[..chunk.len()]);
            block = Sha256::digest(block);
        }
    }
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tls_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_build_http_websocket_and_stream_urls() {
        let url = PublicUrl::parse("https://sidecar.example.com/").unwrap();
        assert_eq!(url.as_str(), "https://sidecar.example.com");
        assert_eq!(
            url.http_url("/api/twilio/voice?callId=c1"),
            "https://sidecar.example.com/api/twilio/voice?callId=c1"
        );
        assert_eq!(
            url.websocket_url("/api/twilio/media-stream/c1"),
            "wss://sidecar.example.com/api/twilio/media-stream/c1"
        );
        assert_eq!(
            url.stream_url("/api/twilio/media-stream/c1"),
            "wss://sidecar.example.com/api/twilio/media-stream/c1"
        );

        let local = PublicUrl::parse("http://127.0.0.1:8080/sb").unwrap();
        assert_eq!(
            local.websocket_url("/x"),
            "ws://127.0.0.1:8080/sb/x",
            "the prefix stays"
        );
        assert_eq!(local.stream_url("/x"), "/sb/x", "a reference, not ws://");
        assert!(!local.is_https());
    }

    #[test]
    fn bad_public_urls_are_refused() {
        for bad in [
            "ftp://x",
            "https://",
            "https:///path",
            "https://x/?q=1",
            "https://x/#f",
            "x.com",
        ] {
            assert!(PublicUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_need_a_unit() {
        let d = |v| parse_duration("V", v);
        assert_eq!(d("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(d("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(d("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(d("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(d("0s").unwrap(), Duration::ZERO);
        for bad in ["30", "s", "-1s", "1.5s", "3d", "", "99999999999999999999h"] {
            assert!(d(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn e164_numbers_and_tokens_are_checked() {
        assert!(require_e164("V", "+14155550100".into()).is_ok());
        for bad in ["14155550100", "+0123", "+1", "+1234567890123456", "+1 415"] {
            assert!(require_e164("V", bad.into()).is_err(), "{bad}");
        }
        assert!(check_token("V", "abc.DEF-123").is_ok());
        for bad in ["", "a b", "tab\t", "é"] {
            assert!(check_token("V", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn random_hex_is_random_and_of_the_asked_length() {
        let a = random_hex(32);
        assert_eq!(a.len(), 64);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, random_hex(32));
    }
}
