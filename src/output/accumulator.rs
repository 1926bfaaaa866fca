//! What a module writes metrics into during one gather: it encodes each metric at once (so a
//! module can never produce a malformed line and the queue holds bytes, bounded by size) and hands
//! whole-line batches to the queue.

use std::sync::Arc;

use super::encode::{Decoration, EncodeReport, encode_line};
use super::metric::Metric;
use super::queue::{Batch, Queue, RoundTicket};
use crate::stats::{self, InstanceStats, Registry};

/// A batch is handed to the queue once it reaches this size, so one batch stays near telegraf's
/// historical 64 KiB line buffer and a big gather never holds its whole output in one allocation.
const BATCH_BYTES: usize = 60 * 1024;

pub struct Accumulator {
    deco: Arc<Decoration>,
    buf: Vec<u8>,
    lines: u64,
    queue: Arc<Queue>,
    registry: Arc<Registry>,
    instance: Arc<InstanceStats>,
    /// Set for a gather that is part of a round: its lines wake the writer when the round ends.
    /// Dropped after the last flush (field order: after `buf`, in `Drop` after `flush`).
    round: Option<RoundTicket>,
    /// Metrics held until the gather ends (`Decoration::collection_end`), then stamped and
    /// encoded by [`Accumulator::flush`].
    held: Vec<Metric>,
}

impl Accumulator {
    pub fn new(
        deco: Arc<Decoration>,
        queue: Arc<Queue>,
        registry: Arc<Registry>,
        instance: Arc<InstanceStats>,
    ) -> Self {
        Accumulator {
            deco,
            buf: Vec::new(),
            lines: 0,
            queue,
            registry,
            instance,
            round: None,
            held: Vec::new(),
        }
    }

    /// Makes this gather part of the round `ticket` belongs to (see `Queue::expect_round`).
    pub fn join_round(&mut self, mut ticket: RoundTicket) {
        ticket.start();
        self.round = Some(ticket);
    }

    /// Encodes and buffers one metric. Parts that line protocol cannot carry are dropped or
    /// sanitised and counted; the first such metric of an instance is logged.
    pub fn add(&mut self, mut metric: Metric) {
        if let Some(filter) = &self.deco.filter
            && !filter.apply(&mut metric)
        {
            return;
        }
        if self.deco.collection_end {
            self.held.push(metric);
            return;
        }
        self.encode(metric);
    }

    fn encode(&mut self, metric: Metric) {
        let agent = &self.registry.agent;
        match encode_line(&mut self.buf, &metric, &self.deco) {
            Ok(report) => {
                self.lines += 1;
                stats::inc(&self.instance.metrics_gathered);
                if report != EncodeReport::default() {
                    self.note_altered(&metric, report);
                }
            }
            Err(reason) => {
                stats::inc(&agent.metrics_rejected);
                self.warn_unwritable(&metric, &reason.to_string());
            }
        }
        if self.buf.len() >= BATCH_BYTES {
            self.flush();
        }
    }

    fn note_altered(&self, metric: &Metric, report: EncodeReport) {
        let agent = &self.registry.agent;
        if report.sanitised {
            stats::inc(&agent.metrics_sanitised);
        }
        stats::add(&agent.fields_dropped, u64::from(report.fields_dropped));
        stats::add(&agent.tags_dropped, u64::from(report.tags_dropped));
        if report.fields_dropped > 0 || report.tags_dropped > 0 {
            let what = format!(
                "dropped {} field(s) and {} tag(s) that line protocol cannot carry (non-finite, empty, duplicate or reserved)",
                report.fields_dropped, report.tags_dropped
            );
            self.warn_unwritable(metric, &what);
        }
    }

    fn warn_unwritable(&self, metric: &Metric, what: &str) {
        self.instance.warn_once(
            "unwritable",
            format_args!(
                "{}: {what}; further cases for this input are only counted in metrics_agent",
                metric.name
            ),
        );
    }

    /// Logs a partial failure as an error of this instance, once per `cause` and period (see
    /// `InstanceStats::error_once`); count it with [`Accumulator::add_error`].
    pub fn error_once(&self, cause: &str, msg: std::fmt::Arguments<'_>) {
        self.instance.error_once(cause, msg);
    }

    /// A partial failure (one file, one mount, one process): counted as by
    /// [`Accumulator::add_error`] and logged as a warning of this instance once per `what` and
    /// period, so a host without `/proc/pressure` does not repeat the same warning every 10 s.
    pub fn partial_error(&mut self, what: &str, err: &dyn std::fmt::Display) {
        self.add_error();
        self.instance.warn_once(
            what,
            format_args!("{what}: {err} (further errors only counted in metrics_agent_gather)"),
        );
    }

    /// As [`Accumulator::error_once`], at warning level.
    pub fn warn_once(&self, cause: &str, msg: std::fmt::Arguments<'_>) {
        self.instance.warn_once(cause, msg);
    }

    /// `what` recovered: logged at once if it fails again.
    pub fn clear_error(&self, what: &str) {
        self.instance.clear_logged(what);
    }

    /// Whether any error of this instance is remembered as logged (see `clear_error`).
    pub fn errors_logged(&self) -> bool {
        self.instance.logged_any()
    }

    /// Counts a partial failure inside a gather (one file, one mount, one process), like
    /// telegraf's `acc.AddError`: it shows in `metrics_agent_gather` `gather_errors`/`errors` while the
    /// rest of the gather still delivers its metrics. The module logs it (once) itself.
    pub fn add_error(&mut self) {
        stats::inc(&self.instance.gather_errors);
    }

    /// The lines buffered so far, as a batch the caller queues itself (a lossless source).
    pub(crate) fn take_batch(&mut self) -> Batch {
        self.stamp_held();
        Batch::new(
            std::mem::take(&mut self.buf),
            std::mem::take(&mut self.lines),
        )
    }

    /// Encodes the held metrics with the time of this call: the end of the collection.
    fn stamp_held(&mut self) {
        if self.held.is_empty() {
            return;
        }
        let ts = super::now_ns();
        for mut m in std::mem::take(&mut self.held) {
            m.timestamp_ns = ts;
            self.encode(m);
        }
    }

    /// Hands buffered lines to the queue.
    pub fn flush(&mut self) {
        self.stamp_held();
        if self.lines == 0 {
            return;
        }
        let batch = self.take_batch();
        if self.round.is_some() {
            self.queue.push_in_round(batch, &self.registry.agent);
        } else {
            self.queue.push(batch, &self.registry.agent);
        }
    }
}

/// Lines gathered before a panic or an abort are whole and valid: they are delivered.
impl Drop for Accumulator {
    fn drop(&mut self) {
        self.flush();
        // Only now leave the round, so the last one out finds its own lines queued.
        self.round = None;
    }
}
