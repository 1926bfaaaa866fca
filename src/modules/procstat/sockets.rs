//! The `sockets` property: `procstat_socket` lines, one per socket of a process, as telegraf
//! writes them. A process's sockets are the `socket:[inode]` links of `/proc/<pid>/fd`; their
//! state, addresses, queues and (TCP) `tcp_info` counters come from the kernel's sock_diag
//! netlink dump, taken once per scan for each protocol asked for (telegraf dumps once per
//! process).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::config::Protocols;
use crate::modules::netstat::sock_diag::{Diag, SOCK_DIAG_BY_FAMILY};

/// `INET_DIAG_INFO`: the `tcp_info` attribute.
const INET_DIAG_INFO: u16 = 2;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_PEER: u16 = 2;
const UNIX_DIAG_RQLEN: u16 = 4;
/// `inet_diag_msg` and `unix_diag_msg` sizes.
const INET_MSG: usize = 72;
const UNIX_MSG: usize = 16;

/// `tcp_info` counters telegraf writes (absent when the kernel's struct is too short).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct TcpInfo {
    pub retransmits: u8,
    pub lost: u32,
    pub bytes_received: Option<u64>,
    pub bytes_sent: Option<u64>,
}

/// One entry of an inet (TCP or UDP) dump.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct InetSock {
    pub family: u8,
    pub state: u8,
    pub src: IpAddr,
    pub src_port: u16,
    pub dest: IpAddr,
    pub dest_port: u16,
    pub rx_queue: u32,
    pub tx_queue: u32,
    pub inode: u32,
    pub tcp: Option<TcpInfo>,
}

/// One entry of a unix dump.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct UnixSock {
    pub kind: u8,
    pub state: u8,
    pub inode: u32,
    /// The bound path (`@` for the abstract namespace), if any.
    pub name: Option<String>,
    pub peer: Option<u32>,
    pub rx_queue: u32,
    pub tx_queue: u32,
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_ne_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The attributes (`rtattr`: len, type, value) after a message header.
fn attributes(mut b: &[u8], mut each: impl FnMut(u16, &[u8])) {
    while b.len() >= 4 {
        let len = u16_at(b, 0).unwrap_or(0) as usize;
        let kind = u16_at(b, 2).unwrap_or(0);
        if len < 4 || len > b.len() {
            return;
        }
        each(kind, &b[4..len]);
        b = b.get((len + 3) & !3..).unwrap_or(&[]);
    }
}

fn addr(family: u8, b: &[u8]) -> Option<IpAddr> {
    let raw: [u8; 16] = b.get(..16)?.try_into().ok()?;
    Some(match i32::from(family) {
        libc::AF_INET => IpAddr::V4(Ipv4Addr::new(raw[0], raw[1], raw[2], raw[3])),
        _ => {
            let v6 = Ipv6Addr::from(raw);
            // As Go prints them (telegraf): a v4-mapped address in dotted form.
            v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4)
        }
    })
}

/// Parses one `inet_diag_msg` record (with its attributes).
pub(crate) fn parse_inet_record(m: &[u8]) -> Option<InetSock> {
    if m.len() < INET_MSG {
        return None;
    }
    let family = m[0];
    let mut s = InetSock {
        family,
        state: m[1],
        src: addr(family, &m[8..24])?,
        src_port: u16::from_be_bytes([m[4], m[5]]),
        dest: addr(family, &m[24..40])?,
        dest_port: u16::from_be_bytes([m[6], m[7]]),
        rx_queue: u32_at(m, 56)?,
        tx_queue: u32_at(m, 60)?,
        inode: u32_at(m, 68)?,
        tcp: None,
    };
    attributes(&m[INET_MSG..], |kind, v| {
        if kind == INET_DIAG_INFO && v.len() >= 36 {
            // struct tcp_info: tcpi_retransmits at 2, tcpi_lost at 32, tcpi_bytes_received at
            // 128 (Linux 4.1), tcpi_bytes_sent at 200 (4.19).
            s.tcp = Some(TcpInfo {
                retransmits: v[2],
                lost: u32_at(v, 32).unwrap_or(0),
                bytes_received: u64_at(v, 128),
                bytes_sent: u64_at(v, 200),
            });
        }
    });
    Some(s)
}

/// Parses one `unix_diag_msg` record (with its attributes).
pub(crate) fn parse_unix_record(m: &[u8]) -> Option<UnixSock> {
    if m.len() < UNIX_MSG || i32::from(m[0]) != libc::AF_UNIX {
        return None;
    }
    let mut s = UnixSock {
        kind: m[1],
        state: m[2],
        inode: u32_at(m, 4)?,
        name: None,
        peer: None,
        rx_queue: 0,
        tx_queue: 0,
    };
    attributes(&m[UNIX_MSG..], |kind, v| match kind {
        UNIX_DIAG_NAME => {
            let mut n = String::from_utf8_lossy(v).into_owned();
            if n.starts_with('\0') {
                n.replace_range(..1, "@");
            }
            s.name = Some(n.trim_end_matches('\0').to_owned()).filter(|n| !n.is_empty());
        }
        UNIX_DIAG_PEER => s.peer = u32_at(v, 0),
        UNIX_DIAG_RQLEN => {
            s.rx_queue = u32_at(v, 0).unwrap_or(0);
            s.tx_queue = u32_at(v, 4).unwrap_or(0);
        }
        _ => {}
    });
    Some(s)
}

