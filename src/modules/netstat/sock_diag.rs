//! Netlink `sock_diag`: dump requests built by hand (a few fixed-layout structs) and the reply
//! parser [`parse_diag`], a pure function over the received bytes.

/// A `NETLINK_SOCK_DIAG` socket for dumping socket states.
pub(crate) struct Diag {
    fd: std::os::fd::OwnedFd,
    buf: Vec<u8>,
    seq: u32,
    /// Tests: request types sent truncated, which the kernel refuses (EINVAL), to walk the
    /// fallbacks on a kernel that answers everything.
    #[cfg(test)]
    pub(super) refuse: Vec<u16>,
}

const NETLINK_SOCK_DIAG: libc::c_int = 4;
/// The `sock_diag` request (`inet_diag_req_v2` payload): one address family per dump.
pub(crate) const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// The legacy `inet_diag` TCP request (`struct inet_diag_req` payload), answered by the kernel's
/// compatibility path with the family set to `AF_UNSPEC`: IPv4 and IPv6 sockets in one dump.
pub(super) const TCPDIAG_GETSOCK: u16 = 18;
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
pub(crate) struct DiagRecord<'a>(&'a [u8]);

impl<'a> DiagRecord<'a> {
    /// The whole record (header and attributes), for readers of more than the state and ports
    /// (procstat's `procstat_socket`).
    pub(crate) fn bytes(&self) -> &'a [u8] {
        self.0
    }
    pub(crate) fn family(&self) -> u8 {
        self.0[0]
    }
    /// The kernel TCP state number (index into [`super::STATES`]).
    pub(crate) fn state(&self) -> u8 {
        self.0[1]
    }
    /// `udiag_type` of a unix socket's record (`SOCK_STREAM`, `SOCK_DGRAM`, `SOCK_SEQPACKET`).
    pub(crate) fn unix_type(&self) -> u8 {
        self.0[1]
    }
    /// `idiag_timer`: 3 = a socket in TIME_WAIT form.
    pub(crate) fn timer(&self) -> u8 {
        self.0[2]
    }
    /// Local port (`id.idiag_sport`, network order on the wire), 0 if the record is short.
    pub(crate) fn sport(&self) -> u16 {
        self.0
            .get(4..6)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    }
    /// Remote port (`id.idiag_dport`), 0 if the record is short.
    pub(crate) fn dport(&self) -> u16 {
        self.0
            .get(6..8)
            .map_or(0, |b| u16::from_be_bytes([b[0], b[1]]))
    }
}

/// The TCP dump request a [`Diag`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TcpDump {
    /// One legacy `TCPDIAG_GETSOCK` dump for both families.
    Compat,
    /// One `SOCK_DIAG_BY_FAMILY` dump per family.
    PerFamily,
}

impl Diag {
    pub(crate) fn open() -> std::io::Result<Diag> {
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
    pub(crate) fn dump_tcp(
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
    pub(crate) fn dump(
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

    /// Dumps every unix socket (`struct unix_diag_req`: family, protocol, pad, states, inode,
    /// show flags, cookie; all states, no attributes) and calls `f` for each. Needs the
    /// kernel's `unix_diag` (`CONFIG_UNIX_DIAG`); without it the kernel answers ENOENT.
    pub(crate) fn dump_unix(&mut self, mut f: impl FnMut(DiagRecord<'_>)) -> std::io::Result<()> {
        let mut body = [0u8; 24];
        body[0] = libc::AF_UNIX as u8;
        body[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
        self.request(SOCK_DIAG_BY_FAMILY, &body, &mut f)
    }

    /// Sends one dump request of type `ty` (the payload `body` after the netlink header) and
    /// reads the reply records (of the same type) until the end of the dump.
    pub(crate) fn request(
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
pub(crate) enum DiagChunk {
    More,
    Done,
    Error(i32),
}

/// Walks the netlink messages of one datagram; `f` gets each socket record, i.e. each message
/// of type `ty` (the kernel answers a request with its own type: 20 for `SOCK_DIAG_BY_FAMILY`,
/// 18 for `TCPDIAG_GETSOCK`) and sequence number `seq`.
pub(crate) fn parse_diag(
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
                    // The kernel sends -errno; anything else (a positive value, or i32::MIN,
                    // whose negation overflows) is not an errno: a malformed message.
                    return DiagChunk::Error(match errno.checked_neg() {
                        Some(e) if e > 0 => e,
                        _ => libc::EBADMSG,
                    });
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

#[cfg(test)]
pub(super) mod tests {
    use std::collections::BTreeSet;

    use super::*;

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
    pub(in crate::modules::netstat) struct Own {
        family: u8,
        /// The listener's port.
        port: u16,
        _l: std::net::TcpListener,
        _c: std::net::TcpStream,
        _a: std::net::TcpStream,
        /// (state, local port, remote port) of each of the three sockets.
        expect: BTreeSet<(u8, u16, u16)>,
    }

    pub(in crate::modules::netstat) fn own(addr: &str) -> std::io::Result<Own> {
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
}
