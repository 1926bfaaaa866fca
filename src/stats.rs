//! Counters behind the agent's self-metrics (`internal` input) and its log lines. Plain atomics:
//! every hot path only increments.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

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
    /// Builds that failed (telegraf's `startup_errors`: the input could not start).
    pub startup_errors: AtomicU64,
    /// Paused by a gate (probe-group standby): gathers nothing and is not late for `/readyz`.
    pub paused: AtomicBool,
    /// Counters of the input's own (a service input's messages, reconnects...), written by the
    /// `internal` input as extra fields of this instance's line, in registration order.
    extra: Mutex<Vec<(&'static str, Arc<AtomicU64>)>>,
    /// Errors logged recently, by cause.
    log: LogOnce,
    /// The input's own `log_level` as 1 (error) ..= 5 (trace); 0 = not set (the agent's).
    pub log_level: std::sync::atomic::AtomicU8,
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
            startup_errors: AtomicU64::new(0),
            paused: AtomicBool::new(false),
            extra: Mutex::new(Vec::new()),
            log: LogOnce::default(),
            log_level: std::sync::atomic::AtomicU8::new(0),
        }
    }

    /// The instance's counter `name`, created at 0 on first use. Kept across restarts of the
    /// module, like every counter here.
    pub fn counter(&self, name: &'static str) -> Arc<AtomicU64> {
        let mut extra = lock(&self.extra);
        if let Some((_, c)) = extra.iter().find(|(n, _)| *n == name) {
            return c.clone();
        }
        let c = Arc::new(AtomicU64::new(0));
        extra.push((name, c.clone()));
        c
    }

    /// The input's own counters, as `(name, value)`.
    pub fn extra_counters(&self) -> Vec<(&'static str, u64)> {
        lock(&self.extra)
            .iter()
            .map(|(n, c)| (*n, get(c)))
            .collect()
    }

    /// "Log once, count always": logs `msg` as an error of this instance unless the same `cause`
    /// was logged within the last [`LOG_AGAIN_AFTER`]. Callers count every occurrence in a
    /// counter of their own; the log line is for the operator reading stderr, who needs the
    /// first one and a reminder, not a line per gather or per message.
    pub fn error_once(&self, cause: &str, msg: fmt::Arguments<'_>) {
        if self.log.should_log(cause, Instant::now()) {
            tracing::error!("[inputs.{}] {msg}", self.display);
        }
    }

    /// Forgets `cause`, so that it is logged at once if it comes back (it recovered).
    pub fn clear_logged(&self, cause: &str) {
        lock(&self.log.last).remove(cause);
    }

    /// Whether any cause is remembered: a hot path can skip building a key to clear.
    pub fn logged_any(&self) -> bool {
        !lock(&self.log.last).is_empty()
    }

    /// As [`InstanceStats::error_once`], at warning level.
    pub fn warn_once(&self, cause: &str, msg: fmt::Arguments<'_>) {
        let level = self.log_level.load(Ordering::Relaxed);
        // An input set to log errors only keeps its warnings to its counters.
        if level == 1 {
            return;
        }
        if self.log.should_log(cause, Instant::now()) {
            tracing::warn!("[inputs.{}] {msg}", self.display);
        }
    }
}

/// The same cause is logged again at most this often.
pub(crate) const LOG_AGAIN_AFTER: Duration = Duration::from_secs(300);
/// Causes remembered per instance: a target list of thousands each failing its own way must not
/// grow memory; past this the oldest is forgotten (and may be logged again).
const LOG_CAUSES_MAX: usize = 256;

/// When each cause was last logged.
#[derive(Debug, Default)]
struct LogOnce {
    last: Mutex<HashMap<String, Instant>>,
}

impl LogOnce {
    fn should_log(&self, cause: &str, now: Instant) -> bool {
        let mut last = lock(&self.last);
        match last.get_mut(cause) {
            Some(t) if now.duration_since(*t) < LOG_AGAIN_AFTER => false,
            Some(t) => {
                *t = now;
                true
            }
            None => {
                if last.len() >= LOG_CAUSES_MAX
                    && let Some(oldest) =
                        last.iter().min_by_key(|(_, t)| **t).map(|(k, _)| k.clone())
                {
                    last.remove(&oldest);
                }
                last.insert(cause.to_owned(), now);
                true
            }
        }
    }
}

/// All counters; the supervisor swaps the instance list on reload.
#[derive(Debug, Default)]
pub struct Registry {
    pub agent: AgentStats,
    instances: Mutex<Vec<Arc<InstanceStats>>>,
    /// Probe groups and this agent's role in each (`leader`, `standby`, `member`) as of the
    /// coordinator's last round, for `/readyz`.
    groups: Mutex<Vec<(String, &'static str)>>,
}

impl Registry {
    pub fn set_instances(&self, list: Vec<Arc<InstanceStats>>) {
        *lock(&self.instances) = list;
    }

    pub fn instances(&self) -> Vec<Arc<InstanceStats>> {
        lock(&self.instances).clone()
    }

    pub fn set_groups(&self, roles: Vec<(String, &'static str)>) {
        *lock(&self.groups) = roles;
    }

    pub fn groups(&self) -> Vec<(String, &'static str)> {
        lock(&self.groups).clone()
    }
}

/// Locks a mutex whose data stays consistent even if a holder panicked (counters and queues only).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) fn inc(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_is_logged_once_per_period_and_causes_are_bounded() {
        let l = LogOnce::default();
        let t = Instant::now();
        assert!(l.should_log("a", t));
        assert!(!l.should_log("a", t + Duration::from_secs(1)));
        assert!(l.should_log("b", t + Duration::from_secs(2)));
        assert!(l.should_log("b", t + Duration::from_secs(2) + LOG_AGAIN_AFTER));
        for i in 0..1000 {
            l.should_log(&i.to_string(), t);
        }
        assert_eq!(lock(&l.last).len(), LOG_CAUSES_MAX);
    }

    #[test]
    fn extra_counters_are_shared_by_name() {
        let s = InstanceStats::new("inputs.x[0]", "x", "x", None);
        inc(&s.counter("received"));
        inc(&s.counter("received"));
        inc(&s.counter("acked"));
        assert_eq!(s.extra_counters(), vec![("received", 2), ("acked", 1)]);
    }
}
