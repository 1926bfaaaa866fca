//! `kernel`: kernel counters, as telegraf's `kernel` input: measurement `kernel`, no tags, fields
//! `boot_time` (unix s), `context_switches`, `interrupts`, `processes_forked` (from `/proc/stat`),
//! `disk_pages_in`, `disk_pages_out`, `entropy_avail`.
//!
//! `disk_pages_in/out`: telegraf reads them from the `page` line of `/proc/stat`, which kernels
//! since 2.6 no longer have, so telegraf omits them; we take `pgpgin`/`pgpgout` from
//! `/proc/vmstat` instead (KiB paged in/out, the same counters under their current name).
//!
//! `collect = ["psi"]` adds telegraf's measurement `pressure` from `/proc/pressure/{cpu,memory,io}`:
//! tags `resource` (cpu|memory|io) and `type` (some|full), fields `avg10, avg60, avg300` (float, %
//! of time stalled) and `total` (int, µs stalled since boot). A kernel without PSI (< 4.20, or
//! `psi=0`) gives one logged, counted error per gather and no `pressure` lines.
//!
//! `collect = ["ksm"]` adds telegraf's `ksm_*` fields (int) to the `kernel` line, one per file of
//! `/sys/kernel/mm/ksm` telegraf reads (kernel same-page merging counters and settings). A
//! kernel without KSM is refused when the config is read, as telegraf does; a file an older
//! kernel lacks is left out (telegraf fails the whole gather).

use serde::Deserialize;

use super::GatherError;
use super::hostutil::ProcFile;
use super::procfs::{stat, vmstat};
use crate::options::SpanError;
use crate::output::{Accumulator, Key, Metric, now_ns};

/// `[[inputs.kernel]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// Extra collections: `"psi"` (pressure stall information, measurement `pressure`),
    /// `"ksm"` (kernel same-page merging, `ksm_*` fields; refused on a kernel without KSM).
    /// Other values are ignored with a warning, as telegraf ignores them.
    collect: Option<toml::Spanned<Vec<String>>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub psi: bool,
    pub ksm: bool,
    /// `collect` values that name nothing, logged when the input starts (logging is not set
    /// up yet while the config is read).
    pub ignored: Vec<String>,
}

/// The files of `/sys/kernel/mm/ksm` telegraf reads, each written as `ksm_<file>`; the last
/// one only exists on recent kernels (telegraf too leaves it out when absent).
const KSM_FILES: [&str; 15] = [
    "full_scans",
    "max_page_sharing",
    "merge_across_nodes",
    "pages_shared",
    "pages_sharing",
    "pages_to_scan",
    "pages_unshared",
    "pages_volatile",
    "run",
    "sleep_millisecs",
    "stable_node_chains",
    "stable_node_chains_prune_millisecs",
    "stable_node_dups",
    "use_zero_pages",
    "general_profit",
];

const KSM_DIR: &str = "/sys/kernel/mm/ksm";

pub(crate) fn resolve(raw: Raw) -> Result<Config, SpanError> {
    let mut config = Config {
        psi: false,
        ksm: false,
        ignored: Vec::new(),
    };
    if let Some(c) = raw.collect {
        for item in c.get_ref() {
            match item.as_str() {
                "psi" => config.psi = true,
                "ksm" => {
                    let dir = super::procfs::host::path(KSM_DIR);
                    if !std::path::Path::new(&*dir).is_dir() {
                        return Err(SpanError::new(
                            c.span(),
                            "collect",
                            format!("\"ksm\": {dir} does not exist: KSM is not enabled in this kernel"),
                        ));
                    }
                    config.ksm = true;
                }
                other => config.ignored.push(other.to_owned()),
            }
        }
    }
    Ok(config)
}

/// One line of a `/proc/pressure/*` file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Pressure<'a> {
    pub kind: &'a str,
    pub avg10: f64,
    pub avg60: f64,
    pub avg300: f64,
    pub total: u64,
}

/// `some avg10=0.00 avg60=0.00 avg300=0.00 total=0` lines.
pub(crate) fn parse_pressure(text: &str) -> Vec<Pressure<'_>> {
    text.lines()
        .filter_map(|line| {
            let mut it = line.split_ascii_whitespace();
            let kind = it.next()?;
            let mut p = Pressure {
                kind,
                avg10: f64::NAN,
                avg60: f64::NAN,
                avg300: f64::NAN,
                total: 0,
            };
            let mut have_total = false;
            for kv in it {
                let (k, v) = kv.split_once('=')?;
                match k {
                    "avg10" => p.avg10 = v.parse().ok()?,
                    "avg60" => p.avg60 = v.parse().ok()?,
                    "avg300" => p.avg300 = v.parse().ok()?,
                    "total" => {
                        p.total = v.parse().ok()?;
                        have_total = true;
                    }
                    _ => {}
                }
            }
            (have_total && p.avg10.is_finite() && p.avg60.is_finite() && p.avg300.is_finite())
                .then_some(p)
        })
        .collect()
}

