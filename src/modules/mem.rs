//! `mem`: memory from `/proc/meminfo`, as telegraf's `mem` input (measurement `mem`, no tags, all
//! values in bytes except the huge page counts). Definitions follow gopsutil, which telegraf uses:
//! `cached` = Cached + SReclaimable; `available` is MemAvailable (on kernels without it, before
//! 3.14: free + buffers + cached); `used` = total − available, telegraf's definition since 1.37
//! (before: total − free − buffers − cached); `used_percent` = 100·used/total;
//! `available_percent` = 100·available/total.
//! Keys the kernel does not have (HighTotal on 64-bit) are 0, as in telegraf.

use serde::Deserialize;

use super::GatherError;
use std::ops::ControlFlow;

use super::hostutil::ProcFile;
use super::procfs::meminfo;
use crate::options::SpanError;
use crate::output::{Accumulator, Metric, now_ns};

/// `[[inputs.mem]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// Also emit `active_anon, active_file, inactive_anon, inactive_file, percpu, unevictable`.
    /// Default false.
    collect_extended: Option<bool>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub collect_extended: bool,
}

pub(crate) fn resolve(raw: Raw) -> Result<Config, SpanError> {
    Ok(Config {
        collect_extended: raw.collect_extended.unwrap_or(false),
    })
}

/// `/proc/meminfo` key → field name, in telegraf's order. Values in kB are converted to bytes.
const FIELDS: &[(&str, &str)] = &[
    ("MemTotal", "total"),
    ("MemAvailable", "available"),
    ("MemFree", "free"),
    ("Active", "active"),
    ("Inactive", "inactive"),
    ("Buffers", "buffered"),
    ("Cached", "cached"),
    ("CommitLimit", "commit_limit"),
    ("Committed_AS", "committed_as"),
    ("Dirty", "dirty"),
    ("HighFree", "high_free"),
    ("HighTotal", "high_total"),
    ("HugePages_Free", "huge_pages_free"),
    ("Hugepagesize", "huge_page_size"),
    ("HugePages_Total", "huge_pages_total"),
    ("LowFree", "low_free"),
    ("LowTotal", "low_total"),
    ("Mapped", "mapped"),
    ("PageTables", "page_tables"),
    ("Shmem", "shared"),
    ("Slab", "slab"),
    ("SReclaimable", "sreclaimable"),
    ("SUnreclaim", "sunreclaim"),
    ("SwapCached", "swap_cached"),
    ("SwapFree", "swap_free"),
    ("SwapTotal", "swap_total"),
    ("VmallocChunk", "vmalloc_chunk"),
    ("VmallocTotal", "vmalloc_total"),
    ("VmallocUsed", "vmalloc_used"),
    ("Writeback", "write_back"),
    ("WritebackTmp", "write_back_tmp"),
    // collect_extended
    ("Active(anon)", "active_anon"),
    ("Active(file)", "active_file"),
    ("Inactive(anon)", "inactive_anon"),
    ("Inactive(file)", "inactive_file"),
    ("Percpu", "percpu"),
    ("Unevictable", "unevictable"),
];
/// Index of the first `collect_extended` entry in [`FIELDS`].
const EXTENDED_FROM: usize = 31;

/// Values of every key in [`FIELDS`] (bytes, or counts for HugePages_*), 0 when absent.
pub(crate) type MemValues = [u64; FIELDS.len()];

pub(crate) fn parse_meminfo(text: &str, out: &mut MemValues) {
    out.fill(0);
    meminfo::parse(text, |key, v| {
        if let Some(i) = FIELDS.iter().position(|(k, _)| *k == key)
            && let Some(n) = v.get()
        {
            out[i] = n;
        }
        ControlFlow::Continue(())
    });
}

fn idx(key: &str) -> usize {
    FIELDS.iter().position(|(k, _)| *k == key).unwrap_or(0)
}

/// gopsutil's derived values: (cached incl. SReclaimable, available, used).
pub(crate) fn derived(v: &MemValues) -> (u64, u64, u64) {
    let cached = v[idx("Cached")].saturating_add(v[idx("SReclaimable")]);
    let available = match v[idx("MemAvailable")] {
        // Kernels before 3.14 have no MemAvailable: gopsutil's estimate.
        0 => v[idx("MemFree")]
            .saturating_add(v[idx("Buffers")])
            .saturating_add(cached),
        a => a,
    };
    let used = v[idx("MemTotal")].saturating_sub(available);
    (cached, available, used)
}

