//! Line-protocol encoder following the rules of telegraf's influx parser, the consumer of every
//! line we write (telegraf `plugins/parsers/influx`, InfluxDB 1.x `models/points.go`).
//!
//! Why our own encoder rather than a crate: both parsers only unescape `\,` `\=` `\ ` (and `\"`
//! in strings); a crate that doubles every backslash in a tag shows up as doubled backslashes in
//! InfluxDB, and raw newlines in a tag split one metric into two. The rules here:
//!
//! * measurement: escape `,` and space; tag keys, tag values, field keys: escape `,` `=` space.
//! * `\n` `\r` `\t` `\f` become the two-character sequences `\n` etc. (as telegraf's serializer
//!   does); any other control character becomes U+FFFD. Either way the line is "sanitised".
//! * Backslashes before ordinary characters are written as they are and read back exactly. The
//!   parsers disagree on backslashes before a delimiter (telegraf pairs `\\` in measurement and
//!   field keys, InfluxDB 1.x and telegraf's tag scanner look only at the previous byte), so
//!   backslashes directly before an escaped delimiter, and trailing ones, are dropped.
//! * Empty names, keys or tag values, the reserved key `time`, duplicate keys (judged on the key
//!   as written: `a\` and `a` are the same key) and non-finite floats cannot be written; they
//!   are dropped and reported in [`EncodeReport`].
//! * Integers carry `i` (unsigned values are clipped to `i64::MAX`), floats use Rust's shortest
//!   round-trip form (exponent notation for very large/small magnitudes, which Go parses).

use super::metric::{FieldValue, Metric};

/// Telegraf's stdout reader historically used a 64 KiB line buffer and still uses it for stderr;
/// InfluxDB rejects nothing shorter. Longer lines are never written.
pub const MAX_LINE_BYTES: usize = 64 * 1024;

/// What the encoder had to change or drop in one metric.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EncodeReport {
    /// A name, key or value was altered to be representable (control characters, backslashes).
    pub sanitised: bool,
    pub tags_dropped: u32,
    pub fields_dropped: u32,
}

/// Why a whole metric was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("empty measurement name")]
    EmptyName,
    #[error("measurement name starts with '#', which line protocol reads as a comment")]
    CommentName,
    #[error("no writable field")]
    NoFields,
    #[error("line longer than {MAX_LINE_BYTES} bytes")]
    TooLong,
}

/// Per-instance settings applied to every metric an instance produces.
#[derive(Debug, Clone, Default)]
pub struct Decoration {
    /// Replaces the measurement name (telegraf `name_override`).
    pub name_override: Option<String>,
    pub name_prefix: String,
    pub name_suffix: String,
    /// Instance tags first, then global tags; added only where the metric lacks the key.
    pub tags: Vec<(String, String)>,
    /// Timestamps are truncated to a multiple of this many nanoseconds (1 = no truncation).
    pub precision_ns: i64,
    /// telegraf's metric filters (`None` when none is set). Applied by the accumulator before
    /// encoding; `tags` above are already filtered by it.
    pub filter: Option<super::Filter>,
    /// telegraf's `time_source = "collection_end"`: the accumulator holds a gather's metrics and
    /// stamps them all with the time the gather ended.
    pub collection_end: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Measurement,
    /// Tag keys, tag values and field keys share one escaping table.
    Key,
}

/// Appends one line (with its `\n`) for `metric` to `out`, or leaves `out` unchanged and says why.
pub fn encode_line(
    out: &mut Vec<u8>,
    metric: &Metric,
    deco: &Decoration,
) -> Result<EncodeReport, Rejected> {
    let start = out.len();
    let result = encode_inner(out, metric, deco);
    match result {
        Ok(_) if out.len() - start > MAX_LINE_BYTES => {
            out.truncate(start);
            Err(Rejected::TooLong)
        }
        Ok(report) => Ok(report),
        Err(e) => {
            out.truncate(start);
            Err(e)
        }
    }
}

