//! The process-wide pinger: one ICMP socket per address family (and per `socket`/`interface`
//! choice), shared by every target of every `[[inputs.ping]]` instance, fping-style. Requests
//! carry a random per-process identifier and a sequence number from one 16-bit space per socket;
//! a single receive task per socket matches replies to outstanding requests by sequence number
//! and source address (and identifier on raw sockets, where we see everyone's ICMP) and hands
//! the RTT to the gather that sent the request.
//!
//! Lifetime: instances hold an `Arc<Pinger>`; the registry holds only a `Weak`. When the last
//! instance is dropped (reload, shutdown, restart after a panic) the sockets close and their
//! receive tasks are aborted; the next instance built creates a fresh pinger. So nothing leaks
//! across reloads and a pinger never outlives the runtime that polls it.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError, Weak};

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::packet::{self, Family, Kind};
use super::socket::{self, Bind};

/// Which kind of socket to use (`socket` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SocketMode {
    /// Datagram ("ping") socket if `net.ipv4.ping_group_range` allows, else raw.
    Auto,
    Raw,
    Datagram,
}

/// Sockets are shared between instances with the same key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub mode: SocketMode,
    pub bind: Bind,
}

/// A matched reply, as the gather that sent the request receives it.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReplyEvent {
    /// The sender's own index for this request.
    pub slot: u64,
    pub rtt_ns: i64,
    pub ttl: Option<u8>,
}

pub(super) type Sink = mpsc::UnboundedSender<ReplyEvent>;

/// Kernel timestamp and clock reads that disagree by more than this mean the wall clock was
/// stepped between send and receive. Both clocks run at the same (NTP-slewed) rate, so the
/// offset between them only moves on a step; 100 µs covers the two clock reads not being atomic.
const STEP_TOLERANCE_NS: i64 = 100_000;

/// The RTT of one echo. The send time is read from CLOCK_REALTIME right before `sendto`, the
/// receive time is the kernel's SO_TIMESTAMPNS (also CLOCK_REALTIME), so wake-up latency of this
/// process is not counted. CLOCK_MONOTONIC is read alongside both: if the realtime−monotonic
/// offset moved (a wall-clock step), or the kernel value is negative or larger than the
/// monotonic upper bound, the kernel value is discarded and the monotonic measurement (which
/// includes our wake-up latency, so it is never too small) is used instead.
pub(super) fn choose_rtt(
    sent_real: i64,
    sent_mono: i64,
    kernel_real: Option<i64>,
    now_real: i64,
    now_mono: i64,
) -> i64 {
    let mono = now_mono - sent_mono;
    if let Some(k) = kernel_real {
        let rtt = k - sent_real;
        let step = (now_real - now_mono) - (sent_real - sent_mono);
        if step.abs() <= STEP_TOLERANCE_NS && rtt >= 0 && rtt <= mono + STEP_TOLERANCE_NS {
            return rtt;
        }
    }
    mono
}

struct Pending {
    addr: IpAddr,
    owner: u64,
    slot: u64,
    sent_real: i64,
    sent_mono: i64,
    /// After this (monotonic ns) the sender no longer waits; the sequence number may be reused.
    expires_mono: i64,
    sink: Sink,
}

/// Outstanding requests of one socket. At most 65,536 (the sequence space), so memory is
/// bounded whatever the number of targets; expired entries are reused first.
pub(super) struct Table {
    next_seq: u16,
    map: HashMap<u16, Pending>,
}

impl Table {
    fn new(first_seq: u16) -> Self {
        Table {
            next_seq: first_seq,
            map: HashMap::new(),
        }
    }

    /// The next free sequence number (wrapping at 65535), taking over expired entries.
    /// `None` when all 65,536 are outstanding and unexpired.
    fn alloc(&mut self, now_mono: i64) -> Option<u16> {
        for _ in 0..=u16::MAX as u32 {
            let s = self.next_seq;
            self.next_seq = s.wrapping_add(1);
            match self.map.get(&s) {
                None => return Some(s),
                Some(p) if p.expires_mono <= now_mono => {
                    self.map.remove(&s);
                    return Some(s);
                }
                Some(_) => {}
            }
        }
        None
    }
}

