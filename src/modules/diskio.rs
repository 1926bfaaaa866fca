//! `diskio`: block-device I/O counters from `/proc/diskstats`, as telegraf's `diskio` input:
//! measurement `diskio`, tag `name` (plus `wwid` where `/sys/block/<dev>/wwid` exists, `serial`
//! with `skip_serial_number = false`, and udev properties listed in `device_tags`). Counters
//! (int): `reads, writes, read_bytes, write_bytes, read_time, write_time, io_time,
//! weighted_io_time, merged_reads, merged_writes` and gauge `iops_in_progress` (times in ms,
//! bytes = sectors × 512, the kernel's fixed diskstats sector). From the second gather on:
//! `io_await` (ms per completed I/O), `io_svctm` (ms busy per I/O) and `io_util` (% of wall time
//! busy), computed over the interval like iostat.
//!
//! Device metadata is telegraf's: udev's database (`/run/udev/data/b<major>:<minor>`, or the
//! old `/dev/.udev/db/block:<name>`) gives the `E:` properties, `DEVLINKS` (its `S:` lines) and,
//! from `/sys/class/block/<name>`, `DEVNAME`, `DEVTYPE` and `DEVPATH`; these serve
//! `device_tags`, `name_templates` and glob `devices` (a device also matches by one of its
//! links). The files are re-read when the udev record changes. `/dev`, `/run` and `/sys` follow
//! telegraf's `HOST_DEV`/`HOST_RUN`/`HOST_SYS`, `HOST_ROOT` and `HOST_MOUNT_PREFIX` rule.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use serde::Deserialize;

use super::GatherError;
use super::hostutil::{Globs, ProcFile};
use super::procfs::host;
use crate::options::SpanError;
use crate::output::{Accumulator, Metric, now_ns};

/// `[[inputs.diskio]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// Devices to report: kernel names or globs (`["sd*", "nvme*"]`, a glob also matching a
    /// device's udev links such as `disk/by-id/*`), or links (`/dev/disk/by-id/…`, resolved to
    /// the device). Default: every device.
    devices: Option<toml::Spanned<Vec<String>>>,
    /// Default true. When false, add tag `serial` (udev `ID_SERIAL`, else sysfs model and
    /// serial, else `unknown`).
    skip_serial_number: Option<bool>,
    /// udev properties (`udevadm info -q property -n <device>`) added as tags when the device
    /// has them.
    device_tags: Option<Vec<String>>,
    /// Templates for the `name` tag from the same properties, `$NAME` or `${NAME}`; the first
    /// whose every property the device has is used, else the kernel name. E.g.
    /// `["$ID_FS_LABEL", "$DM_VG_NAME/$DM_LV_NAME"]`.
    name_templates: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub devices: Globs,
    /// The `devices` entries without glob characters (resolved at each gather, as links may
    /// appear later); `globbed`: some entry has one (then links are matched too).
    pub device_names: Vec<String>,
    pub globbed: bool,
    pub skip_serial_number: bool,
    pub device_tags: Vec<String>,
    pub name_templates: Vec<String>,
}

pub(crate) fn resolve(raw: Raw) -> Result<Config, SpanError> {
    let names: Vec<String> = raw
        .devices
        .as_ref()
        .map(|d| d.get_ref().clone())
        .unwrap_or_default();
    Ok(Config {
        globbed: names.iter().any(|d| d.contains(['*', '?', '['])),
        device_names: names,
        devices: Globs::resolve(raw.devices, "devices")?,
        skip_serial_number: raw.skip_serial_number.unwrap_or(true),
        device_tags: raw.device_tags.unwrap_or_default(),
        name_templates: raw.name_templates.unwrap_or_default(),
    })
}

/// The kernel name a `devices` entry stands for: a link (`/dev/disk/by-id/x`, or `x` under
/// `/dev`, looked up under `HOST_DEV` too) resolved, else the entry's last component.
fn device_name(entry: &str) -> String {
    let under_dev = match entry.starts_with('/') {
        true => host::device_path(entry).into_owned(),
        false => host::device_path(&format!("/dev/{entry}")).into_owned(),
    };
    let resolved = std::fs::canonicalize(entry).or_else(|_| std::fs::canonicalize(under_dev));
    let path = match &resolved {
        Ok(p) => p.to_str().unwrap_or(entry),
        Err(_) => entry,
    };
    path.rsplit('/').next().unwrap_or(path).to_owned()
}

