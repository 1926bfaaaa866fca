//! Byte sizes written the way telegraf's `config.Size` reads them: an integer (bytes) or a
//! string of numbers with units, `"56B"`, `"32MiB"`, `"1.5KB"`, `"1MiB512KiB"`. Units are
//! case-sensitive, as telegraf's: `B`; `KB`, `MB`, `GB`, `TB`, `PB`, `EB` are powers of 1000;
//! `KiB` … `EiB` powers of 1024.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};

/// A config size in bytes. Negative sizes are refused at parse time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ConfigSize(pub u64);

impl ConfigSize {
    pub fn get(self) -> u64 {
        self.0
    }
}

fn unit_bytes(unit: &str) -> Option<f64> {
    const SI: [&str; 6] = ["KB", "MB", "GB", "TB", "PB", "EB"];
    const IEC: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    if unit == "B" {
        return Some(1.0);
    }
    let si = SI
        .iter()
        .position(|u| *u == unit)
        .map(|i| 1000f64.powi(i as i32 + 1));
    si.or_else(|| {
        IEC.iter()
            .position(|u| *u == unit)
            .map(|i| 1024f64.powi(i as i32 + 1))
    })
}

/// Parses a size string; an integer string is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    if s.is_empty() || s.starts_with('-') {
        return Err(format!("invalid size {text:?}"));
    }
    let mut rest = s;
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let value: f64 = num.parse().map_err(|_| format!("invalid size {text:?}"))?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = unit_bytes(unit).ok_or_else(|| {
            format!("unknown unit {unit:?} in size {text:?} (use B, KB, MB, GB, KiB, MiB, GiB, …)")
        })?;
        total += value * scale;
        rest = tail;
    }
    if !total.is_finite() || total > u64::MAX as f64 {
        return Err(format!("size {text:?} is too large"));
    }
    Ok(total.round() as u64)
}

impl<'de> serde::Deserialize<'de> for ConfigSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = ConfigSize;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a size in bytes (56) or a string such as \"56B\" or \"32MiB\"")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                parse_size(v).map(ConfigSize).map_err(E::custom)
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(ConfigSize)
                    .map_err(|_| E::custom(format!("negative size {v}")))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn telegrafs_forms() {
        assert_eq!(parse_size("56B"), Ok(56));
        assert_eq!(parse_size("56"), Ok(56));
        assert_eq!(parse_size("1KB"), Ok(1000));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("32MiB"), Ok(32 << 20));
        assert_eq!(parse_size("1.5KB"), Ok(1500));
        assert_eq!(parse_size("1MiB512KiB"), Ok((1 << 20) + (512 << 10)));
    }

    #[test]
    fn refuses_what_telegraf_refuses() {
        assert!(parse_size("").is_err());
        assert!(parse_size("-1B").is_err());
        assert!(parse_size("56b").is_err(), "units are case-sensitive");
        assert!(parse_size("1kib").is_err());
        assert!(parse_size("MiB").is_err());
        assert!(parse_size("1e400B").is_err());
    }
}
