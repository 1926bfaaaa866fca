//! Processes named by a service manager: systemd (`systemctl`) and supervisord
//! (`supervisorctl`), run as telegraf runs them. Both run on the blocking pool with the scan.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd`, killed after `timeout` (a service manager that does not answer must not hold
/// the scan); its stdout, or why not. `ok_codes`: exit codes other than 0 that still carry a
/// usable answer.
fn output(cmd: &mut Command, ok_codes: &[i32], timeout: Duration) -> Result<String, String> {
    let name = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {name}: {e}"))?;
    // Drained on threads so that a large answer never blocks the child on a full pipe.
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(r) = r {
                let _ = r.take(MAX_OUTPUT).read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("{name} did not answer within {timeout:?}"));
            }
        }
    };
    let stdout = String::from_utf8_lossy(&out.join().unwrap_or_default()).into_owned();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    if !status.success() && !status.code().is_some_and(|c| ok_codes.contains(&c)) {
        let why = [stderr.trim(), stdout.trim()]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or("");
        return Err(format!("{name} {status}: {why}"));
    }
    Ok(stdout)
}

/// Bytes kept of a command's output: a unit list or a status table is far smaller.
const MAX_OUTPUT: u64 = 4 << 20;

/// `MainPID` of `systemctl show` output: `None` for 0 or empty (a unit that is not running).
pub(crate) fn parse_main_pid(text: &str) -> Result<Option<i32>, String> {
    for line in text.lines() {
        let Some(v) = line.strip_prefix("MainPID=") else {
            continue;
        };
        return match v.trim() {
            "" | "0" => Ok(None),
            v => v.parse().map(Some).map_err(|_| format!("invalid pid {v:?}")),
        };
    }
    Ok(None)
}

/// The unit's main process, as telegraf asks systemd (`systemctl show UNIT`).
pub(super) fn systemd_main_pid(unit: &str, timeout: Duration) -> Result<Option<i32>, String> {
    let out = output(
        Command::new("systemctl").args(["show", "--property=MainPID", unit]),
        &[],
        timeout,
    )?;
    parse_main_pid(&out)
}

/// Unit files enabled, disabled or static matching `patterns` (globs), as telegraf's filters
/// list them.
pub(super) fn systemd_unit_files(
    patterns: &[String],
    timeout: Duration,
) -> Result<Vec<String>, String> {
    let out = output(
        Command::new("systemctl")
            .args([
                "list-unit-files",
                "--no-legend",
                "--no-pager",
                "--state=enabled,disabled,static",
            ])
            .args(patterns),
        &[],
        timeout,
    )?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// One line of `supervisorctl status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SupervisorUnit {
    pub name: String,
    pub status: String,
    /// RUNNING: the program's process.
    pub pid: Option<i32>,
    /// RUNNING: as supervisorctl prints it (`0:01:02`, `1 day, 0:01:02` gives `day,` as
    /// telegraf's field split does).
    pub uptime: Option<String>,
    /// FATAL, EXITED, BACKOFF, STOPPING: the rest of the line.
    pub error: Option<String>,
}

/// `supervisorctl status` output: `name STATUS pid 123, uptime 0:00:05` and the like.
pub(crate) fn parse_supervisor_status(text: &str) -> Vec<SupervisorUnit> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 2 {
            continue;
        }
        let mut u = SupervisorUnit {
            name: f[0].to_owned(),
            status: f[1].to_owned(),
            pid: None,
            uptime: None,
            error: None,
        };
        match f[1] {
            "FATAL" | "EXITED" | "BACKOFF" | "STOPPING" => u.error = Some(f[2..].join(" ")),
            "RUNNING" => {
                u.pid = f.get(3).and_then(|p| p.trim_end_matches(',').parse().ok());
                u.uptime = f.get(5).map(|s| (*s).to_owned());
            }
            _ => {}
        }
        out.push(u);
    }
    out
}

/// `supervisorctl status UNIT...` (exit 3: some unit is not running, still an answer).
pub(super) fn supervisor_status(
    units: &[String],
    timeout: Duration,
) -> Result<Vec<SupervisorUnit>, String> {
    let out = output(
        Command::new("supervisorctl").arg("status").args(units),
        &[3],
        timeout,
    )
        .map_err(|e| format!("failed to execute 'supervisorctl': {e}"))?;
    Ok(parse_supervisor_status(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemctl_show_main_pid() {
        // `systemctl show --property=MainPID` prints the one line; plain `show` prints it among
        // the others.
        assert_eq!(parse_main_pid("MainPID=624\n"), Ok(Some(624)));
        assert_eq!(parse_main_pid("Id=a.service\nMainPID=7\nType=simple\n"), Ok(Some(7)));
        assert_eq!(parse_main_pid("Type=simple\nMainPID=0\n"), Ok(None));
        assert_eq!(parse_main_pid("MainPID=\n"), Ok(None));
        assert!(parse_main_pid("MainPID=x\n").is_err());
    }

    #[test]
    fn supervisorctl_status_lines() {
        let text = include_str!("../../../tests/fixtures/procstat/supervisorctl_status");
        let u = parse_supervisor_status(text);
        assert_eq!(u.len(), 3, "{u:?}");
        assert_eq!(u[0].status, "RUNNING");
        assert!(u[0].pid.is_some() && u[0].uptime.is_some());
        assert_eq!(u[1].status, "STOPPED");
        assert_eq!((u[1].pid, &u[1].error), (None, &None));
        assert_eq!(u[2].status, "FATAL");
        assert!(u[2].error.as_deref().unwrap().contains("Exited too quickly"));
        assert!(parse_supervisor_status("x\n\nweb RUNNING\n")[0].pid.is_none());
    }

    #[test]
    fn a_command_that_hangs_is_killed() {
        let t = Instant::now();
        let e = output(Command::new("sleep").arg("30"), &[], Duration::from_millis(100));
        assert!(e.unwrap_err().contains("did not answer"));
        assert!(t.elapsed() < Duration::from_secs(10));
        let e = output(Command::new("sh").args(["-c", "echo no >&2; exit 4"]), &[3], Duration::from_secs(5));
        assert!(e.unwrap_err().contains("no"));
        let ok = output(Command::new("sh").args(["-c", "echo yes; exit 3"]), &[3], Duration::from_secs(5));
        assert_eq!(ok.unwrap(), "yes\n");
    }
}
