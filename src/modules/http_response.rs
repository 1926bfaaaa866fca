//! `http_response`: HTTP/1.1 and HTTP/2 (over TLS, by ALPN) probes with per-phase timings, as
//! telegraf's `http_response` input: measurement `http_response`, tags `server` (the URL as
//! configured), `method`, `status_code`, `result`; fields `response_time`,
//! `http_response_code`, `content_length`, `result_code`, `result_type`,
//! `response_string_match`, `response_status_code_match`.
//!
//! Additions (float seconds unless noted), all measured with a monotonic clock on a fresh
//! connection per probe (no pool, no TLS resumption), the phases back to back:
//! - `dns_time`: name lookup (omitted for an IP literal);
//! - `connect_time`: TCP handshake;
//! - `tls_time`: TLS handshake (omitted for `http://`);
//! - `request_write_time`: HTTP connection setup and writing the request;
//! - `ttfb`: last request byte written → response headers received;
//! - `transfer_time`: headers → end of body (not part of `response_time`);
//! - `tls_cert_expiry_s` (int, seconds until the leaf's NotAfter), `tls_verification_code`
//!   (int, 0 valid / 1 invalid, as x509_cert) and `tls_verification_error` (string);
//! - `redirects` (int), `http_version` (string `1.1` or `2`).
//!
//! `response_time` keeps telegraf's meaning (start → response headers) and equals
//! `dns_time + connect_time + tls_time + request_write_time + ttfb` (summed over redirect hops).
//! A phase that did not happen is omitted; a failed probe still writes `result_code`,
//! `result_type` and the phases it completed.
//!
//! URLs of one instance are probed concurrently; each probe is bounded by `response_timeout`.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::{TokioExecutor, TokioIo};
use regex::bytes::Regex;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::task::JoinSet;
use toml::Spanned;

use super::GatherError;
use super::probe::{self, Connect, InFlight, IpVersion, LookupError, Source};
use super::tls::{self, Trust};
use crate::config::{ConfigDuration, SpanError};
use crate::output::{Accumulator, Metric, now_ns};

/// `[[inputs.http_response]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// URLs to probe (`http://` or `https://`). Default `["http://localhost"]`. Characters a URL
    /// may not carry (space, `"`, `<`, `>` …) are percent-encoded in the request; the `server`
    /// tag keeps the URL as written.
    urls: Option<Vec<Spanned<String>>>,
    /// HTTP proxy, `http://host:port`, without credentials. `http://` URLs are requested from
    /// it in absolute form; `https://` URLs go through a CONNECT tunnel (then TLS and HTTP/2 as
    /// usual, end to end). Through a proxy, `dns_time` is the proxy's name lookup and
    /// `connect_time` covers the TCP connect to the proxy plus, for https, the CONNECT exchange.
    /// Not combinable with `probe_all_addresses`. Default: none (environment variables such as
    /// `HTTP_PROXY` are not read).
    http_proxy: Option<Spanned<String>>,
    /// Bound on one whole probe (lookup, connect, TLS, request, headers and body, redirects
    /// included). Default 5s. Unlike telegraf, values below 1s are honoured.
    response_timeout: Option<ConfigDuration>,
    /// HTTP method. Default `GET`.
    method: Option<Spanned<String>>,
    /// Follow 301/302/303/307/308 (at most 10 hops; each hop a fresh connection). Default false.
    follow_redirects: Option<bool>,
    /// Request body.
    body: Option<String>,
    /// Request headers; a `Host` entry overrides the Host header / `:authority`.
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
    /// longer body ends the read with `body_read_error`. Default 32 MiB (telegraf's); only kept
    /// in memory when `response_string_match` is set.
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
    /// Network interface to send from (SO_BINDTODEVICE).
    interface: Option<String>,
    /// Source IP address to send from.
    source_address: Option<Spanned<String>>,
    /// `any` (resolver order, default), `ipv4`, `ipv6`, `prefer_ipv4`, `prefer_ipv6`.
    ip_version: Option<Spanned<String>>,
    /// Probe every resolved address (after `ip_version`) as its own series, tagged `ip`.
    /// Default false: the first address only.
    probe_all_addresses: Option<bool>,
    /// Offer HTTP/2 by ALPN on https (default true). Plain http always uses HTTP/1.1.
    http2: Option<bool>,
    /// Response headers written as tags: `{ "Server" = "server_header" }` tags the line
    /// `server_header=<value of Server>` (telegraf's option). Absent headers add no tag.
    http_header_tags: Option<Spanned<BTreeMap<String, String>>>,
    /// Name of a string field that receives the body (at most `response_body_max_size` bytes,
    /// invalid UTF-8 replaced), as telegraf's option. Default: none.
    response_body_field: Option<String>,
}

