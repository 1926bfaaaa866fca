//! `chaos` (test builds only, cargo feature `chaos`): an input that misbehaves on purpose so the
//! integration tests can prove isolation. Every mode first writes `lines` metrics carrying a
//! per-instance sequence number, so tests can check that no line is lost or duplicated.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde::Deserialize;

use super::GatherError;
use super::service::{Service, ServiceCtx, ServiceFuture};
use crate::options::{ConfigDuration, SpanError};
use crate::output::{Accumulator, Metric, now_ns};

/// `[[inputs.chaos]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// `ok` | `error` | `panic` | `hang` (awaits forever) | `sleep` (awaits `duration`) |
    /// `block` (blocks its worker thread for `duration`) | `block_pool` (blocks a blocking-pool
    /// thread forever and awaits it).
    mode: Option<Mode>,
    /// Metrics per gather (default 1).
    lines: Option<u64>,
    /// How long `sleep` and `block` last (default 1h).
    duration: Option<ConfigDuration>,
    /// Value of the `tag` tag and the `text` field, to push adversarial strings through.
    text: Option<String>,
    /// Misbehave only on every Nth gather (default 1 = every gather).
    every: Option<u64>,
    /// Misbehave at most this many times in the life of this instance, across restarts of the
    /// input (default unlimited): one blocked worker without the restart blocking the next.
    /// Counted per instance (a reload starts the count again), so other chaos instances do not
    /// use up this one's budget.
    times: Option<u64>,
    /// Run like a local collector: inside the shared task of the local lane, gathered in its
    /// instance's task (default false: a task per gather, like the probes).
    inline: Option<bool>,
    /// Run as a service input instead of on ticks: handle `rate` "messages" a second, each
    /// writing `lines` metrics through the lossless queue path. Misbehaving messages (`every`,
    /// `times`): `panic` panics inside the message handler (the message is poison, the service
    /// carries on), `error` ends the service with an error, `hang` awaits forever ignoring
    /// cancellation, `block` blocks its thread for `duration`, `sleep` awaits `duration`.
    service: Option<bool>,
    /// Messages per second of a service (default 100).
    rate: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Mode {
    Ok,
    Error,
    Panic,
    Hang,
    Sleep,
    Block,
    BlockPool,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    mode: Mode,
    lines: u64,
    duration: Duration,
    text: Option<String>,
    every: u64,
    times: u64,
    /// Shared by every rebuild of this instance (the supervisor builds from a clone of the
    /// resolved config), fresh for each parsed config.
    misbehaved: Arc<AtomicU64>,
    pub inline: bool,
    pub service: bool,
    rate: u32,
    /// A service's sequence number, kept across its restarts so lines number on without gaps.
    service_seq: Arc<AtomicU64>,
}

pub(crate) fn resolve(raw: Raw) -> Result<Config, SpanError> {
    Ok(Config {
        mode: raw.mode.unwrap_or(Mode::Ok),
        lines: raw.lines.unwrap_or(1),
        duration: raw
            .duration
            .map(ConfigDuration::get)
            .unwrap_or(Duration::from_secs(3600)),
        text: raw.text,
        every: raw.every.unwrap_or(1).max(1),
        times: raw.times.unwrap_or(u64::MAX),
        misbehaved: Arc::new(AtomicU64::new(0)),
        inline: raw.inline.unwrap_or(false),
        service: raw.service.unwrap_or(false),
        rate: raw.rate.unwrap_or(100).clamp(1, 100_000),
        service_seq: Arc::new(AtomicU64::new(0)),
    })
}

pub(crate) struct Chaos {
    config: Config,
    seq: u64,
    gathers: u64,
}

impl Chaos {
    pub(crate) fn new(config: Config) -> Self {
        Chaos {
            config,
            seq: 0,
            gathers: 0,
        }
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        for _ in 0..self.config.lines {
            self.seq += 1;
            let mut m = Metric::new("chaos", ts).field("seq", self.seq);
            if let Some(t) = &self.config.text {
                m = m.tag("tag", t.clone()).field("text", t.clone());
            }
            acc.add(m);
        }
        self.gathers += 1;
        if !self.gathers.is_multiple_of(self.config.every) {
            return Ok(());
        }
        if self.config.mode != Mode::Ok
            && self.config.misbehaved.fetch_add(1, Ordering::Relaxed) >= self.config.times
        {
            return Ok(());
        }
        match self.config.mode {
            Mode::Ok => Ok(()),
            Mode::Error => Err(GatherError::Failed("chaos: failing on purpose".into())),
            Mode::Panic => panic!("chaos: panicking on purpose"),
            Mode::Hang => {
                std::future::pending::<()>().await;
                Ok(())
            }
            Mode::Sleep => {
                tokio::time::sleep(self.config.duration).await;
                Ok(())
            }
            Mode::Block => {
                std::thread::sleep(self.config.duration);
                Ok(())
            }
            Mode::BlockPool => {
                let _ =
                    tokio::task::spawn_blocking(|| std::thread::sleep(Duration::from_secs(86_400)))
                        .await;
                Ok(())
            }
        }
    }
}

