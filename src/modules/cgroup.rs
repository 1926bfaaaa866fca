//! `cgroup`: values from cgroup files, in the shape of telegraf's `cgroup` input, with defaults
//! aimed at systemd services on cgroup v2: measurement `cgroup`, tag `path` (the cgroup
//! directory), one line per directory. Field names follow telegraf's rule: a file holding one
//! number gives a field named after the file (`memory.current=…i`); a flat keyed file
//! (`key value` lines, e.g. `cpu.stat`, `memory.stat`) gives `<file>.<key>` fields
//! (`cpu.stat.usage_usec=…i`). Non-numeric values (`max`) are left out.
//!
//! Defaults: `paths = ["/sys/fs/cgroup/system.slice/*.service"]` (every systemd service on a
//! unified hierarchy) and `files = ["cpu.stat", "memory.current", "memory.peak",
//! "memory.swap.current", "pids.current"]`: CPU time (µs) and memory (bytes) per service. Telegraf
//! has no defaults for these (both are required there).
//!
//! cgroupfs is answered by the kernel from memory, so files are read inline.

use serde::Deserialize;

use super::GatherError;
use super::hostutil::{Globs, read_into};
use super::procfs::host;
use crate::options::Glob;
use crate::options::SpanError;
use crate::output::{Accumulator, Key, Metric, now_ns};

/// `[[inputs.cgroup]]`
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// cgroup directories, absolute; `*`, `?` and `[…]` globs per path component.
    /// Default `["/sys/fs/cgroup/system.slice/*.service"]`.
    paths: Option<toml::Spanned<Vec<String>>>,
    /// File names (globs) to read in each directory. Default: cpu.stat, memory.current,
    /// memory.peak, memory.swap.current, pids.current.
    files: Option<toml::Spanned<Vec<String>>>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub paths: Vec<String>,
    pub files: Globs,
}

/// What a cgroup v2 service reports without `files` (telegraf's cgroup sample).
const DEFAULT_FILES: [&str; 5] = [
    "cpu.stat",
    "memory.current",
    "memory.peak",
    "memory.swap.current",
    "pids.current",
];

pub(crate) fn resolve(raw: Raw) -> Result<Config, SpanError> {
    if let Some(paths) = &raw.paths {
        for p in paths.get_ref() {
            for comp in p.split('/').filter(|c| has_glob(c)) {
                Glob::new(comp, "").map_err(|e| SpanError::new(paths.span(), "paths", e.to_string()))?;
            }
        }
    }
    Ok(Config {
        paths: raw
            .paths
            .map(toml::Spanned::into_inner)
            .unwrap_or_else(|| vec!["/sys/fs/cgroup/system.slice/*.service".into()]),
        files: match raw.files {
            Some(f) => Globs::resolve(Some(f), "files")?,
            None => Globs::new(&DEFAULT_FILES.map(String::from))
                .map_err(|e| SpanError::new(0..0, "files", e.to_string()))?,
        },
    })
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '[', '{', '\\'])
}

/// Expands per-component globs of an absolute path into existing directories, sorted.
pub(crate) fn expand(pattern: &str) -> Vec<String> {
    let mut current = vec![String::from("/")];
    for comp in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for base in &current {
            let join = |name: &str| {
                if base.ends_with('/') {
                    format!("{base}{name}")
                } else {
                    format!("{base}/{name}")
                }
            };
            if has_glob(comp) {
                // Checked when the config was resolved.
                let Ok(glob) = Glob::new(comp, "") else {
                    continue;
                };
                let Ok(rd) = std::fs::read_dir(base) else {
                    continue;
                };
                for e in rd.flatten() {
                    let name = e.file_name();
                    let Some(name) = name.to_str() else { continue };
                    if glob.matches(name) && e.file_type().is_ok_and(|t| t.is_dir()) {
                        next.push(join(name));
                    }
                }
            } else {
                next.push(join(comp));
            }
        }
        current = next;
    }
    current.retain(|p| std::path::Path::new(p).is_dir());
    current.sort();
    current
}

