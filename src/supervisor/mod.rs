//! Runs one task per input instance, isolated from each other and from the writer, and replaces
//! the whole set on reload. See `instance.rs` for what happens inside one instance.

mod backoff;
mod gather;
mod instance;
mod lane;
mod schedule;
mod service;
pub(crate) mod watchdog;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub(crate) use schedule::Schedule;

use crate::config::{Config, Trigger};
use crate::isolation::panic_message;
use crate::modules::{Built, ModuleContext};
use crate::output::{Accumulator, now_ns};
use crate::stats::InstanceStats;
use instance::{InstanceRun, Ticks};

/// Where an instance's gate comes from (probe-group leadership): `None` = always open.
pub(crate) type GateSource<'a> = &'a dyn Fn(&crate::config::InputInstance) -> Option<Gate>;

/// An instance's gate: open while `open` holds `true` and `valid` (if set) answers `true`.
/// `valid` is asked synchronously before every gather, so a condition that lapses with time (a
/// lease deadline) holds even when the owner's thread has not run yet, e.g. after a SIGSTOP.
#[derive(Clone)]
pub(crate) struct Gate {
    pub open: watch::Receiver<bool>,
    pub valid: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
}

impl From<watch::Receiver<bool>> for Gate {
    fn from(open: watch::Receiver<bool>) -> Gate {
        Gate { open, valid: None }
    }
}

pub(crate) struct Supervisor {
    ctx: ModuleContext,
    trigger: watch::Sender<u64>,
    running: Vec<(CancellationToken, JoinHandle<()>)>,
}

impl Supervisor {
    pub(crate) fn new(ctx: ModuleContext) -> Self {
        Supervisor {
            ctx,
            trigger: watch::Sender::new(0),
            running: Vec::new(),
        }
    }

    /// Starts every instance of `config`. Counters of an instance whose id and module are
    /// unchanged carry over from the previous set, so self-metric counters stay monotonic
    /// across reloads.
    pub(crate) fn start(&mut self, config: &Config, gates: GateSource<'_>) {
        let previous = self.ctx.registry.instances();
        let mut all = Vec::with_capacity(config.inputs.len());
        // One origin for every instance's schedule (see `Schedule::new`).
        let start = std::time::Instant::now();
        // Instances of the local collectors, run together in one task (see `instance::run_lane`).
        let mut lane = Vec::new();
        for inst in &config.inputs {
            let stats = previous
                .iter()
                .find(|s| s.id == inst.id && s.module == inst.module && s.display == inst.display)
                .cloned()
                .unwrap_or_else(|| {
                    Arc::new(InstanceStats::new(
                        &inst.id,
                        &inst.display,
                        inst.module,
                        inst.alias.clone(),
                    ))
                });
            all.push(stats.clone());
            let interval_ns = match config.agent.trigger {
                Trigger::Interval => u64::try_from(inst.interval.as_nanos()).unwrap_or(u64::MAX),
                Trigger::Stdin => 0,
            };
            stats.interval_ns.store(interval_ns, Ordering::Relaxed);
            stats
                .log_level
                .store(inst.log_level.map_or(0, |l| l as u8 + 1), Ordering::Relaxed);
            stats
                .started_ns
                .store(u64::try_from(now_ns()).unwrap_or(0), Ordering::Relaxed);
            let ticks = match config.agent.trigger {
                Trigger::Interval => Ticks::Interval(
                    Schedule::new(
                        inst.interval,
                        config.agent.round_interval,
                        inst.jitter,
                        start,
                    )
                    .with_offset(inst.offset),
                ),
                Trigger::Stdin => Ticks::Trigger(self.trigger.subscribe()),
            };
            let run = InstanceRun {
                instance: inst.clone(),
                stats,
                module_ctx: self.ctx.clone(),
                ticks,
                gather_timeout: inst.gather_timeout,
                gate: gates(inst),
            };
            if inst.config.runs_inline() {
                lane.push(run);
                continue;
            }
            let cancel = CancellationToken::new();
            let handle = if inst.config.is_service() {
                tokio::spawn(service::run(run, cancel.clone()))
            } else {
                tokio::spawn(instance::run(run, cancel.clone()))
            };
            self.running.push((cancel, handle));
        }
        if !lane.is_empty() {
            let cancel = CancellationToken::new();
            let handle = tokio::spawn(lane::run(lane, cancel.clone()));
            self.running.push((cancel, handle));
        }
        self.ctx.registry.set_instances(all);
        tracing::debug!("started {} input instance(s)", config.inputs.len());
    }

