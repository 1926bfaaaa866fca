//! The process finder: which PIDs the selector (`pid_file`, `exe`, `pattern`, `user`,
//! `systemd_unit`, `cgroup`) names.

use std::collections::HashMap;

use super::config::Selector;
use super::scan::ScanState;
use crate::modules::hostutil::read_into;

/// `/etc/passwd` name for a uid, or the number.
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

impl ScanState {
    pub(super) fn user_name(&mut self, uid: u32) -> String {
        if !self.users.contains_key(&uid) && !self.users_loaded {
            self.users = std::fs::read_to_string("/etc/passwd")
                .map(|t| parse_passwd(&t))
                .unwrap_or_default();
            self.users_loaded = true;
        }
        self.users
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| uid.to_string())
    }

    fn all_pids() -> std::io::Result<Vec<i32>> {
        let mut pids = Vec::with_capacity(512);
        for e in std::fs::read_dir("/proc")? {
            let Ok(e) = e else { continue };
            if let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) {
                pids.push(pid);
            }
        }
        Ok(pids)
    }

    pub(super) fn find(&mut self, sel: &Selector) -> Result<Vec<i32>, String> {
        match sel {
            Selector::PidFile(p) => {
                let text = std::fs::read_to_string(p)
                    .map_err(|e| format!("reading pid file {}: {e}", p.display()))?;
                let pid = text
                    .trim()
                    .parse::<i32>()
                    .map_err(|_| format!("pid file {} holds no pid", p.display()))?;
                Ok(vec![pid])
            }
            Selector::Exe(re) => {
                let mut out = Vec::new();
                for pid in Self::all_pids().map_err(|e| e.to_string())? {
                    if self.read_comm(pid) && re.is_match(&self.text) {
                        out.push(pid);
                    }
                }
                Ok(out)
            }
            Selector::Pattern(re) => {
                let mut out = Vec::new();
                for pid in Self::all_pids().map_err(|e| e.to_string())? {
                    if !self.read_cmdline(pid) {
                        continue;
                    }
                    let hit = if self.cmdline.is_empty() {
                        self.read_comm(pid) && re.is_match(&self.text)
                    } else {
                        re.is_match(&String::from_utf8_lossy(&self.cmdline))
                    };
                    if hit {
                        out.push(pid);
                    }
                }
                Ok(out)
            }
            Selector::User(name) => {
                let text = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
                let uid = parse_passwd(&text)
                    .into_iter()
                    .find(|(_, n)| n == name)
                    .map(|(u, _)| u)
                    .ok_or_else(|| format!("unknown user {name:?}"))?;
                let mut out = Vec::new();
                for pid in Self::all_pids().map_err(|e| e.to_string())? {
                    use std::os::unix::fs::MetadataExt;
                    self.path.clear();
                    self.path.push_str(&format!("/proc/{pid}"));
                    if std::fs::metadata(&self.path).is_ok_and(|m| m.uid() == uid) {
                        out.push(pid);
                    }
                }
                Ok(out)
            }
            Selector::SystemdUnit(unit) => {
                let unit = if unit.contains('.') {
                    unit.clone()
                } else {
                    format!("{unit}.service")
                };
                let candidates = [
                    format!("/sys/fs/cgroup/system.slice/{unit}/cgroup.procs"),
                    format!("/sys/fs/cgroup/unified/system.slice/{unit}/cgroup.procs"),
                    format!("/sys/fs/cgroup/systemd/system.slice/{unit}/cgroup.procs"),
                ];
                read_procs(&candidates, &mut self.text)
                    .map_err(|e| format!("systemd unit {unit}: {e}"))
            }
            Selector::Cgroup(cg) => {
                let base = if cg.starts_with('/') {
                    cg.clone()
                } else {
                    format!("/sys/fs/cgroup/{cg}")
                };
                read_procs(&[format!("{base}/cgroup.procs")], &mut self.text)
                    .map_err(|e| format!("cgroup {base}: {e}"))
            }
        }
    }
}

fn read_procs(candidates: &[String], buf: &mut String) -> Result<Vec<i32>, String> {
    let mut last = String::from("no cgroup.procs");
    for path in candidates {
        match read_into(path, buf) {
            Ok(()) => return Ok(buf.lines().filter_map(|l| l.trim().parse().ok()).collect()),
            Err(e) => last = format!("{path}: {e}"),
        }
    }
    Err(last)
}
