//! The loop that drives one service input instance (see `modules::service`): build the service,
//! run it in a task of its own until it ends, fails, panics or is cancelled, and build it anew
//! with the same backoff as a ticked instance. While the instance's gate is closed the service
//! is not running at all (a standby does not subscribe).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use super::backoff::Backoff;
use super::gather::reap;
use super::instance::{InstanceRun, gate_changed, set_paused};
use crate::isolation::panic_message;
use crate::modules::Built;
use crate::modules::service::ServiceCtx;
use crate::stats;

/// How long a cancelled service has to return before its task is aborted: it stops taking new
/// work and leaves unqueued work unacknowledged, which takes no longer than a socket write.
/// Within the supervisor's stop grace (300 ms), so that it is this loop that aborts and reports
/// the service, not the supervisor that aborts this loop.
pub(crate) const SERVICE_STOP_WAIT: Duration = Duration::from_millis(200);

enum Ended {
    /// Reload or stop.
    Cancelled,
    /// The gate closed.
    Paused,
    /// Returned `Ok` without being asked to: restarted like a failure, so a service that keeps
    /// ending cannot spin.
    Returned,
    Failed(String),
    Panicked(String),
}

pub(crate) async fn run(mut r: InstanceRun, cancel: CancellationToken) {
    let name = r.instance.display.clone();
    let deco = Arc::new(r.instance.decoration.clone());
    let mut backoff = Backoff::default();
    loop {
        // Paused: wait for the gate to open.
        while !r.gate_open() {
            set_paused(&r.stats, true);
            tokio::select! {
                _ = cancel.cancelled() => return,
                _ = gate_changed(&mut r.gate) => {}
            }
        }
        set_paused(&r.stats, false);
        let service = match r.instance.config.build(&r.module_ctx) {
            Ok(Built::Service(s)) => s,
            Err(e) if r.instance.give_up_on_start_failure => {
                stats::inc(&r.stats.gather_errors);
                set_paused(&r.stats, true);
                tracing::error!(
                    "[inputs.{name}] cannot start: {e}; not retried (startup_error_behavior)"
                );
                return;
            }
            Err(e) => {
                let msg = e.to_string();
                stats::inc(&r.stats.gather_errors);
                stats::inc(&r.stats.restarts);
                let delay = backoff.failure(Instant::now());
                r.stats.error_once(
                    &msg,
                    format_args!(
                        "cannot start: {msg}; retrying in {:.1}s",
                        delay.as_secs_f64()
                    ),
                );
                if !pause(&cancel, delay).await {
                    return;
                }
                continue;
            }
            Ok(Built::Ticked(_)) => {
                tracing::error!("[inputs.{name}] is not a service input");
                return;
            }
        };
        let run_cancel = cancel.child_token();
        let ctx = ServiceCtx::new(
            run_cancel.clone(),
            deco.clone(),
            r.module_ctx.queue.clone(),
            r.module_ctx.registry.clone(),
            r.stats.clone(),
        );
        // Aborted if this loop is dropped (the supervisor gave up waiting for it), so a service
        // never outlives its instance.
        let mut handle = AbortOnDropHandle::new(tokio::spawn(async move {
            let mut service = service;
            service.run(&ctx).await
        }));
        let ended = tokio::select! {
            joined = &mut handle => match joined {
                Ok(Ok(())) if cancel.is_cancelled() => Ended::Cancelled,
                Ok(Ok(())) => Ended::Returned,
                Ok(Err(e)) => Ended::Failed(e.to_string()),
                Err(join) if join.is_panic() => Ended::Panicked(panic_message(join.into_panic())),
                Err(_) => Ended::Failed("cancelled".into()),
            },
            _ = cancel.cancelled() => Ended::Cancelled,
            _ = wait_gate_closed(&mut r) => Ended::Paused,
        };
        if matches!(ended, Ended::Cancelled | Ended::Paused) && !handle.is_finished() {
            run_cancel.cancel();
            if tokio::time::timeout(SERVICE_STOP_WAIT, &mut handle)
                .await
                .is_err()
            {
                tracing::warn!(
                    "[inputs.{name}] did not stop within {SERVICE_STOP_WAIT:?} of being cancelled; aborted"
                );
                reap(
                    handle.detach(),
                    "service",
                    name.clone(),
                    r.module_ctx.clone(),
                );
            }
        }
        let now = Instant::now();
        let (what, msg) = match ended {
            Ended::Cancelled => return,
            Ended::Paused => {
                tracing::info!("[inputs.{name}] paused");
                continue;
            }
            Ended::Returned => ("ended", "without being asked to".to_owned()),
            Ended::Failed(msg) => {
                stats::inc(&r.stats.gather_errors);
                ("failed", msg)
            }
            Ended::Panicked(msg) => {
                stats::inc(&r.stats.panics);
                ("panicked", msg)
            }
        };
        stats::inc(&r.stats.restarts);
        let delay = backoff.failure(now);
        tracing::error!(
            "[inputs.{name}] {what}: {msg}; restarting the input in {:.1}s",
            delay.as_secs_f64()
        );
        if !pause(&cancel, delay).await {
            return;
        }
    }
}

/// Returns when the instance's gate closes (never for an ungated instance).
async fn wait_gate_closed(r: &mut InstanceRun) {
    while r.gate_open() {
        gate_changed(&mut r.gate).await;
    }
}

/// Sleeps `delay` unless cancelled first; `false` when cancelled.
async fn pause(cancel: &CancellationToken, delay: Duration) -> bool {
    tokio::select! {
        _ = cancel.cancelled() => false,
        _ = tokio::time::sleep(delay) => true,
    }
}
