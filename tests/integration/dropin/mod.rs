//! telegraf drop-in: per input, the options of telegraf's `sample.conf` (and documentation) with
//! telegraf's example values, and telegraf's schema (measurement, tags, field names and types).
//! Option names, example values and schemas are facts taken from telegraf's documentation and
//! source (v1.39); nothing of its files is copied.
//!
//! Two tests run every table:
//! - each option line, alone in a minimal block, passes `--check-config` and `--once` (exit 0,
//!   only valid lines); lines telegraf refuses on Linux are refused with the stated words;
//! - the schema test runs a block against real servers where the input needs one and checks
//!   every line `--once` writes: its measurement is telegraf's, each tag is one of telegraf's,
//!   each field is telegraf's with telegraf's type (or a documented addition), and every field
//!   of telegraf's schema was seen or is listed with the reason it was not.

use std::any::Any;
use std::collections::BTreeSet;

use metrics_agent::modules::INPUTS;

use crate::harness::*;

mod cgroup;
mod cpu;
mod disk;
mod diskio;
mod dns_query;
mod http_response;
mod internal;
mod kernel;
mod mem;
mod mqtt_consumer;
mod net;
mod net_response;
mod netstat;
mod ping;
mod processes;
mod procstat;
mod swap;
mod system;
mod x509_cert;

/// Every table; an input of the registry without one fails `every_input_has_a_table`.
const TABLES: &[&Table] = &[
    &cgroup::TABLE,
    &cpu::TABLE,
    &disk::TABLE,
    &diskio::TABLE,
    &dns_query::TABLE,
    &http_response::TABLE,
    &internal::TABLE,
    &kernel::TABLE,
    &mem::TABLE,
    &mqtt_consumer::TABLE,
    &net::TABLE,
    &net_response::TABLE,
    &netstat::TABLE,
    &ping::TABLE,
    &processes::TABLE,
    &procstat::TABLE,
    &swap::TABLE,
    &system::TABLE,
    &x509_cert::TABLE,
];

/// Inputs of ours that telegraf does not have, or that exist only in test builds.
const NOT_TELEGRAF: &[&str] = &["chaos", "uptime"];

/// The options telegraf accepts on every input, with example values; tried on `mem` (the
/// common options are resolved by one piece of code for every input).
const COMMON: &[&str] = &[
    r#"interval = "5s""#,
    r#"precision = "1ms""#,
    r#"collection_jitter = "1s""#,
    r#"collection_offset = "1s""#,
    r#"name_override = "memory""#,
    r#"name_prefix = "p_""#,
    r#"name_suffix = "_s""#,
    r#"alias = "mem-1""#,
    r#"log_level = "debug""#,
    r#"startup_error_behavior = "retry""#,
    r#"time_source = "collection_start""#,
    r#"namepass = ["mem*"]"#,
    r#"namedrop = ["swap"]"#,
    r#"namepass_separator = ",""#,
    r#"namedrop_separator = ",""#,
    r#"fieldinclude = ["used*", "total"]"#,
    r#"fieldexclude = ["free"]"#,
    r#"fieldpass = ["used*"]"#,
    r#"fielddrop = ["free"]"#,
    r#"taginclude = ["host"]"#,
    r#"tagexclude = ["dc"]"#,
    "[inputs.mem.tags]\n  dc = \"eu-1\"",
    "[inputs.mem.tagpass]\n  host = [\"*\"]",
    "[inputs.mem.tagdrop]\n  dc = [\"us-*\"]",
];

/// Kernel features some option lines need, as (word in the line, path, what goes unseen without
/// it: field-name prefixes or measurements). telegraf refuses `collect = ["ksm"]` where the
/// kernel lacks KSM, and so do we; on such a machine those lines are skipped (and said so) and
/// those fields may go unseen.
const NEEDS: &[(&str, &str, &[&str])] = &[
    ("ksm", "/sys/kernel/mm/ksm", &["ksm_"]),
    ("psi", "/proc/pressure", &["pressure"]),
];

/// The feature `text` names that this machine lacks, if any.
pub(crate) fn lacking(text: &str) -> Option<&'static str> {
    NEEDS
        .iter()
        .find(|(word, path, _)| text.contains(word) && !std::path::Path::new(path).exists())
        .map(|(word, _, _)| *word)
}

/// Whether a field of `measurement` may go unseen because this machine lacks a feature.
fn excused(measurement: &str, field: &str) -> bool {
    NEEDS.iter().any(|(_, path, covers)| {
        !std::path::Path::new(path).exists()
            && covers
                .iter()
                .any(|c| *c == measurement || field.starts_with(c))
    })
}

/// Tags every line may carry whatever the input: set by `[global_tags]`/`tags` or by telegraf.
const GLOBAL_TAGS: &[&str] = &["host"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// `12i`: telegraf writes every integer so (uint64 too, its serializer's default).
    Int,
    Float,
    Str,
    Bool,
}

