//! `ping`: ICMP echo to many hosts, as telegraf's `ping` input (measurement `ping`, tag `url`,
//! the same fields), plus `median_response_ms`, `p95_response_ms` and `jitter_ms`.
//!
//! Every target of every instance shares one ICMP socket per address family (see `pinger`):
//! requests are matched to replies by identifier, sequence number and address, fping-style, so
//! thousands of targets cost one socket, one receive task and a few bytes each. RTTs come from
//! the kernel's receive timestamp against a send time read right before `sendto`.
//!
//! One gather: resolve every URL (IP literals directly, host names per round, bounded by
//! `timeout`), then `count` rounds `ping_interval` apart. Each round's requests are paced over
//! half of min(`ping_interval`, `timeout`) rather than sent in one burst; nothing in a round
//! waits for a reply, so a slow or dead target never delays another. The gather ends when every
//! request is answered or timed out, and never later than `deadline`. Keep `deadline` (and
//! `count` × `ping_interval` + `timeout`) below the input's `interval`, or ticks are skipped.

pub(crate) mod exec;
pub(crate) mod packet;
mod pinger;
mod socket;
mod stats;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use super::GatherError;
use crate::options::{ConfigDuration, ConfigSize, SpanError};
use crate::output::{Accumulator, Metric, now_ns};
use packet::Family;
use pinger::{Pinger, ReplyEvent, SocketMode};
use socket::Bind;

/// `[[inputs.ping]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// Hosts to ping: IPv4/IPv6 addresses or host names (resolved again every round, IPv4
    /// preferred unless `ipv6 = true`). Each becomes the `url` tag exactly as written.
    urls: Spanned<Vec<String>>,
    /// "exec" (telegraf's default) or "native". Both use the agent's own ICMP sockets unless the
    /// block names a `binary` or `arguments`: with "exec" that program is then run per URL, as
    /// telegraf runs it.
    method: Option<Spanned<String>>,
    /// Echo requests per target per gather (default 1).
    count: Option<Spanned<i64>>,
    /// Time between the requests to one target when `count` > 1 (default 1 s, at least 0.2 s:
    /// smaller values are raised to 0.2 s, like ping for unprivileged users).
    ping_interval: Option<Spanned<ConfigDuration>>,
    /// How long to wait for each reply (default 1 s). A reply arriving later counts as lost.
    timeout: Option<Spanned<ConfigDuration>>,
    /// Upper bound on one whole gather: no request is sent and no reply awaited after it
    /// (default 10 s).
    deadline: Option<Spanned<ConfigDuration>>,
    /// ICMP payload bytes (default 56, giving 64-byte ICMP messages like ping): an integer or a
    /// size string like telegraf's `"56B"`.
    size: Option<Spanned<ConfigSize>>,
    /// Send from this interface (name, bound with SO_BINDTODEVICE) or source address; "" (as
    /// in telegraf's sample) means none.
    interface: Option<Spanned<String>>,
    /// Resolve host names to IPv4 only.
    ipv4: Option<bool>,
    /// Resolve host names to IPv6 only.
    ipv6: Option<bool>,
    /// Extra fields `percentile<N>_ms` (telegraf's native-method option), e.g. [50, 95, 99].
    percentiles: Option<Spanned<Vec<i64>>>,
    /// telegraf ≥1.40 option: true = raw socket, false = datagram socket. `socket` wins if both
    /// are set.
    privileged: Option<bool>,
    /// "auto" (default): an unprivileged datagram socket if net.ipv4.ping_group_range allows the
    /// agent's group, else a raw socket (needs CAP_NET_RAW). "raw" or "datagram" force one.
    socket: Option<Spanned<String>>,
    /// The ping program of the exec method (default "ping", looked up in PATH). Setting it (or
    /// `arguments`) with `method` "exec" or unset runs it per URL; with "native" it is ignored,
    /// as in telegraf.
    binary: Option<String>,
    /// The exec method's whole argument list (the URL is appended); set, it replaces the
    /// arguments built from `count`, `ping_interval`, `timeout`, `deadline` and `interface`.
    arguments: Option<Vec<String>>,
}

