//! `net_response`: TCP connect (optionally send a string and expect a reply line) or UDP
//! send/expect against one address, as telegraf's `net_response` input: measurement
//! `net_response`, tags `server`, `port`, `protocol`, `result`; fields `response_time`,
//! `result_code`, `result_type`, `string_found`. Addition: `connect_time`.

use std::time::{Duration, Instant};

use regex::Regex;
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UdpSocket;
use toml::Spanned;

use super::GatherError;
use super::probe::{self, Connect, InFlight, LookupError, Source};
use crate::options::{ConfigDuration, SpanError};
use crate::output::{Accumulator, Metric, now_ns};

/// `[[inputs.net_response]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// `"tcp"` or `"udp"` (required, as in telegraf).
    protocol: Spanned<String>,
    /// `host:port` (`[v6addr]:port`); an empty host means `localhost`. One address per table.
    address: Spanned<String>,
    /// Bound on name lookup plus connect (TCP) or on the whole UDP exchange's setup.
    /// Default 1s (telegraf's).
    timeout: Option<ConfigDuration>,
    /// Bound on waiting for the reply after sending. Default 1s (telegraf's).
    read_timeout: Option<ConfigDuration>,
    /// String written after connecting. Required for UDP.
    send: Option<String>,
    /// Regular expression looked for in the first reply line (TCP) or datagram (UDP); sets
    /// `string_found`. Required for UDP.
    expect: Option<Spanned<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    Tcp,
    Udp,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub protocol: Protocol,
    pub host: String,
    pub port: u16,
    pub timeout: Duration,
    pub read_timeout: Duration,
    pub send: Option<String>,
    pub expect: Option<Regex>,
}

pub(crate) fn resolve(raw: Raw) -> Result<Config, SpanError> {
    let protocol = match raw.protocol.get_ref().as_str() {
        "tcp" => Protocol::Tcp,
        "udp" => Protocol::Udp,
        _ => {
            return Err(SpanError::new(
                raw.protocol.span(),
                "protocol",
                "must be \"tcp\" or \"udp\"",
            ));
        }
    };
    let (host, port) = probe::split_host_port(raw.address.get_ref())
        .map_err(|e| SpanError::new(raw.address.span(), "address", e))?;
    let expect = match &raw.expect {
        Some(e) => Some(
            Regex::new(e.get_ref())
                .map_err(|err| SpanError::new(e.span(), "expect", err.to_string()))?,
        ),
        None => None,
    };
    let send = raw.send.filter(|s| !s.is_empty());
    if protocol == Protocol::Udp && (send.is_none() || expect.is_none()) {
        return Err(SpanError::new(
            raw.protocol.span(),
            "protocol",
            "udp needs both `send` and `expect`",
        ));
    }
    let nonzero = |d: Option<ConfigDuration>| {
        d.map(|d| d.get())
            .filter(|d| !d.is_zero())
            .unwrap_or(Duration::from_secs(1))
    };
    Ok(Config {
        protocol,
        host,
        port,
        timeout: nonzero(raw.timeout),
        read_timeout: nonzero(raw.read_timeout),
        send,
        expect,
    })
}

/// telegraf's result codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success = 0,
    Timeout = 1,
    ConnectionFailed = 2,
    ReadFailed = 3,
    StringMismatch = 4,
}

impl Outcome {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Timeout => "timeout",
            Outcome::ConnectionFailed => "connection_failed",
            Outcome::ReadFailed => "read_failed",
            Outcome::StringMismatch => "string_mismatch",
        }
    }
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Report {
    pub outcome: Outcome,
    /// Start to connected (TCP) or to the reply read (with `expect`), in seconds.
    pub response_time: Option<f64>,
    /// TCP handshake alone (after name lookup), seconds.
    pub connect_time: Option<f64>,
    pub string_found: Option<bool>,
}

pub(crate) struct NetResponse {
    config: Config,
    in_flight: InFlight,
}

impl NetResponse {
    pub(crate) fn new(config: Config) -> Self {
        NetResponse {
            config,
            in_flight: InFlight::default(),
        }
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        let report = probe_once(&self.config, &self.in_flight).await;
        let c = &self.config;
        let mut m = Metric::new("net_response", ts)
            .tag("server", c.host.clone())
            .tag("port", c.port.to_string())
            .tag(
                "protocol",
                match c.protocol {
                    Protocol::Tcp => "tcp",
                    Protocol::Udp => "udp",
                },
            )
            .tag("result", report.outcome.name())
            .field("result_code", report.outcome as i64)
            .field("result_type", report.outcome.name())
            .field_opt("response_time", report.response_time)
            .field_opt("connect_time", report.connect_time);
        if c.expect.is_some() {
            m = m.field("string_found", report.string_found.unwrap_or(false));
        }
        acc.add(m);
        Ok(())
    }
}

