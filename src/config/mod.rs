//! Configuration: TOML shaped like telegraf's (`[agent]`, `[[inputs.NAME]]`), parsed into raw serde
//! structs that refuse unknown keys, then resolved into the validated runtime types the
//! supervisor and modules use. Nothing past this module re-validates.

mod agent;
mod coordination;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::options::{ConfigDuration, GlobSet, SpanError, deserialize_value, locate};
pub use crate::options::{ConfigError, Located};
pub use agent::{AgentConfig, LogFormat, LogLevel, Trigger};
pub use coordination::{CoordinationConfig, GroupMode, OnDbLoss};

use crate::modules::{self, InputConfig};
use crate::output::{Decoration, Filter};

/// The default configuration, compiled in so that `metrics-agent` with no arguments runs at once.
pub const DEFAULT_CONFIG: &str = include_str!("../../config/metrics-agent.toml");
/// How the embedded default names itself in error messages.
pub const DEFAULT_CONFIG_NAME: &str = "<embedded default>";

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from, for log lines and reloads (`None` = the embedded default).
    pub path: Option<PathBuf>,
    pub agent: AgentConfig,
    pub inputs: Vec<InputInstance>,
}

/// One `[[inputs.NAME]]` table, resolved.
#[derive(Debug, Clone)]
pub struct InputInstance {
    /// Module name (`ping`, `cpu`, ...).
    pub module: &'static str,
    /// `inputs.ping[0]`: unique, stable across reloads of an unchanged file.
    pub id: String,
    /// Name used in logs and self-metrics: `ping` or `ping::alias` (telegraf's form).
    pub display: String,
    pub alias: Option<String>,
    pub interval: Duration,
    /// A gather still running after this long is aborted and the input restarted; ticks that
    /// pass while it runs are skipped and counted. Default: twice the interval.
    pub gather_timeout: Duration,
    pub decoration: Decoration,
    /// Random delay before each gather, up to this.
    pub jitter: Duration,
    /// Fixed delay of each gather after its boundary.
    pub offset: Duration,
    /// `startup_error_behavior = "ignore"` (or `"probe"`): give up after a failed start.
    pub give_up_on_start_failure: bool,
    /// The input's own log level, if set.
    pub log_level: Option<LogLevel>,
    pub config: InputConfig,
    /// The probe group (`group = "name"`, declared in `[agent.coordination.groups]`) and its mode.
    pub group: Option<(String, GroupMode)>,
}

/// Options every input takes: telegraf's per-input options, so a block pasted from
/// telegraf.conf is accepted whole.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CommonRaw {
    interval: Option<Spanned<ConfigDuration>>,
    gather_timeout: Option<Spanned<ConfigDuration>>,
    alias: Option<String>,
    name_override: Option<Spanned<String>>,
    #[serde(default)]
    name_prefix: String,
    #[serde(default)]
    name_suffix: String,
    #[serde(default)]
    tags: BTreeMap<String, String>,
    /// Timestamps of this input rounded down to a multiple of this (default: the agent's).
    precision: Option<ConfigDuration>,
    /// Random delay before each gather, up to this (default: the agent's `jitter`).
    collection_jitter: Option<ConfigDuration>,
    /// Fixed delay of each gather after its interval boundary (default 0).
    collection_offset: Option<ConfigDuration>,
    /// Which time the lines carry: `metric` (default) or `collection_start`, which are the same
    /// here (every line is stamped when its gather starts); `collection_end` is refused.
    time_source: Option<Spanned<String>>,
    /// This input's own log level (`error`, `warn`, `info`, `debug`, `trace`): its rate-limited
    /// failure lines below it are not logged (they are still counted).
    log_level: Option<Spanned<String>>,
    /// What a failure to start does: `error` and `retry` (default here) retry with backoff,
    /// never stopping the other inputs; `ignore` and `probe` give the input up after its first
    /// failed start, with one log line.
    startup_error_behavior: Option<Spanned<String>>,
    /// Keep the configured tags even when `taginclude`/`tagexclude` would remove them.
    #[serde(default)]
    always_include_local_tags: bool,
    #[serde(default)]
    always_include_global_tags: bool,
    // Metric filters, as telegraf's (see `output::Filter`).
    namepass: Option<Spanned<Vec<String>>>,
    namedrop: Option<Spanned<Vec<String>>>,
    /// Characters a `*` in `namepass` does not cross (telegraf's glob separators).
    #[serde(default)]
    namepass_separator: String,
    #[serde(default)]
    namedrop_separator: String,
    tagpass: Option<Spanned<BTreeMap<String, Vec<String>>>>,
    tagdrop: Option<Spanned<BTreeMap<String, Vec<String>>>>,
    fieldinclude: Option<Spanned<Vec<String>>>,
    fieldexclude: Option<Spanned<Vec<String>>>,
    /// Older names of `fieldinclude` and `fieldexclude`.
    fieldpass: Option<Spanned<Vec<String>>>,
    fielddrop: Option<Spanned<Vec<String>>>,
    taginclude: Option<Spanned<Vec<String>>>,
    tagexclude: Option<Spanned<Vec<String>>>,
    /// A CEL expression in telegraf: refused with the equivalent filters suggested.
    metricpass: Option<Spanned<String>>,
    /// Probe group this instance belongs to (declared in `[agent.coordination.groups]`); its
    /// lines carry a `probe_group` tag.
    group: Option<Spanned<String>>,
}

