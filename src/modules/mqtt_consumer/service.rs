//! STAND-IN for `crate::modules::service` (the service-input API the lead is adding on main),
//! with the same names and signatures, so this input compiles and runs before that lands. To be
//! deleted at merge: `use crate::modules::service::{Service, ServiceCtx}` instead.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::modules::GatherError;
use crate::output::{Accumulator, Decoration, Queue};
use crate::stats::{self, InstanceStats, Registry, lock};

pub trait Service: Send + 'static {
    fn run<'a>(
        &'a mut self,
        ctx: &'a ServiceCtx,
    ) -> Pin<Box<dyn Future<Output = Result<(), GatherError>> + Send + 'a>>;
}

#[derive(Debug)]
pub struct Cancelled;

/// Identical error causes are logged at most this often per instance.
const REPEAT_LOG_EVERY: Duration = Duration::from_secs(300);

pub struct ServiceCtx {
    pub(crate) cancel: CancellationToken,
    pub(crate) deco: Arc<Decoration>,
    pub(crate) queue: Arc<Queue>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) instance: Arc<InstanceStats>,
    /// Lines the queue may hold before `queue_lossless` waits.
    pub(crate) max_lines: usize,
    logged: Mutex<HashMap<String, Instant>>,
}

impl ServiceCtx {
    pub fn new(
        cancel: CancellationToken,
        deco: Arc<Decoration>,
        queue: Arc<Queue>,
        registry: Arc<Registry>,
        instance: Arc<InstanceStats>,
        max_lines: usize,
    ) -> Self {
        ServiceCtx {
            cancel,
            deco,
            queue,
            registry,
            instance,
            max_lines,
            logged: Mutex::new(HashMap::new()),
        }
    }

    pub fn cancel(&self) -> &CancellationToken {
        &self.cancel
    }

    pub fn accumulator(&self) -> Accumulator {
        Accumulator::new(
            self.deco.clone(),
            self.queue.clone(),
            self.registry.clone(),
            self.instance.clone(),
        )
    }

    pub async fn queue_lossless(&self, acc: Accumulator) -> Result<(), Cancelled> {
        // Stand-in: waits until the queue is at most half full, then pushes.
        while self.queue.depth() > self.max_lines / 2 {
            tokio::select! {
                _ = self.cancel.cancelled() => return Err(Cancelled),
                _ = tokio::time::sleep(Duration::from_millis(5)) => {}
            }
        }
        drop(acc);
        Ok(())
    }

    pub fn isolate<T>(&self, f: impl FnOnce() -> T) -> Result<T, String> {
        // Stand-in: counted here, logged (once per cause) by the caller.
        std::panic::catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
            stats::inc(&self.instance.panics);
            crate::supervisor::panic_message(p)
        })
    }

    pub fn counter(&self, name: &'static str) -> Arc<AtomicU64> {
        let mut c = lock(&self.instance.service_counters);
        if let Some((_, a)) = c.iter().find(|(n, _)| *n == name) {
            return a.clone();
        }
        let a = Arc::new(AtomicU64::new(0));
        c.push((name, a.clone()));
        a
    }

    pub fn error_once(&self, cause: &str, msg: std::fmt::Arguments<'_>) {
        let now = Instant::now();
        let mut l = lock(&self.logged);
        match l.get(cause) {
            Some(t) if now.duration_since(*t) < REPEAT_LOG_EVERY => {}
            _ => {
                l.insert(cause.to_owned(), now);
                tracing::error!("[inputs.{}] {msg}", self.instance.display);
            }
        }
    }

    pub fn mark_alive(&self) {
        stats::inc(&self.instance.gathers);
        self.instance.last_gather_end_ns.store(
            crate::output::now_ns().max(0) as u64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

/// Runs a service until `cancel`: a run that fails, panics or returns early is logged, counted
/// as a restart (and a panic) and started again after a backoff (1 s doubling to 60 s).
pub async fn run_service<S: Service>(
    make: impl Fn() -> S,
    instance: crate::config::InputInstance,
    stats_: Arc<InstanceStats>,
    module_ctx: crate::modules::ModuleContext,
    max_lines: usize,
    cancel: CancellationToken,
) {
    let deco = Arc::new(instance.decoration.clone());
    let mut backoff = crate::supervisor::Backoff::default();
    loop {
        let ctx = Arc::new(ServiceCtx::new(
            cancel.clone(),
            deco.clone(),
            module_ctx.queue.clone(),
            module_ctx.registry.clone(),
            stats_.clone(),
            max_lines,
        ));
        let mut svc = make();
        let c = ctx.clone();
        let outcome = tokio::spawn(async move { svc.run(&c).await }).await;
        if cancel.is_cancelled() {
            return;
        }
        let why = match outcome {
            Ok(Ok(())) => "stopped on its own".to_owned(),
            Ok(Err(e)) => e.to_string(),
            Err(join) if join.is_panic() => {
                stats::inc(&stats_.panics);
                format!(
                    "panicked: {}",
                    crate::supervisor::panic_message(join.into_panic())
                )
            }
            Err(_) => "cancelled".to_owned(),
        };
        stats::inc(&stats_.restarts);
        let delay = backoff.failure(Instant::now());
        tracing::error!(
            "[inputs.{}] {why}; restarting in {delay:?}",
            instance.display
        );
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}
