//! The local lane: the instances of the local collectors (`InputConfig::runs_inline`) run in
//! one task.
//!
//! Why one task: they mostly share a schedule, so one timer expiry wakes one task instead of
//! one per instance, and the other worker threads are not woken to share out a burst of tasks
//! that each take a few µs. Each instance keeps its own loop, gather timeout, panic handling
//! and backoff; they only share the thread they are polled on, which their bounded, local work
//! never holds for long.

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;

use tokio_util::sync::CancellationToken;

use super::instance::{self, InstanceRun};

type Loop = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs `runs` until `cancel`.
pub(super) async fn run(runs: Vec<InstanceRun>, cancel: CancellationToken) {
    let mut loops: Vec<Option<Loop>> = runs
        .into_iter()
        .map(|r| Some(Box::pin(instance::run(r, cancel.clone())) as Loop))
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