pub(crate) struct Mem {
    config: Config,
    meminfo: ProcFile,
    buf: String,
    values: Box<MemValues>,
}

impl Mem {
    pub(crate) fn new(config: Config) -> Self {
        Mem {
            config,
            meminfo: ProcFile::new(meminfo::PATH),
            buf: String::with_capacity(2048),
            values: Box::new([0; FIELDS.len()]),
        }
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        self.meminfo.read_required(&mut self.buf)?;
        parse_meminfo(&self.buf, &mut self.values);
        acc.add(build(ts, &self.values, self.config.collect_extended)?);
        Ok(())
    }
}

pub(crate) fn build(ts: i64, v: &MemValues, extended: bool) -> Result<Metric, GatherError> {
    let total = v[idx("MemTotal")];
    if total == 0 {
        return Err(GatherError::Failed("/proc/meminfo has no MemTotal".into()));
    }
    let (cached, available, used) = derived(v);
    let mut m = Metric::new("mem", ts);
    let end = if extended {
        FIELDS.len()
    } else {
        EXTENDED_FROM
    };
    for (i, (key, name)) in FIELDS[..end].iter().enumerate() {
        let value = match *key {
            "Cached" => cached,
            "MemAvailable" => available,
            _ => v[i],
        };
        m = m.field(*name, value);
    }
    Ok(m.field("used", used)
        .field("used_percent", 100.0 * used as f64 / total as f64)
        .field("available_percent", 100.0 * available as f64 / total as f64))
}

super::ticked_input!(Mem, super::Shape::Local);

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = include_str!("../../tests/fixtures/mem/meminfo");

    #[test]
    fn extended_index_is_right() {
        assert_eq!(FIELDS[EXTENDED_FROM].0, "Active(anon)");
    }

    #[test]
    fn parses_fixture() {
        let mut v = [0; FIELDS.len()];
        parse_meminfo(MEMINFO, &mut v);
        let total = v[idx("MemTotal")];
        assert!(total > 0 && total % 1024 == 0);
        // Huge page counts are counts, not kB.
        assert!(v[idx("HugePages_Total")] < total / 1024);
        assert_eq!(v[idx("Hugepagesize")] % 1024, 0);
        let (_, available, used) = derived(&v);
        assert_eq!(available, v[idx("MemAvailable")]);
        assert_eq!(used, total - available, "telegraf's used since 1.37");
        let m = build(1, &v, false).unwrap();
        assert_eq!(m.fields.len(), EXTENDED_FROM + 3);
        assert!(m.fields.iter().any(|(k, _)| k == "write_back_tmp"));
        let m = build(1, &v, true).unwrap();
        assert!(m.fields.iter().any(|(k, _)| k == "unevictable"));
    }

    #[test]
    fn hand_made_values() {
        let text = "MemTotal: 1000 kB\nMemFree: 100 kB\nMemAvailable: 500 kB\nBuffers: 50 kB\n\
                    Cached: 200 kB\nSReclaimable: 50 kB\nHugePages_Total: 3\n";
        let mut v = [0; FIELDS.len()];
        parse_meminfo(text, &mut v);
        let m = build(1, &v, false).unwrap();
        let get = |k: &str| m.fields.iter().find(|(n, _)| n == k).unwrap().1.clone();
        use crate::output::FieldValue::*;
        assert_eq!(get("used"), UInt(500 * 1024));
        assert_eq!(get("cached"), UInt(250 * 1024));
        assert_eq!(get("huge_pages_total"), UInt(3));
        assert_eq!(get("used_percent"), Float(50.0));
        assert_eq!(get("available_percent"), Float(50.0));
        assert!(build(1, &[0; FIELDS.len()], false).is_err());
        // A kernel without MemAvailable: free + buffers + cached.
        let mut v = [0; FIELDS.len()];
        parse_meminfo(&text.replace("MemAvailable: 500 kB\n", ""), &mut v);
        let m = build(1, &v, false).unwrap();
        let get = |k: &str| m.fields.iter().find(|(n, _)| n == k).unwrap().1.clone();
        assert_eq!(get("available"), UInt(400 * 1024));
        assert_eq!(get("used"), UInt(600 * 1024));
    }
}
