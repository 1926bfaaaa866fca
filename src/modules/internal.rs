//! `internal`: the agent's own health, in the shape of telegraf's `internal` input but under
//! measurement names of its own, `metrics_agent` (whole agent) and `metrics_agent_gather` (one
//! line per input instance, tag `input`, plus `alias` when set): telegraf's own internal input
//! writes `internal_agent`/`internal_gather` from the same host, and sums per host must not mix
//! the two agents' numbers. Our additions: queue depth, panics,
//! restarts, skipped ticks, sanitised/rejected metrics, reloads, live tasks, RSS, threads and
//! open fds.

use serde::Deserialize;

use super::{GatherError, ModuleContext};
use crate::options::SpanError;
use crate::output::{Accumulator, Metric, now_ns};
use crate::stats::get;

/// `[[inputs.internal]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// Report the process's RSS, threads and open fds (telegraf's `collect_memstats`; default true).
    collect_memstats: Option<bool>,
    /// telegraf's Go runtime statistics (`internal_gostats`). This agent has no Go runtime:
    /// accepted so that a pasted block works, and `true` logs once that nothing is written.
    collect_gostats: Option<bool>,
    /// One `metrics_agent_gather` line per input instance, tagged `instance` (default true
    /// here, false in telegraf: one agent runs what several telegraf plugins would, and its
    /// dashboard tells instances apart). false: as telegraf, the counters of the instances of
    /// one input with the same `alias` are summed into one line without `instance`.
    per_instance: Option<bool>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    collect_memstats: bool,
    collect_gostats: bool,
    per_instance: bool,
}

pub(crate) fn resolve(raw: Raw) -> Result<Config, SpanError> {
    Ok(Config {
        collect_memstats: raw.collect_memstats.unwrap_or(true),
        collect_gostats: raw.collect_gostats.unwrap_or(false),
        per_instance: raw.per_instance.unwrap_or(true),
    })
}

/// A `metrics_agent_gather` line's tags: input, alias, instance (`None` unless per_instance).
type GatherKey<'a> = (&'a str, Option<&'a str>, Option<&'a str>);

