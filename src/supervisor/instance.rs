//! The loop that drives one ticked input instance: wait for a tick, run one gather (see
//! `gather.rs` for where), record the outcome, restart the module with backoff after a panic,
//! a failed build or an overrun, and hold still while the instance's gate is closed.
//!
//! The loop is one `select!` over the events below; each event has one method on [`Instance`].

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::gather::{Gather, Outcome, Started};
use super::schedule::Schedule;
use crate::config::InputInstance;
use crate::modules::{Built, GatherError, Module, ModuleContext};
use crate::output::{Accumulator, Decoration, RoundTicket, now_ns};
use crate::stats::{self, InstanceStats};

/// On stop, how long an instance waits for its aborted gather before leaving it to the reaper.
const STOP_WAIT: Duration = Duration::from_millis(100);
/// An instance takes part in the output queue's rounds (one writer wake-up when the last gather
/// of a tick ends) while its previous gather took less than this: quick collectors (host inputs)
/// tick and end together; a probe that waits on the network would hold the others' lines back.
const ROUND_GATHER_MAX: Duration = Duration::from_millis(50);

/// How ticks arrive.
pub(crate) enum Ticks {
    Interval(Schedule),
    /// One round per change of the counter (a newline on stdin).
    Trigger(watch::Receiver<u64>),
}

/// Everything one instance needs to run.
pub(crate) struct InstanceRun {
    pub(crate) instance: InputInstance,
    pub(crate) stats: Arc<InstanceStats>,
    pub(crate) module_ctx: ModuleContext,
    pub(crate) ticks: Ticks,
    /// A gather still running after this long is aborted and counted as a timeout.
    pub(crate) gather_timeout: Duration,
    /// Owned outside the instance (probe-group leadership): while `false` the instance gathers
    /// nothing, keeps its module built and its counters, and is not late for `/readyz`.
    pub(crate) gate: Option<super::Gate>,
}

impl InstanceRun {
    pub(crate) fn gate_open(&self) -> bool {
        self.gate
            .as_ref()
            .is_none_or(|g| *g.open.borrow() && g.valid.as_ref().is_none_or(|v| v()))
    }
}

