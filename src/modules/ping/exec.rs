//! telegraf's `exec` method, used when a block names a `binary` or `arguments`: the agent then
//! runs that program once per URL, as telegraf does, and reads its summary. Without them both
//! methods use the agent's own ICMP sockets (`pinger`): running a process per target and round
//! costs far more than the echo itself.
//!
//! The command line is telegraf's for Linux: `arguments` + URL when `arguments` is set, else
//! `-c COUNT -n -s 16 [-i PING_INTERVAL] [-W TIMEOUT] [-w DEADLINE] [-I INTERFACE] URL`. The
//! output is read the way telegraf reads it (iputils and BSD-style summaries): the first
//! `ttl=`/`hlim=` value, the `… transmitted, … received` line and the `min/avg/max[/mdev]` line.
//! Exit status 1 (iputils: some replies missing) still has a summary; any other failure, or no
//! summary, is `result_code = 2` and one log line.

use std::process::Stdio;
use std::time::Duration;

use super::Config;
use crate::output::{Accumulator, Metric, now_ns};

/// telegraf's bound on one ping process (its `pingHost` timeout).
const PROCESS_TIMEOUT: Duration = Duration::from_secs(60);
/// Output kept per process: a summary is a few hundred bytes; replies of a large `count` are
/// not needed past the first TTL.
const MAX_OUTPUT: usize = 1 << 20;

#[derive(Debug, Clone)]
pub(crate) struct Exec {
    pub binary: String,
    pub arguments: Vec<String>,
    /// telegraf's `interface` as given (`-I`), "" for none.
    pub interface: String,
}

/// What a ping program's output says.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Summary {
    pub transmitted: i64,
    pub received: i64,
    pub ttl: Option<i64>,
    pub min: Option<f64>,
    pub avg: Option<f64>,
    pub max: Option<f64>,
    pub stddev: Option<f64>,
}

#[derive(Debug, PartialEq, thiserror::Error)]
pub(crate) enum ParseError {
    #[error("no \"transmitted, received\" line in the ping output")]
    NoSummary,
    #[error("bad packet counts in {0:?}")]
    Counts(String),
    #[error("bad round-trip line {0:?}")]
    RoundTrip(String),
}

/// The command line for `url` (telegraf's Linux form).
pub(crate) fn args(c: &Config, e: &Exec, url: &str) -> Vec<String> {
    if !e.arguments.is_empty() {
        let mut a = e.arguments.clone();
        a.push(url.to_owned());
        return a;
    }
    let secs = |d: Duration| {
        let s = d.as_secs_f64();
        if s.fract() == 0.0 { format!("{s:.0}") } else { format!("{s}") }
    };
    let mut a: Vec<String> = ["-c", &c.count.to_string(), "-n", "-s", "16"]
        .map(str::to_owned)
        .into();
    a.extend(["-i".into(), secs(c.ping_interval)]);
    a.extend(["-W".into(), secs(c.timeout)]);
    a.extend(["-w".into(), c.deadline.as_secs().to_string()]);
    if !e.interface.is_empty() {
        a.extend(["-I".into(), e.interface.clone()]);
    }
    a.push(url.to_owned());
    a
}

