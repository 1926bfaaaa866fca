//! Logs go to stderr only (stdout belongs to the line-protocol writer). The `telegraf` format
//! prefixes each line with `E! `, `W! `, `I! `, `D! ` or `T! `, which telegraf's execd (≥ 1.32)
//! maps to its own log levels; telegraf adds its own timestamp and plugin name.

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, Registry, reload};

use crate::config::{LogFormat, LogLevel};

/// Changes the level of a running logger (on reload).
pub(crate) struct LogHandle {
    level: reload::Handle<LevelFilter, Registry>,
}

impl LogHandle {
    pub(crate) fn set_level(&self, level: LogLevel) {
        let _ = self.level.modify(|f| *f = level_filter(level));
    }
}

fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Error => LevelFilter::ERROR,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Trace => LevelFilter::TRACE,
    }
}

/// Installs the global subscriber. Returns `None` if one is already installed (tests).
pub(crate) fn init(level: LogLevel, format: LogFormat) -> Option<LogHandle> {
    let (filter, handle) = reload::Layer::new(level_filter(level));
    let tty = std::io::stderr().is_terminal();
    let format = match format {
        LogFormat::Auto if tty => LogFormat::Text,
        LogFormat::Auto => LogFormat::Telegraf,
        other => other,
    };
    let layer = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(tty)
            .with_target(false)
            .boxed(),
        LogFormat::Telegraf | LogFormat::Auto => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .event_format(TelegrafFormat)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(layer)
        .try_init()
        .ok()?;
    Some(LogHandle { level: handle })
}

/// `E! message key=value`: one line per event, no timestamp (telegraf adds one).
struct TelegrafFormat;

impl<S, N> FormatEvent<S, N> for TelegrafFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let prefix = match *event.metadata().level() {
            Level::ERROR => "E! ",
            Level::WARN => "W! ",
            Level::INFO => "I! ",
            Level::DEBUG => "D! ",
            Level::TRACE => "T! ",
        };
        w.write_str(prefix)?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// One panic site is logged at most once per this period: a poison message that a publisher
/// repeats would otherwise cost a log line per message. Every panic is still counted by the
/// instance it happened in, and logged with that instance's name once per cause.
const PANIC_LOG_EVERY: std::time::Duration = std::time::Duration::from_secs(300);
/// Panic sites remembered for that (beyond, panics are logged every time).
const PANIC_SITES: usize = 256;

/// Routes panic messages through the logger as one line (the default hook writes several
/// unprefixed lines that telegraf would log as errors one by one). The supervisor logs which
/// input panicked and restarts it.
pub(crate) fn install_panic_hook() {
    static SEEN: std::sync::Mutex<Vec<(String, std::time::Instant)>> =
        std::sync::Mutex::new(Vec::new());
    std::panic::set_hook(Box::new(|info| {
        let msg = crate::isolation::payload_text(info.payload());
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        // try_lock: a hook never waits (nor deadlocks on a panic raised while logging one).
        if let Ok(mut seen) = SEEN.try_lock() {
            let now = std::time::Instant::now();
            let room = seen.len() < PANIC_SITES;
            match seen.iter_mut().find(|(site, _)| *site == at) {
                Some((_, t)) if now.duration_since(*t) < PANIC_LOG_EVERY => return,
                Some((_, t)) => *t = now,
                None if room => seen.push((at.clone(), now)),
                None => {}
            }
        }
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_owned();
        tracing::error!(
            "panic in thread {thread} at {at}: {}",
            crate::isolation::one_line(msg, 1024)
        );
    }));
}
