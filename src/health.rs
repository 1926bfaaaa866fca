//! Optional HTTP health endpoint (`[agent.health] listen = "127.0.0.1:8081"`), for operators who
//! check the agent from systemd, a load balancer or a script:
//!
//! - `GET /healthz`: 200 while the process serves requests.
//! - `GET /readyz`: 200 when every input instance has gathered within two of its intervals
//!   (instances driven by stdin always count as ready), else 503 naming the late ones.
//! - `GET /version`: the version.
//!
//! All answers are small JSON documents. The server is deliberately tiny (one request per
//! connection, bounded request size and time, at most [`MAX_CONNECTIONS`] at once): it must
//! never become a way to stall the agent or grow its memory or file descriptors.
//!
//! Hand-written rather than hyper's server: what bounds abuse (the connection cap, the deadline
//! per connection, the request size) would still be ours with hyper, which would add its server
//! half and a timer adapter for three fixed GET routes; the reader here is one pure function over
//! bytes, fuzzed (`fuzz/`, target `health`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::output::now_ns;
use crate::stats::Registry;

/// A request line and headers larger than this are refused.
pub(crate) const MAX_REQUEST: usize = 8 * 1024;
/// A client that has not sent its request and taken the answer within this time is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections served at once; more are closed as soon as they are accepted. A health checker
/// needs one; the cap bounds what slow or flooding clients can hold: this many descriptors and
/// request buffers (under 10 KiB each), whatever arrives.
pub(crate) const MAX_CONNECTIONS: usize = 64;

/// Binds `addr` and serves until `stop` is cancelled.
pub(crate) async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(
        "health endpoint listening on http://{}",
        listener.local_addr()?
    );
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => {
                    let Ok((conn, _)) = accepted else {
                        // Out of descriptors (or a connection reset before it was accepted): a
                        // pause, so that an error that persists is not a busy loop.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    // At the cap the connection is closed at once (dropped).
                    let Ok(permit) = slots.clone().try_acquire_owned() else { continue };
                    let registry = registry.clone();
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(conn, &registry)).await;
                        drop(permit);
                    });
                }
            }
        }
    });
    Ok(())
}

/// What the bytes received so far make of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Head {
    /// No end of the headers yet, and room for more.
    Incomplete,
    /// [`MAX_REQUEST`] bytes without an end of the headers.
    TooLarge,
    /// The request line's method and target (empty when missing).
    Complete { method: String, path: String },
}

/// Collects a request's head (request line and headers, up to an empty line: `\r\n\r\n`, or
/// `\n\n` from a lenient client) as it arrives in pieces; each byte is looked at once.
#[derive(Debug, Default)]
pub(crate) struct RequestReader {
    buf: Vec<u8>,
}

impl RequestReader {
    /// Adds the next bytes read; bytes beyond [`MAX_REQUEST`] are never stored.
    pub(crate) fn push(&mut self, chunk: &[u8]) -> Head {
        let from = self.buf.len();
        let take = chunk.len().min(MAX_REQUEST - from);
        self.buf.extend_from_slice(&chunk[..take]);
        let b = &self.buf;
        let end = (from..b.len()).find(|&i| {
            b[i] == b'\n'
                && ((i >= 1 && b[i - 1] == b'\n')
                    || (i >= 2 && b[i - 1] == b'\r' && b[i - 2] == b'\n'))
        });
        match end {
            Some(_) => {
                let line = b.split(|&c| c == b'\n').next().unwrap_or_default();
                let line = String::from_utf8_lossy(line);
                let mut parts = line.split_ascii_whitespace();
                let method = parts.next().unwrap_or("").to_owned();
                let path = parts.next().unwrap_or("").to_owned();
                Head::Complete { method, path }
            }
            None if b.len() == MAX_REQUEST => Head::TooLarge,
            None => Head::Incomplete,
        }
    }
}

async fn answer(mut conn: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let mut reader = RequestReader::default();
    let mut chunk = [0u8; 1024];
    let (method, path) = loop {
        let n = conn.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        match reader.push(&chunk[..n]) {
            Head::Incomplete => continue,
            Head::TooLarge => return Ok(()),
            Head::Complete { method, path } => break (method, path),
        }
    };
    let (status, body) = route(&method, &path, registry, now_ns());
    let reason = match status {
        200 => "OK",
        404 => "Not Found",
        405 => "Method Not Allowed",
        _ => "Service Unavailable",
    };
    let resp = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    conn.write_all(resp.as_bytes()).await?;
    conn.shutdown().await
}