/// Which addresses a host name may resolve to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FamilyPref {
    Any,
    V4,
    V6,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Run a ping program per URL (telegraf's exec method with `binary`/`arguments`).
    exec: Option<exec::Exec>,
    pub urls: Vec<String>,
    pub count: u32,
    pub ping_interval: Duration,
    pub timeout: Duration,
    pub deadline: Duration,
    pub size: usize,
    pub family: FamilyPref,
    pub percentiles: Vec<u8>,
    pub key: pinger::Key,
}

/// Lower bound of `ping_interval` (telegraf's, and ping's for unprivileged users).
const MIN_PING_INTERVAL: Duration = Duration::from_millis(200);
/// Largest payload: an IPv4 datagram is at most 65,535 bytes, minus 20 (IP) and 8 (ICMP).
const MAX_SIZE: u64 = 65_507;
/// Upper bound on `count`: with the deadline it bounds per-target memory of one gather.
const MAX_COUNT: i64 = 100_000;
/// Shortest time between two send batches of a round. Each batch costs a timer wake-up of the
/// gather and one of the receive task for its replies (on loopback or a LAN they arrive
/// together); a batch every 5 ms instead of every millisecond cut the CPU per echo at 1,000
/// targets from 27 to 10 µs (bench/ping.sh, fping 41-42 µs in the same runs) while a round of
/// 1,000 requests still goes out in bursts of at most 10 (1 s interval: 500 ms spread, 100
/// batches).
const BATCH_SPACING: Duration = Duration::from_millis(5);
/// Host name lookups in flight at once per instance.
const RESOLVE_CONCURRENCY: usize = 16;

pub(crate) fn resolve(raw: Raw) -> Result<Config, SpanError> {
    let urls_span = raw.urls.span();
    let urls = raw.urls.into_inner();
    if urls.is_empty() {
        return Err(SpanError::new(
            urls_span,
            "urls",
            "must list at least one host",
        ));
    }
    if let Some(u) = urls.iter().find(|u| u.trim().is_empty()) {
        return Err(SpanError::new(
            urls_span,
            "urls",
            format!("empty host {u:?}"),
        ));
    }
    if let Some(m) = &raw.method
        && !matches!(m.get_ref().as_str(), "native" | "exec")
    {
        return Err(SpanError::new(
            m.span(),
            "method",
            "must be \"native\" or \"exec\"",
        ));
    }
    let count = match raw.count {
        Some(c) if !(1..=MAX_COUNT).contains(c.get_ref()) => {
            return Err(SpanError::new(
                c.span(),
                "count",
                format!("must be between 1 and {MAX_COUNT}"),
            ));
        }
        Some(c) => *c.get_ref() as u32,
        None => 1,
    };
    let ping_interval = raw
        .ping_interval
        .map_or(Duration::from_secs(1), |d| d.get_ref().get())
        .max(MIN_PING_INTERVAL);
    let positive = |v: Option<Spanned<ConfigDuration>>, key: &str, default: u64| match v {
        Some(d) if d.get_ref().get().is_zero() => Err(SpanError::new(d.span(), key, "must be > 0")),
        Some(d) => Ok(d.get_ref().get()),
        None => Ok(Duration::from_secs(default)),
    };
    let timeout = positive(raw.timeout, "timeout", 1)?;
    let deadline = positive(raw.deadline, "deadline", 10)?;
    let size = match raw.size {
        Some(s) if s.get_ref().get() > MAX_SIZE => {
            return Err(SpanError::new(
                s.span(),
                "size",
                format!("must be between 0 and {MAX_SIZE}"),
            ));
        }
        Some(s) => s.get_ref().get() as usize,
        None => 56,
    };
    let family = match (raw.ipv4.unwrap_or(false), raw.ipv6.unwrap_or(false)) {
        (true, true) => {
            return Err(SpanError::new(
                urls_span,
                "ipv6",
                "ipv4 and ipv6 are both true; set at most one",
            ));
        }
        (true, false) => FamilyPref::V4,
        (false, true) => FamilyPref::V6,
        (false, false) => FamilyPref::Any,
    };
    let mut percentiles = Vec::new();
    if let Some(p) = raw.percentiles {
        for &v in p.get_ref() {
            let Ok(v) = u8::try_from(v) else {
                return Err(SpanError::new(
                    p.span(),
                    "percentiles",
                    "each must be 0..=100",
                ));
            };
            if v > 100 {
                return Err(SpanError::new(
                    p.span(),
                    "percentiles",
                    "each must be 0..=100",
                ));
            }
            if !percentiles.contains(&v) {
                percentiles.push(v);
            }
        }
    }
    let mode = match &raw.socket {
        Some(s) => match s.get_ref().as_str() {
            "auto" => SocketMode::Auto,
            "raw" => SocketMode::Raw,
            "datagram" => SocketMode::Datagram,
            _ => {
                return Err(SpanError::new(
                    s.span(),
                    "socket",
                    "must be \"auto\", \"raw\" or \"datagram\"",
                ));
            }
        },
        None => match raw.privileged {
            Some(true) => SocketMode::Raw,
            Some(false) => SocketMode::Datagram,
            None => SocketMode::Auto,
        },
    };
    let interface_text = raw
        .interface
        .as_ref()
        .map(|i| i.get_ref().trim().to_owned())
        .unwrap_or_default();
    let bind = match raw.interface {
        None => Bind::Any,
        // telegraf's sample writes `interface = ""`: no interface.
        Some(i) if i.get_ref().trim().is_empty() => Bind::Any,
        Some(i) => {
            let text = i.get_ref().trim();
            if let Ok(ip) = text.parse::<IpAddr>() {
                Bind::Address(ip)
            } else if text.len() >= libc::IFNAMSIZ || text.contains('/') {
                return Err(SpanError::new(
                    i.span(),
                    "interface",
                    "must be an interface name (at most 15 bytes) or an IP address",
                ));
            } else {
                Bind::Device(text.to_owned())
            }
        }
    };
    let native = raw.method.as_ref().is_some_and(|m| m.get_ref() == "native");
    let exec = match (native, raw.binary, raw.arguments) {
        (false, binary, arguments) if binary.is_some() || arguments.as_ref().is_some_and(|a| !a.is_empty()) => {
            Some(exec::Exec {
                binary: binary.filter(|b| !b.is_empty()).unwrap_or_else(|| "ping".into()),
                arguments: arguments.unwrap_or_default(),
                interface: interface_text,
            })
        }
        _ => None,
    };
    Ok(Config {
        exec,
        urls,
        count,
        ping_interval,
        timeout,
        deadline,
        size,
        family,
        percentiles,
        key: pinger::Key { mode, bind },
    })
}

