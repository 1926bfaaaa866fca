//! `procstat`: per-process resource use, as telegraf's `procstat` input (Linux, native finder).
//!
//! Selection, first set option wins (telegraf's order): `pid_file`, `exe` (regex on the process
//! name, like `pgrep NAME`), `pattern` (regex on the command line joined with spaces, like
//! `pgrep -f`; kernel threads match on their name), `user` (effective user, like `pgrep -u`),
//! `systemd_unit` (every process in the unit's cgroup: `/sys/fs/cgroup/system.slice/<unit>/
//! cgroup.procs`, unified or hybrid hierarchy — telegraf without `include_systemd_children` takes
//! only the MainPID from systemctl; we have no D-Bus and report the whole unit), `cgroup` (a
//! cgroup path, relative to `/sys/fs/cgroup` or absolute).
//!
//! Measurement `procstat`, one line per process: tags `process_name` (the `process_name` option
//! or the kernel's name of the process), the selector used (`pidfile`, `exe`, `pattern`, `user`,
//! `systemd_unit`, `cgroup`) and any `tag_with` keys; fields as telegraf's (below).
//! `cpu_usage` (percent of one CPU, or of all CPUs with `mode = "solaris"`) needs two gathers
//! that saw the same process, so it is absent on its first one.
//!
//! Per-process fields: `pid`, `ppid` (int, unless in `tag_with`), `cmdline`, `status`, `user`
//! (string, unless in `tag_with`), `num_threads`, `num_fds`, `voluntary_context_switches`,
//! `involuntary_context_switches`, `minor_faults`, `major_faults`, `child_minor_faults`,
//! `child_major_faults`, `read_count`, `write_count` (syscalls), `read_bytes`, `write_bytes`
//! (bytes through read/write calls: `rchar`/`wchar`), `disk_read_bytes`, `disk_write_bytes`
//! (bytes from/to storage), `created_at` (ns since epoch); property `cpu`: `cpu_time_user`,
//! `cpu_time_system`, `cpu_time_iowait` (float s), `cpu_usage` (float %); property `memory`:
//! `memory_rss`, `memory_vms`, `memory_data`, `memory_stack`, `memory_locked`, `memory_swap`
//! (bytes), `memory_usage` (float, % of MemTotal); property `mmap` (`smaps_rollup`):
//! `memory_size`, `memory_pss`, `memory_shared_clean`, `memory_shared_dirty`,
//! `memory_private_clean`, `memory_private_dirty`, `memory_referenced`, `memory_anonymous`.
//! `/proc/<pid>/io` of another user's process needs root or CAP_SYS_PTRACE: without it those
//! fields are left out.
//!
//! Measurement `procstat_lookup`, one line per gather: tags `pid_finder`, `result`
//! (`success`|`lookup_error`) and the selector; fields `pid_count`, `running` (processes whose
//! metrics were read), `result_code` (0|1).
//!
//! Reading `/proc/<pid>/…` of a process stuck in the kernel can block, so the whole scan runs on
//! the blocking pool, bounded by `timeout`, with at most one scan in flight.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use regex::Regex;
use serde::Deserialize;

use super::GatherError;
use super::hostutil::{Offload, clk_tck, kv_number, page_size, read_bytes_into, read_into};
use crate::config::{ConfigDuration, SpanError};
use crate::output::{Accumulator, Key, Metric, now_ns};

