//! When gathers happen. With `round_interval` (telegraf's default) ticks fall on wall-clock
//! multiples of the interval, so every agent and every instance with the same interval gathers
//! at :00, :10, :20...; each tick is computed from the clock, never by adding intervals, so there
//! is no drift. An optional jitter delays each tick by a random fraction.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::backoff::random_unit;

#[derive(Debug, Clone)]
pub(crate) struct Schedule {
    interval: Duration,
    round: bool,
    jitter: Duration,
    /// telegraf's `collection_offset`: ticks fall this long after each boundary.
    offset: Duration,
    start: Instant,
}

/// The next tick of an instance.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tick {
    pub at: Instant,
    /// The boundary this tick falls on (ns on the wall clock, or since the shared start), the
    /// same for every instance that ticks on it; `None` with jitter, where instances on one
    /// boundary do not tick together.
    pub boundary: Option<u128>,
}

impl Schedule {
    /// `start` is shared by every instance of one configuration, so that without
    /// `round_interval` instances with the same interval still tick together (one timer
    /// wake-up, one output round) instead of a few µs apart.
    pub(crate) fn new(interval: Duration, round: bool, jitter: Duration, start: Instant) -> Self {
        Schedule {
            interval,
            round,
            jitter,
            offset: Duration::ZERO,
            start,
        }
    }

    pub(crate) fn with_offset(mut self, offset: Duration) -> Self {
        self.offset = offset;
        self
    }

    /// The first tick after `now` that is at least `min_gap` away (the instance gathered at
    /// start-up, so a boundary a few ms later would be a near-duplicate).
    pub(crate) fn next_after(&self, now: Instant, min_gap: Duration) -> Tick {
        let origin = if self.round {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
        } else {
            now.saturating_duration_since(self.start)
        };
        // Boundaries of the offset grid: multiples of the interval, plus the offset. Before the
        // first whole interval (origin < offset) the first boundary is the offset itself.
        let base = if origin < self.offset && self.offset - origin >= min_gap {
            self.offset - origin
        } else {
            next_boundary(origin.saturating_sub(self.offset), self.interval, min_gap)
        };
        let boundary = (origin + base).as_nanos();
        if self.jitter.is_zero() {
            Tick {
                at: now + base,
                boundary: Some(boundary),
            }
        } else {
            Tick {
                at: now + base + self.jitter.mul_f64(random_unit()),
                boundary: None,
            }
        }
    }
}

/// Time from `now` (a duration since some origin) to the next multiple of `interval` that lies
/// at least `min_gap` ahead.
pub(crate) fn next_boundary(now: Duration, interval: Duration, min_gap: Duration) -> Duration {
    let iv = interval.as_nanos().max(1);
    let n = now.as_nanos();
    let mut next = (n / iv + 1) * iv;
    while next - n < min_gap.as_nanos() {
        next += iv;
    }
    Duration::from_nanos(u64::try_from(next - n).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_moves_every_tick_after_its_boundary() {
        let start = Instant::now();
        let s = Schedule::new(Duration::from_secs(1), false, Duration::ZERO, start)
            .with_offset(Duration::from_millis(300));
        let t = s.next_after(start, Duration::ZERO);
        assert_eq!(t.at - start, Duration::from_millis(300));
        let t = s.next_after(start + Duration::from_millis(400), Duration::ZERO);
        assert_eq!(t.at - start, Duration::from_millis(1300));
        assert_eq!(t.boundary, Some(Duration::from_millis(1300).as_nanos()));
    }

    #[test]
    fn boundaries_are_aligned_and_respect_the_gap() {
        let s = Duration::from_secs;
        let ms = Duration::from_millis;
        assert_eq!(next_boundary(ms(12_300), s(10), Duration::ZERO), ms(7_700));
        assert_eq!(next_boundary(ms(19_900), s(10), s(5)), ms(10_100));
        assert_eq!(next_boundary(s(20), s(10), Duration::ZERO), s(10));
    }
}
