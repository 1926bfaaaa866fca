//! The bounded queue between the inputs and the stdout writer. Producers never block: when the
//! queue is full (telegraf stopped reading) the oldest batches are evicted, as telegraf's own
//! metric buffer does, and every evicted line is counted.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::stats::{self, AgentStats, lock};

/// Whole encoded lines; `bytes` always ends with `\n`.
#[derive(Debug, Default)]
pub struct Batch {
    pub bytes: Vec<u8>,
    pub lines: u64,
}

impl Batch {
    /// What the batch costs in memory: its allocation, not just its length.
    fn cost(&self) -> usize {
        self.bytes.capacity() + std::mem::size_of::<Batch>()
    }
}

#[derive(Debug)]
struct State {
    batches: VecDeque<Batch>,
    lines: usize,
    bytes: usize,
    max_lines: usize,
    max_bytes: usize,
}

#[derive(Debug)]
pub struct Queue {
    state: Mutex<State>,
    ready: Condvar,
    closed: AtomicBool,
    /// When drops were last logged (ms since `origin`), so a stalled reader costs one log line a
    /// minute, not one per batch.
    last_drop_log_ms: AtomicU64,
    origin: Instant,
}

/// Drops are logged at most this often; every dropped line is counted regardless.
const DROP_LOG_EVERY: Duration = Duration::from_secs(60);

impl Queue {
    pub fn new(max_lines: usize, max_bytes: usize) -> Self {
        Queue {
            state: Mutex::new(State {
                batches: VecDeque::new(),
                lines: 0,
                bytes: 0,
                max_lines,
                max_bytes,
            }),
            ready: Condvar::new(),
            closed: AtomicBool::new(false),
            last_drop_log_ms: AtomicU64::new(0),
            origin: Instant::now(),
        }
    }

    /// Applies new limits (on reload); evicts at the next push if the queue is now over them.
    pub fn set_limits(&self, max_lines: usize, max_bytes: usize) {
        let mut st = lock(&self.state);
        st.max_lines = max_lines;
        st.max_bytes = max_bytes;
    }

    /// Enqueues a batch, evicting the oldest batches if needed. Never blocks on the reader.
    pub fn push(&self, batch: Batch, stats: &AgentStats) {
        if batch.lines == 0 {
            return;
        }
        let mut st = lock(&self.state);
        let lines = usize::try_from(batch.lines).unwrap_or(usize::MAX);
        let cost = batch.cost();
        if lines > st.max_lines || cost > st.max_bytes {
            drop(st);
            self.dropped(batch.lines, stats);
            return;
        }
        let mut evicted = 0;
        while st.lines + lines > st.max_lines || st.bytes + cost > st.max_bytes {
            let Some(old) = st.batches.pop_front() else {
                break;
            };
            st.lines -= usize::try_from(old.lines).unwrap_or(0);
            st.bytes -= old.cost();
            evicted += old.lines;
        }
        st.lines += lines;
        st.bytes += cost;
        st.batches.push_back(batch);
        stats::add(&stats.lines_queued, lines as u64);
        drop(st);
        self.ready.notify_one();
        if evicted > 0 {
            self.dropped(evicted, stats);
        }
    }