/// `[[inputs.procstat]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// File holding the PID to monitor.
    pid_file: Option<String>,
    /// Regex on the process name (`pgrep NAME`).
    exe: Option<toml::Spanned<String>>,
    /// Regex on the full command line (`pgrep -f PATTERN`).
    pattern: Option<toml::Spanned<String>>,
    /// Processes whose effective user is this name.
    user: Option<String>,
    /// systemd unit name; `.service` is added when there is no suffix.
    systemd_unit: Option<String>,
    /// Accepted for compatibility: the unit's whole cgroup is always reported.
    include_systemd_children: Option<bool>,
    /// cgroup path, relative to /sys/fs/cgroup or absolute.
    cgroup: Option<String>,
    /// Overrides the `process_name` tag.
    process_name: Option<String>,
    /// Prepended to every field name as `<prefix>_`.
    prefix: Option<String>,
    /// `irix` (default: 100% = one CPU) or `solaris` (divided by the CPU count).
    mode: Option<toml::Spanned<String>>,
    /// Values written as tags instead of fields: `pid`, `ppid`, `cmdline`, `status`, `user`.
    tag_with: Option<toml::Spanned<Vec<String>>>,
    /// `cpu`, `memory`, `mmap` (default all three).
    properties: Option<toml::Spanned<Vec<String>>>,
    /// `pgrep` (default) or `native`: only names the `pid_finder` tag; the lookup is always
    /// done natively by reading /proc.
    pid_finder: Option<toml::Spanned<String>>,
    /// Longest time one scan of /proc may take (an addition). Default 5s.
    timeout: Option<ConfigDuration>,
}

#[derive(Debug, Clone)]
pub enum Selector {
    PidFile(PathBuf),
    Exe(Regex),
    Pattern(Regex),
    User(String),
    SystemdUnit(String),
    Cgroup(String),
}

#[derive(Debug, Clone)]
pub struct Config {
    pub selector: Selector,
    /// (tag key, value) naming the selector.
    pub selector_tag: (&'static str, String),
    pub process_name: Option<String>,
    pub prefix: Option<String>,
    pub solaris: bool,
    pub tag_pid: bool,
    pub tag_ppid: bool,
    pub tag_cmdline: bool,
    pub tag_status: bool,
    pub tag_user: bool,
    pub cpu: bool,
    pub memory: bool,
    pub mmap: bool,
    pub pid_finder: String,
    pub timeout: Duration,
}

fn regex(s: toml::Spanned<String>, key: &str) -> Result<(Regex, String), SpanError> {
    let span = s.span();
    let text = s.into_inner();
    Regex::new(&text)
        .map(|r| (r, text))
        .map_err(|e| SpanError::new(span, key, format!("invalid regex: {e}")))
}

pub fn resolve(raw: Raw) -> Result<Config, SpanError> {
    let _ = raw.include_systemd_children;
    let (selector, selector_tag) = if let Some(p) = raw.pid_file {
        (Selector::PidFile(PathBuf::from(&p)), ("pidfile", p))
    } else if let Some(e) = raw.exe {
        let (r, t) = regex(e, "exe")?;
        (Selector::Exe(r), ("exe", t))
    } else if let Some(p) = raw.pattern {
        let (r, t) = regex(p, "pattern")?;
        (Selector::Pattern(r), ("pattern", t))
    } else if let Some(u) = raw.user {
        (Selector::User(u.clone()), ("user", u))
    } else if let Some(u) = raw.systemd_unit {
        (Selector::SystemdUnit(u.clone()), ("systemd_unit", u))
    } else if let Some(c) = raw.cgroup {
        (Selector::Cgroup(c.clone()), ("cgroup", c))
    } else {
        return Err(SpanError::new(
            0..0,
            "",
            "set one of pid_file, exe, pattern, user, systemd_unit or cgroup",
        ));
    };
    let solaris = match raw.mode {
        None => false,
        Some(m) => match m.get_ref().as_str() {
            "irix" => false,
            "solaris" => true,
            other => {
                return Err(SpanError::new(
                    m.span(),
                    "mode",
                    format!("unknown mode {other:?} (irix or solaris)"),
                ));
            }
        },
    };
    let mut c = Config {
        selector,
        selector_tag,
        process_name: raw.process_name,
        prefix: raw.prefix.filter(|p| !p.is_empty()),
        solaris,
        tag_pid: false,
        tag_ppid: false,
        tag_cmdline: false,
        tag_status: false,
        tag_user: false,
        cpu: true,
        memory: true,
        mmap: true,
        pid_finder: "pgrep".into(),
        timeout: raw
            .timeout
            .map(|t| t.get())
            .filter(|t| !t.is_zero())
            .unwrap_or(Duration::from_secs(5)),
    };
    if let Some(t) = raw.tag_with {
        for k in t.get_ref() {
            match k.as_str() {
                "pid" => c.tag_pid = true,
                "ppid" => c.tag_ppid = true,
                "cmdline" => c.tag_cmdline = true,
                "status" => c.tag_status = true,
                "user" => c.tag_user = true,
                other => {
                    return Err(SpanError::new(
                        t.span(),
                        "tag_with",
                        format!("unsupported {other:?} (pid, ppid, cmdline, status, user)"),
                    ));
                }
            }
        }
    }
    if let Some(p) = raw.properties {
        c.cpu = false;
        c.memory = false;
        c.mmap = false;
        for k in p.get_ref() {
            match k.as_str() {
                "cpu" => c.cpu = true,
                "memory" => c.memory = true,
                "mmap" => c.mmap = true,
                other => {
                    return Err(SpanError::new(
                        p.span(),
                        "properties",
                        format!("unsupported property {other:?} (cpu, memory, mmap)"),
                    ));
                }
            }
        }
    }
    if let Some(f) = raw.pid_finder {
        match f.get_ref().as_str() {
            "pgrep" | "native" => c.pid_finder = f.into_inner(),
            other => {
                return Err(SpanError::new(
                    f.span(),
                    "pid_finder",
                    format!("unknown pid_finder {other:?} (pgrep or native)"),
                ));
            }
        }
    }
    Ok(c)
}

/// The fields of `/proc/<pid>/stat` we use.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Stat {
    pub state: u8,
    pub ppid: i64,
    pub minflt: u64,
    pub cminflt: u64,
    pub majflt: u64,
    pub cmajflt: u64,
    pub utime: u64,
    pub stime: u64,
    pub num_threads: u64,
    pub starttime: u64,
    pub vsize: u64,
    pub rss_pages: u64,
    pub blkio_ticks: Option<u64>,
}