const COMMON_KEYS: &[&str] = &[
    "interval",
    "gather_timeout",
    "alias",
    "name_override",
    "name_prefix",
    "name_suffix",
    "tags",
    "precision",
    "collection_jitter",
    "collection_offset",
    "time_source",
    "log_level",
    "startup_error_behavior",
    "always_include_local_tags",
    "always_include_global_tags",
    "namepass",
    "namedrop",
    "namepass_separator",
    "namedrop_separator",
    "tagpass",
    "tagdrop",
    "fieldinclude",
    "fieldexclude",
    "fieldpass",
    "fielddrop",
    "taginclude",
    "tagexclude",
    "metricpass",
    "group",
];

/// One glob list of a filter, compiled; errors point at the list.
fn globs(
    list: Option<&Spanned<Vec<String>>>,
    key: &str,
    separators: &str,
) -> Result<Option<GlobSet>, SpanError> {
    list.map(|l| {
        GlobSet::new(l.get_ref(), separators)
            .map_err(|e| SpanError::new(l.span(), key, e.to_string()))
    })
    .transpose()
}

/// Two lists telegraf treats as one (`fieldinclude` and its older name `fieldpass`).
fn merged<'a>(
    a: Option<&'a Spanned<Vec<String>>>,
    b: Option<&'a Spanned<Vec<String>>>,
) -> Option<Spanned<Vec<String>>> {
    match (a, b) {
        (None, None) => None,
        (Some(x), None) | (None, Some(x)) => Some(x.clone()),
        (Some(x), Some(y)) => {
            let mut all = x.get_ref().clone();
            all.extend(y.get_ref().iter().cloned());
            Some(Spanned::new(x.span(), all))
        }
    }
}

fn tag_rules(
    table: Option<&Spanned<BTreeMap<String, Vec<String>>>>,
    key: &str,
) -> Result<Vec<(String, GlobSet)>, SpanError> {
    let Some(t) = table else {
        return Ok(Vec::new());
    };
    t.get_ref()
        .iter()
        .map(|(tag, values)| {
            GlobSet::new(values, "")
                .map(|g| (tag.clone(), g))
                .map_err(|e| SpanError::new(t.span(), key, e.to_string()))
        })
        .collect()
}

fn resolve_filter(c: &CommonRaw) -> Result<Option<Filter>, SpanError> {
    if let Some(expr) = &c.metricpass {
        return Err(SpanError::new(
            expr.span(),
            "metricpass",
            "CEL expressions are not supported; select with namepass/namedrop, \
             [inputs.NAME.tagpass]/[inputs.NAME.tagdrop] and fieldinclude/fieldexclude instead",
        ));
    }
    let filter = Filter {
        namepass: globs(c.namepass.as_ref(), "namepass", &c.namepass_separator)?,
        namedrop: globs(c.namedrop.as_ref(), "namedrop", &c.namedrop_separator)?,
        tagpass: tag_rules(c.tagpass.as_ref(), "tagpass")?,
        tagdrop: tag_rules(c.tagdrop.as_ref(), "tagdrop")?,
        fieldinclude: globs(
            merged(c.fieldinclude.as_ref(), c.fieldpass.as_ref()).as_ref(),
            "fieldinclude",
            "",
        )?,
        fieldexclude: globs(
            merged(c.fieldexclude.as_ref(), c.fielddrop.as_ref()).as_ref(),
            "fieldexclude",
            "",
        )?,
        taginclude: globs(c.taginclude.as_ref(), "taginclude", "")?,
        tagexclude: globs(c.tagexclude.as_ref(), "tagexclude", "")?,
    };
    Ok(filter.is_active().then_some(filter))
}