/// Reads a ping program's output.
pub(crate) fn parse_output(out: &str) -> Result<Summary, ParseError> {
    let mut s = Summary {
        transmitted: 0,
        received: 0,
        ttl: None,
        min: None,
        avg: None,
        max: None,
        stddev: None,
    };
    let mut counted = false;
    for line in out.lines() {
        if s.ttl.is_none() && (line.contains("ttl=") || line.contains("hlim=")) {
            s.ttl = ttl(line);
        } else if line.contains("transmitted") && line.contains("received") {
            let mut parts = line.split(", ");
            let first_number = |p: Option<&str>| {
                p.and_then(|p| p.split(' ').next())
                    .and_then(|n| n.parse::<i64>().ok())
                    .filter(|n| *n >= 0)
            };
            match (first_number(parts.next()), first_number(parts.next())) {
                (Some(t), Some(r)) => (s.transmitted, s.received) = (t, r),
                _ => return Err(ParseError::Counts(line.to_owned())),
            }
            counted = true;
        } else if line.contains("min/avg/max") {
            let values = line
                .split(' ')
                .nth(3)
                .ok_or_else(|| ParseError::RoundTrip(line.to_owned()))?;
            let mut v = values.split('/').map(|x| x.parse::<f64>().ok());
            let mut next = || v.next().flatten().filter(|x| x.is_finite() && *x >= 0.0);
            match (next(), next(), next()) {
                (Some(min), Some(avg), Some(max)) => {
                    (s.min, s.avg, s.max) = (Some(min), Some(avg), Some(max));
                    s.stddev = next();
                }
                _ => return Err(ParseError::RoundTrip(line.to_owned())),
            }
        }
    }
    if counted {
        Ok(s)
    } else {
        Err(ParseError::NoSummary)
    }
}