/// A secret kept out of `Debug` output (and so out of logs).
#[derive(Clone)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Debug, Clone)]
pub enum Bearer {
    Inline(Secret),
    File(PathBuf),
    Env(String),
}

/// A parsed URL.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// As configured (the `server` tag).
    pub url: String,
    pub https: bool,
    pub host: String,
    pub port: u16,
    /// `host[:port]` as written, for Host / `:authority`.
    pub authority: String,
    /// Origin-form path and query, percent-encoded where needed.
    pub path: String,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub targets: Vec<Target>,
    pub timeout: Duration,
    pub method: hyper::Method,
    pub follow_redirects: bool,
    pub body: Bytes,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub host_header: Option<String>,
    pub basic: Option<Secret>,
    pub bearer: Option<Bearer>,
    pub expected_status: Option<u16>,
    pub string_match: Option<Regex>,
    pub body_max: u64,
    pub trust: Trust,
    pub tls_server_name: Option<String>,
    pub insecure: bool,
    pub source: Source,
    pub ip_version: IpVersion,
    pub probe_all: bool,
    pub http2: bool,
    /// The proxy's host and port.
    pub proxy: Option<Target>,
    /// (response header, tag key).
    pub header_tags: Vec<(HeaderName, String)>,
    pub body_field: Option<String>,
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Parses `"1MiB"`, `"512KB"`, `"1024"` or an integer into bytes.
pub fn parse_size(v: &toml::Value) -> Result<u64, String> {
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

/// Percent-encodes bytes a request target may not contain.
fn encode_path(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for b in p.bytes() {
        if b <= 0x20 || b >= 0x7f || b"\"<>\\^`{|}".contains(&b) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// Parses `http(s)://host[:port][/path][?query]` (a `#fragment` is dropped).
pub fn parse_url(url: &str) -> Result<Target, String> {
    let (https, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else if let Some(r) = url.strip_prefix("http://") {
        (false, r)
    } else {
        return Err("URL must start with http:// or https://".into());
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    if authority.contains('@') {
        return Err("credentials in the URL are not supported; use username/password".into());
    }
    let default_port = if https { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, p) = v6.split_once(']').ok_or("unclosed [ in URL host")?;
        let port = match p.strip_prefix(':') {
            Some(p) => p.parse().map_err(|_| "invalid port in URL")?,
            None if p.is_empty() => default_port,
            None => return Err("invalid URL host".into()),
        };
        (h.to_owned(), port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h.to_owned(), p.parse().map_err(|_| "invalid port in URL")?),
            None => (authority.to_owned(), default_port),
        }
    };
    if host.is_empty() {
        return Err("URL has no host".into());
    }
    let tail = tail.split('#').next().unwrap_or("");
    let path = match tail {
        "" => "/".to_owned(),
        t if t.starts_with('?') => format!("/{}", encode_path(t)),
        t => encode_path(t),
    };
    path.parse::<hyper::Uri>()
        .map_err(|e| format!("invalid URL path: {e}"))?;
    Ok(Target {
        url: url.to_owned(),
        https,
        host,
        port,
        authority: authority.to_owned(),
        path,
    })
}

pub fn resolve(raw: Raw) -> Result<Config, SpanError> {
    let proxy = match &raw.http_proxy {
        Some(p) => {
            let t = parse_url(p.get_ref())
                .ok()
                .filter(|t| !t.https && t.path == "/")
                .ok_or_else(|| {
                    SpanError::new(p.span(), "http_proxy", "must be http://host:port")
                })?;
            if raw.probe_all_addresses == Some(true) {
                return Err(SpanError::new(
                    p.span(),
                    "http_proxy",
                    "cannot be combined with probe_all_addresses",
                ));
            }
            Some(t)
        }
        None => None,
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
    let method = match &raw.method {
        None => hyper::Method::GET,
        Some(m) => hyper::Method::from_bytes(m.get_ref().as_bytes())
            .map_err(|_| SpanError::new(m.span(), "method", "invalid HTTP method"))?,
    };
    let mut headers = Vec::new();
    let mut host_header = None;
    if let Some(h) = &raw.headers {
        for (k, v) in h.get_ref() {
            if k.eq_ignore_ascii_case("host") {
                host_header = Some(v.clone());
                continue;
            }
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|_| SpanError::new(h.span(), "headers", format!("invalid name {k:?}")))?;
            let value = HeaderValue::from_str(v).map_err(|_| {
                SpanError::new(h.span(), "headers", format!("invalid value for {k:?}"))
            })?;
            headers.push((name, value));
        }
    }
    let basic = match (&raw.username, &raw.password) {
        (None, None) => None,
        (u, p) => Some(Secret(base64(
            format!(
                "{}:{}",
                u.as_deref().unwrap_or(""),
                p.as_deref().unwrap_or("")
            )
            .as_bytes(),
        ))),
    };
    let bearer = match (raw.token, raw.bearer_token, raw.bearer_token_env) {
        (Some(t), None, None) => Some(Bearer::Inline(Secret(t))),
        (None, Some(f), None) => Some(Bearer::File(PathBuf::from(f))),
        (None, None, Some(e)) => Some(Bearer::Env(e)),
        (None, None, None) => None,
        _ => {
            return Err(SpanError::new(
                0..0,
                "token",
                "set only one of token, bearer_token, bearer_token_env",
            ));
        }
    };
    let string_match = match &raw.response_string_match {
        Some(s) => Some(
            Regex::new(s.get_ref())
                .map_err(|e| SpanError::new(s.span(), "response_string_match", e.to_string()))?,
        ),
        None => None,
    };
    let body_max = match &raw.response_body_max_size {
        Some(v) => parse_size(v.get_ref())
            .map_err(|e| SpanError::new(v.span(), "response_body_max_size", e))?,
        None => 32 * 1024 * 1024,
    };
    let mut trust = Trust::from_config(&raw.tls_ca)?;
    match (&raw.tls_cert, &raw.tls_key) {
        (None, None) => {}
        (Some(c), Some(k)) => {
            trust = trust
                .with_client_cert(std::path::Path::new(c.get_ref()), std::path::Path::new(k))
                .map_err(|e| SpanError::new(c.span(), "tls_cert", e))?;
        }
        (c, _) => {
            return Err(SpanError::new(
                c.as_ref().map_or(0..0, |c| c.span()),
                "tls_cert",
                "tls_cert and tls_key go together",
            ));
        }
    }
    let source_address =
        match &raw.source_address {
            Some(s) => Some(s.get_ref().parse::<IpAddr>().map_err(|_| {
                SpanError::new(s.span(), "source_address", "must be an IP address")
            })?),
            None => None,
        };
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
        body: Bytes::from(raw.body.unwrap_or_default()),
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
            interface: raw.interface,
        },
        ip_version,
        probe_all: raw.probe_all_addresses.unwrap_or(false),
        http2: raw.http2.unwrap_or(true),
        proxy,
        header_tags,
        body_field: raw.response_body_field.filter(|f| !f.is_empty()),
    })
}

