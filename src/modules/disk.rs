//! `disk`: file-system usage per mount, as telegraf's `disk` input: measurement `disk`, tags
//! `path` (mount point), `device` (source without `/dev/`), `fstype`, `mode` (`rw`|`ro`), fields
//! `total, free, used, inodes_total, inodes_free, inodes_used` (int bytes / inodes),
//! `used_percent` = 100·used/(used+free) and `inodes_used_percent` (float). `free` is what an
//! unprivileged user may still use (`f_bavail`), `used` = blocks − `f_bfree`: the same numbers as
//! `df`. File systems with 0 blocks (proc, sysfs, cgroup …) are skipped, as telegraf does.
//!
//! Mounts come from `/proc/self/mountinfo` (octal escapes such as `\040` decoded). `statvfs` can
//! block forever on a dead NFS/CIFS server, so each mount's call runs on the blocking pool with
//! a timeout, and a mount whose previous call has not returned is not asked again: it is a
//! counted, logged error for that mount while the other mounts are still reported.

use std::collections::HashMap;
use std::time::Duration;

use serde::Deserialize;
use tokio::task::JoinHandle;

use super::GatherError;
use super::hostutil::{ErrorOnce, Globs, read_bytes_into};
use crate::config::{ConfigDuration, SpanError};
use crate::output::{Accumulator, Metric, now_ns};

/// `[[inputs.disk]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Raw {
    /// Only these mount points (globs allowed, e.g. `"/mnt/*"`). Default: every mount.
    mount_points: Option<Vec<String>>,
    /// File-system types to skip. Default (telegraf's sample config): tmpfs, devtmpfs, devfs,
    /// iso9660, overlay, aufs, squashfs. `ignore_fs = []` reports every type.
    ignore_fs: Option<Vec<String>>,
    /// Skip mounts having any of these mount options (e.g. `"bind"`). Default none.
    ignore_mount_opts: Option<Vec<String>>,
    /// Longest wait for one mount's `statvfs` (a hung network file system). Default 5s.
    /// (An addition: telegraf has no such limit.)
    timeout: Option<toml::Spanned<ConfigDuration>>,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub mount_points: Globs,
    pub ignore_fs: Vec<String>,
    pub ignore_mount_opts: Vec<String>,
    pub timeout: Duration,
}

const DEFAULT_IGNORE_FS: &[&str] = &[
    "tmpfs", "devtmpfs", "devfs", "iso9660", "overlay", "aufs", "squashfs",
];

pub fn resolve(raw: Raw) -> Result<Config, SpanError> {
    let timeout = match raw.timeout {
        Some(t) if t.get_ref().get().is_zero() => {
            return Err(SpanError::new(t.span(), "timeout", "must be more than 0"));
        }
        Some(t) => t.into_inner().get(),
        None => Duration::from_secs(5),
    };
    Ok(Config {
        mount_points: Globs(raw.mount_points.unwrap_or_default()),
        ignore_fs: raw
            .ignore_fs
            .unwrap_or_else(|| DEFAULT_IGNORE_FS.iter().map(|s| s.to_string()).collect()),
        ignore_mount_opts: raw.ignore_mount_opts.unwrap_or_default(),
        timeout,
    })
}

/// One line of mountinfo, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub mount_point: String,
    pub fstype: String,
    pub source: String,
    /// Per-mount options (`rw,nosuid,relatime`).
    pub options: String,
}

impl Mount {
    pub fn mode(&self) -> &'static str {
        for o in self.options.split(',') {
            match o {
                "rw" => return "rw",
                "ro" => return "ro",
                _ => {}
            }
        }
        "unknown"
    }

    /// Telegraf's `device` tag: the source without `/dev/`.
    pub fn device(&self) -> String {
        self.source.replace("/dev/", "")
    }
}

