//! Options: `[[inputs.procstat]]` as written (the user docs) and resolved.

use std::time::Duration;

use regex::Regex;
use serde::Deserialize;
use toml::Spanned;

use crate::modules::hostutil::Globs;
use crate::options::{ConfigDuration, SpanError};

/// `[[inputs.procstat]]`. Old style: one selector, the first set in telegraf's order
/// `supervisor_units`, `systemd_unit`, `win_service`, `cgroup`, `pid_file`, `exe`, `pattern`,
/// `user`. New style: one or more `[[inputs.procstat.filter]]` tables (not both).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Raw {
    /// File holding the PID to monitor (a PID of no running process counts in `pid_count`
    /// but writes no `procstat` line).
    pid_file: Option<String>,
    /// Regex on the process name (`pgrep NAME`); with `pid_finder = "native"` on the
    /// executable's path, as telegraf's native finder does.
    exe: Option<Spanned<String>>,
    /// Regex on the command line, arguments joined with spaces (`pgrep -f PATTERN`).
    pattern: Option<Spanned<String>>,
    /// Processes of this user: the effective user as `pgrep -u` (a name or a uid), the real
    /// user with `pid_finder = "native"`.
    user: Option<String>,
    /// systemd unit: its MainPID, from `systemctl show` (a stopped unit: `pid_count = 0`).
    /// With `include_systemd_children` every process of the unit's cgroup instead
    /// (`system.slice/<unit>`, globs allowed), tagged `cgroup`/`cgroup_full` as telegraf does.
    systemd_unit: Option<String>,
    /// See `systemd_unit`. Default false.
    include_systemd_children: Option<bool>,
    /// cgroup directory, relative to /sys/fs/cgroup or absolute; globs (`*`, `?`, `[a-z]`)
    /// select several, each tagged `cgroup_full`.
    cgroup: Option<String>,
    /// supervisord programs (`supervisorctl status NAME...`, which must find supervisord's
    /// config as it does from a shell): the child processes of each program's process.
    supervisor_units: Option<Vec<String>>,
    /// Windows only: refused unless empty.
    win_service: Option<Spanned<String>>,
    /// Overrides the `process_name` tag.
    process_name: Option<String>,
    /// Prepended to field names as `<prefix>_` (not to `pid`, as telegraf).
    prefix: Option<String>,
    /// `irix` (default: 100% = one CPU) or `solaris` (divided by the CPU count).
    mode: Option<Spanned<String>>,
    /// Values written as tags instead of fields: `cmdline`, `pid`, `ppid`, `status`, `user`;
    /// with the `sockets` property also `protocol`, `state`, `src`, `src_port`, `dest`,
    /// `dest_port`, `name`; with filters `level`. `child_level` and `parent_pid` are accepted
    /// and change nothing (as telegraf).
    tag_with: Option<Spanned<Vec<String>>>,
    /// `cpu`, `limits` (`/proc/<pid>/limits`: `rlimit_*` fields and their usage), `memory`,
    /// `mmap` (`smaps_rollup`), `sockets` (`procstat_socket` lines). Default cpu, memory, mmap.
    properties: Option<Spanned<Vec<String>>>,
    /// With the `sockets` property: `all` (default) or any of `tcp4`, `tcp6`, `udp4`, `udp6`,
    /// `unix`.
    socket_protocols: Option<Spanned<Vec<String>>>,
    /// `pgrep` (default) or `native`: the `pid_finder` tag and the `exe`/`user` semantics
    /// above. Processes are always found by reading /proc (no `pgrep` is run).
    pid_finder: Option<Spanned<String>>,
    /// Deprecated (telegraf 1.29, removed in 1.40): `tag_with = ["pid"]`.
    pid_tag: Option<bool>,
    /// Deprecated (telegraf 1.29, removed in 1.40): `tag_with = ["cmdline"]`.
    cmdline_tag: Option<bool>,
    /// Deprecated (telegraf 1.29, removed in 1.40): added to `supervisor_units`.
    supervisor_unit: Option<Vec<String>>,
    /// New-style selection, one `procstat_lookup` line (tag `filter`) per table.
    filter: Option<Vec<Spanned<RawFilter>>>,
    /// Longest time one scan of /proc may take (an addition). Default 5s.
    timeout: Option<ConfigDuration>,
}