/// One device's udev properties plus `DEVLINKS`, `DEVNAME`, `DEVTYPE`, `DEVPATH`.
pub(crate) type DevInfo = HashMap<String, String>;

/// Parses a udev database record: `E:KEY=value` properties and `S:link` lines (`DEVLINKS`,
/// space-separated `/dev/…` paths).
pub(crate) fn parse_udev(text: &str, info: &mut DevInfo) {
    let mut links = String::new();
    for l in text.lines().filter(|l| l.len() >= 4) {
        if let Some(link) = l.strip_prefix("S:") {
            if !links.is_empty() {
                links.push(' ');
            }
            links.push_str("/dev/");
            links.push_str(link);
        } else if let Some((k, v)) = l.strip_prefix("E:").and_then(|kv| kv.split_once('=')) {
            info.insert(k.to_owned(), v.to_owned());
        }
    }
    if !links.is_empty() {
        info.insert("DEVLINKS".into(), links);
    }
}

/// `DEV*` lines of a sysfs `uevent` file (`DEVNAME` made a `/dev/` path).
pub(crate) fn parse_uevent(text: &str, info: &mut DevInfo) {
    for l in text.lines().filter(|l| l.starts_with("DEV")) {
        if let Some((k, v)) = l.split_once('=') {
            info.insert(k.trim().to_owned(), v.trim().to_owned());
        }
    }
    if let Some(d) = info.get_mut("DEVNAME")
        && !d.starts_with("/dev")
    {
        *d = format!("/dev/{d}");
    }
}

/// The first template whose every `$NAME`/`${NAME}` the device has, filled in.
pub(crate) fn apply_template(templates: &[String], info: &DevInfo) -> Option<String> {
    'templates: for t in templates {
        let mut out = String::with_capacity(t.len());
        let mut rest = t.as_str();
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let word = |s: &str| {
                s.find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(s.len())
            };
            let (name, consumed) = match after.strip_prefix('{') {
                Some(inner) => {
                    let n = word(inner);
                    match inner[n..].starts_with('}') && n > 0 {
                        true => (&inner[..n], n + 2),
                        false => ("", 0),
                    }
                }
                None => {
                    let n = word(after);
                    (&after[..n], n)
                }
            };
            if name.is_empty() {
                // A lone `$`: kept as it is.
                out.push('$');
                rest = after;
                continue;
            }
            match info.get(name) {
                Some(v) => out.push_str(v),
                None => continue 'templates,
            }
            rest = &after[consumed..];
        }
        out.push_str(rest);
        return Some(out);
    }
    None
}

/// One `/proc/diskstats` line.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct DiskStat {
    pub major: u32,
    pub minor: u32,
    pub reads: u64,
    pub merged_reads: u64,
    pub read_sectors: u64,
    pub read_time: u64,
    pub writes: u64,
    pub merged_writes: u64,
    pub write_sectors: u64,
    pub write_time: u64,
    pub iops_in_progress: u64,
    pub io_time: u64,
    pub weighted_io_time: u64,
}

/// Calls `f(name, stat)` for every well-formed line.
pub(crate) fn parse_diskstats(text: &str, mut f: impl FnMut(&str, DiskStat)) {
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let (Some(major), Some(minor), Some(name)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let mut v = [0u64; 11];
        let mut ok = true;
        for slot in v.iter_mut() {
            match it.next().and_then(|s| s.parse().ok()) {
                Some(n) => *slot = n,
                None => {
                    ok = false;
                    break;
                }
            }
        }
        let (Ok(major), Ok(minor)) = (major.parse(), minor.parse()) else {
            continue;
        };
        if !ok {
            continue;
        }
        f(
            name,
            DiskStat {
                major,
                minor,
                reads: v[0],
                merged_reads: v[1],
                read_sectors: v[2],
                read_time: v[3],
                writes: v[4],
                merged_writes: v[5],
                write_sectors: v[6],
                write_time: v[7],
                iops_in_progress: v[8],
                io_time: v[9],
                weighted_io_time: v[10],
            },
        );
    }
}