/// telegraf's result codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success = 0,
    StringMismatch = 1,
    BodyReadError = 2,
    ConnectionFailed = 3,
    Timeout = 4,
    DnsError = 5,
    StatusCodeMismatch = 6,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::StringMismatch => "response_string_mismatch",
            Outcome::BodyReadError => "body_read_error",
            Outcome::ConnectionFailed => "connection_failed",
            Outcome::Timeout => "timeout",
            Outcome::DnsError => "dns_error",
            Outcome::StatusCodeMismatch => "response_status_code_mismatch",
        }
    }
}

/// Phase durations, summed over redirect hops; `None` = the phase never happened.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Phases {
    pub dns: Option<Duration>,
    pub connect: Option<Duration>,
    pub tls: Option<Duration>,
    pub write: Option<Duration>,
    pub ttfb: Option<Duration>,
    pub transfer: Option<Duration>,
}

fn add(slot: &mut Option<Duration>, d: Duration) {
    *slot = Some(slot.unwrap_or_default() + d);
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub outcome: Outcome,
    pub phases: Phases,
    /// Start → response headers (all hops); `None` when no response arrived.
    pub response_time: Option<Duration>,
    pub status: Option<u16>,
    pub content_length: Option<u64>,
    pub string_match: Option<bool>,
    pub status_match: Option<bool>,
    pub cert_expiry_s: Option<i64>,
    pub verification: Option<Result<(), String>>,
    pub redirects: u32,
    pub http_version: Option<&'static str>,
    /// (tag key, header value) from `http_header_tags`.
    pub header_tags: Vec<(String, String)>,
    /// The body, when `response_body_field` is set.
    pub body: Option<String>,
}

pub struct HttpResponse {
    config: Arc<Config>,
    in_flight: InFlight,
}

impl HttpResponse {
    pub fn new(config: Config) -> Self {
        HttpResponse {
            config: Arc::new(config),
            in_flight: InFlight::default(),
        }
    }

