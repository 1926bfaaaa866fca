//! `netstat`: socket counts, as telegraf's `netstat` input: measurement `netstat`, no tags, one
//! line with TCP sockets per state (`tcp_established` … `tcp_closing`, `tcp_none`) from
//! `/proc/net/tcp` and `/proc/net/tcp6`, and `udp_socket` (sockets in `/proc/net/udp` and
//! `udp6`). Counts are for the network namespace the agent runs in. A missing file (IPv6
//! disabled) counts as no sockets.
//!
//! The counts come from a netlink `sock_diag` dump (what `ss` uses) when the kernel offers it:
//! the kernel then hands over fixed binary records instead of formatting one text line per
//! socket, which on a host with tens of thousands of TIME_WAIT sockets is most of the cost
//! (measured here: 18 000 sockets, ~45 ms per gather through /proc/net/tcp). The /proc files are
//! the fallback when netlink is refused (old kernels, seccomp, no `inet_diag`).
//!
//! Even with few sockets a dump costs a walk of the kernel's whole TCP hash tables, shared by
//! IPv4 and IPv6; the legacy `inet_diag` request covers both families in one walk where the
//! per-family `sock_diag` requests need two (see `Netstat::via_netlink`).

use serde::Deserialize;

use super::GatherError;
use super::hostutil::ProcFile;
use crate::config::SpanError;
use crate::output::{Accumulator, Metric, now_ns};

/// `[[inputs.netstat]]` (no options, like telegraf's).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {}

#[derive(Debug, Clone)]
pub struct Config;

pub fn resolve(_raw: Raw) -> Result<Config, SpanError> {
    Ok(Config)
}

/// Field names by kernel TCP state number (`include/net/tcp_states.h`); index 0 and unknown
/// states count as `tcp_none`.
const STATES: [&str; 12] = [
    "tcp_none",
    "tcp_established",
    "tcp_syn_sent",
    "tcp_syn_recv",
    "tcp_fin_wait1",
    "tcp_fin_wait2",
    "tcp_time_wait",
    "tcp_close",
    "tcp_close_wait",
    "tcp_last_ack",
    "tcp_listen",
    "tcp_closing",
];

/// The state bits to dump: the eleven TCP states (bit = state number), which is what
/// /proc/net/tcp lists (SYN_RECV includes request sockets). Not "all bits": since Linux 6.5 a
/// set bit 13 (`TCP_BOUND_INACTIVE`) also dumps sockets that are only bound, which /proc/net/tcp
/// never showed, and walks the bind hash table for them (~100 µs more per dump measured here).
const TCP_STATES: u32 = (1 << STATES.len()) - 1;

/// Index of TIME_WAIT in [`STATES`] (the kernel's state number).
const TCP_TIME_WAIT: usize = 6;

/// The `tw` count from `/proc/net/sockstat` (`TCP: inuse 5 orphan 0 tw 10980 alloc 7 mem 1`).
pub fn sockstat_tw(text: &str) -> Option<u64> {
    sockstat_value(text, "TCP:", "tw")
}

/// One value of a `/proc/net/sockstat` line: `PREFIX key value key value …`.
pub fn sockstat_value(text: &str, prefix: &str, key: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with(prefix))?;
    let mut it = line.split_ascii_whitespace().skip(1);
    while let Some(k) = it.next() {
        let v = it.next()?;
        if k == key {
            return v.parse().ok();
        }
    }
    None
}

/// Adds the sockets of one `/proc/net/tcp*` file to `counts` (by state).
pub fn count_tcp(text: &str, counts: &mut [u64; 12]) {
    for line in text.lines().skip(1) {
        let Some(st) = line.split_ascii_whitespace().nth(3) else {
            continue;
        };
        let i = usize::from_str_radix(st, 16)
            .ok()
            .filter(|i| *i < STATES.len())
            .unwrap_or(0);
        counts[i] += 1;
    }
}

/// Sockets in one `/proc/net/udp*` file.
pub fn count_lines(text: &str) -> u64 {
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .count() as u64
}

/// A `NETLINK_SOCK_DIAG` socket for dumping socket states.
pub struct Diag {
    fd: std::os::fd::OwnedFd,
    buf: Vec<u8>,
    seq: u32,
    /// Tests: request types sent truncated, which the kernel refuses (EINVAL), to walk the
    /// fallbacks on a kernel that answers everything.
    #[cfg(test)]
    refuse: Vec<u16>,
}

