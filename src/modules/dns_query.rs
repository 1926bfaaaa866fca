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
//! On success the answer section is read for telegraf's answer fields (`name`, `preference`,
//! the SOA figures, and `ip`/`ip_<n>` with `include_fields`): names are decompressed with a
//! bound on pointer hops, every length is checked (fuzzed: `fuzz_api::dns_reply`).
//!
//! Difference from telegraf: `query_time_ms` is omitted (not 0) when no reply arrived.

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
    /// `"udp"` (default) or `"tcp"`; `udp4`, `udp6`, `tcp4`, `tcp6` for one address family.
    /// DNS over TLS (`tcp-tls`) is refused.
    network: Option<Spanned<String>>,
    /// Names to query. Default `["."]` (telegraf's).
    domains: Option<Spanned<Vec<String>>>,
    /// A, AAAA, ANY, CNAME, MX, NS, PTR, SOA, SPF, SRV, TXT. Default `NS` (telegraf's code
    /// default); without `domains` it is NS whatever this says (telegraf's rule). For PTR, an
    /// IP address domain is turned into its reverse name.
    record_type: Option<Spanned<String>>,
    /// Server port. Default 53.
    port: Option<u16>,
    /// Bound on one query (including a TCP retry after truncation). Default 2s.
    timeout: Option<ConfigDuration>,
    /// Answer fields to add: `first_ip` (field `ip`: the first A or AAAA answer), `all_ips`
    /// (fields `ip_<n>`, n being the answer's position among all answers). Default none.
    include_fields: Option<Spanned<Vec<String>>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub servers: Vec<String>,
    pub tcp: bool,
    /// Only IPv4 (`Some(true)`) or only IPv6 (`Some(false)`) server addresses.
    pub ipv4: Option<bool>,
    pub domains: Vec<String>,
    pub record_type: &'static str,
    pub qtype: u16,
    pub port: u16,
    pub timeout: Duration,
    pub first_ip: bool,
    pub all_ips: bool,
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
    let (tcp, ipv4) = match &raw.network {
        None => (false, None),
        Some(n) => match n.get_ref().as_str() {
            "udp" => (false, None),
            "udp4" => (false, Some(true)),
            "udp6" => (false, Some(false)),
            "tcp" => (true, None),
            "tcp4" => (true, Some(true)),
            "tcp6" => (true, Some(false)),
            t if t.ends_with("-tls") => {
                return Err(SpanError::new(
                    n.span(),
                    "network",
                    "DNS over TLS (tcp-tls) is not implemented; use udp or tcp",
                ));
            }
            _ => {
                return Err(SpanError::new(
                    n.span(),
                    "network",
                    "must be udp, tcp, udp4, udp6, tcp4 or tcp6",
                ));
            }
        },
    };
    let (mut first_ip, mut all_ips) = (false, false);
    if let Some(f) = &raw.include_fields {
        for name in f.get_ref() {
            match name.as_str() {
                "first_ip" => first_ip = true,
                "all_ips" => all_ips = true,
                _ => {
                    return Err(SpanError::new(
                        f.span(),
                        "include_fields",
                        format!("invalid field {name:?} included (first_ip, all_ips)"),
                    ));
                }
            }
        }
    }
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
    // telegraf: without `domains` the query is for "." and of type NS, whatever record_type says.
    let (record_type, qtype) = match raw.domains {
        None => ("NS", 2),
        Some(_) => (record_type, qtype),
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
        ipv4,
        domains,
        record_type,
        qtype,
        // telegraf: a port below 1 means 53.
        port: raw.port.filter(|&p| p >= 1).unwrap_or(53),
        timeout: raw
            .timeout
            .map(|t| t.get())
            .filter(|t| !t.is_zero())
            .unwrap_or(Duration::from_secs(2)),
        first_ip,
        all_ips,
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

/// miekg/dns's name of a header rcode; `None` for the unassigned 11-15 (telegraf's tag is
/// then empty, so absent).
pub(crate) fn rcode_name(rcode: u8) -> Option<&'static str> {
    Some(match rcode {
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
        _ => return None,
    })
}

