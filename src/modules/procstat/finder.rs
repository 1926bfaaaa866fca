//! The process finder: which PIDs the old-style selector or each `[[inputs.procstat.filter]]`
//! names, in groups that carry their tags (telegraf's `pidsTags` / `processGroup`).

use std::collections::HashMap;

use super::config::{Filter, Selector, Service};
use super::scan::ScanState;
use super::services;
use crate::modules::hostutil::read_into;
use crate::modules::procfs::host;
use crate::options::Glob;

/// PIDs found together and the tags they share.
#[derive(Debug, Default)]
pub(super) struct Group {
    pub pids: Vec<i32>,
    pub tags: Vec<(&'static str, String)>,
    /// Depth below the filter's matches (0: matched itself).
    pub level: u32,
}

impl Group {
    fn new(pids: Vec<i32>, tags: Vec<(&'static str, String)>) -> Group {
        Group {
            pids,
            tags,
            level: 0,
        }
    }
}

/// `/etc/passwd` name for a uid.
fn parse_passwd(text: &str) -> HashMap<u32, String> {
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let uid = f.nth(1)?.parse().ok()?;
            Some((uid, name.to_owned()))
        })
        .collect()
}

pub(super) fn exists(path: &str) -> bool {
    std::fs::metadata(host::path(path).as_ref()).is_ok()
}

fn read_pid_file(path: &str) -> Result<i32, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("failed to read pidfile {path:?}: {e}"))?;
    text.trim()
        .parse::<i32>()
        .map_err(|_| format!("failed to parse PID in file {path:?}"))
}

/// A path glob as Go's `filepath.Glob` (`*`, `?`, `[...]`, `\`), each directory read through
/// `HOST_*`; the matches are returned as written (unmapped), sorted within each directory.
pub(super) fn glob_paths(pattern: &str) -> Result<Vec<String>, String> {
    let meta = |s: &str| s.contains(['*', '?', '[', '\\', '{']);
    if !meta(pattern) {
        return Ok(if exists(pattern) {
            vec![pattern.to_owned()]
        } else {
            Vec::new()
        });
    }
    let mut found = vec![String::new()];
    for part in pattern.split('/').skip(1) {
        let mut next = Vec::new();
        if !meta(part) {
            for base in found {
                let p = format!("{base}/{part}");
                if exists(&p) {
                    next.push(p);
                }
            }
        } else {
            let glob = Glob::new(part, "/").map_err(|e| format!("glob failed: {e}"))?;
            for base in found {
                let dir = if base.is_empty() { "/" } else { base.as_str() };
                let Ok(entries) = std::fs::read_dir(host::path(dir).as_ref()) else {
                    continue;
                };
                let mut names: Vec<String> = entries
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| glob.matches(n))
                    .collect();
                names.sort();
                next.extend(names.into_iter().map(|n| format!("{base}/{n}")));
            }
        }
        found = next;
    }
    Ok(found)
}

/// The PIDs of one cgroup directory's `cgroup.procs`.
fn cgroup_procs(dir: &str, buf: &mut String) -> Result<Vec<i32>, String> {
    let meta = std::fs::metadata(host::path(dir).as_ref()).map_err(|e| format!("{dir}: {e}"))?;
    if !meta.is_dir() {
        return Err(format!("not a directory {dir}"));
    }
    let file = format!("{dir}/cgroup.procs");
    read_into(host::path(&file).as_ref(), buf).map_err(|e| format!("{file}: {e}"))?;
    buf.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| l.parse().map_err(|_| format!("invalid pid {l:?} in {file}")))
        .collect()
}

/// `cgroup` relative to /sys/fs/cgroup or absolute, as telegraf.
fn cgroup_pattern(cg: &str) -> String {
    match cg.starts_with('/') {
        true => cg.to_owned(),
        false => format!("/sys/fs/cgroup/{cg}"),
    }
}