    pub async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        let auth = authorization(&self.config);
        let mut set = JoinSet::new();
        for (i, target) in self.config.targets.iter().enumerate() {
            let (c, t, fl, auth) = (
                self.config.clone(),
                target.clone(),
                self.in_flight.clone(),
                auth.clone(),
            );
            set.spawn(async move { (i, probe_target(&c, &t, &fl, auth.as_ref()).await) });
        }
        let mut results = Vec::new();
        while let Some(r) = set.join_next().await {
            if let Ok(r) = r {
                results.push(r);
            }
        }
        // Output in configuration order, whatever order the probes finished in.
        results.sort_by_key(|(i, _)| *i);
        for (i, reports) in results {
            let target = &self.config.targets[i];
            for (ip, r) in reports {
                acc.add(to_metric(&self.config, target, ip, &r, ts));
            }
        }
        Ok(())
    }
}

/// The Authorization header value for this gather (bearer files and variables are read anew).
fn authorization(c: &Config) -> Option<HeaderValue> {
    let token = match &c.bearer {
        None => return c.basic.as_ref().and_then(basic_value),
        Some(Bearer::Inline(s)) => Some(s.0.clone()),
        Some(Bearer::File(p)) => match std::fs::read_to_string(p) {
            Ok(s) => Some(s.trim().to_owned()),
            Err(e) => {
                tracing::warn!(file = %p.display(), "cannot read bearer token: {e}");
                None
            }
        },
        Some(Bearer::Env(v)) => match std::env::var(v) {
            Ok(s) => Some(s.trim().to_owned()),
            Err(_) => {
                tracing::warn!(variable = %v, "bearer token variable is not set");
                None
            }
        },
    };
    let mut v = HeaderValue::from_str(&format!("Bearer {}", token?)).ok()?;
    v.set_sensitive(true);
    Some(v)
}

fn basic_value(b: &Secret) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(&format!("Basic {}", b.0)).ok()?;
    v.set_sensitive(true);
    Some(v)
}

fn to_metric(c: &Config, t: &Target, ip: Option<IpAddr>, r: &Report, ts: i64) -> Metric {
    let mut m = Metric::new("http_response", ts)
        .tag("server", t.url.clone())
        .tag("method", c.method.as_str().to_owned());
    if let Some(ip) = ip {
        m = m.tag("ip", ip.to_string());
    }
    if let Some(s) = r.status {
        m = m.tag("status_code", s.to_string());
    }
    for (k, v) in &r.header_tags {
        m = m.tag(k.clone(), v.clone());
    }
    let secs = |d: Option<Duration>| d.map(|d| d.as_secs_f64());
    m = m
        .tag("result", r.outcome.name())
        .field("result_code", r.outcome as i64)
        .field("result_type", r.outcome.name())
        .field_opt("response_time", secs(r.response_time))
        .field_opt("http_response_code", r.status.map(i64::from))
        .field_opt("content_length", r.content_length)
        .field_opt("response_string_match", r.string_match.map(i64::from))
        .field_opt("response_status_code_match", r.status_match.map(i64::from))
        .field_opt("dns_time", secs(r.phases.dns))
        .field_opt("connect_time", secs(r.phases.connect))
        .field_opt("tls_time", secs(r.phases.tls))
        .field_opt("request_write_time", secs(r.phases.write))
        .field_opt("ttfb", secs(r.phases.ttfb))
        .field_opt("transfer_time", secs(r.phases.transfer))
        .field_opt("tls_cert_expiry_s", r.cert_expiry_s)
        .field_opt(
            "tls_verification_code",
            r.verification.as_ref().map(|v| i64::from(v.is_err())),
        )
        .field_opt(
            "tls_verification_error",
            r.verification
                .as_ref()
                .and_then(|v| v.as_ref().err().cloned()),
        )
        .field_opt("http_version", r.http_version);
    if r.status.is_some() {
        m = m.field("redirects", i64::from(r.redirects));
    }
    if let (Some(f), Some(b)) = (&c.body_field, &r.body) {
        m = m.field(f.clone(), b.clone());
    }
    m
}

/// Probes one URL: one report, or one per resolved address with `probe_all_addresses`.
async fn probe_target(
    c: &Config,
    t: &Target,
    in_flight: &InFlight,
    auth: Option<&HeaderValue>,
) -> Vec<(Option<IpAddr>, Report)> {
    if !c.probe_all || t.host.parse::<IpAddr>().is_ok() {
        return vec![(None, probe(c, t, None, in_flight, auth).await)];
    }
    let start = Instant::now();
    match probe::lookup(&t.host, t.port, c.timeout, in_flight).await {
        Ok(addrs) => {
            let dns = start.elapsed();
            let addrs = c.ip_version.apply(addrs);
            let mut set = JoinSet::new();
            for (i, a) in addrs.into_iter().enumerate() {
                let (c2, t2, fl, auth) = (c.clone(), t.clone(), in_flight.clone(), auth.cloned());
                set.spawn(async move {
                    let r = probe(&c2, &t2, Some((a, dns, start)), &fl, auth.as_ref()).await;
                    (i, Some(a.ip()), r)
                });
            }
            let mut out = Vec::new();
            while let Some(Ok(r)) = set.join_next().await {
                out.push(r);
            }
            out.sort_by_key(|r| r.0);
            out.into_iter().map(|(_, ip, r)| (ip, r)).collect()
        }
        Err(e) => vec![(None, lookup_failure(e, start.elapsed()))],
    }
}

