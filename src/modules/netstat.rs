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
}

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_HDRLEN: usize = 16;

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
        })
    }

    /// Dumps the sockets of `family`/`protocol` whose state bit is in `states` and calls
    /// `f(state, timer)` for each (`timer` 3 = a TIME_WAIT-form socket).
    pub fn dump(
        &mut self,
        family: u8,
        protocol: u8,
        states: u32,
        mut f: impl FnMut(u8, u8),
    ) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        self.seq = self.seq.wrapping_add(1);
        // nlmsghdr (16 bytes) + inet_diag_req_v2 (56 bytes), native endian.
        let mut req = [0u8; 72];
        req[0..4].copy_from_slice(&72u32.to_ne_bytes());
        req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
        let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
        req[6..8].copy_from_slice(&flags.to_ne_bytes());
        req[8..12].copy_from_slice(&self.seq.to_ne_bytes());
        req[16] = family;
        req[17] = protocol;
        req[20..24].copy_from_slice(&states.to_ne_bytes());
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
            match parse_diag(&self.buf[..n as usize], self.seq, &mut f) {
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

/// Walks the netlink messages of one datagram; `f` gets `idiag_state` and `idiag_timer` of each
/// socket record.
pub fn parse_diag(mut data: &[u8], seq: u32, f: &mut impl FnMut(u8, u8)) -> DiagChunk {
    while data.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let ty = u16::from_ne_bytes([data[4], data[5]]);
        let mseq = u32::from_ne_bytes([data[8], data[9], data[10], data[11]]);
        if len < NLMSG_HDRLEN || len > data.len() {
            return DiagChunk::Error(libc::EBADMSG);
        }
        if mseq == seq {
            match ty {
                NLMSG_DONE => return DiagChunk::Done,
                NLMSG_ERROR => {
                    let errno = data
                        .get(16..20)
                        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                        .unwrap_or(-libc::EBADMSG);
                    return DiagChunk::Error(-errno);
                }
                SOCK_DIAG_BY_FAMILY if len > NLMSG_HDRLEN + 2 => {
                    f(data[NLMSG_HDRLEN + 1], data[NLMSG_HDRLEN + 2])
                }
                _ => {}
            }
        }
        let aligned = (len + 3) & !3;
        data = &data[aligned.min(data.len())..];
    }
    DiagChunk::More
}

pub struct Netstat {
    buf: String,
    sockstat: ProcFile,
    sockstat6: ProcFile,
    files: [ProcFile; 4],
    diag: Option<Diag>,
    /// Netlink failed once: use /proc from then on.
    diag_failed: bool,
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
            diag_failed: false,
        }
    }

    /// TCP state counts and UDP sockets through netlink, or `None` to fall back to /proc.
    fn via_netlink(&mut self) -> Option<([u64; 12], u64)> {
        if self.diag_failed {
            return None;
        }
        if self.diag.is_none() {
            self.diag = Diag::open().ok();
        }
        let diag = self.diag.as_mut()?;
        let mut counts = [0u64; 12];
        let mut udp = 0u64;
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
            Some(_) => !(1u32 << TCP_TIME_WAIT),
            None => u32::MAX,
        };
        let mut fw2_tw = 0u64;
        let ok = (|| -> std::io::Result<()> {
            for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
                diag.dump(family, libc::IPPROTO_TCP as u8, states, |st, timer| {
                    let i = usize::from(st);
                    counts[if i < STATES.len() { i } else { 0 }] += 1;
                    if timer == 3 && st != TCP_TIME_WAIT as u8 {
                        fw2_tw += 1;
                    }
                })?;
            }
            match (udp4, udp6) {
                (Some(a), Some(b)) => udp = a + b,
                _ => {
                    for family in [libc::AF_INET as u8, libc::AF_INET6 as u8] {
                        diag.dump(family, libc::IPPROTO_UDP as u8, u32::MAX, |_, _| udp += 1)?;
                    }
                }
            }
            Ok(())
        })();
        if let Some(tw) = tw_total {
            counts[TCP_TIME_WAIT] = tw.saturating_sub(fw2_tw);
        }
        match ok {
            Ok(()) => Some((counts, udp)),
            Err(e) => {
                tracing::debug!(
                    "[inputs.netstat] sock_diag netlink unavailable ({e}); reading /proc/net instead"
                );
                self.diag_failed = true;
                self.diag = None;
                None
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

fn metric(ts: i64, counts: &[u64; 12], udp: u64) -> Metric {
    let mut m = Metric::new("netstat", ts);
    for (i, name) in STATES.iter().enumerate().skip(1) {
        m = m.field(*name, counts[i]);
    }
    m.field("tcp_none", counts[0]).field("udp_socket", udp)
}

#[cfg(test)]
mod tests {
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
        push(SOCK_DIAG_BY_FAMILY, 7, &[2, 10, 0, 0]);
        push(SOCK_DIAG_BY_FAMILY, 6, &[2, 1, 0, 0]); // another request's: ignored
        push(SOCK_DIAG_BY_FAMILY, 7, &[2, 6, 3, 0]);
        let mut states = Vec::new();
        assert_eq!(
            parse_diag(&msg, 7, &mut |s, _| states.push(s)),
            DiagChunk::More
        );
        assert_eq!(states, vec![10, 6]);
        let mut done = Vec::new();
        done.extend_from_slice(&20u32.to_ne_bytes());
        done.extend_from_slice(&NLMSG_DONE.to_ne_bytes());
        done.extend_from_slice(&[0, 0]);
        done.extend_from_slice(&7u32.to_ne_bytes());
        done.extend_from_slice(&[0; 8]);
        assert_eq!(parse_diag(&done, 7, &mut |_, _| {}), DiagChunk::Done);
        assert_eq!(
            parse_diag(&[1, 0, 0], 7, &mut |_, _| {}),
            DiagChunk::More,
            "short tail ignored"
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
