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
//! Speed (`cargo bench --bench encoder`: a line of 4 tags and 8 fields, 5 of them floats): a
//! line is written for every metric of every gather, so the common case is kept short. Each
//! step below was chosen with `perf` on that benchmark (it took a line from about 300 to about
//! 200 ns):
//!
//! * One `Cursor` over the buffer's spare capacity: room is made once per tag or field, then
//!   bytes are stored without a capacity check and a length update each (what `Vec::push` and
//!   `extend_from_slice` do), short pieces without a `memcpy` call; the `Vec`'s length is set
//!   once per line.
//! * Names, keys and tag values are copied eight bytes at a time while the same words are
//!   tested for bytes to escape (exactly, every byte of the word at once); only text with such
//!   a byte (rare) takes the byte-at-a-time cold path.
//! * Integers and floats become digits without a loop (`digits16`: no chain of divisions, and
//!   a zero half skipped). A float whose shortest form is a short decimal (nearly every metric
//!   value: `0.000412`, `99.5`) is found and written exactly in integer arithmetic
//!   (`Cursor::short_decimal`); other floats go through `zmij` (already built for
//!   `serde_json`). No number is copied out of a formatter's buffer, which stalls on stores
//!   not yet complete.
//! * Duplicate keys are looked for only when a cheap fingerprint of the key was seen before,
//!   and on the metric's own text when the key was written verbatim (not read back).

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

/// How [`Cursor::escape`] wrote a piece of text.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Escaped {
    /// Byte for byte as given (nearly always).
    Verbatim,
    /// Escaped; `altered` when beyond plain escaping ([`EncodeReport::sanitised`]).
    Changed { altered: bool },
}

