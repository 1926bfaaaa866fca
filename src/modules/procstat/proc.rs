//! Reading and parsing `/proc/<pid>/…` files.

use super::scan::ScanState;
use crate::modules::hostutil::{kv_number, read_bytes_until_short, read_into};

/// The fields of `/proc/<pid>/stat` we use.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Stat {
    pub state: u8,
    pub ppid: i64,
    pub minflt: u64,
    pub cminflt: u64,
    pub majflt: u64,
    pub cmajflt: u64,
    pub utime: u64,
    pub stime: u64,
    /// The kernel's scheduling priority (negative: real-time).
    pub priority: i64,
    pub nice: i64,
    pub num_threads: u64,
    pub starttime: u64,
    pub vsize: u64,
    pub rss_pages: u64,
    pub blkio_ticks: Option<u64>,
}

/// Parses `/proc/<pid>/stat`; returns the command name (between the first `(` and the last `)`)
/// and the fields after it.
pub(crate) fn parse_stat(buf: &[u8]) -> Option<(&[u8], Stat)> {
    let open = buf.iter().position(|&b| b == b'(')?;
    let close = buf.iter().rposition(|&b| b == b')')?;
    if close < open {
        return None;
    }
    let comm = &buf[open + 1..close];
    let rest = std::str::from_utf8(&buf[close + 1..]).ok()?;
    let mut it = rest.split_ascii_whitespace();
    let state = it.next()?.bytes().next()?;
    let mut v = [0i64; 40];
    // Fields after the state seen (at most 39): the file has blkio ticks if it reached 39.
    let mut seen = 0;
    for (i, s) in it.enumerate().take(39) {
        v[i + 1] = s.parse().unwrap_or(0);
        seen = i + 1;
    }
    let u = |i: usize| u64::try_from(v[i]).unwrap_or(0);
    // Indices after the state: 1 ppid, 7 minflt … 21 rss, 39 delayacct_blkio_ticks.
    Some((
        comm,
        Stat {
            state,
            ppid: v[1],
            minflt: u(7),
            cminflt: u(8),
            majflt: u(9),
            cmajflt: u(10),
            utime: u(11),
            stime: u(12),
            priority: v[15],
            nice: v[16],
            num_threads: u(17),
            starttime: u(19),
            vsize: u(20),
            rss_pages: u(21),
            blkio_ticks: (seen == 39).then(|| u(39)),
        },
    ))
}

/// The fields of `/proc/<pid>/status` we use (memory in bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Status {
    pub ruid: Option<u32>,
    pub euid: Option<u32>,
    /// `ShdPnd`: the process's pending-signal mask, as a number (gopsutil's, which telegraf
    /// writes as `signals_pending`).
    pub shd_pnd: Option<u64>,
    pub vm_size: Option<u64>,
    pub voluntary: Option<u64>,
    pub involuntary: Option<u64>,
    pub vm_swap: Option<u64>,
    pub vm_data: Option<u64>,
    pub vm_stk: Option<u64>,
    pub vm_lck: Option<u64>,
    pub vm_rss: Option<u64>,
}

/// The lines of a /proc file, found by a byte scan: `str::lines` (like `split_once` with a
/// char) makes a `memchr` and a `memcmp` call per search, which costs more than scanning
/// lines this short (measured: `parse_status` 1.5 -> 0.85 µs per file).
fn lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let (line, next) = match rest.bytes().position(|b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        rest = next;
        Some(line)
    })
}

/// `line` split at its first ':', by a byte scan (see [`lines`]).
fn split_colon(line: &str) -> Option<(&str, &str)> {
    let i = line.bytes().position(|b| b == b':')?;
    Some((&line[..i], &line[i + 1..]))
}

