//! `system`: load averages, CPU count, logged-in users and uptime, as telegraf's `system` input
//! (default `include = ["legacy"]` shape: a gauge line, an `uptime` line and an
//! `uptime_format` line).
//!
//! The files read (`/proc/loadavg`, `/proc/uptime`, `/sys/devices/system/cpu/online`, utmp) are
//! kernel- or tmpfs-backed and answer in microseconds, so they are read inline rather than on the
//! blocking pool; the /proc and /sys files stay open between gathers and utmp is re-read only
//! when it changes.

use serde::Deserialize;

use super::GatherError;
use super::hostutil::ProcFile;
use crate::options::SpanError;
use crate::output::{Accumulator, Metric, now_ns};

/// `[[inputs.system]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// Telegraf ≥1.39 option; only `["legacy"]` (the default and the shape dashboards use) is
    /// accepted.
    include: Option<toml::Spanned<Vec<String>>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config;

pub(crate) fn resolve(raw: Raw) -> Result<Config, SpanError> {
    if let Some(inc) = raw.include
        && inc.get_ref().iter().any(|s| s != "legacy")
    {
        return Err(SpanError::new(
            inc.span(),
            "include",
            "only [\"legacy\"] is supported",
        ));
    }
    Ok(Config)
}

pub(crate) struct System {
    loadavg: ProcFile,
    uptime: ProcFile,
    online: ProcFile,
    buf: String,
    utmp: Utmp,
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
    path: &'static str,
    /// The file counted, and its (sessions, unique users).
    seen: Option<(FileKey, (i64, i64))>,
}

/// Inode, size and mtime (ns) of a file: any login or logout changes at least the mtime.
type FileKey = (u64, u64, i128);

impl Utmp {
    /// `None` when there is no utmp (containers, minimal hosts): the fields are omitted then.
    fn counts(&mut self) -> Option<(i64, i64)> {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = std::fs::metadata(self.path) else {
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
        let data = std::fs::read(self.path).ok()?;
        let counts = count_users(&data);
        self.seen = Some((key, counts));
        Some(counts)
    }
}

impl System {
    pub(crate) fn new(_config: Config) -> Self {
        System {
            loadavg: ProcFile::new("/proc/loadavg"),
            uptime: ProcFile::new("/proc/uptime"),
            online: ProcFile::new("/sys/devices/system/cpu/online"),
            buf: String::with_capacity(128),
            utmp: Utmp {
                path: "/var/run/utmp",
                seen: None,
            },
        }
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        self.loadavg.read_required(&mut self.buf)?;
        let (l1, l5, l15) = parse_loadavg(&self.buf).ok_or_else(|| {
            GatherError::Failed(format!("/proc/loadavg: unexpected content {:?}", self.buf))
        })?;
        let mut gauge = Metric::new("system", ts)
            .field("load1", l1)
            .field("load5", l5)
            .field("load15", l15);
        let n_cpus = match self.online.read(&mut self.buf) {
            Ok(()) => count_cpu_list(&self.buf),
            Err(_) => std::thread::available_parallelism()
                .ok()
                .map(|n| n.get() as u64),
        };
        if let Some(n) = n_cpus {
            gauge = gauge.field("n_cpus", n);
        }
        if let Some((users, unique)) = self.utmp.counts() {
            gauge = gauge
                .field("n_users", users)
                .field("n_unique_users", unique);
        }
        acc.add(gauge);

        self.uptime.read_required(&mut self.buf)?;
        let secs = parse_uptime(&self.buf).ok_or_else(|| {
            GatherError::Failed(format!("/proc/uptime: unexpected content {:?}", self.buf))
        })?;
        acc.add(Metric::new("system", ts).field("uptime", secs));
        acc.add(Metric::new("system", ts).field("uptime_format", format_uptime(secs)));
        Ok(())
    }
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
        let path: &'static str = Box::leak(dir.join("utmp").to_string_lossy().into_owned().into());
        let record = |user: &str| {
            let mut rec = vec![0u8; UTMP_RECORD];
            rec[..2].copy_from_slice(&USER_PROCESS.to_ne_bytes());
            rec[UTMP_USER_OFFSET..UTMP_USER_OFFSET + user.len()].copy_from_slice(user.as_bytes());
            rec
        };
        let mut u = Utmp { path, seen: None };
        assert_eq!(u.counts(), None);
        std::fs::write(path, record("alice")).unwrap();
        assert_eq!(u.counts(), Some((1, 1)));
        assert_eq!(u.counts(), Some((1, 1)), "unchanged file: cached counts");
        // A login appends a record: the size changes, so it is counted again.
        let mut two = record("alice");
        two.extend(record("bob"));
        std::fs::write(path, &two).unwrap();
        assert_eq!(u.counts(), Some((2, 2)));
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(u.counts(), None);
    }
}