/// One open ICMP socket and its outstanding requests.
pub(super) struct Endpoint {
    fd: AsyncFd<OwnedFd>,
    pub family: Family,
    pub kind: Kind,
    ident: u16,
    table: Mutex<Table>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Why an echo was not sent.
#[derive(Debug, thiserror::Error)]
pub(super) enum SendError {
    #[error("65536 requests outstanding on one socket; request not sent")]
    TableFull,
    #[error("sendto: {0}")]
    Io(#[from] io::Error),
}

impl Endpoint {
    /// Sends one echo request to `to` and registers it. `template` is a request built by
    /// `packet::encode_request` with this family; its sequence (and IPv4 checksum) are patched.
    pub(super) fn send(
        &self,
        template: &mut [u8],
        to: SocketAddr,
        owner: u64,
        slot: u64,
        timeout_ns: i64,
        sink: &Sink,
    ) -> Result<u16, SendError> {
        let seq;
        {
            let mut t = lock(&self.table);
            let now_mono = socket::clock_ns(libc::CLOCK_MONOTONIC);
            seq = t.alloc(now_mono).ok_or(SendError::TableFull)?;
            template[4..6].copy_from_slice(&self.ident.to_be_bytes());
            template[6..8].copy_from_slice(&seq.to_be_bytes());
            if self.family == Family::V4 {
                template[2..4].copy_from_slice(&[0, 0]);
                let c = packet::checksum(template);
                template[2..4].copy_from_slice(&c.to_be_bytes());
            }
            // Registered before sendto (a reply cannot beat it); both clocks read last.
            let sent_mono = socket::clock_ns(libc::CLOCK_MONOTONIC);
            let sent_real = socket::clock_ns(libc::CLOCK_REALTIME);
            t.map.insert(
                seq,
                Pending {
                    addr: to.ip(),
                    owner,
                    slot,
                    sent_real,
                    sent_mono,
                    expires_mono: sent_mono + timeout_ns,
                    sink: sink.clone(),
                },
            );
        }
        if let Err(e) = socket::send_to(self.fd.as_raw_fd(), template, to) {
            self.forget(owner, [seq]);
            return Err(e.into());
        }
        Ok(seq)
    }

    /// Drops the still-outstanding requests `seqs` of `owner` (the gather is over).
    pub(super) fn forget(&self, owner: u64, seqs: impl IntoIterator<Item = u16>) {
        let mut t = lock(&self.table);
        for s in seqs {
            if t.map.get(&s).is_some_and(|p| p.owner == owner) {
                t.map.remove(&s);
            }
        }
    }