pub(crate) struct Series {
    pub measurement: &'static str,
    pub tags: &'static [&'static str],
    /// telegraf's fields; a name ending in `*` stands for fields named after files or payload
    /// keys (see [`matches`]).
    pub fields: &'static [(&'static str, Kind)],
    /// Fields of ours that telegraf lacks (additions, listed in the README).
    pub extra: &'static [(&'static str, Kind)],
    /// Fields of telegraf's schema this table's schema run cannot show, and why.
    pub unseen: &'static [(&'static str, &'static str)],
}

/// What a schema run needs: its config and whatever keeps its servers alive until it ends.
pub(crate) struct Setup {
    pub config: String,
    /// Dropped when the run ends (servers stop).
    pub _guard: Box<dyn Any>,
    /// 0: one `--once` run. Else the agent runs this long (inputs whose fields need two
    /// gathers, services) and is stopped with SIGTERM.
    pub seconds: u64,
}

impl Setup {
    pub(crate) fn plain(config: impl Into<String>) -> Setup {
        Setup::with(config, ())
    }

    /// A run whose servers live in `guard` (dropped when the run ends).
    pub(crate) fn with(config: impl Into<String>, guard: impl Any) -> Setup {
        Setup {
            config: config.into(),
            _guard: Box::new(guard),
            seconds: 0,
        }
    }
}

/// Runs a schema setup; returns the lines or why there are none.
fn run_setup(setup: &Setup) -> Result<Vec<String>, String> {
    if setup.seconds == 0 {
        let (st, lines, err) = run_once(&setup.config);
        return match st.success() {
            true => Ok(lines),
            false => Err(format!("--once exited {st}: {err}")),
        };
    }
    let mut agent = Agent::start(&setup.config);
    std::thread::sleep(std::time::Duration::from_secs(setup.seconds));
    agent.signal(libc::SIGTERM);
    let (st, _) = agent.wait_exit(std::time::Duration::from_secs(10));
    match st.success() {
        true => Ok(agent.lines()),
        false => Err(format!("exited {st}: {}", agent.stderr())),
    }
}

pub(crate) struct Table {
    pub input: &'static str,
    /// Body of the minimal block each option line is added to (targets on loopback).
    pub base: &'static str,
    /// Option lines with telegraf's example values; a line may be a sub-table, which is placed
    /// after the base keys.
    pub options: &'static [&'static str],
    /// Lines telegraf itself refuses on Linux, and words our error must contain.
    pub refused: &'static [(&'static str, &'static str)],
    pub schema: &'static [Series],
    /// The whole config (with `[[inputs.NAME]]`) of the schema run.
    pub setup: fn() -> Setup,
}

/// The block of `t` with `option`: base keys the option sets again are left out.
fn block(t: &Table, option: &str) -> String {
    let key = |l: &str| l.split('=').next().unwrap_or("").trim().to_owned();
    let set: Vec<String> = option.lines().map(key).collect();
    let base: Vec<&str> = t.base.lines().filter(|l| !set.contains(&key(l))).collect();
    format!("[[inputs.{}]]\n{}\n{}\n", t.input, base.join("\n"), option)
}

fn check_config(config: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dropin.toml");
    std::fs::write(&path, config).unwrap();
    let (st, _, err) = run_args(&["--config", path.to_str().unwrap(), "--check-config"]);
    (st.success(), err)
}

/// Runs `f` over `items` on a few threads (each item starts the agent), results in order.
fn in_parallel<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, f(item)));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

#[test]
fn every_input_has_a_table() {
    let tables: BTreeSet<&str> = TABLES.iter().map(|t| t.input).collect();
    let registry: BTreeSet<&str> = INPUTS
        .iter()
        .map(|e| e.name)
        .filter(|n| !NOT_TELEGRAF.contains(n))
        .collect();
    assert_eq!(tables, registry);
    for t in TABLES {
        assert!(!t.options.is_empty(), "{}: no option lines", t.input);
        assert!(!t.schema.is_empty(), "{}: no schema", t.input);
    }
}

