//! The loop that drives one input instance: wait for a tick, run one gather (in a task of its
//! own, so an overrun can be aborted and a blocked thread reported, or, for the local collectors,
//! inside this task under `catch_unwind`), record the outcome, restart the module with backoff
//! after a panic, a failed build or an overrun.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::backoff::Backoff;
use super::schedule::Schedule;
use crate::config::InputInstance;
use crate::modules::{GatherError, Module, ModuleContext};
use crate::output::{Accumulator, RoundTicket, now_ns};
use crate::stats::{self, InstanceStats};

/// A task still running this long after `abort()` is blocking its thread without yielding.
pub const STUCK_AFTER: Duration = Duration::from_secs(5);
/// On stop, how long an instance waits for its aborted gather before leaving it to the reaper.
const STOP_WAIT: Duration = Duration::from_millis(100);
/// The same error is logged again at most this often; the counter records every occurrence.
const REPEAT_LOG_EVERY: Duration = Duration::from_secs(300);
/// An instance takes part in the output queue's rounds (one writer wake-up when the last gather
/// of a tick ends) while its previous gather took less than this: quick collectors (host inputs)
/// tick and end together; a probe that waits on the network would hold the others' lines back.
const ROUND_GATHER_MAX: Duration = Duration::from_millis(50);

/// How ticks arrive.
pub enum Ticks {
    Interval(Schedule),
    /// One round per change of the counter (a newline on stdin).
    Trigger(watch::Receiver<u64>),
}

pub struct InstanceRun {
    pub instance: InputInstance,
    pub stats: Arc<InstanceStats>,
    pub module_ctx: ModuleContext,
    pub ticks: Ticks,
    /// A gather still running after this long is aborted and counted as a timeout.
    pub gather_timeout: Duration,
}

type GatherOutput = (Module, Result<(), GatherError>);

/// How a gather ended: its module back and its result, or a panic message (or "cancelled").
type Outcome = Result<GatherOutput, String>;

enum GatherEvent {
    Finished(Box<Outcome>),
    Overrun,
}

/// Where a gather runs.
enum Gather {
    /// Its own task: a gather that awaits the network or other processes, or blocks its thread,
    /// can be aborted, and one that will not end is reported while the instance carries on.
    Task(JoinHandle<GatherOutput>),
    /// Inside the instance's task (see `InputConfig::runs_inline`): no task, no wake-ups of its
    /// own.
    Inline(Pin<Box<CatchUnwind<GatherFuture>>>),
}

type GatherFuture = Pin<Box<dyn Future<Output = GatherOutput> + Send>>;

impl Gather {
    async fn outcome(&mut self) -> Outcome {
        match self {
            Gather::Task(h) => h.await.map_err(|join| {
                if join.is_panic() {
                    panic_message(join.into_panic())
                } else {
                    "cancelled".into()
                }
            }),
            Gather::Inline(f) => f.as_mut().await,
        }
    }
}

/// A future whose panics become an `Err` with the panic message, as a task's `JoinError` would.
/// After a panic it is not polled again: the caller drops it.
struct CatchUnwind<F> {
    inner: F,
}

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.inner;
        match std::panic::catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(payload))),
        }
    }
}

struct Running {
    gather: Gather,
    started: Instant,
    deadline: Instant,
}

/// Rate-limits identical error lines per instance.
#[derive(Default)]
struct ErrorLog {
    last: Option<(String, Instant)>,
}

impl ErrorLog {
    fn should_log(&mut self, msg: &str, now: Instant) -> bool {
        match &self.last {
            Some((m, t)) if m == msg && now.duration_since(*t) < REPEAT_LOG_EVERY => false,
            _ => {
                self.last = Some((msg.to_owned(), now));
                true
            }
        }
    }
}

