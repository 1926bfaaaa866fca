//! Restart delays for a failing instance: 1 s doubling to 60 s with ±20 % jitter (so instances
//! that fail together do not restart in step), back to 1 s once an instance has run without a
//! failure for `HEALTHY_RESET`.

use std::time::{Duration, Instant};

const BASE: Duration = Duration::from_secs(1);
const MAX: Duration = Duration::from_secs(60);
/// An instance that has not failed for this long is considered healthy again.
const HEALTHY_RESET: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
pub(crate) struct Backoff {
    attempt: u32,
    last_failure: Option<Instant>,
}

impl Backoff {
    /// Records a failure at `now` and returns how long to wait before the next start.
    pub(crate) fn failure(&mut self, now: Instant) -> Duration {
        if self
            .last_failure
            .is_some_and(|t| now.saturating_duration_since(t) >= HEALTHY_RESET)
        {
            self.attempt = 0;
        }
        self.last_failure = Some(now);
        let exp = BASE.saturating_mul(1u32 << self.attempt.min(16));
        self.attempt = self.attempt.saturating_add(1);
        let delay = exp.min(MAX);
        delay.mul_f64(0.8 + 0.4 * random_unit())
    }
}

/// A uniformly distributed value in [0, 1); seeded per call from std's per-process random keys.
pub(crate) fn random_unit() -> f64 {
    crate::rand::unit_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_and_resets() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        let d: Vec<f64> = (0..9)
            .map(|i| b.failure(t0 + Duration::from_secs(i)).as_secs_f64())
            .collect();
        for (i, want) in [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
            .iter()
            .enumerate()
        {
            assert!(
                d[i] >= want * 0.8 && d[i] <= want * 1.2,
                "attempt {i}: {} vs {want}",
                d[i]
            );
        }
        let later = t0 + Duration::from_secs(8) + HEALTHY_RESET;
        assert!(b.failure(later) <= Duration::from_millis(1200));
    }

    #[test]
    fn random_unit_is_in_range_and_varies() {
        let v: Vec<f64> = (0..100).map(|_| random_unit()).collect();
        assert!(v.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(v.windows(2).any(|w| w[0] != w[1]));
    }
}