/// One of a fixed set of words, or an error listing them.
fn one_of<'a>(
    value: Option<&'a Spanned<String>>,
    key: &str,
    allowed: &[&str],
) -> Result<Option<&'a str>, SpanError> {
    match value {
        None => Ok(None),
        Some(v) if allowed.contains(&v.get_ref().as_str()) => Ok(Some(v.get_ref().as_str())),
        Some(v) => Err(SpanError::new(
            v.span(),
            key,
            format!("must be one of: {}", allowed.join(", ")),
        )),
    }
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut cfg = Config::parse(&text, &path.display().to_string())?;
        cfg.path = Some(path.to_owned());
        Ok(cfg)
    }

    /// The embedded default configuration.
    pub fn embedded_default() -> Result<Config, ConfigError> {
        Config::parse(DEFAULT_CONFIG, DEFAULT_CONFIG_NAME)
    }

    /// Parses and validates `text`; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let root = DeTable::parse(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            locate(
                file,
                text,
                "",
                SpanError::new(span, "", first_line(e.message())),
            )
        })?;
        let root_span = root.span();
        let mut root = root.into_inner();
        let fail = |path: &str, e: SpanError| locate(file, text, path, e);

        let mut agent_table = None;
        let mut global_tags = None;
        let mut inputs_table = None;
        for (key, value) in std::mem::take(&mut root) {
            match key.get_ref().as_ref() {
                "agent" => agent_table = Some(value),
                "global_tags" => global_tags = Some(value),
                "inputs" => inputs_table = Some(value),
                other => {
                    return Err(fail(
                        "",
                        SpanError::new(
                            key.span(),
                            other,
                            "unknown section, expected `agent`, `global_tags` or `inputs`",
                        ),
                    ));
                }
            }
        }

        let agent_raw = match agent_table {
            Some(v) => deserialize_value(v).map_err(|e| fail("agent", e))?,
            None => Default::default(),
        };
        let mut agent = agent::resolve(agent_raw).map_err(|e| fail("agent", e))?;
        if let Some(v) = global_tags {
            let tags: std::collections::BTreeMap<String, String> =
                deserialize_value(v).map_err(|e| fail("global_tags", e))?;
            for (k, v) in tags {
                if !agent.tags.iter().any(|(have, _)| *have == k) {
                    agent.tags.push((k, v));
                }
            }
        }

        let inputs = match inputs_table {
            Some(v) => resolve_inputs(v, &agent).map_err(|(path, e)| fail(&path, e))?,
            None => Vec::new(),
        };
        if inputs.is_empty() {
            return Err(fail(
                "inputs",
                SpanError::new(
                    root_span.start..root_span.start,
                    "",
                    "no [[inputs.NAME]] table: nothing to run",
                ),
            ));
        }
        Ok(Config {
            path: None,
            agent,
            inputs,
        })
    }

    /// How this config names itself in log lines.
    pub fn source_name(&self) -> String {
        match &self.path {
            Some(p) => p.display().to_string(),
            None => DEFAULT_CONFIG_NAME.to_owned(),
        }
    }
}

fn first_line(msg: &str) -> String {
    msg.trim()
        .lines()
        .next()
        .unwrap_or("syntax error")
        .to_owned()
}

fn resolve_inputs(
    value: Spanned<DeValue<'_>>,
    agent: &AgentConfig,
) -> Result<Vec<InputInstance>, (String, SpanError)> {
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        return Err((
            "inputs".into(),
            SpanError::new(span, "", "must be a table of [[inputs.NAME]] tables"),
        ));
    };
    let mut out = Vec::new();
    for (name, value) in table {
        let name_span = name.span();
        let name = name.into_inner();
        let Some(entry) = modules::lookup(&name) else {
            return Err((
                format!("inputs.{name}"),
                SpanError::new(
                    name_span,
                    "",
                    format!(
                        "unknown input, expected one of: {}",
                        modules::names().collect::<Vec<_>>().join(", ")
                    ),
                ),
            ));
        };
        let value_span = value.span();
        let tables: Vec<Spanned<DeValue<'_>>> = match value.into_inner() {
            DeValue::Array(items) => items.into_iter().collect(),
            t @ DeValue::Table(_) => vec![Spanned::new(value_span, t)],
            _ => {
                return Err((
                    format!("inputs.{name}"),
                    SpanError::new(value_span, "", "must be a table: write [[inputs.NAME]]"),
                ));
            }
        };
        for (index, item) in tables.into_iter().enumerate() {
            let path = format!("inputs.{name}[{index}]");
            let inst =
                resolve_instance(entry, &path, item, agent).map_err(|e| (path.clone(), e))?;
            out.push(inst);
        }
    }
    Ok(out)
}