/// Runs the instances of the local collectors (`InputConfig::runs_inline`) in one task until
/// `cancel`.
///
/// Why one task: they mostly share a schedule, so one timer expiry wakes one task instead of
/// one per instance, and the other worker threads are not woken to share out a burst of tasks
/// that each take a few µs. Each instance keeps its own loop, gather timeout, panic handling
/// and backoff; they only share the thread they are polled on, which their bounded, local work
/// never holds for long.
pub async fn run_lane(runs: Vec<InstanceRun>, cancel: CancellationToken) {
    let mut loops: Vec<Option<Pin<Box<dyn Future<Output = ()> + Send>>>> = runs
        .into_iter()
        .map(|r| Some(Box::pin(run(r, cancel.clone())) as Pin<Box<dyn Future<Output = ()> + Send>>))
        .collect();
    // A handful of loops: polling each one on every wake-up is cheaper than tracking which of
    // them was woken (a loop that was not woken finds its futures pending at once).
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for slot in &mut loops {
            if let Some(l) = slot {
                if l.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await
}

pub async fn run(mut r: InstanceRun, cancel: CancellationToken) {
    let name = r.instance.display.clone();
    let deco = Arc::new(r.instance.decoration.clone());
    let mut module: Option<Module> = None;
    let mut backoff = Backoff::default();
    let mut not_before: Option<Instant> = None;
    let mut running: Option<Running> = None;
    let mut errors = ErrorLog::default();
    // How long the previous gather took (zero before the first: assumed quick).
    let mut last_took = Duration::ZERO;
    // This instance's place in the output round of its next tick (quick gathers only).
    let mut next_ticket: Option<RoundTicket> = None;
    // Interval mode gathers at once on start, then on aligned ticks.
    let mut next_tick = Instant::now();

    // A gather that ended and whose outcome is still to be recorded, with when it started.
    let mut finished: Option<(Outcome, Instant)> = None;

    loop {
        if let Some((outcome, started)) = finished.take() {
            let now = Instant::now();
            let took = now.duration_since(started);
            last_took = took;
            match outcome {
                Ok((m, result)) => {
                    record_gather(&r.stats, took);
                    module = Some(m);
                    if let Err(e) = result {
                        stats::inc(&r.stats.gather_errors);
                        let msg = e.to_string();
                        if errors.should_log(&msg, now) {
                            tracing::error!("[inputs.{name}] gather failed: {msg}");
                        }
                    }
                }
                Err(msg) => {
                    stats::inc(&r.stats.panics);
                    stats::inc(&r.stats.restarts);
                    let delay = backoff.failure(now);
                    not_before = Some(now + delay);
                    tracing::error!(
                        "[inputs.{name}] gather panicked: {msg}; restarting the input in {:.1}s",
                        delay.as_secs_f64()
                    );
                }
            }
        }
        let tick = async {
            match &mut r.ticks {
                Ticks::Interval(_) => tokio::time::sleep_until(next_tick.into()).await,
                Ticks::Trigger(rx) => {
                    if rx.changed().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
            }
        };
        let gather_event = async {
            match running.as_mut() {
                Some(run) => tokio::select! {
                    outcome = run.gather.outcome() => GatherEvent::Finished(Box::new(outcome)),
                    _ = tokio::time::sleep_until(run.deadline.into()) => GatherEvent::Overrun,
                },
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = cancel.cancelled() => break,
            event = gather_event => {
                let Some(run) = running.take() else { continue };
                let GatherEvent::Finished(outcome) = event else {
                    let now = Instant::now();
                    stats::inc(&r.stats.gather_timeouts);
                    stats::inc(&r.stats.restarts);
                    last_took = r.gather_timeout;
                    let delay = backoff.failure(now);
                    not_before = Some(now + delay);
                    tracing::error!(
                        "[inputs.{name}] gather did not finish within {:?}; aborted, restarting the input in {:.1}s",
                        r.gather_timeout,
                        delay.as_secs_f64()
                    );
                    if let Gather::Task(handle) = run.gather {
                        reap(handle, name.clone(), r.module_ctx.clone());
                    }
                    continue;
                };
                finished = Some((*outcome, run.started));
            }
            _ = tick => {
                let now = Instant::now();
                // Used by this tick's gather, or dropped when the tick is skipped.
                let due_ticket = next_ticket.take();
                if let Ticks::Interval(s) = &r.ticks {
                    // The gap to the next boundary is measured from when this tick was due, not
                    // from when it fired: a tick that fires late (a busy machine) must not push
                    // the next one a whole interval further and lose an interval.
                    let late = now.saturating_duration_since(next_tick);
                    let min_gap = (r.instance.interval / 2).saturating_sub(late);
                    let next = s.next_after(now, min_gap);
                    next_tick = next.at;
                    next_ticket = next
                        .boundary
                        .filter(|_| last_took < ROUND_GATHER_MAX)
                        .map(|b| r.module_ctx.queue.expect_round(b));
                }
                if running.is_some() {
                    stats::inc(&r.stats.ticks_skipped);
                    tracing::debug!("[inputs.{name}] previous gather still running; tick skipped");
                    continue;
                }
                if not_before.is_some_and(|t| now < t) {
                    continue;
                }
                let m = match module.take() {
                    Some(m) => m,
                    None => match Module::build(&r.instance.config, &r.module_ctx) {
                        Ok(m) => m,
                        Err(e) => {
                            stats::inc(&r.stats.gather_errors);
                            stats::inc(&r.stats.restarts);
                            let delay = backoff.failure(now);
                            not_before = Some(now + delay);
                            let msg = e.to_string();
                            if errors.should_log(&msg, now) {
                                tracing::error!(
                                    "[inputs.{name}] cannot start: {msg}; retrying in {:.1}s",
                                    delay.as_secs_f64()
                                );
                            }
                            continue;
                        }
                    },
                };
                let mut acc = Accumulator::new(
                    deco.clone(),
                    r.module_ctx.queue.clone(),
                    r.module_ctx.registry.clone(),
                    r.stats.clone(),
                );
                if let Some(ticket) = due_ticket {
                    acc.join_round(ticket);
                }
                let gather = if r.instance.config.runs_inline() {
                    let mut f = Box::pin(CatchUnwind {
                        inner: Box::pin(gather_task(m, acc)) as GatherFuture,
                    });
                    // Most inline gathers are done in their first poll: then the outcome is
                    // handled in the next turn of the loop without arming the overrun timer.
                    match std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await {
                        Poll::Ready(outcome) => {
                            finished = Some((outcome, now));
                            continue;
                        }
                        Poll::Pending => Gather::Inline(f),
                    }
                } else {
                    Gather::Task(tokio::spawn(gather_task(m, acc)))
                };
                running = Some(Running {
                    gather,
                    started: now,
                    deadline: now + r.gather_timeout,
                });
            }
        }
    }

    // Wait (briefly) for the aborted gather to end, so the lines it hands over as it ends are
    // queued before the next config's lines and before a shutdown drains the queue.
    if let Some(Running {
        gather: Gather::Task(mut handle),
        ..
    }) = running.take()
    {
        handle.abort();
        if tokio::time::timeout(STOP_WAIT, &mut handle).await.is_err() {
            reap(handle, name, r.module_ctx.clone());
        }
    }
}

async fn gather_task(mut module: Module, mut acc: Accumulator) -> GatherOutput {
    let result = module.gather(&mut acc).await;
    acc.flush();
    (module, result)
}

fn record_gather(s: &InstanceStats, took: Duration) {
    let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
    stats::inc(&s.gathers);
    stats::add(&s.gather_time_ns_total, ns);
    s.last_gather_time_ns
        .store(ns, std::sync::atomic::Ordering::Relaxed);
    s.last_gather_end_ns.store(
        u64::try_from(now_ns()).unwrap_or(0),
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// Aborts a gather task and checks that it actually ends; one that does not is blocking its
/// worker thread without yielding, which no async code can interrupt: it is counted and logged
/// (the watchdog takes over if such tasks starve the whole runtime).
fn reap(handle: JoinHandle<GatherOutput>, name: String, ctx: ModuleContext) {
    handle.abort();
    tokio::spawn(async move {
        if tokio::time::timeout(STUCK_AFTER, handle).await.is_err() {
            stats::inc(&ctx.registry.agent.stuck_tasks);
            tracing::error!(
                "[inputs.{name}] aborted gather is still running after {STUCK_AFTER:?}: it blocks a thread without yielding"
            );
        }
    });
}

/// A panic payload as one short line (it ends up in one log line and telegraf splits on newlines).
pub fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    let text = if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    };
    one_line(&text, 1024)
}

/// Collapses newlines and caps the length (on a char boundary).
pub fn one_line(text: &str, max: usize) -> String {
    let mut s: String = text.replace(['\n', '\r'], " | ");
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_payloads_become_one_line() {
        assert_eq!(panic_message(Box::new("a\nb")), "a | b");
        assert_eq!(panic_message(Box::new(String::from("x"))), "x");
        assert_eq!(panic_message(Box::new(42)), "non-string panic payload");
        assert_eq!(one_line("ééé", 3), "é…");
    }

    #[tokio::test]
    async fn an_inline_gather_that_panics_becomes_an_error_with_its_message() {
        let boom: Pin<Box<dyn Future<Output = u32> + Send>> = Box::pin(async {
            tokio::task::yield_now().await;
            panic!("bad\nfixture");
        });
        assert_eq!(
            CatchUnwind { inner: boom }.await,
            Err("bad | fixture".to_owned())
        );
        let fine: Pin<Box<dyn Future<Output = u32> + Send>> = Box::pin(async { 7 });
        assert_eq!(CatchUnwind { inner: fine }.await, Ok(7));
    }

    #[test]
    fn repeated_errors_are_logged_once_per_period() {
        let mut l = ErrorLog::default();
        let t = Instant::now();
        assert!(l.should_log("a", t));
        assert!(!l.should_log("a", t + Duration::from_secs(1)));
        assert!(l.should_log("b", t + Duration::from_secs(2)));
        assert!(l.should_log("b", t + Duration::from_secs(2) + REPEAT_LOG_EVERY));
    }
}
