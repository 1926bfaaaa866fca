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

mod body;
mod config;
mod conn;
mod phases;
mod url;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::HeaderValue;
use tokio::task::JoinSet;

use super::GatherError;
use super::probe::{self, InFlight, LookupError};
use crate::output::{Accumulator, Metric, now_ns};
use crate::options::Secret;
pub(crate) use config::{Config, Raw, resolve};
use phases::{Request, hop};
use url::follow;
pub(crate) use url::Target;

/// telegraf's result codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success = 0,
    StringMismatch = 1,
    BodyReadError = 2,
    ConnectionFailed = 3,
    Timeout = 4,
    DnsError = 5,
    StatusCodeMismatch = 6,
}

impl Outcome {
    pub(crate) fn name(self) -> &'static str {
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
pub(crate) struct Phases {
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
pub(crate) struct Report {
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

pub(crate) struct HttpResponse {
    config: Arc<Config>,
    in_flight: InFlight,
}

impl HttpResponse {
    pub(crate) fn new(config: Config) -> Self {
        HttpResponse {
            config: Arc::new(config),
            in_flight: InFlight::default(),
        }
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
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
    let Some(bearer) = &c.bearer else {
        return c.basic.as_ref().and_then(basic_value);
    };
    let token = match bearer.read() {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("bearer token: {e}");
            return None;
        }
    };
    let mut v = HeaderValue::from_str(&format!("Bearer {}", token.expose())).ok()?;
    v.set_sensitive(true);
    Some(v)
}

fn basic_value(b: &Secret) -> Option<HeaderValue> {
    let mut v = HeaderValue::from_str(&format!("Basic {}", b.expose())).ok()?;
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
        let req = Request {
            method: &method,
            body: &body,
            auth,
        };
        let hop = hop(c, &target, req, pre.take(), deadline, in_flight).await;
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
        report.body = body::field(c, &resp.body);
        if let Some(o) = hop.failure {
            report.outcome = o;
            return report;
        }
        body::judge(c, resp.status, &resp.body, &mut report);
        return report;
    }
}

super::ticked_input!(HttpResponse, super::Shape::Ticked);