    /// One round of every instance (trigger = "stdin").
    pub(crate) fn trigger(&self) {
        self.trigger.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Cancels every instance and waits up to `grace` for them; stragglers are aborted.
    pub(crate) async fn stop(&mut self, grace: Duration) {
        let running = std::mem::take(&mut self.running);
        for (cancel, _) in &running {
            cancel.cancel();
        }
        let deadline = tokio::time::Instant::now() + grace;
        for (_, mut handle) in running {
            if tokio::time::timeout_at(deadline, &mut handle)
                .await
                .is_err()
            {
                tracing::warn!("an input task ignored cancellation for {grace:?}; aborted");
                handle.abort();
            }
        }
    }

    /// `--once`: every instance gathers once, concurrently, each bounded by its gather timeout.
    /// `--once` for a service input: it runs for one interval (what a gather gets), then is
    /// cancelled like on a stop.
    async fn serve_once(
        inst: crate::config::InputInstance,
        ctx: ModuleContext,
        stats: Arc<InstanceStats>,
    ) {
        let interval = inst.interval;
        let cancel = CancellationToken::new();
        let run = InstanceRun {
            instance: inst,
            stats,
            module_ctx: ctx,
            ticks: Ticks::Trigger(watch::Sender::new(0).subscribe()),
            gather_timeout: interval,
            gate: None,
        };
        let served = tokio::spawn(service::run(run, cancel.clone()));
        tokio::time::sleep(interval).await;
        cancel.cancel();
        let _ = served.await;
    }

    pub(crate) async fn run_once(&self, config: &Config) {
        let mut tasks = Vec::new();
        for inst in &config.inputs {
            let stats = Arc::new(InstanceStats::new(
                &inst.id,
                &inst.display,
                inst.module,
                inst.alias.clone(),
            ));
            let acc = Accumulator::new(
                Arc::new(inst.decoration.clone()),
                self.ctx.queue.clone(),
                self.ctx.registry.clone(),
                stats.clone(),
            );
            let ctx = self.ctx.clone();
            let inst = inst.clone();
            if inst.config.is_service() {
                tasks.push(tokio::spawn(Self::serve_once(inst, ctx, stats)));
                continue;
            }
            tasks.push(tokio::spawn(async move {
                let mut acc = acc;
                let mut module = match inst.config.build(&ctx) {
                    Ok(Built::Ticked(m)) => m,
                    Ok(Built::Service(_)) => return,
                    Err(e) => {
                        tracing::error!("[inputs.{}] cannot start: {e}", inst.display);
                        return;
                    }
                };
                match tokio::time::timeout(inst.interval, module.gather(&mut acc)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::error!("[inputs.{}] gather failed: {e}", inst.display),
                    Err(_) => tracing::error!(
                        "[inputs.{}] gather did not finish within {:?}",
                        inst.display,
                        inst.interval
                    ),
                }
            }));
        }
        for t in tasks {
            if let Err(e) = t.await
                && e.is_panic()
            {
                tracing::error!("gather panicked: {}", panic_message(e.into_panic()));
            }
        }
    }
}

#[cfg(all(test, feature = "chaos"))]
mod tests {
    use super::*;
    use crate::output::Queue;
    use crate::stats::{self, Registry};

    /// Takes everything queued: lines of `ticked` and of `svc`.
    fn drain(queue: &Queue) -> (usize, usize) {
        let batches = queue.take_all(Duration::ZERO);
        let lines: Vec<&[u8]> = batches
            .iter()
            .flat_map(|b| b.bytes.split(|&c| c == b'\n'))
            .collect();
        let count = |m: &str| lines.iter().filter(|l| l.starts_with(m.as_bytes())).count();
        (count("ticked "), count("svc "))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_gate_pauses_and_resumes_ticked_and_service_instances_without_restarts() {
        let config = Config::parse(
            "[[inputs.chaos]]\ninterval = \"10ms\"\nname_override = \"ticked\"\n\
             [[inputs.chaos]]\nservice = true\nrate = 200\nname_override = \"svc\"\n",
            "gate.toml",
        )
        .unwrap();
        let registry = Arc::new(Registry::default());
        let queue = Arc::new(Queue::new(100_000, 64 << 20));
        let mut sup = Supervisor::new(ModuleContext {
            registry: registry.clone(),
            queue: queue.clone(),
        });
        let (gate, rx) = watch::channel(false);
        sup.start(&config, &|_| Some(rx.clone().into()));
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            drain(&queue),
            (0, 0),
            "paused: nothing gathers, nothing runs"
        );
        let far_future = now_ns() + 3_600_000_000_000;
        assert!(
            crate::health::late_instances(&registry, far_future).is_empty(),
            "a paused instance is not late"
        );

        gate.send_replace(true);
        // Both start gathering: waited for (bounded), not timed, since the machine may be busy.
        let (mut ticked, mut svc) = (0, 0);
        let resumed = std::time::Instant::now();
        while (ticked <= 5 || svc <= 5) && resumed.elapsed() < Duration::from_secs(10) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let (t, s) = drain(&queue);
            (ticked, svc) = (ticked + t, svc + s);
        }
        assert!(ticked > 5 && svc > 5, "resumed: {ticked} and {svc} lines");

        gate.send_replace(false);
        tokio::time::sleep(Duration::from_millis(100)).await;
        drain(&queue);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(drain(&queue), (0, 0), "paused again: nothing more");
        for s in registry.instances() {
            assert_eq!(
                stats::get(&s.restarts),
                0,
                "{}: pausing is not a failure",
                s.id
            );
            assert!(s.paused.load(Ordering::Relaxed));
        }
        sup.stop(Duration::from_millis(300)).await;
    }
}
