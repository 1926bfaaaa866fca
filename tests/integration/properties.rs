//! Property tests: the line-protocol encoder on arbitrary metrics and the config parser on
//! arbitrary text.
//!
//! Encoder: for any measurement name, tags and fields (all of Unicode, control characters,
//! backslashes, quotes and the delimiters `,= ` weighted up), `encode_line` either refuses the
//! metric or writes exactly one line that parses with the harness's reader (InfluxDB 1.x rules)
//! and with the `influxdb_line_protocol` crate, and reads back as the same metric modulo the
//! documented sanitisation ([`model`] restates it). A fixed-seed sample goes to the real
//! InfluxDB.
//!
//! Where the crate's parser reads differently from InfluxDB 1.x and telegraf, and so is not
//! compared (it still has to parse the line):
//! * a name or key that keeps two backslashes in a row (`a\\b`): the crate reads `\\` as one
//!   backslash, InfluxDB 1.x and telegraf's tag scanner keep both;
//! * a measurement name with `\=` (`=` needs no escape there): the crate reads `=`, InfluxDB
//!   keeps `\=`.

use std::collections::HashSet;

use metrics_agent::config::{Config, ConfigError};
use metrics_agent::output::{Decoration, FieldValue, Metric, Rejected, encode_line};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config as PtConfig, RngAlgorithm, TestRng, TestRunner};

use crate::harness::{influx, parse_line};

/// Characters line protocol cares about, weighted up against the rest of Unicode.
const SPECIAL: &[char] = &[
    ',', '=', ' ', '\\', '"', '\n', '\r', '\t', '\u{c}', '\0', '\u{1b}', '\u{7f}', '#', 'a', 'b',
    'i', 'e', '0', '1', '.', '-', 'é', '日', '\u{a0}', '\u{2028}', '\u{feff}', '\u{85}',
];

fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => prop::sample::select(SPECIAL),
            1 => any::<char>(),
        ],
        0..max,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn value() -> impl Strategy<Value = FieldValue> {
    prop_oneof![
        any::<f64>().prop_map(FieldValue::Float),
        prop::sample::select(vec![
            0.0,
            -0.0,
            1e300,
            -1e-300,
            5e-324,
            f64::MAX,
            f64::MIN_POSITIVE,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.1,
            1e21,
            1e-7
        ])
        .prop_map(FieldValue::Float),
        any::<i64>().prop_map(FieldValue::Int),
        any::<u64>().prop_map(FieldValue::UInt),
        any::<bool>().prop_map(FieldValue::Bool),
        text(20).prop_map(FieldValue::Str),
    ]
}

/// Keys: short, so that duplicates (raw or after sanitisation) and `time` come up.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => text(6),
        1 => prop::sample::select(vec!["time", "time\\", "a", "a\\", "a\n", "a\\n", "", "\\"])
            .prop_map(str::to_owned),
    ]
}

fn metric() -> impl Strategy<Value = Metric> {
    (
        text(12),
        prop::collection::vec((key(), text(10)), 0..5),
        prop::collection::vec((key(), value()), 0..5),
        // InfluxDB 1.x's range is roughly 1677 to 2262.
        -9_000_000_000_000_000_000i64..9_000_000_000_000_000_000,
    )
        .prop_map(|(name, tags, fields, ts)| {
            let mut m = Metric::new(name, ts);
            for (k, v) in tags {
                m = m.tag(k, v);
            }
            for (k, v) in fields {
                m = m.field(k, v);
            }
            m
        })
}

/// The documented sanitisation, restated independently of the encoder.
mod model {
    use super::*;

    #[derive(Clone, Copy, PartialEq)]
    pub(super) enum Part {
        Measurement,
        Key,
    }

    fn visible(c: char, out: &mut String) {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }

    /// What a name or key reads back as: control characters made visible, backslashes right
    /// before a delimiter (`,` and space; `=` too in keys) and at the end dropped.
    pub(super) fn ident(s: &str, part: Part) -> String {
        let mut out = String::new();
        let mut pending = 0;
        for c in s.chars() {
            if c == '\\' {
                pending += 1;
                continue;
            }
            let delimiter = c == ',' || c == ' ' || (c == '=' && part == Part::Key);
            if !delimiter {
                out.extend(std::iter::repeat_n('\\', pending));
            }
            pending = 0;
            visible(c, &mut out);
        }
        out
    }

