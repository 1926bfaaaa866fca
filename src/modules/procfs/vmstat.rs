//! `/proc/vmstat`: `key value` lines.

pub(crate) const PATH: &str = "/proc/vmstat";

/// Values of the named keys (one pass); `None` for a key the file does not have.
pub(crate) fn values<const N: usize>(text: &str, keys: [&str; N]) -> [Option<u64>; N] {
    let mut out = [None; N];
    for line in text.lines() {
        let Some((k, v)) = line.split_once(' ') else {
            continue;
        };
        if let Some(i) = keys.iter().position(|x| *x == k) {
            out[i] = v.trim().parse().ok();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixture() {
        let vmstat = include_str!("../../../tests/fixtures/swap/vmstat");
        let [i, o, x] = values(vmstat, ["pswpin", "pswpout", "nope"]);
        assert!(i.is_some() && o.is_some() && x.is_none());
        assert_eq!(values("a 1\nb x\nc 3\n", ["c", "b"]), [Some(3), None]);
    }
}
