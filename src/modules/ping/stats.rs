//! Round statistics over the RTTs of one target, in milliseconds.

/// Summary of the replies of one target in one gather.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Summary {
    pub min: f64,
    pub avg: f64,
    pub max: f64,
    /// Population standard deviation (as ping and telegraf's native method report it).
    pub stddev: f64,
    pub median: f64,
    pub p95: f64,
    /// Mean absolute difference of consecutive RTTs, in the order the requests were sent;
    /// `None` with fewer than two replies.
    pub jitter: Option<f64>,
}

/// `rtts` in send order. `None` when empty.
pub(super) fn summarize(rtts: &[f64]) -> Option<Summary> {
    if rtts.is_empty() {
        return None;
    }
    let n = rtts.len() as f64;
    let avg = rtts.iter().sum::<f64>() / n;
    let var = rtts.iter().map(|r| (r - avg) * (r - avg)).sum::<f64>() / n;
    let jitter = (rtts.len() >= 2).then(|| {
        rtts.windows(2).map(|w| (w[1] - w[0]).abs()).sum::<f64>() / (rtts.len() - 1) as f64
    });
    let mut sorted = rtts.to_vec();
    sorted.sort_by(f64::total_cmp);
    Some(Summary {
        min: sorted[0],
        avg,
        max: sorted[sorted.len() - 1],
        stddev: var.sqrt(),
        median: percentile(&sorted, 50.0),
        p95: percentile(&sorted, 95.0),
        jitter,
    })
}

/// Percentile `p` (0..=100) of sorted, non-empty `sorted` with linear interpolation between
/// closest ranks (Hyndman & Fan type 7, the method telegraf's `percentiles` option uses).
pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    let h = (sorted.len() - 1) as f64 * (p / 100.0).clamp(0.0, 1.0);
    let lo = h.floor() as usize;
    let hi = h.ceil() as usize;
    sorted[lo] + (h - lo as f64) * (sorted[hi] - sorted[lo])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn fixed_inputs() {
        // Send order 1, 3, 2, 4, 10.
        let s = summarize(&[1.0, 3.0, 2.0, 4.0, 10.0]).unwrap();
        assert_eq!((s.min, s.max), (1.0, 10.0));
        assert!(close(s.avg, 4.0));
        // Population variance: (9 + 1 + 4 + 0 + 36) / 5 = 10.
        assert!(close(s.stddev, 10f64.sqrt()));
        assert!(close(s.median, 3.0));
        // Type 7: h = 4 * 0.95 = 3.8 → 4 + 0.8 * (10 - 4) = 8.8.
        assert!(close(s.p95, 8.8));
        // |3-1| + |2-3| + |4-2| + |10-4| = 11 over 4 differences.
        assert!(close(s.jitter.unwrap(), 2.75));
    }

    #[test]
    fn even_count_median_interpolates() {
        let s = summarize(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert!(close(s.median, 2.5));
        assert!(close(s.p95, 3.85));
    }

    #[test]
    fn single_and_empty() {
        let s = summarize(&[0.25]).unwrap();
        assert_eq!(
            (s.min, s.avg, s.max, s.median, s.p95),
            (0.25, 0.25, 0.25, 0.25, 0.25)
        );
        assert_eq!(s.stddev, 0.0);
        assert_eq!(s.jitter, None);
        assert_eq!(summarize(&[]), None);
    }

    #[test]
    fn percentile_edges() {
        let v = [1.0, 2.0, 3.0];
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert_eq!(percentile(&v, 100.0), 3.0);
        assert_eq!(percentile(&v, 150.0), 3.0);
        assert_eq!(percentile(&v, 50.0), 2.0);
    }
}
