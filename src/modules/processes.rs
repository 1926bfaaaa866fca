//! `processes`: process counts by state, as telegraf's `processes` input on Linux: measurement
//! `processes`, no tags, fields `blocked, zombies, stopped, running, sleeping, total, unknown,
//! dead, paging, idle, total_threads` (int) and `parked` only when a parked task exists.
//!
//! Reads `/proc/[0-9]*/stat` (state letter and thread count). Reading another process's files can
//! block on a process stuck in the kernel, so the scan runs on the blocking pool with a timeout
//! and at most one scan in flight.

use std::time::Duration;

use serde::Deserialize;

use super::GatherError;
use super::hostutil::{Offload, read_bytes_into};
use crate::options::SpanError;
use crate::output::{Accumulator, Metric, now_ns};

/// `[[inputs.processes]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// Accepted for telegraf compatibility (BSD `ps` via sudo); has no effect on Linux.
    use_sudo: Option<bool>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config;

pub(crate) fn resolve(raw: Raw) -> Result<Config, SpanError> {
    let _ = raw.use_sudo;
    Ok(Config)
}

#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct Counts {
    pub blocked: u64,
    pub zombies: u64,
    pub stopped: u64,
    pub running: u64,
    pub sleeping: u64,
    pub total: u64,
    pub unknown: u64,
    pub dead: u64,
    pub paging: u64,
    pub idle: u64,
    pub parked: u64,
    pub total_threads: u64,
}

impl Counts {
    /// Adds one process given its `/proc/<pid>/stat` content.
    pub(crate) fn add_stat(&mut self, stat: &[u8]) -> bool {
        let Some(close) = stat.iter().rposition(|&b| b == b')') else {
            return false;
        };
        let rest = &stat[close + 1..];
        let mut fields = rest
            .split(|b| b.is_ascii_whitespace())
            .filter(|s| !s.is_empty());
        let Some(state) = fields.next().and_then(|s| s.first().copied()) else {
            return false;
        };
        // num_threads is field 20; the state is field 3, so 17 more fields on.
        let threads = fields
            .nth(16)
            .and_then(|s| std::str::from_utf8(s).ok()?.parse::<u64>().ok())
            .unwrap_or(0);
        match state {
            b'R' => self.running += 1,
            b'S' => self.sleeping += 1,
            b'D' => self.blocked += 1,
            b'Z' => self.zombies += 1,
            b'X' | b'x' => self.dead += 1,
            b'T' | b't' => self.stopped += 1,
            b'W' => self.paging += 1,
            b'I' => self.idle += 1,
            b'P' => self.parked += 1,
            _ => self.unknown += 1,
        }
        self.total += 1;
        self.total_threads += threads;
        true
    }
}

#[derive(Default)]
struct ScanState {
    buf: Vec<u8>,
    path: String,
}

/// Counts every process under `/proc`. Processes that exit during the scan are skipped.
fn scan(state: &mut ScanState) -> std::io::Result<Counts> {
    let mut c = Counts::default();
    let proc = super::procfs::host::path("/proc");
    for entry in std::fs::read_dir(&*proc)? {
        let Ok(entry) = entry else { continue };
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        state.path.clear();
        state.path.push_str(&proc);
        state.path.push('/');
        state.path.push_str(pid);
        state.path.push_str("/stat");
        if read_bytes_into(&state.path, &mut state.buf).is_ok() {
            c.add_stat(&state.buf);
        }
    }
    Ok(c)
}

/// Upper bound for one scan of /proc; a scan that takes longer is reported and left to finish.
const SCAN_TIMEOUT: Duration = Duration::from_secs(5);

pub(crate) struct Processes {
    offload: Offload<ScanState, std::io::Result<Counts>>,
}

impl Processes {
    pub(crate) fn new(_config: Config) -> Self {
        Processes {
            offload: Offload::default(),
        }
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        let c = self
            .offload
            .run(SCAN_TIMEOUT, scan)
            .await
            .map_err(|e| GatherError::Failed(format!("scanning /proc: {e}")))?
            .map_err(|e| GatherError::io("/proc", e))?;
        acc.add(metric(ts, &c));
        Ok(())
    }
}

pub(crate) fn metric(ts: i64, c: &Counts) -> Metric {
    let m = Metric::new("processes", ts)
        .field("blocked", c.blocked)
        .field("zombies", c.zombies)
        .field("stopped", c.stopped)
        .field("running", c.running)
        .field("sleeping", c.sleeping)
        .field("total", c.total)
        .field("unknown", c.unknown)
        .field("dead", c.dead)
        .field("paging", c.paging)
        .field("idle", c.idle)
        .field("total_threads", c.total_threads);
    // Telegraf sets `parked` only when one exists, and then always to 1 (a quirk kept for
    // compatibility is not worth a wrong count): we write the real count.
    if c.parked > 0 {
        m.field("parked", c.parked)
    } else {
        m
    }
}

super::ticked_input!(Processes, super::Shape::Ticked);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fixture_and_odd_names() {
        let mut c = Counts::default();
        assert!(c.add_stat(include_bytes!("../../tests/fixtures/procstat/stat")));
        assert_eq!(c.total, 1);
        assert_eq!(c.running, 1, "cat reading its own stat is running");
        assert_eq!(c.total_threads, 1);
        // A command name with spaces and parentheses.
        let odd = b"42 (a) b (c) S 1 42 42 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 7 0 1 1 1";
        assert!(c.add_stat(odd));
        assert_eq!(c.sleeping, 1);
        assert_eq!(c.total_threads, 8);
        assert!(!c.add_stat(b"garbage"));
        for (s, n) in [("Z", 1), ("D", 1), ("T", 1), ("t", 2), ("I", 1), ("?", 1)] {
            let line = format!("1 (x) {s} 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 1 1");
            c.add_stat(line.as_bytes());
            let got = match s {
                "Z" => c.zombies,
                "D" => c.blocked,
                "T" | "t" => c.stopped,
                "I" => c.idle,
                _ => c.unknown,
            };
            assert_eq!(got, n, "{s}");
        }
    }

    #[test]
    fn scan_counts_this_process() {
        let c = scan(&mut ScanState::default()).unwrap();
        assert!(c.total >= 1 && c.total_threads >= c.total);
        let sum = c.blocked
            + c.zombies
            + c.stopped
            + c.running
            + c.sleeping
            + c.unknown
            + c.dead
            + c.paging
            + c.idle
            + c.parked;
        assert_eq!(sum, c.total);
    }
}