fn ttl(line: &str) -> Option<i64> {
    let at = line.find("ttl=").or_else(|| line.find("hlim="))?;
    let rest = &line[at..];
    let digits = &rest[rest.find('=')? + 1..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// The `ping` line for `url` from a finished program: its exit status (`None`: it could not be
/// run or was killed) and its output.
pub(crate) fn metric(ts: i64, url: &str, status: Option<i32>, out: &str) -> Result<Metric, (Metric, String)> {
    let m = Metric::new("ping", ts).tag("url", url);
    // iputils exits 1 when replies are missing; the summary is still there.
    if status.is_some_and(|s| s != 0 && s != 1) || status.is_none() {
        let code = status.map_or(-1, i64::from);
        let why = format!("{url}: ping exited with status {code}: {}", out.trim());
        return Err((m.field("result_code", 2i64), why));
    }
    let s = match parse_output(out) {
        Ok(s) => s,
        Err(e) => return Err((m.field("result_code", 2i64), format!("{url}: {e}"))),
    };
    let mut m = m
        .field("result_code", i64::from(status.unwrap_or(0)))
        .field("packets_transmitted", s.transmitted)
        .field("packets_received", s.received);
    if s.transmitted > 0 {
        let loss = (s.transmitted - s.received) as f64 / s.transmitted as f64 * 100.0;
        m = m.field("percent_packet_loss", loss);
    }
    Ok(m.field_opt("ttl", s.ttl)
        .field_opt("minimum_response_ms", s.min)
        .field_opt("average_response_ms", s.avg)
        .field_opt("maximum_response_ms", s.max)
        .field_opt("standard_deviation_ms", s.stddev))
}

/// Runs the program once per URL, all at once (telegraf runs one per URL concurrently). A
/// gather aborted by `gather_timeout` kills them (`kill_on_drop`).
pub(crate) async fn gather(c: &Config, e: &Exec, acc: &mut Accumulator) {
    let ts = now_ns();
    let mut set = tokio::task::JoinSet::new();
    for (i, url) in c.urls.iter().enumerate() {
        let mut cmd = tokio::process::Command::new(&e.binary);
        cmd.args(args(c, e, url))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let (url, binary) = (url.clone(), e.binary.clone());
        set.spawn(async move {
            let run = async {
                let child = cmd.spawn().map_err(|err| format!("{binary}: {err}"))?;
                let out = child.wait_with_output().await.map_err(|err| err.to_string())?;
                let mut text = lossy(&out.stdout);
                text.push_str(&lossy(&out.stderr));
                Ok::<_, String>((out.status.code(), text))
            };
            let failed = |why: String| {
                let m = Metric::new("ping", ts).tag("url", url.as_str());
                Err((m.field("result_code", 2i64), format!("{url}: {why}")))
            };
            let r = match tokio::time::timeout(PROCESS_TIMEOUT, run).await {
                Ok(Ok((status, text))) => metric(ts, &url, status, &text),
                Ok(Err(err)) => failed(err),
                Err(_) => failed(format!("ping ran longer than {PROCESS_TIMEOUT:?}")),
            };
            (i, r)
        });
    }
    let mut results = Vec::with_capacity(c.urls.len());
    while let Some(r) = set.join_next().await {
        if let Ok(r) = r {
            results.push(r);
        }
    }
    results.sort_by_key(|(i, _)| *i);
    for (_, r) in results {
        match r {
            Ok(m) => acc.add(m),
            Err((m, why)) => {
                acc.warn_once(&why, format_args!("{why}"));
                acc.add(m);
            }
        }
    }
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(MAX_OUTPUT)]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::FieldValue;

    fn field(m: &Metric, k: &str) -> Option<FieldValue> {
        m.fields.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    /// iputils-ping 20240117 (Debian trixie), `ping -c 2 -n -s 16 127.0.0.1`.
    const IPUTILS: &str = "PING 127.0.0.1 (127.0.0.1) 16(44) bytes of data.
24 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.025 ms
24 bytes from 127.0.0.1: icmp_seq=2 ttl=64 time=0.043 ms

--- 127.0.0.1 ping statistics ---
2 packets transmitted, 2 received, 0% packet loss, time 207ms
rtt min/avg/max/mdev = 0.025/0.034/0.043/0.009 ms
";

    /// A BSD-style summary (telegraf's documented example).
    const BSD: &str = "PING www.google.com (173.194.115.84): 56 data bytes
64 bytes from 173.194.115.84: icmp_seq=0 ttl=54 time=52.172 ms
64 bytes from 173.194.115.84: icmp_seq=1 ttl=54 time=34.843 ms

--- www.google.com ping statistics ---
2 packets transmitted, 2 packets received, 0.0% packet loss
round-trip min/avg/max/stddev = 34.843/43.508/52.172/8.664 ms
";

    #[test]
    fn iputils_and_bsd_summaries() {
        let s = parse_output(IPUTILS).unwrap();
        assert_eq!((s.transmitted, s.received, s.ttl), (2, 2, Some(64)));
        assert_eq!((s.min, s.avg, s.max, s.stddev), (Some(0.025), Some(0.034), Some(0.043), Some(0.009)));
        let s = parse_output(BSD).unwrap();
        assert_eq!((s.transmitted, s.received, s.ttl), (2, 2, Some(54)));
        assert_eq!(s.stddev, Some(8.664));
    }

    #[test]
    fn all_lost_has_counts_and_no_times() {
        let out = "PING 10.9.9.9 (10.9.9.9) 16(44) bytes of data.\n\n--- 10.9.9.9 ping statistics ---\n3 packets transmitted, 0 received, 100% packet loss, time 2030ms\n\n";
        let s = parse_output(out).unwrap();
        assert_eq!((s.transmitted, s.received, s.ttl, s.avg), (3, 0, None, None));
        let m = metric(1, "10.9.9.9", Some(1), out).unwrap();
        assert_eq!(field(&m, "result_code"), Some(FieldValue::Int(1)));
        assert_eq!(field(&m, "percent_packet_loss"), Some(FieldValue::Float(100.0)));
        assert_eq!(field(&m, "average_response_ms"), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(parse_output(""), Err(ParseError::NoSummary));
        assert!(parse_output("x transmitted y received").is_err());
        assert!(parse_output("transmitted, received").is_err());
        assert!(parse_output("2 transmitted, 2 received\nmin/avg/max").is_err());
        assert!(parse_output("2 transmitted, 2 received\nrtt min/avg/max/mdev = a/b/c ms").is_err());
        assert_eq!(parse_output("ttl=999999999999999999999\n1 transmitted, 1 received").unwrap().ttl, None);
    }

    #[test]
    fn a_failed_program_is_result_code_2() {
        let (m, why) = metric(1, "h", Some(2), "ping: h: Name or service not known").unwrap_err();
        assert_eq!(field(&m, "result_code"), Some(FieldValue::Int(2)));
        assert!(why.contains("Name or service not known"), "{why}");
        assert!(metric(1, "h", None, "").is_err());
    }
}