pub(crate) struct Ping {
    config: Box<Config>,
    pinger: Arc<Pinger>,
}

/// Per-target results of one gather.
#[derive(Default)]
struct TargetState {
    /// Address this round, or why there is none.
    addr: Option<SocketAddr>,
    error: Option<String>,
    /// The error was already logged where it arose (the shared socket could not be opened).
    error_logged_elsewhere: bool,
    sent: u32,
    /// RTT in ms per request, in send order (`None` = lost).
    rtts: Vec<Option<f64>>,
    ttl: Option<u8>,
}

/// The gather's sockets (index 0 = IPv4, 1 = IPv6) and the sequence numbers it used on each;
/// dropping it forgets the unanswered ones, also when the gather is aborted.
struct Outstanding {
    owner: u64,
    endpoints: [Option<Arc<pinger::Endpoint>>; 2],
    sent: [Vec<u16>; 2],
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        for (ep, seqs) in self.endpoints.iter().zip(&mut self.sent) {
            if let Some(ep) = ep {
                ep.forget(self.owner, seqs.drain(..));
            }
        }
    }
}

impl Ping {
    pub(crate) fn new(config: Config) -> Self {
        let pinger = pinger::shared(&config.key);
        Ping {
            config: Box::new(config),
            pinger,
        }
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        if let Some(e) = &self.config.exec {
            exec::gather(&self.config, e, acc).await;
            return Ok(());
        }
        let ts = now_ns();
        let start = tokio::time::Instant::now();
        let c = &self.config;
        let end_by = start + c.deadline;
        let mut targets = resolve_all(&c.urls, c.family, c.timeout.min(c.deadline)).await;

        // One endpoint per family in use; an endpoint that cannot open fails its targets.
        let mut out = Outstanding {
            owner: pinger::new_owner(),
            endpoints: [None, None],
            sent: [Vec::new(), Vec::new()],
        };
        for fam in [Family::V4, Family::V6] {
            let idx = usize::from(fam == Family::V6);
            if !targets
                .iter()
                .any(|t| t.addr.is_some_and(|a| family_of(a) == fam))
            {
                continue;
            }
            match self.pinger.endpoint(fam) {
                Ok(ep) => out.endpoints[idx] = Some(ep),
                Err(e) => {
                    for t in targets
                        .iter_mut()
                        .filter(|t| t.addr.is_some_and(|a| family_of(a) == fam))
                    {
                        t.addr = None;
                        t.error = Some(e.to_string());
                        t.error_logged_elsewhere = true;
                    }
                }
            }
        }
        let sendable: Vec<usize> = (0..targets.len())
            .filter(|&i| targets[i].addr.is_some())
            .collect();
        // Rounds that fit before the deadline: per-target memory follows what can be sent, not
        // `count` alone.
        let rounds = rounds_within(c.count, c.ping_interval, c.deadline);
        for t in &mut targets {
            t.rtts = vec![None; rounds as usize];
        }

        let n = targets.len();
        let mut tally = Tally {
            targets,
            timeout_ns: i64::try_from(c.timeout.as_nanos()).unwrap_or(i64::MAX),
            unanswered: 0,
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<ReplyEvent>();
        let mut templates: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
        packet::encode_request(&mut templates[0], Family::V4, 0, 0, c.size);
        packet::encode_request(&mut templates[1], Family::V6, 0, 0, c.size);
        // Failed sends, by error text: (targets affected, first URL).
        let mut send_errors: Vec<(String, usize, usize)> = Vec::new();

        // Pacing: each round's requests go out in batches spread over half of
        // min(ping_interval, timeout), at most one batch per BATCH_SPACING.
        let spread = c.ping_interval.min(c.timeout) / 2;
        let batches = sendable.len().clamp(
            1,
            ((spread.as_millis() / BATCH_SPACING.as_millis()) as usize).max(1),
        );
        let per_batch = sendable.len().div_ceil(batches).max(1);
        let mut last_send = start;
        let send_start = tokio::time::Instant::now();

        'rounds: for round in 0..rounds {
            let round_at = send_start + c.ping_interval * round;
            for (b, chunk) in sendable.chunks(per_batch).enumerate() {
                let at = round_at + spread.mul_f64(b as f64 / batches as f64);
                if at >= end_by {
                    break 'rounds;
                }
                tally.drain_until(&mut rx, at, false).await;
                for &i in chunk {
                    let Some(addr) = tally.targets[i].addr else {
                        continue;
                    };
                    let idx = usize::from(family_of(addr) == Family::V6);
                    let Some(ep) = &out.endpoints[idx] else {
                        continue;
                    };
                    let slot = u64::from(round) * n as u64 + i as u64;
                    match ep.send(
                        &mut templates[idx],
                        addr,
                        out.owner,
                        slot,
                        tally.timeout_ns,
                        &tx,
                    ) {
                        Ok(seq) => {
                            tally.targets[i].sent += 1;
                            tally.unanswered += 1;
                            out.sent[idx].push(seq);
                        }
                        Err(e) => {
                            let msg = e.to_string();
                            match send_errors.iter_mut().find(|(m, _, _)| *m == msg) {
                                Some((_, count, _)) => *count += 1,
                                None => send_errors.push((msg.clone(), 1, i)),
                            }
                            tally.targets[i].error.get_or_insert(msg);
                        }
                    }
                }
                last_send = tokio::time::Instant::now();
            }
        }
        let wait_until = (last_send + c.timeout).min(end_by);
        tally.drain_until(&mut rx, wait_until, true).await;
        // Replies already queued when the wait ended still count if they were in time.
        while let Ok(ev) = rx.try_recv() {
            tally.record(ev);
        }
        drop(out);

        for (msg, count, first) in send_errors {
            let url = &self.config.urls[first];
            acc.warn_once(
                &msg,
                format_args!("{msg} ({count} request(s) this round, first to {url})"),
            );
        }
        for (t, url) in tally.targets.iter().zip(&self.config.urls) {
            if t.sent == 0
                && !t.error_logged_elsewhere
                && let Some(e) = &t.error
            {
                let e = format!("{url}: {e}");
                acc.warn_once(&e, format_args!("{e}"));
            }
            acc.add(target_metric(ts, url, t, &self.config.percentiles));
        }
        Ok(())
    }
}

