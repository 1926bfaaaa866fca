//! Options: `[[inputs.http_response]]` as written (the user docs) and resolved.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use hyper::header::{HeaderName, HeaderValue};
use regex::bytes::Regex;
use serde::Deserialize;
use toml::Spanned;

use super::proxy::{Proxies, parse_proxy};
use super::url::{Target, parse_url};
use crate::options::{ConfigDuration, Secret, SecretSource, SpanError};
use crate::modules::probe::{IpVersion, Source};
use crate::modules::tls::Trust;

/// `[[inputs.http_response]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// URLs to probe (`http://` or `https://`). Default `["http://localhost"]`. Characters a URL
    /// may not carry (space, `"`, `<`, `>` …) are percent-encoded in the request; the `server`
    /// tag keeps the URL as written.
    urls: Option<Vec<Spanned<String>>>,
    /// Proxy for every URL: `http://[user:password@]host:port`, `https://…` (TLS to the
    /// proxy, verified with the TLS options below) or `socks5://…` (also `socks5h://`; port 1080
    /// by default; the proxy resolves the URL's host). Credentials (percent-encoded in the URL)
    /// are sent to an HTTP(S) proxy as Basic `Proxy-Authorization`, to a SOCKS5 proxy by its
    /// username/password method. `http://` URLs are requested from an HTTP(S) proxy in absolute
    /// form; `https://` URLs go through a CONNECT tunnel (then TLS end to end). Through a
    /// proxy, `dns_time` is the proxy's name lookup and `connect_time` covers the TCP connect
    /// to the proxy plus, when used, the TLS handshake with it and the CONNECT or SOCKS5
    /// exchange. Not combinable with `probe_all_addresses`. Default: as telegraf (Go's
    /// `ProxyFromEnvironment`), `HTTP_PROXY`/`http_proxy` for `http://` URLs and
    /// `HTTPS_PROXY`/`https_proxy` for `https://` URLs, except hosts in `NO_PROXY`/`no_proxy`,
    /// `localhost` and loopback addresses; `HTTP_PROXY` is ignored when `REQUEST_METHOD` is set
    /// (CGI). The environment is read when the configuration is loaded (and on SIGHUP); it is
    /// not used with `probe_all_addresses`.
    http_proxy: Option<Spanned<String>>,
    /// Bound on one whole probe (lookup, connect, TLS, request, headers and body, redirects
    /// included). Default 5s. Unlike telegraf, values below 1s are honoured.
    response_timeout: Option<ConfigDuration>,
    /// HTTP method. Default `GET`.
    method: Option<Spanned<String>>,
    /// Follow 301/302/303/307/308 as Go's client (telegraf's): at most 10 redirects (an 11th is
    /// `connection_failed`), 301/302/303 turn other methods into GET without body, credentials
    /// and configured cookies are not sent to another host, each hop on a fresh connection.
    /// Default false.
    follow_redirects: Option<bool>,
    /// Request body.
    body: Option<String>,
    /// Form fields sent URL-encoded as the body (`{ "key" = "value" }` or
    /// `{ "key" = ["v1", "v2"] }`), keys sorted, when `body` is empty. As in telegraf, no
    /// `Content-Type` is added: set `application/x-www-form-urlencoded` in `headers` if the
    /// server wants it.
    body_form: Option<Spanned<BTreeMap<String, OneOrMany>>>,
    /// Request headers; a `Host` entry overrides the Host header / `:authority` (kept on
    /// relative redirects only), a `User-Agent` entry replaces ours.
    headers: Option<Spanned<BTreeMap<String, String>>>,
    /// Basic authentication. The password is never logged nor written to a tag.
    username: Option<String>,
    password: Option<String>,
    /// Bearer token given inline (telegraf's `token`).
    token: Option<String>,
    /// File whose content (trimmed) is the bearer token, read at every gather so it can rotate
    /// (telegraf's `bearer_token`).
    bearer_token: Option<String>,
    /// Environment variable holding the bearer token (read at every gather).
    bearer_token_env: Option<String>,
    /// Expected status code; sets `response_status_code_match` and the result. Default: any.
    response_status_code: Option<u16>,
    /// Regular expression searched in the body (at most `response_body_max_size` bytes).
    response_string_match: Option<Spanned<String>>,
    /// Most body bytes read, as bytes (integer) or a size string (`"1MiB"`, `"512KB"`). A
    /// longer body ends the read with `body_read_error` (`content_length` is then this size plus
    /// one, as telegraf). Default (and 0) 32 MiB, telegraf's; only kept in memory when
    /// `response_string_match`, `response_body_field` or cookie authentication need it.
    response_body_max_size: Option<Spanned<toml::Value>>,
    /// PEM file of CA certificates that replaces the system roots for verification.
    tls_ca: Option<Spanned<String>>,
    /// Client certificate (PEM, leaf first) and key (PEM) for servers that require mutual TLS.
    tls_cert: Option<Spanned<String>>,
    tls_key: Option<String>,
    /// Name used for SNI and certificate verification instead of the URL's host.
    tls_server_name: Option<String>,
    /// Complete the probe even if the certificate does not verify (the verdict is still
    /// reported in `tls_verification_code`). Default false: a certificate that fails
    /// verification ends the probe with `connection_failed`.
    insecure_skip_verify: Option<bool>,
    /// Network interface to send from, as telegraf: the connection's source address is the
    /// interface's first address of the family of the address connected to (telegraf picks
    /// the family from the URL, IPv4 unless it is an IPv6 literal). An interface without such an
    /// address fails the probe (`connection_failed`, in the debug log); telegraf fails at start.
    interface: Option<String>,
    /// Source IP address to send from.
    source_address: Option<Spanned<String>>,
    /// `any` (resolver order, default), `ipv4`, `ipv6`, `prefer_ipv4`, `prefer_ipv6`.
    ip_version: Option<Spanned<String>>,
    /// Probe every resolved address (after `ip_version`) as its own series, tagged `ip`.
    /// Default false: the first address only.
    probe_all_addresses: Option<bool>,
    /// Offer HTTP/2 by ALPN on https. Default false: telegraf speaks HTTP/1.1 only (its client
    /// has a custom dialer and TLS config, which turns Go's HTTP/2 off). Plain http always uses
    /// HTTP/1.1.
    http2: Option<bool>,
    /// TLS renegotiation: `never` (the default and the only value: rustls does not implement
    /// renegotiation, so telegraf's `once` and `freely` are refused rather than ignored).
    tls_renegotiation_method: Option<Spanned<String>>,
    /// Cookie authentication (telegraf's): before the first probe, a request to this URL
    /// (with the proxy, TLS and interface options of the probes, redirects not followed) whose
    /// 2xx answer's cookies are sent with every later request they match (host, path, scheme),
    /// along with cookies the probed servers set. A failed first login fails the gather (logged,
    /// retried at the next one); a failed renewal is logged and the probes go on without the
    /// cookie, as in telegraf. One login per instance (telegraf logs in once per URL).
    cookie_auth_url: Option<Spanned<String>>,
    /// Method of the login request. Default `POST`.
    cookie_auth_method: Option<Spanned<String>>,
    /// Basic authentication of the login request (sent when the username is not empty).
    cookie_auth_username: Option<String>,
    cookie_auth_password: Option<String>,
    /// Headers of the login request (a `Host` entry overrides the Host header).
    cookie_auth_headers: Option<Spanned<BTreeMap<String, String>>>,
    /// Body of the login request.
    cookie_auth_body: Option<String>,
    /// Log in again this often, with an empty jar (in the background, whatever the interval).
    /// Default 0: log in once.
    cookie_auth_renewal: Option<ConfigDuration>,
    /// Response headers written as tags: `{ "Server" = "server_header" }` tags the line
    /// `server_header=<value of Server>` (telegraf's option). Absent headers add no tag.
    http_header_tags: Option<Spanned<BTreeMap<String, String>>>,
    /// Name of a string field that receives the body (at most `response_body_max_size` bytes,
    /// invalid UTF-8 replaced), as telegraf's option. Default: none.
    response_body_field: Option<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub targets: Vec<Target>,
    pub timeout: Duration,
    pub method: hyper::Method,
    pub follow_redirects: bool,
    pub body: Bytes,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub host_header: Option<String>,
    pub basic: Option<Secret>,
    pub bearer: Option<SecretSource>,
    pub expected_status: Option<u16>,
    pub string_match: Option<Regex>,
    pub body_max: u64,
    pub trust: Trust,
    pub tls_server_name: Option<String>,
    pub insecure: bool,
    pub source: Source,
    /// `interface`: its address is the source, looked up at each connection.
    pub interface: Option<String>,
    pub ip_version: IpVersion,
    pub probe_all: bool,
    pub http2: bool,
    pub proxies: Proxies,
    pub cookie_auth: Option<CookieAuth>,
    /// (response header, tag key).
    pub header_tags: Vec<(HeaderName, String)>,
    pub body_field: Option<String>,
}

