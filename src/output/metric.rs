//! The typed metric every module produces. Modules never format line protocol themselves: the
//! encoder is the only place that knows the escaping rules.

use std::borrow::Cow;
use std::time::{SystemTime, UNIX_EPOCH};

/// A field value. Unsigned integers exist because /proc counters are `u64`; they are written as
/// signed `i` integers (clipped at `i64::MAX`), since InfluxDB 1.x rejects the `u` suffix unless
/// configured for it and telegraf's own serializer does the same.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Float(f64),
    Int(i64),
    UInt(u64),
    Bool(bool),
    Str(String),
}

impl From<f64> for FieldValue {
    fn from(v: f64) -> Self {
        FieldValue::Float(v)
    }
}
impl From<i64> for FieldValue {
    fn from(v: i64) -> Self {
        FieldValue::Int(v)
    }
}
impl From<u64> for FieldValue {
    fn from(v: u64) -> Self {
        FieldValue::UInt(v)
    }
}
impl From<bool> for FieldValue {
    fn from(v: bool) -> Self {
        FieldValue::Bool(v)
    }
}
impl From<String> for FieldValue {
    fn from(v: String) -> Self {
        FieldValue::Str(v)
    }
}
impl From<&str> for FieldValue {
    fn from(v: &str) -> Self {
        FieldValue::Str(v.to_owned())
    }
}

/// Keys are `Cow<'static, str>` so the common case (a literal field name) costs no allocation.
pub type Key = Cow<'static, str>;

#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    pub name: Key,
    pub tags: Vec<(Key, String)>,
    pub fields: Vec<(Key, FieldValue)>,
    /// Nanoseconds since the Unix epoch, taken when the gather or probe started.
    pub timestamp_ns: i64,
}

impl Metric {
    pub fn new(name: impl Into<Key>, timestamp_ns: i64) -> Self {
        Metric {
            name: name.into(),
            tags: Vec::new(),
            fields: Vec::new(),
            timestamp_ns,
        }
    }

    pub fn tag(mut self, key: impl Into<Key>, value: impl Into<String>) -> Self {
        self.tags.push((key.into(), value.into()));
        self
    }

    pub fn field(mut self, key: impl Into<Key>, value: impl Into<FieldValue>) -> Self {
        self.fields.push((key.into(), value.into()));
        self
    }

    /// Adds the field only when a value is present: a phase or reading that did not happen is
    /// omitted rather than written as zero.
    pub fn field_opt<V: Into<FieldValue>>(self, key: impl Into<Key>, value: Option<V>) -> Self {
        match value {
            Some(v) => self.field(key, v),
            None => self,
        }
    }

    pub fn has_tag(&self, key: &str) -> bool {
        self.tags.iter().any(|(k, _)| k == key)
    }
}

/// Wall-clock now in nanoseconds since the epoch; before 1970 (a broken clock) reads as 0.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
