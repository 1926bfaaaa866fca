//! `data_format = "json"`: telegraf's `json` parser. An object is one metric, an array of
//! objects one metric per element. Nested objects are flattened with `_` (`{"a":{"b":1}}` is
//! field `a_b`), arrays with the index (`a_0`). Numbers become float fields, booleans boolean
//! fields; strings are dropped unless listed in `json_string_fields` (or `tag_keys`), nulls are
//! dropped. `tag_keys` take the value as a tag, `json_name_key` names the measurement,
//! `json_time_key` with `json_time_format` sets the timestamp. An object that yields no field
//! is skipped, as telegraf skips it.

use serde_json::Value;

use super::topic::set_tag;
use crate::options::GlobSet;
use crate::output::{FieldValue, Metric};

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TimeFormat {
    Unix,
    UnixMs,
    UnixUs,
    UnixNs,
    /// A Go reference-time layout, read as UTC unless it carries a zone.
    Layout(Vec<LayoutItem>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LayoutItem {
    Literal(char),
    Year,
    Month,
    MonthName,
    Day,
    Hour,
    Minute,
    Second,
    /// `.000` / `.999…`: an optional fraction of any length.
    Fraction,
    /// `Z07:00`, `-07:00`, `-0700`, `Z0700`.
    Zone,
}

impl TimeFormat {
    pub(crate) fn parse(s: &str) -> Result<TimeFormat, String> {
        Ok(match s {
            "unix" => TimeFormat::Unix,
            "unix_ms" => TimeFormat::UnixMs,
            "unix_us" => TimeFormat::UnixUs,
            "unix_ns" => TimeFormat::UnixNs,
            layout => TimeFormat::Layout(parse_layout(layout)?),
        })
    }
}

fn parse_layout(layout: &str) -> Result<Vec<LayoutItem>, String> {
    const TOKENS: &[(&str, LayoutItem)] = &[
        ("2006", LayoutItem::Year),
        ("Z07:00", LayoutItem::Zone),
        ("-07:00", LayoutItem::Zone),
        ("Z0700", LayoutItem::Zone),
        ("-0700", LayoutItem::Zone),
        ("Jan", LayoutItem::MonthName),
        ("01", LayoutItem::Month),
        ("02", LayoutItem::Day),
        ("15", LayoutItem::Hour),
        ("04", LayoutItem::Minute),
        ("05", LayoutItem::Second),
    ];
    let mut items = Vec::new();
    let mut rest = layout;
    'outer: while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix('.').or_else(|| rest.strip_prefix(','))
            && r.starts_with(['0', '9'])
        {
            let n = r.bytes().take_while(|b| *b == b'0' || *b == b'9').count();
            items.push(LayoutItem::Fraction);
            rest = &r[n..];
            continue;
        }
        for (tok, item) in TOKENS {
            if let Some(r) = rest.strip_prefix(tok) {
                items.push(item.clone());
                rest = r;
                continue 'outer;
            }
        }
        let c = rest.chars().next().unwrap_or(' ');
        if c.is_ascii_digit()
            || rest.starts_with("MST")
            || rest.starts_with("PM")
            || rest.starts_with("Mon")
        {
            return Err(format!(
                "layout {layout:?}: only 2006 01 Jan 02 15 04 05 .000 and zones Z07:00 -07:00 -0700 Z0700 are supported, or unix, unix_ms, unix_us, unix_ns"
            ));
        }
        items.push(LayoutItem::Literal(c));
        rest = &rest[c.len_utf8()..];
    }
    if !items.contains(&LayoutItem::Year)
        || !items
            .iter()
            .any(|i| matches!(i, LayoutItem::Month | LayoutItem::MonthName))
        || !items.contains(&LayoutItem::Day)
    {
        return Err(format!(
            "layout {layout:?} needs a year (2006), a month (01 or Jan) and a day (02)"
        ));
    }
    Ok(items)
}

/// Days from 1970-01-01 to a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn take_digits(s: &str, max: usize) -> Option<(i64, &str)> {
    let n = s.bytes().take(max).take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    Some((s[..n].parse().ok()?, &s[n..]))
}

