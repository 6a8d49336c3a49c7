//! Outbound HTTP proxies for the Realtime sockets: `HTTPS_PROXY` / `HTTP_PROXY` /
//! `NO_PROXY` as curl reads them, and the `CONNECT` tunnel a socket goes through.
//!
//! The tunnel carries the TLS session end to end: the proxy sees the host name, never
//! the key or the audio (unless it is a TLS-inspecting proxy, whose CA then goes in
//! `SWITCHBOARD_OPENAI_CA_FILE`). Only `http://` proxies are supported, with optional
//! Basic credentials in the URL.

use std::fmt;
use std::io;

use base64::Engine as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Longest proxy answer to `CONNECT` read before giving up.
const MAX_CONNECT_RESPONSE: usize = 8 * 1024;

/// An `http://[user:password@]host[:port]` proxy.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyUrl {
    host: String,
    port: u16,
    /// `Basic …` value of `Proxy-Authorization`.
    authorization: Option<String>,
}

/// `NO_PROXY`: hosts reached directly.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NoProxy {
    all: bool,
    /// Lower-case host names or domain suffixes (leading dot removed), and IPs.
    entries: Vec<String>,
}

// === impl ProxyUrl ===

impl ProxyUrl {
    /// Parses a proxy URL; the error says what is wrong, without the credentials.
    pub fn parse(value: &str) -> Result<ProxyUrl, String> {
        let value = value.trim();
        let rest = match value.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "{scheme}:// proxies are not supported: give an http:// proxy (the \
                     tunnel it opens still carries TLS end to end)"
                ))
            }
            // curl accepts a bare `host:port`.
            None => value,
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((credentials, host_port)) => (Some(credentials), host_port),
            None => (None, authority),
        };
        let (host, port) = split_host_port(host_port)
            .ok_or_else(|| "is not a proxy URL like http://proxy.internal:3128".to_owned())?;
        let authorization = credentials.map(|credentials| {
            let (user, password) = credentials.split_once(':').unwrap_or((credentials, ""));
            let plain = format!("{}:{}", percent_decode(user), percent_decode(password));
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(plain)
            )
        });
        Ok(ProxyUrl {
            host,
            port,
            authorization,
        })
    }

    /// `host:port` of the proxy.
    pub fn address(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// Opens a TCP connection to the proxy and a `CONNECT` tunnel through it to
    /// `host:port`.
    pub async fn connect(&self, host: &str, port: u16) -> io::Result<TcpStream> {
        let mut stream = TcpStream::connect((self.host.as_str(), self.port)).await?;
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(authorization) = &self.authorization {
            request.push_str(&format!("Proxy-Authorization: {authorization}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await?;
        // Byte by byte, so not one byte of the tunnel is read past the answer.
        let mut response = Vec::with_capacity(128);
        while !response.ends_with(b"\r\n\r\n") {
            if response.len() >= MAX_CONNECT_RESPONSE {
                return Err(io::Error::other("proxy answer to CONNECT is too long"));
            }
            let byte = stream.read_u8().await?;
            response.push(byte);
        }
        let status_line = response
            .split(|b| *b == b'\r')
            .next()
            .map(String::from_utf8_lossy)
            .unwrap_or_default();
        let status = status_line.split_whitespace().nth(1).unwrap_or_default();
        if status != "200" {
            return Err(io::Error::other(format!(
                "proxy {}:{} refused CONNECT {target}: {}",
                self.host,
                self.port,
                status_line.trim()
            )));
        }
        Ok(stream)
    }
}

impl fmt::Debug for ProxyUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field(
                "authorization",
                &self.authorization.as_ref().map(|_| "*****"),
            )
            .finish()
    }
}

// === impl NoProxy ===

impl NoProxy {
    /// Comma-separated hosts, domains (`.example.com` or `example.com`: the domain and
    /// its subdomains), IP addresses, or `*`. Ports are ignored.
    pub fn parse(value: &str) -> NoProxy {
        let mut no_proxy = NoProxy::default();
        for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry == "*" {
                no_proxy.all = true;
                continue;
            }
            let host = split_host_port(entry).map_or_else(|| entry.to_owned(), |(host, _)| host);
            no_proxy
                .entries
                .push(host.trim_start_matches('.').to_ascii_lowercase());
        }
        no_proxy
    }

    /// True when `host` is reached without the proxy.
    pub fn matches(&self, host: &str) -> bool {
        if self.all {
            return true;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.entries.iter().any(|entry| {
            host == *entry
                || host
                    .strip_suffix(entry.as_str())
                    .is_some_and(|prefix| prefix.ends_with('.'))
        })
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` → host and port (default 80, as curl).
fn split_host_port(value: &str) -> Option<(String, u16)> {
    let value = value.trim().trim_end_matches('/');
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else if value.matches(':').count() > 1 {
        // A bare IPv6 address.
        (value, None)
    } else {
        match value.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (value, None),
        }
    };
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c == '@') {
        return None;
    }
    let port = match port {
        None => 80,
        Some(port) => port.parse().ok()?,
    };
    Some((host.to_owned(), port))
}

/// `%XX` sequences decoded (credentials in a URL are percent-encoded).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_urls_as_curl_takes_them() {
        let p = ProxyUrl::parse("http://proxy.internal:3128/").unwrap();
        assert_eq!(p.address(), ("proxy.internal", 3128));
        assert_eq!(p.authorization, None);
        assert_eq!(
            ProxyUrl::parse("proxy.internal").unwrap().address(),
            ("proxy.internal", 80)
        );
        assert_eq!(
            ProxyUrl::parse("HTTP://[::1]:8080").unwrap().address(),
            ("::1", 8080)
        );
        let with_user = ProxyUrl::parse("http://al%40ice:p%3Ass@10.0.0.1:3128").unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode("al@ice:p:ss");
        assert_eq!(
            with_user.authorization.as_deref(),
            Some(format!("Basic {expected}").as_str())
        );
        assert!(!format!("{with_user:?}").contains(&expected));
        for bad in [
            "https://proxy:3128",
            "socks5://proxy:1080",
            "http://:3128",
            "http://p:port",
        ] {
            let err = ProxyUrl::parse(bad).unwrap_err();
            assert!(!err.contains("p:ss"), "{err}");
        }
    }

    #[test]
    fn no_proxy_matches_hosts_domains_and_ips() {
        let no =
            NoProxy::parse(" localhost, .internal.example.com,openai.azure.com:443 ,10.1.2.3,,");
        assert!(no.matches("localhost"));
        assert!(no.matches("api.internal.example.com"));
        assert!(no.matches("internal.example.com"));
        assert!(no.matches("contoso.openai.azure.com"));
        assert!(no.matches("OpenAI.Azure.com."));
        assert!(no.matches("10.1.2.3"));
        assert!(!no.matches("api.openai.com"));
        assert!(!no.matches("notinternal.example.com"));
        assert!(!no.matches("10.1.2.30"));
        assert!(NoProxy::parse("*").matches("anything"));
        assert!(!NoProxy::parse("").matches("localhost"));
    }
}
