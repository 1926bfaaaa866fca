//! `system`: load averages, CPU counts, logged-in users and uptime, as telegraf's `system` input.
//! `include = ["legacy"]` (the default) writes telegraf's three lines: a gauge line (`load1`,
//! `load5`, `load15`, `n_cpus`, `n_physical_cpus`, `n_users`, `n_unique_users`), an `uptime`
//! line and an `uptime_format` line. The other `include` values (`cpus`, `load`, `users`,
//! `uptime`, `os`, `dmi`) put their fields on one more line; `os` (release files and `uname`)
//! and `dmi` (`/sys/class/dmi/id`) are read again only after `os_cache_ttl`/`dmi_cache_ttl`.
//!
//! The files read (`/proc/loadavg`, `/proc/uptime`, `/sys/devices/system/cpu/online`, utmp) are
//! kernel- or tmpfs-backed and answer in microseconds, so they are read inline rather than on the
//! blocking pool; the /proc and /sys files stay open between gathers and utmp is re-read only
//! when it changes.

pub(crate) mod platform;

use std::time::{Duration, Instant};

use serde::Deserialize;

use super::GatherError;
use super::hostutil::ProcFile;
use super::procfs::host;
use crate::options::{ConfigDuration, SpanError};
use crate::output::{Accumulator, Key, Metric, now_ns};

/// `[[inputs.system]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// What to write: `"legacy"` (default: telegraf's three lines, the shape dashboards use),
    /// or any of `"cpus"` (`n_cpus`, `n_physical_cpus`), `"load"` (`load1/5/15`), `"users"`
    /// (`n_users`, `n_unique_users`), `"uptime"`, `"os"` (`os`, `arch`, `platform`,
    /// `platform_family`, `platform_version`, `kernel_version`) and `"dmi"` (BIOS, board,
    /// chassis and product strings), all on one line. `[]` means `["legacy"]`.
    include: Option<toml::Spanned<Vec<String>>>,
    /// How long the `os` fields are reused before the release files and `uname` are read
    /// again. Default 8h; 0 reads them every gather.
    os_cache_ttl: Option<ConfigDuration>,
    /// How long the `dmi` fields are reused. Default 8h; 0 reads them every gather.
    dmi_cache_ttl: Option<ConfigDuration>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Config {
    pub legacy: bool,
    pub cpus: bool,
    pub load: bool,
    pub users: bool,
    pub uptime: bool,
    pub os: bool,
    pub dmi: bool,
    pub os_cache_ttl: Duration,
    pub dmi_cache_ttl: Duration,
}

/// telegraf's default for both caches.
const CACHE_TTL: Duration = Duration::from_secs(8 * 3600);

pub(crate) fn resolve(raw: Raw) -> Result<Config, SpanError> {
    let mut c = Config {
        os_cache_ttl: raw.os_cache_ttl.map_or(CACHE_TTL, ConfigDuration::get),
        dmi_cache_ttl: raw.dmi_cache_ttl.map_or(CACHE_TTL, ConfigDuration::get),
        ..Default::default()
    };
    let Some(inc) = raw.include.filter(|i| !i.get_ref().is_empty()) else {
        c.legacy = true;
        return Ok(c);
    };
    for item in inc.get_ref() {
        let flag = match item.as_str() {
            "legacy" => &mut c.legacy,
            "cpus" => &mut c.cpus,
            "load" => &mut c.load,
            "users" => &mut c.users,
            "uptime" => &mut c.uptime,
            "os" => &mut c.os,
            "dmi" => &mut c.dmi,
            other => {
                return Err(SpanError::new(
                    inc.span(),
                    "include",
                    format!(
                        "invalid 'include' option {other:?} (legacy, cpus, load, users, uptime, os, dmi)"
                    ),
                ));
            }
        };
        *flag = true;
    }
    Ok(c)
}

