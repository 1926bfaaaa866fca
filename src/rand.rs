//! The crate's one source of random numbers: backoff and schedule jitter, ICMP echo
//! identifiers, DNS query ids. None needs a stream of many values or a seedable sequence, so
//! no generator state is kept and no crate is used: each value is SipHash (std's `RandomState`)
//! of a process-wide counter under keys std draws from the OS random source once per thread.
//! The values are unpredictable from outside the process (what the echo identifier and the
//! DNS id want) and distinct per call (what the jitter wants). A leaf: imports nothing from
//! the crate.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

/// A random 64-bit value.
pub(crate) fn u64() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    h.finish()
}

/// A random 16-bit value.
pub(crate) fn u16() -> u16 {
    u64() as u16
}

/// A uniformly distributed value in [0, 1) (53 random bits, the precision of an f64).
pub(crate) fn unit_f64() -> f64 {
    (u64() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_is_in_range_and_spread() {
        let v: Vec<f64> = (0..1000).map(|_| unit_f64()).collect();
        assert!(v.iter().all(|x| (0.0..1.0).contains(x)));
        // 1000 uniform draws: each tenth of [0, 1) holds ~100; 40 is > 6 sigma below.
        for d in 0..10 {
            let lo = d as f64 / 10.0;
            let n = v.iter().filter(|x| (lo..lo + 0.1).contains(*x)).count();
            assert!(n > 40, "decile {d}: {n}");
        }
    }

    #[test]
    fn values_differ_between_calls_and_threads() {
        let here: Vec<u64> = (0..64).map(|_| u64()).collect();
        let there = std::thread::spawn(|| (0..64).map(|_| u64()).collect::<Vec<_>>())
            .join()
            .unwrap();
        let mut all: Vec<u64> = here.iter().chain(&there).copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 128);
        let ids: std::collections::HashSet<u16> = (0..64).map(|_| u16()).collect();
        assert!(ids.len() > 50, "{}", ids.len());
    }
}