fn family_of(a: SocketAddr) -> Family {
    if a.is_ipv4() { Family::V4 } else { Family::V6 }
}

/// Rounds of a gather: `count`, or fewer if `deadline` comes first (a round starts every
/// `ping_interval`, the first at once).
fn rounds_within(count: u32, ping_interval: Duration, deadline: Duration) -> u32 {
    let fit = deadline
        .as_nanos()
        .div_ceil(ping_interval.as_nanos().max(1));
    count.min(u32::try_from(fit).unwrap_or(u32::MAX)).max(1)
}

/// Replies of one gather, matched to targets.
struct Tally {
    targets: Vec<TargetState>,
    timeout_ns: i64,
    /// Requests sent and neither answered nor given up.
    unanswered: usize,
}

impl Tally {
    fn record(&mut self, ev: ReplyEvent) {
        self.unanswered = self.unanswered.saturating_sub(1);
        let n = self.targets.len().max(1);
        let (round, i) = ((ev.slot / n as u64) as usize, (ev.slot % n as u64) as usize);
        let Some(t) = self.targets.get_mut(i) else {
            return;
        };
        if ev.rtt_ns > self.timeout_ns {
            return; // too late: lost
        }
        if let Some(r) = t.rtts.get_mut(round) {
            *r = Some(ev.rtt_ns as f64 / 1e6);
            if t.ttl.is_none() {
                t.ttl = ev.ttl;
            }
        }
    }