fn empty_report(outcome: Outcome) -> Report {
    Report {
        outcome,
        phases: Phases::default(),
        response_time: None,
        status: None,
        content_length: None,
        string_match: None,
        status_match: None,
        cert_expiry_s: None,
        verification: None,
        redirects: 0,
        http_version: None,
        header_tags: Vec::new(),
        body: None,
    }
}

fn lookup_failure(e: LookupError, _took: Duration) -> Report {
    match e {
        LookupError::Timeout | LookupError::Busy => empty_report(Outcome::Timeout),
        e => {
            tracing::debug!("{e}");
            empty_report(Outcome::DnsError)
        }
    }
}

/// One probe with redirects. `pre` = (address, lookup time, lookup start) when the caller
/// already resolved the name (`probe_all_addresses`).
async fn probe(
    c: &Config,
    t: &Target,
    pre: Option<(SocketAddr, Duration, Instant)>,
    in_flight: &InFlight,
    auth: Option<&HeaderValue>,
) -> Report {
    let start = pre.map(|p| p.2).unwrap_or_else(Instant::now);
    let deadline = start + c.timeout;
    let mut report = empty_report(Outcome::Success);
    let mut target = t.clone();
    let mut method = c.method.clone();
    let mut body = c.body.clone();
    let mut pre = pre.map(|(a, d, _)| (a, d));
    let mut response_time = Duration::ZERO;
    loop {
        let hop = hop(
            c,
            &target,
            &method,
            &body,
            pre.take(),
            deadline,
            in_flight,
            auth,
        )
        .await;
        let p = &hop.phases;
        for (slot, v) in [
            (&mut report.phases.dns, p.dns),
            (&mut report.phases.connect, p.connect),
            (&mut report.phases.tls, p.tls),
            (&mut report.phases.write, p.write),
            (&mut report.phases.ttfb, p.ttfb),
            (&mut report.phases.transfer, p.transfer),
        ] {
            if let Some(v) = v {
                add(slot, v);
            }
        }
        if hop.verification.is_some() {
            report.verification = hop.verification.clone();
            report.cert_expiry_s = hop.cert_expiry_s;
        }
        let Some(resp) = hop.response else {
            // The last request got no response: no response time nor status (telegraf's
            // rule), even if earlier redirect hops had them.
            report.outcome = hop.failure.unwrap_or(Outcome::ConnectionFailed);
            report.response_time = None;
            report.status = None;
            report.http_version = None;
            return report;
        };
        response_time += hop.response_time.unwrap_or_default();
        report.response_time = Some(response_time);
        report.status = Some(resp.status);
        report.http_version = Some(resp.version);
        let redirect = c.follow_redirects
            && matches!(resp.status, 301 | 302 | 303 | 307 | 308)
            && report.redirects < 10;
        if redirect && let Some(next) = resp.location.as_deref().and_then(|l| follow(&target, l)) {
            report.redirects += 1;
            if resp.status == 303 || (matches!(resp.status, 301 | 302) && method == "POST") {
                method = hyper::Method::GET;
                body = Bytes::new();
            }
            target = next;
            continue;
        }
        report.content_length = Some(resp.body_len);
        report.header_tags = resp.header_tags;
        if c.body_field.is_some() {
            report.body = Some(String::from_utf8_lossy(&resp.body).into_owned());
        }
        if let Some(o) = hop.failure {
            report.outcome = o;
            return report;
        }
        if let Some(want) = c.expected_status {
            let ok = want == resp.status;
            report.status_match = Some(ok);
            if !ok {
                report.outcome = Outcome::StatusCodeMismatch;
            }
        }
        if let Some(re) = &c.string_match {
            let ok = re.is_match(&resp.body);
            report.string_match = Some(ok);
            if !ok {
                report.outcome = Outcome::StringMismatch;
            }
        }
        return report;
    }
}