/// An optional `.123` / `,123` fraction of a second, in ns (digits beyond 9 ignored).
fn fraction(s: &str) -> Option<(i64, &str)> {
    let Some(r) = s.strip_prefix(['.', ',']) else {
        return Some((0, s));
    };
    let n = r.bytes().take_while(u8::is_ascii_digit).count();
    if n == 0 {
        return None;
    }
    let digits = &r[..n.min(9)];
    Some((format!("{digits:0<9}").parse().ok()?, &r[n..]))
}

fn parse_with_layout(items: &[LayoutItem], text: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (mut y, mut mo, mut d, mut h, mut mi, mut s, mut frac, mut off) =
        (0, 1, 1, 0, 0, 0, 0i64, 0i64);
    let mut rest = text;
    for (n, item) in items.iter().enumerate() {
        match item {
            LayoutItem::Literal(c) => rest = rest.strip_prefix(*c)?,
            LayoutItem::Year => (y, rest) = take_digits(rest, 4)?,
            LayoutItem::Month => (mo, rest) = take_digits(rest, 2)?,
            LayoutItem::MonthName => {
                let i = MONTHS.iter().position(|m| rest.starts_with(m))?;
                mo = i as i64 + 1;
                rest = &rest[3..];
            }
            LayoutItem::Day => (d, rest) = take_digits(rest, 2)?,
            LayoutItem::Hour => (h, rest) = take_digits(rest, 2)?,
            LayoutItem::Minute => (mi, rest) = take_digits(rest, 2)?,
            LayoutItem::Second => {
                (s, rest) = take_digits(rest, 2)?;
                // As Go's time.Parse: a fraction may follow the seconds even when the layout
                // has none.
                if items.get(n + 1) != Some(&LayoutItem::Fraction) {
                    (frac, rest) = fraction(rest)?;
                }
            }
            LayoutItem::Fraction => (frac, rest) = fraction(rest)?,
            LayoutItem::Zone => {
                if let Some(r) = rest.strip_prefix('Z') {
                    rest = r;
                } else {
                    let sign = match rest.as_bytes().first()? {
                        b'+' => 1,
                        b'-' => -1,
                        _ => return None,
                    };
                    let (hh, r) = take_digits(&rest[1..], 2)?;
                    let r = r.strip_prefix(':').unwrap_or(r);
                    let (mm, r) = take_digits(r, 2)?;
                    off = sign * (hh * 3600 + mm * 60);
                    rest = r;
                }
            }
        }
    }
    let valid = rest.is_empty()
        && (1..=12).contains(&mo)
        && (1..=31).contains(&d)
        && h < 24
        && mi < 60
        && s <= 60;
    if !valid {
        return None;
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - off;
    secs.checked_mul(1_000_000_000)?.checked_add(frac)
}

/// Timestamp in ns from a JSON value under `format`.
fn timestamp(v: &Value, format: &TimeFormat) -> Result<i64, String> {
    let scale = match format {
        TimeFormat::Unix => 1e9,
        TimeFormat::UnixMs => 1e6,
        TimeFormat::UnixUs => 1e3,
        TimeFormat::UnixNs => 1.0,
        TimeFormat::Layout(items) => {
            let s = v.as_str().ok_or("time value is not a string")?;
            return parse_with_layout(items, s)
                .ok_or_else(|| format!("time {s:?} does not match json_time_format"));
        }
    };
    let n = match v {
        Value::Number(n) => {
            if let (Some(i), true) = (n.as_i64(), scale >= 1.0) {
                return i
                    .checked_mul(scale as i64)
                    .ok_or_else(|| "time out of range".to_owned());
            }
            n.as_f64().ok_or("bad number")?
        }
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .map_err(|_| format!("time {s:?} is not a number"))?,
        _ => return Err("time value is not a number".into()),
    };
    let ns = n * scale;
    if !ns.is_finite() || ns.abs() >= i64::MAX as f64 {
        return Err("time out of range".into());
    }
    Ok(ns as i64)
}

#[derive(Debug, Clone, Default)]
pub(crate) struct JsonOptions {
    /// telegraf's glob forms, as in its filters.
    pub tag_keys: GlobSet,
    pub string_fields: GlobSet,
    pub name_key: Option<String>,
    pub time_key: Option<String>,
    pub time_format: Option<TimeFormat>,
    pub query: Option<String>,
}

fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, Value)>) {
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_owned()
        } else {
            format!("{prefix}_{k}")
        }
    };
    match v {
        Value::Object(map) => map.iter().for_each(|(k, v)| flatten(&key(k), v, out)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| flatten(&key(&i.to_string()), v, out)),
        other => out.push((prefix.to_owned(), other.clone())),
    }
}

