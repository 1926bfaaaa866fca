//! `cpu`: CPU time shares from `/proc/stat`, as telegraf's `cpu` input: measurement `cpu`, tag
//! `cpu` = `cpu0`… or `cpu-total`. `usage_*` (percent) are computed from the change between two
//! gathers, so the first gather only records a sample and emits nothing (telegraf does the same);
//! `time_*` (seconds since boot) are emitted on every gather when `collect_cpu_time` is set.
//!
//! Telegraf's arithmetic: the kernel counts guest time inside user (and guest_nice inside nice),
//! so `usage_user` = user − guest and `usage_nice` = nice − guest_nice; the total is
//! user+system+nice+iowait+irq+softirq+steal+idle (guest not added twice); active = total − idle.

use std::collections::HashMap;

use serde::Deserialize;

use super::GatherError;
use super::hostutil::{ProcFile, clk_tck};
use super::procfs::stat;
pub(crate) use super::procfs::stat::CpuTimes;
use crate::options::SpanError;
use crate::output::{Accumulator, Metric, now_ns};

/// `[[inputs.cpu]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// One line per CPU (`cpu=cpu0`, `cpu1` …). Default true.
    percpu: Option<bool>,
    /// One line for the whole machine (`cpu=cpu-total`). Default true.
    totalcpu: Option<bool>,
    /// Also emit `time_*` fields: seconds spent in each state since boot (floats). Default false.
    collect_cpu_time: Option<bool>,
    /// Also emit `usage_active` (100 − idle share) and, with `collect_cpu_time`, `time_active`.
    /// Default false.
    report_active: Option<bool>,
    /// Add `core_id` and `physical_id` tags from `/sys/devices/system/cpu/cpuN/topology`.
    /// Default false.
    core_tags: Option<bool>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub percpu: bool,
    pub totalcpu: bool,
    pub collect_cpu_time: bool,
    pub report_active: bool,
    pub core_tags: bool,
}

pub(crate) fn resolve(raw: Raw) -> Result<Config, SpanError> {
    Ok(Config {
        percpu: raw.percpu.unwrap_or(true),
        totalcpu: raw.totalcpu.unwrap_or(true),
        collect_cpu_time: raw.collect_cpu_time.unwrap_or(false),
        report_active: raw.report_active.unwrap_or(false),
        core_tags: raw.core_tags.unwrap_or(false),
    })
}

pub(crate) struct Cpu {
    config: Config,
    stat: ProcFile,
    buf: String,
    last: HashMap<String, CpuTimes>,
    topology: HashMap<String, (String, String)>,
    hz: f64,
}

impl Cpu {
    pub(crate) fn new(config: Config) -> Self {
        Cpu {
            config,
            stat: ProcFile::new(stat::PATH),
            buf: String::with_capacity(4096),
            last: HashMap::new(),
            topology: HashMap::new(),
            hz: clk_tck(),
        }
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        self.stat.read_required(&mut self.buf)?;
        let buf = std::mem::take(&mut self.buf);
        let mut seen = 0usize;
        stat::parse(
            &buf,
            Some(&mut |name, t| {
                seen += 1;
                let (tag, wanted) = if name == "cpu" {
                    ("cpu-total", self.config.totalcpu)
                } else {
                    (name, self.config.percpu)
                };
                if wanted {
                    self.emit(acc, ts, tag, t);
                }
            }),
        );
        self.buf = buf;
        if seen == 0 {
            return Err(GatherError::Failed("/proc/stat has no cpu lines".into()));
        }
        Ok(())
    }

    fn emit(&mut self, acc: &mut Accumulator, ts: i64, tag: &str, t: CpuTimes) {
        let base = |s: &mut Self| {
            let mut m = Metric::new("cpu", ts).tag("cpu", tag);
            if s.config.core_tags && tag != "cpu-total" {
                let (core, phys) = s.topology(tag);
                m = m.tag("core_id", core).tag("physical_id", phys);
            }
            m
        };
        let hz = self.hz;
        if self.config.collect_cpu_time {
            let s = |v: u64| v as f64 / hz;
            let mut m = base(self)
                .field("time_user", s(t.user))
                .field("time_system", s(t.system))
                .field("time_idle", s(t.idle))
                .field("time_nice", s(t.nice))
                .field("time_iowait", s(t.iowait))
                .field("time_irq", s(t.irq))
                .field("time_softirq", s(t.softirq))
                .field("time_steal", s(t.steal))
                .field("time_guest", s(t.guest))
                .field("time_guest_nice", s(t.guest_nice));
            if self.config.report_active {
                m = m.field("time_active", s(t.total().saturating_sub(t.idle)));
            }
            acc.add(m);
        }
        let prev = self.last.insert(tag.to_owned(), t);
        let Some(p) = prev else { return };
        let total = t.total() as f64 - p.total() as f64;
        if total < 0.0 {
            // Counters went back (CPU hot-unplugged and back): skip this sample, as telegraf does.
            acc.partial_error("cpu time went backwards",
                &format!("{tag}: total decreased by {} ticks", -total),
            );
            return;
        }
        if total == 0.0 {
            return;
        }
        let pct = |a: u64, b: u64| 100.0 * (a as f64 - b as f64) / total;
        let mut m = base(self)
            .field(
                "usage_user",
                pct(
                    t.user.saturating_sub(t.guest),
                    p.user.saturating_sub(p.guest),
                ),
            )
            .field("usage_system", pct(t.system, p.system))
            .field("usage_idle", pct(t.idle, p.idle))
            .field(
                "usage_nice",
                pct(
                    t.nice.saturating_sub(t.guest_nice),
                    p.nice.saturating_sub(p.guest_nice),
                ),
            )
            .field("usage_iowait", pct(t.iowait, p.iowait))
            .field("usage_irq", pct(t.irq, p.irq))
            .field("usage_softirq", pct(t.softirq, p.softirq))
            .field("usage_steal", pct(t.steal, p.steal))
            .field("usage_guest", pct(t.guest, p.guest))
            .field("usage_guest_nice", pct(t.guest_nice, p.guest_nice));
        if self.config.report_active {
            m = m.field(
                "usage_active",
                pct(t.total() - t.idle, p.total().saturating_sub(p.idle)),
            );
        }
        acc.add(m);
    }

