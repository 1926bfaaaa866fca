//! One hop: one request on a fresh connection, one method per phase (dns, connect, tls,
//! request write + ttfb, transfer). Phase boundaries are single `Instant`s handed from one phase
//! to the next, so the phases are contiguous and add up to the hop's response time.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderName, HeaderValue};
use hyper_util::rt::TokioIo;
use tokio_rustls::client::TlsStream;

use super::body::{self, Collected};
use super::config::Config;
use super::conn::{
    AbortOnDrop, Conn, IoTimes, Sender, TimingIo, connect_http, connect_tunnel, interface_address,
    socks5_connect,
};
use super::proxy::{Proxy, Scheme};
use super::url::Target;
use super::{Outcome, Phases, lookup_failure};
use crate::modules::probe::{self, Connect, InFlight};
use crate::modules::tls;

pub(super) struct HopResponse {
    pub(super) status: u16,
    pub(super) version: &'static str,
    pub(super) location: Option<String>,
    pub(super) header_tags: Vec<(String, String)>,
    pub(super) body: Vec<u8>,
    pub(super) body_len: u64,
    /// `Set-Cookie` values (collected only when there is a cookie jar).
    pub(super) set_cookies: Vec<String>,
}

#[derive(Default)]
pub(super) struct Hop {
    pub(super) phases: Phases,
    pub(super) response_time: Option<Duration>,
    pub(super) response: Option<HopResponse>,
    /// Set when the hop failed (no response) or the body read failed (response kept).
    pub(super) failure: Option<Outcome>,
    pub(super) verification: Option<Result<(), String>>,
    pub(super) cert_expiry_s: Option<i64>,
}

/// What one request sends.
pub(super) struct Request<'a> {
    pub(super) method: &'a hyper::Method,
    pub(super) body: &'a Bytes,
    pub(super) auth: Option<&'a HeaderValue>,
    pub(super) headers: &'a [(HeaderName, HeaderValue)],
    /// A `Host` header that overrides the URL's authority.
    pub(super) host: Option<&'a str>,
    /// The `Cookie` header from the jar.
    pub(super) cookie: Option<String>,
    /// Keep the response's `Set-Cookie` values (there is a jar).
    pub(super) cookies_wanted: bool,
    /// Read the body even if no option needs it (the cookie login wants it whole).
    pub(super) keep_body: bool,
}

fn timed_out(deadline: Instant) -> bool {
    Instant::now() >= deadline
}

/// One request on a fresh connection. `pre` = (address, lookup time) when the caller already
/// resolved the name.
pub(super) async fn hop(
    c: &Config,
    t: &Target,
    req: Request<'_>,
    pre: Option<(SocketAddr, Duration)>,
    deadline: Instant,
    in_flight: &InFlight,
) -> Hop {
    let mut hop = Hop::default();
    let run = HopRun {
        c,
        t,
        proxy: c.proxies.for_target(t),
        deadline,
        in_flight,
    };
    if let Err(o) = run.phases(&mut hop, req, pre).await {
        hop.failure = Some(o);
    }
    hop
}

struct HopRun<'a> {
    c: &'a Config,
    t: &'a Target,
    proxy: Option<&'a Proxy>,
    deadline: Instant,
    in_flight: &'a InFlight,
}