const NETLINK_SOCK_DIAG: libc::c_int = 4;
/// The `sock_diag` request (`inet_diag_req_v2` payload): one address family per dump.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// The legacy `inet_diag` TCP request (`struct inet_diag_req` payload), answered by the kernel's
/// compatibility path with the family set to `AF_UNSPEC`: IPv4 and IPv6 sockets in one dump.
const TCPDIAG_GETSOCK: u16 = 18;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;
/// `struct inet_diag_req_v2`: family, protocol, ext, pad (u8 each), states u32, sockid (48).
const REQ_V2_LEN: usize = 56;
/// `struct inet_diag_req`: family, src_len, dst_len, ext (u8 each), sockid (48), states u32,
/// dbs u32.
const REQ_COMPAT_LEN: usize = 60;

/// One `inet_diag_msg` record of a dump reply (the same layout for both request kinds).
#[derive(Debug, Clone, Copy)]
pub struct DiagRecord<'a>(&'a [u8]);

impl DiagRecord<'_> {
    pub fn family(&self) -> u8 {
        self.0[0]
    }
    /// The kernel TCP state number (index into [`STATES`]).
    pub fn state(&self) -> u8 {
        self.0[1]
    }
    /// `idiag_timer`: 3 = a socket in TIME_WAIT form.
    pub fn timer(&self) -> u8 {
        self.0[2]
    }
    /// Local port (`id.idiag_sport`, network order on the wire), 0 if the record is short.
    pub fn sport(&self) -> u16 {
        self.0
            .get(4..6)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    }
    /// Remote port (`id.idiag_dport`), 0 if the record is short.
    pub fn dport(&self) -> u16 {
        self.0
            .get(6..8)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    }
}

/// The TCP dump request a [`Diag`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpDump {
    /// One legacy `TCPDIAG_GETSOCK` dump for both families.
    Compat,
    /// One `SOCK_DIAG_BY_FAMILY` dump per family.
    PerFamily,
}

impl Diag {
    pub fn open() -> std::io::Result<Diag> {
        use std::os::fd::FromRawFd;
        // SAFETY: plain socket(2); the fd is owned right away.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                NETLINK_SOCK_DIAG,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, valid descriptor we own.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) };
        // A dump is answered at once; the timeout only guards against a kernel that never does.
        let tv = libc::timeval {
            tv_sec: 2,
            tv_usec: 0,
        };
        // SAFETY: valid fd, option value of the documented type and size.
        unsafe {
            use std::os::fd::AsRawFd;
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            );
        }
        Ok(Diag {
            fd,
            buf: vec![0u8; 64 * 1024],
            seq: 0,
            #[cfg(test)]
            refuse: Vec::new(),
        })
    }

    /// Dumps the TCP sockets of both address families whose state bit is in `states`, by the
    /// request `how`, and calls `f` for each.
    pub fn dump_tcp(
        &mut self,
        how: TcpDump,
        states: u32,
        mut f: impl FnMut(DiagRecord<'_>),
    ) -> std::io::Result<()> {
        match how {
            TcpDump::Compat => {
                // family is ignored by the kernel here (it dumps AF_UNSPEC); sockid all zero =
                // no address or port filter; dbs unused.
                let mut body = [0u8; REQ_COMPAT_LEN];
                body[0] = libc::AF_INET as u8;
                body[52..56].copy_from_slice(&states.to_ne_bytes());
                self.request(TCPDIAG_GETSOCK, &body, &mut f)
            }
            TcpDump::PerFamily => {
                for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
                    self.dump(family, libc::IPPROTO_TCP as u8, states, &mut f)?;
                }
                Ok(())
            }
        }
    }

    /// Dumps the sockets of `family`/`protocol` whose state bit is in `states` (one
    /// `SOCK_DIAG_BY_FAMILY` request) and calls `f` for each.
    pub fn dump(
        &mut self,
        family: u8,
        protocol: u8,
        states: u32,
        mut f: impl FnMut(DiagRecord<'_>),
    ) -> std::io::Result<()> {
        let mut body = [0u8; REQ_V2_LEN];
        body[0] = family;
        body[1] = protocol;
        body[4..8].copy_from_slice(&states.to_ne_bytes());
        self.request(SOCK_DIAG_BY_FAMILY, &body, &mut f)
    }

    /// Sends one dump request of type `ty` (the payload `body` after the netlink header) and
    /// reads the reply records (of the same type) until the end of the dump.
    fn request(
        &mut self,
        ty: u16,
        body: &[u8],
        f: &mut impl FnMut(DiagRecord<'_>),
    ) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        #[cfg(test)]
        let body = if self.refuse.contains(&ty) {
            &body[..20]
        } else {
            body
        };
        self.seq = self.seq.wrapping_add(1);
        // nlmsghdr (16 bytes) + the request, native endian.
        let mut req = [0u8; NLMSG_HDRLEN + REQ_COMPAT_LEN];
        let len = NLMSG_HDRLEN + body.len();
        let req = &mut req[..len];
        req[0..4].copy_from_slice(&(len as u32).to_ne_bytes());
        req[4..6].copy_from_slice(&ty.to_ne_bytes());
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
        req[6..8].copy_from_slice(&flags.to_ne_bytes());
        req[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        req[NLMSG_HDRLEN..].copy_from_slice(body);
        // SAFETY: zeroed sockaddr_nl with the family set addresses the kernel.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: valid fd, buffer and address of the right sizes.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                req.as_ptr().cast(),
                req.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if sent < 0 {
            return Err(std::io::Error::last_os_error());
        }
        loop {
            // SAFETY: receiving into our own buffer of the given length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_raw_fd(),
                    self.buf.as_mut_ptr().cast(),
                    self.buf.len(),
                    0,
                )
            };
            if n < 0 {
                return Err(std::io::Error::last_os_error());
            }
            match parse_diag(&self.buf[..n as usize], self.seq, ty, f) {
                DiagChunk::More => continue,
                DiagChunk::Done => return Ok(()),
                DiagChunk::Error(errno) => return Err(std::io::Error::from_raw_os_error(errno)),
            }
        }
    }
}