/// Decodes mountinfo's `\NNN` octal escapes (space, tab, newline, backslash).
pub fn unescape_octal(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\'
            && i + 3 < s.len()
            && s[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (s[i + 1] - b'0') as u32 * 64
                + (s[i + 2] - b'0') as u32 * 8
                + (s[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/self/mountinfo`: `id parent maj:min root mountpoint opts [optional…] - fstype
/// source superopts`.
pub fn parse_mountinfo(text: &[u8]) -> Vec<Mount> {
    let mut out = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        let fields: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == b"-") else {
            continue;
        };
        if sep < 6 || fields.len() < sep + 3 {
            continue;
        }
        out.push(Mount {
            mount_point: unescape_octal(fields[4]),
            options: String::from_utf8_lossy(fields[5]).into_owned(),
            fstype: unescape_octal(fields[sep + 1]),
            source: unescape_octal(fields[sep + 2]),
        });
    }
    out
}

/// The numbers of one `statvfs` call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub frsize: u64,
    pub files: u64,
    pub ffree: u64,
}

pub fn statvfs(path: &str) -> std::io::Result<Usage> {
    let c = std::ffi::CString::new(path)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL in path"))?;
    // SAFETY: zeroed statvfs is a valid out-parameter; `c` is a NUL-terminated path.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(Usage {
        blocks: st.f_blocks as u64,
        bfree: st.f_bfree as u64,
        bavail: st.f_bavail as u64,
        frsize: if st.f_frsize > 0 {
            st.f_frsize as u64
        } else {
            st.f_bsize as u64
        },
        files: st.f_files as u64,
        ffree: st.f_ffree as u64,
    })
}

/// The `disk` line for one mount, or `None` for a file system without blocks.
pub fn metric(ts: i64, m: &Mount, u: &Usage) -> Option<Metric> {
    let total = u.blocks * u.frsize;
    if total == 0 {
        return None;
    }
    let free = u.bavail * u.frsize;
    let used = u.blocks.saturating_sub(u.bfree) * u.frsize;
    let used_percent = if used + free > 0 {
        100.0 * used as f64 / (used + free) as f64
    } else {
        0.0
    };
    let inodes_used = u.files.saturating_sub(u.ffree);
    let inodes_pct = if u.files > 0 {
        100.0 * inodes_used as f64 / u.files as f64
    } else {
        0.0
    };
    let device = if m.source == "none" {
        m.fstype.clone()
    } else {
        m.device()
    };
    Some(
        Metric::new("disk", ts)
            .tag("path", m.mount_point.clone())
            .tag("device", device)
            .tag("fstype", m.fstype.clone())
            .tag("mode", m.mode())
            .field("total", total)
            .field("free", free)
            .field("used", used)
            .field("used_percent", used_percent)
            .field("inodes_total", u.files)
            .field("inodes_free", u.ffree)
            .field("inodes_used", inodes_used)
            .field("inodes_used_percent", inodes_pct),
    )
}

pub struct Disk {
    config: Config,
    buf: Vec<u8>,
    /// statvfs calls that timed out and have not returned yet, by mount point.
    hung: HashMap<String, JoinHandle<std::io::Result<Usage>>>,
    errors: ErrorOnce,
}

impl Disk {
    pub fn new(config: Config) -> Self {
        Disk {
            config,
            buf: Vec::with_capacity(8192),
            hung: HashMap::new(),
            errors: ErrorOnce::default(),
        }
    }

    fn wanted(&self, m: &Mount) -> bool {
        if !self.config.mount_points.is_empty() && !self.config.mount_points.matches(&m.mount_point)
        {
            return false;
        }
        if self.config.ignore_fs.contains(&m.fstype) {
            return false;
        }
        !m.options
            .split(',')
            .any(|o| self.config.ignore_mount_opts.iter().any(|i| i == o))
    }

    pub async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        read_bytes_into("/proc/self/mountinfo", &mut self.buf)
            .map_err(|e| GatherError::io("/proc/self/mountinfo", e))?;
        let mut mounts = parse_mountinfo(&self.buf);
        mounts.retain(|m| self.wanted(m));
        // A mount point mounted over keeps only its last (visible) mount.
        let mut seen = std::collections::HashSet::new();
        let mut visible: Vec<Mount> = Vec::with_capacity(mounts.len());
        for m in mounts.into_iter().rev() {
            if seen.insert(m.mount_point.clone()) {
                visible.push(m);
            }
        }
        visible.reverse();

        // Hung calls that have returned since: forget them (their result is stale).
        self.hung.retain(|_, h| !h.is_finished());