impl HopRun<'_> {
    fn remaining(&self, now: Instant) -> Duration {
        self.deadline.saturating_duration_since(now)
    }

    /// Logs `e`; a failure past the deadline is a timeout, any other a failed connection.
    fn failed(&self, e: &dyn std::fmt::Display) -> Outcome {
        tracing::debug!(url = %self.t.url, "{e}");
        if timed_out(self.deadline) {
            Outcome::Timeout
        } else {
            Outcome::ConnectionFailed
        }
    }

    /// The phases in order; an error is the outcome of the phase that failed (what the
    /// phases before it measured stays in `hop`).
    async fn phases(
        &self,
        hop: &mut Hop,
        req: Request<'_>,
        pre: Option<(SocketAddr, Duration)>,
    ) -> Result<(), Outcome> {
        let t0 = Instant::now();
        let (addrs, t_dns) = self.dns(hop, pre, t0).await?;
        let tcp = self.connect(&addrs, t_dns).await?;
        let t_conn = Instant::now();
        hop.phases.connect = Some(t_conn - t_dns);
        let times = Arc::new(Mutex::new(IoTimes::default()));
        // TLS, then the HTTP connection on top.
        let (mut sender, t_ready, version, driver) = if self.t.https {
            let (stream, t_tls) = self.tls(hop, tcp, t_conn).await?;
            let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
            let io = TokioIo::new(TimingIo::new(stream, times.clone()));
            let (s, d) = connect_http(io, h2, self.deadline)
                .await
                .map_err(|e| self.failed(&e))?;
            (s, t_tls, if h2 { "2" } else { "1.1" }, d)
        } else {
            let io = TokioIo::new(TimingIo::new(tcp, times.clone()));
            let (s, d) = connect_http(io, false, self.deadline)
                .await
                .map_err(|e| self.failed(&e))?;
            (s, t_conn, "1.1", d)
        };
        let _driver = AbortOnDrop(driver);
        let (cookies_wanted, keep_body) = (req.cookies_wanted, req.keep_body);
        let request = self.request(req, version).map_err(|e| self.failed(&e))?;
        let (resp, t_hdr) = self
            .write_and_ttfb(hop, &mut sender, request, &times, t_ready)
            .await?;
        hop.response_time =
            Some(t_hdr - t0 + hop.phases.dns.filter(|_| pre.is_some()).unwrap_or_default());
        self.transfer(hop, resp, version, t_hdr, cookies_wanted, keep_body)
            .await;
        Ok(())
    }

    /// Name lookup (of the proxy when there is one): the addresses in the resolver's order
    /// and the instant it ended.
    async fn dns(
        &self,
        hop: &mut Hop,
        pre: Option<(SocketAddr, Duration)>,
        t0: Instant,
    ) -> Result<(Vec<SocketAddr>, Instant), Outcome> {
        let (host, port) = match self.proxy {
            Some(p) => (p.at.host.as_str(), p.at.port),
            None => (self.t.host.as_str(), self.t.port),
        };
        if let Some((a, dns)) = pre {
            hop.phases.dns = Some(dns);
            return Ok((vec![a], t0));
        }
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok((vec![SocketAddr::new(ip, port)], t0));
        }
        match probe::lookup(host, port, self.remaining(t0), self.in_flight).await {
            Ok(addrs) => {
                let now = Instant::now();
                hop.phases.dns = Some(now - t0);
                let addrs = self.c.ip_version.apply(addrs);
                match addrs.is_empty() {
                    false => Ok((addrs, now)),
                    true => Err(Outcome::DnsError),
                }
            }
            Err(e) => Err(lookup_failure(e, t0.elapsed()).outcome),
        }
    }

    /// TCP connect (from `interface`'s address when set), plus the SOCKS5 exchange with a
    /// SOCKS5 proxy, or the TLS handshake with an HTTPS proxy and the CONNECT exchange for
    /// https through an HTTP(S) proxy.
    /// The addresses are tried in order until one accepts, as Go's dialer does (`localhost`
    /// is often ::1 first while the server listens on 127.0.0.1 only); a timeout ends it.
    async fn connect(&self, addrs: &[SocketAddr], t_dns: Instant) -> Result<Conn, Outcome> {
        let mut tcp = None;
        for &addr in addrs {
            let from_interface;
            let source = match &self.c.interface {
                Some(name) => match interface_address(name, addr.is_ipv6()) {
                    Ok(ip) => {
                        from_interface = probe::Source {
                            address: Some(ip),
                            interface: None,
                        };
                        &from_interface
                    }
                    Err(e) => {
                        tracing::debug!(url = %self.t.url, "{e}");
                        continue;
                    }
                },
                None => &self.c.source,
            };
            match probe::connect_tcp(addr, source, self.remaining(t_dns)).await {
                Connect::Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Connect::Timeout => return Err(Outcome::Timeout),
                Connect::Failed(e) => tracing::debug!(%addr, "connect: {e}"),
            }
        }
        let Some(tcp) = tcp else {
            return Err(Outcome::ConnectionFailed);
        };
        let Some(proxy) = self.proxy else {
            return Ok(Conn::Plain(tcp));
        };
        if proxy.scheme == Scheme::Socks5 {
            let mut tcp = tcp;
            let hs = socks5_connect(&mut tcp, &self.t.host, self.t.port, proxy.socks_auth.as_ref());
            return match tokio::time::timeout(self.remaining(t_dns), hs).await {
                Ok(Ok(())) => Ok(Conn::Plain(tcp)),
                Ok(Err(e)) => {
                    tracing::debug!(url = %self.t.url, "SOCKS5 proxy: {e}");
                    Err(Outcome::ConnectionFailed)
                }
                Err(_) => Err(Outcome::Timeout),
            };
        }
        let mut conn = if proxy.scheme == Scheme::Https {
            let name = tls::server_name(&proxy.at.host).map_err(|e| self.failed(&e))?;
            let hs = tokio::time::timeout(
                self.remaining(t_dns),
                tls::handshake(tcp, &self.c.trust, name, !self.c.insecure, &[b"http/1.1"]),
            )
            .await
            .map_err(|_| Outcome::Timeout)?;
            let s = hs.stream.map_err(|e| {
                tracing::debug!(url = %self.t.url, "TLS with the proxy: {e}");
                self.failed(&e)
            })?;
            Conn::Tls(Box::new(s))
        } else {
            Conn::Plain(tcp)
        };
        if self.t.https {
            let tunnel = connect_tunnel(&mut conn, self.t, proxy.auth.as_ref());
            match tokio::time::timeout(self.remaining(t_dns), tunnel).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::debug!(url = %self.t.url, "proxy CONNECT: {e}");
                    return Err(Outcome::ConnectionFailed);
                }
                Err(_) => return Err(Outcome::Timeout),
            }
        }
        Ok(conn)
    }

    /// TLS handshake: the stream and the instant it ended. The verdict and the leaf's expiry
    /// are recorded even when the handshake fails.
    async fn tls(
        &self,
        hop: &mut Hop,
        tcp: Conn,
        t_conn: Instant,
    ) -> Result<(TlsStream<Conn>, Instant), Outcome> {
        let name = tls::server_name(self.c.tls_server_name.as_deref().unwrap_or(&self.t.host))
            .map_err(|e| self.failed(&e))?;
        let alpn: &[&[u8]] = if self.c.http2 {
            &[b"h2", b"http/1.1"]
        } else {
            &[b"http/1.1"]
        };
        let hs = tokio::time::timeout(
            self.remaining(t_conn),
            tls::handshake(tcp, &self.c.trust, name, !self.c.insecure, alpn),
        )
        .await;
        let t_tls = Instant::now();
        let hs = hs.map_err(|_| Outcome::Timeout)?;
        hop.verification = hs.record.verified.clone();
        if let Some(leaf) = hs.record.chain.first()
            && let Ok(info) = tls::parse_cert(leaf)
        {
            hop.cert_expiry_s = Some(tls::expiry_seconds(&info, tls::unix_now()));
        }
        let stream = hs.stream.map_err(|e| self.failed(&e))?;
        hop.phases.tls = Some(t_tls - t_conn);
        Ok((stream, t_tls))
    }

    /// The request for HTTP `version` ("1.1" or "2").
    fn request(
        &self,
        r: Request<'_>,
        version: &str,
    ) -> Result<hyper::Request<Full<Bytes>>, hyper::http::Error> {
        let t = self.t;
        let via_proxy = self.proxy.filter(|p| !t.https && p.forwards_http());
        let uri = if version == "2" {
            format!("https://{}{}", t.authority, t.path)
        } else if via_proxy.is_some() {
            format!("http://{}{}", t.authority, t.path)
        } else {
            t.path.clone()
        };
        let mut req = hyper::Request::builder().method(r.method.clone()).uri(uri);
        if version != "2" {
            req = req.header(hyper::header::HOST, r.host.unwrap_or(&t.authority));
        } else if let Some(h) = r.host {
            req = req.header(hyper::header::HOST, h);
        }
        if !r.headers.iter().any(|(k, _)| k == hyper::header::USER_AGENT) {
            req = req.header(
                hyper::header::USER_AGENT,
                concat!("metrics-agent/", env!("CARGO_PKG_VERSION")),
            );
        }
        // One Cookie header: a configured one, then the jar's cookies (Go's AddCookie).
        let mut cookie = r.cookie;
        for (k, v) in r.headers {
            match (k == hyper::header::COOKIE, cookie.take()) {
                (true, Some(jar)) => {
                    let both = format!("{}; {jar}", String::from_utf8_lossy(v.as_bytes()));
                    req = req.header(k, both);
                }
                (_, jar) => {
                    cookie = jar;
                    req = req.header(k, v);
                }
            }
        }
        if let Some(a) = r.auth {
            req = req.header(hyper::header::AUTHORIZATION, a.clone());
        }
        if let Some(a) = via_proxy.and_then(|p| p.auth.as_ref()) {
            req = req.header(hyper::header::PROXY_AUTHORIZATION, a.clone());
        }
        if let Some(c) = cookie {
            req = req.header(hyper::header::COOKIE, c);
        }
        req.body(Full::new(r.body.clone()))
    }

    /// Sends the request: `request_write_time` (connection ready → last request byte
    /// written) and `ttfb` (→ response headers), and the instant the headers came.
    async fn write_and_ttfb(
        &self,
        hop: &mut Hop,
        sender: &mut Sender,
        req: hyper::Request<Full<Bytes>>,
        times: &Mutex<IoTimes>,
        t_ready: Instant,
    ) -> Result<(hyper::Response<hyper::body::Incoming>, Instant), Outcome> {
        let resp = tokio::time::timeout(self.remaining(t_ready), sender.send(req)).await;
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
            Ok(Err(e)) => return Err(self.failed(&e)),
            Err(_) => return Err(Outcome::Timeout),
        };
        let t_written = t_written.unwrap_or(t_ready);
        hop.phases.write = Some(t_written - t_ready);
        hop.phases.ttfb = Some(t_hdr - t_written);
        Ok((resp, t_hdr))
    }

    /// Headers → end of body (`transfer_time`); the response is kept whether or not the body
    /// read succeeded.
    async fn transfer(
        &self,
        hop: &mut Hop,
        resp: hyper::Response<hyper::body::Incoming>,
        version: &'static str,
        t_hdr: Instant,
        cookies_wanted: bool,
        keep_body: bool,
    ) {
        let c = self.c;
        let set_cookies = if cookies_wanted {
            resp.headers()
                .get_all(hyper::header::SET_COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect()
        } else {
            Vec::new()
        };
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
        let keep = keep_body || c.string_match.is_some() || c.body_field.is_some();
        let mut got = Collected::default();
        let read = tokio::time::timeout(
            self.remaining(t_hdr),
            body::read_limited(resp.into_body(), c.body_max, keep, &mut got),
        )
        .await;
        let t_body = Instant::now();
        match read {
            Ok(Ok(())) => hop.phases.transfer = Some(t_body - t_hdr),
            Ok(Err(e)) => {
                tracing::debug!(url = %self.t.url, "body: {e}");
                hop.failure = Some(Outcome::BodyReadError);
            }
            // telegraf's client timeout interrupts the body read, which it reports as a body
            // read error.
            Err(_) => {
                tracing::debug!(url = %self.t.url, "body: timed out");
                hop.failure = Some(Outcome::BodyReadError);
            }
        }
        hop.response = Some(HopResponse {
            status,
            version,
            location,
            header_tags,
            body: got.data,
            body_len: got.len,
            set_cookies,
        });
    }
}
