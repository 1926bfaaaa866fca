//! `data_format = "influx"`: InfluxDB line protocol, parsed with the escaping rules telegraf's
//! parser applies. Measurement: `,` and space escaped by `\`; tag keys, tag values and field
//! keys: `,`, `=` and space; string field values: `"` and `\`. A backslash before any other
//! character is kept as it is. Fields: floats, `i` integers, `u` unsigned integers, booleans
//! (`t`, `T`, `true`, `True`, `TRUE` and the `f` forms) and double-quoted strings (which may
//! span lines). The optional timestamp is integer nanoseconds; without one a line gets the
//! message's time of receipt. Blank lines and `#` comments are skipped.
//!
//! A payload is taken whole or not at all: one bad line makes the message unparsable (it is
//! then counted and dead-lettered unchanged), so a message is never half written.

use crate::output::{FieldValue, Metric};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {what}")]
pub(crate) struct ParseError {
    pub line: usize,
    pub what: String,
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    line: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    fn err(&self, what: impl Into<String>) -> ParseError {
        ParseError {
            line: self.line,
            what: what.into(),
        }
    }

    /// Reads up to (not including) an unescaped byte of `stops` or a newline; returns the
    /// unescaped text. `escapable` are the bytes a backslash escapes in this context.
    fn token(&mut self, stops: &[u8], escapable: &[u8], what: &str) -> Result<String, ParseError> {
        let mut out = Vec::new();
        while let Some(b) = self.peek() {
            if b == b'\n' || stops.contains(&b) {
                break;
            }
            if b == b'\\'
                && let Some(&n) = self.buf.get(self.pos + 1)
                && escapable.contains(&n)
            {
                out.push(n);
                self.pos += 2;
                continue;
            }
            out.push(b);
            self.pos += 1;
        }
        if out.is_empty() {
            return Err(self.err(format!("missing {what}")));
        }
        String::from_utf8(out).map_err(|_| self.err(format!("{what} is not UTF-8")))
    }

    fn expect(&mut self, b: u8, what: &str) -> Result<(), ParseError> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(format!("expected {what}")))
        }
    }

    fn skip_spaces(&mut self) -> usize {
        let start = self.pos;
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r')) {
            self.pos += 1;
        }
        self.pos - start
    }

    fn string_value(&mut self) -> Result<String, ParseError> {
        self.expect(b'"', "\"")?;
        let mut out = Vec::new();
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') if matches!(self.buf.get(self.pos + 1), Some(b'"' | b'\\')) => {
                    out.push(self.buf[self.pos + 1]);
                    self.pos += 2;
                }
                Some(b) => {
                    if b == b'\n' {
                        self.line += 1;
                    }
                    out.push(b);
                    self.pos += 1;
                }
            }
        }
        String::from_utf8(out).map_err(|_| self.err("string field is not UTF-8"))
    }

    fn scalar_value(&mut self) -> Result<FieldValue, ParseError> {
        let start = self.pos;
        while let Some(b) = self.peek() {
            if matches!(b, b',' | b' ' | b'\n' | b'\t' | b'\r') {
                break;
            }
            self.pos += 1;
        }
        let raw = &self.buf[start..self.pos];
        let text = std::str::from_utf8(raw).map_err(|_| self.err("field value is not UTF-8"))?;
        scalar(text).ok_or_else(|| self.err(format!("invalid field value {text:?}")))
    }
}

fn scalar(text: &str) -> Option<FieldValue> {
    match text {
        "t" | "T" | "true" | "True" | "TRUE" => return Some(FieldValue::Bool(true)),
        "f" | "F" | "false" | "False" | "FALSE" => return Some(FieldValue::Bool(false)),
        _ => {}
    }
    if let Some(i) = text.strip_suffix('i') {
        return plain_integer(i).then(|| i.parse().ok().map(FieldValue::Int))?;
    }
    if let Some(u) = text.strip_suffix('u') {
        return (plain_integer(u) && !u.starts_with('-'))
            .then(|| u.parse().ok().map(FieldValue::UInt))?;
    }
    // Only decimal notation: Rust would also read "inf", "NaN" and "infinity".
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let ok = !body.is_empty()
        && body.as_bytes()[0] != b'e'
        && body
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'));
    if !ok {
        return None;
    }
    text.parse::<f64>()
        .ok()
        .filter(|f| f.is_finite())
        .map(FieldValue::Float)
}