    /// What a string field reads back as: only control characters change.
    pub(super) fn string(s: &str) -> String {
        let mut out = String::new();
        for c in s.chars() {
            visible(c, &mut out);
        }
        out
    }

    #[derive(Debug, PartialEq)]
    pub(super) enum Value {
        Float(f64),
        Int(i64),
        Bool(bool),
        Str(String),
    }

    #[derive(Debug, PartialEq)]
    pub(super) struct Expected {
        pub name: String,
        pub tags: Vec<(String, String)>,
        pub fields: Vec<(String, Value)>,
        pub ts: i64,
    }

    /// A key that can be written: not empty and not `time` once sanitised, and not the same as
    /// one already written.
    fn writable(k: &str, seen: &mut HashSet<String>) -> Option<String> {
        let sk = ident(k, Part::Key);
        (!sk.is_empty() && sk != "time" && seen.insert(sk.clone())).then_some(sk)
    }

    pub(super) fn expect(m: &Metric) -> Result<Expected, Rejected> {
        let name = ident(&m.name, Part::Measurement);
        if name.is_empty() {
            return Err(Rejected::EmptyName);
        }
        if name.starts_with('#') {
            return Err(Rejected::CommentName);
        }
        let mut seen = HashSet::new();
        let mut tags = Vec::new();
        for (k, v) in &m.tags {
            let sv = ident(v, Part::Key);
            if sv.is_empty() {
                continue;
            }
            if let Some(sk) = writable(k, &mut seen) {
                tags.push((sk, sv));
            }
        }
        let mut seen = HashSet::new();
        let mut fields = Vec::new();
        for (k, v) in &m.fields {
            let v = match v {
                FieldValue::Float(f) if !f.is_finite() => continue,
                FieldValue::Float(f) => Value::Float(*f),
                FieldValue::Int(n) => Value::Int(*n),
                FieldValue::UInt(n) => Value::Int(i64::try_from(*n).unwrap_or(i64::MAX)),
                FieldValue::Bool(b) => Value::Bool(*b),
                FieldValue::Str(s) => Value::Str(string(s)),
            };
            if let Some(sk) = writable(k, &mut seen) {
                fields.push((sk, v));
            }
        }
        if fields.is_empty() {
            return Err(Rejected::NoFields);
        }
        Ok(Expected {
            name,
            tags,
            fields,
            ts: m.timestamp_ns,
        })
    }
}

use model::{Expected, Value};

fn read_value(raw: &str) -> Value {
    if let Some(n) = raw.strip_suffix('i') {
        return Value::Int(n.parse().expect("integer"));
    }
    match raw {
        "true" => return Value::Bool(true),
        "false" => return Value::Bool(false),
        _ => {}
    }
    if raw.starts_with('"') {
        let l = parse_line(&format!("m s={raw} 0"));
        return Value::Str(l.string("s").expect("string"));
    }
    Value::Float(raw.parse().expect("float"))
}

/// Reads a line back with the harness's InfluxDB-1.x reader.
fn read_harness(line: &str) -> Expected {
    let l = parse_line(line);
    Expected {
        name: l.measurement.clone(),
        tags: l.tags.clone(),
        fields: l
            .fields
            .iter()
            .map(|(k, v)| (k.clone(), read_value(v)))
            .collect(),
        ts: l.timestamp,
    }
}

/// Reads a line back with the `influxdb_line_protocol` crate.
fn read_crate(line: &str) -> Result<Expected, String> {
    use influxdb_line_protocol::FieldValue as F;
    let mut parsed = influxdb_line_protocol::parse_lines(line);
    let l = parsed
        .next()
        .ok_or("no line")?
        .map_err(|e| format!("{e}"))?;
    if parsed.next().is_some() {
        return Err("more than one line".into());
    }
    Ok(Expected {
        name: l.series.measurement.to_string(),
        tags: l
            .series
            .tag_set
            .iter()
            .flatten()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        fields: l
            .field_set
            .iter()
            .map(|(k, v)| {
                let v = match v {
                    F::F64(f) => Value::Float(*f),
                    F::I64(n) => Value::Int(*n),
                    F::U64(n) => Value::Int(*n as i64),
                    F::Boolean(b) => Value::Bool(*b),
                    F::String(s) => Value::Str(s.to_string()),
                };
                (k.to_string(), v)
            })
            .collect(),
        ts: l.timestamp.ok_or("no timestamp")?,
    })
}

