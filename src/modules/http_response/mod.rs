//! `http_response`: HTTP/1.1 probes (HTTP/2 over TLS by ALPN with `http2 = true`) with
//! per-phase timings, as telegraf's `http_response` input: measurement `http_response`, tags `server` (the URL as
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
//!
//! Options are telegraf's, with its client's behaviour (Go's `net/http` as telegraf sets it
//! up): redirects (`url`), proxies from `http_proxy` or the environment (`proxy`), cookie
//! authentication with a jar (`cookie`), verdicts in telegraf's order (`body`).

mod body;
mod config;
pub(crate) mod conn;
mod cookie;
mod phases;
pub(crate) mod proxy;
pub(crate) mod url;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::header::HeaderValue;
use tokio::task::JoinSet;

use super::GatherError;
use super::probe::{self, InFlight, LookupError};
use crate::output::{Accumulator, Metric, now_ns};
use crate::options::Secret;
pub(crate) use config::{Config, Raw, resolve};
use conn::AbortOnDrop;
use cookie::Jar;
use phases::{Request, hop};
use url::{follow, redirect_method, same_or_subdomain};
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

/// Cookie authentication's state: the jar shared by the probes, and the renewal task.
struct Cookies {
    jar: Arc<Mutex<Jar>>,
    logged_in: bool,
    _renewal: Option<AbortOnDrop>,
}

/// Probes start in batches of at most this many, [`START_SPACING`] apart. All at once, 2,000
/// URLs of one instance meant 2,000 connections (and hyper's buffers, about 10 KB each) open at
/// the same moment and a SYN burst at the targets; paced, probes that answer fast finish
/// before the next batch starts (bench/scale.sh: max RSS 48 -> 32 MiB), and a slow target
/// still delays no other: nothing waits for a probe to finish. Up to 64 URLs start at once,
/// 2,000 within 160 ms. Each probe's phases are timed from its own start.
const START_BATCH: usize = 64;
const START_SPACING: std::time::Duration = std::time::Duration::from_millis(5);

pub(crate) struct HttpResponse {
    config: Arc<Config>,
    in_flight: InFlight,
    cookies: Option<Cookies>,
}

impl HttpResponse {
    pub(crate) fn new(config: Config) -> Self {
        let cookies = config.cookie_auth.as_ref().map(|_| Cookies {
            jar: Arc::default(),
            logged_in: false,
            _renewal: None,
        });
        HttpResponse {
            config: Arc::new(config),
            in_flight: InFlight::default(),
            cookies,
        }
    }