/// Parses `/proc/<pid>/stat`; returns the command name (between the first `(` and the last `)`)
/// and the fields after it.
pub fn parse_stat(buf: &[u8]) -> Option<(&[u8], Stat)> {
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
    for (i, s) in it.enumerate().take(39) {
        v[i + 1] = s.parse().unwrap_or(0);
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
            num_threads: u(17),
            starttime: u(19),
            vsize: u(20),
            rss_pages: u(21),
            blkio_ticks: (rest.split_ascii_whitespace().count() > 39).then(|| u(39)),
        },
    ))
}

/// The fields of `/proc/<pid>/status` we use (memory in bytes).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Status {
    pub euid: Option<u32>,
    pub voluntary: Option<u64>,
    pub involuntary: Option<u64>,
    pub vm_swap: Option<u64>,
    pub vm_data: Option<u64>,
    pub vm_stk: Option<u64>,
    pub vm_lck: Option<u64>,
    pub vm_rss: Option<u64>,
}

pub fn parse_status(text: &str) -> Status {
    let mut s = Status::default();
    for line in text.lines() {
        let Some((k, rest)) = line.split_once(':') else {
            continue;
        };
        let bytes = || kv_number(rest).map(|(n, kb)| if kb { n * 1024 } else { n });
        match k {
            "Uid" => {
                s.euid = rest
                    .split_ascii_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse().ok())
            }
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
pub fn parse_io(text: &str) -> [Option<u64>; 6] {
    let mut out = [None; 6];
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
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
const SMAPS: [(&str, &str); 7] = [
    ("Pss", "memory_pss"),
    ("Shared_Clean", "memory_shared_clean"),
    ("Shared_Dirty", "memory_shared_dirty"),
    ("Private_Clean", "memory_private_clean"),
    ("Private_Dirty", "memory_private_dirty"),
    ("Referenced", "memory_referenced"),
    ("Anonymous", "memory_anonymous"),
];

pub fn parse_smaps_rollup(text: &str) -> [Option<u64>; 7] {
    let mut out = [None; 7];
    for line in text.lines() {
        let Some((k, rest)) = line.split_once(':') else {
            continue;
        };
        if let Some(i) = SMAPS.iter().position(|(key, _)| *key == k) {
            out[i] = kv_number(rest).map(|(n, _)| n * 1024);
        }
    }
    out
}

/// gopsutil's status words, which telegraf writes.
pub fn status_word(state: u8) -> &'static str {
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

/// `/etc/passwd` name for a uid, or the number.
fn parse_passwd(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            Some((uid, name.to_owned()))
        })
        .collect()
}

struct Prev {
    ticks: u64,
    starttime: u64,
    at: Instant,
}

/// Everything kept between scans (runs on the blocking pool).
#[derive(Default)]
pub struct ScanState {
    bytes: Vec<u8>,
    cmdline: Vec<u8>,
    text: String,
    path: String,
    prev: HashMap<i32, Prev>,
    users: HashMap<u32, String>,
    users_loaded: bool,
    boot_time_s: u64,
}

/// The outcome of one scan, built on the blocking pool and added to the accumulator after.
pub struct ScanResult {
    metrics: Vec<Metric>,
    lookup_error: Option<String>,
    pid_count: usize,
}

impl ScanState {
    fn set_path(&mut self, pid: i32, file: &str) {
        use std::fmt::Write;
        self.path.clear();
        let _ = write!(self.path, "/proc/{pid}/{file}");
    }

    fn user_name(&mut self, uid: u32) -> String {
        if !self.users.contains_key(&uid) && !self.users_loaded {
            self.users = std::fs::read_to_string("/etc/passwd")
                .map(|t| parse_passwd(&t))
                .unwrap_or_default();
            self.users_loaded = true;
        }
        self.users
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string())
    }

    /// Command line with NULs as spaces (into `self.cmdline`); false if unreadable.
    fn read_cmdline(&mut self, pid: i32) -> bool {
        self.set_path(pid, "cmdline");
        if read_bytes_into(&self.path, &mut self.cmdline).is_err() {
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
    fn read_comm(&mut self, pid: i32) -> bool {
        self.set_path(pid, "comm");
        if read_into(&self.path, &mut self.text).is_err() {
            return false;
        }
        let n = self.text.trim_end_matches('\n').len();
        self.text.truncate(n);
        true
    }

    fn all_pids() -> std::io::Result<Vec<i32>> {
        let mut pids = Vec::with_capacity(512);
        for e in std::fs::read_dir("/proc")? {
            let Ok(e) = e else { continue };
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                pids.push(pid);
            }
        }
        Ok(pids)
    }

    fn find(&mut self, sel: &Selector) -> Result<Vec<i32>, String> {
        match sel {
            Selector::PidFile(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("reading pid file {}: {e}", p.display()))?;
                let pid = text
                    .trim()
                    .parse::<i32>()
                    .map_err(|_| format!("pid file {} holds no pid", p.display()))?;
                Ok(vec![pid])
            }
            Selector::Exe(re) => {
                let mut out = Vec::new();
                for pid in Self::all_pids().map_err(|e| e.to_string())? {
                    if self.read_comm(pid) && re.is_match(&self.text) {
                        out.push(pid);
                    }
                }
                Ok(out)
            }
            Selector::Pattern(re) => {
                let mut out = Vec::new();
                for pid in Self::all_pids().map_err(|e| e.to_string())? {
                    if !self.read_cmdline(pid) {
                        continue;
                    }
                    let hit = if self.cmdline.is_empty() {
                        self.read_comm(pid) && re.is_match(&self.text)
                    } else {
                        re.is_match(&String::from_utf8_lossy(&self.cmdline))
                    };
                    if hit {
                        out.push(pid);
                    }
                }
                Ok(out)
            }
            Selector::User(name) => {
                let text = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
                let uid = parse_passwd(&text)
                    .into_iter()
                    .find(|(_, n)| n == name)
                    .map(|(u, _)| u)
                    .ok_or_else(|| format!("unknown user {name:?}"))?;
                let mut out = Vec::new();
                for pid in Self::all_pids().map_err(|e| e.to_string())? {
                    use std::os::unix::fs::MetadataExt;
                    self.path.clear();
                    self.path.push_str(&format!("/proc/{pid}"));
                    if std::fs::metadata(&self.path).is_ok_and(|m| m.uid() == uid) {
                        out.push(pid);
                    }
                }
                Ok(out)
            }
            Selector::SystemdUnit(unit) => {
                let unit = if unit.contains('.') {
                    unit.clone()
                } else {
                    format!("{unit}.service")
                };
                let candidates = [
                    format!("/sys/fs/cgroup/system.slice/{unit}/cgroup.procs"),
                    format!("/sys/fs/cgroup/unified/system.slice/{unit}/cgroup.procs"),
                    format!("/sys/fs/cgroup/systemd/system.slice/{unit}/cgroup.procs"),
                ];
                read_procs(&candidates, &mut self.text)
                    .map_err(|e| format!("systemd unit {unit}: {e}"))
            }
            Selector::Cgroup(cg) => {
                let base = if cg.starts_with('/') {
                    cg.clone()
                } else {
                    format!("/sys/fs/cgroup/{cg}")
                };
                read_procs(&[format!("{base}/cgroup.procs")], &mut self.text)
                    .map_err(|e| format!("cgroup {base}: {e}"))
            }
        }
    }
}