/// The next URL for a `Location` value (absolute, or relative to the current target).
fn follow(cur: &Target, loc: &str) -> Option<Target> {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        return parse_url(loc).ok();
    }
    let scheme = if cur.https { "https" } else { "http" };
    let path = if loc.starts_with('/') {
        loc.to_owned()
    } else {
        let dir = cur.path.split('?').next().unwrap_or("/");
        let dir = &dir[..dir.rfind('/').map_or(0, |i| i + 1)];
        format!("{dir}{loc}")
    };
    let mut t = parse_url(&format!("{scheme}://{}{path}", cur.authority)).ok()?;
    t.url = cur.url.clone();
    Some(t)
}

struct HopResponse {
    status: u16,
    version: &'static str,
    location: Option<String>,
    header_tags: Vec<(String, String)>,
    body: Vec<u8>,
    body_len: u64,
}

#[derive(Default)]
struct Hop {
    phases: Phases,
    response_time: Option<Duration>,
    response: Option<HopResponse>,
    /// Set when the hop failed (no response) or the body read failed (response kept).
    failure: Option<Outcome>,
    verification: Option<Result<(), String>>,
    cert_expiry_s: Option<i64>,
}

/// Write/read instants seen on the connection, below HTTP and above TLS.
#[derive(Default)]
struct IoTimes {
    last_write: Option<Instant>,
}

/// Records when the last byte was written, so `ttfb` starts when the request left.
struct TimingIo<S> {
    inner: S,
    times: Arc<Mutex<IoTimes>>,
}

