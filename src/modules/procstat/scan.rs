//! One scan: find the processes, read each one's /proc files and build its `procstat` line.
//! Runs on the blocking pool (see the module doc).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::config::Config;
use super::proc::{SMAPS, Stat, Status, parse_io, parse_smaps_rollup, parse_stat, status_word};
use crate::modules::hostutil::{read_bytes_into, read_into};
use crate::modules::procfs::{meminfo, stat};
use crate::output::{Key, Metric};

struct Prev {
    ticks: u64,
    starttime: u64,
    at: Instant,
}

/// Everything kept between scans (runs on the blocking pool).
#[derive(Default)]
pub(super) struct ScanState {
    pub(super) bytes: Vec<u8>,
    pub(super) cmdline: Vec<u8>,
    pub(super) text: String,
    pub(super) path: String,
    prev: HashMap<i32, Prev>,
    pub(super) users: HashMap<u32, String>,
    pub(super) users_loaded: bool,
    boot_time_s: u64,
}

/// The outcome of one scan, built on the blocking pool and added to the accumulator after.
pub(super) struct ScanResult {
    pub(super) metrics: Vec<Metric>,
    pub(super) lookup_error: Option<String>,
    pub(super) pid_count: usize,
}

/// Constants read once per module instance.
#[derive(Clone, Copy)]
pub(super) struct Host {
    pub(super) hz: f64,
    pub(super) page: u64,
    pub(super) ncpu: f64,
}

/// What every process line of one scan shares.
struct Round {
    ts: i64,
    now: Instant,
    /// MemTotal in bytes, when `memory` is gathered.
    mem_total: Option<u64>,
}

fn key(prefix: &Option<String>, name: &'static str) -> Key {
    match prefix {
        Some(p) => Key::Owned(format!("{p}_{name}")),
        None => Key::Borrowed(name),
    }
}