/// `[[inputs.procstat.filter]]`: at most one service selector (`pid_files`, `systemd_units`,
/// `cgroups`, `supervisor_units`); without one every process. Then the process filters, all of
/// which must match.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFilter {
    /// The `filter` tag. Required.
    name: Option<String>,
    /// PID files, each tagged `pidfile`.
    pid_files: Option<Vec<String>>,
    /// systemd unit names (globs; only unit files enabled, disabled or static): each unit's
    /// MainPID, tagged `systemd_unit`.
    systemd_units: Option<Vec<String>>,
    /// cgroup directories (globs), relative to /sys/fs/cgroup or absolute.
    cgroups: Option<Vec<String>>,
    /// supervisord programs, as the option of the same name above.
    supervisor_units: Option<Vec<String>>,
    /// Windows only: refused unless empty.
    win_services: Option<Spanned<Vec<String>>>,
    /// Regexes on the command line; one must match.
    patterns: Option<Spanned<Vec<String>>>,
    /// User names (globs) owning the process.
    users: Option<Spanned<Vec<String>>>,
    /// Executable paths (globs).
    executables: Option<Spanned<Vec<String>>>,
    /// Process names (globs).
    process_names: Option<Spanned<Vec<String>>>,
    /// Children of the matched processes down to this depth (tagged `parent_pid`), negative:
    /// all. Default 0.
    recursion_depth: Option<i64>,
}

/// Old-style selector.
#[derive(Debug, Clone)]
pub(crate) enum Selector {
    PidFile(String),
    Exe(Regex, String),
    Pattern(Regex, String),
    User(String),
    SystemdUnit(String),
    /// `systemd_unit` with `include_systemd_children`.
    SystemdChildren(String),
    Cgroup(String),
    /// The units, and `pattern` (telegraf tags these processes `pattern` and `parent_pid`
    /// with it).
    Supervisor(Vec<String>, String),
}

/// Where a filter takes its processes from.
#[derive(Debug, Clone)]
pub(crate) enum Service {
    All,
    PidFiles(Vec<String>),
    Cgroups(Vec<String>),
    SystemdUnits(Vec<String>),
    Supervisor(Vec<String>),
}

#[derive(Debug, Clone)]
pub(crate) struct Filter {
    pub name: String,
    pub service: Service,
    pub patterns: Vec<Regex>,
    pub users: Option<Globs>,
    pub executables: Option<Globs>,
    pub process_names: Option<Globs>,
    /// Negative: no limit.
    pub recursion_depth: i64,
}

#[derive(Debug, Clone)]
pub(crate) enum Lookup {
    Old {
        selector: Selector,
        /// The `pid_finder` tag; `native` also picks the native finder's semantics.
        pid_finder: String,
    },
    Filters(Vec<Filter>),
}

impl Lookup {
    pub(crate) fn native(&self) -> bool {
        matches!(self, Lookup::Old { pid_finder, .. } if pid_finder == "native")
    }
}

/// `tag_with`.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TagWith {
    pub pid: bool,
    pub ppid: bool,
    pub cmdline: bool,
    pub status: bool,
    pub user: bool,
    pub level: bool,
    pub protocol: bool,
    pub state: bool,
    pub src: bool,
    pub src_port: bool,
    pub dest: bool,
    pub dest_port: bool,
    pub name: bool,
}

/// `socket_protocols`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Protocols {
    pub tcp4: bool,
    pub tcp6: bool,
    pub udp4: bool,
    pub udp6: bool,
    pub unix: bool,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub lookup: Lookup,
    pub process_name: Option<String>,
    pub prefix: Option<String>,
    pub solaris: bool,
    pub tags: TagWith,
    pub cpu: bool,
    pub memory: bool,
    pub mmap: bool,
    pub limits: bool,
    /// `Some` with the `sockets` property.
    pub sockets: Option<Protocols>,
    pub timeout: Duration,
}

fn regex(text: &str, span: std::ops::Range<usize>, key: &str) -> Result<Regex, SpanError> {
    Regex::new(text).map_err(|e| SpanError::new(span, key, format!("invalid regex: {e}")))
}

fn globs(v: Option<Spanned<Vec<String>>>, key: &str) -> Result<Option<Globs>, SpanError> {
    match v {
        Some(v) if !v.get_ref().is_empty() => Globs::resolve(Some(v), key).map(Some),
        _ => Ok(None),
    }
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.filter(|s| !s.is_empty())
}

fn nonempty_list(v: Option<Vec<String>>) -> Option<Vec<String>> {
    v.filter(|s| !s.is_empty())
}