impl ScanState {
    pub(super) fn user_name(&mut self, uid: u32) -> String {
        if !self.users.contains_key(&uid) && !self.users_loaded {
            self.users = std::fs::read_to_string(host::path("/etc/passwd").as_ref())
                .map(|t| parse_passwd(&t))
                .unwrap_or_default();
            self.users_loaded = true;
        }
        self.users
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string())
    }

    fn all_pids() -> Result<Vec<i32>, String> {
        let mut pids = Vec::with_capacity(512);
        let dir = host::path("/proc");
        for e in std::fs::read_dir(dir.as_ref()).map_err(|e| format!("{dir}: {e}"))? {
            let Ok(e) = e else { continue };
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                pids.push(pid);
            }
        }
        Ok(pids)
    }

    /// The executable's path (`/proc/<pid>/exe`), into `self.text`.
    fn read_exe(&mut self, pid: i32) -> bool {
        self.set_path(pid, "exe");
        match std::fs::read_link(&self.path) {
            Ok(p) => {
                self.text.clear();
                self.text.push_str(&p.to_string_lossy());
                true
            }
            Err(_) => false,
        }
    }

    /// The uids of `/proc/<pid>/status`: (real, effective).
    fn uids(&mut self, pid: i32) -> Option<(u32, u32)> {
        self.set_path(pid, "status");
        read_into(&self.path, &mut self.text).ok()?;
        let s = super::proc::parse_status(&self.text);
        Some((s.ruid?, s.euid?))
    }

    /// Children of `pid` (every thread's `children` list).
    pub(super) fn children(&mut self, pid: i32) -> Vec<i32> {
        let mut out = Vec::new();
        self.set_path(pid, "task");
        let Ok(tasks) = std::fs::read_dir(&self.path) else {
            return out;
        };
        for t in tasks.flatten() {
            let path = t.path().join("children");
            if read_into(&path, &mut self.text).is_ok() {
                out.extend(self.text.split_ascii_whitespace().filter_map(|p| p.parse::<i32>().ok()));
            }
        }
        out
    }

    /// The groups of the old-style selector; `native` is `pid_finder = "native"`.
    pub(super) fn find(&mut self, sel: &Selector, native: bool) -> Result<Vec<Group>, String> {
        let one = |pids, k: &'static str, v: &str| Ok(vec![Group::new(pids, vec![(k, v.to_owned())])]);
        match sel {
            Selector::PidFile(p) => one(vec![read_pid_file(p)?], "pidfile", p),
            Selector::Exe(re, text) => {
                let mut out = Vec::new();
                for pid in Self::all_pids()? {
                    let name = if native { self.read_exe(pid) } else { self.read_comm(pid) };
                    if name && re.is_match(&self.text) {
                        out.push(pid);
                    }
                }
                one(out, "exe", text)
            }
            Selector::Pattern(re, text) => {
                let mut out = Vec::new();
                for pid in Self::all_pids()? {
                    if self.cmdline_matches(pid, re, !native) {
                        out.push(pid);
                    }
                }
                one(out, "pattern", text)
            }
            Selector::User(name) => {
                let pids = self.by_user(name, native)?;
                one(pids, "user", name)
            }
            Selector::SystemdUnit(unit) => {
                let pids = services::systemd_main_pid(unit, self.exec_timeout)?.into_iter().collect();
                one(pids, "systemd_unit", unit)
            }
            Selector::SystemdChildren(unit) => {
                let cg = match exists("/sys/fs/cgroup/systemd/system.slice") {
                    true => format!("systemd/system.slice/{unit}"),
                    false => format!("system.slice/{unit}"),
                };
                self.cgroups(&cg)
            }
            Selector::Cgroup(cg) => self.cgroups(cg),
            Selector::Supervisor(units, pattern) => {
                let mut groups = Vec::new();
                for u in services::supervisor_status(units, self.exec_timeout)? {
                    let mut tags = vec![("supervisor_unit", u.name.clone()), ("status", u.status)];
                    if let Some(e) = u.error {
                        tags.push(("error", e));
                    }
                    if let Some(up) = u.uptime {
                        tags.push(("uptimes", up));
                    }
                    let Some(main) = u.pid else {
                        groups.push(Group::new(Vec::new(), tags));
                        continue;
                    };
                    let pids = self.children(main);
                    if pids.is_empty() {
                        continue;
                    }
                    tags.insert(0, ("pattern", pattern.clone()));
                    tags.insert(1, ("parent_pid", pattern.clone()));
                    groups.push(Group::new(pids, tags));
                }
                Ok(groups)
            }
        }
    }

    /// Whether the command line (arguments joined with spaces) matches; `comm_fallback`: a
    /// process without one (a kernel thread) matches on its name, as `pgrep -f`.
    fn cmdline_matches(&mut self, pid: i32, re: &regex::Regex, comm_fallback: bool) -> bool {
        if !self.read_cmdline(pid) {
            return false;
        }
        if self.cmdline.is_empty() && comm_fallback {
            return self.read_comm(pid) && re.is_match(&self.text);
        }
        let cmd = String::from_utf8_lossy(&self.cmdline);
        if !re.is_match(&cmd) {
            return false;
        }
        self.cmdlines.insert(pid, cmd.into_owned());
        true
    }

    /// `pgrep -u NAME|UID` (effective user) or, native, the real user's name equal to `name`.
    fn by_user(&mut self, name: &str, native: bool) -> Result<Vec<i32>, String> {
        let uid = if native {
            None
        } else {
            let text = std::fs::read_to_string(host::path("/etc/passwd").as_ref())
                .map_err(|e| e.to_string())?;
            let found = parse_passwd(&text)
                .into_iter()
                .find(|(_, n)| n == name)
                .map(|(u, _)| u)
                .or_else(|| name.parse().ok());
            Some(found.ok_or_else(|| format!("invalid user name {name:?}"))?)
        };
        self.users_loaded = false;
        let mut out = Vec::new();
        for pid in Self::all_pids()? {
            let Some((ruid, euid)) = self.uids(pid) else {
                continue;
            };
            let hit = match uid {
                Some(u) => u == euid,
                None => self.user_name(ruid) == name,
            };
            if hit {
                out.push(pid);
            }
        }
        Ok(out)
    }

    /// telegraf's `cgroup`: one group per matching directory, tagged `cgroup` and
    /// `cgroup_full`.
    fn cgroups(&mut self, cg: &str) -> Result<Vec<Group>, String> {
        let mut groups = Vec::new();
        for dir in glob_paths(&cgroup_pattern(cg))? {
            let pids = cgroup_procs(&dir, &mut self.text)?;
            groups.push(Group::new(
                pids,
                vec![("cgroup", cg.to_owned()), ("cgroup_full", dir)],
            ));
        }
        Ok(groups)
    }

    /// The groups of one `[[inputs.procstat.filter]]`: its service's processes, those the
    /// process filters keep, then their children down to `recursion_depth`.
    pub(super) fn apply_filter(&mut self, f: &Filter) -> Result<Vec<Group>, String> {
        let groups = match &f.service {
            Service::All => vec![Group::new(Self::all_pids()?, Vec::new())],
            Service::PidFiles(files) => files
                .iter()
                .map(|p| Ok(Group::new(vec![read_pid_file(p)?], vec![("pidfile", p.clone())])))
                .collect::<Result<_, String>>()?,
            Service::Cgroups(cgs) => {
                let mut out = Vec::new();
                for cg in cgs {
                    out.extend(self.cgroups(cg)?);
                }
                out
            }
            Service::SystemdUnits(patterns) => {
                let mut out = Vec::new();
                for unit in services::systemd_unit_files(patterns, self.exec_timeout)? {
                    match services::systemd_main_pid(&unit, self.exec_timeout)? {
                        Some(pid) => out.push(Group::new(vec![pid], vec![("systemd_unit", unit)])),
                        None => {
                            return Err(format!(
                                "failed to find process for PID 0 of unit {unit:?}"
                            ));
                        }
                    }
                }
                out
            }
            Service::Supervisor(units) => {
                let mut out = Vec::new();
                for u in services::supervisor_status(units, self.exec_timeout)? {
                    let mut tags = vec![("supervisor_unit", u.name), ("status", u.status)];
                    if let Some(e) = u.error {
                        tags.push(("error", e));
                    }
                    let mut pids = Vec::new();
                    if let Some(main) = u.pid {
                        tags.push(("uptimes", u.uptime.unwrap_or_default()));
                        pids = self.children(main);
                        tags.push(("parent_pid", main.to_string()));
                    }
                    out.push(Group::new(pids, tags));
                }
                out
            }
        };
        let mut result: Vec<Group> = groups
            .into_iter()
            .map(|mut g| {
                g.pids.retain(|&pid| self.keeps(f, pid));
                g
            })
            .collect();
        let mut previous = 0..result.len();
        let mut depth = 0i64;
        while depth < f.recursion_depth || f.recursion_depth < 0 {
            let mut children = Vec::new();
            for gi in previous.clone() {
                for pi in 0..result[gi].pids.len() {
                    let parent = result[gi].pids[pi];
                    let kids = self.children(parent);
                    if kids.is_empty() {
                        continue;
                    }
                    let mut tags = result[gi].tags.clone();
                    tags.retain(|(k, _)| *k != "parent_pid");
                    tags.push(("parent_pid", parent.to_string()));
                    children.push(Group {
                        pids: kids,
                        tags,
                        level: u32::try_from(depth + 1).unwrap_or(u32::MAX),
                    });
                }
            }
            if children.is_empty() {
                break;
            }
            let start = result.len();
            result.extend(children);
            previous = start..result.len();
            depth += 1;
        }
        Ok(result)
    }

    /// The process filters of `f` (users, executables, process names, patterns).
    fn keeps(&mut self, f: &Filter, pid: i32) -> bool {
        if let Some(users) = &f.users {
            let Some((ruid, _)) = self.uids(pid) else {
                return false;
            };
            if !users.matches(&self.user_name(ruid)) {
                return false;
            }
        }
        if let Some(exes) = &f.executables
            && !(self.read_exe(pid) && exes.matches(&self.text))
        {
            return false;
        }
        if let Some(names) = &f.process_names {
            let Some(name) = self.process_name_of(pid) else {
                return false;
            };
            if !names.matches(&name) {
                return false;
            }
        }
        if !f.patterns.is_empty() {
            if !self.read_cmdline(pid) {
                return false;
            }
            let cmd = String::from_utf8_lossy(&self.cmdline);
            if !f.patterns.iter().any(|re| re.is_match(&cmd)) {
                return false;
            }
            self.cmdlines.insert(pid, cmd.into_owned());
        }
        true
    }

    /// The process's name as the `process_name` tag shows it.
    fn process_name_of(&mut self, pid: i32) -> Option<String> {
        if !self.read_comm(pid) {
            return None;
        }
        let comm = std::mem::take(&mut self.text);
        let cmdline = match self.read_cmdline(pid) {
            true => String::from_utf8_lossy(&self.cmdline).into_owned(),
            false => String::new(),
        };
        Some(super::scan::full_name(comm, &cmdline))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_paths_like_go() {
        let dir = tempfile::tempdir().unwrap();
        for d in ["a.service", "b.service", "c.scope"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        let base = dir.path().display().to_string();
        let got = glob_paths(&format!("{base}/*.service")).unwrap();
        assert_eq!(got, vec![format!("{base}/a.service"), format!("{base}/b.service")]);
        assert_eq!(glob_paths(&format!("{base}/c.scope")).unwrap().len(), 1);
        assert!(glob_paths(&format!("{base}/none")).unwrap().is_empty());
        assert_eq!(glob_paths(&format!("{base}/?.s*")).unwrap().len(), 3);
        assert_eq!(cgroup_pattern("system.slice"), "/sys/fs/cgroup/system.slice");
    }
}