/// Fields read again only when their time-to-live has passed.
struct Cached {
    ttl: Duration,
    at: Option<Instant>,
    fields: Vec<(Key, String)>,
}

impl Cached {
    fn new(ttl: Duration) -> Self {
        Cached {
            ttl,
            at: None,
            fields: Vec::new(),
        }
    }

    fn get(&mut self, read: impl FnOnce() -> Vec<(Key, String)>) -> &[(Key, String)] {
        if self.at.is_none_or(|t| t.elapsed() >= self.ttl) {
            self.fields = read();
            self.at = Some(Instant::now());
        }
        &self.fields
    }
}

pub(crate) struct System {
    config: Config,
    loadavg: ProcFile,
    uptime: ProcFile,
    online: ProcFile,
    buf: String,
    utmp: Utmp,
    /// `n_physical_cpus` and the online-CPU list it was counted for (CPUs come and go only
    /// with hot-plugging, which changes that list).
    physical: Option<(String, Option<u64>)>,
    os: Cached,
    dmi: Cached,
}

/// glibc's `struct utmp` on Linux (x86_64, aarch64): 384 bytes, `ut_type` (i16) at 0, `ut_user`
/// (32 bytes) at 44. `USER_PROCESS` = 7.
const UTMP_RECORD: usize = 384;
const UTMP_USER_OFFSET: usize = 44;
const UTMP_USER_LEN: usize = 32;
const USER_PROCESS: i16 = 7;

/// The user counts of utmp, re-read only when the file changes: logins are rare and a `stat`
/// costs a fraction of an open, read and close per gather.
struct Utmp {
    path: String,
    /// The file counted, and its (sessions, unique users).
    seen: Option<(FileKey, (i64, i64))>,
}

/// Inode, size and mtime (ns) of a file: any login or logout changes at least the mtime.
type FileKey = (u64, u64, i128);

impl Utmp {
    /// `None` when there is no utmp (containers, minimal hosts): the fields are omitted then.
    fn counts(&mut self) -> Option<(i64, i64)> {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(&self.path) else {
            self.seen = None;
            return None;
        };
        let key = (
            meta.ino(),
            meta.size(),
            i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
        );
        if let Some((k, counts)) = self.seen
            && k == key
        {
            return Some(counts);
        }
        let data = std::fs::read(&self.path).ok()?;
        let counts = count_users(&data);
        self.seen = Some((key, counts));
        Some(counts)
    }
}

impl System {
    pub(crate) fn new(config: Config) -> Self {
        System {
            os: Cached::new(config.os_cache_ttl),
            dmi: Cached::new(config.dmi_cache_ttl),
            config,
            physical: None,
            loadavg: ProcFile::new("/proc/loadavg"),
            uptime: ProcFile::new("/proc/uptime"),
            online: ProcFile::new("/sys/devices/system/cpu/online"),
            buf: String::with_capacity(128),
            utmp: Utmp {
                path: super::procfs::host::path("/var/run/utmp").into_owned(),
                seen: None,
            },
        }
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        let c = self.config.clone();
        if c.legacy {
            let (l1, l5, l15) = self.load()?;
            let (n_cpus, n_physical) = self.cpus();
            let mut gauge = Metric::new("system", ts)
                .field("load1", l1)
                .field("load5", l5)
                .field("load15", l15)
                .field_opt("n_cpus", n_cpus)
                .field_opt("n_physical_cpus", n_physical);
            if let Some((users, unique)) = self.utmp.counts() {
                gauge = gauge
                    .field("n_users", users)
                    .field("n_unique_users", unique);
            }
            acc.add(gauge);
            let secs = self.uptime()?;
            acc.add(Metric::new("system", ts).field("uptime", secs));
            acc.add(Metric::new("system", ts).field("uptime_format", format_uptime(secs)));
        }
        let mut m = Metric::new("system", ts);
        if c.load {
            match self.load() {
                Ok((l1, l5, l15)) => {
                    m = m.field("load1", l1).field("load5", l5).field("load15", l15);
                }
                Err(e) => acc.partial_error("load", &e),
            }
        }
        if c.users
            && let Some((users, unique)) = self.utmp.counts()
        {
            m = m.field("n_users", users).field("n_unique_users", unique);
        }
        if c.cpus {
            let (n_cpus, n_physical) = self.cpus();
            m = m
                .field_opt("n_cpus", n_cpus)
                .field_opt("n_physical_cpus", n_physical);
        }
        if c.uptime {
            match self.uptime() {
                Ok(secs) => m = m.field("uptime", secs),
                Err(e) => acc.partial_error("uptime", &e),
            }
        }
        if c.os {
            m = platform::add(m, self.os.get(platform::os_fields));
        }
        if c.dmi {
            m = platform::add(m, self.dmi.get(platform::dmi_fields));
        }
        if !m.fields.is_empty() {
            acc.add(m);
        }
        Ok(())
    }