fn read_procs(candidates: &[String], buf: &mut String) -> Result<Vec<i32>, String> {
    let mut last = String::from("no cgroup.procs");
    for path in candidates {
        match read_into(path, buf) {
            Ok(()) => return Ok(buf.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(e) => last = format!("{path}: {e}"),
        }
    }
    Err(last)
}

/// Constants read once per module instance.
#[derive(Clone, Copy)]
struct Host {
    hz: f64,
    page: u64,
    ncpu: f64,
}

fn key(prefix: &Option<String>, name: &'static str) -> Key {
    match prefix {
        Some(p) => Key::Owned(format!("{p}_{name}")),
        None => Key::Borrowed(name),
    }
}

fn scan(st: &mut ScanState, cfg: &Config, host: Host, ts: i64) -> ScanResult {
    if st.boot_time_s == 0 {
        st.boot_time_s = std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
            })
            .unwrap_or(0);
    }
    st.users_loaded = false;
    let pids = match st.find(&cfg.selector) {
        Ok(p) => p,
        Err(e) => {
            return ScanResult {
                metrics: Vec::new(),
                lookup_error: Some(e),
                pid_count: 0,
            };
        }
    };
    let mem_total = if cfg.memory {
        std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
            t.lines()
                .find_map(|l| Some(kv_number(l.strip_prefix("MemTotal:")?)?.0 * 1024))
        })
    } else {
        None
    };
    let now = Instant::now();
    let mut metrics = Vec::with_capacity(pids.len());
    let mut alive = HashSet::with_capacity(pids.len());
    let p = &cfg.prefix;
    for &pid in &pids {
        st.set_path(pid, "stat");
        if read_bytes_into(&st.path, &mut st.bytes).is_err() {
            continue; // exited since it was found
        }
        let Some((comm, s)) = parse_stat(&st.bytes) else {
            continue;
        };
        let comm = String::from_utf8_lossy(comm).into_owned();
        alive.insert(pid);
        // Read again even for `pattern`: the scan may be seconds after the match.
        let cmdline = if st.read_cmdline(pid) {
            String::from_utf8_lossy(&st.cmdline).into_owned()
        } else {
            String::new()
        };
        // The kernel truncates names to 15 bytes; like gopsutil, take the full one from argv[0].
        let name = match &cfg.process_name {
            Some(n) => n.clone(),
            None if comm.len() >= 15 => cmdline
                .split(' ')
                .next()
                .and_then(|a0| a0.rsplit('/').next())
                .filter(|b| b.starts_with(&comm))
                .map(str::to_owned)
                .unwrap_or(comm),
            None => comm,
        };
        st.set_path(pid, "status");
        let status = if read_into(&st.path, &mut st.text).is_ok() {
            parse_status(&st.text)
        } else {
            Status::default()
        };
        let user = status.euid.map(|u| st.user_name(u));

        let mut m = Metric::new("procstat", ts)
            .tag("process_name", name)
            .tag(cfg.selector_tag.0, cfg.selector_tag.1.clone());
        if cfg.tag_pid {
            m = m.tag("pid", pid.to_string());
        }
        if cfg.tag_ppid {
            m = m.tag("ppid", s.ppid.to_string());
        }
        if cfg.tag_cmdline {
            m = m.tag("cmdline", cmdline.clone());
        }
        if cfg.tag_status {
            m = m.tag("status", status_word(s.state));
        }
        if cfg.tag_user
            && let Some(u) = &user
        {
            m = m.tag("user", u.clone());
        }
        if !cfg.tag_pid {
            m = m.field(key(p, "pid"), i64::from(pid));
        }
        if !cfg.tag_ppid {
            m = m.field(key(p, "ppid"), s.ppid);
        }
        if !cfg.tag_cmdline {
            m = m.field(key(p, "cmdline"), cmdline);
        }
        if !cfg.tag_status {
            m = m.field(key(p, "status"), status_word(s.state));
        }
        if !cfg.tag_user
            && let Some(u) = user
        {
            m = m.field(key(p, "user"), u);
        }
        m = m
            .field(key(p, "num_threads"), s.num_threads)
            .field_opt(key(p, "voluntary_context_switches"), status.voluntary)
            .field_opt(key(p, "involuntary_context_switches"), status.involuntary)
            .field(key(p, "minor_faults"), s.minflt)
            .field(key(p, "major_faults"), s.majflt)
            .field(key(p, "child_minor_faults"), s.cminflt)
            .field(key(p, "child_major_faults"), s.cmajflt);
        st.set_path(pid, "fd");
        if let Ok(d) = std::fs::read_dir(&st.path) {
            m = m.field(key(p, "num_fds"), d.count() as u64);
        }
        st.set_path(pid, "io");
        if read_into(&st.path, &mut st.text).is_ok() {
            let io = parse_io(&st.text);
            m = m
                .field_opt(key(p, "read_bytes"), io[0])
                .field_opt(key(p, "write_bytes"), io[1])
                .field_opt(key(p, "read_count"), io[2])
                .field_opt(key(p, "write_count"), io[3])
                .field_opt(key(p, "disk_read_bytes"), io[4])
                .field_opt(key(p, "disk_write_bytes"), io[5]);
        }
        let created_s = st.boot_time_s as f64 + s.starttime as f64 / host.hz;
        m = m.field(key(p, "created_at"), (created_s * 1e9) as i64);
        if cfg.cpu {
            m = m
                .field(key(p, "cpu_time_user"), s.utime as f64 / host.hz)
                .field(key(p, "cpu_time_system"), s.stime as f64 / host.hz)
                .field_opt(
                    key(p, "cpu_time_iowait"),
                    s.blkio_ticks.map(|t| t as f64 / host.hz),
                );
            let ticks = s.utime + s.stime;
            let prev = st.prev.insert(
                pid,
                Prev {
                    ticks,
                    starttime: s.starttime,
                    at: now,
                },
            );
            if let Some(prev) = prev.filter(|pr| pr.starttime == s.starttime) {
                let secs = now.duration_since(prev.at).as_secs_f64();
                if secs > 0.0 {
                    let mut pct =
                        100.0 * (ticks.saturating_sub(prev.ticks) as f64 / host.hz) / secs;
                    if cfg.solaris {
                        pct /= host.ncpu;
                    }
                    m = m.field(key(p, "cpu_usage"), pct);
                }
            }
        }
        if cfg.memory {
            // VmRSS is exact; the `stat` figure comes from per-CPU counters that may lag by
            // hundreds of KiB on recent kernels (it is what `ps` disagrees with).
            let rss = status.vm_rss.unwrap_or(s.rss_pages * host.page);
            m = m
                .field(key(p, "memory_rss"), rss)
                .field(key(p, "memory_vms"), s.vsize)
                .field_opt(key(p, "memory_data"), status.vm_data)
                .field_opt(key(p, "memory_stack"), status.vm_stk)
                .field_opt(key(p, "memory_locked"), status.vm_lck)
                .field_opt(key(p, "memory_swap"), status.vm_swap)
                .field_opt(
                    key(p, "memory_usage"),
                    mem_total
                        .filter(|t| *t > 0)
                        .map(|t| 100.0 * rss as f64 / t as f64),
                );
        }
        if cfg.mmap {
            st.set_path(pid, "smaps_rollup");
            if read_into(&st.path, &mut st.text).is_ok() {
                let v = parse_smaps_rollup(&st.text);
                m = m.field(key(p, "memory_size"), s.vsize);
                for (i, (_, name)) in SMAPS.iter().enumerate() {
                    m = m.field_opt(key(p, name), v[i]);
                }
            }
        }
        metrics.push(m);
    }
    st.prev.retain(|pid, _| alive.contains(pid));
    ScanResult {
        metrics,
        lookup_error: None,
        pid_count: pids.len(),
    }
}