/// What two samples `elapsed_ms` apart give, as telegraf computes it: `io_await` and
/// `io_svctm` (ms per I/O) only when there was I/O, `io_util` (percent of the time busy, not
/// clamped) when time passed; nothing at all when a counter went back (wrapped, or the device
/// was replaced).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Derived {
    pub await_ms: Option<f64>,
    pub svctm_ms: Option<f64>,
    pub util: Option<f64>,
}

pub(crate) fn derived(prev: &DiskStat, cur: &DiskStat, elapsed_ms: f64) -> Derived {
    let went_back = cur.reads < prev.reads
        || cur.writes < prev.writes
        || cur.read_time < prev.read_time
        || cur.write_time < prev.write_time
        || cur.io_time < prev.io_time;
    if went_back {
        return Derived::default();
    }
    let ios = (cur.reads - prev.reads) as f64 + (cur.writes - prev.writes) as f64;
    let rw_time = (cur.read_time - prev.read_time) as f64 + (cur.write_time - prev.write_time) as f64;
    let busy = (cur.io_time - prev.io_time) as f64;
    Derived {
        await_ms: (ios > 0.0).then(|| rw_time / ios),
        svctm_ms: (ios > 0.0).then(|| busy / ios),
        util: (elapsed_ms > 0.0).then(|| 100.0 * busy / elapsed_ms),
    }
}

pub(crate) struct DiskIo {
    config: Config,
    diskstats: ProcFile,
    buf: String,
    last: HashMap<String, DiskStat>,
    last_at: Option<Instant>,
    wwid: HashMap<String, Option<String>>,
    /// Per device: the udev record's modification time and what was read with it.
    info: HashMap<String, (Option<SystemTime>, Arc<DevInfo>)>,
    /// The resolved names of `devices` entries, this gather.
    names: Vec<String>,
}

impl DiskIo {
    pub(crate) fn new(config: Config) -> Self {
        DiskIo {
            config,
            diskstats: ProcFile::new("/proc/diskstats"),
            buf: String::with_capacity(4096),
            last: HashMap::new(),
            last_at: None,
            wwid: HashMap::new(),
            info: HashMap::new(),
            names: Vec::new(),
        }
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        let now = Instant::now();
        self.diskstats.read_required(&mut self.buf)?;
        let elapsed_ms = self
            .last_at
            .map(|t| now.duration_since(t).as_secs_f64() * 1000.0);
        self.names = self.config.device_names.iter().map(|d| device_name(d)).collect();
        let needs_info = !self.config.device_tags.is_empty()
            || !self.config.name_templates.is_empty()
            || !self.config.skip_serial_number;
        let buf = std::mem::take(&mut self.buf);
        parse_diskstats(&buf, |name, s| {
            let mut info = None;
            if !self.wanted_by_name(name) {
                // A glob may still match one of the device's links.
                if !self.config.globbed {
                    return;
                }
                let i = self.dev_info(name, &s);
                if !self.wanted_by_link(&i) {
                    return;
                }
                info = Some(i);
            }
            let info = match (info, needs_info) {
                (Some(i), _) => i,
                (None, true) => self.dev_info(name, &s),
                (None, false) => Arc::default(),
            };
            let tag_name = apply_template(&self.config.name_templates, &info)
                .unwrap_or_else(|| name.to_owned());
            let mut m = Metric::new("diskio", ts).tag("name", tag_name);
            if let Some(w) = self.wwid(name) {
                m = m.tag("wwid", w);
            }
            for key in &self.config.device_tags {
                if let Some(v) = info.get(key) {
                    m = m.tag(key.clone(), v.clone());
                }
            }
            if !self.config.skip_serial_number {
                let serial = info
                    .get("ID_SERIAL")
                    .cloned()
                    .filter(|v| !v.is_empty())
                    .or_else(|| sysfs_serial(s.major))
                    .map(|v| v.replace(['\n', '\r'], "").trim().to_owned())
                    .filter(|v| !v.is_empty());
                m = m.tag("serial", serial.unwrap_or_else(|| "unknown".into()));
            }
            m = m
                .field("reads", s.reads)
                .field("writes", s.writes)
                .field("read_bytes", s.read_sectors * 512)
                .field("write_bytes", s.write_sectors * 512)
                .field("read_time", s.read_time)
                .field("write_time", s.write_time)
                .field("io_time", s.io_time)
                .field("weighted_io_time", s.weighted_io_time)
                .field("iops_in_progress", s.iops_in_progress)
                .field("merged_reads", s.merged_reads)
                .field("merged_writes", s.merged_writes);
            let prev = match self.last.get_mut(name) {
                Some(slot) => Some(std::mem::replace(slot, s)),
                None => {
                    self.last.insert(name.to_owned(), s);
                    None
                }
            };
            if let (Some(p), Some(ms)) = (prev, elapsed_ms) {
                let d = derived(&p, &s, ms);
                m = m
                    .field_opt("io_await", d.await_ms)
                    .field_opt("io_svctm", d.svctm_ms)
                    .field_opt("io_util", d.util);
            }
            acc.add(m);
        });
        self.buf = buf;
        self.last_at = Some(now);
        Ok(())
    }