    fn load(&mut self) -> Result<(f64, f64, f64), GatherError> {
        self.loadavg.read_required(&mut self.buf)?;
        parse_loadavg(&self.buf).ok_or_else(|| {
            GatherError::Failed(format!("/proc/loadavg: unexpected content {:?}", self.buf))
        })
    }

    fn uptime(&mut self) -> Result<u64, GatherError> {
        self.uptime.read_required(&mut self.buf)?;
        parse_uptime(&self.buf).ok_or_else(|| {
            GatherError::Failed(format!("/proc/uptime: unexpected content {:?}", self.buf))
        })
    }

    /// (`n_cpus`, `n_physical_cpus`).
    fn cpus(&mut self) -> (Option<u64>, Option<u64>) {
        let online = self.online.read(&mut self.buf).is_ok();
        let n_cpus = match online {
            true => count_cpu_list(&self.buf),
            false => std::thread::available_parallelism()
                .ok()
                .map(|n| n.get() as u64),
        };
        let key = if online { self.buf.trim() } else { "" };
        let physical = match &self.physical {
            Some((k, n)) if k == key => *n,
            _ => {
                let n = physical_cpus();
                self.physical = Some((key.to_owned(), n));
                n
            }
        };
        (n_cpus, physical)
    }
}

/// Physical cores as gopsutil counts them: the distinct sibling lists of
/// `/sys/devices/system/cpu/cpuN/topology/core_cpus_list` (older kernels:
/// `thread_siblings_list`), else the `cpu cores` of each `physical id` in `/proc/cpuinfo`.
fn physical_cpus() -> Option<u64> {
    let dir = host::path("/sys/devices/system/cpu").into_owned();
    let cpus: Vec<String> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| {
                    n.strip_prefix("cpu")
                        .is_some_and(|d| d.starts_with(|c: char| c.is_ascii_digit()))
                })
                .collect()
        })
        .unwrap_or_default();
    for file in ["core_cpus_list", "thread_siblings_list"] {
        let mut lists = std::collections::HashSet::new();
        for cpu in &cpus {
            if let Ok(s) = std::fs::read_to_string(format!("{dir}/{cpu}/topology/{file}"))
                && s.lines().count() == 1
            {
                lists.insert(s.trim_end_matches('\n').to_owned());
            }
        }
        if !lists.is_empty() {
            return Some(lists.len() as u64);
        }
    }
    let cpuinfo = std::fs::read_to_string(&*host::path("/proc/cpuinfo")).ok()?;
    Some(cores_from_cpuinfo(&cpuinfo))
}