fn encode_inner(
    out: &mut Vec<u8>,
    metric: &Metric,
    deco: &Decoration,
) -> Result<EncodeReport, Rejected> {
    let mut report = EncodeReport::default();
    let base = deco.name_override.as_deref().unwrap_or(&metric.name);
    if base.is_empty() && deco.name_prefix.is_empty() && deco.name_suffix.is_empty() {
        return Err(Rejected::EmptyName);
    }
    let name_start = out.len();
    for piece in [deco.name_prefix.as_str(), base, deco.name_suffix.as_str()] {
        report.sanitised |= escape(out, piece, Part::Measurement);
    }
    if out.len() == name_start {
        return Err(Rejected::EmptyName);
    }
    if out[name_start] == b'#' {
        return Err(Rejected::CommentName);
    }

    // Tags and fields are judged on the key as written: two different keys can read the same
    // once sanitised (`a\` and `a`; two control characters that both become U+FFFD), and
    // InfluxDB refuses a point with a repeated field key or a `time` key.
    let mut tag_keys = Written::default();
    for (k, v) in &metric.tags {
        if !write_tag(out, k, v, &mut tag_keys, &mut report) {
            report.tags_dropped += 1;
        }
    }
    for (i, (k, v)) in deco.tags.iter().enumerate() {
        if metric.has_tag(k) || deco.tags[..i].iter().any(|(pk, _)| pk == k) {
            continue;
        }
        if !write_tag(out, k, v, &mut tag_keys, &mut report) {
            report.tags_dropped += 1;
        }
    }

    let mut written = 0usize;
    let mut field_keys = Written::default();
    for (k, v) in &metric.fields {
        if matches!(v, FieldValue::Float(f) if !f.is_finite()) {
            report.fields_dropped += 1;
            continue;
        }
        let field_start = out.len();
        out.push(if written == 0 { b' ' } else { b',' });
        report.sanitised |= escape(out, k, Part::Key);
        if !field_keys.add(out, field_start + 1, out.len()) {
            out.truncate(field_start);
            report.fields_dropped += 1;
            continue;
        }
        out.push(b'=');
        match v {
            FieldValue::Float(f) => write_float(out, *f),
            FieldValue::Int(n) => {
                write_int(out, *n);
                out.push(b'i');
            }
            FieldValue::UInt(n) => {
                write_int(out, i64::try_from(*n).unwrap_or(i64::MAX));
                out.push(b'i');
            }
            FieldValue::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
            FieldValue::Str(s) => report.sanitised |= write_string(out, s),
        }
        written += 1;
    }
    if written == 0 {
        return Err(Rejected::NoFields);
    }

    let precision = deco.precision_ns.max(1);
    let ts = metric.timestamp_ns - metric.timestamp_ns.rem_euclid(precision);
    out.push(b' ');
    write_int(out, ts);
    out.push(b'\n');
    Ok(report)
}

/// Byte ranges in the output of the keys written so far in one tag set or field set.
#[derive(Default)]
struct Written {
    /// Most metrics have few keys: no allocation for up to this many.
    inline: [(usize, usize); 8],
    len: usize,
    spill: Vec<(usize, usize)>,
}

impl Written {
    /// The key just written is `out[start..end]`. Records it and returns true when it may
    /// stay: not empty, not `time` (InfluxDB 1.x refuses a point with that tag or field key),
    /// not a repeat of an earlier key.
    fn add(&mut self, out: &[u8], start: usize, end: usize) -> bool {
        let key = &out[start..end];
        if key.is_empty() || key == b"time" {
            return false;
        }
        let seen = self.inline[..self.len.min(8)]
            .iter()
            .chain(&self.spill)
            .any(|&(s, e)| &out[s..e] == key);
        if seen {
            return false;
        }
        if self.len < 8 {
            self.inline[self.len] = (start, end);
        } else {
            self.spill.push((start, end));
        }
        self.len += 1;
        true
    }
}

/// Writes `,key=value`; nothing (and false) if the key is not writable (see [`Written::add`])
/// or the value is empty once escaped.
fn write_tag(
    out: &mut Vec<u8>,
    k: &str,
    v: &str,
    keys: &mut Written,
    report: &mut EncodeReport,
) -> bool {
    let start = out.len();
    out.push(b',');
    let mut altered = escape(out, k, Part::Key);
    let key_end = out.len();
    out.push(b'=');
    altered |= escape(out, v, Part::Key);
    report.sanitised |= altered;
    if out.len() == key_end + 1 {
        out.truncate(start);
        return false;
    }
    // Judge the key only once the value is known to be writable, so a dropped tag does not
    // shadow a later one with the same key.
    let ok = keys.add(out, start + 1, key_end);
    if !ok {
        out.truncate(start);
    }
    ok
}