#[derive(Debug, PartialEq)]
pub enum DiagChunk {
    More,
    Done,
    Error(i32),
}

/// Walks the netlink messages of one datagram; `f` gets each socket record, i.e. each message
/// of type `ty` (the kernel answers a request with its own type: 20 for `SOCK_DIAG_BY_FAMILY`,
/// 18 for `TCPDIAG_GETSOCK`) and sequence number `seq`.
pub fn parse_diag(
    mut data: &[u8],
    seq: u32,
    ty: u16,
    f: &mut impl FnMut(DiagRecord<'_>),
) -> DiagChunk {
    while data.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let mty = u16::from_ne_bytes([data[4], data[5]]);
        let mseq = u32::from_ne_bytes([data[8], data[9], data[10], data[11]]);
        if len < NLMSG_HDRLEN || len > data.len() {
            return DiagChunk::Error(libc::EBADMSG);
        }
        if mseq == seq {
            match mty {
                NLMSG_DONE => return DiagChunk::Done,
                NLMSG_ERROR => {
                    let errno = data
                        .get(16..20)
                        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                        .unwrap_or(-libc::EBADMSG);
                    return DiagChunk::Error(-errno);
                }
                _ if mty == ty && len > NLMSG_HDRLEN + 2 => f(DiagRecord(&data[NLMSG_HDRLEN..len])),
                _ => {}
            }
        }
        let aligned = (len + 3) & !3;
        data = &data[aligned.min(data.len())..];
    }
    DiagChunk::More
}

/// How TCP states are counted: the first that works, remembered so that a refused way is not
/// asked again every gather.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Netlink(TcpDump),
    Proc,
}

pub struct Netstat {
    buf: String,
    sockstat: ProcFile,
    sockstat6: ProcFile,
    files: [ProcFile; 4],
    diag: Option<Diag>,
    way: Way,
    /// Tests: see [`Diag`]'s field.
    #[cfg(test)]
    refuse: Vec<u16>,
}

impl Netstat {
    pub fn new(_config: Config) -> Self {
        Netstat {
            buf: String::with_capacity(16 * 1024),
            sockstat: ProcFile::new("/proc/net/sockstat"),
            sockstat6: ProcFile::new("/proc/net/sockstat6"),
            files: [
                ProcFile::new("/proc/net/tcp"),
                ProcFile::new("/proc/net/tcp6"),
                ProcFile::new("/proc/net/udp"),
                ProcFile::new("/proc/net/udp6"),
            ],
            diag: None,
            way: Way::Netlink(TcpDump::Compat),
            #[cfg(test)]
            refuse: Vec::new(),
        }
    }

