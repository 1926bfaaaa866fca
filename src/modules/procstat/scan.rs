//! One scan: find the processes, read each one's /proc files and build its `procstat` line.
//! Runs on the blocking pool (see the module doc).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::config::{Config, Lookup, Selector};
use super::proc::{
    LIMITS, SMAPS, Stat, Status, parse_io, parse_limits, parse_smaps_rollup, parse_stat,
    status_word,
};
use super::sockets::{Tables, Value, socket_inode};
use crate::modules::hostutil::{count_entries, read_bytes_into, read_into};
use crate::modules::procfs::{host, meminfo, stat};
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
    /// `/proc`, or where `HOST_PROC` puts it.
    pub(super) proc_root: String,
    /// The previous sample of each process, per filter (0 in old mode) as telegraf keeps them.
    prev: HashMap<(usize, i32), Prev>,
    pub(super) users: HashMap<u32, String>,
    /// Command lines the finder read to match a pattern in this scan, by pid: the process's
    /// line uses them instead of reading the file again a moment later.
    pub(super) cmdlines: HashMap<i32, String>,
    /// Scratch: `getdents64` results.
    dents: Vec<u8>,
    pub(super) users_loaded: bool,
    boot_time_s: u64,
    /// How long `systemctl` or `supervisorctl` may take: the scan's `timeout`.
    pub(super) exec_timeout: std::time::Duration,
}

/// The outcome of one scan, built on the blocking pool and added to the accumulator after.
pub(super) struct ScanResult {
    /// `procstat`, `procstat_socket` and `procstat_lookup` lines.
    pub(super) metrics: Vec<Metric>,
    /// Partial failures: (what, message), each counted and logged once per `what`.
    pub(super) errors: Vec<(String, String)>,
    /// Kinds of failure that did not happen this time (their next one is logged again).
    pub(super) cleared: Vec<String>,
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
    /// The sock_diag dumps, with the `sockets` property (when they could be taken).
    sockets: Option<Tables>,
}

fn key(prefix: &Option<String>, name: &'static str) -> Key {
    match prefix {
        Some(p) => Key::Owned(format!("{p}_{name}")),
        None => Key::Borrowed(name),
    }
}