pub(crate) fn parse_status(text: &str) -> Status {
    let mut s = Status::default();
    // The file has ~57 lines and this runs once per process per gather: lines whose key
    // cannot be one of ours are skipped on their first byte, before any search for ':'.
    for line in lines(text) {
        if !matches!(line.as_bytes().first(), Some(b'U' | b'S' | b'V' | b'v' | b'n')) {
            continue;
        }
        let Some((k, rest)) = split_colon(line) else {
            continue;
        };
        let bytes = || kv_number(rest).map(|(n, kb)| if kb { n * 1024 } else { n });
        match k {
            "Uid" => {
                let mut ids = rest.split_ascii_whitespace().map(|v| v.parse().ok());
                s.ruid = ids.next().flatten();
                s.euid = ids.next().flatten();
            }
            "ShdPnd" => {
                let hex = rest.trim();
                s.shd_pnd = hex
                    .get(hex.len().saturating_sub(16)..)
                    .and_then(|h| u64::from_str_radix(h, 16).ok())
            }
            "VmSize" => s.vm_size = bytes(),
            "voluntary_ctxt_switches" => s.voluntary = bytes(),
            "nonvoluntary_ctxt_switches" => s.involuntary = bytes(),
            "VmSwap" => s.vm_swap = bytes(),
            "VmData" => s.vm_data = bytes(),
            "VmStk" => s.vm_stk = bytes(),
            "VmLck" => s.vm_lck = bytes(),
            "VmRSS" => s.vm_rss = bytes(),
            _ => {}
        }
    }
    s
}

/// `/proc/<pid>/io`: rchar, wchar, syscr, syscw, read_bytes, write_bytes.
pub(crate) fn parse_io(text: &str) -> [Option<u64>; 6] {
    let mut out = [None; 6];
    for line in lines(text) {
        let Some((k, v)) = split_colon(line) else {
            continue;
        };
        let i = match k {
            "rchar" => 0,
            "wchar" => 1,
            "syscr" => 2,
            "syscw" => 3,
            "read_bytes" => 4,
            "write_bytes" => 5,
            _ => continue,
        };
        out[i] = v.trim().parse().ok();
    }
    out
}

/// `/proc/<pid>/smaps_rollup` keys → field names (values in kB there, bytes here).
pub(super) const SMAPS: [(&str, &str); 8] = [
    ("Pss", "memory_pss"),
    ("Shared_Clean", "memory_shared_clean"),
    ("Shared_Dirty", "memory_shared_dirty"),
    ("Private_Clean", "memory_private_clean"),
    ("Private_Dirty", "memory_private_dirty"),
    ("Referenced", "memory_referenced"),
    ("Anonymous", "memory_anonymous"),
    ("Swap", "memory_swap"),
];

pub(crate) fn parse_smaps_rollup(text: &str) -> [Option<u64>; 8] {
    let mut out = [None; 8];
    for line in lines(text) {
        let Some((k, rest)) = split_colon(line) else {
            continue;
        };
        if let Some(i) = SMAPS.iter().position(|(key, _)| *key == k) {
            out[i] = kv_number(rest).map(|(n, _)| n * 1024);
        }
    }
    out
}

/// The resources of `/proc/<pid>/limits` telegraf writes, in the file's order, with their
/// field names (`rlimit_<name>_soft`, `rlimit_<name>_hard` and, but for `file_locks`, `<name>`
/// for the use).
pub(crate) const LIMITS: [(&str, &str); 11] = [
    ("Max cpu time", "cpu_time"),
    ("Max data size", "memory_data"),
    ("Max stack size", "memory_stack"),
    ("Max resident set", "memory_rss"),
    ("Max open files", "num_fds"),
    ("Max locked memory", "memory_locked"),
    ("Max address space", "memory_vms"),
    ("Max file locks", "file_locks"),
    ("Max pending signals", "signals_pending"),
    ("Max nice priority", "nice_priority"),
    ("Max realtime priority", "realtime_priority"),
];

/// `/proc/<pid>/limits`: (soft, hard) per [`LIMITS`] entry; `unlimited` is `u64::MAX` (written
/// as the largest int, as telegraf).
pub(crate) fn parse_limits(text: &str) -> [Option<(u64, u64)>; 11] {
    let mut out = [None; 11];
    let value = |v: &str| match v {
        "unlimited" => Some(u64::MAX),
        v => v.parse().ok(),
    };
    for line in text.lines() {
        let Some(i) = LIMITS.iter().position(|(k, _)| line.starts_with(k)) else {
            continue;
        };
        // Columns: the name, then soft, hard, units; the name's width is fixed at 26.
        let mut f = line.get(26..).unwrap_or("").split_ascii_whitespace();
        if let (Some(soft), Some(hard)) = (f.next().and_then(value), f.next().and_then(value)) {
            out[i] = Some((soft, hard));
        }
    }
    out
}

/// gopsutil's status words, which telegraf writes.
pub(crate) fn status_word(state: u8) -> &'static str {
    match state {
        b'R' => "running",
        b'S' => "sleep",
        b'D' | b'U' => "blocked",
        b'I' => "idle",
        b'L' => "lock",
        b'T' | b't' => "stop",
        b'W' => "wait",
        b'Z' => "zombie",
        b'X' | b'x' => "dead",
        _ => "unknown",
    }
}