    /// TCP state counts and UDP sockets through netlink, or `None` to fall back to /proc.
    ///
    /// The TCP dump is first the legacy `inet_diag` request (`TCPDIAG_GETSOCK`), which the
    /// kernel answers for both address families in one walk of its TCP hash tables. A
    /// `SOCK_DIAG_BY_FAMILY` request names one family, and since IPv4 and IPv6 sockets share
    /// those tables (the established one has `net.ipv4.tcp_ehash_entries` buckets, 262 144
    /// here), asking for each family walks them twice, each walk costing about the same
    /// whatever the number of sockets (measured here with a handful of sockets: one compat
    /// dump ≈ 390 µs, the two per-family dumps ≈ 640 µs). Should a kernel refuse the compat
    /// request, the per-family dumps are used, then /proc; the way that worked is kept.
    fn via_netlink(&mut self) -> Option<([u64; 12], u64)> {
        let Way::Netlink(mut how) = self.way else {
            return None;
        };
        // TIME_WAIT sockets are usually most of the table and all we need of them is their
        // number, which /proc/net/sockstat has (`tw`, per network namespace). It also counts
        // FIN_WAIT2 sockets in time-wait form; those are still dumped (timer 3) and subtracted.
        let (tw_total, udp4) = match self.sockstat.read(&mut self.buf) {
            Ok(()) => (
                sockstat_tw(&self.buf),
                sockstat_value(&self.buf, "UDP:", "inuse"),
            ),
            Err(_) => (None, None),
        };
        // UDP sockets are counted in `inuse` when they are hashed (bound), exactly the ones
        // /proc/net/udp lists: no dump needed. No sockstat6 = no IPv6 = none.
        let udp6 = match self.sockstat6.read(&mut self.buf) {
            Ok(()) => sockstat_value(&self.buf, "UDP6:", "inuse"),
            Err(_) => Some(0),
        };
        let states = match tw_total {
            Some(_) => TCP_STATES & !(1u32 << TCP_TIME_WAIT),
            None => TCP_STATES,
        };
        loop {
            if self.diag.is_none() {
                match Diag::open() {
                    Ok(d) => {
                        #[cfg(test)]
                        let d = Diag {
                            refuse: self.refuse.clone(),
                            ..d
                        };
                        self.diag = Some(d)
                    }
                    Err(e) => {
                        tracing::debug!(
                            "[inputs.netstat] sock_diag netlink unavailable ({e}); reading /proc/net instead"
                        );
                        self.way = Way::Proc;
                        return None;
                    }
                }
            }
            let diag = self.diag.as_mut()?;
            match count_netlink(diag, how, states, tw_total, udp4.zip(udp6)) {
                Ok(r) => return Some(r),
                Err(e) => {
                    // A dump that failed halfway may still be running on this socket (the
                    // kernel would refuse the next with EBUSY): start over on a fresh one.
                    self.diag = None;
                    match how {
                        TcpDump::Compat => {
                            tracing::debug!(
                                "[inputs.netstat] legacy inet_diag dump refused ({e}); dumping per address family instead"
                            );
                            how = TcpDump::PerFamily;
                            self.way = Way::Netlink(how);
                        }
                        TcpDump::PerFamily => {
                            tracing::debug!(
                                "[inputs.netstat] sock_diag netlink unavailable ({e}); reading /proc/net instead"
                            );
                            self.way = Way::Proc;
                            return None;
                        }
                    }
                }
            }
        }
    }

    pub async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        if let Some((counts, udp)) = self.via_netlink() {
            acc.add(metric(ts, &counts, udp));
            return Ok(());
        }
        let mut counts = [0u64; 12];
        let mut udp = 0;
        let mut read_any = false;
        for f in &mut self.files[..2] {
            if f.read(&mut self.buf).is_ok() {
                read_any = true;
                count_tcp(&self.buf, &mut counts);
            }
        }
        for f in &mut self.files[2..] {
            if f.read(&mut self.buf).is_ok() {
                read_any = true;
                udp += count_lines(&self.buf);
            }
        }
        if !read_any {
            return Err(GatherError::Failed(
                "none of /proc/net/{tcp,tcp6,udp,udp6} is readable".into(),
            ));
        }
        acc.add(metric(ts, &counts, udp));
        Ok(())
    }
}

