//! The health endpoint under abuse: thousands of idle connections, clients that send one byte a
//! second, requests far over the size limit. The agent's descriptors and memory stay bounded
//! and its gathers keep the rate they had before the abuse, measured in the same run.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::harness::*;

const SEC: Duration = Duration::from_secs(1);
/// The agent's cap on connections served at once (`MAX_CONNECTIONS` in src/health.rs).
const MAX_CONNECTIONS: usize = 64;
/// Idle connections the flood opens (and holds) at once.
const FLOOD: usize = 2000;

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

/// Raises this process's open-file soft limit to the hard limit: the flood needs 2,000
/// descriptors on the client side.
fn raise_nofile() -> u64 {
    // SAFETY: getrlimit/setrlimit on a valid, owned struct.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut r);
        r.rlim_cur = r.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        r.rlim_cur
    }
}

/// `fast` lines whose timestamp falls in `[from, to)` (ns), per second.
fn rate(lines: &[String], from: i64, to: i64) -> f64 {
    let n = parse_all(lines)
        .iter()
        .filter(|l| l.measurement == "fast" && l.timestamp >= from && l.timestamp < to)
        .count();
    n as f64 / ((to - from) as f64 / 1e9)
}

#[test]
fn health_endpoint_abuse_keeps_fds_memory_and_gathers_bounded() {
    let nofile = raise_nofile();
    assert!(
        nofile as usize > FLOOD + 200,
        "open-file hard limit {nofile}"
    );
    let port = crate::netprobes::free_port();
    let addr = format!("127.0.0.1:{port}");
    let a = Agent::start(&format!(
        "[agent.health]\nlisten = \"{addr}\"\n\
         [[inputs.chaos]]\ninterval = \"20ms\"\nname_override = \"fast\"\n"
    ));
    a.wait_stderr("health endpoint listening", 5 * SEC);
    a.wait_for("first gathers", 5 * SEC, |l| {
        parse_all(l)
            .iter()
            .filter(|m| m.measurement == "fast")
            .count()
            >= 5
    });

    // Un-abused period: the reference rate, descriptors and memory.
    let quiet_from = now_ns();
    std::thread::sleep(3 * SEC);
    let quiet_to = now_ns();
    let (fds0, _) = a.fds_and_threads();
    let rss0 = a.rss_bytes();

    // Abuse for 5 s: slow clients (one byte a second), oversize requests (1 MiB of headers),
    // and 2,000 connections opened and held without a byte sent.
    let stop = Arc::new(AtomicBool::new(false));
    let abuse_from = now_ns();
    let mut abusers = Vec::new();
    for _ in 0..8 {
        let (addr, stop) = (addr.clone(), stop.clone());
        abusers.push(std::thread::spawn(move || {
            // How long the agent let the client trickle before closing (None: never closed).
            let mut c = TcpStream::connect(&addr).unwrap();
            let start = Instant::now();
            for b in b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n" {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                if c.write_all(&[*b]).is_err() {
                    return Some(start.elapsed());
                }
                std::thread::sleep(SEC);
                // Closed by the agent: a read sees EOF or a reset at once.
                c.set_nonblocking(true).unwrap();
                let closed = match c.read(&mut [0u8; 64]) {
                    Ok(n) => n == 0,
                    Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                };
                c.set_nonblocking(false).unwrap();
                if closed {
                    return Some(start.elapsed());
                }
            }
            None
        }));
    }
    // The slow clients first, so that they are served, not turned away at the cap.
    std::thread::sleep(Duration::from_millis(200));
    let oversize = {
        let addr = addr.clone();
        std::thread::spawn(move || {
            let mut answered = 0;
            for _ in 0..20 {
                let Ok(mut c) = TcpStream::connect(&addr) else {
                    continue;
                };
                let _ = c.write_all(b"GET /healthz HTTP/1.1\r\n");
                let pad = format!("X-Pad: {}\r\n", "a".repeat(1000));
                for _ in 0..1000 {
                    if c.write_all(pad.as_bytes()).is_err() {
                        break;
                    }
                }
                let mut resp = Vec::new();
                let _ = c.read_to_end(&mut resp);
                if resp.starts_with(b"HTTP/1.1 200") {
                    answered += 1;
                }
            }
            answered
        })
    };
    // Eight threads: a connect whose SYN meets a full accept queue waits a second to retry.
    let flood: Vec<_> = (0..8)
        .map(|_| {
            let (addr, stop) = (addr.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut held = Vec::with_capacity(FLOOD / 8);
                while held.len() < FLOOD / 8 && !stop.load(Ordering::Relaxed) {
                    match TcpStream::connect(&addr) {
                        Ok(c) => held.push(c),
                        Err(_) => std::thread::sleep(Duration::from_millis(1)),
                    }
                }
                let opened = held.len();
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                opened
            })
        })
        .collect();
    // Sample the agent's descriptors and memory while it is abused.
    let (mut fds_max, mut rss_max) = (0, 0);
    let t = Instant::now();
    while t.elapsed() < 5 * SEC {
        let (fds, _) = a.fds_and_threads();
        fds_max = fds_max.max(fds);
        rss_max = rss_max.max(a.rss_bytes());
        std::thread::sleep(Duration::from_millis(50));
    }
    let abuse_to = now_ns();
    stop.store(true, Ordering::Relaxed);
    let opened: usize = flood.into_iter().map(|h| h.join().unwrap()).sum();
    let answered = oversize.join().unwrap();
    let cut: Vec<Option<Duration>> = abusers.into_iter().map(|h| h.join().unwrap()).collect();

    // Afterwards the endpoint answers again and the descriptors are given back.
    let mut ok = false;
    let t = Instant::now();
    while t.elapsed() < 10 * SEC && !ok {
        ok = matches!(http_request(&addr, "GET", "/healthz", b""), Ok((200, _)));
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut fds_after = usize::MAX;
    let t = Instant::now();
    while t.elapsed() < 10 * SEC && fds_after > fds0 {
        std::thread::sleep(Duration::from_millis(50));
        fds_after = a.fds_and_threads().0;
    }
    let lines = a.lines();
    let (quiet, abused) = (
        rate(&lines, quiet_from, quiet_to),
        rate(&lines, abuse_from, abuse_to),
    );
    eprintln!(
        "health abuse: {opened} idle connections held, fds {fds0} -> max {fds_max} -> {fds_after}, \
         RSS {} -> max {} KiB, fast {quiet:.1}/s quiet, {abused:.1}/s abused, slow clients cut after {cut:?}",
        rss0 / 1024,
        rss_max / 1024
    );
    // How many the flood gets in within its 5 s depends on how fast the agent accepts on a busy
    // machine (a SYN that meets a full accept queue is retried after 1 s, then 3 s): a fresh
    // clone's CI run with a soak beside it got 841 of 2,000. What the test needs is many more
    // held connections than the cap, so that the cap is what bounds the descriptors.
    assert!(
        opened >= MAX_CONNECTIONS * 4,
        "the flood opened only {opened} connections"
    );
    assert!(ok, "the endpoint does not answer after the abuse");
    assert_eq!(answered, 0, "an oversize request was answered");
    // Descriptors: the connections being served, plus those accepted and about to be closed at
    // the cap (the accept loop closes each at once; 16 is ample for the ones in between).
    assert!(
        fds_max <= fds0 + MAX_CONNECTIONS + 16,
        "agent fds {fds0} -> {fds_max} under {FLOOD} connections"
    );
    assert!(
        fds_after <= fds0,
        "fds {fds0} before, {fds_after} after the abuse"
    );
    // Memory: each served connection holds at most an 8 KiB request, a 1 KiB read buffer and
    // its task, under 640 KiB for 64 of them; 2 MiB is three times that, and half of what the
    // server without a cap grew by under the same flood (3.9 MiB with 1,700 held, measured).
    assert!(
        rss_max <= rss0 + (2 << 20),
        "RSS {} -> {} KiB",
        rss0 / 1024,
        rss_max / 1024
    );
    // Slow clients are cut by the request deadline (2 s): by the time the tenth byte would go.
    assert!(
        cut.iter().all(|c| c.is_some_and(|d| d < 10 * SEC)),
        "slow clients not cut: {cut:?}"
    );
    // Gathers: the abused period keeps the rate of the quiet period of the same run (both are
    // equally exposed to whatever else the machine does; 25 % for the abusers' own CPU use).
    assert!(
        abused >= 0.75 * quiet,
        "fast input: {quiet:.1}/s before, {abused:.1}/s during the abuse"
    );
}
