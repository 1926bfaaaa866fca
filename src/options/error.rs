//! Config errors that always name the file, line, column and key, e.g.
//! `metrics-agent.toml:14:3: inputs.ping[0].count: must be > 0`.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read config: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(Located),
}

/// One problem at one place in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub file: String,
    pub line: usize,
    pub column: usize,
    /// Dotted key path such as `inputs.ping[0].count`; empty for a syntax error.
    pub key: String,
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// A problem found while resolving one table: the span is a byte range in the source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpanError {
    pub span: Range<usize>,
    /// Key relative to the table being resolved (e.g. `count`); joined to the table's path.
    pub key: String,
    pub message: String,
}

impl SpanError {
    pub fn new(span: Range<usize>, key: impl Into<String>, message: impl Into<String>) -> Self {
        SpanError {
            span,
            key: key.into(),
            message: message.into(),
        }
    }

    /// From a serde/toml error raised while deserializing a table at `fallback` span.
    pub fn from_toml(err: toml::de::Error, fallback: Range<usize>) -> Self {
        SpanError {
            span: err.span().unwrap_or(fallback),
            key: String::new(),
            message: err.message().trim().to_owned(),
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(src.len());
    let before = src.get(..offset).unwrap_or(src);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

pub fn locate(file: &str, src: &str, path: &str, mut err: SpanError) -> ConfigError {
    let (line, column) = line_col(src, err.span.start);
    if err.key.is_empty()
        && let Some(k) = key_on_line(src, err.span.start)
    {
        err.key = k.to_owned();
    }
    let key = match (path.is_empty(), err.key.is_empty()) {
        (true, _) => err.key,
        (false, true) => path.to_owned(),
        (false, false) => format!("{path}.{}", err.key),
    };
    ConfigError::Invalid(Located {
        file: file.to_owned(),
        line,
        column,
        key,
        message: err.message,
    })
}

/// The bare key of a `key = value` line containing `offset`: serde's messages name a bad value
/// but not the key it belongs to.
fn key_on_line(src: &str, offset: usize) -> Option<&str> {
    let offset = offset.min(src.len());
    let start = src.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let line = src[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim();
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    bare.then_some(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let src = "a = 1\n  bé = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 8), (2, 3));
        assert_eq!(line_col(src, 12), (2, 6));
    }

    #[test]
    fn key_is_taken_from_a_key_value_line() {
        let src = "[agent]\n  interval = \"x\"\n[[inputs.a]]\n";
        assert_eq!(key_on_line(src, 14), Some("interval"));
        assert_eq!(key_on_line(src, 1), None);
    }
}
