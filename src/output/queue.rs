//! The bounded queue between the inputs and the stdout writer. Two kinds of producers:
//! - Probes and collectors never wait: when the queue is full (telegraf stopped reading) the
//!   oldest batches are evicted, as telegraf's own metric buffer does, and every evicted line is
//!   counted. A reading taken late is worth less than a fresh one.
//! - Sources that acknowledge data to someone else (an MQTT broker) must never lose it once
//!   acknowledged: they push only when there is room (`push_lossless`), waiting on `room`
//!   otherwise, and what they queued is never evicted. Memory stays bounded either way: a
//!   lossless push never exceeds the bounds (except one batch into an empty queue).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::stats::{self, AgentStats, lock};

/// Output batches of 32 KiB and more get pages of their own from the kernel (glibc `mmap`), so
/// the memory of a batch evicted or written goes back to the system at once.
///
/// Why: with glibc's default (a threshold that rises to the size of any mmapped block freed),
/// 60 KiB batches come from the worker threads' heaps, and what a stalled reader's evictions
/// free stays in those heaps: the stalled-reader test measured RSS up to 7.2 MiB above baseline
/// with `metric_buffer_bytes` = 4 MiB (bound + 10 % = 4.4 MiB); with this, 4.2 MiB. Costs one
/// `mmap`/`munmap` pair per large batch, i.e. per 60 KiB of output at most.
const MMAP_THRESHOLD: libc::c_int = 32 * 1024;

/// Applies [`MMAP_THRESHOLD`] for the whole process (glibc only; other C libraries keep their
/// defaults). Call once, early in `main`.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// Whole encoded lines; `bytes` always ends with `\n`.
#[derive(Debug, Default)]
pub struct Batch {
    pub bytes: Vec<u8>,
    pub lines: u64,
    /// Queued by a lossless source: never evicted.
    pub keep: bool,
}

impl Batch {
    pub fn new(bytes: Vec<u8>, lines: u64) -> Self {
        Batch {
            bytes,
            lines,
            keep: false,
        }
    }

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
    /// Open rounds: tickets held per boundary (see [`Queue::expect_round`]). A handful at most
    /// (one per distinct next boundary), so a vector.
    rounds: Vec<(u128, usize)>,
    /// Tickets whose gather is running.
    gathering: usize,
}

#[derive(Debug)]
pub struct Queue {
    state: Mutex<State>,
    ready: Condvar,
    /// Signalled when the last running gather of the rounds ends (for the writer's linger).
    gathered: Condvar,
    closed: AtomicBool,
    /// Woken whenever the writer takes batches (room appeared) and on close: lossless producers
    /// wait on it.
    pub(crate) room: tokio::sync::Notify,
    /// When drops were last logged (ms since `origin`), so a stalled reader costs one log line a
    /// minute, not one per batch.
    last_drop_log_ms: AtomicU64,
    origin: Instant,
}

/// A round's batches wake the writer before the round ends once this much is queued, so a big
/// round is written while it is still gathering (one write's worth, see the writer's take).
const ROUND_NOTIFY_BYTES: usize = 64 * 1024;

/// One instance's place in the round of one tick; dropping it (the gather ended, panicked or
/// was aborted, or the tick was skipped) ends its part, and the last one out wakes the writer.
#[derive(Debug)]
pub struct RoundTicket {
    queue: Arc<Queue>,
    boundary: u128,
    gathering: bool,
}

impl RoundTicket {
    /// The gather of this tick starts.
    pub fn start(&mut self) {
        if !self.gathering {
            self.gathering = true;
            lock(&self.queue.state).gathering += 1;
        }
    }
}