/// telegraf's answer fields from the records of a successful reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AnswerFields {
    /// Owner name (absolute, with the trailing dot) of the last A, AAAA, CNAME, MX or SOA record.
    pub name: Option<String>,
    pub preference: Option<i64>,
    /// serial, refresh, retry, expire, minttl of the last SOA record.
    pub soa: Option<[i64; 5]>,
    /// (position among all answers, address) of each A and AAAA record.
    pub ips: Vec<(usize, IpAddr)>,
}

/// Bound on compression pointers followed in one name (a loop of pointers must end).
const MAX_POINTERS: usize = 32;

/// Reads the (possibly compressed) name at `pos`; returns it in miekg's presentation form and
/// the position after it in the message.
pub(crate) fn read_name(msg: &[u8], mut pos: usize) -> Option<(String, usize)> {
    let mut name = String::new();
    let mut end = None;
    let mut hops = 0;
    loop {
        let len = *msg.get(pos)? as usize;
        match len & 0xc0 {
            0xc0 => {
                let target = ((len & 0x3f) << 8) | *msg.get(pos + 1)? as usize;
                end.get_or_insert(pos + 2);
                hops += 1;
                if hops > MAX_POINTERS {
                    return None;
                }
                pos = target;
            }
            0 if len == 0 => {
                if name.is_empty() {
                    name.push('.');
                }
                return Some((name, end.unwrap_or(pos + 1)));
            }
            0 => {
                let label = msg.get(pos + 1..pos + 1 + len)?;
                for &b in label {
                    match b {
                        b'.' | b'\\' | b'"' | b'(' | b')' | b';' | b' ' | b'@' => {
                            name.push('\\');
                            name.push(b as char);
                        }
                        0x21..=0x7e => name.push(b as char),
                        _ => name.push_str(&format!("\\{b:03}")),
                    }
                }
                name.push('.');
                if name.len() > 1024 {
                    return None;
                }
                pos += 1 + len;
            }
            _ => return None,
        }
    }
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The answer fields of a whole reply message; `None` when it is malformed.
pub(crate) fn parse_answers(msg: &[u8]) -> Option<AnswerFields> {
    let qd = be16(msg, 4)?;
    let an = be16(msg, 6)?;
    let mut pos = 12;
    for _ in 0..qd {
        pos = read_name(msg, pos)?.1 + 4;
    }
    let mut f = AnswerFields::default();
    for i in 0..usize::from(an) {
        let (owner, p) = read_name(msg, pos)?;
        let rtype = be16(msg, p)?;
        let rdlen = usize::from(be16(msg, p + 8)?);
        let rdata = p + 10;
        let rd = msg.get(rdata..rdata + rdlen)?;
        pos = rdata + rdlen;
        match rtype {
            1 | 28 => {
                let ip = match rd.len() {
                    4 => IpAddr::from(<[u8; 4]>::try_from(rd).ok()?),
                    16 => IpAddr::from(<[u8; 16]>::try_from(rd).ok()?),
                    _ => return None,
                };
                f.ips.push((i, ip));
                f.name = Some(owner);
            }
            5 => f.name = Some(owner),
            15 => {
                f.preference = Some(i64::from(be16(rd, 0)?));
                f.name = Some(owner);
            }
            6 => {
                let (_, after_m) = read_name(msg, rdata)?;
                let (_, after_r) = read_name(msg, after_m)?;
                let n = |k: usize| be32(msg, after_r + 4 * k).map(i64::from);
                f.soa = Some([n(0)?, n(1)?, n(2)?, n(3)?, n(4)?]);
                f.name = Some(owner);
            }
            _ => {}
        }
    }
    Some(f)
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
            if let Answer::Reply { header, .. } = &r
                && let Some(name) = rcode_name(header.rcode)
            {
                m = m.tag("rcode", name);
            }
            m = m.tag("result", result).field("result_code", code);
            match r {
                Answer::Reply {
                    header,
                    time,
                    message,
                } => {
                    m = m
                        .field("query_time_ms", time.as_secs_f64() * 1e3)
                        .field("rcode_value", i64::from(header.rcode))
                        .field("answer_count", i64::from(header.answer_count));
                    if header.rcode == 0 {
                        m = answer_fields(m, &message, self.config.first_ip, self.config.all_ips);
                    }
                }
                Answer::Error(e) => tracing::debug!("dns query: {e}"),
                Answer::Timeout => {}
            }
            acc.add(m);
        }
        Ok(())
    }
}