/// A string or a list of strings (telegraf's `body_form` values are lists; its sample writes a
/// string).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(crate) enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The login request of cookie authentication.
#[derive(Debug, Clone)]
pub(crate) struct CookieAuth {
    pub target: Target,
    pub method: hyper::Method,
    /// `Basic …` when a username is set.
    pub basic: Option<Secret>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub host_header: Option<String>,
    pub body: Bytes,
    /// `None`: log in once.
    pub renewal: Option<Duration>,
}

/// `application/x-www-form-urlencoded` as Go's `url.Values.Encode`: keys sorted, values in
/// order, `QueryEscape` (space as `+`, bytes outside `A-Za-z0-9-_.~` as `%XX`).
pub(crate) fn form_encode(form: &BTreeMap<String, OneOrMany>) -> String {
    fn esc(s: &str, out: &mut String) {
        for b in s.bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(b as char)
                }
                b' ' => out.push('+'),
                b => out.push_str(&format!("%{b:02X}")),
            }
        }
    }
    let mut out = String::new();
    for (k, vs) in form {
        let vs = match vs {
            OneOrMany::One(v) => std::slice::from_ref(v),
            OneOrMany::Many(v) => v.as_slice(),
        };
        for v in vs {
            if !out.is_empty() {
                out.push('&');
            }
            esc(k, &mut out);
            out.push('=');
            esc(v, &mut out);
        }
    }
    out
}