    /// The first login (before the first probes), and from then on the renewal task.
    async fn log_in(&mut self) -> Result<(), GatherError> {
        let Some(ck) = &mut self.cookies else {
            return Ok(());
        };
        if ck.logged_in {
            return Ok(());
        }
        login(&self.config, &ck.jar, &self.in_flight)
            .await
            .map_err(GatherError::Failed)?;
        ck.logged_in = true;
        if let Some(every) = self.config.cookie_auth.as_ref().and_then(|a| a.renewal) {
            let (c, jar, fl) = (self.config.clone(), ck.jar.clone(), self.in_flight.clone());
            ck._renewal = Some(AbortOnDrop(tokio::spawn(async move {
                let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
                // A login slower than the period does not queue up more (Go's ticker drops
                // ticks too).
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                loop {
                    tick.tick().await;
                    if let Err(e) = login(&c, &jar, &fl).await {
                        tracing::error!("cookie auth renewal: {e}");
                    }
                }
            })));
        }
        Ok(())
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        self.log_in().await?;
        let auth = authorization(&self.config);
        let jar = self.cookies.as_ref().map(|c| c.jar.clone());
        let mut set = JoinSet::new();
        let started = tokio::time::Instant::now();
        for (i, target) in self.config.targets.iter().enumerate() {
            if i > 0 && i % START_BATCH == 0 {
                let batch = (i / START_BATCH) as u32;
                tokio::time::sleep_until(started + START_SPACING * batch).await;
            }
            let (c, t, fl, auth, jar) = (
                self.config.clone(),
                target.clone(),
                self.in_flight.clone(),
                auth.clone(),
                jar.clone(),
            );
            set.spawn(async move {
                let cx = Cx {
                    c: &c,
                    in_flight: &fl,
                    auth: auth.as_ref(),
                    jar: jar.as_deref(),
                };
                (i, probe_target(&cx, &t).await)
            });
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

/// Logs in at `cookie_auth_url` into an emptied jar (telegraf's sequence); an error says why
/// the login failed (no answer, or a status outside 2xx).
async fn login(c: &Config, jar: &Mutex<Jar>, in_flight: &InFlight) -> Result<(), String> {
    let Some(a) = &c.cookie_auth else {
        return Ok(());
    };
    if let Ok(mut j) = jar.lock() {
        *j = Jar::default();
    }
    let auth = a.basic.as_ref().and_then(basic_value);
    let req = Request {
        method: &a.method,
        body: &a.body,
        auth: auth.as_ref(),
        headers: &a.headers,
        host: a.host_header.as_deref(),
        cookie: None,
        cookies_wanted: true,
        keep_body: true,
    };
    let hop = hop(c, &a.target, req, None, Instant::now() + c.timeout, in_flight).await;
    let url = &a.target.url;
    let Some(resp) = hop.response else {
        let why = hop.failure.unwrap_or(Outcome::ConnectionFailed).name();
        return Err(format!("cookie auth at {url}: {why}"));
    };
    if let Ok(mut j) = jar.lock() {
        j.store(&a.target, &resp.set_cookies, Instant::now());
    }
    if hop.failure.is_some() {
        return Err(format!("cookie auth at {url}: the answer's body could not be read"));
    }
    if !(200..300).contains(&resp.status) {
        return Err(format!(
            "cookie auth at {url} received status code {} [{}]",
            resp.status,
            String::from_utf8_lossy(&resp.body[..resp.body.len().min(256)])
        ));
    }
    Ok(())
}

/// The Authorization header value for this gather (bearer files and variables are read anew).
/// Basic authentication wins over a token when both are set, as in telegraf (it sets Basic
/// last, replacing the Bearer header).
fn authorization(c: &Config) -> Option<HeaderValue> {
    if let Some(b) = &c.basic {
        return basic_value(b);
    }
    let bearer = c.bearer.as_ref()?;
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

/// What every probe of one gather shares.
#[derive(Clone, Copy)]
struct Cx<'a> {
    c: &'a Config,
    in_flight: &'a InFlight,
    auth: Option<&'a HeaderValue>,
    /// With cookie authentication.
    jar: Option<&'a Mutex<Jar>>,
}

/// Probes one URL: one report, or one per resolved address with `probe_all_addresses`.
async fn probe_target(cx: &Cx<'_>, t: &Target) -> Vec<(Option<IpAddr>, Report)> {
    let (c, in_flight) = (cx.c, cx.in_flight);
    if !c.probe_all || t.host.parse::<IpAddr>().is_ok() {
        return vec![(None, probe(cx, t, None).await)];
    }
    let start = Instant::now();
    match probe::lookup(&t.host, t.port, c.timeout, in_flight).await {
        Ok(addrs) => {
            let dns = start.elapsed();
            let addrs = c.ip_version.apply(addrs);
            let mut set = JoinSet::new();
            for (i, a) in addrs.into_iter().enumerate() {
                let (c2, t2, fl, auth) = (c.clone(), t.clone(), in_flight.clone(), cx.auth.cloned());
                // probe_all_addresses and cookie authentication: each address's probe gets the
                // jar's cookies as they are now.
                let jar = cx.jar.map(|j| Arc::new(Mutex::new(j.lock().map(|j| j.clone()).unwrap_or_default())));
                set.spawn(async move {
                    let cx = Cx {
                        c: &c2,
                        in_flight: &fl,
                        auth: auth.as_ref(),
                        jar: jar.as_deref(),
                    };
                    let r = probe(&cx, &t2, Some((a, dns, start))).await;
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
async fn probe(cx: &Cx<'_>, t: &Target, pre: Option<(SocketAddr, Duration, Instant)>) -> Report {
    let c = cx.c;
    let start = pre.map(|p| p.2).unwrap_or_else(Instant::now);
    let deadline = start + c.timeout;
    let mut report = empty_report(Outcome::Success);
    let mut target = t.clone();
    let mut method = c.method.clone();
    let mut body = c.body.clone();
    let mut pre = pre.map(|(a, d, _)| (a, d));
    let mut response_time = Duration::ZERO;
    // After a redirect to another host (not a subdomain), credentials and configured cookies
    // are no longer sent, and a Host override only survives relative redirects (Go's client).
    let mut auth = cx.auth;
    let mut headers = std::borrow::Cow::Borrowed(c.headers.as_slice());
    let mut host = c.host_header.as_deref();
    loop {
        let cookie = cx
            .jar
            .and_then(|j| j.lock().ok()?.header_for(&target, Instant::now()));
        let req = Request {
            method: &method,
            body: &body,
            auth,
            headers: &headers,
            host,
            cookie,
            cookies_wanted: cx.jar.is_some(),
            keep_body: false,
        };
        let hop = hop(c, &target, req, pre.take(), deadline, cx.in_flight).await;
        if let (Some(jar), Some(resp)) = (cx.jar, &hop.response)
            && let Ok(mut j) = jar.lock()
        {
            j.store(&target, &resp.set_cookies, Instant::now());
        }
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
        let next = match (c.follow_redirects, redirect_method(resp.status, &method)) {
            (true, Some(m)) => resp
                .location
                .as_deref()
                .and_then(|l| Some((m, follow(&target, l)?, l.contains("://")))),
            _ => None,
        };
        if let Some(((m, keep_body), next, absolute)) = next {
            if report.redirects >= 10 {
                // Go's client stops with an error after 10 redirects.
                tracing::debug!(url = %t.url, "stopped after 10 redirects");
                report.outcome = Outcome::ConnectionFailed;
                report.response_time = None;
                report.status = None;
                report.http_version = None;
                return report;
            }
            report.redirects += 1;
            method = m;
            if !keep_body {
                body = Bytes::new();
            }
            if !same_or_subdomain(&next.host, &t.host) {
                auth = None;
                headers = std::borrow::Cow::Owned(
                    headers
                        .iter()
                        .filter(|(k, _)| {
                            !matches!(
                                k.as_str(),
                                "authorization" | "www-authenticate" | "cookie" | "cookie2"
                            )
                        })
                        .cloned()
                        .collect(),
                );
            }
            if absolute {
                host = None;
            }
            target = next;
            continue;
        }
        report.content_length = Some(resp.body_len);
        report.header_tags = resp.header_tags;
        body::judge(c, resp.status, &resp.body, hop.failure.is_some(), &mut report);
        return report;
    }
}

super::ticked_input!(HttpResponse, super::Shape::Ticked);
