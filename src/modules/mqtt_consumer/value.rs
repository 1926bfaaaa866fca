//! `data_format = "value"`: the whole payload is one value of a configured type, written as one
//! field (telegraf's `value` parser). Surrounding whitespace and NUL padding are trimmed; for
//! the numeric and boolean types a payload of several whitespace-separated words uses the last
//! one, as telegraf does.

use crate::output::{FieldValue, Metric};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataType {
    Integer,
    Float,
    String,
    Boolean,
    /// An integer, or when that fails, the float truncated toward zero.
    AutoInteger,
    /// A float, accepting integers.
    AutoFloat,
}

impl DataType {
    pub(crate) fn parse(s: &str) -> Result<DataType, String> {
        Ok(match s {
            "integer" | "int" | "long" => DataType::Integer,
            "float" => DataType::Float,
            "string" => DataType::String,
            "boolean" | "bool" => DataType::Boolean,
            "auto_integer" => DataType::AutoInteger,
            "auto_float" => DataType::AutoFloat,
            other => {
                return Err(format!(
                    "unsupported data_type {other:?} (integer, float, long, string, boolean, auto_integer, auto_float)"
                ));
            }
        })
    }
}

/// Parses one payload into a metric named `name` with the field `field`.
pub(crate) fn parse(
    payload: &[u8],
    data_type: DataType,
    field: &str,
    name: &str,
    ts: i64,
) -> Result<Metric, String> {
    let text = std::str::from_utf8(payload).map_err(|e| format!("payload is not UTF-8: {e}"))?;
    let text = text.trim_matches(|c: char| c == '\0' || c.is_whitespace());
    let word = || {
        text.split_whitespace()
            .next_back()
            .ok_or_else(|| "empty payload".to_owned())
    };
    let value = match data_type {
        DataType::String => FieldValue::Str(text.to_owned()),
        DataType::Integer => FieldValue::Int(
            word()?
                .parse()
                .map_err(|e| format!("not an integer: {e}"))?,
        ),
        DataType::Float => {
            FieldValue::Float(word()?.parse().map_err(|e| format!("not a float: {e}"))?)
        }
        DataType::AutoFloat => {
            FieldValue::Float(word()?.parse().map_err(|e| format!("not a number: {e}"))?)
        }
        DataType::AutoInteger => {
            let w = word()?;
            match w.parse::<i64>() {
                Ok(i) => FieldValue::Int(i),
                Err(_) => {
                    let f: f64 = w.parse().map_err(|e| format!("not a number: {e}"))?;
                    if !f.is_finite() || f.trunc() < i64::MIN as f64 || f.trunc() >= i64::MAX as f64
                    {
                        return Err(format!("{w} is out of the integer range"));
                    }
                    FieldValue::Int(f.trunc() as i64)
                }
            }
        }
        DataType::Boolean => FieldValue::Bool(match word()? {
            "1" | "t" | "T" | "true" | "TRUE" | "True" => true,
            "0" | "f" | "F" | "false" | "FALSE" | "False" => false,
            other => return Err(format!("{other:?} is not a boolean")),
        }),
    };
    Ok(Metric::new(name.to_owned(), ts).field(field.to_owned(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(payload: &str, t: DataType) -> Result<FieldValue, String> {
        parse(payload.as_bytes(), t, "value", "mqtt_consumer", 5).map(|m| m.fields[0].1.clone())
    }

    #[test]
    fn sensor_payloads() {
        assert_eq!(one("21.5\n", DataType::Float), Ok(FieldValue::Float(21.5)));
        assert_eq!(one(" 42 ", DataType::Integer), Ok(FieldValue::Int(42)));
        assert_eq!(one("12 13 14", DataType::Integer), Ok(FieldValue::Int(14)));
        assert_eq!(one("3.9", DataType::AutoInteger), Ok(FieldValue::Int(3)));
        assert_eq!(one("3", DataType::AutoFloat), Ok(FieldValue::Float(3.0)));
        assert_eq!(
            one("ON\0\0", DataType::String),
            Ok(FieldValue::Str("ON".into()))
        );
        assert_eq!(one("true", DataType::Boolean), Ok(FieldValue::Bool(true)));
        assert_eq!(one("0", DataType::Boolean), Ok(FieldValue::Bool(false)));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(one("", DataType::Float).is_err());
        assert!(one("abc", DataType::Integer).is_err());
        assert!(one("1e400", DataType::AutoInteger).is_err());
        assert!(one("yes", DataType::Boolean).is_err());
        assert!(parse(&[0xff, 0xfe], DataType::String, "value", "m", 0).is_err());
        let m = parse(b"7", DataType::Integer, "reading", "m", 9).unwrap();
        assert_eq!(
            (m.name.as_ref(), m.fields[0].0.as_ref(), m.timestamp_ns),
            ("m", "reading", 9)
        );
    }
}