#[test]
fn every_telegraf_option_line_passes_check_config_and_once() {
    let cases: Vec<(&Table, &str)> = TABLES
        .iter()
        .flat_map(|t| t.options.iter().map(move |o| (*t, *o)))
        .chain(COMMON.iter().map(|o| (&mem::TABLE, *o)))
        .collect();
    let results = in_parallel(&cases, |&(t, option)| {
        if let Some(word) = lacking(option) {
            eprintln!(
                "dropin options {}: {option:?} skipped: no {word} here",
                t.input
            );
            return Ok(());
        }
        let config = block(t, option);
        let (ok, err) = check_config(&config);
        if !ok {
            return Err(format!("--check-config refused it: {err}"));
        }
        let (st, lines, err) = run_once(&config);
        if !st.success() {
            return Err(format!("--once exited {st}: {err}"));
        }
        for l in &lines {
            parse_line(l);
        }
        Ok(())
    });
    let mut failed = Vec::new();
    for t in TABLES {
        let mine: Vec<_> = cases
            .iter()
            .zip(&results)
            .filter(|((tt, _), _)| tt.input == t.input)
            .collect();
        let ok = mine.iter().filter(|(_, r)| r.is_ok()).count();
        eprintln!("dropin options {}: {ok}/{} accepted", t.input, mine.len());
        for ((_, o), r) in mine {
            if let Err(e) = r {
                failed.push(format!("{}: {o:?}: {e}", t.input));
            }
        }
    }
    let ok = results.iter().filter(|r| r.is_ok()).count();
    eprintln!("dropin options: {ok}/{} accepted", results.len());
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

#[test]
fn options_telegraf_refuses_on_linux_are_refused_with_a_reason() {
    let cases: Vec<(&Table, &(&str, &str))> = TABLES
        .iter()
        .flat_map(|t| t.refused.iter().map(move |r| (*t, r)))
        .collect();
    let results = in_parallel(&cases, |&(t, &(option, words))| {
        let (ok, err) = check_config(&block(t, option));
        match ok {
            true => Err(format!("{}: {option:?} was accepted", t.input)),
            false if !err.contains(words) => Err(format!(
                "{}: {option:?}: error lacks {words:?}: {err}",
                t.input
            )),
            false => Ok(()),
        }
    });
    let total = results.len();
    let failed: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    eprintln!(
        "dropin refused: {}/{total} refused with the stated reason",
        total - failed.len()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// The type of a raw field value as InfluxDB reads it.
fn kind(raw: &str) -> Kind {
    if raw.starts_with('"') {
        Kind::Str
    } else if matches!(
        raw,
        "t" | "T" | "true" | "True" | "TRUE" | "f" | "F" | "false"
    ) || matches!(raw, "False" | "FALSE")
    {
        Kind::Bool
    } else if raw.ends_with('i') || raw.ends_with('u') {
        Kind::Int
    } else {
        Kind::Float
    }
}

/// A schema field name matches itself; one ending in `*` (fields named after files or
/// payload keys, as cgroup's) matches every name with that prefix.
fn matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Checks `lines` against `t`'s schema; returns (fields seen with telegraf's type, schema
/// fields) and the problems found.
fn compare(t: &Table, lines: &[Line]) -> ((usize, usize), Vec<String>) {
    let mut problems = Vec::new();
    let mut seen: BTreeSet<(&str, &str)> = BTreeSet::new();
    for l in lines {
        let Some(s) = t.schema.iter().find(|s| s.measurement == l.measurement) else {
            problems.push(format!("measurement {:?} is not telegraf's", l.measurement));
            continue;
        };
        for (k, _) in &l.tags {
            if !s.tags.contains(&k.as_str()) && !GLOBAL_TAGS.contains(&k.as_str()) {
                problems.push(format!("{}: tag {k:?} is not telegraf's", s.measurement));
            }
        }
        for (k, v) in &l.fields {
            let want = s
                .fields
                .iter()
                .chain(s.extra)
                .find(|(name, _)| matches(name, k));
            match want {
                None => problems.push(format!("{}: field {k:?} is not telegraf's", s.measurement)),
                Some((name, want)) if *want != kind(v) => problems.push(format!(
                    "{}: field {name} is {v}, telegraf writes {want:?}",
                    s.measurement
                )),
                Some((name, _)) => {
                    seen.insert((s.measurement, name));
                }
            }
        }
    }
    let mut total = 0;
    let mut matching = 0;
    for s in t.schema {
        for (f, _) in s.fields {
            total += 1;
            if seen.contains(&(s.measurement, *f)) {
                matching += 1;
            } else if !s.unseen.iter().any(|(u, _)| u == f) && !excused(s.measurement, f) {
                problems.push(format!(
                    "{}: telegraf's field {f} was not written (list it in `unseen` with why)",
                    s.measurement
                ));
            }
        }
    }
    ((matching, total), problems)
}

#[test]
fn every_input_writes_telegrafs_schema() {
    let mut problems = Vec::new();
    let (mut matching, mut total) = (0, 0);
    for t in TABLES {
        let setup = (t.setup)();
        let lines = run_setup(&setup);
        drop(setup);
        let lines = match lines {
            Ok(l) if l.is_empty() => {
                problems.push(format!("{}: the schema run wrote nothing", t.input));
                continue;
            }
            Ok(l) => l,
            Err(e) => {
                problems.push(format!("{}: {e}", t.input));
                continue;
            }
        };
        let parsed = parse_all(&lines);
        let ((m, n), p) = compare(t, &parsed);
        eprintln!("dropin schema {}: {m}/{n} fields match", t.input);
        matching += m;
        total += n;
        problems.extend(p.into_iter().map(|p| format!("{}: {p}", t.input)));
    }
    eprintln!("dropin schema: {matching}/{total} fields match");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
