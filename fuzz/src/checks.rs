//! What the fuzz targets check, shared with the regression test that replays crash inputs
//! (`tests/integration/fuzz_regressions.rs` includes this file by path), so a saved input is
//! checked exactly as the fuzzer checked it.

// `pub` for the fuzz crate, which re-exports these; unreachable from the integration test
// that includes this file as a module.
#![allow(unreachable_pub)]

use metrics_agent::config::{Config, ConfigError};
use metrics_agent::output::{Decoration, FieldValue, Metric, encode_line};

/// Any UTF-8 text: `Config::parse` returns, never panics, and an error names a line and
/// column inside the text.
pub fn check_config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::parse(text, "fuzz.toml") {
        Ok(c) => assert!(!c.inputs.is_empty(), "a valid config runs something"),
        Err(ConfigError::Invalid(e)) => {
            let lines: Vec<&str> = text.split('\n').collect();
            assert!(
                e.line >= 1 && e.line <= lines.len(),
                "line {} of {}: {e}",
                e.line,
                lines.len()
            );
            let width = lines[e.line - 1].chars().count();
            assert!(
                e.column >= 1 && e.column <= width + 1,
                "column {} of {width}: {e}",
                e.column
            );
            assert!(!e.message.is_empty());
        }
        Err(ConfigError::Read { .. }) => panic!("parse does not read files"),
    }
}

/// Decodes bytes into a metric: pieces separated by 0xFF; the first is the name, then each
/// piece starting with `t` is a tag (`key` 0xFE `value`), each other piece a field whose first
/// byte picks the type (`f` float from 8 bytes, `i` int, `u` uint, `b` bool, else string).
/// Invalid UTF-8 is replaced, as a module's `String` could never hold it.
pub fn metric_from_bytes(data: &[u8]) -> Metric {
    let mut pieces = data.split(|&b| b == 0xFF);
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let name = text(pieces.next().unwrap_or_default());
    let mut m = Metric::new(name, 1_700_000_000_000_000_000);
    for p in pieces {
        let Some((&kind, rest)) = p.split_first() else {
            continue;
        };
        let (k, v) = match rest.iter().position(|&b| b == 0xFE) {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, &b""[..]),
        };
        let num = || {
            let mut a = [0u8; 8];
            for (d, s) in a.iter_mut().zip(v) {
                *d = *s;
            }
            a
        };
        m = match kind {
            b't' => m.tag(text(k), text(v)),
            b'f' => m.field(text(k), FieldValue::Float(f64::from_le_bytes(num()))),
            b'i' => m.field(text(k), FieldValue::Int(i64::from_le_bytes(num()))),
            b'u' => m.field(text(k), FieldValue::UInt(u64::from_le_bytes(num()))),
            b'b' => m.field(
                text(k),
                FieldValue::Bool(v.first().is_some_and(|b| b & 1 == 1)),
            ),
            _ => m.field(text(k), FieldValue::Str(text(v))),
        };
    }
    m
}

/// The encoder refuses the metric (leaving the buffer as it was) or appends exactly one line
/// that the `influxdb_line_protocol` crate parses as one line with one field per field written.
pub fn check_encode(data: &[u8]) {
    let m = metric_from_bytes(data);
    let mut out = b"before\n".to_vec();
    match encode_line(&mut out, &m, &Decoration::default()) {
        Err(_) => assert_eq!(out, b"before\n", "a refused metric left bytes behind"),
        Ok(report) => {
            let line = std::str::from_utf8(&out[7..]).expect("UTF-8");
            assert!(line.ends_with('\n'), "{line:?}");
            let body = &line[..line.len() - 1];
            assert!(!body.contains(['\n', '\r']), "{line:?}");
            let parsed: Vec<_> = influxdb_line_protocol::parse_lines(body).collect();
            assert_eq!(parsed.len(), 1, "{line:?}");
            let l = parsed
                .into_iter()
                .next()
                .unwrap()
                .unwrap_or_else(|e| panic!("{e}: {line:?}"));
            // InfluxDB refuses a point with a repeated key or a `time` key. The crate reads `\\`
            // as one backslash where InfluxDB 1.x keeps both, so two keys it reads the same
            // may differ for InfluxDB: only keys without a backslash are compared.
            let fields: Vec<String> = l.field_set.iter().map(|(k, _)| k.to_string()).collect();
            let tag_keys: Vec<String> = l
                .series
                .tag_set
                .iter()
                .flatten()
                .map(|(k, _)| k.to_string())
                .collect();
            for keys in [&fields, &tag_keys] {
                let plain: Vec<&String> = keys.iter().filter(|k| !k.contains('\\')).collect();
                let unique: std::collections::HashSet<&&String> = plain.iter().collect();
                assert_eq!(unique.len(), plain.len(), "repeated key in {line:?}");
                assert!(!keys.iter().any(|k| k == "time"), "`time` key in {line:?}");
            }
            let written = m.fields.len() - report.fields_dropped as usize;
            assert_eq!(l.field_set.len(), written, "{line:?}");
            let tags = l.series.tag_set.map_or(0, |t| t.len());
            assert_eq!(
                tags,
                m.tags.len() - report.tags_dropped as usize,
                "{line:?}"
            );
        }
    }
}

/// The targets over parsers of bytes from outside the process (name = target = seed and
/// regression directory): each is one wrapper of the crate's façade `metrics_agent::fuzz_api`,
/// where what each parser must hold is checked.
pub const PARSER_TARGETS: [metrics_agent::fuzz_api::Parser; 7] = [
    ("dns", metrics_agent::fuzz_api::dns_reply),
    ("icmp", metrics_agent::fuzz_api::icmp_packet),
    ("sock_diag", metrics_agent::fuzz_api::sock_diag),
    ("health", metrics_agent::fuzz_api::health_request),
    ("procfs", metrics_agent::fuzz_api::procfs),
    ("x509", metrics_agent::fuzz_api::x509),
    ("mqtt", metrics_agent::fuzz_api::mqtt_message),
];