impl Escaped {
    fn altered(self) -> bool {
        matches!(self, Escaped::Changed { altered: true })
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Part {
    Measurement,
    /// Tag keys, tag values and field keys share one escaping table.
    Key,
}

/// Room for an integer with its `i` (`-9223372036854775808i` is 21 bytes, and [`Cursor::int`]'s
/// stores end within 20), a boolean, or the timestamp with its space and newline.
const NUMBER: usize = 24;

/// Appends one line (with its `\n`) for `metric` to `out`, or leaves `out` unchanged and says why.
pub fn encode_line(
    out: &mut Vec<u8>,
    metric: &Metric,
    deco: &Decoration,
) -> Result<EncodeReport, Rejected> {
    let start = out.len();
    let mut cur = Cursor::new(out);
    let result = match encode_inner(&mut cur, metric, deco) {
        Ok(_) if cur.len() - start > MAX_LINE_BYTES => Err(Rejected::TooLong),
        result => result,
    };
    let end = if result.is_ok() { cur.len() } else { start };
    cur.finish(end);
    result
}

fn encode_inner(
    cur: &mut Cursor<'_>,
    metric: &Metric,
    deco: &Decoration,
) -> Result<EncodeReport, Rejected> {
    let mut report = EncodeReport::default();
    let base = deco.name_override.as_deref().unwrap_or(&metric.name);
    if base.is_empty() && deco.name_prefix.is_empty() && deco.name_suffix.is_empty() {
        return Err(Rejected::EmptyName);
    }
    let name_start = cur.len();
    for piece in [deco.name_prefix.as_str(), base, deco.name_suffix.as_str()] {
        cur.reserve(piece.len());
        // SAFETY: room for the piece was made just above.
        report.sanitised |= unsafe { cur.escape(piece, Part::Measurement, 0) }.altered();
    }
    match cur.written(name_start, cur.len()).first() {
        None => return Err(Rejected::EmptyName),
        Some(b'#') => return Err(Rejected::CommentName),
        Some(_) => {}
    }

    // Tags and fields are judged on the key as written: two different keys can read the same
    // once sanitised (`a\` and `a`; two control characters that both become U+FFFD), and
    // InfluxDB refuses a point with a repeated field key or a `time` key.
    let mut tag_keys = Written::default();
    for (k, v) in &metric.tags {
        if !write_tag(cur, k, v, &mut tag_keys, &mut report) {
            report.tags_dropped += 1;
        }
    }
    for (i, (k, v)) in deco.tags.iter().enumerate() {
        if metric.has_tag(k) || deco.tags[..i].iter().any(|(pk, _)| pk == k) {
            continue;
        }
        if !write_tag(cur, k, v, &mut tag_keys, &mut report) {
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
        let value_len = match v {
            FieldValue::Str(s) => s.len() + 2,
            FieldValue::Float(_) => FLOAT_ROOM,
            _ => NUMBER,
        };
        let field_start = cur.len();
        cur.reserve(k.len() + value_len + 2);
        // SAFETY: room was made just above for the separator, the key, and (left by `escape`
        // whatever it writes) the `=` and the value.
        let how = unsafe {
            cur.byte(if written == 0 { b' ' } else { b',' });
            cur.escape(k, Part::Key, value_len + 1)
        };
        report.sanitised |= how.altered();
        let key = cur.as_written(k, how, field_start + 1, cur.len());
        if !field_keys.add(cur, key, field_start + 1, cur.len()) {
            cur.truncate(field_start);
            report.fields_dropped += 1;
            continue;
        }
        // SAFETY: `escape` left room for the `=` and `value_len` bytes: FLOAT_ROOM for floats,
        // NUMBER for integers (with their `i`) and booleans, the text and its quotes for strings.
        unsafe {
            cur.byte(b'=');
            match v {
                FieldValue::Float(f) => cur.float(*f),
                FieldValue::Int(n) => {
                    cur.int(*n);
                    cur.byte(b'i');
                }
                FieldValue::UInt(n) => {
                    cur.int(i64::try_from(*n).unwrap_or(i64::MAX));
                    cur.byte(b'i');
                }
                FieldValue::Bool(b) => cur.put(if *b { b"true" } else { b"false" }),
                FieldValue::Str(s) => report.sanitised |= cur.string(s),
            }
        }
        written += 1;
    }
    if written == 0 {
        return Err(Rejected::NoFields);
    }

    let precision = deco.precision_ns.max(1);
    let ts = metric.timestamp_ns - metric.timestamp_ns.rem_euclid(precision);
    cur.reserve(NUMBER + 2);
    // SAFETY: room was made just above for the space, the integer and the newline.
    unsafe {
        cur.byte(b' ');
        cur.int(ts);
        cur.byte(b'\n');
    }
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
    /// The key just written is `key`, `cur`'s bytes `start..end` (given apart: when the key was
    /// written verbatim, reading the text it was copied from avoids reading back bytes just
    /// stored, which stalls until the stores complete). Records it and returns true when it
    /// may stay: not empty, not `time` (InfluxDB 1.x refuses a point with that tag or field
    /// key), not a repeat of an earlier key.
    #[inline(always)]
    fn add(&mut self, cur: &Cursor<'_>, key: &[u8], start: usize, end: usize) -> bool {
        debug_assert_eq!(key, cur.written(start, end));
        if key.is_empty() || key.first_chunk() == Some(b"time") && key.len() == 4 {
            return false;
        }
        let bit = fingerprint(key);
        if self.seen & bit != 0 {
            let seen = self.inline[..self.len.min(8)]
                .iter()
                .chain(&self.spill)
                .any(|&(s, e)| cur.written(s, e) == key);
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
    cur: &mut Cursor<'_>,
    k: &str,
    v: &str,
    keys: &mut Written,
    report: &mut EncodeReport,
) -> bool {
    let start = cur.len();
    cur.reserve(k.len() + v.len() + 2);
    // SAFETY: room was made just above for the comma, the key, and (left by `escape` whatever
    // it writes) the `=` and the value.
    let key_how = unsafe {
        cur.byte(b',');
        cur.escape(k, Part::Key, v.len() + 1)
    };
    let key_end = cur.len();
    // SAFETY: `escape` left room for the `=` and the value.
    let value_how = unsafe {
        cur.byte(b'=');
        cur.escape(v, Part::Key, 0)
    };
    report.sanitised |= key_how.altered() | value_how.altered();
    if cur.len() == key_end + 1 {
        cur.truncate(start);
        return false;
    }
    // Judge the key only once the value is known to be writable, so a dropped tag does not
    // shadow a later one with the same key.
    let key = cur.as_written(k, key_how, start + 1, key_end);
    let ok = keys.add(cur, key, start + 1, key_end);
    if !ok {
        cur.truncate(start);
    }
    ok
}

/// Writes one line into the spare capacity of the output buffer. [`Cursor::reserve`] makes
/// room once for a whole tag or field (the text as it is, and [`NUMBER`] or [`FLOAT_ROOM`]
/// bytes for a number); the writes after it store bytes without checking the capacity and updating the
/// `Vec`'s length for each byte or piece, which `Vec::push` and `extend_from_slice` do, and
/// without calling `memcpy` for short pieces. Text that needs escaping is written by the cold
/// paths, which make room as they go (so a huge value never reserves more than it writes) and
/// make room again, before returning, for what their caller reserved after them.
///
/// The bytes below `len` are always initialised and `out`'s length never exceeds `len`, so
/// `out` stays valid whenever the cursor is dropped; [`Cursor::finish`] sets its length once.
struct Cursor<'a> {
    out: &'a mut Vec<u8>,
    /// `out`'s buffer, read again whenever [`Cursor::grow`] moves it.
    ptr: *mut u8,
    /// Bytes of the buffer that are written: `out`'s earlier lines and this line so far.
    len: usize,
    /// `out`'s capacity.
    cap: usize,
}

impl<'a> Cursor<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        Cursor {
            ptr: out.as_mut_ptr(),
            len: out.len(),
            cap: out.capacity(),
            out,
        }
    }

    fn len(&self) -> usize {
        self.len
    }

    fn room(&self) -> usize {
        self.cap - self.len
    }

    /// Makes room for `n` more bytes.
    #[inline(always)]
    fn reserve(&mut self, n: usize) {
        if self.room() < n {
            self.grow(n);
        }
    }

    #[cold]
    #[inline(never)]
    fn grow(&mut self, n: usize) {
        // SAFETY: `len` is at most the capacity and every byte below it is initialised.
        unsafe { self.out.set_len(self.len) };
        self.out.reserve(n);
        self.ptr = self.out.as_mut_ptr();
        self.cap = self.out.capacity();
    }

    /// The bytes written at `start..end` (clamped to what is written).
    fn written(&self, start: usize, end: usize) -> &[u8] {
        debug_assert!(start <= end && end <= self.len);
        let end = end.min(self.len);
        let start = start.min(end);
        // SAFETY: `start..end` lies below `len`: initialised bytes inside the buffer. Writes,
        // which could move the buffer, need `&mut self`, so none happens while the slice lives.
        unsafe { std::slice::from_raw_parts(self.ptr.add(start), end - start) }
    }

    /// Forgets the bytes written from `len` on.
    fn truncate(&mut self, len: usize) {
        debug_assert!(len <= self.len);
        self.len = self.len.min(len);
    }

    /// Gives `out` its first `end` bytes: the lines it held and this line, or none of this line.
    fn finish(self, end: usize) {
        debug_assert!(end <= self.len);
        // SAFETY: at most `len`: within the capacity, every byte initialised.
        unsafe { self.out.set_len(end.min(self.len)) };
    }

    /// # Safety
    /// Room for one byte (see [`Cursor::reserve`]).
    #[inline(always)]
    unsafe fn byte(&mut self, b: u8) {
        debug_assert!(self.room() >= 1);
        // SAFETY: the caller made room, so `len < cap`: inside the buffer.
        unsafe { self.ptr.add(self.len).write(b) };
        self.len += 1;
    }

    /// Copies `s`. Pieces of up to 32 bytes (names, keys, numbers: most of a line) are copied
    /// as two overlapping loads and stores of the widest word that fits, not by a call to
    /// `memcpy`, which was a fifth of the encoder's time for these short copies.
    ///
    /// # Safety
    /// Room for `s.len()` bytes.
    #[inline(always)]
    unsafe fn put(&mut self, s: &[u8]) {
        let n = s.len();
        debug_assert!(self.room() >= n);
        let src = s.as_ptr();
        // SAFETY: the caller made room for `n` bytes at `len`. Every copy below reads inside
        // `s` and writes inside the `n` bytes from `dst`: each pair starts at 0 and ends at `n`
        // (it overlaps itself when `n` is not twice the word), and `n / 2 < n` for 1..=3.
        unsafe {
            let dst = self.ptr.add(self.len);
            match n {
                0 => {}
                1..=3 => {
                    dst.write(*src);
                    dst.add(n / 2).write(*src.add(n / 2));
                    dst.add(n - 1).write(*src.add(n - 1));
                }
                4..=7 => {
                    copy_word::<u32>(src, dst);
                    copy_word::<u32>(src.add(n - 4), dst.add(n - 4));
                }
                8..=16 => {
                    copy_word::<u64>(src, dst);
                    copy_word::<u64>(src.add(n - 8), dst.add(n - 8));
                }
                17..=32 => {
                    copy_word::<u128>(src, dst);
                    copy_word::<u128>(src.add(n - 16), dst.add(n - 16));
                }
                _ => std::ptr::copy_nonoverlapping(src, dst, n),
            }
        }
        self.len += n;
    }

    /// [`Cursor::put`] and [`any_word`] in one pass: copies `s` and returns true when some byte
    /// of it is in the class `special` marks (the caller then drops the copy). Each word is
    /// loaded once, for both.
    ///
    /// # Safety
    /// Room for `s.len()` bytes.
    #[inline(always)]
    unsafe fn put_scan(&mut self, s: &[u8], special: impl Fn(u64) -> u64) -> bool {
        let n = s.len();
        debug_assert!(self.room() >= n);
        let src = s.as_ptr();
        let mut hit = 0;
        // SAFETY: the caller made room for `n` bytes at `len`. Every load below reads inside `s`
        // and every store writes inside the `n` bytes from `dst`: words start at 0 and end at
        // most at `n` (the last one at `n`, overlapping the one before), and `n / 2 < n` for
        // 1..=3.
        unsafe {
            let dst = self.ptr.add(self.len);
            match n {
                0 => {}
                1..=3 => {
                    let (a, b, c) = (*src, *src.add(n / 2), *src.add(n - 1));
                    dst.write(a);
                    dst.add(n / 2).write(b);
                    dst.add(n - 1).write(c);
                    hit = special(u64::from(a) | (u64::from(b) << 8) | (lanes(c) << 16));
                }
                4..=7 => {
                    let first = src.cast::<u32>().read_unaligned();
                    let last = src.add(n - 4).cast::<u32>().read_unaligned();
                    dst.cast::<u32>().write_unaligned(first);
                    dst.add(n - 4).cast::<u32>().write_unaligned(last);
                    hit = special(u64::from(first) | (u64::from(last) << 32));
                }
                _ => {
                    let mut at = 0;
                    while at + 8 < n {
                        let w = src.add(at).cast::<u64>().read_unaligned();
                        dst.add(at).cast::<u64>().write_unaligned(w);
                        hit |= special(w);
                        at += 8;
                    }
                    let w = src.add(n - 8).cast::<u64>().read_unaligned();
                    dst.add(n - 8).cast::<u64>().write_unaligned(w);
                    hit |= special(w);
                }
            }
        }
        self.len += n;
        hit != 0
    }

    /// [`Cursor::put`] with room made first.
    fn extend(&mut self, s: &[u8]) {
        self.reserve(s.len());
        // SAFETY: room was made just above.
        unsafe { self.put(s) };
    }

    /// Escapes `s` into the line.
    ///
    /// # Safety
    /// Room for `s.len() + after` bytes; on return there is room for `after` more.
    #[inline(always)]
    unsafe fn escape(&mut self, s: &str, part: Part, after: usize) -> Escaped {
        // Nearly every name and tag is plain: copied as it is scanned, no call.
        let start = self.len;
        // SAFETY: the caller made room for `s.len()` bytes, and `after` more are left.
        if !unsafe { self.put_scan(s.as_bytes(), key_special) } {
            return Escaped::Verbatim;
        }
        self.len = start;
        Escaped::Changed {
            altered: self.escape_slow(s, part, after),
        }
    }

    /// The text escaped from `s` into the bytes `start..end`, which `how` says may be `s`
    /// itself.
    fn as_written<'s>(&'s self, s: &'s str, how: Escaped, start: usize, end: usize) -> &'s [u8] {
        match how {
            Escaped::Verbatim => s.as_bytes(),
            Escaped::Changed { .. } => self.written(start, end),
        }
    }

    /// [`Cursor::escape`] for text that has something to escape or sanitise; returns true when
    /// the text had to be altered beyond plain escaping.
    #[cold]
    #[inline(never)]
    fn escape_slow(&mut self, s: &str, part: Part, after: usize) -> bool {
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
                // A backslash right before an escaped delimiter would make the scanners read
                // the delimiter differently (telegraf pairs `\\` in keys, InfluxDB looks at the
                // previous byte): it cannot be carried.
                altered |= pending > 0;
                self.extend(&[b'\\', b]);
            } else {
                self.reserve(pending);
                for _ in 0..pending {
                    // SAFETY: room for `pending` bytes was made just above.
                    unsafe { self.byte(b'\\') };
                }
                match b {
                    b'\n' => self.extend(b"\\n"),
                    b'\r' => self.extend(b"\\r"),
                    b'\t' => self.extend(b"\\t"),
                    0x0c => self.extend(b"\\f"),
                    _ if b < 0x20 || b == 0x7f => self.extend("\u{FFFD}".as_bytes()),
                    _ => self.extend(&[b]),
                }
                altered |= b < 0x20 || b == 0x7f;
            }
            pending = 0;
        }
        // A trailing backslash would escape the separator after the value (telegraf's
        // serializer trims these too).
        altered |= pending > 0;
        self.reserve(after);
        altered
    }

    /// String field: `"` and `\` are escaped (both parsers unescape them exactly); control
    /// characters are made visible as in tags so no raw newline ever reaches the stream.
    ///
    /// # Safety
    /// Room for `s.len() + 2` bytes.
    #[inline(always)]
    unsafe fn string(&mut self, s: &str) -> bool {
        if !any_word(s.as_bytes(), string_special) {
            // SAFETY: the caller made room for the text and its two quotes.
            unsafe {
                self.byte(b'"');
                self.put(s.as_bytes());
                self.byte(b'"');
            }
            return false;
        }
        self.string_slow(s)
    }

    /// [`Cursor::string`] for text that has something to escape or sanitise.
    #[cold]
    #[inline(never)]
    fn string_slow(&mut self, s: &str) -> bool {
        let mut altered = false;
        self.extend(b"\"");
        for &b in s.as_bytes() {
            match b {
                b'"' | b'\\' => self.extend(&[b'\\', b]),
                b'\n' => self.extend(b"\\\\n"),
                b'\r' => self.extend(b"\\\\r"),
                b'\t' => self.extend(b"\\\\t"),
                0x0c => self.extend(b"\\\\f"),
                _ if b < 0x20 || b == 0x7f => self.extend("\u{FFFD}".as_bytes()),
                _ => {
                    self.extend(&[b]);
                    continue;
                }
            }
            altered |= b != b'"' && b != b'\\';
        }
        self.extend(b"\"");
        altered
    }

    /// Writes `n` in decimal: up to 16 digits from one [`digits16`], which has no dependent
    /// chain of divisions (`itoa` divides by 100 per pair of digits, one after another; the
    /// 19-digit timestamp of every line was its slowest case).
    ///
    /// # Safety
    /// Room for 20 bytes (`-9223372036854775808`; at most [`NUMBER`]).
    #[inline(always)]
    unsafe fn int(&mut self, n: i64) {
        const E16: u64 = 10_000_000_000_000_000;
        let u = n.unsigned_abs();
        // SAFETY: each store ends within 20 bytes of the start: the sign, then 16 digit bytes, or
        // 8 (of which at most 3 kept) and 16. What is kept of each store is overwritten by
        // nothing, and what lies past the end is never counted in `len`.
        unsafe {
            let mut at = self.ptr.add(self.len);
            at.write(b'-');
            at = at.add(usize::from(n < 0));
            if u >= E16 {
                // At most 922: fits the low lanes of a [`digits8`] word.
                let high = digits8((u / E16) as u32);
                let lead = (high.trailing_zeros() / 8) as usize;
                at.cast::<u64>()
                    .write_unaligned(((high >> (8 * lead)) | ZEROS as u64).to_le());
                at = at.add(8 - lead);
                at.cast::<u128>()
                    .write_unaligned((digits16(u % E16) | ZEROS).to_le());
                at = at.add(16);
            } else if u < 100_000_000 {
                // Most integers (counters, codes, sizes): one [`digits8`], a 64-bit shift.
                let digits = digits8(u as u32);
                // Zero is one digit.
                let lead = (digits.trailing_zeros() / 8).min(7) as usize;
                at.cast::<u64>()
                    .write_unaligned(((digits >> (8 * lead)) | ZEROS as u64).to_le());
                at = at.add(8 - lead);
            } else {
                let digits = digits16(u);
                // Zero is one digit.
                let lead = (digits.trailing_zeros() / 8).min(15) as usize;
                at.cast::<u128>()
                    .write_unaligned(((digits >> (8 * lead)) | ZEROS).to_le());
                at = at.add(16 - lead);
            }
            self.len = at.offset_from_unsigned(self.ptr);
        }
    }

    /// Shortest representation that round-trips, with exponent notation for very large or small
    /// magnitudes (1e300 is 5 bytes, not 301); callers pass finite values only. The bytes are
    /// `ryu`'s, which we wrote before (the `same_floats_as_ryu` and `short_decimals_as_ryu`
    /// tests compare).
    ///
    /// Most metric values are short decimals (`0.000412`, `99.5`, `3.0`), which
    /// [`Cursor::short_decimal`] writes at a third of the cost; the rest go through `zmij`.
    /// `zmij` writes the same digits and picks fixed or exponent notation at the same magnitudes
    /// as `ryu`, but it writes a positive exponent with a sign (`1e+300`): both parsers accept
    /// either, and the `+` is dropped.
    ///
    /// # Safety
    /// Room for [`FLOAT_ROOM`] bytes.
    #[inline(always)]
    unsafe fn float(&mut self, f: f64) {
        /// Both write a positive exponent from 1e16 on: below this (with a margin), no `+` to
        /// find, and looking for one costs as much as the formatting.
        const NO_EXPONENT_BELOW: f64 = 1e15;
        // SAFETY: the caller made room for FLOAT_ROOM bytes.
        if unsafe { self.short_decimal(f) } {
            return;
        }
        let mut buf = zmij::Buffer::new();
        let text = buf.format_finite(f).as_bytes();
        let plus = if f.abs() < NO_EXPONENT_BELOW {
            None
        } else {
            text.iter().position(|&b| b == b'+')
        };
        // SAFETY: zmij writes at most 24 bytes (`-1.2345678901234567e-308`), and without the
        // `+` fewer; the caller made room for more.
        unsafe {
            match plus {
                None => self.put(text),
                Some(plus) => {
                    self.put(&text[..plus]);
                    self.put(&text[plus + 1..]);
                }
            }
        }
    }

    /// Writes `f` when its shortest round-trip form has at most 15 significant digits and it is
    /// in `[1e-5, 1e15)` (where `ryu` writes fixed notation: `0.00001`, `123.25`, `5.0`);
    /// returns false, having written nothing, for every other value.
    ///
    /// Why it is exact: `f` is `M * 2^e` and `|f| * 10^k = M * 5^k * 2^(e + k)`, computed exactly
    /// in integers, with `k` chosen from the binary exponent so that the product is below 2^50.
    /// Then the rounding interval of `f` (the reals that read back as `f`) scaled by `10^k` is at
    /// most 1/4 wide: it holds at most one integer `m`, the product rounded, and the test below
    /// is whether `m` lies in it (its ends included when `M` is even, as a parser rounds ties to
    /// even). Any shorter decimal that reads back as `f` is a multiple of `10^-k` in the same
    /// interval, so it is `m` without its trailing zeros, which is what is written: the
    /// shortest form, as `ryu`'s.
    ///
    /// # Safety
    /// Room for [`FLOAT_ROOM`] bytes.
    #[inline(always)]
    unsafe fn short_decimal(&mut self, f: f64) -> bool {
        /// `5^k` for every `k` used below.
        const POW5: [u64; 20] = {
            let mut p = [1u64; 20];
            let mut i = 1;
            while i < 20 {
                p[i] = p[i - 1] * 5;
                i += 1;
            }
            p
        };
        const FRACTION: u64 = (1 << 52) - 1;
        // Positive doubles order as their bits.
        let bits = f.to_bits() & !(1 << 63);
        if !(1e-5f64.to_bits()..1e15f64.to_bits()).contains(&bits) {
            return false;
        }
        // |f| = mantissa * 2^e, 2^(e + 52) <= |f| < 2^(e + 53), e in -69..=-3; k =
        // floor((-3 - e) * log10(2)) (78913 / 2^18 is just below log10(2)), in 0..=19, so
        // 10^k <= 2^(-3 - e) and |f| * 10^k < 2^50.
        let mantissa = (bits & FRACTION) | (FRACTION + 1);
        let e = (bits >> 52) as i64 - 1075;
        let k = (((-3 - e) * 78913) >> 18) as usize;
        let Some(&five) = POW5.get(k) else {
            return false;
        };
        // |f| * 10^k = product / 2^shift exactly; product < 2^53 * 5^19 < 2^98, and shift is in
        // 3..=50 (the product is at least 2^52, its value below 2^50 and above 2^45).
        let product = u128::from(mantissa) * u128::from(five);
        let shift = (-(e + k as i64)) as u32;
        let m = ((product + (1 << (shift - 1))) >> shift) as u64;
        // How far m is from |f| * 10^k, times 2^shift and 4: the interval reaches 5^k / 2 (times
        // 4: 2 * 5^k) above the product and as far below, or half that when the mantissa is a
        // power of two (the double below is closer).
        let off = ((u128::from(m) << shift) as i128 - product as i128) * 4;
        let above = 2 * i128::from(five);
        let below = if mantissa == FRACTION + 1 {
            above / 2
        } else {
            above
        };
        let inside = if mantissa.is_multiple_of(2) {
            -below <= off && off <= above
        } else {
            -below < off && off < above
        };
        if !inside {
            return false;
        }
        let digits = digits16(m);
        // Digits are in writing order from the low byte: zero digits at the start are the low
        // zero bytes, at the end the high ones. `m` >= 1, so neither count reaches 16.
        let lead = (digits.trailing_zeros() / 8).min(15) as usize;
        let end = 16 - (digits.leading_zeros() / 8).min(15) as usize;
        // The decimal point falls after `point` of the 16 digits (before the first when it is
        // negative: 0.000ddd).
        let point = 16 - k as isize;
        // SAFETY: every store ends within FLOAT_ROOM = 34 bytes of the start: the sign (1), then
        // 16 integer digits at most, the point and a 16-byte store of the fraction; or `0.000000`
        // and a 16-byte store 2 + 3 bytes in. Bytes past the returned length are never counted.
        unsafe {
            let mut at = self.ptr.add(self.len);
            at.write(b'-');
            at = at.add(usize::from(f.is_sign_negative()));
            if point > lead as isize {
                let point = point as usize;
                at.cast::<u128>()
                    .write_unaligned(((digits >> (8 * lead)) | ZEROS).to_le());
                at = at.add(point - lead);
                at.write(b'.');
                at = at.add(1);
                // All digits after the point may be zeros (or none be left): `5.0`.
                let fraction = digits.checked_shr(8 * point as u32).unwrap_or(0) | ZEROS;
                at.cast::<u128>().write_unaligned(fraction.to_le());
                at = at.add(end.saturating_sub(point).max(1));
            } else {
                // 0.ddd, 0.0ddd, ..: `point` is -3 at the least (k <= 19).
                at.cast::<u64>()
                    .write_unaligned(u64::from_le_bytes(*b"0.000000").to_le());
                let from = point.max(0) as usize;
                at = at.add(2 + (-point).max(0) as usize);
                at.cast::<u128>()
                    .write_unaligned(((digits >> (8 * from)) | ZEROS).to_le());
                at = at.add(end - from);
            }
            self.len = at.offset_from_unsigned(self.ptr);
        }
        true
    }
}