    /// `devices` as telegraf applies it: a kernel name or resolved link equal to the device,
    /// or a glob matching its name or one of its udev links (without `/dev/`).
    fn wanted_by_name(&self, name: &str) -> bool {
        self.config.devices.is_empty()
            || self.names.iter().any(|n| n == name)
            || (self.config.globbed && self.config.devices.matches(name))
    }

    fn wanted_by_link(&self, info: &DevInfo) -> bool {
        info.get("DEVLINKS").is_some_and(|links| {
            links
                .split(' ')
                .any(|l| self.config.devices.matches(l.strip_prefix("/dev/").unwrap_or(l)))
        })
    }

    fn wwid(&mut self, name: &str) -> Option<String> {
        if let Some(v) = self.wwid.get(name) {
            return v.clone();
        }
        let path = host::device_path(&format!("/sys/block/{name}/wwid")).into_owned();
        let v = std::fs::read_to_string(path)
            .ok()
            .map(|s| s.strip_suffix('\n').unwrap_or(&s).to_owned())
            .filter(|s| !s.is_empty());
        self.wwid.insert(name.to_owned(), v.clone());
        v
    }

    /// The device's udev record and sysfs `DEV*` values, read again when the record changes
    /// (appears, is rewritten or goes).
    fn dev_info(&mut self, name: &str, s: &DiskStat) -> Arc<DevInfo> {
        let udev = [
            host::device_path(&format!("/run/udev/data/b{}:{}", s.major, s.minor)).into_owned(),
            host::device_path(&format!("/dev/.udev/db/block:{name}")).into_owned(),
        ];
        let found = udev
            .iter()
            .find_map(|p| std::fs::metadata(p).ok().map(|m| (p, m.modified().ok())));
        let mtime = found.as_ref().and_then(|(_, t)| *t);
        if let Some((t, info)) = self.info.get(name)
            && *t == mtime
        {
            return info.clone();
        }
        let mut info = DevInfo::new();
        if let Some((p, _)) = &found
            && let Ok(text) = std::fs::read_to_string(p)
        {
            parse_udev(&text, &mut info);
        }
        let sys = host::device_path(&format!("/sys/class/block/{name}")).into_owned();
        if let Ok(text) = std::fs::read_to_string(format!("{sys}/uevent")) {
            parse_uevent(&text, &mut info);
        }
        if let Ok(dev) = std::fs::canonicalize(format!("{sys}/device"))
            && let Some(dev) = dev.to_str()
        {
            let root = host::device_path("/sys");
            let rel = dev.strip_prefix(&*root).unwrap_or(dev);
            info.insert("DEVPATH".into(), format!("{rel}/{name}"));
        }
        let info = Arc::new(info);
        self.info.insert(name.to_owned(), (mtime, info.clone()));
        info
    }
}

/// gopsutil's serial when udev has none: the whole disk's (minor 0) sysfs `model` and
/// `serial`, joined by `_`.
fn sysfs_serial(major: u32) -> Option<String> {
    let dev = host::device_path(&format!("/sys/dev/block/{major}:0/device")).into_owned();
    let model = std::fs::read_to_string(format!("{dev}/model")).ok()?;
    let serial = std::fs::read_to_string(format!("{dev}/serial")).ok()?;
    (!model.is_empty() && !serial.is_empty()).then(|| format!("{model}_{serial}"))
}