pub(super) fn scan(st: &mut ScanState, cfg: &Config, host: Host, ts: i64) -> ScanResult {
    if st.boot_time_s == 0 {
        st.boot_time_s = boot_time_s().unwrap_or(0);
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
    let round = Round {
        ts,
        now: Instant::now(),
        mem_total: if cfg.memory { mem_total() } else { None },
    };
    let mut metrics = Vec::with_capacity(pids.len());
    let mut alive = HashSet::with_capacity(pids.len());
    for &pid in &pids {
        if let Some(m) = st.process(cfg, host, &round, pid) {
            alive.insert(pid);
            metrics.push(m);
        }
    }
    st.prev.retain(|pid, _| alive.contains(pid));
    ScanResult {
        metrics,
        lookup_error: None,
        pid_count: pids.len(),
    }
}

/// `btime` of /proc/stat: boot time in seconds since the epoch.
fn boot_time_s() -> Option<u64> {
    std::fs::read_to_string(stat::PATH)
        .ok()
        .and_then(|s| stat::parse(&s, None).boot_time)
}

/// MemTotal of /proc/meminfo in bytes.
fn mem_total() -> Option<u64> {
    std::fs::read_to_string(meminfo::PATH)
        .ok()
        .and_then(|t| meminfo::value(&t, "MemTotal"))
}

/// The process name: the `process_name` option, else the kernel's name of it. The kernel
/// truncates names to 15 bytes; like gopsutil, take the full one from argv[0].
fn process_name(cfg: &Config, comm: String, cmdline: &str) -> String {
    match &cfg.process_name {
        Some(n) => n.clone(),
        None if comm.len() >= 15 => cmdline
            .split(' ')
            .next()
            .and_then(|a0| a0.rsplit('/').next())
            .filter(|b| b.starts_with(&comm))
            .map(str::to_owned)
            .unwrap_or(comm),
        None => comm,
    }
}

impl ScanState {
    /// The line of one process, `None` if it exited since it was found.
    fn process(&mut self, cfg: &Config, host: Host, round: &Round, pid: i32) -> Option<Metric> {
        self.set_path(pid, "stat");
        if read_bytes_into(&self.path, &mut self.bytes).is_err() {
            return None; // exited since it was found
        }
        let (comm, s) = parse_stat(&self.bytes)?;
        let comm = String::from_utf8_lossy(comm).into_owned();
        // Read again even for `pattern`: the scan may be seconds after the match.
        let cmdline = if self.read_cmdline(pid) {
            String::from_utf8_lossy(&self.cmdline).into_owned()
        } else {
            String::new()
        };
        let name = process_name(cfg, comm, &cmdline);
        let status = self.read_status(pid);
        let user = status.euid.map(|u| self.user_name(u));
        let p = &cfg.prefix;
        let m = identity(cfg, round.ts, pid, name, &s, cmdline, user);
        let mut m = counters(m, p, &s, &status);
        m = self.fds_and_io(m, p, pid);
        let created_s = self.boot_time_s as f64 + s.starttime as f64 / host.hz;
        m = m.field(key(p, "created_at"), (created_s * 1e9) as i64);
        if cfg.cpu {
            m = self.cpu(m, cfg, host, round.now, pid, &s);
        }
        if cfg.memory {
            m = memory(m, p, host, &s, &status, round.mem_total);
        }
        if cfg.mmap {
            m = self.mmap(m, p, pid, &s);
        }
        Some(m)
    }

    /// `/proc/<pid>/status`, or all fields absent if unreadable.
    fn read_status(&mut self, pid: i32) -> Status {
        self.set_path(pid, "status");
        if read_into(&self.path, &mut self.text).is_ok() {
            super::proc::parse_status(&self.text)
        } else {
            Status::default()
        }
    }

    /// `num_fds` and the `/proc/<pid>/io` counters (left out when unreadable).
    fn fds_and_io(&mut self, mut m: Metric, p: &Option<String>, pid: i32) -> Metric {
        self.set_path(pid, "fd");
        if let Ok(d) = std::fs::read_dir(&self.path) {
            m = m.field(key(p, "num_fds"), d.count() as u64);
        }
        self.set_path(pid, "io");
        if read_into(&self.path, &mut self.text).is_ok() {
            let io = parse_io(&self.text);
            m = m
                .field_opt(key(p, "read_bytes"), io[0])
                .field_opt(key(p, "write_bytes"), io[1])
                .field_opt(key(p, "read_count"), io[2])
                .field_opt(key(p, "write_count"), io[3])
                .field_opt(key(p, "disk_read_bytes"), io[4])
                .field_opt(key(p, "disk_write_bytes"), io[5]);
        }
        m
    }

    /// The `cpu` property; `cpu_usage` against the previous scan that saw the same process.
    fn cpu(
        &mut self,
        mut m: Metric,
        cfg: &Config,
        host: Host,
        now: Instant,
        pid: i32,
        s: &Stat,
    ) -> Metric {
        let p = &cfg.prefix;
        m = m
            .field(key(p, "cpu_time_user"), s.utime as f64 / host.hz)
            .field(key(p, "cpu_time_system"), s.stime as f64 / host.hz)
            .field_opt(
                key(p, "cpu_time_iowait"),
                s.blkio_ticks.map(|t| t as f64 / host.hz),
            );
        let ticks = s.utime + s.stime;
        let prev = self.prev.insert(
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
                let mut pct = 100.0 * (ticks.saturating_sub(prev.ticks) as f64 / host.hz) / secs;
                if cfg.solaris {
                    pct /= host.ncpu;
                }
                m = m.field(key(p, "cpu_usage"), pct);
            }
        }
        m
    }

    /// The `mmap` property, from `/proc/<pid>/smaps_rollup` (left out when unreadable).
    fn mmap(&mut self, mut m: Metric, p: &Option<String>, pid: i32, s: &Stat) -> Metric {
        self.set_path(pid, "smaps_rollup");
        if read_into(&self.path, &mut self.text).is_ok() {
            let v = parse_smaps_rollup(&self.text);
            m = m.field(key(p, "memory_size"), s.vsize);
            for (i, (_, name)) in SMAPS.iter().enumerate() {
                m = m.field_opt(key(p, name), v[i]);
            }
        }
        m
    }
}

/// The tags, then pid, ppid, cmdline, status and user, each as a tag or a field (`tag_with`).
fn identity(
    cfg: &Config,
    ts: i64,
    pid: i32,
    name: String,
    s: &Stat,
    cmdline: String,
    user: Option<String>,
) -> Metric {
    let p = &cfg.prefix;
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
    m
}

/// Threads, context switches and page faults.
fn counters(m: Metric, p: &Option<String>, s: &Stat, status: &Status) -> Metric {
    m.field(key(p, "num_threads"), s.num_threads)
        .field_opt(key(p, "voluntary_context_switches"), status.voluntary)
        .field_opt(key(p, "involuntary_context_switches"), status.involuntary)
        .field(key(p, "minor_faults"), s.minflt)
        .field(key(p, "major_faults"), s.majflt)
        .field(key(p, "child_minor_faults"), s.cminflt)
        .field(key(p, "child_major_faults"), s.cmajflt)
}

/// The `memory` property.
fn memory(
    m: Metric,
    p: &Option<String>,
    host: Host,
    s: &Stat,
    status: &Status,
    mem_total: Option<u64>,
) -> Metric {
    // VmRSS is exact; the `stat` figure comes from per-CPU counters that may lag by
    // hundreds of KiB on recent kernels (it is what `ps` disagrees with).
    let rss = status.vm_rss.unwrap_or(s.rss_pages * host.page);
    m.field(key(p, "memory_rss"), rss)
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
        )
}