pub(crate) struct Kernel {
    config: Config,
    stat: ProcFile,
    vmstat: ProcFile,
    entropy: ProcFile,
    pressure: [ProcFile; 3],
    ksm: Vec<(String, ProcFile)>,
    buf: String,
}

impl Kernel {
    pub(crate) fn new(config: Config) -> Self {
        for other in &config.ignored {
            tracing::warn!(
                "[inputs.kernel] collect: {other:?} is not a collection (\"ksm\", \"psi\"); ignored"
            );
        }
        Kernel {
            stat: ProcFile::new(stat::PATH),
            vmstat: ProcFile::new(vmstat::PATH),
            entropy: ProcFile::new("/proc/sys/kernel/random/entropy_avail"),
            pressure: [
                ProcFile::new("/proc/pressure/cpu"),
                ProcFile::new("/proc/pressure/memory"),
                ProcFile::new("/proc/pressure/io"),
            ],
            ksm: match config.ksm {
                true => KSM_FILES
                    .iter()
                    .map(|f| (format!("ksm_{f}"), ProcFile::new(&format!("{KSM_DIR}/{f}"))))
                    .collect(),
                false => Vec::new(),
            },
            config,
            buf: String::with_capacity(8192),
        }
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        self.stat.read_required(&mut self.buf)?;
        let s = stat::parse(&self.buf, None);
        let mut m = Metric::new("kernel", ts)
            .field_opt("boot_time", s.boot_time)
            .field_opt("context_switches", s.context_switches)
            .field_opt("interrupts", s.interrupts)
            .field_opt("processes_forked", s.processes_forked);
        match self.vmstat.read(&mut self.buf) {
            Ok(()) => {
                let [i, o] = vmstat::values(&self.buf, ["pgpgin", "pgpgout"]);
                m = m
                    .field_opt("disk_pages_in", i)
                    .field_opt("disk_pages_out", o);
            }
            Err(e) => acc.partial_error(vmstat::PATH, &e),
        }
        match self.entropy.read(&mut self.buf) {
            Ok(()) => m = m.field_opt("entropy_avail", self.buf.trim().parse::<u64>().ok()),
            Err(e) => acc.partial_error("entropy_avail", &e),
        }
        for (name, file) in &mut self.ksm {
            if file.read(&mut self.buf).is_ok()
                && let Ok(v) = self.buf.trim().parse::<i64>()
            {
                m = m.field(Key::Owned(name.clone()), v);
            }
        }
        acc.add(m);
        if self.config.psi {
            for (i, resource) in ["cpu", "memory", "io"].into_iter().enumerate() {
                if let Err(e) = self.pressure[i].read(&mut self.buf) {
                    acc.partial_error(self.pressure[i].path(), &e);
                    continue;
                }
                for p in parse_pressure(&self.buf) {
                    acc.add(
                        Metric::new("pressure", ts)
                            .tag("resource", resource)
                            .tag("type", p.kind)
                            .field("avg10", p.avg10)
                            .field("avg60", p.avg60)
                            .field("avg300", p.avg300)
                            .field("total", p.total),
                    );
                }
            }
        }
        Ok(())
    }
}

super::ticked_input!(Kernel, super::Shape::Local);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::hostutil::testing::TestAcc;

    #[test]
    fn pressure_fixtures() {
        let p = parse_pressure(include_str!("../../tests/fixtures/pressure/memory"));
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].kind, "some");
        assert_eq!(p[1].kind, "full");
        let cpu = parse_pressure(include_str!("../../tests/fixtures/pressure/cpu"));
        assert!(cpu[0].total > 0);
        assert_eq!(
            parse_pressure("some avg10=1.50 avg60=0.25 avg300=0.00 total=42\nbad line\n"),
            vec![Pressure {
                kind: "some",
                avg10: 1.5,
                avg60: 0.25,
                avg300: 0.0,
                total: 42
            }]
        );
    }

    #[test]
    fn collect_validation() {
        let raw: Raw = toml::from_str("collect = [\"ksm\", \"other\"]").unwrap();
        let ksm_here = std::path::Path::new(KSM_DIR).is_dir();
        assert_eq!(resolve(raw).map(|c| c.ksm).ok(), ksm_here.then_some(true));
        let raw: Raw = toml::from_str("collect = [\"psi\"]").unwrap();
        assert!(resolve(raw).unwrap().psi);
    }

    #[tokio::test]
    async fn gather_with_psi() {
        let ksm = std::path::Path::new(KSM_DIR).is_dir();
        let mut k = Kernel::new(Config {
            psi: true,
            ksm,
            ignored: Vec::new(),
        });
        let mut t = TestAcc::new();
        k.gather(&mut t.acc).await.unwrap();
        let lines = t.lines();
        assert!(lines[0].starts_with("kernel boot_time="), "{lines:?}");
        assert!(lines[0].contains("entropy_avail="));
        if ksm {
            assert!(lines[0].contains(",ksm_full_scans="), "{lines:?}");
            assert!(lines[0].contains(",ksm_use_zero_pages="), "{lines:?}");
        }
        if std::path::Path::new("/proc/pressure/cpu").exists() {
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with("pressure,resource=io,type=full avg10="))
            );
        }
    }
}
