//! Config primitives every input's options are made of: durations and sizes written like telegraf's,
//! errors located at a file, line, column and key, and the deserialization of one spanned TOML
//! value. A leaf: imports nothing else of the crate, so an input's config depends on this and
//! not on the whole-file config (which sits above the inputs and lists them).

mod duration;
mod error;
mod glob;
mod secret;
mod size;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};

pub use duration::{ConfigDuration, DurationError, parse_duration};
pub use error::{ConfigError, Located, SpanError, line_col, locate};
pub use glob::{Glob, GlobError, GlobSet};
pub use secret::{Secret, SecretSource};
pub use size::{ConfigSize, parse_size};

/// Deserializes one spanned TOML value into `T`, keeping the span of the offending key or value.
pub fn deserialize_value<T: DeserializeOwned>(value: Spanned<DeValue<'_>>) -> Result<T, SpanError> {
    let span = value.span();
    T::deserialize(ValueDeserializer::from(value)).map_err(|e| SpanError::from_toml(e, span))
}
