//! `/proc/meminfo`: `Key:   123 kB` lines.

use std::ops::ControlFlow;

use crate::modules::hostutil::kv_number;

pub(crate) const PATH: &str = "/proc/meminfo";

/// The value of one line, parsed only when asked for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Value<'a>(&'a str);

impl Value<'_> {
    /// Bytes for a value in kB (nearly all), else the number as written (the `HugePages_*`
    /// counts); `None` if the line holds no number.
    pub(crate) fn get(self) -> Option<u64> {
        kv_number(self.0).map(|(n, kb)| if kb { n * 1024 } else { n })
    }
}

/// Calls `f(key, value)` for every line, in file order, until it returns `Break`. The value is
/// parsed only by [`Value::get`], so keys a caller does not want cost no number parsing.
pub(crate) fn parse(text: &str, mut f: impl FnMut(&str, Value<'_>) -> ControlFlow<()>) {
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        if f(key, Value(rest)).is_break() {
            return;
        }
    }
}

/// The value of one key (see [`Value::get`]).
pub(crate) fn value(text: &str, want: &str) -> Option<u64> {
    let mut out = None;
    parse(text, |k, v| {
        if k == want {
            out = v.get();
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MEMINFO: &str = include_str!("../../../tests/fixtures/mem/meminfo");

    #[test]
    fn fixture() {
        let total = value(MEMINFO, "MemTotal").unwrap();
        assert!(total > 0 && total.is_multiple_of(1024), "kB become bytes");
        let huge = value(MEMINFO, "HugePages_Total").unwrap();
        assert!(huge < total / 1024, "counts stay counts");
        assert!(value(MEMINFO, "SwapFree").unwrap() <= value(MEMINFO, "SwapTotal").unwrap());
        assert_eq!(value(MEMINFO, "NoSuchKey"), None);
        let mut keys = 0;
        parse(MEMINFO, |_, _| {
            keys += 1;
            ControlFlow::Continue(())
        });
        assert_eq!(keys, MEMINFO.lines().count());
    }

    #[test]
    fn hand_made_lines() {
        let text = "MemTotal:  1000 kB\nBad line\nHugePages_Total:   3\nEmpty:\nMemFree: 5 kB\n";
        assert_eq!(value(text, "MemTotal"), Some(1000 * 1024));
        assert_eq!(value(text, "HugePages_Total"), Some(3));
        assert_eq!(value(text, "Empty"), None);
        let mut seen = Vec::new();
        parse(text, |k, _| {
            seen.push(k.to_owned());
            if k == "HugePages_Total" {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(seen, ["MemTotal", "HugePages_Total"], "stops when told");
    }
}