fn scalar_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i.to_string(),
            (None, Some(f)) => f.to_string(),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn object_metric(
    obj: &Value,
    opts: &JsonOptions,
    name: &str,
    now_ns: i64,
) -> Result<Option<Metric>, String> {
    let mut flat = Vec::new();
    flatten("", obj, &mut flat);
    let mut m = Metric::new(name.to_owned(), now_ns);
    let mut time_seen = false;
    for (key, value) in flat {
        if opts.name_key.as_deref() == Some(key.as_str()) {
            if let Value::String(s) = &value
                && !s.is_empty()
            {
                m.name = s.clone().into();
            }
            continue;
        }
        if opts.time_key.as_deref() == Some(key.as_str()) {
            if let Some(f) = &opts.time_format {
                m.timestamp_ns = timestamp(&value, f).map_err(|e| format!("{key}: {e}"))?;
                time_seen = true;
            }
            continue;
        }
        if opts.tag_keys.matches(&key) {
            if !value.is_null() {
                set_tag(&mut m, &key, &scalar_text(&value));
            }
            continue;
        }
        match value {
            Value::Number(n) => {
                if let Some(f) = n.as_f64() {
                    m.fields.push((key.into(), FieldValue::Float(f)));
                }
            }
            Value::Bool(b) => m.fields.push((key.into(), FieldValue::Bool(b))),
            Value::String(s) if opts.string_fields.matches(&key) => {
                m.fields.push((key.into(), FieldValue::Str(s)));
            }
            _ => {}
        }
    }
    if let Some(k) = &opts.time_key
        && !time_seen
    {
        return Err(format!("json_time_key {k:?} not found"));
    }
    Ok((!m.fields.is_empty()).then_some(m))
}

/// Follows `json_query`: dot-separated keys, numeric levels index arrays.
fn query<'a>(mut v: &'a Value, path: &str) -> Result<&'a Value, String> {
    for part in path.split('.') {
        v = match v {
            Value::Object(map) => map.get(part),
            Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        }
        .ok_or_else(|| format!("json_query {path:?}: {part:?} not found"))?;
    }
    Ok(v)
}