fn windows_only(key: &str, span: std::ops::Range<usize>) -> SpanError {
    SpanError::new(
        span,
        key,
        format!("{key} is Windows-only: telegraf on Linux finds no service by it"),
    )
}

fn resolve_selector(raw: &mut Raw) -> Result<Option<Selector>, SpanError> {
    if let Some(w) = raw.win_service.take()
        && !w.get_ref().is_empty()
    {
        return Err(windows_only("win_service", w.span()));
    }
    if let Some(units) = nonempty_list(raw.supervisor_units.take()) {
        let pattern = raw.pattern.as_ref().map(|p| p.get_ref().clone());
        return Ok(Some(Selector::Supervisor(units, pattern.unwrap_or_default())));
    }
    if let Some(unit) = nonempty(raw.systemd_unit.take()) {
        return Ok(Some(match raw.include_systemd_children.unwrap_or(false) {
            true => Selector::SystemdChildren(unit),
            false => Selector::SystemdUnit(unit),
        }));
    }
    if let Some(c) = nonempty(raw.cgroup.take()) {
        return Ok(Some(Selector::Cgroup(c)));
    }
    if let Some(p) = nonempty(raw.pid_file.take()) {
        return Ok(Some(Selector::PidFile(p)));
    }
    if let Some(e) = raw.exe.take().filter(|e| !e.get_ref().is_empty()) {
        let r = regex(e.get_ref(), e.span(), "exe")?;
        return Ok(Some(Selector::Exe(r, e.into_inner())));
    }
    if let Some(p) = raw.pattern.take().filter(|e| !e.get_ref().is_empty()) {
        let r = regex(p.get_ref(), p.span(), "pattern")?;
        return Ok(Some(Selector::Pattern(r, p.into_inner())));
    }
    Ok(nonempty(raw.user.take()).map(Selector::User))
}

fn resolve_filter(f: Spanned<RawFilter>, index: usize) -> Result<Filter, SpanError> {
    let span = f.span();
    let f = f.into_inner();
    let key = |k: &str| format!("filter[{index}].{k}");
    let name = nonempty(f.name)
        .ok_or_else(|| SpanError::new(span.clone(), key("name"), "filter must be named"))?;
    if let Some(w) = f.win_services
        && !w.get_ref().is_empty()
    {
        return Err(windows_only(&key("win_services"), w.span()));
    }
    let mut services = Vec::new();
    if let Some(p) = nonempty_list(f.pid_files) {
        services.push(("pid_files", Service::PidFiles(p)));
    }
    if let Some(c) = nonempty_list(f.cgroups) {
        services.push(("cgroups", Service::Cgroups(c)));
    }
    if let Some(u) = nonempty_list(f.systemd_units) {
        services.push(("systemd_units", Service::SystemdUnits(u)));
    }
    if let Some(u) = nonempty_list(f.supervisor_units) {
        services.push(("supervisor_units", Service::Supervisor(u)));
    }
    if services.len() > 1 {
        let names: Vec<&str> = services.iter().map(|(n, _)| *n).collect();
        return Err(SpanError::new(
            span,
            key("name"),
            format!("cannot select multiple services ({})", names.join(", ")),
        ));
    }
    let service = services.pop().map_or(Service::All, |(_, s)| s);
    let mut patterns = Vec::new();
    if let Some(p) = f.patterns {
        for text in p.get_ref() {
            patterns.push(regex(text, p.span(), &key("patterns"))?);
        }
    }
    Ok(Filter {
        name,
        service,
        patterns,
        users: globs(f.users, &key("users"))?,
        executables: globs(f.executables, &key("executables"))?,
        process_names: globs(f.process_names, &key("process_names"))?,
        recursion_depth: f.recursion_depth.unwrap_or(0),
    })
}

fn resolve_tag_with(t: &Spanned<Vec<String>>, sockets: bool) -> Result<TagWith, SpanError> {
    let mut w = TagWith::default();
    for k in t.get_ref() {
        let flag = match k.as_str() {
            "pid" => &mut w.pid,
            "ppid" => &mut w.ppid,
            "cmdline" => &mut w.cmdline,
            "status" => &mut w.status,
            "user" => &mut w.user,
            "level" => &mut w.level,
            "child_level" | "parent_pid" => continue,
            "protocol" | "state" | "src" | "src_port" | "dest" | "dest_port" | "name"
                if !sockets =>
            {
                return Err(SpanError::new(
                    t.span(),
                    "tag_with",
                    format!("socket tagging option {k:?} specified without sockets enabled"),
                ));
            }
            "protocol" => &mut w.protocol,
            "state" => &mut w.state,
            "src" => &mut w.src,
            "src_port" => &mut w.src_port,
            "dest" => &mut w.dest,
            "dest_port" => &mut w.dest_port,
            "name" => &mut w.name,
            other => {
                return Err(SpanError::new(
                    t.span(),
                    "tag_with",
                    format!(
                        "invalid 'tag_with' setting {other:?} (cmdline, pid, ppid, status, user, \
                         level, child_level, parent_pid; with sockets protocol, state, src, \
                         src_port, dest, dest_port, name)"
                    ),
                ));
            }
        };
        *flag = true;
    }
    Ok(w)
}