impl Drop for RoundTicket {
    fn drop(&mut self) {
        let mut st = lock(&self.queue.state);
        let mut all_gathered = false;
        if self.gathering {
            st.gathering = st.gathering.saturating_sub(1);
            all_gathered = st.gathering == 0;
        }
        let mut round_over = false;
        if let Some(i) = st.rounds.iter().position(|(b, _)| *b == self.boundary) {
            st.rounds[i].1 -= 1;
            if st.rounds[i].1 == 0 {
                st.rounds.swap_remove(i);
                round_over = !st.batches.is_empty();
            }
        }
        drop(st);
        if round_over {
            self.queue.ready.notify_all();
        }
        if all_gathered {
            self.queue.gathered.notify_all();
        }
    }
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
                rounds: Vec::new(),
                gathering: 0,
            }),
            ready: Condvar::new(),
            gathered: Condvar::new(),
            closed: AtomicBool::new(false),
            room: tokio::sync::Notify::new(),
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

    /// Enqueues a batch and wakes the writer, evicting the oldest batches if needed. Never
    /// blocks on the reader.
    pub fn push(&self, batch: Batch, stats: &AgentStats) {
        self.enqueue(batch, stats, true);
    }

    /// Enqueues the batch of a gather that is part of a round: the writer is woken when the
    /// round ends (or when a write's worth of bytes is waiting), not for every batch.
    pub fn push_in_round(&self, batch: Batch, stats: &AgentStats) {
        self.enqueue(batch, stats, false);
    }

    /// A ticket for the round of the tick on `boundary`: held from when an instance schedules
    /// that tick until its gather ends (or the tick is skipped). The writer is woken when the
    /// last ticket of a round is dropped.
    ///
    /// Why: inputs that tick together (the host inputs on one interval) finish within a
    /// millisecond or so of each other, but their tasks run one after another, so "nobody is
    /// gathering" happens between them; tickets taken one interval ahead know how many are
    /// still to come. One writer wake-up and one write per round instead of one per input (or a
    /// timed linger, a wake-up of its own): on a VM a wake-up costs tens of µs, more than most
    /// host gathers.
    pub fn expect_round(self: &Arc<Self>, boundary: u128) -> RoundTicket {
        let mut st = lock(&self.state);
        match st.rounds.iter_mut().find(|(b, _)| *b == boundary) {
            Some((_, n)) => *n += 1,
            None => st.rounds.push((boundary, 1)),
        }
        RoundTicket {
            queue: Arc::clone(self),
            boundary,
            gathering: false,
        }
    }

    /// Waits up to `limit` for the gathers of rounds in progress to end (the writer's linger
    /// after a wake-up that came from outside a round).
    pub fn wait_round_end(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut st = lock(&self.state);
        while st.gathering > 0 && !self.is_closed() {
            let now = Instant::now();
            if now >= deadline {
                return;
            }
            st = self
                .gathered
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    fn enqueue(&self, batch: Batch, stats: &AgentStats, notify: bool) {
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
            // The oldest batch that may be evicted (lossless sources' batches stay).
            let Some(i) = st.batches.iter().position(|b| !b.keep) else {
                break;
            };
            let Some(old) = st.batches.remove(i) else {
                break;
            };
            st.lines -= usize::try_from(old.lines).unwrap_or(0);
            st.bytes -= old.cost();
            evicted += old.lines;
        }
        if !st.batches.is_empty()
            && (st.lines + lines > st.max_lines || st.bytes + cost > st.max_bytes)
        {
            // Only kept batches left and still no room: the new, evictable one goes.
            drop(st);
            self.dropped(evicted + batch.lines, stats);
            return;
        }
        st.lines += lines;
        st.bytes += cost;
        st.batches.push_back(batch);
        stats::add(&stats.lines_queued, lines as u64);
        let notify = notify || st.bytes >= ROUND_NOTIFY_BYTES;
        drop(st);
        if notify {
            self.ready.notify_one();
        }
        if evicted > 0 {
            self.dropped(evicted, stats);
        }
    }

    /// Queues `batch` only if it fits within the bounds without evicting anything (or the queue
    /// is empty), marked never to be evicted; otherwise hands it back. Callers wait on
    /// [`Queue::room`] between tries (see `ServiceCtx::queue_lossless`).
    pub fn push_lossless(&self, mut batch: Batch, stats: &AgentStats) -> Result<(), Batch> {
        if batch.lines == 0 {
            return Ok(());
        }
        let mut st = lock(&self.state);
        let lines = usize::try_from(batch.lines).unwrap_or(usize::MAX);
        let cost = batch.cost();
        let fits = st.lines.saturating_add(lines) <= st.max_lines
            && st.bytes.saturating_add(cost) <= st.max_bytes;
        if !fits && !st.batches.is_empty() {
            return Err(batch);
        }
        batch.keep = true;
        st.lines += lines;
        st.bytes += cost;
        st.batches.push_back(batch);
        stats::add(&stats.lines_queued, lines as u64);
        drop(st);
        self.ready.notify_one();
        Ok(())
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
                "stdout is not read fast enough: output queue full, oldest lines dropped ({total} so far; see metrics_agent.metrics_dropped)"
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
        drop(st);
        if !taken.is_empty() {
            self.room.notify_waiters();
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
        self.gathered.notify_all();
        self.room.notify_waiters();
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
        Batch::new(bytes, lines)
    }

    #[test]
    fn lossless_batches_wait_for_room_and_are_never_evicted() {
        let stats = AgentStats::default();
        let q = Queue::new(10, 1 << 20);
        assert!(q.push_lossless(batch(6, 10), &stats).is_ok());
        // No room for 6 more without evicting: handed back, nothing dropped.
        let back = q.push_lossless(batch(6, 10), &stats).unwrap_err();
        assert_eq!(back.lines, 6);
        // A probe's push evicts only what may be evicted: here nothing, so its own batch goes.
        q.push(batch(3, 10), &stats);
        q.push(batch(3, 10), &stats);
        assert_eq!(q.depth(), 9);
        assert_eq!(stats::get(&stats.lines_dropped), 3);
        let got = q.take(Duration::ZERO, 0);
        assert_eq!((got[0].lines, got[0].keep), (6, true));
        assert!(q.push_lossless(back, &stats).is_ok());
        assert_eq!(q.depth(), 9);
        // An oversized lossless batch still goes into an empty queue (it would wait forever).
        q.take_all(Duration::ZERO);
        assert!(q.push_lossless(batch(50, 10), &stats).is_ok());
    }

    #[tokio::test]
    async fn taking_wakes_lossless_waiters() {
        let stats = Arc::new(AgentStats::default());
        let q = Arc::new(Queue::new(10, 1 << 20));
        q.push_lossless(batch(10, 10), &stats).unwrap();
        let waiter = {
            let (q, stats) = (q.clone(), stats.clone());
            tokio::spawn(async move {
                let mut b = batch(5, 10);
                loop {
                    let room = q.room.notified();
                    tokio::pin!(room);
                    room.as_mut().enable();
                    match q.push_lossless(b, &stats) {
                        Ok(()) => return,
                        Err(back) => b = back,
                    }
                    room.await;
                }
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let q2 = q.clone();
        tokio::task::spawn_blocking(move || q2.take_all(Duration::ZERO))
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken by take")
            .unwrap();
        assert_eq!(q.depth(), 5);
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
    fn a_round_wakes_the_writer_once_when_its_last_ticket_is_dropped() {
        let stats = AgentStats::default();
        let q = Arc::new(Queue::new(1000, 1 << 20));
        let mut a = q.expect_round(10);
        let b = q.expect_round(10);
        let next = q.expect_round(20);
        let writer = {
            let q = q.clone();
            std::thread::spawn(move || {
                let t = Instant::now();
                let got = q.take_all(Duration::from_secs(10));
                (t.elapsed(), got.iter().map(|b| b.lines).sum::<u64>())
            })
        };
        // Let the writer reach its wait (it takes at once whatever is queued when it looks).
        std::thread::sleep(Duration::from_millis(100));
        // `a` gathers and ends while `b` has not started yet: not the end of the round.
        a.start();
        q.push_in_round(batch(1, 10), &stats);
        drop(a);
        std::thread::sleep(Duration::from_millis(300));
        assert!(!writer.is_finished(), "woken before the round ended");
        // `b` skips its tick: the round is over (the ticket for the next one does not count).
        drop(b);
        let (took, lines) = writer.join().unwrap();
        assert_eq!(lines, 1);
        assert!(took >= Duration::from_millis(300) && took < Duration::from_secs(5));
        drop(next);
        assert!(lock(&q.state).rounds.is_empty());
    }

    #[test]
    fn a_push_outside_the_round_wakes_the_writer_and_linger_waits_for_the_gathers() {
        let stats = AgentStats::default();
        let q = Arc::new(Queue::new(1000, 1 << 20));
        let mut member = q.expect_round(1);
        member.start();
        q.push(batch(1, 10), &stats);
        assert_eq!(q.take_all(Duration::from_secs(5)).len(), 1);
        let t = Instant::now();
        q.wait_round_end(Duration::from_millis(50));
        assert!(
            t.elapsed() >= Duration::from_millis(50),
            "a gather is running"
        );
        let ender = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            drop(member);
        });
        let t = Instant::now();
        q.wait_round_end(Duration::from_secs(5));
        assert!(t.elapsed() < Duration::from_secs(4));
        ender.join().unwrap();
        assert_eq!(lock(&q.state).gathering, 0);
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