impl<S> TimingIo<S> {
    fn wrote(&self) {
        if let Ok(mut t) = self.times.lock() {
            t.last_write = Some(Instant::now());
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TimingIo<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TimingIo<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.wrote();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.wrote();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn timed_out(deadline: Instant) -> bool {
    Instant::now() >= deadline
}

/// One request on a fresh connection. Phase boundaries are single `Instant`s, so the phases are
/// contiguous and add up to the hop's response time.
#[allow(clippy::too_many_arguments)]
async fn hop(
    c: &Config,
    t: &Target,
    method: &hyper::Method,
    body: &Bytes,
    pre: Option<(SocketAddr, Duration)>,
    deadline: Instant,
    in_flight: &InFlight,
    auth: Option<&HeaderValue>,
) -> Hop {
    let mut hop = Hop::default();
    let t0 = Instant::now();
    let remaining = |now: Instant| deadline.saturating_duration_since(now);
    // Name lookup (of the proxy when there is one).
    let (host, port) = match &c.proxy {
        Some(p) => (p.host.as_str(), p.port),
        None => (t.host.as_str(), t.port),
    };
    let (addr, t_dns) = if let Some((a, dns)) = pre {
        hop.phases.dns = Some(dns);
        (a, t0)
    } else if let Ok(ip) = host.parse::<IpAddr>() {
        (SocketAddr::new(ip, port), t0)
    } else {
        match probe::lookup(host, port, remaining(t0), in_flight).await {
            Ok(addrs) => {
                let now = Instant::now();
                hop.phases.dns = Some(now - t0);
                match c.ip_version.apply(addrs).first() {
                    Some(a) => (*a, now),
                    None => {
                        hop.failure = Some(Outcome::DnsError);
                        return hop;
                    }
                }
            }
            Err(e) => {
                hop.failure = Some(lookup_failure(e, t0.elapsed()).outcome);
                return hop;
            }
        }
    };
    // TCP connect.
    let mut tcp = match probe::connect_tcp(addr, &c.source, remaining(t_dns)).await {
        Connect::Ok(s) => s,
        Connect::Timeout => {
            hop.failure = Some(Outcome::Timeout);
            return hop;
        }
        Connect::Failed(e) => {
            tracing::debug!(%addr, "connect: {e}");
            hop.failure = Some(Outcome::ConnectionFailed);
            return hop;
        }
    };
    if c.proxy.is_some() && t.https {
        match tokio::time::timeout(remaining(t_dns), connect_tunnel(&mut tcp, t)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::debug!(url = %t.url, "proxy CONNECT: {e}");
                hop.failure = Some(Outcome::ConnectionFailed);
                return hop;
            }
            Err(_) => {
                hop.failure = Some(Outcome::Timeout);
                return hop;
            }
        }
    }
    let t_conn = Instant::now();
    hop.phases.connect = Some(t_conn - t_dns);
    let times = Arc::new(Mutex::new(IoTimes::default()));
    let fail_at = |hop: &mut Hop, e: &dyn std::fmt::Display| {
        tracing::debug!(url = %t.url, "{e}");
        hop.failure = Some(if timed_out(deadline) {
            Outcome::Timeout
        } else {
            Outcome::ConnectionFailed
        });
    };
    // TLS, then the HTTP connection on top.
    let (sender, t_ready, version, driver) = if t.https {
        let name = match tls::server_name(c.tls_server_name.as_deref().unwrap_or(&t.host)) {
            Ok(n) => n,
            Err(e) => {
                fail_at(&mut hop, &e);
                return hop;
            }
        };
        let alpn: &[&[u8]] = if c.http2 {
            &[b"h2", b"http/1.1"]
        } else {
            &[b"http/1.1"]
        };
        let hs = tokio::time::timeout(
            remaining(t_conn),
            tls::handshake(tcp, &c.trust, name, !c.insecure, alpn),
        )
        .await;
        let t_tls = Instant::now();
        let hs = match hs {
            Ok(hs) => hs,
            Err(_) => {
                hop.failure = Some(Outcome::Timeout);
                return hop;
            }
        };
        hop.verification = hs.record.verified.clone();
        if let Some(leaf) = hs.record.chain.first()
            && let Ok(info) = tls::parse_cert(leaf)
        {
            hop.cert_expiry_s = Some(tls::expiry_seconds(&info, tls::unix_now()));
        }
        let stream = match hs.stream {
            Ok(s) => s,
            Err(e) => {
                hop.phases.tls = None;
                fail_at(&mut hop, &e);
                return hop;
            }
        };
        hop.phases.tls = Some(t_tls - t_conn);
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = TokioIo::new(TimingIo {
            inner: stream,
            times: times.clone(),
        });
        match connect_http(io, h2, deadline).await {
            Ok((s, d)) => (s, t_tls, if h2 { "2" } else { "1.1" }, d),
            Err(e) => {
                fail_at(&mut hop, &e);
                return hop;
            }
        }
    } else {
        let io = TokioIo::new(TimingIo {
            inner: tcp,
            times: times.clone(),
        });
        match connect_http(io, false, deadline).await {
            Ok((s, d)) => (s, t_conn, "1.1", d),
            Err(e) => {
                fail_at(&mut hop, &e);
                return hop;
            }
        }
    };
    let _driver = AbortOnDrop(driver);
    // The request.
    let uri = if version == "2" {
        format!("https://{}{}", t.authority, t.path)
    } else if c.proxy.is_some() && !t.https {
        format!("http://{}{}", t.authority, t.path)
    } else {
        t.path.clone()
    };
    let mut req = hyper::Request::builder().method(method.clone()).uri(uri);
    if version != "2" {
        req = req.header(
            hyper::header::HOST,
            c.host_header.as_deref().unwrap_or(&t.authority),
        );
    } else if let Some(h) = &c.host_header {
        req = req.header(hyper::header::HOST, h.as_str());
    }
    req = req.header(
        hyper::header::USER_AGENT,
        concat!("metrics-agent/", env!("CARGO_PKG_VERSION")),
    );
    for (k, v) in &c.headers {
        req = req.header(k, v);
    }
    if let Some(a) = auth {
        req = req.header(hyper::header::AUTHORIZATION, a.clone());
    }
    let req = match req.body(Full::new(body.clone())) {
        Ok(r) => r,
        Err(e) => {
            fail_at(&mut hop, &e);
            return hop;
        }
    };
    let mut sender = sender;
    let resp = tokio::time::timeout(remaining(t_ready), sender.send(req)).await;
    let t_hdr = Instant::now();
    let t_written = times
        .lock()
        .ok()
        .and_then(|t| t.last_write)
        .filter(|w| *w >= t_ready && *w <= t_hdr);
    if let Some(w) = t_written {
        hop.phases.write = Some(w - t_ready);
    }
    let resp = match resp {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            fail_at(&mut hop, &e);
            return hop;
        }
        Err(_) => {
            hop.failure = Some(Outcome::Timeout);
            return hop;
        }
    };
    let t_written = t_written.unwrap_or(t_ready);
    hop.phases.write = Some(t_written - t_ready);
    hop.phases.ttfb = Some(t_hdr - t_written);
    hop.response_time =
        Some(t_hdr - t0 + hop.phases.dns.filter(|_| pre.is_some()).unwrap_or_default());
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get(hyper::header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let header_tags = c
        .header_tags
        .iter()
        .filter_map(|(h, tag)| {
            let v = resp.headers().get(h)?.to_str().ok()?;
            Some((tag.clone(), v.to_owned()))
        })
        .collect();
    // The body: counted up to body_max, kept only for the string match or the body field.
    let keep = c.string_match.is_some() || c.body_field.is_some();
    let mut body = resp.into_body();
    let mut data = Vec::new();
    let mut len: u64 = 0;
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| e.to_string())?;
            if let Ok(chunk) = frame.into_data() {
                len += chunk.len() as u64;
                if len > c.body_max {
                    return Err(format!("body larger than {} bytes", c.body_max));
                }
                if keep {
                    data.extend_from_slice(&chunk);
                }
            }
        }
        Ok(())
    };
    let read = tokio::time::timeout(remaining(t_hdr), read).await;
    let t_body = Instant::now();
    match read {
        Ok(Ok(())) => hop.phases.transfer = Some(t_body - t_hdr),
        Ok(Err(e)) => {
            tracing::debug!(url = %t.url, "body: {e}");
            hop.failure = Some(Outcome::BodyReadError);
        }
        Err(_) => hop.failure = Some(Outcome::Timeout),
    }
    hop.response = Some(HopResponse {
        status,
        version,
        location,
        header_tags,
        body: data,
        body_len: len,
    });
    hop
}