pub(crate) struct Internal {
    config: Config,
    ctx: ModuleContext,
    started: std::time::Instant,
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

impl Internal {
    pub(crate) fn new(config: Config, ctx: ModuleContext) -> Self {
        Internal {
            config,
            ctx,
            started: std::time::Instant::now(),
        }
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        let reg = &self.ctx.registry;
        let a = &reg.agent;
        let instances = reg.instances();
        let sum = |f: fn(&crate::stats::InstanceStats) -> u64| {
            instances.iter().map(|i| f(i)).sum::<u64>()
        };

        let mut m = Metric::new("metrics_agent", ts)
            .tag("version", VERSION)
            .field("metrics_gathered", sum(|i| get(&i.metrics_gathered)))
            .field("metrics_written", get(&a.lines_written))
            .field("metrics_dropped", get(&a.lines_dropped))
            .field("metrics_rejected", get(&a.metrics_rejected))
            .field("metrics_sanitised", get(&a.metrics_sanitised))
            .field("fields_dropped", get(&a.fields_dropped))
            .field("tags_dropped", get(&a.tags_dropped))
            .field("gather_errors", sum(|i| get(&i.gather_errors)))
            .field("gather_timeouts", sum(|i| get(&i.gather_timeouts)))
            .field("panics", sum(|i| get(&i.panics)))
            .field("restarts", sum(|i| get(&i.restarts)))
            .field("reloads", get(&a.reloads))
            .field("reload_failures", get(&a.reload_failures))
            .field("stuck_tasks", get(&a.stuck_tasks))
            .field("queue_depth", self.ctx.queue.depth() as u64)
            .field("inputs", instances.len() as u64)
            .field(
                "tasks",
                tokio::runtime::Handle::current()
                    .metrics()
                    .num_alive_tasks() as u64,
            )
            .field("uptime_s", self.started.elapsed().as_secs_f64());
        if self.config.collect_memstats {
            let p = process_stats();
            m = m
                .field_opt("rss_bytes", p.rss_bytes)
                .field_opt("threads", p.threads)
                .field_opt("open_fds", p.open_fds);
        }
        acc.add(m);

        if self.config.collect_gostats {
            acc.warn_once(
                "collect_gostats",
                format_args!("collect_gostats: this agent has no Go runtime; nothing is written"),
            );
        }
        // (input, alias, instance): without per_instance the instances of one input and alias
        // share a key and their counters are summed (telegraf's default).
        let mut lines: Vec<(GatherKey, Vec<(&str, u64)>)> = Vec::new();
        for i in &instances {
            let key = (
                i.module,
                i.alias.as_deref(),
                self.config.per_instance.then_some(i.id.as_str()),
            );
            let mut counters = vec![
                ("gathers", get(&i.gathers)),
                ("errors", get(&i.gather_errors) + get(&i.panics)),
                ("gather_errors", get(&i.gather_errors)),
                ("gather_timeouts", get(&i.gather_timeouts)),
                ("gather_time_ns", get(&i.last_gather_time_ns)),
                ("metrics_gathered", get(&i.metrics_gathered)),
                ("panics", get(&i.panics)),
                ("restarts", get(&i.restarts)),
                ("ticks_skipped", get(&i.ticks_skipped)),
                ("startup_errors", get(&i.startup_errors)),
            ];
            counters.extend(i.extra_counters());
            match lines.iter_mut().find(|(k, _)| *k == key) {
                Some((_, sum)) => {
                    for (name, v) in counters {
                        match sum.iter_mut().find(|(n, _)| *n == name) {
                            Some((_, s)) => *s = s.saturating_add(v),
                            None => sum.push((name, v)),
                        }
                    }
                }
                None => lines.push((key, counters)),
            }
        }
        for ((input, alias, instance), counters) in lines {
            let mut g = Metric::new("metrics_agent_gather", ts)
                .tag("input", input)
                .tag("version", VERSION);
            if let Some(alias) = alias {
                g = g.tag("alias", alias);
            }
            if let Some(instance) = instance {
                g = g.tag("instance", instance);
            }
            for (name, value) in counters {
                g = g.field(name, value);
            }
            acc.add(g);
        }
        Ok(())
    }
}

#[derive(Debug, Default, PartialEq)]
pub(crate) struct ProcessStats {
    pub rss_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub open_fds: Option<u64>,
}

/// The agent's own RSS, thread count and open descriptors from /proc/self.
pub(crate) fn process_stats() -> ProcessStats {
    // SAFETY: sysconf has no preconditions.
    let page = u64::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let rss_bytes = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_ascii_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * page);
    let threads = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| parse_stat_threads(&s));
    let open_fds = std::fs::read_dir("/proc/self/fd")
        .ok()
        .map(|d| d.count() as u64);
    ProcessStats {
        rss_bytes,
        threads,
        open_fds,
    }
}

/// `num_threads` is field 20 of `/proc/<pid>/stat`; the command (field 2) may contain spaces and
/// parentheses, so fields are counted after the last `)`.
pub(crate) fn parse_stat_threads(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_ascii_whitespace().nth(17)?.parse().ok()
}


impl super::Resolve for Config {
    type Raw = Raw;
    fn resolve(raw: Raw) -> Result<Self, crate::options::SpanError> {
        resolve(raw)
    }
}

impl super::Input for Config {
    fn shape(&self) -> super::Shape {
        super::Shape::Local
    }
    fn build(&self, ctx: &ModuleContext) -> Result<super::Built, GatherError> {
        Ok(super::Built::Ticked(Box::new(Internal::new(
            self.clone(),
            ctx.clone(),
        ))))
    }
}

impl super::Gather for Internal {
    fn gather<'a>(&'a mut self, acc: &'a mut Accumulator) -> super::GatherFuture<'a> {
        Box::pin(Internal::gather(self, acc))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_from_stat_with_odd_command() {
        let stat = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 7 0 12345 1000000 200 18446744073709551615";
        assert_eq!(parse_stat_threads(stat), Some(7));
    }

    #[test]
    fn own_process_is_readable() {
        let p = process_stats();
        assert!(p.rss_bytes.unwrap() > 0);
        assert!(p.threads.unwrap() >= 1);
        assert!(p.open_fds.unwrap() >= 3);
    }
}
