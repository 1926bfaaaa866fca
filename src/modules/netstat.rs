//! `netstat`: socket counts, as telegraf's `netstat` input: measurement `netstat`, no tags, one
//! line with TCP sockets per state (`tcp_established` … `tcp_closing`, `tcp_none`) from
//! `/proc/net/tcp` and `/proc/net/tcp6`, and `udp_socket` (sockets in `/proc/net/udp` and
//! `udp6`). Counts are for the network namespace the agent runs in. A missing file (IPv6
//! disabled) counts as no sockets.

use serde::Deserialize;

use super::GatherError;
use super::hostutil::read_into;
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

pub struct Netstat {
    buf: String,
}

impl Netstat {
    pub fn new(_config: Config) -> Self {
        Netstat {
            buf: String::with_capacity(16 * 1024),
        }
    }

    pub async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        let mut counts = [0u64; 12];
        let mut udp = 0;
        let mut read_any = false;
        for path in ["/proc/net/tcp", "/proc/net/tcp6"] {
            if read_into(path, &mut self.buf).is_ok() {
                read_any = true;
                count_tcp(&self.buf, &mut counts);
            }
        }
        for path in ["/proc/net/udp", "/proc/net/udp6"] {
            if read_into(path, &mut self.buf).is_ok() {
                read_any = true;
                udp += count_lines(&self.buf);
            }
        }
        if !read_any {
            return Err(GatherError::Failed(
                "none of /proc/net/{tcp,tcp6,udp,udp6} is readable".into(),
            ));
        }
        let mut m = Metric::new("netstat", ts);
        for (i, name) in STATES.iter().enumerate().skip(1) {
            m = m.field(*name, counts[i]);
        }
        acc.add(m.field("tcp_none", counts[0]).field("udp_socket", udp));
        Ok(())
    }
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
        let mut c = [0u64; 12];
        count_tcp(
            "hdr\n 0: 0100007F:0016 00000000:0000 01 0\n 1: x y 06 0\n 2: x y 0A\n 3: x y FF\n",
            &mut c,
        );
        assert_eq!((c[1], c[6], c[10], c[0]), (1, 1, 1, 1));
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