impl ScanState {
    pub(super) fn set_path(&mut self, pid: i32, file: &str) {
        use std::fmt::Write;
        self.path.clear();
        let _ = write!(self.path, "{}/{pid}/{file}", self.proc_root);
    }

    /// Command line with NULs as spaces (into `self.cmdline`); false if unreadable.
    pub(super) fn read_cmdline(&mut self, pid: i32) -> bool {
        self.set_path(pid, "cmdline");
        // The kernel fills a read with all the arguments there are (short only at their end,
        // or when it cannot read the process's memory at all), and every read of this file,
        // even one past the end, costs it a read of the process's memory (to check for
        // `setproctitle`): a second read that returns 0 would double that for every process
        // on the host, in every scan.
        if read_bytes_until_short(&self.path, &mut self.cmdline).is_err() {
            return false;
        }
        while self.cmdline.last() == Some(&0) {
            self.cmdline.pop();
        }
        for b in self.cmdline.iter_mut() {
            if *b == 0 {
                *b = b' ';
            }
        }
        true
    }

    /// The process name from `/proc/<pid>/comm` (into `self.text`).
    pub(super) fn read_comm(&mut self, pid: i32) -> bool {
        self.set_path(pid, "comm");
        if read_into(&self.path, &mut self.text).is_err() {
            return false;
        }
        let n = self.text.trim_end_matches('\n').len();
        self.text.truncate(n);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fixture() {
        let (comm, s) =
            parse_stat(include_bytes!("../../../tests/fixtures/procstat/stat")).unwrap();
        assert_eq!(comm, b"cat");
        assert_eq!(s.state, b'R');
        assert_eq!(s.num_threads, 1);
        assert!(s.vsize > 0 && s.rss_pages > 0 && s.starttime > 0);
        assert!(s.blkio_ticks.is_some());
        let odd = b"7 (a) (b c) S 1 7 7 0 -1 0 10 20 30 40 5 6 0 0 20 0 3 0 99 4096 2";
        let (comm, s) = parse_stat(odd).unwrap();
        assert_eq!(comm, b"a) (b c");
        assert_eq!((s.minflt, s.cminflt, s.majflt, s.cmajflt), (10, 20, 30, 40));
        assert_eq!((s.utime, s.stime, s.num_threads), (5, 6, 3));
        assert_eq!((s.starttime, s.vsize, s.rss_pages), (99, 4096, 2));
        assert_eq!(s.blkio_ticks, None);
    }

    #[test]
    fn status_io_smaps_fixtures() {
        let s = parse_status(include_str!("../../../tests/fixtures/procstat/status"));
        assert_eq!(s.euid, Some(0));
        assert!(s.voluntary.is_some() && s.involuntary.is_some());
        assert_eq!(s.vm_swap, Some(0));
        assert_eq!(s.vm_stk, Some(132 * 1024));
        assert_eq!(s.vm_rss, Some(1720 * 1024));
        let io = parse_io(include_str!("../../../tests/fixtures/procstat/io"));
        assert!(io.iter().all(Option::is_some));
        assert_eq!(io[2], Some(10));
        let sm = parse_smaps_rollup(include_str!(
            "../../../tests/fixtures/procstat/smaps_rollup"
        ));
        assert_eq!(sm[0], Some(223 * 1024));
        assert!(sm.iter().all(Option::is_some));
    }

    #[test]
    fn lines_and_colons_as_str_lines() {
        for text in ["", "\n", "a:1\nb\n\nc:2:3", "é:ü\nx:\n", "k: v\n"] {
            let ours: Vec<_> = lines(text).map(|l| (l, split_colon(l))).collect();
            let std: Vec<_> = text.lines().map(|l| (l, l.split_once(':'))).collect();
            assert_eq!(ours, std, "{text:?}");
        }
    }

    #[test]
    fn limits_fixture() {
        let l = parse_limits(include_str!("../../../tests/fixtures/procstat/limits"));
        assert!(l.iter().all(Option::is_some), "{l:?}");
        assert_eq!(l[0], Some((u64::MAX, u64::MAX)), "cpu time unlimited");
        let (soft, hard) = l[4].unwrap();
        assert!(soft > 0 && soft <= hard, "open files");
        assert_eq!(parse_limits("Max open files            12 x"), [None; 11]);
        assert_eq!(parse_limits("Max open files")[4], None);
    }
}