fn resolve_protocols(p: Option<Spanned<Vec<String>>>) -> Result<Protocols, SpanError> {
    let Some(p) = p.filter(|p| !p.get_ref().is_empty()) else {
        return Ok(all_protocols());
    };
    let list = p.get_ref();
    let err = |m: String| SpanError::new(p.span(), "socket_protocols", m);
    let mut out = Protocols::default();
    for (i, proto) in list.iter().enumerate() {
        if list[..i].contains(proto) {
            return Err(err(format!("duplicate {proto:?} in 'socket_protocol' setting")));
        }
        let flag = match proto.as_str() {
            "all" if list.len() > 1 => {
                return Err(err(
                    "additional 'socket_protocol' settings besides 'all' are not allowed".into(),
                ));
            }
            "all" => return Ok(all_protocols()),
            "tcp4" => &mut out.tcp4,
            "tcp6" => &mut out.tcp6,
            "udp4" => &mut out.udp4,
            "udp6" => &mut out.udp6,
            "unix" => &mut out.unix,
            other => {
                return Err(err(format!(
                    "invalid 'socket_protocol' setting {other:?} (all, tcp4, tcp6, udp4, udp6, unix)"
                )));
            }
        };
        *flag = true;
    }
    Ok(out)
}

fn all_protocols() -> Protocols {
    Protocols {
        tcp4: true,
        tcp6: true,
        udp4: true,
        udp6: true,
        unix: true,
    }
}

