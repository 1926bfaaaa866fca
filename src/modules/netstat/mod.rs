//! `netstat`: socket counts, as telegraf's `netstat` input: measurement `netstat`, no tags, one
//! line with TCP sockets per state (`tcp_established` … `tcp_closing`) from `/proc/net/tcp` and
//! `/proc/net/tcp6`, `udp_socket` (sockets in `/proc/net/udp` and `udp6`) and, as telegraf
//! counts them (its list of connections includes unix sockets, which have no TCP state):
//! `tcp_none` = unix stream and seqpacket sockets, and unix datagram sockets added to
//! `udp_socket`. Counts are for the network namespace the agent runs
//! in. A missing file (IPv6 disabled) counts as no sockets.
//!
//! The counts come from a netlink `sock_diag` dump (what `ss` uses) when the kernel offers it:
//! the kernel then hands over fixed binary records instead of formatting one text line per
//! socket, which on a host with tens of thousands of TIME_WAIT sockets is most of the cost
//! (measured here: 18 000 sockets, ~45 ms per gather through /proc/net/tcp). The /proc files are
//! the fallback when netlink is refused (old kernels, seccomp, no `inet_diag`), and what is read
//! when `HOST_PROC` is set (telegraf reads `HOST_PROC/net/*`). Unix sockets likewise: a
//! `unix_diag` dump, else `/proc/net/unix` (measured here with 5000 unix sockets, debug build:
//! 0.5 ms per gather against 58 ms through the /proc files).
//!
//! Even with few sockets a dump costs a walk of the kernel's whole TCP hash tables, shared by
//! IPv4 and IPv6; the legacy `inet_diag` request covers both families in one walk where the
//! per-family `sock_diag` requests need two (see `Netstat::via_netlink`).

pub(crate) mod proc_net;
pub(crate) mod sock_diag;

use serde::Deserialize;

use super::GatherError;
use super::hostutil::ProcFile;
use crate::options::SpanError;
use crate::output::{Accumulator, Metric, now_ns};
use proc_net::{count_lines, count_tcp, count_unix, sockstat_tw, sockstat_value};
use sock_diag::{Diag, TcpDump};

/// `[[inputs.netstat]]` (no options, like telegraf's).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {}

#[derive(Debug, Clone)]
pub(crate) struct Config;

pub(crate) fn resolve(_raw: Raw) -> Result<Config, SpanError> {
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

/// How TCP states are counted: the first that works, remembered so that a refused way is not
/// asked again every gather.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Way {
    Netlink(TcpDump),
    Proc,
}

pub(crate) struct Netstat {
    buf: String,
    sockstat: ProcFile,
    sockstat6: ProcFile,
    files: [ProcFile; 4],
    unix: ProcFile,
    diag: Option<Diag>,
    way: Way,
    /// Unix sockets are counted by a netlink dump until the kernel refuses one.
    unix_netlink: bool,
    /// Tests: see [`Diag`]'s field.
    #[cfg(test)]
    refuse: Vec<u16>,
}

impl Netstat {
    pub(crate) fn new(_config: Config) -> Self {
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
            unix: ProcFile::new("/proc/net/unix"),
            unix_netlink: true,
            diag: None,
            way: match super::procfs::host::is_mapped("/proc") {
                true => Way::Proc,
                false => Way::Netlink(TcpDump::Compat),
            },
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
                        let d = {
                            let mut d = d;
                            d.refuse = self.refuse.clone();
                            d
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

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        if let Some((mut counts, udp)) = self.via_netlink() {
            let (unix_stream, unix_dgram) = self.unix_counts();
            counts[0] += unix_stream;
            acc.add(metric(ts, &counts, udp + unix_dgram));
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
        let (unix_stream, unix_dgram) = self.unix_counts();
        counts[0] += unix_stream;
        acc.add(metric(ts, &counts, udp + unix_dgram));
        Ok(())
    }
}

impl Netstat {
    /// Unix sockets (stream and seqpacket, datagram): by the netlink socket [`Self::via_netlink`]
    /// left open, else from `/proc/net/unix` (none counted when that is missing too).
    fn unix_counts(&mut self) -> (u64, u64) {
        if self.unix_netlink
            && let Some(diag) = self.diag.as_mut()
        {
            let (mut stream, mut dgram) = (0, 0);
            match diag.dump_unix(|r| match r.unix_type() as i32 {
                libc::SOCK_DGRAM => dgram += 1,
                _ => stream += 1,
            }) {
                Ok(()) => return (stream, dgram),
                Err(e) => {
                    tracing::debug!(
                        "[inputs.netstat] unix_diag dump refused ({e}); reading /proc/net/unix instead"
                    );
                    self.unix_netlink = false;
                    // A dump that failed halfway may still be running on that socket.
                    self.diag = None;
                }
            }
        }
        match self.unix.read(&mut self.buf) {
            Ok(()) => count_unix(&self.buf),
            Err(_) => (0, 0),
        }
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

super::ticked_input!(Netstat, super::Shape::Local);

#[cfg(test)]
mod tests {
    use super::sock_diag::tests::own;
    use super::sock_diag::{SOCK_DIAG_BY_FAMILY, TCPDIAG_GETSOCK};
    use super::*;

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

    /// The unix_diag dump counts what /proc/net/unix lists, our own pairs included.
    #[test]
    fn unix_netlink_agrees_with_proc() {
        let pairs: Vec<_> = (0..50)
            .map(|_| std::os::unix::net::UnixStream::pair().unwrap())
            .collect();
        let dgrams: Vec<_> = (0..20)
            .map(|_| std::os::unix::net::UnixDatagram::pair().unwrap())
            .collect();
        let mut n = Netstat::new(Config);
        if n.via_netlink().is_none() {
            return; // no sock_diag here
        }
        let (stream, dgram) = n.unix_counts();
        if !n.unix_netlink {
            return; // no unix_diag in this kernel: the /proc file was read
        }
        let (p_stream, p_dgram) = count_unix(&std::fs::read_to_string("/proc/net/unix").unwrap());
        assert!(stream >= 100 && dgram >= 40, "{stream} {dgram}");
        // Other processes open and close some meanwhile.
        assert!(stream.abs_diff(p_stream) <= 10, "{stream} vs {p_stream}");
        assert!(dgram.abs_diff(p_dgram) <= 10, "{dgram} vs {p_dgram}");
        drop((pairs, dgrams));
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
