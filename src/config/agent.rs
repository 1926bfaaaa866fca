//! The `[agent]` table: schedule, output queue and logging. Option names follow telegraf's
//! `[agent]` where telegraf has one (`interval`, `round_interval`, `collection_jitter`,
//! `precision`, `hostname`, `metric_buffer_limit`).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::options::ConfigDuration;
use crate::options::SpanError;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AgentRaw {
    /// Default gather interval for every input (telegraf default 10s).
    interval: Option<Spanned<ConfigDuration>>,
    /// Align gathers to multiples of the interval (telegraf `round_interval`, default true).
    round_interval: Option<bool>,
    /// Random delay added to each gather, up to this much, so many agents do not probe in step.
    #[serde(alias = "collection_jitter")]
    jitter: Option<ConfigDuration>,
    /// Timestamp precision; "0s" or unset keeps nanoseconds.
    precision: Option<ConfigDuration>,
    /// Adds `host=<hostname>` to every line. Unset by default: telegraf adds its own `host` tag.
    hostname: Option<String>,
    /// `"interval"` (own schedule) or `"stdin"` (one round per newline, telegraf `signal = "STDIN"`).
    trigger: Option<Trigger>,
    /// Lines the output queue holds while stdout is not read (telegraf `metric_buffer_limit`).
    metric_buffer_limit: Option<Spanned<i64>>,
    /// Bytes the output queue may hold; the tighter of the two limits applies.
    metric_buffer_bytes: Option<Spanned<i64>>,
    log_level: Option<LogLevel>,
    log_format: Option<LogFormat>,
    /// A runtime that makes no progress for this long is stuck in blocking code: the agent exits
    /// non-zero so telegraf restarts it.
    watchdog_timeout: Option<Spanned<ConfigDuration>>,
    /// Optional HTTP health endpoint, off by default.
    health: Option<HealthRaw>,
    /// Probe groups coordinated in PostgreSQL (README "Probe groups"); off by default.
    coordination: Option<super::coordination::CoordinationRaw>,
    #[serde(default)]
    tags: BTreeMap<String, String>,
}

/// `[agent.health]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthRaw {
    /// `host:port` to listen on, e.g. "127.0.0.1:8081". Loopback only unless
    /// `allow_non_loopback = true`: the endpoint has no authentication.
    listen: Spanned<String>,
    #[serde(default)]
    allow_non_loopback: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trigger {
    Interval,
    Stdin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    /// From one of the words serde accepts (checked by the caller).
    pub(crate) fn from_word(w: &str) -> LogLevel {
        match w {
            "error" => LogLevel::Error,
            "warn" => LogLevel::Warn,
            "debug" => LogLevel::Debug,
            "trace" => LogLevel::Trace,
            _ => LogLevel::Info,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// `telegraf` when stderr is not a terminal, `text` when it is.
    Auto,
    /// `E! `/`W! `/`I! `/`D! ` prefixes that telegraf's execd maps to its own log levels.
    Telegraf,
    Text,
    Json,
}

#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub interval: Duration,
    pub round_interval: bool,
    pub jitter: Duration,
    pub precision: Duration,
    pub tags: Vec<(String, String)>,
    pub trigger: Trigger,
    pub metric_buffer_limit: usize,
    pub metric_buffer_bytes: usize,
    pub log_level: LogLevel,
    pub log_format: LogFormat,
    pub watchdog_timeout: Duration,
    pub health_listen: Option<std::net::SocketAddr>,
    pub coordination: Option<super::coordination::CoordinationConfig>,
}

/// Telegraf's default `metric_buffer_limit`.
const DEFAULT_BUFFER_LINES: usize = 10_000;
/// 10,000 typical lines of ~200 bytes with room to spare; bounds RSS when telegraf stalls.
const DEFAULT_BUFFER_BYTES: usize = 8 << 20;
/// One output batch is at most 64 KiB, so a smaller queue could not hold a single batch.
const MIN_BUFFER_BYTES: i64 = 256 << 10;

impl AgentConfig {
    pub fn precision_ns(&self) -> i64 {
        i64::try_from(self.precision.as_nanos())
            .unwrap_or(i64::MAX)
            .max(1)
    }
}

pub(super) fn resolve(raw: AgentRaw) -> Result<AgentConfig, SpanError> {
    let interval = match raw.interval {
        Some(d) if d.get_ref().get().is_zero() => {
            return Err(SpanError::new(d.span(), "interval", "must be > 0"));
        }
        Some(d) => d.into_inner().get(),
        None => Duration::from_secs(10),
    };
    let limit = |v: Option<Spanned<i64>>, key: &str, min: i64, default: usize| match v {
        Some(n) if *n.get_ref() < min => {
            Err(SpanError::new(n.span(), key, format!("must be >= {min}")))
        }
        Some(n) => Ok(usize::try_from(*n.get_ref()).unwrap_or(usize::MAX)),
        None => Ok(default),
    };
    let metric_buffer_limit = limit(
        raw.metric_buffer_limit,
        "metric_buffer_limit",
        100,
        DEFAULT_BUFFER_LINES,
    )?;
    let metric_buffer_bytes = limit(
        raw.metric_buffer_bytes,
        "metric_buffer_bytes",
        MIN_BUFFER_BYTES,
        DEFAULT_BUFFER_BYTES,
    )?;
    let jitter = raw.jitter.map(ConfigDuration::get).unwrap_or_default();
    let watchdog_timeout = match raw.watchdog_timeout {
        Some(d) if d.get_ref().get() < Duration::from_secs(1) => {
            return Err(SpanError::new(
                d.span(),
                "watchdog_timeout",
                "must be >= 1s",
            ));
        }
        Some(d) => d.into_inner().get(),
        None => Duration::from_secs(30),
    };
    let health_listen = match raw.health {
        None => None,
        Some(h) => {
            let addr: std::net::SocketAddr = h.listen.get_ref().parse().map_err(|_| {
                SpanError::new(
                    h.listen.span(),
                    "health.listen",
                    "must be an IP:port such as \"127.0.0.1:8081\"",
                )
            })?;
            if !addr.ip().is_loopback() && !h.allow_non_loopback {
                return Err(SpanError::new(
                    h.listen.span(),
                    "health.listen",
                    "not a loopback address; set allow_non_loopback = true to expose the unauthenticated endpoint",
                ));
            }
            Some(addr)
        }
    };
    let mut tags: Vec<(String, String)> = raw.tags.into_iter().collect();
    if let Some(h) = raw.hostname.filter(|h| !h.is_empty()) {
        tags.retain(|(k, _)| k != "host");
        tags.push(("host".into(), h));
    }
    let coordination = raw
        .coordination
        .map(super::coordination::resolve)
        .transpose()?;
    Ok(AgentConfig {
        interval,
        round_interval: raw.round_interval.unwrap_or(true),
        jitter,
        precision: raw.precision.map(ConfigDuration::get).unwrap_or_default(),
        tags,
        trigger: raw.trigger.unwrap_or(Trigger::Interval),
        metric_buffer_limit,
        metric_buffer_bytes,
        log_level: raw.log_level.unwrap_or(LogLevel::Info),
        log_format: raw.log_format.unwrap_or(LogFormat::Auto),
        watchdog_timeout,
        health_listen,
        coordination,
    })
}
