//! Counters behind the agent's self-metrics (`internal` input) and its log lines. Plain atomics:
//! every hot path only increments.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Agent-wide counters.
#[derive(Debug, Default)]
pub struct AgentStats {
    /// Lines handed to the output queue.
    pub lines_queued: AtomicU64,
    /// Lines written to stdout (and so read by telegraf).
    pub lines_written: AtomicU64,
    /// Lines evicted from a full queue because stdout was not read fast enough.
    pub lines_dropped: AtomicU64,
    /// Metrics that could not be written at all (no valid field, too long, bad name).
    pub metrics_rejected: AtomicU64,
    /// Metrics written with a name, key or value altered to be representable.
    pub metrics_sanitised: AtomicU64,
    pub fields_dropped: AtomicU64,
    pub tags_dropped: AtomicU64,
    pub reloads: AtomicU64,
    pub reload_failures: AtomicU64,
    /// Gather tasks that did not stop within the deadline after being aborted.
    pub stuck_tasks: AtomicU64,
}

/// Counters for one input instance. Kept across module restarts of the same config.
#[derive(Debug)]
pub struct InstanceStats {
    pub id: String,
    pub display: String,
    pub module: &'static str,
    pub alias: Option<String>,
    /// The instance's interval in ns (0 = driven by stdin), for readiness.
    pub interval_ns: AtomicU64,
    /// When the current run of this instance started, ns since the epoch.
    pub started_ns: AtomicU64,
    pub gathers: AtomicU64,
    pub gather_errors: AtomicU64,
    pub gather_timeouts: AtomicU64,
    pub gather_time_ns_total: AtomicU64,
    pub last_gather_time_ns: AtomicU64,
    /// Wall-clock end of the last completed gather, ns since the epoch (0 = never).
    pub last_gather_end_ns: AtomicU64,
    pub metrics_gathered: AtomicU64,
    pub panics: AtomicU64,
    pub restarts: AtomicU64,
    pub ticks_skipped: AtomicU64,
    /// The first unwritable metric of an instance is logged; later ones only counted.
    pub warned_unwritable: AtomicBool,
    /// Counters a service input registers (`ServiceCtx::counter`), written by `internal` as
    /// fields of this instance's line. TEMPORARY (mqtt branch) until the service API lands.
    pub service_counters: Mutex<Vec<(&'static str, Arc<AtomicU64>)>>,
}

impl InstanceStats {
    pub fn new(id: &str, display: &str, module: &'static str, alias: Option<String>) -> Self {
        InstanceStats {
            id: id.to_owned(),
            display: display.to_owned(),
            module,
            alias,
            interval_ns: AtomicU64::new(0),
            started_ns: AtomicU64::new(0),
            gathers: AtomicU64::new(0),
            gather_errors: AtomicU64::new(0),
            gather_timeouts: AtomicU64::new(0),
            gather_time_ns_total: AtomicU64::new(0),
            last_gather_time_ns: AtomicU64::new(0),
            last_gather_end_ns: AtomicU64::new(0),
            metrics_gathered: AtomicU64::new(0),
            panics: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            ticks_skipped: AtomicU64::new(0),
            warned_unwritable: AtomicBool::new(false),
            service_counters: Mutex::new(Vec::new()),
        }
    }
}

/// All counters; the supervisor swaps the instance list on reload.
#[derive(Debug, Default)]
pub struct Registry {
    pub agent: AgentStats,
    instances: Mutex<Vec<Arc<InstanceStats>>>,
}

impl Registry {
    pub fn set_instances(&self, list: Vec<Arc<InstanceStats>>) {
        *lock(&self.instances) = list;
    }

    pub fn instances(&self) -> Vec<Arc<InstanceStats>> {
        lock(&self.instances).clone()
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (counters and queues only).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}