/// Parses one payload; metrics are named `name` unless `json_name_key` says otherwise.
pub(crate) fn parse(
    payload: &[u8],
    opts: &JsonOptions,
    name: &str,
    now_ns: i64,
) -> Result<Vec<Metric>, String> {
    let root: Value = serde_json::from_slice(payload).map_err(|e| format!("invalid JSON: {e}"))?;
    let v = match &opts.query {
        Some(q) => query(&root, q)?,
        None => &root,
    };
    match v {
        Value::Object(_) => Ok(object_metric(v, opts, name, now_ns)?.into_iter().collect()),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if !item.is_object() {
                    return Err("array element is not an object".into());
                }
                out.extend(object_metric(item, opts, name, now_ns)?);
            }
            Ok(out)
        }
        _ => Err("JSON value is not an object or an array of objects".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str, opts: &JsonOptions) -> Result<Vec<Metric>, String> {
        parse(s.as_bytes(), opts, "mqtt_consumer", 7)
    }

    #[test]
    fn zigbee_sensor_payload() {
        let opts = JsonOptions {
            tag_keys: GlobSet::new(&["device"], "").unwrap(),
            string_fields: GlobSet::new(&["state*"], "").unwrap(),
            ..Default::default()
        };
        let m = p(r#"{"device":"0x00158d","battery":97,"temperature":21.43,"occupancy":false,"state_l1":"ON","linkquality":null,"update":{"state":"idle","progress":5}}"#, &opts).unwrap();
        assert_eq!(m.len(), 1);
        let m = &m[0];
        assert_eq!(m.name, "mqtt_consumer");
        assert_eq!(m.tags, [("device".into(), "0x00158d".into())]);
        let f = |k: &str| {
            m.fields
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(f("battery"), Some(FieldValue::Float(97.0)));
        assert_eq!(f("occupancy"), Some(FieldValue::Bool(false)));
        assert_eq!(f("state_l1"), Some(FieldValue::Str("ON".into())));
        assert_eq!(f("update_progress"), Some(FieldValue::Float(5.0)));
        assert_eq!(f("update_state"), None);
        assert_eq!(f("linkquality"), None);
        assert_eq!(m.timestamp_ns, 7);
    }

    #[test]
    fn arrays_names_times_and_queries() {
        let opts = JsonOptions {
            name_key: Some("kind".into()),
            time_key: Some("ts".into()),
            time_format: Some(TimeFormat::UnixMs),
            query: Some("data.readings".into()),
            ..Default::default()
        };
        let m = p(r#"{"data":{"readings":[{"kind":"temp","ts":1700000000123,"v":[1,2]},{"kind":"hum","ts":"1700000000124","v":[3]}]}}"#, &opts).unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].name, "temp");
        assert_eq!(m[0].timestamp_ns, 1_700_000_000_123_000_000);
        assert_eq!(
            m[0].fields,
            [
                ("v_0".into(), FieldValue::Float(1.0)),
                ("v_1".into(), FieldValue::Float(2.0))
            ]
        );
        assert_eq!(m[1].timestamp_ns, 1_700_000_000_124_000_000);
    }

    #[test]
    fn go_layouts() {
        let f = TimeFormat::parse("2006-01-02T15:04:05Z07:00").unwrap();
        let ts = |s: &str| timestamp(&Value::String(s.into()), &f);
        assert_eq!(ts("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000_000_000));
        assert_eq!(
            ts("2023-11-15T00:13:20+02:00"),
            Ok(1_700_000_000_000_000_000)
        );
        assert_eq!(ts("2023-11-14T22:13:20.5Z"), Ok(1_700_000_000_500_000_000));
        assert!(ts("2023-13-14T22:13:20Z").is_err());
        assert!(ts("yesterday").is_err());
        let f = TimeFormat::parse("02 Jan 2006 15:04").unwrap();
        assert_eq!(
            timestamp(&Value::String("14 Nov 2023 22:13".into()), &f),
            Ok(1_699_999_980_000_000_000)
        );
        assert!(TimeFormat::parse("Mon Jan _2 15:04:05 MST 2006").is_err());
        assert!(TimeFormat::parse("15:04").is_err());
        assert_eq!(
            timestamp(&serde_json::json!(1.5), &TimeFormat::Unix),
            Ok(1_500_000_000)
        );
    }

    #[test]
    fn errors() {
        let o = JsonOptions::default();
        assert!(p("{", &o).is_err());
        assert!(p("42", &o).is_err());
        assert!(p("[1,2]", &o).is_err());
        assert!(
            p(
                r#"{"a":1}"#,
                &JsonOptions {
                    query: Some("b".into()),
                    ..Default::default()
                }
            )
            .is_err()
        );
        let timed = JsonOptions {
            time_key: Some("t".into()),
            time_format: Some(TimeFormat::Unix),
            ..Default::default()
        };
        assert!(p(r#"{"a":1}"#, &timed).is_err());
        assert_eq!(p(r#"{"only":"strings"}"#, &o).unwrap(), []);
    }
}