/// Adds the fields of one cgroup file to `m`: a single number → `<file>`; `key value` lines →
/// `<file>.<key>`.
pub(crate) fn add_file_fields(mut m: Metric, file: &str, text: &str) -> Metric {
    let trimmed = text.trim();
    if !trimmed.contains('\n') && !trimmed.contains(' ') {
        if let Ok(v) = trimmed.parse::<i64>() {
            m = m.field(Key::Owned(file.to_owned()), v);
        }
        return m;
    }
    for line in trimmed.lines() {
        let mut it = line.split_ascii_whitespace();
        let (Some(k), Some(v), None) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        if let Ok(v) = v.parse::<i64>() {
            m = m.field(Key::Owned(format!("{file}.{k}")), v);
        }
    }
    m
}

pub(crate) struct Cgroup {
    config: Config,
    buf: String,
}

impl Cgroup {
    pub(crate) fn new(config: Config) -> Self {
        Cgroup {
            config,
            buf: String::with_capacity(4096),
        }
    }

    pub(crate) async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        let ts = now_ns();
        for pattern in &self.config.paths {
            // `/sys/fs/cgroup/…` is read under HOST_SYS; the tag keeps the configured form.
            for dir in expand(&host::path(pattern)) {
                let mut m = Metric::new("cgroup", ts).tag("path", host::unmap(&dir).into_owned());
                let Ok(rd) = std::fs::read_dir(&dir) else {
                    continue;
                };
                let mut names: Vec<String> = rd
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| self.config.files.matches(n))
                    .collect();
                names.sort();
                for name in names {
                    let path = format!("{dir}/{name}");
                    match read_into(&path, &mut self.buf) {
                        Ok(()) => m = add_file_fields(m, &name, &self.buf),
                        Err(e) => acc.partial_error(&path, &e),
                    }
                }
                if !m.fields.is_empty() {
                    acc.add(m);
                }
            }
        }
        Ok(())
    }
}

super::ticked_input!(Cgroup, super::Shape::Ticked);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::FieldValue;

    #[test]
    fn file_shapes() {
        let m = add_file_fields(
            Metric::new("cgroup", 1),
            "cpu.stat",
            include_str!("../../tests/fixtures/cgroup/cpu.stat"),
        );
        assert!(
            m.fields
                .iter()
                .any(|(k, v)| k == "cpu.stat.usage_usec"
                    && matches!(v, FieldValue::Int(n) if *n > 0))
        );
        let m = add_file_fields(
            Metric::new("cgroup", 1),
            "memory.stat",
            include_str!("../../tests/fixtures/cgroup/memory.stat"),
        );
        assert!(m.fields.iter().any(|(k, _)| k == "memory.stat.cache"));
        let m = add_file_fields(Metric::new("cgroup", 1), "memory.current", "4096\n");
        assert_eq!(
            m.fields,
            vec![("memory.current".into(), FieldValue::Int(4096))]
        );
        let m = add_file_fields(Metric::new("cgroup", 1), "memory.max", "max\n");
        assert!(m.fields.is_empty());
    }

    #[test]
    fn glob_expansion() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["a.service", "b.service", "c.slice"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        let pat = format!("{}/*.service", dir.path().display());
        let got = expand(&pat);
        assert_eq!(got.len(), 2);
        assert!(got[0].ends_with("/a.service"));
        assert_eq!(expand(&format!("{}/none", dir.path().display())).len(), 0);
    }

    #[tokio::test]
    async fn reads_a_real_cgroup() {
        let Some(root) = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
            .into_iter()
            .find(|p| std::path::Path::new(&format!("{p}/cpu.stat")).exists())
        else {
            return; // no cgroup v2 mounted: nothing to read
        };
        let mut c = Cgroup::new(Config {
            paths: vec![root.to_owned()],
            files: Globs::new(&["cpu.stat".into()]).unwrap(),
        });
        let mut t = crate::modules::hostutil::testing::TestAcc::new();
        c.gather(&mut t.acc).await.unwrap();
        let lines = t.lines();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains("cpu.stat.usage_usec="), "{lines:?}");
    }
}