/// The sum of `cpu cores` over the distinct `physical id`s of a cpuinfo text.
pub(crate) fn cores_from_cpuinfo(text: &str) -> u64 {
    let mut by_package = std::collections::HashMap::new();
    let (mut id, mut cores) = (None, None);
    for line in text.lines().chain(std::iter::once("")) {
        let line = line.trim();
        if line.is_empty() {
            if let (Some(i), Some(c)) = (id.take(), cores.take()) {
                by_package.insert(i, c);
            }
            continue;
        }
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim().parse::<u64>().ok();
        match k.trim().to_lowercase().as_str() {
            "physical id" => id = v,
            "cpu cores" => cores = v,
            _ => {}
        }
    }
    by_package.values().sum()
}

pub(crate) fn parse_loadavg(s: &str) -> Option<(f64, f64, f64)> {
    let mut it = s.split_ascii_whitespace().map(|v| v.parse::<f64>().ok());
    Some((it.next()??, it.next()??, it.next()??))
}

/// Whole seconds since boot, from the first number in `/proc/uptime`.
pub(crate) fn parse_uptime(s: &str) -> Option<u64> {
    let first = s.split_ascii_whitespace().next()?;
    let secs = first.split('.').next()?;
    secs.parse().ok()
}

/// Counts CPUs in a list like `0-3,5,7-8` (`/sys/devices/system/cpu/online`).
pub(crate) fn count_cpu_list(s: &str) -> Option<u64> {
    let mut n = 0u64;
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        n += match part.split_once('-') {
            Some((a, b)) => b.parse::<u64>().ok()?.checked_sub(a.parse::<u64>().ok()?)? + 1,
            None => {
                part.parse::<u64>().ok()?;
                1
            }
        };
    }
    Some(n)
}

/// Sessions and distinct user names among `USER_PROCESS` records of a utmp file.
pub(crate) fn count_users(data: &[u8]) -> (i64, i64) {
    let mut names: Vec<&[u8]> = Vec::new();
    let mut sessions = 0;
    for rec in data.chunks_exact(UTMP_RECORD) {
        let ut_type = i16::from_ne_bytes([rec[0], rec[1]]);
        if ut_type != USER_PROCESS {
            continue;
        }
        sessions += 1;
        let raw = &rec[UTMP_USER_OFFSET..UTMP_USER_OFFSET + UTMP_USER_LEN];
        let name = &raw[..raw.iter().position(|&b| b == 0).unwrap_or(raw.len())];
        if !names.contains(&name) {
            names.push(name);
        }
    }
    (sessions, names.len() as i64)
}

/// Telegraf's `uptime_format`: `"14 days, 11:07"`, `"1 day,  2:03"`, `" 5:04"`.
pub(crate) fn format_uptime(secs: u64) -> String {
    let days = secs / 86_400;
    let hours = (secs / 3600) % 24;
    let minutes = (secs / 60) % 60;
    let mut s = String::new();
    if days > 0 {
        s.push_str(&format!("{days} day{}, ", if days > 1 { "s" } else { "" }));
    }
    s.push_str(&format!("{hours:>2}:{minutes:02}"));
    s
}