super::ticked_input!(DiskIo, super::Shape::Local);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture() {
        let mut seen = Vec::new();
        parse_diskstats(
            include_str!("../../tests/fixtures/diskio/diskstats"),
            |n, s| seen.push((n.to_owned(), s)),
        );
        let vda = &seen.iter().find(|(n, _)| n == "vda").unwrap().1;
        assert_eq!(vda.major, 254);
        assert!(vda.reads > 0 && vda.read_sectors > 0 && vda.io_time > 0);
        assert!(seen.iter().any(|(n, _)| n == "loop0"));
    }

    #[test]
    fn iostat_math() {
        let p = DiskStat {
            reads: 100,
            writes: 100,
            read_time: 50,
            write_time: 150,
            io_time: 1000,
            ..Default::default()
        };
        let c = DiskStat {
            reads: 150,
            writes: 150,
            read_time: 150,
            write_time: 250,
            io_time: 1250,
            ..Default::default()
        };
        let d = derived(&p, &c, 1000.0);
        assert_eq!(d.await_ms, Some(2.0));
        assert_eq!(d.svctm_ms, Some(2.5));
        assert_eq!(d.util, Some(25.0));
        // Idle: no await or svctm (telegraf omits them), util 0.
        let idle = derived(&c, &c, 1000.0);
        assert_eq!((idle.await_ms, idle.svctm_ms, idle.util), (None, None, Some(0.0)));
        // A counter that went back: nothing derived.
        assert_eq!(derived(&c, &p, 1000.0), Derived::default());
    }

    #[test]
    fn udev_records_and_templates() {
        let mut info = DevInfo::new();
        parse_udev(
            "S:disk/by-id/ata-X\nS:disk/by-label/root\nW:1\nE:ID_FS_LABEL=root\n\
E:DM_VG_NAME=vg\nE:DM_LV_NAME=lv\nE:ID_SERIAL=X_123\nE:EMPTY=\n",
            &mut info,
        );
        parse_uevent("MAJOR=8\nDEVNAME=sda1\nDEVTYPE=partition\n", &mut info);
        assert_eq!(info["DEVLINKS"], "/dev/disk/by-id/ata-X /dev/disk/by-label/root");
        assert_eq!(info["DEVNAME"], "/dev/sda1");
        assert_eq!(info["DEVTYPE"], "partition");
        assert_eq!(info["EMPTY"], "");
        assert!(!info.contains_key("MAJOR"));
        let t = |ts: &[&str]| {
            let ts: Vec<String> = ts.iter().map(|s| s.to_string()).collect();
            apply_template(&ts, &info)
        };
        assert_eq!(t(&["$ID_FS_LABEL"]), Some("root".into()));
        assert_eq!(t(&["$NOPE", "$DM_VG_NAME/${DM_LV_NAME}x"]), Some("vg/lvx".into()));
        assert_eq!(t(&["$NOPE", "${NOPE}"]), None);
        assert_eq!(t(&["disk-$ $DM_VG_NAME"]), Some("disk-$ vg".into()));
        assert_eq!(t(&[]), None);
    }

    #[tokio::test]
    async fn second_gather_adds_rates_and_filter_applies() {
        let cfg = resolve(Raw {
            devices: Some(toml::Spanned::new(
                0..0,
                vec!["vd*".into(), "sd*".into(), "nvme*".into(), "loop0".into()],
            )),
            ..Default::default()
        })
        .unwrap();
        let mut d = DiskIo::new(cfg);
        let mut t = crate::modules::hostutil::testing::TestAcc::new();
        d.gather(&mut t.acc).await.unwrap();
        let first = t.lines();
        assert!(!first.is_empty());
        assert!(first.iter().all(|l| !l.contains("io_await")));
        assert!(first.iter().all(|l| !l.contains("name=loop1 ")));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        d.gather(&mut t.acc).await.unwrap();
        assert!(t.lines().iter().all(|l| l.contains("io_util=")));
    }
}