/// Room a float may need: [`Cursor::short_decimal`] stores whole 16-byte words (the line's
/// length only counts what is kept: 24 bytes at most).
const FLOAT_ROOM: usize = 34;

/// Byte `'0'` in every lane of a [`digits16`] word: ORed in, it turns digits into ASCII.
const ZEROS: u128 = u128::from_ne_bytes([b'0'; 16]);

/// The 16 decimal digits of `n` (below 10^16, zero-padded) as values 0..=9, one per byte in
/// writing order: the first digit in the lowest byte.
///
/// A half that is zero is not converted: integers below 10^8 (most counters, codes and sizes)
/// have no high half, and most short decimals, scaled to 15 or 16 digits by
/// [`Cursor::short_decimal`], no low half. The multiplications are what the encoder waits for.
#[inline(always)]
fn digits16(n: u64) -> u128 {
    debug_assert!(n < 10_000_000_000_000_000);
    let (high, low) = ((n / 100_000_000) as u32, (n % 100_000_000) as u32);
    let high = if high == 0 { 0 } else { digits8(high) };
    let low = if low == 0 { 0 } else { digits8(low) };
    u128::from(high) | (u128::from(low) << 64)
}

/// [`digits16`] for `n` below 10^8: 8 digits in a `u64`, with no loop. The number is split in
/// halves, quarters and digits, each step working on all lanes of the word at once; the
/// multiply-and-shift divisions are exact for the lane values they see, and no lane's product
/// reaches the next lane (the `digits` unit test checks every 4-digit lane value).
#[inline(always)]
fn digits8(n: u32) -> u64 {
    debug_assert!(n < 100_000_000);
    let n = u64::from(n);
    // Two 4-digit halves in 32-bit lanes, the first half in the low lane.
    let x = (n / 10_000) | ((n % 10_000) << 32);
    // v / 100 = v * 5243 >> 19 for v < 43699; 9999 * 5243 < 2^32.
    let hundreds = ((x * 5243) >> 19) & 0x0000_007f_0000_007f;
    let y = hundreds | ((x - hundreds * 100) << 16);
    // v / 10 = v * 103 >> 10 for v < 179; 99 * 103 < 2^16.
    let tens = ((y * 103) >> 10) & 0x000f_000f_000f_000f;
    tens | ((y - tens * 10) << 8)
}