        let mut calls = Vec::with_capacity(visible.len());
        for m in visible {
            if self.hung.contains_key(&m.mount_point) {
                let what = format!("statvfs {}", m.mount_point);
                self.errors.report(
                    acc,
                    "disk",
                    &what,
                    &"previous call has not returned (hung file system?); not retried until it does",
                );
                continue;
            }
            let path = m.mount_point.clone();
            calls.push((m, tokio::task::spawn_blocking(move || statvfs(&path))));
        }
        let deadline = tokio::time::Instant::now() + self.config.timeout;
        for (m, mut handle) in calls {
            let what = format!("statvfs {}", m.mount_point);
            match tokio::time::timeout_at(deadline, &mut handle).await {
                Ok(Ok(Ok(u))) => {
                    self.errors.clear(&what);
                    if let Some(metric) = metric(ts, &m, &u) {
                        acc.add(metric);
                    }
                }
                Ok(Ok(Err(e))) => {
                    // A mount that vanished between reading mountinfo and statvfs is not an error.
                    if e.kind() != std::io::ErrorKind::NotFound {
                        self.errors.report(acc, "disk", &what, &e);
                    }
                }
                Ok(Err(join)) => self.errors.report(acc, "disk", &what, &join),
                Err(_) => {
                    self.errors.report(
                        acc,
                        "disk",
                        &what,
                        &format!("no answer within {:?}", self.config.timeout),
                    );
                    self.hung.insert(m.mount_point.clone(), handle);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_fixture() {
        let mounts = parse_mountinfo(include_bytes!("../../tests/fixtures/disk/mountinfo"));
        let root = mounts.iter().find(|m| m.mount_point == "/").unwrap();
        assert_eq!(root.fstype, "ext4");
        assert_eq!(root.source, "/dev/vda");
        assert_eq!(root.mode(), "rw");
        assert_eq!(root.device(), "vda");
        assert!(mounts.iter().any(|m| m.fstype == "proc"));
        let ro = mounts.iter().find(|m| m.options.starts_with("ro")).unwrap();
        assert_eq!(ro.mode(), "ro");
    }

    #[test]
    fn octal_escapes_and_optional_fields() {
        let line = b"36 35 98:0 /mnt1 /mnt/a\\040b,c=d\\011e rw,noatime master:1 shared:7 - ext3 /dev/my\\040disk rw,errors=continue\n";
        let m = &parse_mountinfo(line)[0];
        assert_eq!(m.mount_point, "/mnt/a b,c=d\te");
        assert_eq!(m.fstype, "ext3");
        assert_eq!(m.source, "/dev/my disk");
        assert_eq!(m.device(), "my disk");
        assert_eq!(unescape_octal(b"a\\134b\\"), "a\\b\\");
        assert_eq!(unescape_octal(b"\\04"), "\\04");
    }

    #[test]
    fn usage_math_like_df() {
        let m = Mount {
            mount_point: "/".into(),
            fstype: "ext4".into(),
            source: "/dev/vda".into(),
            options: "rw".into(),
        };
        let u = Usage {
            blocks: 1000,
            bfree: 300,
            bavail: 250,
            frsize: 4096,
            files: 100,
            ffree: 75,
        };
        let metric = metric(1, &m, &u).unwrap();
        let f = |k: &str| {
            metric
                .fields
                .iter()
                .find(|(n, _)| n == k)
                .unwrap()
                .1
                .clone()
        };
        use crate::output::FieldValue::*;
        assert_eq!(f("total"), UInt(4_096_000));
        assert_eq!(f("used"), UInt(700 * 4096));
        assert_eq!(f("free"), UInt(250 * 4096));
        assert_eq!(f("used_percent"), Float(100.0 * 700.0 / 950.0));
        assert_eq!(f("inodes_used"), UInt(25));
        assert_eq!(f("inodes_used_percent"), Float(25.0));
        assert!(super::metric(1, &m, &Usage { blocks: 0, ..u }).is_none());
    }

    #[test]
    fn statvfs_root() {
        let u = statvfs("/").unwrap();
        assert!(u.blocks > 0 && u.frsize > 0);
        assert!(statvfs("/definitely/not/here").is_err());
    }

    #[tokio::test]
    async fn filters() {
        let cfg = resolve(Raw {
            mount_points: Some(vec!["/".into()]),
            ..Default::default()
        })
        .unwrap();
        let mut d = Disk::new(cfg);
        let mut t = crate::modules::hostutil::testing::TestAcc::new();
        d.gather(&mut t.acc).await.unwrap();
        let lines = t.lines();
        assert_eq!(lines.len(), 1, "{lines:?}");
        assert!(lines[0].starts_with("disk,path=/,device="), "{lines:?}");
    }
}
