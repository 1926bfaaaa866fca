//! Secrets in configs (passwords, tokens): given inline, in a file or in an environment
//! variable, and never printed: their `Debug` is redacted, so a config or an error that holds
//! one can be logged.

use std::fmt;
use std::path::PathBuf;

/// A secret value; `Debug` prints `<redacted>`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a secret comes from. Files and variables are read when [`SecretSource::read`] is
/// called (each gather or connection attempt, so they can rotate); surrounding whitespace is
/// trimmed (files end with a newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Inline(Secret),
    File(PathBuf),
    Env(String),
}

impl SecretSource {
    /// From at most one of the three ways of giving it; `Err` names the keys given together.
    pub fn from_options(
        inline: Option<String>,
        file: Option<String>,
        env: Option<String>,
        keys: [&str; 3],
    ) -> Result<Option<SecretSource>, String> {
        match (inline, file, env) {
            (None, None, None) => Ok(None),
            (Some(s), None, None) => Ok(Some(SecretSource::Inline(Secret(s)))),
            (None, Some(f), None) => Ok(Some(SecretSource::File(PathBuf::from(f)))),
            (None, None, Some(e)) => Ok(Some(SecretSource::Env(e))),
            _ => Err(format!("give only one of {}", keys.join(", "))),
        }
    }

    /// The secret now; the error says which file or variable failed (never the value).
    pub fn read(&self) -> Result<Secret, String> {
        match self {
            SecretSource::Inline(s) => Ok(s.clone()),
            SecretSource::File(p) => std::fs::read_to_string(p)
                .map(|s| Secret(s.trim().to_owned()))
                .map_err(|e| format!("cannot read {}: {e}", p.display())),
            SecretSource::Env(v) => std::env::var(v)
                .map(|s| Secret(s.trim().to_owned()))
                .map_err(|_| format!("environment variable {v} is not set")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_and_sources_read_fresh() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "one\n").unwrap();
        let src = SecretSource::File(f.clone());
        assert_eq!(src.read().unwrap().expose(), "one");
        std::fs::write(&f, "two\n").unwrap();
        assert_eq!(src.read().unwrap().expose(), "two");
        assert!(!format!("{src:?}").contains("two"));
        assert!(
            SecretSource::Env("METRICS_AGENT_NO_SUCH_VAR".into())
                .read()
                .is_err()
        );
        assert!(
            SecretSource::from_options(Some("a".into()), Some("b".into()), None, ["x", "y", "z"])
                .is_err()
        );
    }
}