    /// Matches one received packet; a match is removed and reported to its sender.
    fn on_packet(&self, data: &[u8], rcv: socket::Received) {
        let Some(reply) = packet::decode_reply(data, self.family, self.kind) else {
            return;
        };
        // A datagram socket only gets replies to its own port (the kernel rewrote the
        // identifier); a raw socket sees everyone's.
        if self.kind == Kind::Raw && reply.ident != self.ident {
            return;
        }
        let now_mono = socket::clock_ns(libc::CLOCK_MONOTONIC);
        let now_real = socket::clock_ns(libc::CLOCK_REALTIME);
        let p = {
            let mut t = lock(&self.table);
            match t.map.get(&reply.seq) {
                Some(p) if p.addr == rcv.from => t.map.remove(&reply.seq),
                _ => None,
            }
        };
        if let Some(p) = p {
            let rtt_ns = choose_rtt(p.sent_real, p.sent_mono, rcv.kernel_ns, now_real, now_mono);
            // The sender may have finished already; then the reply is simply late.
            let _ = p.sink.send(ReplyEvent {
                slot: p.slot,
                rtt_ns,
                ttl: rcv.ttl.or(reply.ttl),
            });
        }
    }
}

/// Reads the socket until the pinger is dropped (which aborts this task).
async fn receive_loop(ep: Arc<Endpoint>) {
    // Large enough for an IPv4 header and the largest `size` accepted.
    let mut buf = vec![0u8; 65_536];
    loop {
        let mut guard = match ep.fd.readable().await {
            Ok(g) => g,
            Err(e) => {
                tracing::error!("ping: ICMP socket cannot be polled: {e}; replies are lost");
                return;
            }
        };
        // A pending socket error (an ICMP error on a datagram socket) is returned once by
        // recvmsg and cleared; more than a few in a row would be a persistent failure, so the
        // readiness is cleared instead of spinning.
        let mut errors = 0;
        // Packets handled before giving the worker back to other tasks (a raw socket sees every
        // echo reply of the host, so a flood must not monopolise a worker thread).
        let mut budget = 512;
        loop {
            if budget == 0 {
                drop(guard);
                tokio::task::yield_now().await;
                break;
            }
            match socket::recv(ep.fd.as_raw_fd(), &mut buf) {
                Ok(rcv) => {
                    errors = 0;
                    budget -= 1;
                    ep.on_packet(&buf[..rcv.len.min(buf.len())], rcv);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    guard.clear_ready();
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    tracing::debug!("ping: recvmsg: {e}");
                    errors += 1;
                    if errors > 8 {
                        guard.clear_ready();
                        break;
                    }
                }
            }
        }
    }
}

/// An open socket and its receive task; dropping it aborts the task, which closes the socket.
struct Open {
    endpoint: Arc<Endpoint>,
    task: JoinHandle<()>,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why no ICMP socket could be opened.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub(super) struct OpenError(pub String);

/// The shared pinger for one `Key`.
pub(super) struct Pinger {
    key: Key,
    v4: Mutex<Option<Open>>,
    v6: Mutex<Option<Open>>,
}

/// Identifier base, random per process start: a fixed identifier makes NAT devices map every
/// restart of the agent onto the same (possibly stale) ICMP session.
fn ident_base() -> u16 {
    static BASE: OnceLock<u16> = OnceLock::new();
    *BASE.get_or_init(crate::rand::u16)
}

/// Each socket opened gets the next identifier, so two raw sockets of this process (different
/// `interface`) never claim each other's replies.
static SOCKETS_OPENED: AtomicU16 = AtomicU16::new(0);
/// Unique owner ids for gathers.
static OWNERS: AtomicU64 = AtomicU64::new(1);
/// Keys whose "cannot open" error was logged: once per process and key (both families, every
/// round, every reload), until a socket of that key opens.
static OPEN_FAILURE_LOGGED: Mutex<Vec<Key>> = Mutex::new(Vec::new());

pub(super) fn new_owner() -> u64 {
    OWNERS.fetch_add(1, Ordering::Relaxed)
}

/// The pinger for `key`, shared with every live instance using the same key.
pub(super) fn shared(key: &Key) -> Arc<Pinger> {
    static REGISTRY: Mutex<Vec<(Key, Weak<Pinger>)>> = Mutex::new(Vec::new());
    let mut reg = lock(&REGISTRY);
    reg.retain(|(_, w)| w.strong_count() > 0);
    if let Some(p) = reg
        .iter()
        .find(|(k, _)| k == key)
        .and_then(|(_, w)| w.upgrade())
    {
        return p;
    }
    let p = Arc::new(Pinger {
        key: key.clone(),
        v4: Mutex::new(None),
        v6: Mutex::new(None),
    });
    reg.push((key.clone(), Arc::downgrade(&p)));
    p
}

impl Pinger {
    /// The socket for `family`, opened on first use (and retried on later gathers after a
    /// failure, so granting the permission later needs no restart). Must run inside the runtime.
    pub(super) fn endpoint(&self, family: Family) -> Result<Arc<Endpoint>, OpenError> {
        let slot = match family {
            Family::V4 => &self.v4,
            Family::V6 => &self.v6,
        };
        let mut slot = lock(slot);
        if let Some(open) = slot.as_ref() {
            return Ok(open.endpoint.clone());
        }
        match self.open(family) {
            Ok(open) => {
                let mut logged = lock(&OPEN_FAILURE_LOGGED);
                if let Some(pos) = logged.iter().position(|k| *k == self.key) {
                    logged.swap_remove(pos);
                    tracing::info!(
                        "ping: ICMP {} socket opened ({:?})",
                        family.name(),
                        open.endpoint.kind
                    );
                }
                let ep = open.endpoint.clone();
                *slot = Some(open);
                Ok(ep)
            }
            Err(e) => {
                let mut logged = lock(&OPEN_FAILURE_LOGGED);
                if !logged.contains(&self.key) {
                    logged.push(self.key.clone());
                    tracing::error!(
                        "ping: {e}; targets that need this socket report result_code=2 until it opens (logged once)"
                    );
                }
                Err(e)
            }
        }
    }