/// The test-only service input (`service = true`).
pub(crate) struct ChaosService {
    config: Config,
    messages: u64,
}

impl ChaosService {
    pub(crate) fn new(config: Config) -> Self {
        ChaosService {
            config,
            messages: 0,
        }
    }

    /// One message's metrics, built under isolation; a poison message panics here.
    fn handle(&self, poison: bool, first_seq: u64) -> Vec<Metric> {
        if poison {
            panic!("chaos: poison message");
        }
        let ts = now_ns();
        (0..self.config.lines)
            .map(|i| {
                let mut m = Metric::new("chaos", ts).field("seq", first_seq + i);
                if let Some(t) = &self.config.text {
                    m = m.tag("tag", t.clone()).field("text", t.clone());
                }
                m
            })
            .collect()
    }
}

impl Service for ChaosService {
    fn run<'a>(&'a mut self, ctx: &'a ServiceCtx) -> ServiceFuture<'a> {
        Box::pin(async move {
            let received = ctx.counter("messages_received");
            let poisoned = ctx.counter("messages_poisoned");
            let queued = ctx.counter("messages_queued");
            let mut tick = tokio::time::interval(Duration::from_secs(1) / self.config.rate);
            loop {
                tokio::select! {
                    _ = ctx.cancel().cancelled() => return Ok(()),
                    _ = tick.tick() => {}
                }
                self.messages += 1;
                received.fetch_add(1, Ordering::Relaxed);
                let misbehave = self.config.mode != Mode::Ok
                    && self.messages.is_multiple_of(self.config.every)
                    && self.config.misbehaved.fetch_add(1, Ordering::Relaxed) < self.config.times;
                let first_seq = self.config.service_seq.load(Ordering::Relaxed) + 1;
                let poison = misbehave && self.config.mode == Mode::Panic;
                match ctx.isolate(|| self.handle(poison, first_seq)) {
                    Err(_) => {
                        poisoned.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(metrics) => {
                        let mut acc = ctx.accumulator();
                        for m in metrics {
                            acc.add(m);
                        }
                        if ctx.queue_lossless(acc).await.is_err() {
                            // Cancelled while waiting for room: not queued, so not "acknowledged".
                            return Ok(());
                        }
                        self.config
                            .service_seq
                            .fetch_add(self.config.lines, Ordering::Relaxed);
                        queued.fetch_add(1, Ordering::Relaxed);
                        ctx.mark_alive();
                    }
                }
                if !misbehave {
                    continue;
                }
                match self.config.mode {
                    Mode::Ok | Mode::Panic => {}
                    Mode::Error => {
                        return Err(GatherError::Failed(
                            "chaos: service failing on purpose".into(),
                        ));
                    }
                    Mode::Hang => std::future::pending::<()>().await,
                    Mode::Sleep => tokio::time::sleep(self.config.duration).await,
                    Mode::Block => std::thread::sleep(self.config.duration),
                    Mode::BlockPool => {
                        let _ = tokio::task::spawn_blocking(|| {
                            std::thread::sleep(Duration::from_secs(86_400))
                        })
                        .await;
                    }
                }
            }
        })
    }
}

impl super::Resolve for Config {
    type Raw = Raw;
    fn resolve(raw: Raw) -> Result<Self, SpanError> {
        resolve(raw)
    }
}

impl super::Input for Config {
    fn shape(&self) -> super::Shape {
        if self.service {
            super::Shape::Service
        } else if self.inline {
            super::Shape::Local
        } else {
            super::Shape::Ticked
        }
    }
    fn build(&self, _ctx: &super::ModuleContext) -> Result<super::Built, GatherError> {
        Ok(if self.service {
            super::Built::Service(Box::new(ChaosService::new(self.clone())))
        } else {
            super::Built::Ticked(Box::new(Chaos::new(self.clone())))
        })
    }
}

impl super::Gather for Chaos {
    fn gather<'a>(&'a mut self, acc: &'a mut Accumulator) -> super::GatherFuture<'a> {
        Box::pin(Chaos::gather(self, acc))
    }
}
