//! Runs one task per input instance, isolated from each other and from the writer, and replaces
//! the whole set on reload. See `instance.rs` for what happens inside one instance.

mod backoff;
mod instance;
mod schedule;
pub mod watchdog;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use backoff::{Backoff, random_unit};
pub use instance::{one_line, panic_message};
pub use schedule::{Schedule, next_boundary};

use crate::config::{Config, Trigger};
use crate::modules::{Module, ModuleContext};
use crate::output::{Accumulator, now_ns};
use crate::stats::InstanceStats;
use instance::{InstanceRun, Ticks};

pub struct Supervisor {
    ctx: ModuleContext,
    trigger: watch::Sender<u64>,
    running: Vec<(CancellationToken, JoinHandle<()>)>,
}

impl Supervisor {
    pub fn new(ctx: ModuleContext) -> Self {
        Supervisor {
            ctx,
            trigger: watch::Sender::new(0),
            running: Vec::new(),
        }
    }

    /// Starts every instance of `config`. Counters of an instance whose id and module are
    /// unchanged carry over from the previous set, so self-metric counters stay monotonic
    /// across reloads.
    pub fn start(&mut self, config: &Config) {
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
                .started_ns
                .store(u64::try_from(now_ns()).unwrap_or(0), Ordering::Relaxed);
            let ticks = match config.agent.trigger {
                Trigger::Interval => Ticks::Interval(Schedule::new(
                    inst.interval,
                    config.agent.round_interval,
                    config.agent.jitter,
                    start,
                )),
                Trigger::Stdin => Ticks::Trigger(self.trigger.subscribe()),
            };
            let run = InstanceRun {
                instance: inst.clone(),
                stats,
                module_ctx: self.ctx.clone(),
                ticks,
                gather_timeout: inst.gather_timeout,
            };
            // TEMPORARY (mqtt branch) until the service-input API lands on main.
            if let crate::modules::InputConfig::MqttConsumer(c) = &inst.config {
                let cancel = CancellationToken::new();
                let c = (**c).clone();
                let handle = tokio::spawn(crate::modules::mqtt_consumer::run_service(
                    move || crate::modules::mqtt_consumer::MqttConsumer::new(c.clone()),
                    run.instance,
                    run.stats,
                    self.ctx.clone(),
                    config.agent.metric_buffer_limit,
                    cancel.clone(),
                ));
                self.running.push((cancel, handle));
                continue;
            }
            if inst.config.runs_inline() {
                lane.push(run);
                continue;
            }
            let cancel = CancellationToken::new();
            let handle = tokio::spawn(instance::run(run, cancel.clone()));
            self.running.push((cancel, handle));
        }
        if !lane.is_empty() {
            let cancel = CancellationToken::new();
            let handle = tokio::spawn(instance::run_lane(lane, cancel.clone()));
            self.running.push((cancel, handle));
        }
        self.ctx.registry.set_instances(all);
        tracing::debug!("started {} input instance(s)", config.inputs.len());
    }

    /// One round of every instance (trigger = "stdin").
    pub fn trigger(&self) {
        self.trigger.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Cancels every instance and waits up to `grace` for them; stragglers are aborted.
    pub async fn stop(&mut self, grace: Duration) {
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
    pub async fn run_once(&self, config: &Config) {
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
                stats,
            );
            let ctx = self.ctx.clone();
            let inst = inst.clone();
            tasks.push(tokio::spawn(async move {
                let mut acc = acc;
                let mut module = match Module::build(&inst.config, &ctx) {
                    Ok(m) => m,
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