    /// Handles replies until `at`, or (`stop_when_answered`) until nothing is outstanding.
    async fn drain_until(
        &mut self,
        rx: &mut tokio::sync::mpsc::UnboundedReceiver<ReplyEvent>,
        at: tokio::time::Instant,
        stop_when_answered: bool,
    ) {
        let sleep = tokio::time::sleep_until(at);
        tokio::pin!(sleep);
        loop {
            if stop_when_answered && self.unanswered == 0 {
                return;
            }
            tokio::select! {
                biased;
                ev = rx.recv() => match ev {
                    Some(ev) => self.record(ev),
                    None => { (&mut sleep).await; return; }
                },
                _ = &mut sleep => return,
            }
        }
    }
}

/// The `ping` line of one target, in telegraf's native-method shape.
fn target_metric(ts: i64, url: &str, t: &TargetState, percentiles: &[u8]) -> Metric {
    let m = Metric::new("ping", ts).tag("url", url);
    if t.sent == 0 && t.error.is_some() && t.addr.is_none() {
        // Nothing could be sent (name did not resolve, no socket): telegraf's error case.
        return m.field("result_code", 2i64);
    }
    let rtts: Vec<f64> = t.rtts.iter().flatten().copied().collect();
    let received = rtts.len() as i64;
    let sent = i64::from(t.sent);
    let m = m
        .field("packets_transmitted", sent)
        .field("packets_received", received);
    if sent == 0 {
        return m.field("result_code", 2i64);
    }
    let Some(s) = stats::summarize(&rtts) else {
        return m
            .field("percent_packet_loss", 100.0)
            .field("result_code", 1i64);
    };
    let mut m = m
        .field(
            "percent_packet_loss",
            (sent - received) as f64 * 100.0 / sent as f64,
        )
        .field_opt("ttl", t.ttl.map(i64::from))
        .field("minimum_response_ms", s.min)
        .field("average_response_ms", s.avg)
        .field("maximum_response_ms", s.max)
        .field("standard_deviation_ms", s.stddev)
        .field("median_response_ms", s.median)
        .field("p95_response_ms", s.p95)
        .field_opt("jitter_ms", s.jitter);
    if !percentiles.is_empty() {
        let mut sorted = rtts;
        sorted.sort_by(f64::total_cmp);
        for &p in percentiles {
            m = m.field(
                format!("percentile{p}_ms"),
                stats::percentile(&sorted, f64::from(p)),
            );
        }
    }
    m.field("result_code", 0i64)
}