/// telegraf's names of TCP states (unix and UDP sockets use the same numbers).
pub(crate) fn state_name(s: u8) -> &'static str {
    match s {
        1 => "established",
        2 => "syn-sent",
        3 => "syn-recv",
        4 => "fin-wait1",
        5 => "fin-wait2",
        6 => "time-wait",
        7 => "closed",
        8 => "close-wait",
        9 => "last-ack",
        10 => "listen",
        11 => "closing",
        12 => "sync-recv",
        _ => "unknown",
    }
}

/// telegraf's names of socket types.
pub(crate) fn type_name(t: u8) -> &'static str {
    match i32::from(t) {
        libc::SOCK_STREAM => "stream",
        libc::SOCK_DGRAM => "dgram",
        libc::SOCK_RAW => "raw",
        libc::SOCK_RDM => "rdm",
        libc::SOCK_SEQPACKET => "seqpacket",
        libc::SOCK_DCCP => "dccp",
        10 => "packet", // SOCK_PACKET
        _ => "unknown",
    }
}

/// Every socket of `family` and `protocol` (IPPROTO_TCP or IPPROTO_UDP) in our network
/// namespace, with `tcp_info` for TCP.
fn inet_dump(diag: &mut Diag, family: i32, protocol: i32) -> std::io::Result<Vec<InetSock>> {
    // struct inet_diag_req_v2: family, protocol, ext, pad, states, sockid (48 bytes).
    let mut body = [0u8; 56];
    body[0] = family as u8;
    body[1] = protocol as u8;
    if protocol == libc::IPPROTO_TCP {
        body[2] = 1 << (INET_DIAG_INFO - 1);
    }
    body[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
    let mut out = Vec::new();
    diag.request(SOCK_DIAG_BY_FAMILY, &body, &mut |r| {
        out.extend(parse_inet_record(r.bytes()))
    })?;
    Ok(out)
}

fn unix_dump(diag: &mut Diag) -> std::io::Result<Vec<UnixSock>> {
    // struct unix_diag_req: family, protocol, pad, states, ino, show, cookie.
    let mut body = [0u8; 24];
    body[0] = libc::AF_UNIX as u8;
    body[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
    let show = (1u32 << UNIX_DIAG_NAME) | (1 << UNIX_DIAG_PEER) | (1 << UNIX_DIAG_RQLEN);
    body[12..16].copy_from_slice(&show.to_ne_bytes());
    let mut out = Vec::new();
    diag.request(SOCK_DIAG_BY_FAMILY, &body, &mut |r| {
        out.extend(parse_unix_record(r.bytes()))
    })?;
    Ok(out)
}

/// The dumps of one scan, by inode.
#[derive(Default)]
pub(super) struct Tables {
    /// tcp4, tcp6, udp4, udp6, in telegraf's order.
    inet: [HashMap<u32, InetSock>; 4],
    unix: HashMap<u32, UnixSock>,
}

/// The protocol names of [`Tables::inet`].
const INET: [(&str, i32, i32); 4] = [
    ("tcp4", libc::AF_INET, libc::IPPROTO_TCP),
    ("tcp6", libc::AF_INET6, libc::IPPROTO_TCP),
    ("udp4", libc::AF_INET, libc::IPPROTO_UDP),
    ("udp6", libc::AF_INET6, libc::IPPROTO_UDP),
];

impl Tables {
    /// Dumps the protocols asked for; a failed dump is an error naming it.
    pub(super) fn load(p: &Protocols) -> Result<Tables, String> {
        let mut t = Tables::default();
        let mut diag = Diag::open().map_err(|e| format!("connecting to diag socket failed: {e}"))?;
        let wanted = [p.tcp4, p.tcp6, p.udp4, p.udp6];
        for (i, (name, family, proto)) in INET.iter().enumerate() {
            if wanted[i] {
                let socks = inet_dump(&mut diag, *family, *proto)
                    .map_err(|e| format!("cannot get statistics for {name:?}: {e}"))?;
                t.inet[i] = socks.into_iter().map(|s| (s.inode, s)).collect();
            }
        }
        if p.unix {
            let socks =
                unix_dump(&mut diag).map_err(|e| format!("cannot get statistics for \"unix\": {e}"))?;
            t.unix = socks.into_iter().map(|s| (s.inode, s)).collect();
        }
        Ok(t)
    }

    /// The lines' fields for the sockets `inodes` (a process's), in telegraf's order: TCP v4,
    /// v6, UDP v4, v6, unix.
    pub(super) fn fields(&self, pid: i32, inodes: &[u32]) -> Vec<Vec<(&'static str, Value)>> {
        let mut out = Vec::new();
        for (i, (name, _, proto)) in INET.iter().enumerate() {
            for ino in inodes {
                let Some(s) = self.inet[i].get(ino) else {
                    continue;
                };
                let mut f = vec![
                    ("protocol", Value::Str((*name).to_owned())),
                    ("state", Value::Str(state_name(s.state).to_owned())),
                    ("pid", Value::Int(i64::from(pid))),
                    ("src", Value::Str(s.src.to_string())),
                    ("src_port", Value::Int(i64::from(s.src_port))),
                    ("dest", Value::Str(s.dest.to_string())),
                    ("dest_port", Value::Int(i64::from(s.dest_port))),
                ];
                if *proto == libc::IPPROTO_TCP {
                    let t = s.tcp.unwrap_or_default();
                    let opt = |v: Option<u64>| Value::Int(v.map_or(0, |v| v as i64));
                    f.push(("bytes_received", opt(t.bytes_received)));
                    f.push(("bytes_sent", opt(t.bytes_sent)));
                    f.push(("lost", Value::Int(i64::from(t.lost))));
                    f.push(("retransmits", Value::Int(i64::from(t.retransmits))));
                }
                f.push(("rx_queue", Value::Int(i64::from(s.rx_queue))));
                f.push(("tx_queue", Value::Int(i64::from(s.tx_queue))));
                out.push(f);
            }
        }
        for ino in inodes {
            let Some(s) = self.unix.get(ino) else {
                continue;
            };
            let stream = i32::from(s.kind) == libc::SOCK_STREAM;
            let name = s.name.clone().unwrap_or_else(|| format!("inode-{ino}"));
            let mut f = vec![
                ("protocol", Value::Str("unix".into())),
                ("type", Value::Str(type_name(s.kind).into())),
                // telegraf has diagnostics for stream sockets only, the others read "close".
                (
                    "state",
                    Value::Str(if stream { state_name(s.state) } else { "close" }.into()),
                ),
                ("pid", Value::Int(i64::from(pid))),
                ("name", Value::Str(name)),
                ("rx_queue", Value::Int(if stream { i64::from(s.rx_queue) } else { 0 })),
                ("tx_queue", Value::Int(if stream { i64::from(s.tx_queue) } else { 0 })),
                ("inode", Value::Int(i64::from(*ino))),
            ];
            if stream && let Some(peer) = s.peer {
                f.push(("peer", Value::Int(i64::from(peer))));
            }
            out.push(f);
        }
        out
    }
}

/// A `procstat_socket` field value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    Str(String),
    Int(i64),
}

/// The inode of a `/proc/<pid>/fd/N` link target `socket:[N]`.
pub(crate) fn socket_inode(link: &[u8]) -> Option<u32> {
    std::str::from_utf8(link.strip_prefix(b"socket:[")?.strip_suffix(b"]")?)
        .ok()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::netstat::sock_diag::{DiagChunk, parse_diag};

    /// The records of a captured dump (request sequence number 1).
    fn records<T>(b: &[u8], parse: fn(&[u8]) -> Option<T>) -> Vec<T> {
        let mut out = Vec::new();
        let end = parse_diag(b, 1, SOCK_DIAG_BY_FAMILY, &mut |r| out.extend(parse(r.bytes())));
        assert_eq!(end, DiagChunk::Done);
        out
    }

    #[test]
    fn parses_captured_dumps() {
        // A listener on 127.0.0.1, a connection to it that sent 1000 bytes and got 10.
        let tcp = records(
            include_bytes!("../../../tests/fixtures/procstat/inet_diag_tcp4"),
            parse_inet_record,
        );
        let client = tcp
            .iter()
            .find(|s| s.tcp.is_some_and(|t| t.bytes_sent == Some(1000)))
            .expect("the connection");
        let info = client.tcp.expect("tcp_info");
        assert_eq!(info.bytes_received, Some(10));
        let listen = tcp
            .iter()
            .find(|s| s.state == 10 && s.src_port == client.dest_port)
            .expect("its listener");
        assert_eq!(listen.src, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(client.dest, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(listen.inode > 0);
        assert_eq!(state_name(client.state), "established");
        // A listening stream socket with a path, its connection, an abstract datagram socket.
        let unix = records(
            include_bytes!("../../../tests/fixtures/procstat/unix_diag"),
            parse_unix_record,
        );
        let l = unix.iter().find(|s| s.state == 10).expect("listener");
        assert_eq!(l.name.as_deref(), Some("/tmp/psfx/sock"));
        let d = unix
            .iter()
            .find(|s| s.name.as_deref() == Some("@procstat-fixture"))
            .expect("abstract socket");
        assert_eq!(type_name(d.kind), "dgram");
        assert!(unix.iter().any(|s| s.peer.is_some_and(|p| p > 0)));
        assert_eq!(socket_inode(b"socket:[12345]"), Some(12345));
        assert_eq!(socket_inode(b"pipe:[1]"), None);
        assert!(parse_inet_record(&[2; 71]).is_none());
        assert!(parse_unix_record(&[2; 40]).is_none());
    }
}