/// Escapes `s` into `out`; returns true when the text had to be altered beyond plain escaping.
fn escape(out: &mut Vec<u8>, s: &str, part: Part) -> bool {
    // Nearly every name and tag is plain: one check the compiler can vectorise, one copy.
    if !s
        .bytes()
        .any(|b| matches!(b, b'\\' | b',' | b' ' | b'=') || b < 0x20 || b == 0x7f)
    {
        out.extend_from_slice(s.as_bytes());
        return false;
    }
    let mut altered = false;
    // Backslashes are held back until we know what follows them.
    let mut pending = 0usize;
    for &b in s.as_bytes() {
        if b == b'\\' {
            pending += 1;
            continue;
        }
        let delimiter = matches!(b, b',' | b' ') || (b == b'=' && part == Part::Key);
        if delimiter {
            // A backslash right before an escaped delimiter would make the scanners read the
            // delimiter differently (telegraf pairs `\\` in keys, InfluxDB looks at the
            // previous byte): it cannot be carried.
            altered |= pending > 0;
            out.push(b'\\');
            out.push(b);
        } else {
            out.extend(std::iter::repeat_n(b'\\', pending));
            match b {
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x0c => out.extend_from_slice(b"\\f"),
                _ if b < 0x20 || b == 0x7f => out.extend_from_slice("\u{FFFD}".as_bytes()),
                _ => out.push(b),
            }
            altered |= b < 0x20 || b == 0x7f;
        }
        pending = 0;
    }
    // A trailing backslash would escape the separator after the value (telegraf's serializer
    // trims these too).
    altered |= pending > 0;
    altered
}

/// String field: `"` and `\` are escaped (both parsers unescape them exactly); control characters
/// are made visible as in tags so no raw newline ever reaches the stream.
fn write_string(out: &mut Vec<u8>, s: &str) -> bool {
    let mut altered = false;
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' | b'\\' => {
                out.push(b'\\');
                out.push(b);
            }
            b'\n' => out.extend_from_slice(b"\\\\n"),
            b'\r' => out.extend_from_slice(b"\\\\r"),
            b'\t' => out.extend_from_slice(b"\\\\t"),
            0x0c => out.extend_from_slice(b"\\\\f"),
            _ if b < 0x20 || b == 0x7f => out.extend_from_slice("\u{FFFD}".as_bytes()),
            _ => {
                out.push(b);
                continue;
            }
        }
        altered |= b != b'"' && b != b'\\';
    }
    out.push(b'"');
    altered
}

fn write_int(out: &mut Vec<u8>, n: i64) {
    let mut buf = [0u8; 20];
    let mut pos = buf.len();
    let mut v = n.unsigned_abs();
    loop {
        pos -= 1;
        buf[pos] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&buf[pos..]);
}

