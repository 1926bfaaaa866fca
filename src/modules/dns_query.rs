// Hand-written on purpose (#10): hickory-proto (no default features) would add 37 crates (idna,
// ICU, url), 349 KB of binary and ~85 s of release build to write one question and read 12 bytes.
//! `dns_query`: one query per server × domain, as telegraf's `dns_query` input: measurement
//! `dns_query`, tags `server`, `domain`, `record_type`, `result`, `rcode`; fields
//! `query_time_ms`, `result_code`, `rcode_value`. Addition: `answer_count`.
//!
//! The query is encoded by hand (header + one question, ~40 lines) and sent on our own connected
//! UDP socket, timing send → matching reply with `Instant`: a probe needs only the reply header
//! (id, flags, rcode, counts), so a DNS library would add a dependency without adding precision.
//! A truncated reply (TC bit) is retried over TCP; `query_time_ms` then covers both exchanges.
//!
//! Differences from telegraf: `query_time_ms` is omitted (not 0) when no reply arrived; the
//! `name`/`preference`/SOA answer fields and `include_fields` are not produced.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinSet;
use toml::Spanned;

use super::GatherError;
use super::probe::{self, InFlight};
use crate::options::{ConfigDuration, SpanError};
use crate::output::{Accumulator, Metric, now_ns};

/// `[[inputs.dns_query]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// DNS servers to query (IP addresses or names). Required.
    servers: Spanned<Vec<String>>,
    /// `"udp"` (default) or `"tcp"`.
    network: Option<Spanned<String>>,
    /// Names to query. Default `["."]` (telegraf's).
    domains: Option<Spanned<Vec<String>>>,
    /// A, AAAA, ANY, CNAME, MX, NS, PTR, SOA, SPF, SRV, TXT. Default `NS` (telegraf's code
    /// default). For PTR, an IP address domain is turned into its reverse name.
    record_type: Option<Spanned<String>>,
    /// Server port. Default 53.
    port: Option<u16>,
    /// Bound on one query (including a TCP retry after truncation). Default 2s.
    timeout: Option<ConfigDuration>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub servers: Vec<String>,
    pub tcp: bool,
    pub domains: Vec<String>,
    pub record_type: &'static str,
    pub qtype: u16,
    pub port: u16,
    pub timeout: Duration,
}

const TYPES: &[(&str, u16)] = &[
    ("A", 1),
    ("NS", 2),
    ("CNAME", 5),
    ("SOA", 6),
    ("PTR", 12),
    ("MX", 15),
    ("TXT", 16),
    ("AAAA", 28),
    ("SRV", 33),
    ("SPF", 99),
    ("ANY", 255),
];

pub(crate) fn resolve(raw: Raw) -> Result<Config, SpanError> {
    if raw.servers.get_ref().is_empty() {
        return Err(SpanError::new(
            raw.servers.span(),
            "servers",
            "needs at least one server",
        ));
    }
    let tcp = match &raw.network {
        None => false,
        Some(n) => match n.get_ref().as_str() {
            "udp" => false,
            "tcp" => true,
            _ => return Err(SpanError::new(n.span(), "network", "must be udp or tcp")),
        },
    };
    let (record_type, qtype) = match &raw.record_type {
        None => ("NS", 2),
        Some(t) => *TYPES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(t.get_ref()))
            .ok_or_else(|| {
                SpanError::new(
                    t.span(),
                    "record_type",
                    "must be one of A, AAAA, ANY, CNAME, MX, NS, PTR, SOA, SPF, SRV, TXT",
                )
            })?,
    };
    let domains = match raw.domains {
        None => vec![".".to_owned()],
        Some(d) => {
            for name in d.get_ref() {
                let q = query_name(name, qtype);
                encode_query(0, &q, qtype)
                    .map_err(|e| SpanError::new(d.span(), "domains", format!("{name:?}: {e}")))?;
            }
            d.into_inner()
        }
    };
    Ok(Config {
        servers: raw.servers.into_inner(),
        tcp,
        domains,
        record_type,
        qtype,
        port: raw.port.unwrap_or(53),
        timeout: raw
            .timeout
            .map(|t| t.get())
            .filter(|t| !t.is_zero())
            .unwrap_or(Duration::from_secs(2)),
    })
}

