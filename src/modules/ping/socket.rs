//! The system calls behind the shared ICMP sockets: open (raw or datagram), options, `sendto`,
//! and `recvmsg` with the kernel's receive timestamp and TTL/hop limit from control messages.
//! libc only: socket2 lacks the timestamp and ICMP filter options, and nix would add a crate for
//! the handful of calls used here.

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use super::packet::{Family, Kind};

// Linux values (the same on x86_64, aarch64 and the other asm-generic architectures).
const SO_TIMESTAMPNS: libc::c_int = 35;
const SCM_TIMESTAMPNS: libc::c_int = SO_TIMESTAMPNS;
const SO_RCVBUFFORCE: libc::c_int = 33;
const SO_BINDTODEVICE: libc::c_int = 25;
const SOL_RAW: libc::c_int = 255;
/// `ICMP_FILTER` (linux/icmp.h) on `SOL_RAW`, and `ICMP6_FILTER` (netinet/icmp6.h) on
/// `IPPROTO_ICMPV6`: both 1.
const ICMP_FILTER: libc::c_int = 1;
const ICMP6_FILTER: libc::c_int = 1;

/// Receive buffer asked for: 4 MiB holds the replies of ~30,000 echoes of the default size, so a
/// burst from thousands of targets is not dropped (and reported as loss) while a worker is busy.
pub(super) const RCVBUF_BYTES: libc::c_int = 4 << 20;

/// Where outgoing echoes leave from (`interface` option).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Bind {
    Any,
    Device(String),
    Address(IpAddr),
}

fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the length passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (value as *const T).cast(),
            size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Opens a non-blocking ICMP socket of `family` and `kind`, with receive timestamps, TTL/hop
/// limit reporting, a large receive buffer and (raw) a kernel filter passing only echo replies.
pub(super) fn open(family: Family, kind: Kind, bind: &Bind) -> io::Result<OwnedFd> {
    let (domain, proto) = match family {
        Family::V4 => (libc::AF_INET, libc::IPPROTO_ICMP),
        Family::V6 => (libc::AF_INET6, libc::IPPROTO_ICMPV6),
    };
    let ty = match kind {
        Kind::Raw => libc::SOCK_RAW,
        Kind::Datagram => libc::SOCK_DGRAM,
    };
    // SAFETY: plain socket(2); the result is checked before it is wrapped.
    let raw = unsafe { libc::socket(domain, ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, proto) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor we own.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let s = fd.as_raw_fd();
    let one: libc::c_int = 1;
    setsockopt(s, libc::SOL_SOCKET, SO_TIMESTAMPNS, &one)?;
    match family {
        Family::V4 => setsockopt(s, libc::IPPROTO_IP, libc::IP_RECVTTL, &one)?,
        Family::V6 => setsockopt(s, libc::IPPROTO_IPV6, libc::IPV6_RECVHOPLIMIT, &one)?,
    }
    // SO_RCVBUFFORCE passes net.core.rmem_max with CAP_NET_ADMIN; otherwise the kernel caps it.
    if setsockopt(s, libc::SOL_SOCKET, SO_RCVBUFFORCE, &RCVBUF_BYTES).is_err() {
        setsockopt(s, libc::SOL_SOCKET, libc::SO_RCVBUF, &RCVBUF_BYTES)?;
    }
    if kind == Kind::Raw {
        // Without a filter a raw socket wakes up for every ICMP packet of the host, including
        // each of our own requests looped back on 127/8 and ::1.
        match family {
            Family::V4 => {
                let blocked: u32 = !(1u32 << 0); // pass type 0 (echo reply) only
                setsockopt(s, SOL_RAW, ICMP_FILTER, &blocked)?;
            }
            Family::V6 => {
                let mut filter = [u32::MAX; 8]; // bit set = blocked
                filter[129 >> 5] &= !(1u32 << (129 & 31));
                setsockopt(s, libc::IPPROTO_ICMPV6, ICMP6_FILTER, &filter)?;
            }
        }
    }
    match bind {
        Bind::Any => {}
        Bind::Device(name) => {
            let mut buf = [0u8; libc::IFNAMSIZ];
            let bytes = name.as_bytes();
            if bytes.len() >= buf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "interface name too long",
                ));
            }
            buf[..bytes.len()].copy_from_slice(bytes);
            setsockopt(s, libc::SOL_SOCKET, SO_BINDTODEVICE, &buf)?;
        }
        Bind::Address(ip) => {
            let (sa, len) = sockaddr(SocketAddr::new(*ip, 0));
            // SAFETY: `sa` is a valid sockaddr of `len` bytes.
            let rc = unsafe { libc::bind(s, (&sa as *const libc::sockaddr_storage).cast(), len) };
            if rc != 0 {
                return Err(io::Error::last_os_error());
            }
        }
    }
    Ok(fd)
}

fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            let sin = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_addr.s6_addr = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            size_of::<libc::sockaddr_in6>()
        }
    };
    (ss, len as libc::socklen_t)
}

/// One `sendto`. The caller takes its send timestamps immediately before.
pub(super) fn send_to(fd: RawFd, packet: &[u8], to: SocketAddr) -> io::Result<()> {
    let (sa, len) = sockaddr(to);
    // SAFETY: buffer and address are valid for the lengths given.
    let n = unsafe {
        libc::sendto(
            fd,
            packet.as_ptr().cast(),
            packet.len(),
            0,
            (&sa as *const libc::sockaddr_storage).cast(),
            len,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// What one `recvmsg` returned besides the bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Received {
    pub len: usize,
    pub from: IpAddr,
    /// Kernel receive time (`SO_TIMESTAMPNS`, CLOCK_REALTIME), ns since the epoch.
    pub kernel_ns: Option<i64>,
    /// TTL (`IP_TTL`) or hop limit (`IPV6_HOPLIMIT`) from a control message.
    pub ttl: Option<u8>,
}

/// Control-message space: a timespec and an int, with headers and alignment, fits easily.
const CMSG_SPACE: usize = 128;

/// One non-blocking `recvmsg`; `WouldBlock` when the queue is empty.
pub(super) fn recv(fd: RawFd, buf: &mut [u8]) -> io::Result<Received> {
    // u64 array for cmsghdr alignment.
    let mut control = [0u64; CMSG_SPACE / 8];
    // SAFETY: zeroed sockaddr_storage/msghdr are valid; every pointer set below outlives the call.
    let mut from: libc::sockaddr_storage = unsafe { zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: an all-zero msghdr (null pointers, zero lengths) is a valid value; its pointers
    // are set below to buffers that outlive the recvmsg call.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_name = (&mut from as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = CMSG_SPACE as _;
    // SAFETY: msg describes valid buffers.
    let n = unsafe { libc::recvmsg(fd, &mut msg, libc::MSG_DONTWAIT) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let from_ip = match libc::c_int::from(from.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in.
            let sin =
                unsafe { &*(&from as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            IpAddr::V4(Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6.
            let sin6 =
                unsafe { &*(&from as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            IpAddr::V6(Ipv6Addr::from(sin6.sin6_addr.s6_addr))
        }
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    };
    let mut out = Received {
        len: n as usize,
        from: from_ip,
        kernel_ns: None,
        ttl: None,
    };
    // SAFETY: the CMSG_* macros walk the control buffer the kernel filled (msg_controllen bytes).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            let h = &*c;
            let data = libc::CMSG_DATA(c);
            match (h.cmsg_level, h.cmsg_type) {
                (libc::SOL_SOCKET, SCM_TIMESTAMPNS) => {
                    let ts = std::ptr::read_unaligned(data.cast::<libc::timespec>());
                    out.kernel_ns = Some(ts.tv_sec as i64 * 1_000_000_000 + ts.tv_nsec as i64);
                }
                (libc::IPPROTO_IP, libc::IP_TTL) | (libc::IPPROTO_IPV6, libc::IPV6_HOPLIMIT) => {
                    let v = std::ptr::read_unaligned(data.cast::<libc::c_int>());
                    out.ttl = u8::try_from(v).ok();
                }
                _ => {}
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    Ok(out)
}

/// `clock_gettime(clock)` in ns.
pub(super) fn clock_ns(clock: libc::clockid_t) -> i64 {
    // SAFETY: zeroed timespec is valid; clock_gettime only writes it.
    let mut ts: libc::timespec = unsafe { zeroed() };
    // SAFETY: valid pointer; CLOCK_REALTIME/CLOCK_MONOTONIC always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as i64 * 1_000_000_000 + ts.tv_nsec as i64
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddrV6;

    #[test]
    fn sockaddr_round_trip_fields() {
        let (ss, len) = sockaddr("127.0.0.2:0".parse().unwrap());
        assert_eq!(len as usize, size_of::<libc::sockaddr_in>());
        assert_eq!(libc::c_int::from(ss.ss_family), libc::AF_INET);
        let a = SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::LOCALHOST, 0, 0, 3));
        let (ss, len) = sockaddr(a);
        assert_eq!(len as usize, size_of::<libc::sockaddr_in6>());
        // SAFETY: written as sockaddr_in6 above.
        let sin6 = unsafe { &*(&ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
        assert_eq!(sin6.sin6_scope_id, 3);
    }
}