pub(crate) fn resolve(mut raw: Raw) -> Result<Config, SpanError> {
    let mut c = Config {
        lookup: Lookup::Filters(Vec::new()),
        process_name: nonempty(raw.process_name.take()),
        prefix: nonempty(raw.prefix.take()),
        solaris: false,
        tags: TagWith::default(),
        cpu: true,
        memory: true,
        mmap: true,
        limits: false,
        sockets: None,
        timeout: raw
            .timeout
            .map(|t| t.get())
            .filter(|t| !t.is_zero())
            .unwrap_or(Duration::from_secs(5)),
    };
    if let Some(m) = &raw.mode {
        match m.get_ref().to_ascii_lowercase().as_str() {
            "" | "irix" => {}
            "solaris" => c.solaris = true,
            other => {
                return Err(SpanError::new(
                    m.span(),
                    "mode",
                    format!("unknown mode {other:?} (irix or solaris)"),
                ));
            }
        }
    }
    let mut sockets = false;
    if let Some(p) = &raw.properties {
        (c.cpu, c.memory, c.mmap) = (false, false, false);
        for k in p.get_ref() {
            match k.as_str() {
                "cpu" => c.cpu = true,
                "memory" => c.memory = true,
                "mmap" => c.mmap = true,
                "limits" => c.limits = true,
                "sockets" => sockets = true,
                other => {
                    return Err(SpanError::new(
                        p.span(),
                        "properties",
                        format!(
                            "invalid 'properties' setting {other:?} (cpu, limits, memory, mmap, \
                             sockets)"
                        ),
                    ));
                }
            }
        }
    }
    if let Some(t) = &raw.tag_with {
        c.tags = resolve_tag_with(t, sockets)?;
    }
    c.tags.pid |= raw.pid_tag.unwrap_or(false);
    c.tags.cmdline |= raw.cmdline_tag.unwrap_or(false);
    if let Some(old) = raw.supervisor_unit.take() {
        let units = raw.supervisor_units.get_or_insert_with(Vec::new);
        for u in old {
            if !units.contains(&u) {
                units.push(u);
            }
        }
    }
    if sockets {
        c.sockets = Some(resolve_protocols(raw.socket_protocols.take())?);
    }
    let filters = raw.filter.take().unwrap_or_default();
    let selector = resolve_selector(&mut raw)?;
    c.lookup = match (selector, filters.is_empty()) {
        (Some(_), false) => {
            return Err(SpanError::new(
                0..0,
                "filter",
                "cannot operate in mixed mode with filters and old-style config",
            ));
        }
        (None, true) => {
            return Err(SpanError::new(
                0..0,
                "",
                "require filter option but none set: set one of pid_file, exe, pattern, user, \
                 systemd_unit, cgroup, supervisor_units or a [[inputs.procstat.filter]]",
            ));
        }
        (Some(selector), true) => {
            let pid_finder = match &raw.pid_finder {
                None => "pgrep".to_owned(),
                Some(f) => match f.get_ref().as_str() {
                    "" | "pgrep" => "pgrep".to_owned(),
                    "native" => "native".to_owned(),
                    other => {
                        return Err(SpanError::new(
                            f.span(),
                            "pid_finder",
                            format!("unknown pid_finder {other:?} (pgrep or native)"),
                        ));
                    }
                },
            };
            Lookup::Old {
                selector,
                pid_finder,
            }
        }
        (None, false) => Lookup::Filters(
            filters
                .into_iter()
                .enumerate()
                .map(|(i, f)| resolve_filter(f, i))
                .collect::<Result<_, _>>()?,
        ),
    };
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, SpanError> {
        resolve(toml::from_str(s).unwrap())
    }

    #[test]
    fn config_errors() {
        assert!(resolve(Raw::default()).is_err());
        assert!(parse("pattern = \"(unclosed\"").is_err());
        assert!(parse("exe = \"x\"\nproperties = [\"socket\"]").is_err());
        assert!(parse("exe = \"x\"\nmode = \"solaris\"").unwrap().solaris);
        assert!(parse("exe = \"x\"\nmode = \"Solaris\"").unwrap().solaris);
        let e = parse("exe = \"x\"\ntag_with = [\"protocol\"]").unwrap_err();
        assert!(e.message.contains("without sockets"), "{e:?}");
        let c = parse("exe = \"x\"\nproperties = [\"sockets\"]\ntag_with = [\"protocol\"]").unwrap();
        assert!(c.tags.protocol && c.sockets == Some(all_protocols()));
        let e = parse("exe = \"x\"\nproperties = [\"sockets\"]\nsocket_protocols = [\"all\", \"unix\"]")
            .unwrap_err();
        assert!(e.message.contains("besides 'all'"), "{e:?}");
        let e = parse("exe = \"x\"\nproperties = [\"sockets\"]\nsocket_protocols = [\"unix\", \"unix\"]")
            .unwrap_err();
        assert!(e.message.contains("duplicate"), "{e:?}");
        assert!(parse("win_service = \"x\"").unwrap_err().message.contains("Windows"));
        let mixed = parse("exe = \"x\"\n[[filter]]\nname = \"a\"").unwrap_err();
        assert!(mixed.message.contains("mixed mode"), "{mixed:?}");
        assert!(parse("[[filter]]\npatterns = [\"a\"]").unwrap_err().message.contains("named"));
        let two = parse("[[filter]]\nname = \"a\"\ncgroups = [\"x\"]\npid_files = [\"y\"]");
        assert!(two.unwrap_err().message.contains("multiple services"));
    }

    #[test]
    fn telegrafs_selector_order() {
        let c = parse("pid_file = \"/p\"\nexe = \"x\"\ncgroup = \"c\"").unwrap();
        assert!(matches!(c.lookup, Lookup::Old { selector: Selector::Cgroup(_), .. }));
        let c = parse("pid_file = \"/p\"\nexe = \"x\"").unwrap();
        assert!(matches!(c.lookup, Lookup::Old { selector: Selector::PidFile(_), .. }));
        let c = parse("pid_file = \"\"\nwin_service = \"\"\nuser = \"root\"").unwrap();
        assert!(matches!(c.lookup, Lookup::Old { selector: Selector::User(_), .. }));
        let c = parse("pid_tag = true\ncmdline_tag = true\nsupervisor_unit = [\"w\"]").unwrap();
        assert!(c.tags.pid && c.tags.cmdline);
        assert!(matches!(c.lookup, Lookup::Old { selector: Selector::Supervisor(..), .. }));
        let c = parse("systemd_unit = \"a.service\"\nsupervisor_units = [\"w\"]").unwrap();
        assert!(matches!(c.lookup, Lookup::Old { selector: Selector::Supervisor(..), .. }));
    }
}
