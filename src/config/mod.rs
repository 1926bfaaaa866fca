//! Configuration: TOML shaped like telegraf's (`[agent]`, `[[inputs.NAME]]`), parsed into raw serde
//! structs that refuse unknown keys, then resolved into the validated runtime types the
//! supervisor and modules use. Nothing past this module re-validates.

mod agent;
mod coordination;

use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::options::{ConfigDuration, SpanError, deserialize_value, locate};
pub use crate::options::{ConfigError, Located};
pub use agent::{AgentConfig, LogFormat, LogLevel, Trigger};
pub use coordination::{CoordinationConfig, GroupMode, OnDbLoss, Secret};

use crate::modules::{self, InputConfig};
use crate::output::Decoration;

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
    pub config: InputConfig,
    /// The probe group (`group = "name"`, declared in `[agent.coordination.groups]`) and its mode.
    pub group: Option<(String, GroupMode)>,
}

/// Options every input takes, like telegraf's common input options.
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
    tags: std::collections::BTreeMap<String, String>,
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
    "group",
];

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
    let common: CommonRaw =
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
    let name_override = match common.name_override {
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
    let group = match common.group {
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
    // Instance tags win over global tags; both only fill keys the metric lacks (telegraf's rule).
    let mut tags: Vec<(String, String)> = common.tags.into_iter().collect();
    if let Some((name, _)) = &group {
        tags.retain(|(k, _)| k != "probe_group");
        tags.insert(0, ("probe_group".to_owned(), name.clone()));
    }
    for (k, v) in &agent.tags {
        if !tags.iter().any(|(have, _)| have == k) {
            tags.push((k.clone(), v.clone()));
        }
    }
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
            precision_ns: agent.precision_ns(),
        },
        config,
        group,
    })
}

#[cfg(test)]
mod tests;