/// Waits until the gate (if any) changes; never returns for an instance without a gate or
/// whose gate's owner is gone.
pub(super) async fn gate_changed(gate: &mut Option<super::Gate>) {
    let Some(g) = gate else {
        return std::future::pending().await;
    };
    if g.open.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Marks the instance paused or running for `/readyz`; a resumed instance counts from now.
pub(super) fn set_paused(stats: &InstanceStats, paused: bool) {
    stats.paused.store(paused, Ordering::Relaxed);
    if !paused {
        stats
            .started_ns
            .store(u64::try_from(now_ns()).unwrap_or(0), Ordering::Relaxed);
    }
}

struct Running {
    gather: Gather,
    started: Instant,
    deadline: Instant,
}

enum Event {
    Cancelled,
    Finished(Box<Outcome>),
    Overrun,
    Tick,
    GateChanged,
}

struct Instance {
    r: InstanceRun,
    name: String,
    deco: Arc<Decoration>,
    /// Built on the first tick and after every failure; kept between gathers and while paused.
    module: Option<Module>,
    backoff: Backoff,
    /// No start before this (backoff after a failure).
    not_before: Option<Instant>,
    running: Option<Running>,
    /// How long the previous gather took (zero before the first: assumed quick).
    last_took: Duration,
    /// This instance's place in the output round of its next tick (quick gathers only).
    next_ticket: Option<RoundTicket>,
    /// Interval mode gathers at once on start, then on aligned ticks.
    next_tick: Instant,
}

pub(crate) async fn run(r: InstanceRun, cancel: CancellationToken) {
    set_paused(&r.stats, !r.gate_open());
    let mut inst = Instance {
        name: r.instance.display.clone(),
        deco: Arc::new(r.instance.decoration.clone()),
        r,
        module: None,
        backoff: Backoff::default(),
        not_before: None,
        running: None,
        last_took: Duration::ZERO,
        next_ticket: None,
        next_tick: Instant::now(),
    };
    loop {
        match inst.next_event(&cancel).await {
            Event::Cancelled => break,
            Event::Finished(outcome) => {
                if let Some(run) = inst.running.take() {
                    inst.on_finished(*outcome, run.started);
                }
            }
            Event::Overrun => inst.on_overrun(),
            Event::Tick => inst.on_tick().await,
            Event::GateChanged => inst.on_gate_changed(),
        }
    }
    inst.stop().await;
}

impl Instance {
    async fn next_event(&mut self, cancel: &CancellationToken) -> Event {
        let next_tick = self.next_tick;
        let (ticks, gate, running) = (&mut self.r.ticks, &mut self.r.gate, &mut self.running);
        let tick = async {
            match ticks {
                Ticks::Interval(_) => tokio::time::sleep_until(next_tick.into()).await,
                Ticks::Trigger(rx) => {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        };
        let gather = async {
            match running.as_mut() {
                Some(run) => tokio::select! {
                    outcome = run.gather.outcome() => Event::Finished(Box::new(outcome)),
                    _ = tokio::time::sleep_until(run.deadline.into()) => Event::Overrun,
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => Event::Cancelled,
            _ = gate_changed(gate) => Event::GateChanged,
            event = gather => event,
            _ = tick => Event::Tick,
        }
    }

    fn on_finished(&mut self, outcome: Outcome, started: Instant) {
        let now = Instant::now();
        let took = now.duration_since(started);
        self.last_took = took;
        let stats = &self.r.stats;
        match outcome {
            Ok((m, result)) => {
                record_gather(stats, took);
                self.module = Some(m);
                if let Err(e) = result {
                    stats::inc(&stats.gather_errors);
                    let msg = e.to_string();
                    stats.error_once(&msg, format_args!("gather failed: {msg}"));
                }
            }
            Err(msg) => {
                stats::inc(&stats.panics);
                stats::inc(&stats.restarts);
                let delay = self.backoff.failure(now);
                self.not_before = Some(now + delay);
                tracing::error!(
                    "[inputs.{}] gather panicked: {msg}; restarting the input in {:.1}s",
                    self.name,
                    delay.as_secs_f64()
                );
            }
        }
    }

    fn on_overrun(&mut self) {
        let Some(run) = self.running.take() else {
            return;
        };
        let now = Instant::now();
        stats::inc(&self.r.stats.gather_timeouts);
        stats::inc(&self.r.stats.restarts);
        self.last_took = self.r.gather_timeout;
        let delay = self.backoff.failure(now);
        self.not_before = Some(now + delay);
        tracing::error!(
            "[inputs.{}] gather did not finish within {:?}; aborted, restarting the input in {:.1}s",
            self.name,
            self.r.gather_timeout,
            delay.as_secs_f64()
        );
        run.gather.abandon(&self.name, &self.r.module_ctx);
    }

    async fn on_tick(&mut self) {
        let now = Instant::now();
        // Used by this tick's gather, or dropped when the tick is skipped.
        let due_ticket = self.next_ticket.take();
        self.schedule_next(now);
        if !self.r.gate_open() {
            return;
        }
        if self.running.is_some() {
            stats::inc(&self.r.stats.ticks_skipped);
            tracing::debug!(
                "[inputs.{}] previous gather still running; tick skipped",
                self.name
            );
            return;
        }
        if self.not_before.is_some_and(|t| now < t) {
            return;
        }
        let Some(module) = self.take_module(now) else {
            return;
        };
        let ctx = &self.r.module_ctx;
        let mut acc = Accumulator::new(
            self.deco.clone(),
            ctx.queue.clone(),
            ctx.registry.clone(),
            self.r.stats.clone(),
        );
        if let Some(ticket) = due_ticket {
            acc.join_round(ticket);
        }
        match Gather::start(module, acc, self.r.instance.config.runs_inline()).await {
            Started::Done(outcome) => self.on_finished(outcome, now),
            Started::Running(gather) => {
                self.running = Some(Running {
                    gather,
                    started: now,
                    deadline: now + self.r.gather_timeout,
                })
            }
        }
    }

    /// Sets the next tick and takes this instance's ticket for its round.
    fn schedule_next(&mut self, now: Instant) {
        let Ticks::Interval(s) = &self.r.ticks else {
            return;
        };
        // The gap to the next boundary is measured from when this tick was due, not from when
        // it fired: a tick that fires late (a busy machine) must not push the next one a whole
        // interval further and lose an interval.
        let late = now.saturating_duration_since(self.next_tick);
        let min_gap = (self.r.instance.interval / 2).saturating_sub(late);
        let next = s.next_after(now, min_gap);
        self.next_tick = next.at;
        self.next_ticket = next
            .boundary
            .filter(|_| self.last_took < ROUND_GATHER_MAX && self.r.gate_open())
            .map(|b| self.r.module_ctx.queue.expect_round(b));
    }

    /// The built module, building it if needed; a failed build is counted and backs off.
    fn take_module(&mut self, now: Instant) -> Option<Module> {
        if let Some(m) = self.module.take() {
            return Some(m);
        }
        let built = self.r.instance.config.build(&self.r.module_ctx);
        match built {
            Ok(Built::Ticked(m)) => Some(m),
            Ok(Built::Service(_)) => {
                let e = GatherError::Failed("a service input cannot gather on ticks".into());
                self.fail_build(now, e)
            }
            Err(e) => self.fail_build(now, e),
        }
    }

    /// Counts a failed build and backs off (or, with `startup_error_behavior = "ignore"`, gives
    /// the input up).
    fn fail_build(&mut self, now: Instant, e: GatherError) -> Option<Module> {
        let stats = &self.r.stats;
        stats::inc(&stats.startup_errors);
        if self.r.instance.give_up_on_start_failure {
            stats::inc(&stats.gather_errors);
            tracing::error!(
                "[inputs.{}] cannot start: {e}; not retried (startup_error_behavior)",
                self.name
            );
            // Never again in this config's life; a reload builds it anew.
            self.not_before = Some(now + Duration::from_secs(100 * 365 * 24 * 3600));
            set_paused(stats, true);
            return None;
        }
        stats::inc(&stats.gather_errors);
        stats::inc(&stats.restarts);
        let delay = self.backoff.failure(now);
        self.not_before = Some(now + delay);
        let msg = e.to_string();
        stats.error_once(
            &msg,
            format_args!(
                "cannot start: {msg}; retrying in {:.1}s",
                delay.as_secs_f64()
            ),
        );
        None
    }

    /// Closing the gate gives up a running gather (its lines so far are delivered) without
    /// counting a failure; opening it gathers at once.
    fn on_gate_changed(&mut self) {
        let open = self.r.gate_open();
        set_paused(&self.r.stats, !open);
        if open {
            tracing::info!("[inputs.{}] resumed", self.name);
            self.next_tick = Instant::now();
            return;
        }
        tracing::info!("[inputs.{}] paused", self.name);
        self.next_ticket = None;
        if let Some(run) = self.running.take() {
            run.gather.abandon(&self.name, &self.r.module_ctx);
        }
    }

    /// Waits (briefly) for an aborted gather to end, so the lines it hands over as it ends are
    /// queued before the next config's lines and before a shutdown drains the queue.
    async fn stop(mut self) {
        if let Some(Running {
            gather: Gather::Task(mut handle),
            ..
        }) = self.running.take()
        {
            handle.abort();
            if tokio::time::timeout(STOP_WAIT, &mut handle).await.is_err() {
                super::gather::reap(handle, "gather", self.name, self.r.module_ctx);
            }
        }
    }
}

fn record_gather(s: &InstanceStats, took: Duration) {
    let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
    stats::inc(&s.gathers);
    stats::add(&s.gather_time_ns_total, ns);
    s.last_gather_time_ns.store(ns, Ordering::Relaxed);
    s.last_gather_end_ns
        .store(u64::try_from(now_ns()).unwrap_or(0), Ordering::Relaxed);
}