/// The crate reads `\\` (and `\=` in a measurement) differently from InfluxDB 1.x: see the
/// module doc. Such identifiers are not compared with the crate's reading.
fn crate_comparable(e: &Expected) -> bool {
    let keys = e
        .tags
        .iter()
        .flat_map(|(k, v)| [k, v])
        .chain(e.fields.iter().map(|(k, _)| k));
    !e.name.contains("\\\\")
        && !e.name.contains("\\=")
        && keys.into_iter().all(|k| !k.contains("\\\\"))
}

/// Floats compare by bits (so -0.0 ≠ 0.0 and a changed last digit shows).
fn same(a: &Expected, b: &Expected) -> bool {
    a.name == b.name
        && a.tags == b.tags
        && a.ts == b.ts
        && a.fields.len() == b.fields.len()
        && a.fields.iter().zip(&b.fields).all(|((ka, va), (kb, vb))| {
            ka == kb
                && match (va, vb) {
                    (Value::Float(x), Value::Float(y)) => x.to_bits() == y.to_bits(),
                    _ => va == vb,
                }
        })
}

fn check_metric(m: &Metric) -> Result<Option<String>, TestCaseError> {
    let mut out = b"previous line\n".to_vec();
    let result = encode_line(&mut out, m, &Decoration::default());
    let expected = model::expect(m);
    let encoded = out.split_off(14);
    match (result, expected) {
        (Err(got), Err(want)) => {
            prop_assert_eq!(got, want);
            prop_assert!(encoded.is_empty(), "a refused metric left bytes behind");
            Ok(None)
        }
        (Err(got), Ok(want)) => Err(TestCaseError::fail(format!(
            "refused ({got}) but the model expects {want:?}"
        ))),
        (Ok(_), Err(want)) => Err(TestCaseError::fail(format!(
            "wrote {:?} but the model expects a refusal ({want})",
            String::from_utf8_lossy(&encoded)
        ))),
        (Ok(_), Ok(want)) => {
            let line = String::from_utf8(encoded).expect("UTF-8");
            prop_assert!(line.ends_with('\n'));
            let line = line.strip_suffix('\n').unwrap().to_owned();
            prop_assert!(!line.contains('\n') && !line.contains('\r'), "{line:?}");
            let got = read_harness(&line);
            prop_assert!(
                same(&got, &want),
                "harness read {got:?}\nexpected {want:?}\nline {line:?}"
            );
            let krate = read_crate(&line)
                .map_err(|e| TestCaseError::fail(format!("crate refused {line:?}: {e}")))?;
            if crate_comparable(&want) {
                prop_assert!(
                    same(&krate, &want),
                    "crate read {krate:?}\nexpected {want:?}\nline {line:?}"
                );
            }
            Ok(Some(line))
        }
    }
}

proptest! {
    #![proptest_config(PtConfig { cases: 3000, failure_persistence: None, ..PtConfig::default() })]

    #[test]
    fn encoder_writes_one_parseable_line_or_refuses(m in metric()) {
        check_metric(&m)?;
    }
}