/// The `procstat_lookup` line of a lookup that failed.
pub(super) fn lookup_error(ts: i64, tag: (&'static str, &str)) -> Metric {
    Metric::new("procstat_lookup", ts)
        .tag(tag.0, tag.1.to_owned())
        .tag("result", "lookup_error")
        .field("pid_count", 0u64)
        .field("running", 0u64)
        .field("result_code", 1u64)
}

fn lookup_success(ts: i64, pid_count: usize, running: usize) -> Metric {
    Metric::new("procstat_lookup", ts)
        .field("pid_count", pid_count as u64)
        .field("running", running as u64)
        .field("result_code", 0u64)
}

pub(super) fn scan(st: &mut ScanState, cfg: &Config, host: Host, ts: i64) -> ScanResult {
    if st.boot_time_s == 0 {
        st.boot_time_s = boot_time_s().unwrap_or(0);
        st.proc_root = host::path("/proc").into_owned();
    }
    st.users_loaded = false;
    st.cmdlines.clear();
    st.exec_timeout = cfg.timeout;
    let mut out = ScanResult {
        metrics: Vec::new(),
        errors: Vec::new(),
        cleared: Vec::new(),
    };
    let sockets = cfg.sockets.as_ref().and_then(|p| match Tables::load(p) {
        Ok(t) => {
            out.cleared.push("sockets".into());
            Some(t)
        }
        Err(e) => {
            out.errors.push(("sockets".into(), e));
            None
        }
    });
    let round = Round {
        ts,
        now: Instant::now(),
        mem_total: if cfg.memory { mem_total() } else { None },
        sockets,
    };
    let mut seen: HashSet<(usize, i32)> = HashSet::new();
    match &cfg.lookup {
        Lookup::Old {
            selector,
            pid_finder,
        } => {
            let groups = match st.find(selector, cfg.lookup.native()) {
                Ok(g) => g,
                Err(e) => {
                    out.errors.push(("lookup".into(), e));
                    out.metrics.push(lookup_error(ts, ("pid_finder", pid_finder)));
                    st.prev.retain(|_, _| false);
                    return out;
                }
            };
            out.cleared.push("lookup".into());
            let supervisor = matches!(selector, Selector::Supervisor(..));
            let mut count = 0;
            let mut tags: Vec<(&'static str, String)> = Vec::new();
            for g in &groups {
                for (k, v) in &g.tags {
                    tags.retain(|(kk, _)| kk != k);
                    tags.push((k, v.clone()));
                }
                if g.pids.is_empty() && supervisor {
                    continue;
                }
                count += g.pids.len();
                for &pid in &g.pids {
                    if let Some(ms) = st.process(cfg, host, &round, (0, pid), &g.tags) {
                        seen.insert((0, pid));
                        out.metrics.extend(ms);
                    }
                }
            }
            if let Selector::Supervisor(units, _) = selector {
                tags.retain(|(k, _)| *k != "supervisor_unit");
                tags.push(("supervisor_unit", units.join(";")));
            }
            let mut m = lookup_success(ts, count, seen.len())
                .tag("pid_finder", pid_finder.clone())
                .tag("result", "success");
            for (k, v) in tags {
                m = m.tag(k, v);
            }
            out.metrics.push(m);
        }
        Lookup::Filters(filters) => {
            for (fi, f) in filters.iter().enumerate() {
                let what = format!("filter {:?}", f.name);
                let groups = match st.apply_filter(f) {
                    Ok(g) => g,
                    Err(e) => {
                        out.errors
                            .push((what, format!("applying filter {:?} failed: {e}", f.name)));
                        out.metrics.push(lookup_error(ts, ("filter", &f.name)));
                        continue;
                    }
                };
                out.cleared.push(what);
                let mut count = 0;
                let mut running = HashSet::new();
                for g in &groups {
                    count += g.pids.len();
                    let mut tags = g.tags.clone();
                    tags.push(("filter", f.name.clone()));
                    if cfg.tags.level {
                        tags.push(("level", g.level.to_string()));
                    }
                    for &pid in &g.pids {
                        if let Some(ms) = st.process(cfg, host, &round, (fi, pid), &tags) {
                            running.insert(pid);
                            seen.insert((fi, pid));
                            out.metrics.extend(ms);
                        }
                    }
                    if cfg.tags.level {
                        out.metrics.push(
                            lookup_success(ts, g.pids.len(), running.len())
                                .field("level", u64::from(g.level))
                                .tag("filter", f.name.clone())
                                .tag("result", "success"),
                        );
                    }
                }
                out.metrics.push(
                    lookup_success(ts, count, running.len())
                        .tag("filter", f.name.clone())
                        .tag("result", "success"),
                );
            }
        }
    }
    st.prev.retain(|k, _| seen.contains(k));
    out
}

/// `btime` of /proc/stat: boot time in seconds since the epoch.
fn boot_time_s() -> Option<u64> {
    std::fs::read_to_string(host::path(stat::PATH).as_ref())
        .ok()
        .and_then(|s| stat::parse(&s, None).boot_time)
}

/// MemTotal of /proc/meminfo in bytes.
fn mem_total() -> Option<u64> {
    std::fs::read_to_string(host::path(meminfo::PATH).as_ref())
        .ok()
        .and_then(|t| meminfo::value(&t, "MemTotal"))
}

/// The kernel truncates names to 15 bytes; like gopsutil, take the full one from argv[0].
pub(super) fn full_name(comm: String, cmdline: &str) -> String {
    if comm.len() < 15 {
        return comm;
    }
    cmdline
        .split(' ')
        .next()
        .and_then(|a0| a0.rsplit('/').next())
        .filter(|b| b.starts_with(&comm))
        .map(str::to_owned)
        .unwrap_or(comm)
}

impl ScanState {
    /// The lines of one process (`procstat`, then its `procstat_socket` lines), `None` if it
    /// exited since it was found. `id`: (filter, pid), whose previous sample `cpu_usage` uses.
    fn process(
        &mut self,
        cfg: &Config,
        host: Host,
        round: &Round,
        id: (usize, i32),
        tags: &[(&'static str, String)],
    ) -> Option<Vec<Metric>> {
        let pid = id.1;
        self.set_path(pid, "stat");
        if read_bytes_into(&self.path, &mut self.bytes).is_err() {
            return None; // exited since it was found
        }
        let (comm, s) = parse_stat(&self.bytes)?;
        let comm = String::from_utf8_lossy(comm).into_owned();
        if comm.is_empty() {
            return None; // as telegraf: no name, probably no process
        }
        let cmdline = match self.cmdlines.remove(&pid) {
            Some(c) => c,
            None if self.read_cmdline(pid) => String::from_utf8_lossy(&self.cmdline).into_owned(),
            None => String::new(),
        };
        let name = match &cfg.process_name {
            Some(n) => n.clone(),
            None => full_name(comm, &cmdline),
        };
        let status = self.read_status(pid);
        let user = status.ruid.map(|u| self.user_name(u));
        let p = &cfg.prefix;
        let mut m = Metric::new("procstat", round.ts);
        // Every field this line can have, allocated once (growing the vector field by field
        // reallocated it four times per process).
        m.tags.reserve_exact(tags.len() + 6);
        m.fields.reserve_exact(
            21 + 4 * usize::from(cfg.cpu)
                + 3 * usize::from(cfg.memory)
                + 9 * usize::from(cfg.mmap)
                + 32 * usize::from(cfg.limits),
        );
        let mut m = m.tag("process_name", name);
        for (k, v) in tags {
            m = m.tag(*k, v.clone());
        }
        let m = identity(m, cfg, pid, &s, cmdline, user);
        let mut m = counters(m, p, &s, &status);
        let (fds, inodes) = self.fds(pid, round.sockets.is_some());
        m = m.field_opt(key(p, "num_fds"), fds);
        m = self.io(m, p, pid);
        let created_s = self.boot_time_s as f64 + s.starttime as f64 / host.hz;
        m = m.field(key(p, "created_at"), (created_s * 1e9) as i64);
        if cfg.cpu {
            m = self.cpu(m, cfg, host, round.now, id, &s);
        }
        if cfg.memory {
            m = memory(m, p, host, &s, &status, round.mem_total);
        }
        if cfg.mmap {
            m = self.mmap(m, p, pid, &s);
        }
        if cfg.limits {
            m = self.limits(m, p, host, pid, &s, &status, fds);
        }
        let mut out = vec![m];
        if let Some(t) = &round.sockets {
            out.extend(socket_lines(cfg, &out[0], t.fields(pid, &inodes)));
        }
        Some(out)
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

    /// The number of open descriptors and, when `sockets`, the inodes of those that are
    /// sockets (one readlink per descriptor, only then).
    fn fds(&mut self, pid: i32, sockets: bool) -> (Option<u64>, Vec<u32>) {
        self.set_path(pid, "fd");
        if !sockets {
            return (count_entries(&self.path, &mut self.dents).ok(), Vec::new());
        }
        let Ok(d) = std::fs::read_dir(&self.path) else {
            return (None, Vec::new());
        };
        let mut n = 0;
        let mut inodes = Vec::new();
        for e in d.flatten() {
            n += 1;
            if let Ok(target) = std::fs::read_link(e.path())
                && let Some(ino) = socket_inode(target.as_os_str().as_encoded_bytes())
            {
                inodes.push(ino);
            }
        }
        (Some(n), inodes)
    }

    /// The `/proc/<pid>/io` counters (left out when unreadable).
    fn io(&mut self, mut m: Metric, p: &Option<String>, pid: i32) -> Metric {
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
        id: (usize, i32),
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
            id,
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

    /// The `limits` property: `/proc/<pid>/limits` and what the process uses of each, as
    /// gopsutil measures it (the whole set is left out when the file is unreadable).
    #[allow(clippy::too_many_arguments)]
    fn limits(
        &mut self,
        mut m: Metric,
        p: &Option<String>,
        host: Host,
        pid: i32,
        s: &Stat,
        status: &Status,
        fds: Option<u64>,
    ) -> Metric {
        self.set_path(pid, "limits");
        if read_into(&self.path, &mut self.text).is_err() {
            return m;
        }
        let limits = parse_limits(&self.text);
        let cpu_s = ((s.utime + s.stime) as f64 / host.hz) as u64;
        // gopsutil's "nice" is getpriority(2)'s raw value, 20 - nice; its real-time priority
        // is derived from the kernel's priority field.
        let nice = u64::try_from(20 - s.nice).unwrap_or(0);
        let rt = if s.priority < 0 { (-s.priority - 1) as u64 } else { 0 };
        let used = [
            Some(cpu_s),
            status.vm_data,
            status.vm_stk,
            status.vm_rss,
            fds,
            status.vm_lck,
            status.vm_size,
            None,
            status.shd_pnd,
            Some(nice),
            Some(rt),
        ];
        for (i, (_, name)) in LIMITS.iter().enumerate() {
            let Some((soft, hard)) = limits[i] else {
                continue;
            };
            m = m
                .field(Key::Owned(format!("{}rlimit_{name}_soft", pfx(p))), soft)
                .field(Key::Owned(format!("{}rlimit_{name}_hard", pfx(p))), hard);
            if *name != "file_locks" {
                m = m.field(key(p, name), used[i].unwrap_or(0));
            }
        }
        m
    }
}

fn pfx(p: &Option<String>) -> String {
    p.as_ref().map(|p| format!("{p}_")).unwrap_or_default()
}

/// The `procstat_socket` lines of a process: its line's tags, then the socket's values as
/// tags or fields (`tag_with`).
fn socket_lines(
    cfg: &Config,
    procstat: &Metric,
    socks: Vec<Vec<(&'static str, Value)>>,
) -> Vec<Metric> {
    let t = &cfg.tags;
    let as_tag = |k: &str| match k {
        "protocol" => t.protocol,
        "state" => t.state,
        "src" => t.src,
        "src_port" => t.src_port,
        "dest" => t.dest,
        "dest_port" => t.dest_port,
        "name" => t.name,
        _ => false,
    };
    socks
        .into_iter()
        .map(|fields| {
            let mut m = Metric::new("procstat_socket", procstat.timestamp_ns);
            m.tags = procstat.tags.clone();
            for (k, v) in fields {
                m = match (as_tag(k), v) {
                    (true, Value::Str(s)) => m.tag(k, s),
                    (true, Value::Int(n)) => m.tag(k, n.to_string()),
                    (false, Value::Str(s)) => m.field(k, s),
                    (false, Value::Int(n)) => m.field(k, n),
                };
            }
            m
        })
        .collect()
}

/// pid, ppid, cmdline, status and user, each as a tag or a field (`tag_with`); `pid` is never
/// prefixed (as telegraf).
fn identity(
    mut m: Metric,
    cfg: &Config,
    pid: i32,
    s: &Stat,
    cmdline: String,
    user: Option<String>,
) -> Metric {
    let p = &cfg.prefix;
    let t = &cfg.tags;
    match t.cmdline {
        true => m = m.tag("cmdline", cmdline),
        false => m = m.field(key(p, "cmdline"), cmdline),
    }
    match t.pid {
        true => m = m.tag("pid", pid.to_string()),
        false => m = m.field("pid", i64::from(pid)),
    }
    match t.ppid {
        true => m = m.tag("ppid", s.ppid.to_string()),
        false => m = m.field(key(p, "ppid"), s.ppid),
    }
    match t.status {
        true => m = m.tag("status", status_word(s.state)),
        false => m = m.field(key(p, "status"), status_word(s.state)),
    }
    if let Some(u) = user {
        match t.user {
            true => m = m.tag("user", u),
            false => m = m.field(key(p, "user"), u),
        }
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
        .field_opt(
            key(p, "memory_usage"),
            mem_total
                .filter(|t| *t > 0)
                .map(|t| 100.0 * rss as f64 / t as f64),
        )
}