/// The name actually queried: PTR queries for an IP address ask for its reverse name.
pub(crate) fn query_name(domain: &str, qtype: u16) -> String {
    if qtype != 12 {
        return domain.to_owned();
    }
    match domain.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => {
            let o = a.octets();
            format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0])
        }
        Ok(IpAddr::V6(a)) => {
            let mut s = String::new();
            for b in a.octets().iter().rev() {
                s.push_str(&format!("{:x}.{:x}.", b & 0xf, b >> 4));
            }
            s + "ip6.arpa."
        }
        Err(_) => domain.to_owned(),
    }
}

/// A standard query with recursion desired: header, one question of class IN.
pub(crate) fn encode_query(id: u16, name: &str, qtype: u16) -> Result<Vec<u8>, String> {
    let mut m = Vec::with_capacity(32 + name.len());
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    let mut len = 1;
    for label in name.split('.').filter(|l| !l.is_empty()) {
        if label.len() > 63 {
            return Err("label longer than 63 bytes".into());
        }
        len += label.len() + 1;
        m.push(label.len() as u8);
        m.extend_from_slice(label.as_bytes());
    }
    if len > 255 {
        return Err("name longer than 255 bytes".into());
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    Ok(m)
}

/// The header fields a probe reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReplyHeader {
    pub id: u16,
    pub is_response: bool,
    pub truncated: bool,
    pub rcode: u8,
    pub answer_count: u16,
}

pub(crate) fn parse_header(b: &[u8]) -> Option<ReplyHeader> {
    if b.len() < 12 {
        return None;
    }
    Some(ReplyHeader {
        id: u16::from_be_bytes([b[0], b[1]]),
        is_response: b[2] & 0x80 != 0,
        truncated: b[2] & 0x02 != 0,
        rcode: b[3] & 0x0f,
        answer_count: u16::from_be_bytes([b[6], b[7]]),
    })
}

pub(crate) fn rcode_name(rcode: u8) -> String {
    match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        n => return n.to_string(),
    }
    .to_owned()
}

pub(crate) struct DnsQuery {
    config: Config,
    in_flight: InFlight,
    next_id: u16,
}

impl DnsQuery {
    pub(crate) fn new(config: Config) -> Self {
        DnsQuery {
            config,
            in_flight: InFlight::default(),
            // Random start for query ids.
            next_id: crate::rand::u16(),
        }
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        let mut set = JoinSet::new();
        for server in &self.config.servers {
            for domain in &self.config.domains {
                self.next_id = self.next_id.wrapping_add(0x9e37);
                let (c, s, d, id) = (
                    self.config.clone(),
                    server.clone(),
                    domain.clone(),
                    self.next_id,
                );
                let in_flight = self.in_flight.clone();
                set.spawn(async move {
                    let r = query(&c, &s, &d, id, &in_flight).await;
                    (s, d, r)
                });
            }
        }
        while let Some(res) = set.join_next().await {
            let Ok((server, domain, r)) = res else {
                continue;
            };
            let mut m = Metric::new("dns_query", ts)
                .tag("server", server)
                .tag("domain", domain)
                .tag("record_type", self.config.record_type);
            let (result, code) = match &r {
                Answer::Reply { header, .. } if header.rcode == 0 => ("success", 0i64),
                Answer::Timeout => ("timeout", 1),
                _ => ("error", 2),
            };
            if let Answer::Reply { header, .. } = &r {
                m = m.tag("rcode", rcode_name(header.rcode));
            }
            m = m.tag("result", result).field("result_code", code);
            match r {
                Answer::Reply { header, time } => {
                    m = m
                        .field("query_time_ms", time.as_secs_f64() * 1e3)
                        .field("rcode_value", i64::from(header.rcode))
                        .field("answer_count", i64::from(header.answer_count));
                }
                Answer::Error(e) => tracing::debug!("dns query: {e}"),
                Answer::Timeout => {}
            }
            acc.add(m);
        }
        Ok(())
    }
}