fn plain_integer(s: &str) -> bool {
    let digits = s.strip_prefix(['-', '+']).unwrap_or(s);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

const MEASUREMENT_ESC: &[u8] = b", ";
const KEY_ESC: &[u8] = b",= ";

/// Parses a whole payload. `now_ns` is the timestamp of lines without one.
pub(crate) fn parse(payload: &[u8], now_ns: i64) -> Result<Vec<Metric>, ParseError> {
    let mut c = Cursor {
        buf: payload,
        pos: 0,
        line: 1,
    };
    let mut out = Vec::new();
    loop {
        c.skip_spaces();
        match c.peek() {
            None => break,
            Some(b'\n') => {
                c.pos += 1;
                c.line += 1;
                continue;
            }
            Some(b'#') => {
                while c.peek().is_some_and(|b| b != b'\n') {
                    c.pos += 1;
                }
                continue;
            }
            Some(_) => {}
        }
        out.push(parse_line(&mut c, now_ns)?);
    }
    Ok(out)
}

fn parse_line(c: &mut Cursor<'_>, now_ns: i64) -> Result<Metric, ParseError> {
    let name = c.token(b", ", MEASUREMENT_ESC, "measurement")?;
    let mut m = Metric::new(name, now_ns);
    while c.peek() == Some(b',') {
        c.pos += 1;
        let key = c.token(b"=, ", KEY_ESC, "tag key")?;
        c.expect(b'=', "= after tag key")?;
        let value = c.token(b", ", KEY_ESC, "tag value")?;
        m.tags.push((key.into(), value));
    }
    if c.skip_spaces() == 0 {
        return Err(c.err("expected a space before the fields"));
    }
    loop {
        let key = c.token(b"=, ", KEY_ESC, "field key")?;
        c.expect(b'=', "= after field key")?;
        let value = if c.peek() == Some(b'"') {
            FieldValue::Str(c.string_value()?)
        } else {
            c.scalar_value()?
        };
        m.fields.push((key.into(), value));
        if c.peek() == Some(b',') {
            c.pos += 1;
        } else {
            break;
        }
    }
    c.skip_spaces();
    let start = c.pos;
    while c
        .peek()
        .is_some_and(|b| b != b'\n' && b != b' ' && b != b'\r' && b != b'\t')
    {
        c.pos += 1;
    }
    if c.pos > start {
        let text = std::str::from_utf8(&c.buf[start..c.pos]).map_err(|_| c.err("bad timestamp"))?;
        if !plain_integer(text) {
            return Err(c.err(format!("invalid timestamp {text:?}")));
        }
        m.timestamp_ns = text
            .parse()
            .map_err(|_| c.err(format!("timestamp {text:?} out of range")))?;
    }
    c.skip_spaces();
    match c.peek() {
        None => {}
        Some(b'\n') => {
            c.pos += 1;
            c.line += 1;
        }
        Some(_) => return Err(c.err("unexpected text after the timestamp")),
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Vec<Metric>, ParseError> {
        parse(s.as_bytes(), 99)
    }

    #[test]
    fn sensor_lines() {
        let m = p("weather,location=us-midwest,season=summer temperature=82,humidity=71i,ok=t 1465839830100400200\n").unwrap();
        assert_eq!(m.len(), 1);
        assert_eq!(m[0].name, "weather");
        assert_eq!(
            m[0].tags,
            [
                ("location".into(), "us-midwest".into()),
                ("season".into(), "summer".into())
            ]
        );
        assert_eq!(
            m[0].fields,
            [
                ("temperature".into(), FieldValue::Float(82.0)),
                ("humidity".into(), FieldValue::Int(71)),
                ("ok".into(), FieldValue::Bool(true))
            ]
        );
        assert_eq!(m[0].timestamp_ns, 1465839830100400200);
    }

    #[test]
    fn several_lines_comments_and_default_time() {
        let m = p("# from sensor 7\ncpu v=1u\r\n\n  mem free=2e3,s=\"a\\\"b\\\\c\" \n").unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].fields[0].1, FieldValue::UInt(1));
        assert_eq!(m[0].timestamp_ns, 99);
        assert_eq!(m[1].fields[0].1, FieldValue::Float(2000.0));
        assert_eq!(m[1].fields[1].1, FieldValue::Str("a\"b\\c".into()));
    }

    #[test]
    fn escapes_follow_telegraf() {
        let m = p("my\\ meas\\,x,t\\=k=v\\ 1\\,2 f\\ k=1,path=\"C:\\dir\\\"\" -5").unwrap();
        assert_eq!(m[0].name, "my meas,x");
        assert_eq!(m[0].tags[0], ("t=k".into(), "v 1,2".into()));
        assert_eq!(m[0].fields[0].0, "f k");
        assert_eq!(m[0].fields[1].1, FieldValue::Str("C:\\dir\"".into()));
        assert_eq!(m[0].timestamp_ns, -5);
        let m = p("a\\b x=1").unwrap();
        assert_eq!(m[0].name, "a\\b");
    }

    #[test]
    fn strings_may_span_lines() {
        let m = p("log msg=\"one\ntwo\" 1\nnext x=1 2").unwrap();
        assert_eq!(m[0].fields[0].1, FieldValue::Str("one\ntwo".into()));
        assert_eq!(m[1].timestamp_ns, 2);
    }

    #[test]
    fn garbage_is_an_error_with_its_line() {
        for bad in [
            "cpu",
            "cpu ",
            "cpu x",
            "cpu x=",
            "cpu,t x=1",
            "cpu,t= x=1",
            "cpu x=1 12a",
            "cpu x=1 1 2",
            "cpu x=inf",
            "cpu x=NaN",
            "cpu x=1.5i",
            "cpu x=-1u",
            "cpu x=\"open",
            "cpu x=99999999999999999999i",
            ",t=1 x=1",
            "cpu x=1,",
            "cpu x=tru",
        ] {
            assert!(p(bad).is_err(), "accepted {bad:?}");
        }
        assert_eq!(p("a x=1\nb y").unwrap_err().line, 2);
        assert!(parse(&[b'c', 0xff, b' ', b'x', b'=', b'1'], 0).is_err());
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        let mut seed = 0x9e3779b97f4a7c15u64;
        let alphabet = b"ab ,=\\\"\n#0123456789.-eiuTtf\r";
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 24) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| alphabet[((seed >> (i % 8 * 8)) as usize + i) % alphabet.len()])
                .collect();
            let _ = parse(&bytes, 0);
        }
    }
}
