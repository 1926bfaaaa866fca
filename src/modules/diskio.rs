//! `diskio`: block-device I/O counters from `/proc/diskstats`, as telegraf's `diskio` input:
//! measurement `diskio`, tag `name` (plus `wwid` where `/sys/block/<dev>/wwid` exists, `serial`
//! with `skip_serial_number = false`, and udev properties listed in `device_tags`). Counters
//! (int): `reads, writes, read_bytes, write_bytes, read_time, write_time, io_time,
//! weighted_io_time, merged_reads, merged_writes` and gauge `iops_in_progress` (times in ms,
//! bytes = sectors × 512, the kernel's fixed diskstats sector). From the second gather on:
//! `io_await` (ms per completed I/O), `io_svctm` (ms busy per I/O) and `io_util` (% of wall time
//! busy), computed over the interval like iostat.

use std::collections::HashMap;
use std::time::Instant;

use serde::Deserialize;

use super::GatherError;
use super::hostutil::{Globs, ProcFile, read_into};
use crate::options::SpanError;
use crate::output::{Accumulator, Metric, now_ns};

/// `[[inputs.diskio]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// Device names to report (globs, e.g. `["sd*", "nvme*"]`). Default: every device.
    devices: Option<toml::Spanned<Vec<String>>>,
    /// Default true. When false, add tag `serial` (udev `ID_SERIAL`, or `unknown`).
    skip_serial_number: Option<bool>,
    /// udev properties (`/run/udev/data/b<major>:<minor>` `E:` lines) added as tags.
    device_tags: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub devices: Globs,
    pub skip_serial_number: bool,
    pub device_tags: Vec<String>,
}

pub(crate) fn resolve(raw: Raw) -> Result<Config, SpanError> {
    Ok(Config {
        devices: Globs::resolve(raw.devices, "devices")?,
        skip_serial_number: raw.skip_serial_number.unwrap_or(true),
        device_tags: raw.device_tags.unwrap_or_default(),
    })
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
    udev_buf: String,
    last: HashMap<String, DiskStat>,
    last_at: Option<Instant>,
    wwid: HashMap<String, Option<String>>,
}

impl DiskIo {
    pub(crate) fn new(config: Config) -> Self {
        DiskIo {
            config,
            diskstats: ProcFile::new("/proc/diskstats"),
            buf: String::with_capacity(4096),
            udev_buf: String::new(),
            last: HashMap::new(),
            last_at: None,
            wwid: HashMap::new(),
        }
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        let now = Instant::now();
        self.diskstats.read_required(&mut self.buf)?;
        let elapsed_ms = self
            .last_at
            .map(|t| now.duration_since(t).as_secs_f64() * 1000.0);
        let buf = std::mem::take(&mut self.buf);
        parse_diskstats(&buf, |name, s| {
            if !self.config.devices.is_empty() && !self.config.devices.matches(name) {
                return;
            }
            let mut m = Metric::new("diskio", ts).tag("name", name);
            if let Some(w) = self.wwid(name) {
                m = m.tag("wwid", w);
            }
            if !self.config.skip_serial_number || !self.config.device_tags.is_empty() {
                m = self.udev_tags(m, &s);
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

    fn wwid(&mut self, name: &str) -> Option<String> {
        if let Some(v) = self.wwid.get(name) {
            return v.clone();
        }
        let v = std::fs::read_to_string(format!("/sys/block/{name}/wwid"))
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty());
        self.wwid.insert(name.to_owned(), v.clone());
        v
    }

    fn udev_tags(&mut self, mut m: Metric, s: &DiskStat) -> Metric {
        let path = format!("/run/udev/data/b{}:{}", s.major, s.minor);
        if read_into(&path, &mut self.udev_buf).is_err() {
            self.udev_buf.clear();
        }
        let prop = |key: &str| {
            self.udev_buf.lines().find_map(|l| {
                l.strip_prefix("E:")?
                    .strip_prefix(key)?
                    .strip_prefix('=')
                    .map(str::to_owned)
            })
        };
        if !self.config.skip_serial_number {
            m = m.tag(
                "serial",
                prop("ID_SERIAL").unwrap_or_else(|| "unknown".into()),
            );
        }
        for key in &self.config.device_tags {
            if let Some(v) = prop(key) {
                m = m.tag(key.clone(), v);
            }
        }
        m
    }
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