super::ticked_input!(System, super::Shape::Local);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loadavg_fixture() {
        assert_eq!(
            parse_loadavg("0.52 0.58 0.59 2/618 12345\n"),
            Some((0.52, 0.58, 0.59))
        );
        assert_eq!(parse_loadavg("garbage"), None);
    }

    #[test]
    fn uptime_fixture() {
        assert_eq!(parse_uptime("350735.47 234388.90\n"), Some(350_735));
        assert_eq!(parse_uptime(""), None);
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(count_cpu_list("0-1\n"), Some(2));
        assert_eq!(count_cpu_list("0-3,5,7-8"), Some(7));
        assert_eq!(count_cpu_list("0"), Some(1));
        assert_eq!(count_cpu_list("x"), None);
    }

    #[test]
    fn uptime_format_matches_telegraf() {
        assert_eq!(
            format_uptime(14 * 86_400 + 11 * 3600 + 7 * 60 + 5),
            "14 days, 11:07"
        );
        assert_eq!(format_uptime(86_400 + 2 * 3600 + 3 * 60), "1 day,  2:03");
        assert_eq!(format_uptime(5 * 3600 + 4 * 60), " 5:04");
    }

    #[test]
    fn physical_cores() {
        let two_packages = "processor : 0\nphysical id : 0\ncpu cores : 4\n\n\
processor : 1\nphysical id : 0\ncpu cores : 4\n\nprocessor : 2\nphysical id : 1\ncpu cores : 4\n";
        assert_eq!(cores_from_cpuinfo(two_packages), 8);
        assert_eq!(cores_from_cpuinfo("processor : 0\n"), 0);
        let n = physical_cpus().unwrap();
        let logical = std::thread::available_parallelism().unwrap().get() as u64;
        assert!(n >= 1 && n <= logical, "{n} of {logical}");
    }

    #[test]
    fn include_values() {
        let r = |s: &str| resolve(toml::from_str::<Raw>(s).unwrap());
        assert!(r("").unwrap().legacy);
        assert!(r("include = []").unwrap().legacy);
        let c = r(r#"include = ["cpus", "os", "dmi"]
os_cache_ttl = "0s""#)
        .unwrap();
        assert!(!c.legacy && c.cpus && c.os && c.dmi && !c.load);
        assert_eq!((c.os_cache_ttl, c.dmi_cache_ttl), (Duration::ZERO, CACHE_TTL));
        let e = r(r#"include = ["bogus"]"#).unwrap_err();
        assert!(format!("{e:?}").contains("invalid 'include' option"), "{e:?}");
    }

    #[test]
    fn cache_ttl() {
        let mut c = Cached::new(Duration::from_secs(3600));
        let mut reads = 0;
        for _ in 0..3 {
            c.get(|| {
                reads += 1;
                vec![]
            });
        }
        assert_eq!(reads, 1);
        let mut c = Cached::new(Duration::ZERO);
        for _ in 0..3 {
            c.get(|| {
                reads += 1;
                vec![]
            });
        }
        assert_eq!(reads, 4);
    }

    #[test]
    fn utmp_records() {
        let mut data = vec![0u8; UTMP_RECORD * 4];
        let mut put = |i: usize, ty: i16, user: &str| {
            let rec = &mut data[i * UTMP_RECORD..(i + 1) * UTMP_RECORD];
            rec[..2].copy_from_slice(&ty.to_ne_bytes());
            rec[UTMP_USER_OFFSET..UTMP_USER_OFFSET + user.len()].copy_from_slice(user.as_bytes());
        };
        put(0, 2, "reboot");
        put(1, USER_PROCESS, "alice");
        put(2, USER_PROCESS, "alice");
        put(3, USER_PROCESS, "bob");
        assert_eq!(count_users(&data), (3, 2));
    }

    #[test]
    fn utmp_is_recounted_when_it_changes_and_absent_is_none() {
        let dir = std::env::temp_dir().join(format!("ma-utmp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("utmp").to_string_lossy().into_owned();
        let record = |user: &str| {
            let mut rec = vec![0u8; UTMP_RECORD];
            rec[..2].copy_from_slice(&USER_PROCESS.to_ne_bytes());
            rec[UTMP_USER_OFFSET..UTMP_USER_OFFSET + user.len()].copy_from_slice(user.as_bytes());
            rec
        };
        let mut u = Utmp {
            path: path.clone(),
            seen: None,
        };
        assert_eq!(u.counts(), None);
        std::fs::write(&path, record("alice")).unwrap();
        assert_eq!(u.counts(), Some((1, 1)));
        assert_eq!(u.counts(), Some((1, 1)), "unchanged file: cached counts");
        // A login appends a record: the size changes, so it is counted again.
        let mut two = record("alice");
        two.extend(record("bob"));
        std::fs::write(&path, &two).unwrap();
        assert_eq!(u.counts(), Some((2, 2)));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(u.counts(), None);
    }
}