/// Copies one unaligned `T`-sized word from `src` to `dst`.
///
/// # Safety
/// `src` readable and `dst` writable for `size_of::<T>()` bytes, `T` a plain integer.
#[inline(always)]
unsafe fn copy_word<T: Copy>(src: *const u8, dst: *mut u8) {
    // SAFETY: the caller's bounds; unaligned reads and writes of a plain integer.
    unsafe {
        dst.cast::<T>()
            .write_unaligned(src.cast::<T>().read_unaligned())
    }
}

/// The unit tests' view of the number writers: one value into a `Vec`.
#[cfg(test)]
fn write_number(out: &mut Vec<u8>, write: impl FnOnce(&mut Cursor<'_>)) {
    let mut cur = Cursor::new(out);
    cur.reserve(FLOAT_ROOM);
    write(&mut cur);
    let end = cur.len();
    cur.finish(end);
}

#[cfg(test)]
fn write_int(out: &mut Vec<u8>, n: i64) {
    // SAFETY: `write_number` made room for FLOAT_ROOM bytes, more than NUMBER.
    write_number(out, |cur| unsafe { cur.int(n) });
}

#[cfg(test)]
fn write_float(out: &mut Vec<u8>, f: f64) {
    // SAFETY: `write_number` made room for FLOAT_ROOM bytes.
    write_number(out, |cur| unsafe { cur.float(f) });
}

/// Word-at-a-time byte classes: each function below returns a word whose lane `i` has its high
/// bit set when byte `i` of `w` is in the class ("lane" = one byte of a `u64`).
const fn lanes(b: u8) -> u64 {
    (b as u64) * 0x0101_0101_0101_0101
}
const HIGH: u64 = lanes(0x80);

/// Lanes whose byte is below `below` (at most 0x80) or one of `equal` (ASCII); bytes from 0x80
/// up (UTF-8 beyond ASCII) are in no class. Exact for each lane: with the high bits cleared
/// first, no sum carries into the next lane (0x7f + 0x7f < 0x100).
#[inline(always)]
fn class(w: u64, below: u8, equal: &[u8]) -> u64 {
    let low = w & !HIGH;
    // A lane's high bit stays clear exactly when its byte is below `below`...
    let mut clear = low.wrapping_add(lanes(0x80 - below));
    for &b in equal {
        // ... or equal to `b`: the XOR is zero, and zero is the only value that 0x7f does not
        // carry into the high bit.
        clear &= (low ^ lanes(b)).wrapping_add(lanes(0x7f));
    }
    !(clear | w) & HIGH
}

/// Bytes [`Cursor::escape`] must look at: controls and space (`<= 0x20`), DEL, `\`, `,` and `=`.
#[inline(always)]
fn key_special(w: u64) -> u64 {
    class(w, 0x21, b"\x7f\\,=")
}

/// Bytes [`Cursor::string`] must look at: controls, DEL, `"` and `\`.
#[inline(always)]
fn string_special(w: u64) -> u64 {
    class(w, 0x20, b"\x7f\"\\")
}

/// True when some byte of `s` is in the class `special` marks. Whole words are read, the last
/// one overlapping the one before it when the length is not a multiple of eight, and pieces
/// shorter than a word are read as one word of overlapping parts (looking at a byte twice
/// changes nothing): copying the tail into a padded word instead costs more than the rest of
/// the scan (a store-forwarding stall).
#[inline(always)]
fn any_word(s: &[u8], special: impl Fn(u64) -> u64) -> bool {
    let n = s.len();
    let word = match (s.first_chunk::<4>(), s.last_chunk::<4>()) {
        _ if n >= 8 => {
            let (words, _) = s.as_chunks::<8>();
            let last = s
                .last_chunk::<8>()
                .map_or(0, |w| special(u64::from_ne_bytes(*w)));
            let all = words
                .iter()
                .fold(last, |acc, w| acc | special(u64::from_ne_bytes(*w)));
            return all != 0;
        }
        (Some(first), Some(last)) => {
            u64::from(u32::from_ne_bytes(*first)) | (u64::from(u32::from_ne_bytes(*last)) << 32)
        }
        _ => match *s {
            [] => return false,
            // Bytes 0, n / 2 and n - 1 (some the same) fill the lanes.
            [first, .., last] | [first @ last] => {
                let middle = s[n / 2];
                u64::from(first) | (u64::from(middle) << 8) | (lanes(last) << 16)
            }
        },
    };
    special(word) != 0
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

    #[test]
    fn digits_of_every_lane_value() {
        // Each 4-digit half of `digits8` is computed in its own lanes: every value in both
        // halves, and `digits16`'s split, against the formatter.
        let text = |d: u128, n: usize| -> String {
            (0..n)
                .map(|i| char::from(b'0' + (d >> (8 * i)) as u8))
                .collect()
        };
        for v in 0..10_000u32 {
            for n in [v, v * 10_000, v * 10_000 + (9_999 - v)] {
                assert_eq!(text(u128::from(digits8(n)), 8), format!("{n:08}"));
            }
        }
        for n in [
            0,
            1,
            99_999_999,
            100_000_000,
            9_999_999_999_999_999,
            1 << 50,
        ] {
            assert_eq!(text(digits16(n), 16), format!("{n:016}"));
        }
    }

    #[test]
    fn integers_of_every_length() {
        let mut out = Vec::new();
        let mut p = 1i64;
        for _ in 0..19 {
            for n in [p - 1, p, p + 1, 2 * p - 1, -p, -(p - 1), -(p + 1)] {
                out.clear();
                write_int(&mut out, n);
                assert_eq!(out, n.to_string().as_bytes());
            }
            p = p.saturating_mul(10);
        }
        for _ in 0..100_000 {
            let n = crate::rand::u64() as i64 >> (crate::rand::u64() % 64);
            out.clear();
            write_int(&mut out, n);
            assert_eq!(out, n.to_string().as_bytes());
        }
    }

    #[test]
    fn short_decimals_as_ryu() {
        // The values `short_decimal` takes: every number of digits at every decimal position,
        // with both signs, around the ends of its range, and values just off a short decimal
        // (which must fall through to zmij).
        let mut values = vec![
            1e-5,
            1e15,
            0.1 + 0.2,
            1e-5f64.next_down(),
            1e15f64.next_down(),
        ];
        // Doubles anywhere in the range (mostly of 17 digits: refused).
        let (low, high) = (1e-5f64.to_bits(), 1e15f64.to_bits());
        values
            .extend((0..100_000).map(|_| f64::from_bits(low + crate::rand::u64() % (high - low))));
        for digits in 1..=17u32 {
            for _ in 0..300 {
                let m = crate::rand::u64() % 10u64.pow(digits);
                for k in 0..=22 {
                    let f: f64 = format!("{m}e-{k}").parse().unwrap();
                    values.extend([f, -f, f.next_up(), f.next_down()]);
                }
            }
        }
        let mut reference = ryu::Buffer::new();
        let mut out = Vec::new();
        let mut short = 0;
        for f in values {
            out.clear();
            write_float(&mut out, f);
            assert_eq!(out, reference.format_finite(f).as_bytes(), "{f:e}");
            // SAFETY: room for FLOAT_ROOM bytes is made first.
            short += usize::from(unsafe {
                let mut cur = Cursor::new(&mut out);
                cur.reserve(FLOAT_ROOM);
                cur.short_decimal(f)
            });
        }
        // The fast path is taken (most values above are short decimals in its range).
        assert!(short > 50_000, "{short}");
    }

    #[test]
    fn put_scan_copies_and_sees_every_position() {
        // As `word_scan_sees_every_position`, for the copy that scans: the same answer as the
        // scan, and the bytes copied exactly.
        for len in 0..40 {
            for pos in 0..len {
                for b in 0..=255u8 {
                    let mut s = vec![b'x'; len];
                    s[pos] = b;
                    let mut out = b"before".to_vec();
                    let mut cur = Cursor::new(&mut out);
                    cur.reserve(len);
                    // SAFETY: room for `len` bytes was made just above.
                    let hit = unsafe { cur.put_scan(&s, key_special) };
                    let end = cur.len();
                    cur.finish(end);
                    assert_eq!(hit, any_word(&s, key_special), "{b:#x} at {pos}/{len}");
                    assert_eq!((&out[..6], &out[6..]), (&b"before"[..], &s[..]));
                }
            }
        }
    }
}
