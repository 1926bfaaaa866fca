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
//! * Integers carry `i` (unsigned values are clipped to `i64::MAX`), floats use the shortest
//!   round-trip form (exponent notation for very large/small magnitudes, which Go parses).
//!
//! Speed (`cargo bench --bench encoder`): one line is a few hundred bytes written for every
//! metric of every gather, so the common case is kept short. Names, keys and tag values are
//! scanned eight bytes at a time and copied whole when nothing needs escaping (nearly always);
//! the buffer is grown once per line; duplicate keys are looked for only when a cheap
//! fingerprint of the key was seen before; numbers go through `itoa` and `zmij` (both already
//! built for `http` and `serde_json`).

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
    out.reserve(plain_size(metric, deco, base));
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
    /// One bit per [`fingerprint`] of the keys so far: a key whose bit is clear cannot be a
    /// repeat, so the byte comparisons (n²/2 of them for n keys) are only made on a hit.
    seen: u64,
}

/// A bit chosen by the key's length and its first and last bytes: different for nearly every
/// pair of keys one metric carries, and cheap to compute.
fn fingerprint(key: &[u8]) -> u64 {
    let (first, last) = match key {
        [first, .., last] => (*first, *last),
        [only] => (*only, *only),
        [] => (0, 0),
    };
    let h = key.len() ^ (usize::from(first) << 1) ^ (usize::from(last) << 3);
    1 << (h % 64)
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
        let bit = fingerprint(key);
        if self.seen & bit != 0 {
            let seen = self.inline[..self.len.min(8)]
                .iter()
                .chain(&self.spill)
                .any(|&(s, e)| &out[s..e] == key);
            if seen {
                return false;
            }
        }
        self.seen |= bit;
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
#[inline]
fn escape(out: &mut Vec<u8>, s: &str, part: Part) -> bool {
    // Nearly every name and tag is plain: one scan, one copy, no call.
    if !any_word(s.as_bytes(), key_special) {
        put(out, s.as_bytes());
        return false;
    }
    escape_slow(out, s, part)
}

/// [`escape`] for text that has something to escape or sanitise.
#[cold]
#[inline(never)]
fn escape_slow(out: &mut Vec<u8>, s: &str, part: Part) -> bool {
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
    if !any_word(s.as_bytes(), string_special) {
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return false;
    }
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
    put(out, itoa::Buffer::new().format(n).as_bytes());
}

/// Shortest representation that round-trips, with exponent notation for very large or small
/// magnitudes (1e300 is 5 bytes, not 301); callers pass finite values only.
///
/// `zmij` writes the same digits and picks fixed or exponent notation at the same magnitudes as
/// `ryu` (what we wrote before, and what the `zmij` authors test it against), but it writes a
/// positive exponent with a sign (`1e+300`). Both parsers accept either; the `+` is dropped so
/// the output stays byte for byte what it was (the `same_floats_as_ryu` test checks).
fn write_float(out: &mut Vec<u8>, f: f64) {
    /// Both write a positive exponent from 1e16 on: below this (with a margin), no `+` to find,
    /// and looking for one costs as much as the formatting.
    const NO_EXPONENT_BELOW: f64 = 1e15;
    let mut buf = zmij::Buffer::new();
    let text = buf.format_finite(f).as_bytes();
    let plus = if f.abs() < NO_EXPONENT_BELOW {
        None
    } else {
        text.iter().position(|&b| b == b'+')
    };
    match plus {
        None => put(out, text),
        Some(plus) => {
            out.extend_from_slice(&text[..plus]);
            out.extend_from_slice(&text[plus + 1..]);
        }
    }
}

/// Appends `s`, as `extend_from_slice` does, but names, keys and numbers of 4 to 16 bytes (most
/// of a line) are copied as two overlapping 4- or 8-byte words instead of by a call to `memcpy`,
/// which was a fifth of the encoder's time for these short copies.
#[inline]
fn put(out: &mut Vec<u8>, s: &[u8]) {
    let n = s.len();
    if !(4..=16).contains(&n) {
        out.extend_from_slice(s);
        return;
    }
    out.reserve(n);
    let len = out.len();
    let dst = out.spare_capacity_mut();
    if n >= 8 {
        write_word::<8>(dst, 0, &s[..8]);
        write_word::<8>(dst, n - 8, &s[n - 8..]);
    } else {
        write_word::<4>(dst, 0, &s[..4]);
        write_word::<4>(dst, n - 4, &s[n - 4..]);
    }
    // SAFETY: `reserve(n)` made room for n more bytes, and the two words just written, the
    // second ending at byte n, cover bytes len..len + n (they overlap when n < 16 or n < 8).
    unsafe { out.set_len(len + n) };
}

/// Writes the `W` bytes of `src` (exactly `W` long) at `dst[at..at + W]`.
#[inline(always)]
fn write_word<const W: usize>(dst: &mut [std::mem::MaybeUninit<u8>], at: usize, src: &[u8]) {
    for (d, &b) in dst[at..at + W].iter_mut().zip(src) {
        d.write(b);
    }
}

/// What [`encode_line`] writes for `metric` when nothing needs escaping: the one reservation
/// per line (escaping is rare; a longer line grows the buffer as usual).
fn plain_size(metric: &Metric, deco: &Decoration, base: &str) -> usize {
    /// The longest number we write: `-9223372036854775808i` and 24-byte floats, plus `,` `=`.
    const NUMBER: usize = 24;
    let name = deco.name_prefix.len() + base.len() + deco.name_suffix.len();
    let tags: usize = (metric.tags.iter().map(|(k, v)| (k.as_ref(), v)))
        .chain(deco.tags.iter().map(|(k, v)| (k.as_str(), v)))
        .map(|(k, v)| k.len() + v.len() + 2)
        .sum();
    let fields: usize = (metric.fields.iter())
        .map(|(k, v)| {
            k.len()
                + 2
                + match v {
                    FieldValue::Str(s) => s.len() + 2,
                    _ => NUMBER,
                }
        })
        .sum();
    // The timestamp with its separator and the newline.
    name + tags + fields + NUMBER
}

/// Word-at-a-time byte classes: each function below returns a word whose lane `i` has its high
/// bit set when byte `i` of `w` is in the class ("lane" = one byte of a `u64`). The tests are
/// exact for "is any lane set" (a borrow only leaves a lane that is itself set), which is all
/// the scan asks.
const fn lanes(b: u8) -> u64 {
    (b as u64) * 0x0101_0101_0101_0101
}
const HIGH: u64 = lanes(0x80);

/// Lanes whose byte is below `n` (`n` at most 0x80).
fn below(w: u64, n: u8) -> u64 {
    w.wrapping_sub(lanes(n)) & !w & HIGH
}

/// Lanes whose byte is `b`.
fn equal(w: u64, b: u8) -> u64 {
    below(w ^ lanes(b), 1)
}

/// Bytes [`escape`] must look at: controls and space (`<= 0x20`), DEL, `\`, `,` and `=`.
fn key_special(w: u64) -> u64 {
    below(w, 0x21) | equal(w, 0x7f) | equal(w, b'\\') | equal(w, b',') | equal(w, b'=')
}

/// Bytes [`write_string`] must look at: controls, DEL, `"` and `\`.
fn string_special(w: u64) -> u64 {
    below(w, 0x20) | equal(w, 0x7f) | equal(w, b'"') | equal(w, b'\\')
}

/// True when some byte of `s` is in the class `special` marks. Whole words are read, the last
/// one overlapping the one before it when the length is not a multiple of eight (looking at a
/// byte twice changes nothing): copying the tail into a padded word instead costs more than the
/// rest of the scan (a store-forwarding stall).
#[inline]
fn any_word(s: &[u8], special: impl Fn(u64) -> u64) -> bool {
    let hit = |w: u64| special(w) != 0;
    match *s {
        [] => false,
        // One byte copied into every lane.
        [a] => hit(lanes(a)),
        [a, b] => hit(lanes(a)) || hit(lanes(b)),
        [a, b, c] => hit(lanes(a)) || hit(lanes(b)) || hit(lanes(c)),
        [a, b, c, d, ..] if s.len() < 8 => {
            let last = &s[s.len() - 4..];
            let lo = u32::from_ne_bytes([a, b, c, d]);
            let hi = u32::from_ne_bytes([last[0], last[1], last[2], last[3]]);
            hit(u64::from(lo) | (u64::from(hi) << 32))
        }
        _ => {
            let (words, rest) = s.as_chunks::<8>();
            let tail = || {
                let w: [u8; 8] = s[s.len() - 8..].try_into().unwrap_or([b'a'; 8]);
                hit(u64::from_ne_bytes(w))
            };
            words.iter().any(|w| hit(u64::from_ne_bytes(*w))) || (!rest.is_empty() && tail())
        }
    }
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

    #[test]
    fn same_floats_as_ryu() {
        // Random bit patterns cover every exponent; the listed values sit on the boundaries
        // between fixed and exponent notation and on the extremes.
        let mut edges = vec![
            0.0,
            -0.0,
            f64::MIN_POSITIVE,
            f64::MAX,
            f64::MIN,
            f64::EPSILON,
            5e-324,
        ];
        for e in -30..30 {
            let p = 10f64.powi(e);
            edges.extend([
                p,
                -p,
                p * 1.5,
                p * 0.999_999_999,
                p.next_up(),
                p.next_down(),
            ]);
        }
        let random = (0..300_000).map(|_| f64::from_bits(crate::rand::u64()));
        let mut reference = ryu::Buffer::new();
        let mut out = Vec::new();
        for f in edges.into_iter().chain(random).filter(|f| f.is_finite()) {
            out.clear();
            write_float(&mut out, f);
            assert_eq!(out, reference.format_finite(f).as_bytes(), "{f:e}");
        }
    }

    #[test]
    fn integers_at_the_edges() {
        let mut out = Vec::new();
        for n in [0, 7, -7, 10, 99, 100, i64::MAX, i64::MIN + 1] {
            out.clear();
            write_int(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn word_scan_sees_every_position() {
        // Each special byte at each position of strings of every length around a word boundary,
        // against the byte-at-a-time definition.
        let key = |b: u8| matches!(b, b'\\' | b',' | b' ' | b'=') || b < 0x20 || b == 0x7f;
        let string = |b: u8| matches!(b, b'"' | b'\\') || b < 0x20 || b == 0x7f;
        for len in 0..20 {
            for pos in 0..len {
                for b in 0..=255u8 {
                    let mut s = vec![b'x'; len];
                    s[pos] = b;
                    assert_eq!(any_word(&s, key_special), key(b), "{b:#x} at {pos}/{len}");
                    assert_eq!(
                        any_word(&s, string_special),
                        string(b),
                        "{b:#x} at {pos}/{len}"
                    );
                }
            }
            assert!(!any_word(&vec![0xff; len], key_special));
        }
    }

    #[test]
    fn repeated_keys_found_past_the_fingerprint() {
        // Many keys: fingerprints collide and the spill list is used; every repeat is found.
        let mut m = Metric::new("m", 1);
        for i in 0..40 {
            m = m
                .field(format!("k{i}"), 1i64)
                .field(format!("k{}", i / 2), 2i64);
        }
        let mut out = Vec::new();
        let r = encode_line(&mut out, &m, &Decoration::default()).unwrap();
        assert_eq!(r.fields_dropped, 40);
        let line = String::from_utf8(out).unwrap();
        for i in 0..40 {
            assert_eq!(line.matches(&format!(",k{i}=")).count(), usize::from(i > 0));
        }
    }
}