fn resolve_instance(
    entry: &'static modules::Entry,
    path: &str,
    item: Spanned<DeValue<'_>>,
    agent: &AgentConfig,
) -> Result<InputInstance, SpanError> {
    let span = item.span();
    let DeValue::Table(mut table) = item.into_inner() else {
        return Err(SpanError::new(span, "", "must be a table"));
    };
    let mut common_table = DeTable::new();
    for key in COMMON_KEYS {
        if let Some((k, v)) = table.remove_entry(*key) {
            common_table.insert(k, v);
        }
    }
    let mut common: CommonRaw =
        deserialize_value(Spanned::new(span.clone(), DeValue::Table(common_table)))?;
    let config = InputConfig::parse(entry, Spanned::new(span.clone(), DeValue::Table(table)))?;

    let interval = match &common.interval {
        Some(d) if d.get_ref().get().is_zero() => {
            return Err(SpanError::new(d.span(), "interval", "must be > 0"));
        }
        Some(d) => d.get_ref().get(),
        None => agent.interval,
    };
    let gather_timeout = match &common.gather_timeout {
        Some(d) if d.get_ref().get().is_zero() => {
            return Err(SpanError::new(d.span(), "gather_timeout", "must be > 0"));
        }
        Some(d) => d.get_ref().get(),
        None => interval.saturating_mul(2),
    };
    let name_override = match common.name_override.take() {
        Some(n) if n.get_ref().is_empty() || n.get_ref().starts_with('#') => {
            return Err(SpanError::new(
                n.span(),
                "name_override",
                "must be non-empty and must not start with '#'",
            ));
        }
        Some(n) => Some(n.into_inner()),
        None => None,
    };
    let filter = resolve_filter(&common)?;
    // Instance tags win over global tags; both only fill keys the metric lacks (telegraf's rule).
    // taginclude/tagexclude apply to them too (they are filtered here once: they are the same
    // for every metric), unless always_include_local/global_tags says otherwise.
    let keep = |key: &str, always: bool| always || filter.as_ref().is_none_or(|f| f.keep_tag(key));
    let group = match common.group.take() {
        Some(g) => {
            let mode = agent
                .coordination
                .as_ref()
                .and_then(|c| c.groups.get(g.get_ref()))
                .copied()
                .ok_or_else(|| {
                    SpanError::new(
                        g.span(),
                        "group",
                        format!("no group {:?} in [agent.coordination.groups]", g.get_ref()),
                    )
                })?;
            Some((g.into_inner(), mode))
        }
        None => None,
    };
    let mut tags: Vec<(String, String)> = common
        .tags
        .iter()
        .filter(|(k, _)| keep(k, common.always_include_local_tags))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    // A grouped instance's lines say which group (not subject to the tag filters: it is how the
    // group's series are told apart).
    if let Some((name, _)) = &group {
        tags.retain(|(k, _)| k != "probe_group");
        tags.insert(0, ("probe_group".to_owned(), name.clone()));
    }
    for (k, v) in &agent.tags {
        if !common.tags.contains_key(k) && keep(k, common.always_include_global_tags) {
            tags.push((k.clone(), v.clone()));
        }
    }
    // "metric" and "collection_start" are one thing here: every input stamps its metrics
    // with the time its gather started.
    let collection_end = one_of(
        common.time_source.as_ref(),
        "time_source",
        &["metric", "collection_start", "collection_end"],
    )? == Some("collection_end");
    let log_level = one_of(
        common.log_level.as_ref(),
        "log_level",
        &["error", "warn", "info", "debug", "trace"],
    )?
    .map(LogLevel::from_word);
    let give_up_on_start_failure = matches!(
        one_of(
            common.startup_error_behavior.as_ref(),
            "startup_error_behavior",
            &["error", "retry", "ignore", "probe"],
        )?,
        Some("ignore" | "probe")
    );
    let precision_ns = match common.precision {
        Some(p) => i64::try_from(p.get().as_nanos()).unwrap_or(i64::MAX).max(1),
        None => agent.precision_ns(),
    };
    let display = match &common.alias {
        Some(a) => format!("{}::{a}", entry.name),
        None => entry.name.to_owned(),
    };
    Ok(InputInstance {
        module: entry.name,
        id: path.to_owned(),
        display,
        alias: common.alias,
        interval,
        gather_timeout,
        decoration: Decoration {
            name_override,
            name_prefix: common.name_prefix,
            name_suffix: common.name_suffix,
            tags,
            precision_ns,
            filter,
            collection_end,
        },
        jitter: common
            .collection_jitter
            .map(ConfigDuration::get)
            .unwrap_or(agent.jitter),
        offset: common
            .collection_offset
            .map(ConfigDuration::get)
            .unwrap_or_default(),
        give_up_on_start_failure,
        log_level,
        config,
        group,
    })
}

#[cfg(test)]
mod tests;
