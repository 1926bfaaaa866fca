//! `/proc/stat`: the `cpu` lines (clock ticks per state) and the kernel counters after them.

pub(crate) const PATH: &str = "/proc/stat";

/// One `cpu…` line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
    pub guest: u64,
    pub guest_nice: u64,
}

impl CpuTimes {
    /// Telegraf's total: guest and guest_nice are already inside user and nice.
    /// Saturating: the counters are whatever the file says (under `HOST_PROC`, any file).
    pub(crate) fn total(&self) -> u64 {
        [
            self.system,
            self.nice,
            self.iowait,
            self.irq,
            self.softirq,
            self.steal,
            self.idle,
        ]
        .iter()
        .fold(self.user, |a, &b| a.saturating_add(b))
    }
}

/// The counters of the non-cpu lines.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Counters {
    /// `btime`: boot time, seconds since the epoch.
    pub boot_time: Option<u64>,
    /// `ctxt`
    pub context_switches: Option<u64>,
    /// `intr` (its first number: the total)
    pub interrupts: Option<u64>,
    /// `processes`: forks since boot.
    pub processes_forked: Option<u64>,
}

/// Called with each cpu line's name and times.
pub(crate) type OnCpu<'a> = &'a mut dyn FnMut(&str, CpuTimes);

/// One pass over `/proc/stat`. `cpu`, when given, is called for every `cpu` line (`cpu` for the
/// total, `cpuN`), in file order; the other lines fill the returned counters. Missing trailing
/// columns of a cpu line (old kernels) read as 0. Callers without `cpu` do not pay for parsing
/// the cpu lines.
pub(crate) fn parse(text: &str, mut cpu: Option<OnCpu<'_>>) -> Counters {
    let mut c = Counters::default();
    for line in text.lines() {
        if line.starts_with("cpu") {
            if let Some(f) = cpu.as_mut() {
                let mut it = line.split_ascii_whitespace();
                let Some(name) = it.next() else { continue };
                f(name, cpu_times(it));
            }
            continue;
        }
        let Some((key, rest)) = line.split_once(' ') else {
            continue;
        };
        let first = || rest.split_ascii_whitespace().next()?.parse().ok();
        match key {
            "btime" => c.boot_time = first(),
            "ctxt" => c.context_switches = first(),
            "intr" => c.interrupts = first(),
            "processes" => c.processes_forked = first(),
            _ => {}
        }
    }
    c
}

fn cpu_times<'a>(mut it: impl Iterator<Item = &'a str>) -> CpuTimes {
    let mut v = [0u64; 10];
    for slot in v.iter_mut() {
        match it.next().and_then(|s| s.parse().ok()) {
            Some(n) => *slot = n,
            None => break,
        }
    }
    CpuTimes {
        user: v[0],
        nice: v[1],
        system: v[2],
        idle: v[3],
        iowait: v[4],
        irq: v[5],
        softirq: v[6],
        steal: v[7],
        guest: v[8],
        guest_nice: v[9],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_fixture() {
        let mut names = Vec::new();
        let mut total = None;
        let c = parse(
            include_str!("../../../tests/fixtures/cpu/stat"),
            Some(&mut |n, t| {
                names.push(n.to_owned());
                if n == "cpu" {
                    total = Some(t);
                }
            }),
        );
        assert_eq!(names[0], "cpu");
        assert!(names.iter().any(|n| n == "cpu0"));
        let t = total.unwrap();
        assert!(t.user > 0 && t.idle > 0);
        assert!(c.boot_time.unwrap() > 1_000_000_000);
    }

    #[test]
    fn kernel_fixture() {
        let mut cpus = 0;
        let text = include_str!("../../../tests/fixtures/kernel/stat");
        let c = parse(text, Some(&mut |_, _| cpus += 1));
        assert!(cpus >= 2, "cpu and at least cpu0");
        assert!(c.boot_time.unwrap() > 1_000_000_000);
        assert!(c.context_switches.unwrap() > 0);
        assert!(c.interrupts.unwrap() > 0);
        assert!(c.processes_forked.unwrap() > 0);
        assert_eq!(
            parse(text, None),
            c,
            "the counters do not need the cpu lines"
        );
    }

    #[test]
    fn hand_made_lines() {
        let mut seen = Vec::new();
        let c = parse(
            "cpu  1 2 3 4\ncpu0 5 6 7 8 9 10 11 12 13 14 15\nintr 99 1 2\nbtime x\nctxt\n",
            Some(&mut |n, t| seen.push((n.to_owned(), t))),
        );
        assert_eq!(seen[0].1.idle, 4);
        assert_eq!(seen[0].1.iowait, 0, "missing columns read as 0");
        assert_eq!((seen[1].1.user, seen[1].1.guest_nice), (5, 14));
        assert_eq!(seen[1].1.total(), 5 + 7 + 6 + 9 + 10 + 11 + 12 + 8);
        assert_eq!(
            c,
            Counters {
                interrupts: Some(99),
                ..Default::default()
            }
        );
    }
}
