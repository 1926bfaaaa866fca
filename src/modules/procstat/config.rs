//! Options: `[[inputs.procstat]]` as written (the user docs) and resolved.

use std::path::PathBuf;
use std::time::Duration;

use regex::Regex;
use serde::Deserialize;

use crate::options::{ConfigDuration, SpanError};

/// `[[inputs.procstat]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// File holding the PID to monitor.
    pid_file: Option<String>,
    /// Regex on the process name (`pgrep NAME`).
    exe: Option<toml::Spanned<String>>,
    /// Regex on the full command line (`pgrep -f PATTERN`).
    pattern: Option<toml::Spanned<String>>,
    /// Processes whose effective user is this name.
    user: Option<String>,
    /// systemd unit name; `.service` is added when there is no suffix.
    systemd_unit: Option<String>,
    /// Accepted for compatibility: the unit's whole cgroup is always reported.
    include_systemd_children: Option<bool>,
    /// cgroup path, relative to /sys/fs/cgroup or absolute.
    cgroup: Option<String>,
    /// Overrides the `process_name` tag.
    process_name: Option<String>,
    /// Prepended to every field name as `<prefix>_`.
    prefix: Option<String>,
    /// `irix` (default: 100% = one CPU) or `solaris` (divided by the CPU count).
    mode: Option<toml::Spanned<String>>,
    /// Values written as tags instead of fields: `pid`, `ppid`, `cmdline`, `status`, `user`.
    tag_with: Option<toml::Spanned<Vec<String>>>,
    /// `cpu`, `memory`, `mmap` (default all three).
    properties: Option<toml::Spanned<Vec<String>>>,
    /// `pgrep` (default) or `native`: only names the `pid_finder` tag; the lookup is always
    /// done natively by reading /proc.
    pid_finder: Option<toml::Spanned<String>>,
    /// Longest time one scan of /proc may take (an addition). Default 5s.
    timeout: Option<ConfigDuration>,
}

#[derive(Debug, Clone)]
pub(crate) enum Selector {
    PidFile(PathBuf),
    Exe(Regex),
    Pattern(Regex),
    User(String),
    SystemdUnit(String),
    Cgroup(String),
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub selector: Selector,
    /// (tag key, value) naming the selector.
    pub selector_tag: (&'static str, String),
    pub process_name: Option<String>,
    pub prefix: Option<String>,
    pub solaris: bool,
    pub tag_pid: bool,
    pub tag_ppid: bool,
    pub tag_cmdline: bool,
    pub tag_status: bool,
    pub tag_user: bool,
    pub cpu: bool,
    pub memory: bool,
    pub mmap: bool,
    pub pid_finder: String,
    pub timeout: Duration,
}

fn regex(s: toml::Spanned<String>, key: &str) -> Result<(Regex, String), SpanError> {
    let span = s.span();
    let text = s.into_inner();
    Regex::new(&text)
        .map(|r| (r, text))
        .map_err(|e| SpanError::new(span, key, format!("invalid regex: {e}")))
}

pub(crate) fn resolve(raw: Raw) -> Result<Config, SpanError> {
    let _ = raw.include_systemd_children;
    let (selector, selector_tag) = if let Some(p) = raw.pid_file {
        (Selector::PidFile(PathBuf::from(&p)), ("pidfile", p))
    } else if let Some(e) = raw.exe {
        let (r, t) = regex(e, "exe")?;
        (Selector::Exe(r), ("exe", t))
    } else if let Some(p) = raw.pattern {
        let (r, t) = regex(p, "pattern")?;
        (Selector::Pattern(r), ("pattern", t))
    } else if let Some(u) = raw.user {
        (Selector::User(u.clone()), ("user", u))
    } else if let Some(u) = raw.systemd_unit {
        (Selector::SystemdUnit(u.clone()), ("systemd_unit", u))
    } else if let Some(c) = raw.cgroup {
        (Selector::Cgroup(c.clone()), ("cgroup", c))
    } else {
        return Err(SpanError::new(
            0..0,
            "",
            "set one of pid_file, exe, pattern, user, systemd_unit or cgroup",
        ));
    };
    let solaris = match raw.mode {
        None => false,
        Some(m) => match m.get_ref().as_str() {
            "irix" => false,
            "solaris" => true,
            other => {
                return Err(SpanError::new(
                    m.span(),
                    "mode",
                    format!("unknown mode {other:?} (irix or solaris)"),
                ));
            }
        },
    };
    let mut c = Config {
        selector,
        selector_tag,
        process_name: raw.process_name,
        prefix: raw.prefix.filter(|p| !p.is_empty()),
        solaris,
        tag_pid: false,
        tag_ppid: false,
        tag_cmdline: false,
        tag_status: false,
        tag_user: false,
        cpu: true,
        memory: true,
        mmap: true,
        pid_finder: "pgrep".into(),
        timeout: raw
            .timeout
            .map(|t| t.get())
            .filter(|t| !t.is_zero())
            .unwrap_or(Duration::from_secs(5)),
    };
    if let Some(t) = raw.tag_with {
        for k in t.get_ref() {
            match k.as_str() {
                "pid" => c.tag_pid = true,
                "ppid" => c.tag_ppid = true,
                "cmdline" => c.tag_cmdline = true,
                "status" => c.tag_status = true,
                "user" => c.tag_user = true,
                other => {
                    return Err(SpanError::new(
                        t.span(),
                        "tag_with",
                        format!("unsupported {other:?} (pid, ppid, cmdline, status, user)"),
                    ));
                }
            }
        }
    }
    if let Some(p) = raw.properties {
        c.cpu = false;
        c.memory = false;
        c.mmap = false;
        for k in p.get_ref() {
            match k.as_str() {
                "cpu" => c.cpu = true,
                "memory" => c.memory = true,
                "mmap" => c.mmap = true,
                other => {
                    return Err(SpanError::new(
                        p.span(),
                        "properties",
                        format!("unsupported property {other:?} (cpu, memory, mmap)"),
                    ));
                }
            }
        }
    }
    if let Some(f) = raw.pid_finder {
        match f.get_ref().as_str() {
            "pgrep" | "native" => c.pid_finder = f.into_inner(),
            other => {
                return Err(SpanError::new(
                    f.span(),
                    "pid_finder",
                    format!("unknown pid_finder {other:?} (pgrep or native)"),
                ));
            }
        }
    }
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors() {
        assert!(resolve(Raw::default()).is_err());
        let raw: Raw = toml::from_str("pattern = \"(unclosed\"").unwrap();
        assert!(resolve(raw).is_err());
        let raw: Raw = toml::from_str("exe = \"x\"\nproperties = [\"sockets\"]").unwrap();
        assert!(resolve(raw).is_err());
        let raw: Raw = toml::from_str("exe = \"x\"\nmode = \"solaris\"").unwrap();
        assert!(resolve(raw).unwrap().solaris);
    }
}