/// Resolves every URL: IP literals at once, host names via the system resolver with at most
/// `RESOLVE_CONCURRENCY` lookups in flight, each bounded by `timeout`.
async fn resolve_all(urls: &[String], pref: FamilyPref, timeout: Duration) -> Vec<TargetState> {
    let mut out: Vec<TargetState> = Vec::with_capacity(urls.len());
    let mut names = Vec::new();
    for (i, url) in urls.iter().enumerate() {
        let host = url.trim().trim_start_matches('[').trim_end_matches(']');
        let mut t = TargetState::default();
        match host.parse::<IpAddr>() {
            Ok(ip) => match pick(&[SocketAddr::new(ip, 0)], pref) {
                Some(a) => t.addr = Some(a),
                None => t.error = Some(format!("address family excluded by {pref:?}")),
            },
            Err(_) => names.push((i, host.to_owned())),
        }
        out.push(t);
    }
    if names.is_empty() {
        return out;
    }
    let sem = Arc::new(tokio::sync::Semaphore::new(RESOLVE_CONCURRENCY));
    let mut set = tokio::task::JoinSet::new();
    for (i, host) in names {
        let sem = sem.clone();
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            let r =
                tokio::time::timeout(timeout, tokio::net::lookup_host((host.as_str(), 0))).await;
            let r = match r {
                Err(_) => Err(format!("resolving {host}: no answer within {timeout:?}")),
                Ok(Err(e)) => Err(format!("resolving {host}: {e}")),
                Ok(Ok(addrs)) => {
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    pick(&addrs, pref).ok_or_else(|| format!("{host} has no {pref:?} address"))
                }
            };
            (i, r)
        });
    }
    while let Some(res) = set.join_next().await {
        if let Ok((i, r)) = res {
            match r {
                Ok(a) => out[i].addr = Some(a),
                Err(e) => out[i].error = Some(e),
            }
        }
    }
    out
}

/// IPv4 first (as telegraf's resolver does) unless a family is forced.
fn pick(addrs: &[SocketAddr], pref: FamilyPref) -> Option<SocketAddr> {
    match pref {
        FamilyPref::V4 => addrs.iter().find(|a| a.is_ipv4()).copied(),
        FamilyPref::V6 => addrs.iter().find(|a| a.is_ipv6()).copied(),
        FamilyPref::Any => addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| addrs.first())
            .copied(),
    }
}