/// Adds telegraf's answer fields of a successful reply to `m`.
pub(crate) fn answer_fields(mut m: Metric, message: &[u8], first_ip: bool, all_ips: bool) -> Metric {
    let Some(f) = parse_answers(message) else {
        tracing::debug!("dns query: malformed answer section");
        return m;
    };
    if let Some([serial, refresh, retry, expire, minttl]) = f.soa {
        m = m
            .field("serial", serial)
            .field("refresh", refresh)
            .field("retry", retry)
            .field("expire", expire)
            .field("minttl", minttl);
    }
    m = m
        .field_opt("name", f.name)
        .field_opt("preference", f.preference);
    if first_ip
        && let Some((_, ip)) = f.ips.first()
    {
        m = m.field("ip", ip.to_string());
    }
    if all_ips {
        for (i, ip) in &f.ips {
            m = m.field(crate::output::Key::Owned(format!("ip_{i}")), ip.to_string());
        }
    }
    m
}

#[derive(Debug)]
pub(crate) enum Answer {
    Reply {
        header: ReplyHeader,
        time: Duration,
        /// The whole reply message.
        message: Vec<u8>,
    },
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
        Ok(ip) => vec![SocketAddr::new(ip, c.port)],
        Err(_) => match probe::lookup(server, c.port, c.timeout, in_flight).await {
            Ok(a) => a,
            Err(probe::LookupError::Timeout | probe::LookupError::Busy) => return Answer::Timeout,
            Err(e) => return Answer::Error(e.to_string()),
        },
    };
    let Some(addr) = addr
        .into_iter()
        .find(|a| c.ipv4.is_none_or(|v4| a.is_ipv4() == v4))
    else {
        return Answer::Error(format!("{server}: no address of the network's IP version"));
    };
    let msg = match encode_query(id, &query_name(domain, c.qtype), c.qtype) {
        Ok(m) => m,
        Err(e) => return Answer::Error(e),
    };
    let run = async {
        let start = Instant::now();
        let (header, message) = if c.tcp {
            tcp_exchange(addr, &msg, id).await?
        } else {
            let r = udp_exchange(addr, &msg, id).await?;
            if r.0.truncated {
                tcp_exchange(addr, &msg, id).await?
            } else {
                r
            }
        };
        Ok::<_, std::io::Error>(Answer::Reply {
            header,
            time: start.elapsed(),
            message,
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

async fn udp_exchange(
    addr: SocketAddr,
    msg: &[u8],
    id: u16,
) -> std::io::Result<(ReplyHeader, Vec<u8>)> {
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
            buf.truncate(n);
            return Ok((h, buf));
        }
    }
}

async fn tcp_exchange(
    addr: SocketAddr,
    msg: &[u8],
    id: u16,
) -> std::io::Result<(ReplyHeader, Vec<u8>)> {
    let mut s = TcpStream::connect(addr).await?;
    let mut framed = Vec::with_capacity(msg.len() + 2);
    framed.extend_from_slice(&(msg.len() as u16).to_be_bytes());
    framed.extend_from_slice(msg);
    s.write_all(&framed).await?;
    let len = s.read_u16().await? as usize;
    let mut buf = vec![0u8; len];
    s.read_exact(&mut buf).await?;
    match parse_header(&buf) {
        Some(h) if h.id == id && h.is_response => Ok((h, buf)),
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
        assert_eq!(rcode_name(h.rcode), Some("NXDOMAIN"));
        assert_eq!(rcode_name(12), None);
        assert_eq!(h.answer_count, 2);
        assert!(parse_header(&reply[..5]).is_none());
    }

    /// A reply to `MX mx.example`, built by hand: a CNAME, two MX records, an A record and an
    /// SOA, all with compressed names.
    #[test]
    fn answer_section() {
        let mut m = vec![0, 0, 0x81, 0x80, 0, 1, 0, 5, 0, 0, 0, 0];
        // Question: mx.example MX IN (name at offset 12).
        m.extend_from_slice(b"\x02mx\x07example\x00\x00\x0f\x00\x01");
        let rr = |m: &mut Vec<u8>, owner: &[u8], t: u16, rd: &[u8]| {
            m.extend_from_slice(owner);
            m.extend_from_slice(&t.to_be_bytes());
            m.extend_from_slice(&[0, 1, 0, 0, 0, 60]);
            m.extend_from_slice(&(rd.len() as u16).to_be_bytes());
            m.extend_from_slice(rd);
        };
        rr(&mut m, &[0xc0, 12], 5, &[0xc0, 15]);
        rr(&mut m, &[0xc0, 15], 15, &[0, 10, 0xc0, 12]);
        rr(&mut m, &[0xc0, 15], 15, &[0, 20, 0xc0, 12]);
        rr(&mut m, b"\x01a\xc0\x0f", 1, &[192, 0, 2, 1]);
        let mut soa = b"\x02ns\xc0\x0f\x04host\xc0\x0f".to_vec();
        for v in [2026u32, 3600, 600, 86400, 300] {
            soa.extend_from_slice(&v.to_be_bytes());
        }
        rr(&mut m, &[0xc0, 15], 6, &soa);
        let f = parse_answers(&m).unwrap();
        assert_eq!(f.name.as_deref(), Some("example."));
        assert_eq!(f.preference, Some(20));
        assert_eq!(f.soa, Some([2026, 3600, 600, 86400, 300]));
        assert_eq!(f.ips, vec![(3, "192.0.2.1".parse().unwrap())]);
        assert_eq!(read_name(&m, 12), Some(("mx.example.".into(), 24)));
        // A pointer to itself, a cut message.
        assert!(read_name(&[0xc0, 0], 0).is_none());
        assert!(parse_answers(&m[..m.len() - 3]).is_none());
        assert_eq!(
            read_name(b"\x03a.b\x00", 0).map(|n| n.0).as_deref(),
            Some("a\\.b.")
        );
    }

    /// Replies captured from dnsmasq authoritative for zone.example (fuzz seeds).
    #[test]
    fn captured_replies() {
        let soa = parse_answers(include_bytes!("../../fuzz/seeds/dns/soa-auth")).unwrap();
        assert_eq!(soa.soa, Some([2026, 1200, 180, 1_209_600, 600]));
        assert_eq!(soa.name.as_deref(), Some("zone.example."));
        let cname = parse_answers(include_bytes!("../../fuzz/seeds/dns/cname-then-a")).unwrap();
        assert_eq!(cname.name.as_deref(), Some("www.zone.example."));
        assert_eq!(cname.ips, vec![(1, "127.0.0.5".parse().unwrap())]);
    }

    #[test]
    fn ptr_names() {
        assert_eq!(query_name("192.0.2.1", 12), "1.2.0.192.in-addr.arpa.");
        assert!(query_name("::1", 12).starts_with("1.0.0.0."));
        assert_eq!(query_name("192.0.2.1", 1), "192.0.2.1");
    }
}