/// Opens a tunnel to the target through the proxy `tcp` is connected to.
async fn connect_tunnel(tcp: &mut tokio::net::TcpStream, t: &Target) -> io::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = if t.host.contains(':') {
        format!("[{}]:{}", t.host, t.port)
    } else {
        format!("{}:{}", t.host, t.port)
    };
    tcp.write_all(format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n").as_bytes())
        .await?;
    // The proxy sends nothing after its reply until we speak, so reading in chunks cannot
    // swallow TLS bytes. Headers of a CONNECT reply are small: 8 KiB bounds a broken proxy.
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 || buf.len() > 8192 {
            return Err(io::Error::other("proxy closed or sent an oversized reply"));
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let status = buf
        .split(|&b| b == b' ')
        .nth(1)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<u16>().ok());
    match status {
        Some(200..=299) => Ok(()),
        _ => Err(io::Error::other(format!(
            "proxy refused the tunnel: {:?}",
            String::from_utf8_lossy(buf.split(|&b| b == b'\r').next().unwrap_or_default())
        ))),
    }
}

/// Aborts the connection task when the probe ends.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

enum Sender {
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
}

impl Sender {
    async fn send(
        &mut self,
        req: hyper::Request<Full<Bytes>>,
    ) -> hyper::Result<hyper::Response<hyper::body::Incoming>> {
        match self {
            Sender::H1(s) => s.send_request(req).await,
            Sender::H2(s) => s.send_request(req).await,
        }
    }
}

async fn connect_http<S>(
    io: TokioIo<S>,
    h2: bool,
    deadline: Instant,
) -> Result<(Sender, tokio::task::JoinHandle<()>), String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let remaining = deadline.saturating_duration_since(Instant::now());
    let r = if h2 {
        tokio::time::timeout(
            remaining,
            hyper::client::conn::http2::handshake(TokioExecutor::new(), io),
        )
        .await
        .map(|r| {
            r.map(|(s, conn)| {
                (
                    Sender::H2(s),
                    tokio::spawn(async move {
                        let _ = conn.await;
                    }),
                )
            })
        })
    } else {
        tokio::time::timeout(remaining, hyper::client::conn::http1::handshake(io))
            .await
            .map(|r| {
                r.map(|(s, conn)| {
                    (
                        Sender::H1(s),
                        tokio::spawn(async move {
                            let _ = conn.await;
                        }),
                    )
                })
            })
    };
    match r {
        Err(_) => Err("timed out setting up the HTTP connection".into()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(v)) => Ok(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = parse_url("https://example.org:8443/a b?q=\"x\",y=1#frag").unwrap();
        assert!(t.https);
        assert_eq!((t.host.as_str(), t.port), ("example.org", 8443));
        assert_eq!(t.path, "/a%20b?q=%22x%22,y=1");
        let t = parse_url("http://[::1]/").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("::1", 80, "/"));
        let t = parse_url("http://h?x=1").unwrap();
        assert_eq!(t.path, "/?x=1");
        assert!(parse_url("ftp://h/").is_err());
        assert!(parse_url("http://u:p@h/").is_err());
        assert!(parse_url("http://h:x/").is_err());
    }

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
    fn relative_redirects() {
        let cur = parse_url("http://h:8080/a/b?x").unwrap();
        assert_eq!(follow(&cur, "/c").unwrap().path, "/c");
        assert_eq!(follow(&cur, "c").unwrap().path, "/a/c");
        assert_eq!(follow(&cur, "https://o/").unwrap().host, "o");
    }

    #[test]
    fn proxy_options() {
        let r = |s: &str| resolve(toml::from_str::<Raw>(s).unwrap());
        assert!(r("http_proxy = \"http://127.0.0.1:3128\"").is_ok());
        assert!(r("http_proxy = \"https://p:3128\"").is_err());
        assert!(r("http_proxy = \"http://u:p@p:3128\"").is_err());
        assert!(r("http_proxy = \"http://p:3128\"\nprobe_all_addresses = true").is_err());
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