async fn resolve_addr(c: &Config, in_flight: &InFlight) -> Result<std::net::SocketAddr, Outcome> {
    if let Ok(ip) = c.host.parse::<std::net::IpAddr>() {
        return Ok(std::net::SocketAddr::new(ip, c.port));
    }
    match probe::lookup(&c.host, c.port, c.timeout, in_flight).await {
        Ok(a) => Ok(a[0]),
        Err(LookupError::Timeout | LookupError::Busy) => Err(Outcome::Timeout),
        Err(e) => {
            tracing::debug!(host = %c.host, "{e}");
            Err(Outcome::ConnectionFailed)
        }
    }
}

fn fail(outcome: Outcome) -> Report {
    Report {
        outcome,
        response_time: None,
        connect_time: None,
        string_found: None,
    }
}

/// One probe, bounded by `timeout` + `read_timeout`.
pub(crate) async fn probe_once(c: &Config, in_flight: &InFlight) -> Report {
    let start = Instant::now();
    let addr = match resolve_addr(c, in_flight).await {
        Ok(a) => a,
        Err(o) => return fail(o),
    };
    match c.protocol {
        Protocol::Tcp => tcp(c, addr, start).await,
        Protocol::Udp => udp(c, addr, start).await,
    }
}

async fn tcp(c: &Config, addr: std::net::SocketAddr, start: Instant) -> Report {
    let remaining = c.timeout.saturating_sub(start.elapsed());
    let t_conn = Instant::now();
    let stream = match probe::connect_tcp(addr, &Source::default(), remaining).await {
        Connect::Ok(s) => s,
        Connect::Timeout => return fail(Outcome::Timeout),
        Connect::Failed(e) => {
            tracing::debug!(%addr, "connect: {e}");
            return fail(Outcome::ConnectionFailed);
        }
    };
    let connected = Instant::now();
    let mut report = Report {
        outcome: Outcome::Success,
        response_time: Some((connected - start).as_secs_f64()),
        connect_time: Some((connected - t_conn).as_secs_f64()),
        string_found: None,
    };
    let mut stream = BufReader::new(stream);
    let exchange = async {
        if let Some(s) = &c.send {
            stream.get_mut().write_all(s.as_bytes()).await?;
        }
        let mut line = Vec::new();
        if c.expect.is_some() {
            stream.read_until(b'\n', &mut line).await?;
        }
        Ok::<_, std::io::Error>(line)
    };
    match tokio::time::timeout(c.read_timeout, exchange).await {
        Ok(Ok(line)) => {
            if let Some(re) = &c.expect {
                report.response_time = Some(start.elapsed().as_secs_f64());
                let found = re.is_match(&String::from_utf8_lossy(&line));
                report.string_found = Some(found);
                if !found {
                    report.outcome = Outcome::StringMismatch;
                }
            }
        }
        Ok(Err(_)) | Err(_) => {
            report.outcome = Outcome::ReadFailed;
            report.string_found = c.expect.as_ref().map(|_| false);
        }
    }
    report
}

async fn udp(c: &Config, addr: std::net::SocketAddr, start: Instant) -> Report {
    let bind: std::net::SocketAddr = if addr.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(_) => return fail(Outcome::ConnectionFailed),
    };
    if sock.connect(addr).await.is_err() {
        return fail(Outcome::ConnectionFailed);
    }
    let send = c.send.as_deref().unwrap_or_default();
    if sock.send(send.as_bytes()).await.is_err() {
        return fail(Outcome::ConnectionFailed);
    }
    // One datagram; 64 KiB holds any UDP payload.
    let mut buf = vec![0u8; 65_536];
    match tokio::time::timeout(c.read_timeout, sock.recv(&mut buf)).await {
        Ok(Ok(n)) => {
            let rt = start.elapsed().as_secs_f64();
            let found = c
                .expect
                .as_ref()
                .is_some_and(|re| re.is_match(&String::from_utf8_lossy(&buf[..n])));
            Report {
                outcome: if found {
                    Outcome::Success
                } else {
                    Outcome::StringMismatch
                },
                response_time: Some(rt),
                connect_time: None,
                string_found: Some(found),
            }
        }
        // A refused datagram (ICMP port unreachable) or no reply within read_timeout.
        _ => Report {
            outcome: Outcome::ReadFailed,
            response_time: None,
            connect_time: None,
            string_found: Some(false),
        },
    }
}

super::ticked_input!(NetResponse, super::Shape::Ticked);

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Result<Config, SpanError> {
        let v: Raw = toml::from_str(s).map_err(|e| SpanError::from_toml(e, 0..0))?;
        resolve(v)
    }

    #[test]
    fn config_rules() {
        let c = raw("protocol = \"tcp\"\naddress = \":22\"\n").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("localhost", 22));
        assert_eq!(c.timeout, Duration::from_secs(1));
        assert!(raw("protocol = \"udp\"\naddress = \"a:1\"\nsend = \"x\"\n").is_err());
        assert!(raw("protocol = \"icmp\"\naddress = \"a:1\"\n").is_err());
        assert!(raw("protocol = \"tcp\"\naddress = \"a:1\"\nexpect = \"(\"\n").is_err());
    }
}