/// Headers of a table (`headers`, `cookie_auth_headers`): the `Host` entry apart.
type HeaderList = (Vec<(HeaderName, HeaderValue)>, Option<String>);

fn header_list(h: &Option<Spanned<BTreeMap<String, String>>>, key: &str) -> Result<HeaderList, SpanError> {
    let mut headers = Vec::new();
    let mut host_header = None;
    if let Some(h) = h {
        for (k, v) in h.get_ref() {
            if k.eq_ignore_ascii_case("host") {
                host_header = Some(v.clone());
                continue;
            }
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| SpanError::new(h.span(), key, format!("invalid name {k:?}")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|_| SpanError::new(h.span(), key, format!("invalid value for {k:?}")))?;
            headers.push((name, value));
        }
    }
    Ok((headers, host_header))
}

fn method(m: &Option<Spanned<String>>, key: &str, default: hyper::Method) -> Result<hyper::Method, SpanError> {
    match m {
        None => Ok(default),
        Some(m) => hyper::Method::from_bytes(m.get_ref().as_bytes())
            .map_err(|_| SpanError::new(m.span(), key, "invalid HTTP method")),
    }
}

/// `Basic base64(user:password)` as a secret.
fn basic(user: &str, password: &str) -> Secret {
    Secret::new(base64(format!("{user}:{password}").as_bytes()))
}

/// Standard base64 with padding (RFC 4648 §4), as Basic authentication wants.
pub(super) fn base64(input: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(input)
}

/// Parses `"1MiB"`, `"512KB"`, `"1024"` or an integer into bytes.
pub(crate) fn parse_size(v: &toml::Value) -> Result<u64, String> {
    match v {
        toml::Value::Integer(n) if *n > 0 => Ok(*n as u64),
        toml::Value::String(s) => {
            let s = s.trim();
            let split = s
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(s.len());
            let (num, unit) = s.split_at(split);
            let n: f64 = num.parse().map_err(|_| format!("invalid size {s:?}"))?;
            let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => 1.0,
                "kb" => 1e3,
                "mb" => 1e6,
                "gb" => 1e9,
                "kib" => 1024.0,
                "mib" => 1048576.0,
                "gib" => 1073741824.0,
                u => return Err(format!("unknown size unit {u:?}")),
            };
            let b = n * mult;
            if b >= 1.0 {
                Ok(b as u64)
            } else {
                Err("size must be at least 1 byte".into())
            }
        }
        _ => Err("must be a positive byte count or a size string like \"1MiB\"".into()),
    }
}

