//! Service inputs: inputs that are not ticked but run continuously (a subscription, a listener)
//! and hand metrics to the same output queue as the ticked ones.
//!
//! The supervisor runs a service under the same isolation as a gather: a panic in `run` is
//! caught, counted with the instance's name and the service is rebuilt with the same backoff;
//! HUP and TERM cancel it within the same bounded waits. What a service handles one piece at a
//! time (a message) goes through [`ServiceCtx::isolate`], so a panic on one message costs that
//! message, not the service.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_util::sync::CancellationToken;

use super::GatherError;
use crate::output::{Accumulator, Decoration, Queue, now_ns};
use crate::stats::{self, InstanceStats, Registry};

/// The future a service runs as.
pub(crate) type ServiceFuture<'a> =
    Pin<Box<dyn Future<Output = Result<(), GatherError>> + Send + 'a>>;

pub trait Service: Send + 'static {
    /// Runs until `ctx.cancel()` fires (reload or stop): then it stops taking new work and
    /// returns `Ok(())` promptly (within a second). Work whose lines are not queued yet is left
    /// unacknowledged for its sender to deliver again. `Err` or a panic: the supervisor logs it,
    /// counts a restart and builds the service anew after a backoff.
    fn run<'a>(&'a mut self, ctx: &'a ServiceCtx) -> ServiceFuture<'a>;
}

/// The queue was closed or the service cancelled while waiting for room: nothing was queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cancelled while waiting for room in the output queue")]
pub struct Cancelled;

/// What a running service gets from the agent.
pub struct ServiceCtx {
    cancel: CancellationToken,
    deco: Arc<Decoration>,
    queue: Arc<Queue>,
    registry: Arc<Registry>,
    stats: Arc<InstanceStats>,
}

impl ServiceCtx {
    pub(crate) fn new(
        cancel: CancellationToken,
        deco: Arc<Decoration>,
        queue: Arc<Queue>,
        registry: Arc<Registry>,
        stats: Arc<InstanceStats>,
    ) -> Self {
        ServiceCtx {
            cancel,
            deco,
            queue,
            registry,
            stats,
        }
    }

    /// Fires on reload and stop, and when the instance's gate closes.
    pub fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    /// An accumulator with this instance's decoration (name_override, tags, ...). Its lines go
    /// to the queue like a probe's (evicting the oldest when full) when it is flushed or
    /// dropped; hand it to [`ServiceCtx::queue_lossless`] instead for data that must not be lost.
    pub fn accumulator(&self) -> Accumulator {
        Accumulator::new(
            self.deco.clone(),
            self.queue.clone(),
            self.registry.clone(),
            self.stats.clone(),
        )
    }

    /// Queues the accumulator's lines without ever evicting queued lines, waiting until the
    /// output queue has room: a source that acknowledges data (an MQTT broker's QoS 1 message)
    /// acknowledges it only after this returns `Ok`. `Err(Cancelled)` if the service is cancelled
    /// or the queue closed while waiting: nothing was queued, so do not acknowledge.
    pub async fn queue_lossless(&self, mut acc: Accumulator) -> Result<(), Cancelled> {
        let mut batch = acc.take_batch();
        loop {
            let room = self.queue.room.notified();
            tokio::pin!(room);
            // Registered before trying, so room made between the try and the wait is not missed.
            room.as_mut().enable();
            if self.queue.is_closed() {
                return Err(Cancelled);
            }
            match self.queue.push_lossless(batch, &self.registry.agent) {
                Ok(()) => return Ok(()),
                Err(back) => batch = back,
            }
            tokio::select! {
                _ = room => {}
                _ = self.cancel.cancelled() => return Err(Cancelled),
            }
        }
    }

    /// Runs `f` (one message's handling) under `catch_unwind`: a panic is counted as this
    /// instance's panic, logged once per message text and period, and returned as
    /// `Err(message)` for the caller to treat that piece of work as poison.
    pub fn isolate<T>(&self, f: impl FnOnce() -> T) -> Result<T, String> {
        crate::isolation::catch(f).inspect_err(|msg| {
            stats::inc(&self.stats.panics);
            self.stats
                .error_once(msg, format_args!("handler panicked: {msg}"));
        })
    }

    /// This instance's counter `name`, written by the `internal` input as a field of its line.
    pub fn counter(&self, name: &'static str) -> Arc<AtomicU64> {
        self.stats.counter(name)
    }

    /// Logs an error of this instance once per `cause` and period; count it yourself.
    pub fn error_once(&self, cause: &str, msg: fmt::Arguments<'_>) {
        self.stats.error_once(cause, msg);
    }

    /// The service is doing its job (connected, a message arrived): `/readyz` counts it late
    /// when this has not been called for two of its intervals.
    pub fn mark_alive(&self) {
        let now = u64::try_from(now_ns()).unwrap_or(0);
        self.stats.last_gather_end_ns.store(now, Ordering::Relaxed);
    }
}