    /// `core_id` and `physical_id` of `cpuN`, read once ("" when the kernel has no topology).
    fn topology(&mut self, cpu: &str) -> (String, String) {
        if let Some(v) = self.topology.get(cpu) {
            return v.clone();
        }
        let read = |f: &str| {
            let path = format!("/sys/devices/system/cpu/{cpu}/topology/{f}");
            std::fs::read_to_string(&*super::procfs::host::path(&path))
                .map(|s| s.trim().to_owned())
                .unwrap_or_default()
        };
        let v = (read("core_id"), read("physical_package_id"));
        self.topology.insert(cpu.to_owned(), v.clone());
        v
    }
}

super::ticked_input!(Cpu, super::Shape::Local);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::hostutil::testing::TestAcc;

    fn times(user: u64, nice: u64, system: u64, idle: u64, guest: u64, gn: u64) -> CpuTimes {
        CpuTimes {
            user,
            nice,
            system,
            idle,
            guest,
            guest_nice: gn,
            ..Default::default()
        }
    }

    #[test]
    fn usage_math_follows_telegraf() {
        let mut cpu = Cpu::new(
            resolve(Raw {
                report_active: Some(true),
                collect_cpu_time: Some(true),
                ..Default::default()
            })
            .unwrap(),
        );
        let mut t = TestAcc::new();
        cpu.emit(&mut t.acc, 1, "cpu-total", times(100, 10, 50, 1000, 20, 5));
        // First sample: only the time line.
        let first = t.lines();
        assert_eq!(first.len(), 1);
        assert!(
            first[0].contains("time_user=1.0,") && first[0].contains("time_active=1.6"),
            "{first:?}"
        );
        // Delta: user +40 (of which guest +10), nice +10 (guest_nice +5), system +20, idle +130.
        cpu.emit(&mut t.acc, 2, "cpu-total", times(140, 20, 70, 1130, 30, 10));
        let lines = t.lines();
        let usage = lines.iter().find(|l| l.contains("usage_user")).unwrap();
        // total delta = 40 + 10 + 20 + 130 = 200
        assert!(usage.contains("usage_user=15.0,"), "{usage}");
        assert!(usage.contains("usage_nice=2.5,"), "{usage}");
        assert!(usage.contains("usage_system=10.0,"), "{usage}");
        assert!(usage.contains("usage_idle=65.0,"), "{usage}");
        assert!(usage.contains("usage_guest=5.0,"), "{usage}");
        assert!(usage.contains("usage_guest_nice=2.5,"), "{usage}");
        assert!(usage.contains("usage_active=35.0 "), "{usage}");
    }

    #[test]
    fn backwards_counters_are_a_counted_error() {
        let mut cpu = Cpu::new(resolve(Raw::default()).unwrap());
        let mut t = TestAcc::new();
        cpu.emit(&mut t.acc, 1, "cpu0", times(100, 0, 0, 100, 0, 0));
        cpu.emit(&mut t.acc, 2, "cpu0", times(10, 0, 0, 10, 0, 0));
        assert!(t.lines().is_empty());
        assert_eq!(t.errors(), 1);
    }

    #[tokio::test]
    async fn gather_primes_then_reports() {
        let mut cpu = Cpu::new(resolve(Raw::default()).unwrap());
        let mut t = TestAcc::new();
        cpu.gather(&mut t.acc).await.unwrap();
        assert!(t.lines().is_empty(), "first gather only primes");
        // Burn a little CPU so the counters move.
        let start = std::time::Instant::now();
        while start.elapsed() < std::time::Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        cpu.gather(&mut t.acc).await.unwrap();
        let lines = t.lines();
        assert!(lines.iter().any(|l| l.starts_with("cpu,cpu=cpu-total ")));
        assert!(lines.iter().any(|l| l.starts_with("cpu,cpu=cpu0 ")));
    }
}
