//! Where one gather runs: in a task of its own (probes and anything that waits on the network
//! or on other processes: it can be aborted, and one that will not end is reported), or inline
//! in its instance's task (the local collectors, see `InputConfig::runs_inline`: no task and no
//! wake-ups of its own), in both cases with panics turned into an outcome.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::isolation::{CatchUnwind, panic_message};
use crate::modules::{GatherError, Module, ModuleContext};
use crate::output::Accumulator;
use crate::stats;

/// A task still running this long after `abort()` is blocking its thread without yielding.
pub(crate) const STUCK_AFTER: Duration = Duration::from_secs(5);

/// The module back from a gather, with the gather's result.
pub(super) type GatherOutput = (Module, Result<(), GatherError>);

/// How a gather ended: its module back and its result, or a panic message (or "cancelled").
pub(super) type Outcome = Result<GatherOutput, String>;

type GatherFuture = Pin<Box<dyn Future<Output = GatherOutput> + Send>>;

pub(super) enum Gather {
    Task(JoinHandle<GatherOutput>),
    Inline(Pin<Box<CatchUnwind<GatherFuture>>>),
}

/// A gather started: still running, or (inline gathers, most of which finish in their first
/// poll) already over.
pub(super) enum Started {
    Running(Gather),
    Done(Outcome),
}

impl Gather {
    pub(super) async fn start(module: Module, acc: Accumulator, inline: bool) -> Started {
        if !inline {
            return Started::Running(Gather::Task(tokio::spawn(gather_task(module, acc))));
        }
        let mut f = Box::pin(CatchUnwind::new(
            Box::pin(gather_task(module, acc)) as GatherFuture
        ));
        // Polled once here: a finished gather is handled without arming the overrun timer.
        match std::future::poll_fn(|cx| Poll::Ready(f.as_mut().poll(cx))).await {
            Poll::Ready(outcome) => Started::Done(outcome),
            Poll::Pending => Started::Running(Gather::Inline(f)),
        }
    }

    pub(super) async fn outcome(&mut self) -> Outcome {
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

    /// Gives the gather up (overrun, pause, stop). An inline gather is dropped where it stands;
    /// a task is aborted and watched by [`reap`].
    pub(super) fn abandon(self, name: &str, ctx: &ModuleContext) {
        if let Gather::Task(handle) = self {
            reap(handle, "gather", name.to_owned(), ctx.clone());
        }
    }
}

async fn gather_task(mut module: Module, mut acc: Accumulator) -> GatherOutput {
    let result = module.gather(&mut acc).await;
    acc.flush();
    (module, result)
}

/// Aborts a task and checks that it actually ends; one that does not is blocking its worker
/// thread without yielding, which no async code can interrupt: it is counted and logged (the
/// watchdog takes over if such tasks starve the whole runtime).
pub(super) fn reap<T: Send + 'static>(
    handle: JoinHandle<T>,
    what: &'static str,
    name: String,
    ctx: ModuleContext,
) {
    handle.abort();
    tokio::spawn(async move {
        if tokio::time::timeout(STUCK_AFTER, handle).await.is_err() {
            stats::inc(&ctx.registry.agent.stuck_tasks);
            tracing::error!(
                "[inputs.{name}] aborted {what} is still running after {STUCK_AFTER:?}: it blocks a thread without yielding"
            );
        }
    });
}