#[derive(Debug)]
pub(crate) enum Answer {
    Reply { header: ReplyHeader, time: Duration },
    Timeout,
    Error(String),
}

async fn query(c: &Config, server: &str, domain: &str, id: u16, in_flight: &InFlight) -> Answer {
    let deadline = tokio::time::Instant::now() + c.timeout;
    let addr = match server
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
    {
        Ok(ip) => SocketAddr::new(ip, c.port),
        Err(_) => match probe::lookup(server, c.port, c.timeout, in_flight).await {
            Ok(a) => a[0],
            Err(probe::LookupError::Timeout | probe::LookupError::Busy) => return Answer::Timeout,
            Err(e) => return Answer::Error(e.to_string()),
        },
    };
    let msg = match encode_query(id, &query_name(domain, c.qtype), c.qtype) {
        Ok(m) => m,
        Err(e) => return Answer::Error(e),
    };
    let run = async {
        let start = Instant::now();
        let header = if c.tcp {
            tcp_exchange(addr, &msg, id).await?
        } else {
            let h = udp_exchange(addr, &msg, id).await?;
            if h.truncated {
                tcp_exchange(addr, &msg, id).await?
            } else {
                h
            }
        };
        Ok::<_, std::io::Error>(Answer::Reply {
            header,
            time: start.elapsed(),
        })
    };
    match tokio::time::timeout_at(deadline, run).await {
        Err(_) => Answer::Timeout,
        Ok(Err(e)) => Answer::Error(e.to_string()),
        Ok(Ok(a)) => a,
    }
}

fn bind_addr(to: SocketAddr) -> SocketAddr {
    if to.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    }
}

async fn udp_exchange(addr: SocketAddr, msg: &[u8], id: u16) -> std::io::Result<ReplyHeader> {
    let sock = UdpSocket::bind(bind_addr(addr)).await?;
    sock.connect(addr).await?;
    sock.send(msg).await?;
    let mut buf = vec![0u8; 4096];
    loop {
        let n = sock.recv(&mut buf).await?;
        // Stray datagrams (late replies to someone else, garbage) are skipped, not failures.
        if let Some(h) = parse_header(&buf[..n])
            && h.id == id
            && h.is_response
        {
            return Ok(h);
        }
    }
}

async fn tcp_exchange(addr: SocketAddr, msg: &[u8], id: u16) -> std::io::Result<ReplyHeader> {
    let mut s = TcpStream::connect(addr).await?;
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    framed.extend_from_slice(msg);
    s.write_all(&framed).await?;
    let len = s.read_u16().await? as usize;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await?;
    match parse_header(&buf) {
        Some(h) if h.id == id && h.is_response => Ok(h),
        _ => Err(std::io::Error::other("reply does not match the query")),
    }
}

super::ticked_input!(DnsQuery, super::Shape::Ticked);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_bytes() {
        let q = encode_query(0x1234, "a.bc.", 1).unwrap();
        assert_eq!(
            q,
            [
                0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, b'a', 2, b'b', b'c', 0, 0, 1, 0, 1
            ]
        );
        assert_eq!(encode_query(1, ".", 2).unwrap().len(), 12 + 1 + 4);
        assert!(encode_query(1, &"x".repeat(64), 1).is_err());
    }

    #[test]
    fn header_fields() {
        let reply = [0x12, 0x34, 0x81, 0x83, 0, 1, 0, 2, 0, 0, 0, 0];
        let h = parse_header(&reply).unwrap();
        assert_eq!(h.id, 0x1234);
        assert!(h.is_response);
        assert!(!h.truncated);
        assert_eq!(h.rcode, 3);
        assert_eq!(rcode_name(h.rcode), "NXDOMAIN");
        assert_eq!(h.answer_count, 2);
        assert!(parse_header(&reply[..5]).is_none());
    }

    #[test]
    fn ptr_names() {
        assert_eq!(query_name("192.0.2.1", 12), "1.2.0.192.in-addr.arpa.");
        assert!(query_name("::1", 12).starts_with("1.0.0.0."));
        assert_eq!(query_name("192.0.2.1", 1), "192.0.2.1");
    }
}