pub(crate) fn resolve(raw: Raw) -> Result<Config, SpanError> {
    let proxies = match &raw.http_proxy {
        Some(p) if !p.get_ref().is_empty() => {
            let proxy = parse_proxy(p.get_ref())
                .map_err(|e| SpanError::new(p.span(), "http_proxy", e))?;
            if raw.probe_all_addresses == Some(true) {
                return Err(SpanError::new(
                    p.span(),
                    "http_proxy",
                    "cannot be combined with probe_all_addresses",
                ));
            }
            Proxies::Fixed(proxy)
        }
        _ if raw.probe_all_addresses == Some(true) => Proxies::None,
        _ => Proxies::from_env(|k| std::env::var(k).ok()),
    };
    if let Some(m) = &raw.tls_renegotiation_method {
        match m.get_ref().as_str() {
            "" | "never" => {}
            "once" | "freely" => {
                return Err(SpanError::new(
                    m.span(),
                    "tls_renegotiation_method",
                    "only \"never\" is supported: the TLS library (rustls) does not implement renegotiation",
                ));
            }
            _ => {
                return Err(SpanError::new(
                    m.span(),
                    "tls_renegotiation_method",
                    "must be \"never\", \"once\" or \"freely\"",
                ));
            }
        }
    }
    let cookie_auth = match &raw.cookie_auth_url {
        Some(u) if !u.get_ref().is_empty() => {
            let target = parse_url(u.get_ref())
                .map_err(|e| SpanError::new(u.span(), "cookie_auth_url", e))?;
            let (headers, host_header) = header_list(&raw.cookie_auth_headers, "cookie_auth_headers")?;
            let user = raw.cookie_auth_username.as_deref().unwrap_or("");
            Some(CookieAuth {
                target,
                method: method(&raw.cookie_auth_method, "cookie_auth_method", hyper::Method::POST)?,
                basic: (!user.is_empty())
                    .then(|| basic(user, raw.cookie_auth_password.as_deref().unwrap_or(""))),
                headers,
                host_header,
                body: Bytes::from(raw.cookie_auth_body.clone().unwrap_or_default()),
                renewal: raw
                    .cookie_auth_renewal
                    .map(|d| d.get())
                    .filter(|d| !d.is_zero()),
            })
        }
        _ => None,
    };
    let targets = match raw.urls {
        None => vec![parse_url("http://localhost").map_err(|e| SpanError::new(0..0, "urls", e))?],
        Some(urls) => {
            let mut v = Vec::new();
            for u in urls {
                v.push(parse_url(u.get_ref()).map_err(|e| SpanError::new(u.span(), "urls", e))?);
            }
            v
        }
    };
    let method = method(&raw.method, "method", hyper::Method::GET)?;
    let (headers, host_header) = header_list(&raw.headers, "headers")?;
    // telegraf sends Basic authentication only when both are set.
    let basic = match (raw.username.as_deref(), raw.password.as_deref()) {
        (Some(u), Some(p)) if !u.is_empty() && !p.is_empty() => Some(basic(u, p)),
        _ => None,
    };
    let bearer = SecretSource::from_options(
        raw.token,
        raw.bearer_token,
        raw.bearer_token_env,
        ["token", "bearer_token", "bearer_token_env"],
    )
    .map_err(|e| SpanError::new(0..0, "token", e))?;
    let string_match = match &raw.response_string_match {
        Some(s) => Some(
            Regex::new(s.get_ref())
                .map_err(|e| SpanError::new(s.span(), "response_string_match", e.to_string()))?,
        ),
        None => None,
    };
    // 0 means the default, as in telegraf.
    let body_max = match &raw.response_body_max_size {
        Some(v) if !matches!(v.get_ref(), toml::Value::Integer(0)) => parse_size(v.get_ref())
            .map_err(|e| SpanError::new(v.span(), "response_body_max_size", e))?,
        _ => 32 * 1024 * 1024,
    };
    let trust = Trust::from_options(&raw.tls_ca, &raw.tls_cert, &raw.tls_key)?;
    let source_address =
        match &raw.source_address {
            Some(s) => Some(s.get_ref().parse::<IpAddr>().map_err(|_| {
                SpanError::new(s.span(), "source_address", "must be an IP address")
            })?),
            None => None,
        };
    if let (Some(s), Some(_)) = (&raw.source_address, &raw.interface) {
        return Err(SpanError::new(
            s.span(),
            "source_address",
            "cannot be combined with interface (which sets the source address)",
        ));
    }
    let mut header_tags = Vec::new();
    if let Some(h) = &raw.http_header_tags {
        for (header, tag) in h.get_ref() {
            let name = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                SpanError::new(
                    h.span(),
                    "http_header_tags",
                    format!("invalid header {header:?}"),
                )
            })?;
            header_tags.push((name, tag.clone()));
        }
    }
    let ip_version = match &raw.ip_version {
        Some(v) => IpVersion::parse(v.get_ref()).ok_or_else(|| {
            SpanError::new(
                v.span(),
                "ip_version",
                "must be any, ipv4, ipv6, prefer_ipv4 or prefer_ipv6",
            )
        })?,
        None => IpVersion::Any,
    };
    Ok(Config {
        targets,
        timeout: raw
            .response_timeout
            .map(|d| d.get())
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(5)),
        method,
        follow_redirects: raw.follow_redirects.unwrap_or(false),
        body: match (raw.body, &raw.body_form) {
            (Some(b), _) if !b.is_empty() => Bytes::from(b),
            (_, Some(f)) => Bytes::from(form_encode(f.get_ref())),
            _ => Bytes::new(),
        },
        headers,
        host_header,
        basic,
        bearer,
        expected_status: raw.response_status_code.filter(|&c| c > 0),
        string_match,
        body_max,
        trust,
        tls_server_name: raw.tls_server_name,
        insecure: raw.insecure_skip_verify.unwrap_or(false),
        source: Source {
            address: source_address,
            interface: None,
        },
        interface: raw.interface,
        ip_version,
        probe_all: raw.probe_all_addresses.unwrap_or(false),
        http2: raw.http2.unwrap_or(false),
        proxies,
        cookie_auth,
        header_tags,
        body_field: raw.response_body_field.filter(|f| !f.is_empty()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_rfc4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size(&toml::Value::Integer(10)), Ok(10));
        assert_eq!(parse_size(&toml::Value::String("1MiB".into())), Ok(1 << 20));
        assert_eq!(parse_size(&toml::Value::String("2 KB".into())), Ok(2000));
        assert!(parse_size(&toml::Value::String("1 parsec".into())).is_err());
    }

    #[test]
    fn proxy_options() {
        let r = |s: &str| resolve(toml::from_str::<Raw>(s).unwrap());
        assert!(r("http_proxy = \"http://127.0.0.1:3128\"").is_ok());
        assert!(r("http_proxy = \"https://p:3128\"").is_ok());
        assert!(r("http_proxy = \"http://u:p@p:3128\"").is_ok());
        assert!(r("http_proxy = \"socks5://p:1080\"").is_ok());
        assert!(r("http_proxy = \"socks4://p:1080\"").is_err());
        assert!(r("http_proxy = \"http://p:3128\"\nprobe_all_addresses = true").is_err());
    }

    #[test]
    fn form_bodies_as_go_encodes_them() {
        let c = resolve(
            toml::from_str::<Raw>("body_form = { \"z k\" = \"é&=\", a = [\"1\", \"~._-\"] }").unwrap(),
        )
        .unwrap();
        assert_eq!(&c.body[..], b"a=1&a=~._-&z+k=%C3%A9%26%3D");
        // `body` wins over `body_form`.
        let c = resolve(toml::from_str::<Raw>("body = \"x\"\nbody_form = { a = \"1\" }").unwrap())
            .unwrap();
        assert_eq!(&c.body[..], b"x");
    }

    #[test]
    fn telegraf_option_values() {
        let r = |s: &str| resolve(toml::from_str::<Raw>(s).unwrap());
        assert!(r("tls_renegotiation_method = \"never\"").is_ok());
        let e = r("tls_renegotiation_method = \"once\"").unwrap_err();
        assert!(format!("{e:?}").contains("renegotiation"), "{e:?}");
        assert!(r("tls_renegotiation_method = \"sometimes\"").is_err());
        assert_eq!(r("response_body_max_size = 0").unwrap().body_max, 32 << 20);
        // Basic authentication needs both, as in telegraf.
        assert!(r("username = \"u\"").unwrap().basic.is_none());
        let c = r("cookie_auth_url = \"http://h/login\"\ncookie_auth_username = \"u\"\ncookie_auth_renewal = \"5m\"").unwrap();
        let a = c.cookie_auth.unwrap();
        assert_eq!((a.method.as_str(), a.renewal), ("POST", Some(Duration::from_secs(300))));
        assert_eq!(a.basic.unwrap().expose(), base64(b"u:"));
        let c = r("cookie_auth_url = \"http://h/login\"\ncookie_auth_renewal = \"0s\"").unwrap();
        assert_eq!(c.cookie_auth.unwrap().renewal, None);
        assert!(r("cookie_auth_url = \"ftp://h/\"").is_err());
        assert!(r("interface = \"lo\"\nsource_address = \"127.0.0.1\"").is_err());
        assert!(!r("").unwrap().http2);
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let raw: Raw =
            toml::from_str("urls = [\"http://h/\"]\nusername = \"u\"\npassword = \"hunter2\"\n")
                .unwrap();
        let c = resolve(raw).unwrap();
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains(&base64(b"u:hunter2")));
    }
}