super::ticked_input!(Ping, super::Shape::Ticked);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::deserialize_value;

    fn parse(text: &str) -> Result<Config, SpanError> {
        let v = toml::de::DeTable::parse(text).unwrap();
        let span = v.span();
        resolve(deserialize_value(Spanned::new(
            span,
            toml::de::DeValue::Table(v.into_inner()),
        ))?)
    }

    #[test]
    fn defaults_match_telegraf() {
        let c = parse("urls = [\"127.0.0.1\"]").unwrap();
        assert_eq!(c.count, 1);
        assert_eq!(c.ping_interval, Duration::from_secs(1));
        assert_eq!(c.timeout, Duration::from_secs(1));
        assert_eq!(c.deadline, Duration::from_secs(10));
        assert_eq!(c.size, 56);
        assert_eq!(c.key.mode, SocketMode::Auto);
        assert_eq!(c.key.bind, Bind::Any);
    }

    #[test]
    fn telegraf_number_forms_and_floor() {
        let c = parse(
            "urls = [\"a\"]\nping_interval = 0.1\ntimeout = 0.5\ndeadline = 3\nmethod = \"exec\"\n\
             binary = \"ping\"\narguments = []\npercentiles = [50, 99]\ninterface = \"10.0.0.1\"\nprivileged = false",
        )
        .unwrap();
        assert_eq!(c.ping_interval, MIN_PING_INTERVAL);
        assert_eq!(c.timeout, Duration::from_millis(500));
        assert_eq!(c.deadline, Duration::from_secs(3));
        assert_eq!(c.percentiles, vec![50, 99]);
        assert_eq!(c.key.mode, SocketMode::Datagram);
        assert_eq!(c.key.bind, Bind::Address("10.0.0.1".parse().unwrap()));
        let c = parse("urls = [\"a\"]\ninterface = \"eth0\"\nsocket = \"raw\"\nprivileged = false")
            .unwrap();
        assert_eq!(c.key.bind, Bind::Device("eth0".into()));
        assert_eq!(c.key.mode, SocketMode::Raw);
    }

    #[test]
    fn invalid_options_name_the_key() {
        for (text, key) in [
            ("urls = []", "urls"),
            ("urls = [\"a\"]\ncount = 0", "count"),
            ("urls = [\"a\"]\nsize = 70000", "size"),
            ("urls = [\"a\"]\ntimeout = 0", "timeout"),
            ("urls = [\"a\"]\nmethod = \"icmp\"", "method"),
            ("urls = [\"a\"]\nsocket = \"tcp\"", "socket"),
            ("urls = [\"a\"]\nipv4 = true\nipv6 = true", "ipv6"),
            ("urls = [\"a\"]\npercentiles = [101]", "percentiles"),
        ] {
            let e = parse(text).unwrap_err();
            assert_eq!(e.key, key, "{text}: {e:?}");
        }
        assert!(parse("urls = [\"a\"]\ntimeot = 1").is_err());
    }

    #[test]
    fn family_preference() {
        let v4: SocketAddr = "10.0.0.1:0".parse().unwrap();
        let v6: SocketAddr = "[::1]:0".parse().unwrap();
        assert_eq!(pick(&[v6, v4], FamilyPref::Any), Some(v4));
        assert_eq!(pick(&[v6], FamilyPref::Any), Some(v6));
        assert_eq!(pick(&[v4], FamilyPref::V6), None);
        assert_eq!(pick(&[v6, v4], FamilyPref::V6), Some(v6));
    }

    fn field<'a>(m: &'a Metric, k: &str) -> Option<&'a crate::output::FieldValue> {
        m.fields.iter().find(|(n, _)| n == k).map(|(_, v)| v)
    }

    #[test]
    fn metric_shapes() {
        use crate::output::FieldValue::{Float, Int};
        let addr = Some("127.0.0.1:0".parse().unwrap());
        // Two of four answered.
        let t = TargetState {
            addr,
            sent: 4,
            rtts: vec![Some(1.0), None, Some(3.0), None],
            ttl: Some(64),
            ..Default::default()
        };
        let m = target_metric(1, "h", &t, &[50]);
        assert_eq!(field(&m, "result_code"), Some(&Int(0)));
        assert_eq!(field(&m, "percent_packet_loss"), Some(&Float(50.0)));
        assert_eq!(field(&m, "ttl"), Some(&Int(64)));
        assert_eq!(field(&m, "jitter_ms"), Some(&Float(2.0)));
        assert_eq!(field(&m, "percentile50_ms"), Some(&Float(2.0)));
        // None answered: result_code 1, no RTT fields.
        let t = TargetState {
            addr,
            sent: 2,
            rtts: vec![None, None],
            ..Default::default()
        };
        let m = target_metric(1, "h", &t, &[]);
        assert_eq!(field(&m, "result_code"), Some(&Int(1)));
        assert_eq!(field(&m, "percent_packet_loss"), Some(&Float(100.0)));
        assert_eq!(field(&m, "minimum_response_ms"), None);
        // Could not send at all.
        let t = TargetState {
            error: Some("x".into()),
            ..Default::default()
        };
        let m = target_metric(1, "h", &t, &[]);
        assert_eq!(m.fields, vec![("result_code".into(), Int(2))]);
    }

    #[test]
    fn rounds_are_bounded_by_the_deadline() {
        let s = Duration::from_secs;
        assert_eq!(rounds_within(5, s(1), s(10)), 5);
        assert_eq!(rounds_within(100, s(1), s(10)), 10);
        assert_eq!(rounds_within(100, Duration::from_millis(300), s(1)), 4);
        assert_eq!(rounds_within(1, s(5), s(1)), 1);
    }

    #[test]
    fn late_replies_are_lost() {
        let mut tally = Tally {
            targets: vec![TargetState {
                rtts: vec![None; 2],
                sent: 2,
                ..Default::default()
            }],
            timeout_ns: 1_000_000,
            unanswered: 2,
        };
        let ev = |slot, rtt_ns, ttl| ReplyEvent {
            slot,
            rtt_ns,
            ttl: Some(ttl),
        };
        tally.record(ev(0, 2_000_000, 5));
        tally.record(ev(1, 500_000, 6));
        assert_eq!(tally.unanswered, 0);
        assert_eq!(tally.targets[0].rtts, vec![None, Some(0.5)]);
        assert_eq!(tally.targets[0].ttl, Some(6));
    }
}