/// One netlink count: TCP sockets by state (TIME_WAIT from `tw_total` when known, then left out
/// of the dump by `states`) and UDP sockets (`udp` = sockstat's IPv4 and IPv6 `inuse`, else
/// dumped).
fn count_netlink(
    diag: &mut Diag,
    how: TcpDump,
    states: u32,
    tw_total: Option<u64>,
    udp: Option<(u64, u64)>,
) -> std::io::Result<([u64; 12], u64)> {
    let mut counts = [0u64; 12];
    let mut fw2_tw = 0u64;
    diag.dump_tcp(how, states, |r| {
        let st = r.state();
        let i = usize::from(st);
        counts[if i < STATES.len() { i } else { 0 }] += 1;
        if r.timer() == 3 && st != TCP_TIME_WAIT as u8 {
            fw2_tw += 1;
        }
    })?;
    if let Some(tw) = tw_total {
        counts[TCP_TIME_WAIT] = tw.saturating_sub(fw2_tw);
    }
    let udp = match udp {
        Some((a, b)) => a + b,
        None => {
            let mut n = 0u64;
            for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
                diag.dump(family, libc::IPPROTO_UDP as u8, u32::MAX, |_| n += 1)?;
            }
            n
        }
    };
    Ok((counts, udp))
}

fn metric(ts: i64, counts: &[u64; 12], udp: u64) -> Metric {
    let mut m = Metric::new("netstat", ts);
    for (i, name) in STATES.iter().enumerate().skip(1) {
        m = m.field(*name, counts[i]);
    }
    m.field("tcp_none", counts[0]).field("udp_socket", udp)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn fixtures() {
        let mut c = [0u64; 12];
        count_tcp(include_str!("../../tests/fixtures/netstat/tcp"), &mut c);
        assert!(c[10] > 0, "the fixture has listening sockets: {c:?}");
        let udp = count_lines(include_str!("../../tests/fixtures/netstat/udp"));
        assert!(udp < 10_000);
        assert_eq!(
            sockstat_tw("sockets: used 88\nTCP: inuse 77 orphan 0 tw 10980 alloc 77 mem 175\n"),
            Some(10980)
        );
        assert_eq!(sockstat_tw("TCP: inuse 1\n"), None);
        assert_eq!(
            sockstat_value("TCP6: inuse 2\nUDP6: inuse 3\n", "UDP6:", "inuse"),
            Some(3)
        );
        let mut c = [0u64; 12];
        count_tcp(
            "hdr\n 0: 0100007F:0016 00000000:0000 01 0\n 1: x y 06 0\n 2: x y 0A\n 3: x y FF\n",
            &mut c,
        );
        assert_eq!((c[1], c[6], c[10], c[0]), (1, 1, 1, 1));
    }

    #[test]
    fn netlink_agrees_with_proc() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let _c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let _u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let mut n = Netstat::new(Config);
        let Some((counts, udp)) = n.via_netlink() else {
            return; // no sock_diag here: the /proc path is what runs
        };
        let mut proc = [0u64; 12];
        for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
            if let Ok(t) = std::fs::read_to_string(f) {
                count_tcp(&t, &mut proc);
            }
        }
        // Other processes open and close sockets meanwhile: compare the stable states only.
        assert!(counts[10] >= 1 && counts[1] >= 2, "{counts:?}");
        assert!(counts[10].abs_diff(proc[10]) <= 5, "{counts:?} vs {proc:?}");
        let mut proc_udp = 0;
        for f in ["/proc/net/udp", "/proc/net/udp6"] {
            if let Ok(t) = std::fs::read_to_string(f) {
                proc_udp += count_lines(&t);
            }
        }
        assert!(
            udp >= 1 && udp.abs_diff(proc_udp) <= 2,
            "{udp} vs {proc_udp}"
        );
    }

    #[test]
    fn diag_messages() {
        let mut msg = Vec::new();
        let mut push = |ty: u16, seq: u32, body: &[u8]| {
            let len = (16 + body.len()) as u32;
            msg.extend_from_slice(&len.to_ne_bytes());
            msg.extend_from_slice(&ty.to_ne_bytes());
            msg.extend_from_slice(&[0, 0]);
            msg.extend_from_slice(&seq.to_ne_bytes());
            msg.extend_from_slice(&[0; 4]);
            msg.extend_from_slice(body);
            while msg.len() % 4 != 0 {
                msg.push(0);
            }
        };
        push(SOCK_DIAG_BY_FAMILY, 7, &[2, 10, 0, 0, 0x1f, 0x90, 0, 0]);
        push(SOCK_DIAG_BY_FAMILY, 6, &[2, 1, 0, 0]); // another request's: ignored
        push(SOCK_DIAG_BY_FAMILY, 7, &[10, 6, 3, 0]);
        push(TCPDIAG_GETSOCK, 7, &[10, 1, 0, 0]); // not the type asked for: ignored
        let mut seen = Vec::new();
        let mut rec = |r: DiagRecord<'_>| seen.push((r.family(), r.state(), r.timer(), r.sport()));
        assert_eq!(
            parse_diag(&msg, 7, SOCK_DIAG_BY_FAMILY, &mut rec),
            DiagChunk::More
        );
        assert_eq!(seen, vec![(2, 10, 0, 8080), (10, 6, 3, 0)]);
        // The compat request is answered with its own type.
        let mut seen = Vec::new();
        parse_diag(&msg, 7, TCPDIAG_GETSOCK, &mut |r| seen.push(r.state()));
        assert_eq!(seen, vec![1]);
        let mut done = Vec::new();
        done.extend_from_slice(&20u32.to_ne_bytes());
        done.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        done.extend_from_slice(&[0, 0]);
        done.extend_from_slice(&7u32.to_ne_bytes());
        done.extend_from_slice(&[0; 8]);
        assert_eq!(
            parse_diag(&done, 7, SOCK_DIAG_BY_FAMILY, &mut |_| {}),
            DiagChunk::Done
        );
        assert_eq!(
            parse_diag(&[1, 0, 0], 7, SOCK_DIAG_BY_FAMILY, &mut |_| {}),
            DiagChunk::More,
            "short tail ignored"
        );
    }

    /// Sockets of our own on one family: a listener and an accepted connection to it.
    struct Own {
        family: u8,
        /// The listener's port.
        port: u16,
        _l: std::net::TcpListener,
        _c: std::net::TcpStream,
        _a: std::net::TcpStream,
        /// (state, local port, remote port) of each of the three sockets.
        expect: BTreeSet<(u8, u16, u16)>,
    }

    fn own(addr: &str) -> std::io::Result<Own> {
        let l = std::net::TcpListener::bind(addr)?;
        let port = l.local_addr()?.port();
        let c = std::net::TcpStream::connect(l.local_addr()?)?;
        let (a, _) = l.accept()?;
        let cport = c.local_addr()?.port();
        Ok(Own {
            family: if l.local_addr()?.is_ipv4() {
                libc::AF_INET as u8
            } else {
                libc::AF_INET6 as u8
            },
            port,
            _l: l,
            _c: c,
            _a: a,
            expect: [(10, port, 0), (1, cport, port), (1, port, cport)].into(),
        })
    }

    /// The records of a dump that belong to `o` (its listener's port on either end; no other
    /// socket can have that port while the listener holds it).
    fn mine(recs: &[(u8, u8, u16, u16)], o: &Own) -> BTreeSet<(u8, u16, u16)> {
        recs.iter()
            .filter(|r| r.0 == o.family && (r.2 == o.port || r.3 == o.port))
            .map(|r| (r.1, r.2, r.3))
            .collect()
    }

    /// (state, local port, remote port) of the sockets of one `/proc/net/tcp*` file whose local
    /// or remote port is `port`.
    fn proc_mine(path: &str, port: u16) -> BTreeSet<(u8, u16, u16)> {
        let text = std::fs::read_to_string(path).unwrap();
        let port_of = |f: &str| {
            f.rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok())
                .unwrap_or(0)
        };
        text.lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_ascii_whitespace().collect();
                let (lp, rp) = (port_of(f.get(1)?), port_of(f.get(2)?));
                let st = u8::from_str_radix(f.get(3)?, 16).ok()?;
                (lp == port || rp == port).then_some((st, lp, rp))
            })
            .collect()
    }

    /// The one compat dump sees the sockets of both families, the same as the per-family dumps
    /// and the /proc files.
    #[test]
    fn compat_dump_sees_both_families() {
        let Ok(mut diag) = Diag::open() else {
            return; // no sock_diag here: the /proc path is what runs
        };
        let v4 = own("127.0.0.1:0").unwrap();
        let v6 = match own("[::1]:0") {
            Ok(o) => o,
            // Only a kernel without IPv6 may lack ::1.
            Err(e) => {
                assert!(!std::path::Path::new("/proc/net/tcp6").exists(), "{e}");
                return;
            }
        };
        let mut dumps = Vec::new();
        for how in [TcpDump::Compat, TcpDump::PerFamily] {
            let mut recs = Vec::new();
            diag.dump_tcp(how, u32::MAX, |r| {
                recs.push((r.family(), r.state(), r.sport(), r.dport()))
            })
            .unwrap_or_else(|e| panic!("{how:?} dump refused by this kernel: {e}"));
            dumps.push(recs);
        }
        for (o, file) in [(&v4, "/proc/net/tcp"), (&v6, "/proc/net/tcp6")] {
            assert_eq!(mine(&dumps[0], o), o.expect, "compat, family {}", o.family);
            assert_eq!(mine(&dumps[1], o), o.expect, "per family, {}", o.family);
            assert_eq!(proc_mine(file, o.port), o.expect, "{file}");
        }
        // Whole-table counts of the two ways, taken back to back: the same but for sockets
        // other tests and processes open or close meanwhile.
        let by_family = |recs: &[(u8, u8, u16, u16)], fam: u8| {
            recs.iter().filter(|r| r.0 == fam && r.1 == 10).count()
        };
        for fam in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
            let (a, b) = (by_family(&dumps[0], fam), by_family(&dumps[1], fam));
            assert!(
                a >= 1 && a.abs_diff(b) <= 5,
                "listeners of family {fam}: {a} vs {b}"
            );
        }
    }

    /// A request the kernel rejects comes back as an error (what sends us to the next way),
    /// and a fresh socket works after it.
    #[test]
    fn refused_request_is_an_error() {
        let Ok(mut diag) = Diag::open() else {
            return;
        };
        // Shorter than `struct inet_diag_req`: EINVAL.
        let e = diag.request(TCPDIAG_GETSOCK, &[0u8; 20], &mut |_| {});
        assert!(e.is_err(), "{e:?}");
        let mut n = Netstat::new(Config);
        assert!(n.via_netlink().is_some());
        assert_eq!(
            n.way,
            Way::Netlink(TcpDump::Compat),
            "this kernel answers the compat dump"
        );
    }

    /// A refused compat dump falls back to the per-family dumps, a refused per-family dump to
    /// /proc, each once and for good, every way counting our listener.
    #[tokio::test]
    async fn refused_ways_fall_back_and_stay_so() {
        let _l = own("127.0.0.1:0").unwrap();
        let mut n = Netstat::new(Config);
        if Diag::open().is_err() {
            return;
        }
        n.refuse = vec![TCPDIAG_GETSOCK];
        let (counts, _) = n.via_netlink().expect("per-family dumps");
        assert_eq!(n.way, Way::Netlink(TcpDump::PerFamily));
        assert!(counts[10] >= 1 && counts[1] >= 2, "{counts:?}");
        n.refuse.clear(); // not asked again: still per family
        assert!(n.via_netlink().is_some());
        assert_eq!(n.way, Way::Netlink(TcpDump::PerFamily));
        n.refuse = vec![SOCK_DIAG_BY_FAMILY];
        n.diag = None;
        assert!(n.via_netlink().is_none());
        assert_eq!(n.way, Way::Proc);
        n.refuse.clear();
        assert!(n.via_netlink().is_none(), "/proc for good");
        let mut t = crate::modules::hostutil::testing::TestAcc::new();
        n.gather(&mut t.acc).await.unwrap();
        let lines = t.lines();
        assert!(
            lines.len() == 1 && !lines[0].contains("tcp_listen=0i"),
            "{lines:?}"
        );
    }

    #[tokio::test]
    async fn counts_a_listener_of_ours() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut t = crate::modules::hostutil::testing::TestAcc::new();
        Netstat::new(Config).gather(&mut t.acc).await.unwrap();
        let lines = t.lines();
        assert_eq!(lines.len(), 1);
        assert!(!lines[0].contains("tcp_listen=0i"), "{lines:?}");
        drop(l);
    }
}