pub struct Procstat {
    config: std::sync::Arc<Config>,
    host: Host,
    offload: Offload<ScanState, ScanResult>,
    logged_lookup: bool,
}

impl Procstat {
    pub fn new(config: Config) -> Self {
        let ncpu = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        Procstat {
            config: std::sync::Arc::new(config),
            host: Host {
                hz: clk_tck(),
                page: page_size(),
                ncpu,
            },
            offload: Offload::default(),
            logged_lookup: false,
        }
    }

    pub async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        let cfg = self.config.clone();
        let host = self.host;
        let result = self
            .offload
            .run(self.config.timeout, move |st| scan(st, &cfg, host, ts))
            .await;
        let (tag_k, tag_v) = (
            self.config.selector_tag.0,
            self.config.selector_tag.1.clone(),
        );
        let lookup = Metric::new("procstat_lookup", ts)
            .tag("pid_finder", self.config.pid_finder.clone())
            .tag(tag_k, tag_v);
        let r = match result {
            Ok(r) => r,
            Err(e) => {
                acc.add_error();
                acc.add(
                    lookup
                        .tag("result", "lookup_error")
                        .field("pid_count", 0u64)
                        .field("running", 0u64)
                        .field("result_code", 1u64),
                );
                return Err(GatherError::Failed(format!("scanning /proc: {e}")));
            }
        };
        let running = r.metrics.len() as u64;
        for m in r.metrics {
            acc.add(m);
        }
        match r.lookup_error {
            Some(e) => {
                acc.add_error();
                if !self.logged_lookup {
                    tracing::warn!(
                        "[inputs.procstat] {e} (logged once; counted in internal_gather)"
                    );
                    self.logged_lookup = true;
                }
                acc.add(
                    lookup
                        .tag("result", "lookup_error")
                        .field("pid_count", 0u64)
                        .field("running", 0u64)
                        .field("result_code", 1u64),
                );
            }
            None => {
                self.logged_lookup = false;
                acc.add(
                    lookup
                        .tag("result", "success")
                        .field("pid_count", r.pid_count as u64)
                        .field("running", running)
                        .field("result_code", 0u64),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::hostutil::testing::TestAcc;

    #[test]
    fn stat_fixture() {
        let (comm, s) = parse_stat(include_bytes!("../../tests/fixtures/procstat/stat")).unwrap();
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
        let s = parse_status(include_str!("../../tests/fixtures/procstat/status"));
        assert_eq!(s.euid, Some(0));
        assert!(s.voluntary.is_some() && s.involuntary.is_some());
        assert_eq!(s.vm_swap, Some(0));
        assert_eq!(s.vm_stk, Some(132 * 1024));
        assert_eq!(s.vm_rss, Some(1720 * 1024));
        let io = parse_io(include_str!("../../tests/fixtures/procstat/io"));
        assert!(io.iter().all(Option::is_some));
        assert_eq!(io[2], Some(10));
        let sm = parse_smaps_rollup(include_str!("../../tests/fixtures/procstat/smaps_rollup"));
        assert_eq!(sm[0], Some(223 * 1024));
        assert!(sm.iter().all(Option::is_some));
    }

    #[test]
    fn config_errors() {
        assert!(resolve(Raw::default()).is_err());
        let raw: Raw = toml::from_str("pattern = \"(unclosed\"").unwrap();
        assert!(resolve(raw).is_err());
        let raw: Raw = toml::from_str("exe = \"x\"\nproperties = [\"sockets\"]").unwrap();
        assert!(resolve(raw).is_err());
        let raw: Raw = toml::from_str("exe = \"x\"\nmode = \"solaris\"").unwrap();
        assert!(resolve(raw).unwrap().solaris);
    }

    #[tokio::test]
    async fn finds_a_child_by_pattern_and_pid_file() {
        let marker = format!("procstat-unit-{}", std::process::id());
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("sleep 30; : {marker}"))
            .spawn()
            .unwrap();
        // Until the shell's child has exec'd `sleep`, that child is a copy of the shell and
        // matches the pattern too: wait for the exec, so that exactly one process matches.
        let children = format!("/proc/{0}/task/{0}/children", child.id());
        let settled = std::time::Instant::now();
        loop {
            let kids = std::fs::read_to_string(&children).unwrap_or_default();
            let exec_done = kids.split_whitespace().next().is_some_and(|k| {
                std::fs::read(format!("/proc/{k}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\0"))
            });
            if exec_done {
                break;
            }
            assert!(
                settled.elapsed() < Duration::from_secs(10),
                "sleep never started"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        let raw: Raw =
            toml::from_str(&format!("pattern = \"sh -c sleep 30; : {marker}\"")).unwrap();
        let mut p = Procstat::new(resolve(raw).unwrap());
        let mut t = TestAcc::new();
        p.gather(&mut t.acc).await.unwrap();
        p.gather(&mut t.acc).await.unwrap();
        let lines = t.lines();
        let procs: Vec<_> = lines
            .iter()
            .filter(|l| l.starts_with("procstat,"))
            .collect();
        assert_eq!(procs.len(), 2, "{lines:?}");
        assert!(
            procs[0].contains(&format!("pid={}i", child.id())),
            "{procs:?}"
        );
        assert!(procs[0].starts_with("procstat,process_name=sh,pattern="));
        assert!(!procs[0].contains("cpu_usage"));
        assert!(procs[1].contains("cpu_usage="));
        let lookup: Vec<_> = lines
            .iter()
            .filter(|l| l.starts_with("procstat_lookup,"))
            .collect();
        assert!(
            lookup[0].contains("pid_count=1i,running=1i,result_code=0i"),
            "{lookup:?}"
        );

        let dir = tempfile::tempdir().unwrap();
        let pf = dir.path().join("x.pid");
        std::fs::write(&pf, format!("{}\n", child.id())).unwrap();
        let raw: Raw = toml::from_str(&format!(
            "pid_file = {:?}\ntag_with = [\"pid\"]\nprefix = \"x\"",
            pf.display().to_string()
        ))
        .unwrap();
        let mut p = Procstat::new(resolve(raw).unwrap());
        p.gather(&mut t.acc).await.unwrap();
        let lines = t.lines();
        assert!(
            lines[0].contains(&format!(",pid={} ", child.id())),
            "{lines:?}"
        );
        assert!(lines[0].contains("x_num_threads=1i"), "{lines:?}");
        let _ = child.kill();
        let _ = child.wait();

        std::fs::remove_file(&pf).unwrap();
        p.gather(&mut t.acc).await.unwrap();
        let lines = t.lines();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("result=lookup_error"), "{lines:?}");
        assert_eq!(t.errors(), 1);
    }
}