    fn dropped(&self, lines: u64, stats: &AgentStats) {
        let total = stats.lines_dropped.fetch_add(lines, Ordering::Relaxed) + lines;
        let now = self.origin.elapsed().as_millis() as u64 + DROP_LOG_EVERY.as_millis() as u64;
        let last = self.last_drop_log_ms.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= DROP_LOG_EVERY.as_millis() as u64
            && self
                .last_drop_log_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                "stdout is not read fast enough: output queue full, oldest lines dropped ({total} so far; see internal_agent.metrics_dropped)"
            );
        }
    }

    /// Takes everything queued, waiting up to `wait` for something to arrive. Returns an empty
    /// vector on time-out, and also once the queue is closed and drained.
    pub fn take_all(&self, wait: Duration) -> Vec<Batch> {
        self.take(wait, usize::MAX)
    }

    /// Takes the oldest batches, at least one and then more while their cost stays within
    /// `budget` bytes, waiting up to `wait` for something to arrive. Returns an empty vector on
    /// time-out, and also once the queue is closed and drained.
    ///
    /// What is taken no longer counts against the queue's bounds, so a writer blocked on a
    /// stalled reader must take little at a time: taking everything would let memory reach
    /// twice `metric_buffer_bytes` (the taken batches plus a refilled queue).
    pub fn take(&self, wait: Duration, budget: usize) -> Vec<Batch> {
        let deadline = Instant::now() + wait;
        let mut st = lock(&self.state);
        while st.batches.is_empty() && !self.is_closed() {
            let now = Instant::now();
            if now >= deadline {
                return Vec::new();
            }
            st = self
                .ready
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let mut taken = Vec::new();
        let mut cost = 0usize;
        while let Some(b) = st.batches.front() {
            if !taken.is_empty() && cost + b.cost() > budget {
                break;
            }
            let Some(b) = st.batches.pop_front() else {
                break;
            };
            cost += b.cost();
            st.lines -= usize::try_from(b.lines).unwrap_or(0);
            st.bytes -= b.cost();
            taken.push(b);
        }
        taken
    }

    /// Lines currently queued.
    pub fn depth(&self) -> usize {
        lock(&self.state).lines
    }

    /// No more pushes are expected; the writer drains what is left and stops.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _guard = lock(&self.state);
        self.ready.notify_all();
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(lines: u64, len: usize) -> Batch {
        let mut bytes = Vec::with_capacity(len);
        bytes.resize(len, b'x');
        Batch { bytes, lines }
    }

    #[test]
    fn evicts_oldest_and_counts_lines() {
        let stats = AgentStats::default();
        let q = Queue::new(10, 1 << 20);
        q.push(batch(4, 10), &stats);
        q.push(batch(4, 10), &stats);
        q.push(batch(4, 10), &stats);
        assert_eq!(q.depth(), 8);
        assert_eq!(stats::get(&stats.lines_dropped), 4);
        assert_eq!(stats::get(&stats.lines_queued), 12);
        let got = q.take_all(Duration::ZERO);
        assert_eq!(got.iter().map(|b| b.lines).sum::<u64>(), 8);
        assert_eq!(q.depth(), 0);
    }

    #[test]
    fn byte_bound_counts_allocation() {
        let stats = AgentStats::default();
        let q = Queue::new(1000, 3000);
        q.push(batch(1, 1000), &stats);
        q.push(batch(1, 1000), &stats);
        q.push(batch(1, 1000), &stats);
        assert_eq!(q.depth(), 2);
        q.push(batch(1, 5000), &stats);
        assert_eq!(q.depth(), 2, "an oversized batch is dropped, not queued");
        assert_eq!(stats::get(&stats.lines_dropped), 2);
    }

    #[test]
    fn take_respects_its_budget_but_always_takes_one() {
        let stats = AgentStats::default();
        let q = Queue::new(1000, 1 << 20);
        for _ in 0..4 {
            q.push(batch(1, 1000), &stats);
        }
        let one = batch(1, 1000).cost();
        assert_eq!(q.take(Duration::ZERO, 1).len(), 1);
        assert_eq!(q.take(Duration::ZERO, 2 * one).len(), 2);
        assert_eq!(q.depth(), 1);
        assert_eq!(q.take(Duration::ZERO, 0).len(), 1);
        assert_eq!(q.depth(), 0);
    }

    #[test]
    fn take_all_times_out_and_ends_after_close() {
        let q = Queue::new(10, 1 << 20);
        let t = Instant::now();
        assert!(q.take_all(Duration::from_millis(30)).is_empty());
        assert!(t.elapsed() >= Duration::from_millis(30));
        q.close();
        assert!(q.take_all(Duration::from_secs(5)).is_empty());
    }
}