/// Status and JSON body for one request; `now` is ns since the epoch.
pub(crate) fn route(method: &str, path: &str, registry: &Registry, now: i64) -> (u16, String) {
    if method != "GET" && method != "HEAD" {
        return (405, r#"{"error":"only GET"}"#.into());
    }
    match path.split('?').next().unwrap_or("") {
        "/healthz" => (200, r#"{"status":"ok"}"#.into()),
        "/version" => (
            200,
            format!(r#"{{"version":"{}"}}"#, env!("CARGO_PKG_VERSION")),
        ),
        "/readyz" => {
            let late = late_instances(registry, now);
            // Probe groups: this agent's role in each (a paused standby is ready, not late).
            let groups: Vec<String> = registry
                .groups()
                .iter()
                .map(|(g, role)| format!("\"{}\":\"{role}\"", json_escape(g)))
                .collect();
            let groups = if groups.is_empty() {
                String::new()
            } else {
                format!(r#","groups":{{{}}}"#, groups.join(","))
            };
            if late.is_empty() {
                (200, format!(r#"{{"status":"ready"{groups}}}"#))
            } else {
                let names: Vec<String> = late
                    .iter()
                    .map(|n| format!("\"{}\"", json_escape(n)))
                    .collect();
                (
                    503,
                    format!(
                        r#"{{"status":"not ready","late":[{}]{groups}}}"#,
                        names.join(",")
                    ),
                )
            }
        }
        _ => (404, r#"{"error":"not found"}"#.into()),
    }
}

/// Instances whose last gather (or start, if none yet) is more than two intervals old.
pub(crate) fn late_instances(registry: &Registry, now: i64) -> Vec<String> {
    let now = u64::try_from(now).unwrap_or(0);
    registry
        .instances()
        .iter()
        .filter(|i| {
            let interval = i.interval_ns.load(Ordering::Relaxed);
            // Driven by stdin, or paused by its gate (a standby is ready, not late).
            if interval == 0 || i.paused.load(Ordering::Relaxed) {
                return false;
            }
            let last = i
                .last_gather_end_ns
                .load(Ordering::Relaxed)
                .max(i.started_ns.load(Ordering::Relaxed));
            now.saturating_sub(last) > interval.saturating_mul(2)
        })
        .map(|i| format!("{} ({})", i.id, i.display))
        .collect()
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::InstanceStats;

    #[test]
    fn readiness_follows_two_intervals() {
        let reg = Registry::default();
        let a = Arc::new(InstanceStats::new("inputs.a[0]", "a", "system", None));
        let b = Arc::new(InstanceStats::new("inputs.b[0]", "b", "internal", None));
        for s in [&a, &b] {
            s.interval_ns.store(1_000, Ordering::Relaxed);
            s.started_ns.store(10_000, Ordering::Relaxed);
        }
        a.last_gather_end_ns.store(15_000, Ordering::Relaxed);
        reg.set_instances(vec![a, b]);
        assert_eq!(route("GET", "/readyz", &reg, 11_500).0, 200);
        let (status, body) = route("GET", "/readyz", &reg, 12_500);
        assert_eq!(status, 503);
        assert_eq!(body, r#"{"status":"not ready","late":["inputs.b[0] (b)"]}"#);
        reg.set_groups(vec![("site-a".into(), "standby")]);
        assert_eq!(
            route("GET", "/readyz", &reg, 11_500).1,
            r#"{"status":"ready","groups":{"site-a":"standby"}}"#
        );
        assert_eq!(
            route("GET", "/healthz", &reg, 0),
            (200, r#"{"status":"ok"}"#.into())
        );
        assert_eq!(route("POST", "/healthz", &reg, 0).0, 405);
        assert_eq!(route("GET", "/nope", &reg, 0).0, 404);
    }

    fn complete(method: &str, path: &str) -> Head {
        Head::Complete {
            method: method.into(),
            path: path.into(),
        }
    }

    #[test]
    fn request_reader_splits_limits_and_leniency() {
        // curl's request, one byte at a time: complete only at the empty line.
        let req = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8081\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";
        let mut r = RequestReader::default();
        for (i, b) in req.iter().enumerate() {
            let head = r.push(&[*b]);
            if i + 1 < req.len() {
                assert_eq!(head, Head::Incomplete, "at byte {i}");
            } else {
                assert_eq!(head, complete("GET", "/healthz"));
            }
        }
        // Bare newlines, and an empty line split across two reads.
        let mut r = RequestReader::default();
        assert_eq!(r.push(b"HEAD /readyz HTTP/1.0\n"), Head::Incomplete);
        assert_eq!(r.push(b"\n"), complete("HEAD", "/readyz"));
        let mut r = RequestReader::default();
        assert_eq!(r.push(b"GET /version HTTP/1.1\r\n\r"), Head::Incomplete);
        assert_eq!(r.push(b"\n"), complete("GET", "/version"));
        // No request line at all: empty method and path (answered 405).
        assert_eq!(RequestReader::default().push(b"\r\n\r\n"), complete("", ""));
        // 8 KiB without an empty line: refused, and nothing past the limit is kept.
        let mut r = RequestReader::default();
        assert_eq!(r.push(&[b'a'; MAX_REQUEST - 1]), Head::Incomplete);
        assert_eq!(r.push(b"bb\n\n"), Head::TooLarge);
        assert_eq!(r.buf.len(), MAX_REQUEST);
        // An end within the limit counts even when more arrived in the same read.
        let mut big = b"GET /healthz HTTP/1.1\r\n\r\n".to_vec();
        big.resize(MAX_REQUEST * 2, b'x');
        assert_eq!(
            RequestReader::default().push(&big),
            complete("GET", "/healthz")
        );
    }
}
