//! Optional HTTP health endpoint (`[agent.health] listen = "127.0.0.1:8081"`), for operators who
//! check the agent from systemd, a load balancer or a script:
//!
//! - `GET /healthz`: 200 while the process serves requests.
//! - `GET /readyz`: 200 when every input instance has gathered within two of its intervals
//!   (instances driven by stdin always count as ready), else 503 naming the late ones.
//! - `GET /version`: the version.
//!
//! All answers are small JSON documents. The server is deliberately tiny (one request per
//! connection, bounded request size and time): it must never become a way to stall the agent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

use crate::output::now_ns;
use crate::stats::Registry;

/// A request line and headers larger than this are refused.
const MAX_REQUEST: usize = 8 * 1024;
/// A client that has not sent its request within this time is dropped.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Binds `addr` and serves until `stop` is cancelled.
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let listener = TcpListener::bind(addr).await?;
    tracing::info!(
        "health endpoint listening on http://{}",
        listener.local_addr()?
    );
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                accepted = listener.accept() => {
                    let Ok((conn, _)) = accepted else { continue };
                    let registry = registry.clone();
                    tokio::spawn(async move {
                        let _ = tokio::time::timeout(REQUEST_TIMEOUT, answer(conn, &registry)).await;
                    });
                }
            }
        }
    });
    Ok(())
}

async fn answer(mut conn: TcpStream, registry: &Registry) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && !buf.windows(2).any(|w| w == b"\n\n") {
        let n = conn.read(&mut chunk).await?;
        if n == 0 || buf.len() + n > MAX_REQUEST {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = buf.split(|&b| b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line);
    let mut parts = line.split_ascii_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let (status, body) = route(method, path, registry, now_ns());
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
pub fn route(method: &str, path: &str, registry: &Registry, now: i64) -> (u16, String) {
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
pub fn late_instances(registry: &Registry, now: i64) -> Vec<String> {
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
}