/// Shortest representation that round-trips, with exponent notation for very large or small
/// magnitudes (1e300 is 5 bytes, not 301); callers pass finite values only.
fn write_float(out: &mut Vec<u8>, f: f64) {
    let mut buf = ryu::Buffer::new();
    out.extend_from_slice(buf.format_finite(f).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(m: &Metric) -> String {
        let mut out = Vec::new();
        encode_line(&mut out, m, &Decoration::default()).expect("encodes");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn typical_line() {
        let m = Metric::new("cpu", 1_700_000_000_123_456_789)
            .tag("cpu", "cpu-total")
            .field("usage_idle", 99.5)
            .field("n", 3i64)
            .field("big", u64::MAX)
            .field("ok", true)
            .field("s", "x");
        assert_eq!(
            line(&m),
            "cpu,cpu=cpu-total usage_idle=99.5,n=3i,big=9223372036854775807i,ok=true,s=\"x\" 1700000000123456789\n"
        );
    }

    #[test]
    fn escapes_like_telegraf() {
        let m = Metric::new("my meas,x=y", 1)
            .tag("t k", "a,b=c d")
            .field("f=k", "say \"hi\" \\o/");
        assert_eq!(
            line(&m),
            "my\\ meas\\,x=y,t\\ k=a\\,b\\=c\\ d f\\=k=\"say \\\"hi\\\" \\\\o/\" 1\n"
        );
    }

    #[test]
    fn newlines_never_reach_the_stream() {
        let m = Metric::new("m", 1)
            .tag("t", "a\nb\r\tc")
            .field("s", "l1\nl2");
        let l = line(&m);
        assert_eq!(l.matches('\n').count(), 1);
        assert_eq!(l, "m,t=a\\nb\\r\\tc s=\"l1\\\\nl2\" 1\n");
        let mut out = Vec::new();
        let r = encode_line(&mut out, &m, &Decoration::default()).unwrap();
        assert!(r.sanitised);
    }

    #[test]
    fn backslashes_never_touch_a_delimiter() {
        let l = |v: &str| line(&Metric::new("m", 1).tag("t", v).field("f", 1i64));
        // Trailing backslashes cannot be carried: trimmed, as telegraf's serializer does.
        assert_eq!(l("x\\"), "m,t=x f=1i 1\n");
        assert_eq!(l("x\\\\"), "m,t=x f=1i 1\n");
        // Backslashes right before a delimiter are dropped; the delimiter is escaped.
        assert_eq!(l("a\\,b"), "m,t=a\\,b f=1i 1\n");
        // Backslashes before ordinary characters are exact.
        assert_eq!(l("C:\\Windows\\\\x"), "m,t=C:\\Windows\\\\x f=1i 1\n");
        // A value of backslashes only is empty once trimmed: the tag is dropped.
        let mut out = Vec::new();
        let r = encode_line(
            &mut out,
            &Metric::new("m", 1).tag("t", "\\").field("f", 1i64),
            &Decoration::default(),
        )
        .unwrap();
        assert_eq!(
            (String::from_utf8(out).unwrap().as_str(), r.sanitised),
            ("m f=1i 1\n", true)
        );
    }

    #[test]
    fn unwritable_parts_are_dropped_and_counted() {
        let m = Metric::new("m", 1)
            .tag("", "v")
            .tag("e", "")
            .tag("time", "x")
            .tag("a", "1")
            .tag("a", "2")
            .field("nan", f64::NAN)
            .field("inf", f64::INFINITY)
            .field("time", 1i64)
            .field("ok", 1.0);
        let mut out = Vec::new();
        let r = encode_line(&mut out, &m, &Decoration::default()).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "m,a=1 ok=1.0 1\n");
        assert_eq!(r.tags_dropped, 4);
        assert_eq!(r.fields_dropped, 3);
    }

    #[test]
    fn keys_are_judged_as_written() {
        // Found by the property tests: InfluxDB refused these points ("invalid tag key: time",
        // "field type conflict" between two fields that both read `a` or both read U+FFFD).
        let m = Metric::new("m", 1)
            .tag("time\\", "x")
            .tag("k", "")
            .tag("k", "kept")
            .field("a", 1i64)
            .field("a\\", true)
            .field("\u{1}", 1.0)
            .field("\u{2}", "s")
            .field("time\\", 2i64);
        let mut out = Vec::new();
        let r = encode_line(&mut out, &m, &Decoration::default()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "m,k=kept a=1i,\u{FFFD}=1.0 1\n"
        );
        assert_eq!((r.tags_dropped, r.fields_dropped), (2, 3));
        assert!(r.sanitised);
    }

    #[test]
    fn rejects_what_cannot_be_a_line() {
        let mut out = b"keep\n".to_vec();
        let d = Decoration::default();
        assert_eq!(
            encode_line(&mut out, &Metric::new("", 1).field("f", 1.0), &d),
            Err(Rejected::EmptyName)
        );
        assert_eq!(
            encode_line(&mut out, &Metric::new("#c", 1).field("f", 1.0), &d),
            Err(Rejected::CommentName)
        );
        assert_eq!(
            encode_line(&mut out, &Metric::new("m", 1).field("f", f64::NAN), &d),
            Err(Rejected::NoFields)
        );
        let huge = "x".repeat(MAX_LINE_BYTES);
        assert_eq!(
            encode_line(&mut out, &Metric::new("m", 1).field("f", huge), &d),
            Err(Rejected::TooLong)
        );
        assert_eq!(out, b"keep\n");
    }

    #[test]
    fn decoration_applies_name_tags_and_precision() {
        let d = Decoration {
            name_override: Some("renamed".into()),
            name_prefix: "p_".into(),
            name_suffix: "_s".into(),
            tags: vec![
                ("own".into(), "inst".into()),
                ("dc".into(), "x".into()),
                ("dc".into(), "y".into()),
            ],
            precision_ns: 1_000_000_000,
            filter: None,
            collection_end: false,
        };
        let m = Metric::new("orig", 1_999_999_999)
            .tag("own", "metric")
            .field("f", -0.25);
        let mut out = Vec::new();
        encode_line(&mut out, &m, &d).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "p_renamed_s,own=metric,dc=x f=-0.25 1000000000\n"
        );
    }

    #[test]
    fn floats_are_compact_and_parseable() {
        let mut out = Vec::new();
        for f in [1e300, 1e-7, 0.1, 3.0, -0.0] {
            write_float(&mut out, f);
            out.push(b' ');
        }
        assert_eq!(String::from_utf8(out).unwrap(), "1e300 1e-7 0.1 3.0 -0.0 ");
        let mut out = Vec::new();
        write_int(&mut out, i64::MIN);
        assert_eq!(out, b"-9223372036854775808");
    }
}
