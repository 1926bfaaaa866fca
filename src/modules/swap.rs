//! `swap`: swap space and swap traffic, as telegraf's `swap` input: measurement `swap`, no tags,
//! two lines per gather — a gauge line `total, used, free` (bytes) and `used_percent`, and a
//! counter line `in, out` (bytes swapped in/out since boot: `/proc/vmstat` `pswpin`/`pswpout`
//! pages × page size). Sizes come from `/proc/meminfo` `SwapTotal`/`SwapFree`; used = total − free.

use serde::Deserialize;

use super::GatherError;
use std::ops::ControlFlow;

use super::hostutil::{ProcFile, page_size};
use super::procfs::{meminfo, vmstat};
use crate::options::SpanError;
use crate::output::{Accumulator, Metric, now_ns};

/// `[[inputs.swap]]` (no options, like telegraf's).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {}

#[derive(Debug, Clone)]
pub(crate) struct Config;

pub(crate) fn resolve(_raw: Raw) -> Result<Config, SpanError> {
    Ok(Config)
}

/// (SwapTotal, SwapFree) in bytes.
pub(crate) fn parse_meminfo_swap(text: &str) -> Option<(u64, u64)> {
    let (mut total, mut free) = (None, None);
    meminfo::parse(text, |key, v| {
        match key {
            "SwapTotal" => total = v.get(),
            "SwapFree" => free = v.get(),
            _ => return ControlFlow::Continue(()),
        }
        if total.is_some() && free.is_some() {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    Some((total?, free?))
}

pub(crate) struct Swap {
    meminfo: ProcFile,
    vmstat: ProcFile,
    buf: String,
    page: u64,
}

impl Swap {
    pub(crate) fn new(_config: Config) -> Self {
        Swap {
            meminfo: ProcFile::new(meminfo::PATH),
            vmstat: ProcFile::new(vmstat::PATH),
            buf: String::with_capacity(4096),
            page: page_size(),
        }
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        self.meminfo.read_required(&mut self.buf)?;
        let (total, free) = parse_meminfo_swap(&self.buf)
            .ok_or_else(|| GatherError::Failed("/proc/meminfo has no SwapTotal/SwapFree".into()))?;
        let used = total.saturating_sub(free);
        let pct = if total == 0 {
            0.0
        } else {
            100.0 * used as f64 / total as f64
        };
        acc.add(
            Metric::new("swap", ts)
                .field("total", total)
                .field("used", used)
                .field("free", free)
                .field("used_percent", pct),
        );
        match self.vmstat.read(&mut self.buf) {
            Ok(()) => {
                if let [Some(i), Some(o)] = vmstat::values(&self.buf, ["pswpin", "pswpout"]) {
                    acc.add(
                        Metric::new("swap", ts)
                            .field("in", i * self.page)
                            .field("out", o * self.page),
                    );
                }
            }
            Err(e) => acc.partial_error(vmstat::PATH, &e),
        }
        Ok(())
    }
}

super::ticked_input!(Swap, super::Shape::Local);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::hostutil::testing::TestAcc;

    #[test]
    fn fixtures() {
        let meminfo = include_str!("../../tests/fixtures/mem/meminfo");
        let (total, free) = parse_meminfo_swap(meminfo).unwrap();
        assert!(free <= total);
        assert_eq!(
            parse_meminfo_swap("SwapTotal: 2 kB\nSwapFree: 1 kB\n"),
            Some((2048, 1024))
        );
        assert_eq!(parse_meminfo_swap("SwapTotal: 2 kB\n"), None);
    }

    #[tokio::test]
    async fn two_lines() {
        let mut s = Swap::new(Config);
        let mut t = TestAcc::new();
        s.gather(&mut t.acc).await.unwrap();
        let lines = t.lines();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].contains("used_percent="));
        assert!(lines[1].starts_with("swap in=") && lines[1].contains(",out="));
    }
}