/// A fixed-seed sample of encoded lines goes to the real InfluxDB 1.x in batches. Each metric
/// gets its own measurement (a suffix), so no two lines can conflict on a field's type.
#[test]
fn influxdb_accepts_generated_lines() {
    let mut runner = TestRunner::new_with_rng(
        PtConfig::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let strategy = metric();
    let mut lines = Vec::new();
    for i in 0..2000 {
        let mut m = strategy.new_tree(&mut runner).expect("value").current();
        // Timestamps InfluxDB 1.x stores (1677-09-21 to 2262-04-11).
        m.timestamp_ns = m
            .timestamp_ns
            .clamp(-9_000_000_000_000_000_000, 9_000_000_000_000_000_000);
        let deco = Decoration {
            name_suffix: format!("_p{i}"),
            ..Decoration::default()
        };
        let mut out = Vec::new();
        if encode_line(&mut out, &m, &deco).is_ok() {
            lines.push(String::from_utf8(out).unwrap().trim_end().to_owned());
        }
    }
    eprintln!("properties: {} generated lines to InfluxDB", lines.len());
    assert!(lines.len() > 1000);
    for batch in lines.chunks(250) {
        let (status, body) = influx().write(batch);
        if status != 204 {
            // Name the offending lines one by one.
            let bad: Vec<_> = batch
                .iter()
                .filter(|l| influx().write(std::slice::from_ref(l)).0 != 204)
                .map(|l| format!("{l:?}: {}", influx().write(std::slice::from_ref(l)).1))
                .collect();
            panic!(
                "InfluxDB refused a batch ({status} {body}); lines:\n{}",
                bad.join("\n")
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Config parsing.

/// Pieces of TOML and of our config shape, and arbitrary characters.
fn toml_ish() -> impl Strategy<Value = String> {
    const TOKENS: &[&str] = &[
        "[agent]",
        "[[inputs.chaos]]",
        "[[inputs.system]]",
        "[[inputs.internal]]",
        "[inputs]",
        "[global_tags]",
        "[agent.tags]",
        "[[inputs.nope]]",
        "interval",
        "gather_timeout",
        "metric_buffer_limit",
        "metric_buffer_bytes",
        "name_override",
        "lines",
        "mode",
        "tags",
        "precision",
        "jitter",
        "log_level",
        "trigger",
        " = ",
        "=",
        "\"10s\"",
        "\"0s\"",
        "\"-1s\"",
        "\"1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h1h\"",
        "\"99999999999999999999s\"",
        "\"1.5ms\"",
        "\"\"",
        "'lit'",
        "\"\"\"multi\nline\"\"\"",
        "10",
        "-1",
        "0",
        "1e400",
        "99999999999999999999",
        "true",
        "{",
        "}",
        "{ a = 1 }",
        "[",
        "]",
        "[1, 2]",
        ",",
        ".",
        "#",
        "# comment",
        "\n",
        "\n",
        "\n",
        "\r\n",
        " ",
        "\t",
        "\"",
        "'",
        "\\",
        "\"\\u00e9\"",
        "\"\\uD800\"",
        "é",
        "日本",
        "\u{feff}",
        "\0",
    ];
    prop::collection::vec(
        prop_oneof![
            6 => prop::sample::select(TOKENS).prop_map(str::to_owned),
            1 => any::<char>().prop_map(String::from),
        ],
        0..40,
    )
    .prop_map(|v| v.concat())
}

fn check_config(text: &str) -> Result<(), TestCaseError> {
    match Config::parse(text, "t.toml") {
        Ok(c) => prop_assert!(!c.inputs.is_empty()),
        Err(ConfigError::Invalid(e)) => {
            let lines: Vec<&str> = text.split('\n').collect();
            prop_assert!(
                e.line >= 1 && e.line <= lines.len(),
                "line {} of {} in {text:?}: {e}",
                e.line,
                lines.len()
            );
            let width = lines[e.line - 1].chars().count();
            prop_assert!(
                e.column >= 1 && e.column <= width + 1,
                "column {} of a {width}-character line in {text:?}: {e}",
                e.column
            );
            let prefix = format!("t.toml:{}:{}: ", e.line, e.column);
            prop_assert!(e.to_string().starts_with(&prefix), "{e}");
            prop_assert!(!e.message.is_empty(), "empty message for {text:?}");
        }
        Err(other) => return Err(TestCaseError::fail(format!("unexpected {other}"))),
    }
    Ok(())
}

proptest! {
    #![proptest_config(PtConfig { cases: 3000, failure_persistence: None, ..PtConfig::default() })]

    #[test]
    fn config_parse_never_panics_and_locates_errors(text in toml_ish()) {
        check_config(&text)?;
    }
}