    fn open(&self, family: Family) -> Result<Open, OpenError> {
        if let Bind::Address(ip) = &self.key.bind
            && ip.is_ipv4() != (family == Family::V4)
        {
            return Err(OpenError(format!(
                "interface = \"{ip}\" is an address of the other family: {} targets cannot be sent from it",
                family.name()
            )));
        }
        let kinds: &[Kind] = match self.key.mode {
            SocketMode::Auto => &[Kind::Datagram, Kind::Raw],
            SocketMode::Raw => &[Kind::Raw],
            SocketMode::Datagram => &[Kind::Datagram],
        };
        let mut failures = Vec::new();
        for &kind in kinds {
            match socket::open(family, kind, &self.key.bind) {
                Ok(fd) => {
                    // SAFETY: `fd` is an open descriptor the AsyncFd takes ownership of; it
                    // stays open and the same until the AsyncFd drops.
                    let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
                        .map_err(|e| {
                            let (_, e) = e.into_parts();
                            OpenError(format!("cannot register ICMP socket: {e}"))
                        })?;
                    let n = SOCKETS_OPENED.fetch_add(1, Ordering::Relaxed);
                    let endpoint = Arc::new(Endpoint {
                        fd,
                        family,
                        kind,
                        ident: ident_base().wrapping_add(n),
                        table: Mutex::new(Table::new(crate::rand::u16())),
                    });
                    let task = tokio::spawn(receive_loop(endpoint.clone()));
                    return Ok(Open { endpoint, task });
                }
                Err(e) => failures.push((kind, e)),
            }
        }
        Err(OpenError(describe_failure(
            family,
            &self.key.bind,
            &failures,
        )))
    }
}

/// One message naming what to grant.
fn describe_failure(family: Family, bind: &Bind, failures: &[(Kind, io::Error)]) -> String {
    let fam = family.name();
    let mut parts = Vec::new();
    let mut permission = false;
    for (kind, e) in failures {
        let what = match kind {
            Kind::Datagram => "datagram (unprivileged) socket",
            Kind::Raw => "raw socket",
        };
        permission |= matches!(e.raw_os_error(), Some(libc::EPERM | libc::EACCES));
        parts.push(format!("{what}: {e}"));
    }
    let mut msg = format!("cannot open an ICMP {fam} socket ({})", parts.join("; "));
    if permission {
        msg.push_str(
            ". Allow one of: unprivileged ping sockets for the agent's group via the sysctl \
             net.ipv4.ping_group_range (e.g. sysctl -w net.ipv4.ping_group_range=\"0 2147483647\"), \
             or raw sockets via the capability CAP_NET_RAW (e.g. AmbientCapabilities=CAP_NET_RAW \
             for telegraf.service)",
        );
    }
    if !matches!(bind, Bind::Any) {
        msg.push_str(&format!(" [interface {bind:?}]"));
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(expires: i64, sink: &Sink) -> Pending {
        Pending {
            addr: IpAddr::from([127, 0, 0, 1]),
            owner: 1,
            slot: 0,
            sent_real: 0,
            sent_mono: 0,
            expires_mono: expires,
            sink: sink.clone(),
        }
    }

    #[test]
    fn sequence_wraps_and_skips_outstanding() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut t = Table::new(65534);
        assert_eq!(t.alloc(0), Some(65534));
        assert_eq!(t.alloc(0), Some(65535));
        // Wraps to 0.
        assert_eq!(t.alloc(0), Some(0));
        // 1 is outstanding (not expired at now=10): skipped.
        t.map.insert(1, pending(100, &tx));
        assert_eq!(t.alloc(10), Some(2));
        // Once expired it is taken over.
        t.next_seq = 1;
        assert_eq!(t.alloc(100), Some(1));
        assert!(!t.map.contains_key(&1));
    }

    #[test]
    fn full_table_refuses() {
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut t = Table::new(0);
        for s in 0..=u16::MAX {
            t.map.insert(s, pending(1_000, &tx));
        }
        assert_eq!(t.alloc(0), None);
        assert!(t.alloc(1_000).is_some());
    }

    #[test]
    fn rtt_prefers_kernel_timestamp() {
        // Sent at real 1_000_000, mono 50; kernel stamped 30 µs later; we woke 200 µs later.
        let rtt = choose_rtt(1_000_000, 50, Some(1_030_000), 1_200_000, 200_050);
        assert_eq!(rtt, 30_000);
    }

    #[test]
    fn wall_clock_step_forward_is_detected() {
        // Clock stepped +2 s between send and receive: kernel RTT would read 2.00003 s.
        let step = 2_000_000_000;
        let rtt = choose_rtt(
            1_000_000,
            50,
            Some(1_030_000 + step),
            1_200_000 + step,
            200_050,
        );
        assert_eq!(rtt, 200_000);
    }

    #[test]
    fn wall_clock_step_backward_is_detected() {
        // Sent at real 10_000_000, mono 50; kernel stamped 30 µs later; we woke 200 µs later;
        // the wall clock stepped back by `step` ns in between.
        for (step, want, why) in [
            (-5_000_000, 200_000, "-5 ms: kernel RTT negative"),
            (
                -10_000,
                30_000 - 10_000,
                "-10 µs: within tolerance, the kernel value stands",
            ),
            (
                -1_000_000,
                200_000,
                "-1 ms: kernel RTT negative, the fallback",
            ),
        ] {
            let rtt = choose_rtt(
                10_000_000,
                50,
                Some(10_030_000 + step),
                10_200_000 + step,
                200_050,
            );
            assert_eq!(rtt, want, "{why}");
        }
    }

    #[test]
    fn missing_timestamp_uses_monotonic() {
        assert_eq!(choose_rtt(0, 100, None, 0, 900), 800);
    }

    #[test]
    fn failure_message_names_sysctl_and_capability() {
        let e = io::Error::from_raw_os_error(libc::EACCES);
        let e2 = io::Error::from_raw_os_error(libc::EPERM);
        let m = describe_failure(
            Family::V4,
            &Bind::Any,
            &[(Kind::Datagram, e), (Kind::Raw, e2)],
        );
        assert!(m.contains("net.ipv4.ping_group_range"), "{m}");
        assert!(m.contains("CAP_NET_RAW"), "{m}");
    }
}
