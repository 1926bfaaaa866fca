//! procstat as telegraf's sample.conf configures it, against real processes: `limits`,
//! `sockets` (the test process's own sockets on loopback), filters with children and levels,
//! supervisord programs (the Debian `supervisor` package), cgroup globs, systemd units and
//! `HOST_PROC`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::{UnixDatagram, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// A child process killed and reaped on drop, with its PID in a file of its own.
pub(crate) struct Sleeper {
    child: Child,
    dir: tempfile::TempDir,
}

impl Sleeper {
    /// `sleep 300`.
    pub(crate) fn start() -> Sleeper {
        Self::shell("exec sleep 300")
    }

    /// `sh -c SCRIPT`, once the shell has exec'd or started what the script says.
    pub(crate) fn shell(script: &str) -> Sleeper {
        let child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn sh");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pid"), format!("{}\n", child.id())).unwrap();
        let s = Sleeper { child, dir };
        s.wait_until("the script started", |pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            comm.trim() == "sleep" || !children(pid).is_empty()
        });
        s
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn pid_file(&self) -> PathBuf {
        self.dir.path().join("pid")
    }

    fn wait_until(&self, what: &str, ok: impl Fn(u32) -> bool) {
        let start = Instant::now();
        while !ok(self.pid()) {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{what}: timed out"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        for c in children(self.child.id()) {
            // SAFETY: kill(2) on a PID we started (the shell's child).
            unsafe { libc::kill(c, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Children of `pid` as the kernel lists them.
fn children(pid: u32) -> Vec<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|c| c.parse().ok())
        .collect()
}

/// Sockets of this test process on loopback: a TCP listener and a connection through it that
/// sent 1000 bytes and received 10, a connected UDP socket, a unix stream listener with a
/// connection, and a unix datagram socket. The PID file holds this process's PID.
pub(crate) struct Sockets {
    pub tcp_port: u16,
    pub client_port: u16,
    pub udp_port: u16,
    pub unix_path: PathBuf,
    _keep: (TcpListener, TcpStream, TcpStream, UdpSocket),
    _unix: (UnixListener, UnixStream, UnixStream, UnixDatagram),
    dir: tempfile::TempDir,
}

impl Sockets {
    pub(crate) fn start() -> Sockets {
        let dir = tempfile::tempdir().unwrap();
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (mut a, _) = l.accept().unwrap();
        c.write_all(&[b'x'; 1000]).unwrap();
        let mut buf = [0u8; 1000];
        a.read_exact(&mut buf).unwrap();
        a.write_all(&[b'y'; 10]).unwrap();
        c.read_exact(&mut buf[..10]).unwrap();
        let u = UdpSocket::bind("127.0.0.1:0").unwrap();
        u.connect(u.local_addr().unwrap()).unwrap();
        let unix_path = dir.path().join("stream.sock");
        let ul = UnixListener::bind(&unix_path).unwrap();
        let uc = UnixStream::connect(&unix_path).unwrap();
        let (ua, _) = ul.accept().unwrap();
        let ud = UnixDatagram::bind(dir.path().join("dgram.sock")).unwrap();
        std::fs::write(dir.path().join("pid"), std::process::id().to_string()).unwrap();
        Sockets {
            tcp_port: l.local_addr().unwrap().port(),
            client_port: c.local_addr().unwrap().port(),
            udp_port: u.local_addr().unwrap().port(),
            unix_path,
            _keep: (l, c, a, u),
            _unix: (ul, uc, ua, ud),
            dir,
        }
    }

    pub(crate) fn pid_file(&self) -> PathBuf {
        self.dir.path().join("pid")
    }
}

/// `metrics-agent --once` on `config` in `cwd` with `env`: (success, lines, stderr).
fn once_in(config: &str, cwd: &Path, env: &[(&str, &str)]) -> (bool, Vec<Line>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(agent_bin())
        .arg("--config")
        .arg(&path)
        .arg("--once")
        .current_dir(cwd)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
    influx().assert_accepts(&lines);
    (
        out.status.success(),
        parse_all(&lines),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn once(config: &str) -> (Vec<Line>, String) {
    let (ok, lines, err) = once_in(config, Path::new("/"), &[]);
    assert!(ok, "{err}");
    (lines, err)
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn of<'a>(lines: &'a [Line], m: &str) -> Vec<&'a Line> {
    lines.iter().filter(|l| l.measurement == m).collect()
}

#[test]
fn procstat_sockets_are_the_process_sockets_with_the_kernels_counters() {
    let s = Sockets::start();
    let pid = i64::from(std::process::id());
    let (lines, err) = once(&format!(
        "[[inputs.procstat]]\n  pid_file = \"{}\"\n  properties = [\"sockets\"]\n\
         tag_with = [\"protocol\", \"src_port\"]\n",
        s.pid_file().display()
    ));
    let socks = of(&lines, "procstat_socket");
    let find = |proto: &str, port: u16| {
        socks
            .iter()
            .find(|l| {
                l.tag("protocol") == Some(proto) && l.tag("src_port") == Some(&port.to_string())
            })
            .unwrap_or_else(|| panic!("no {proto} socket on port {port}: {socks:?} {err}"))
    };
    let listener = find("tcp4", s.tcp_port);
    assert_eq!(listener.string("state").as_deref(), Some("listen"));
    assert_eq!(listener.string("src").as_deref(), Some("127.0.0.1"));
    assert_eq!(listener.int("pid"), Some(pid));
    assert_eq!(listener.tag("process_name").map(str::is_empty), Some(false));
    let client = find("tcp4", s.client_port);
    assert_eq!(client.string("state").as_deref(), Some("established"));
    assert_eq!(client.int("dest_port"), Some(i64::from(s.tcp_port)));
    assert_eq!(client.int("bytes_sent"), Some(1000));
    assert_eq!(client.int("bytes_received"), Some(10));
    assert_eq!(client.int("retransmits"), Some(0));
    let udp = find("udp4", s.udp_port);
    assert_eq!(udp.string("state").as_deref(), Some("established"));
    assert_eq!(udp.field("bytes_sent"), None, "tcp_info is TCP's");
    let path = s.unix_path.display().to_string();
    let unix: Vec<_> = socks
        .iter()
        .filter(|l| l.tag("protocol") == Some("unix"))
        .collect();
    let ul = unix
        .iter()
        .find(|l| l.string("name").as_deref() == Some(path.as_str()))
        .unwrap_or_else(|| panic!("no unix listener {path}: {unix:?}"));
    assert_eq!(ul.string("state").as_deref(), Some("listen"));
    assert_eq!(ul.string("type").as_deref(), Some("stream"));
    let dgram = unix
        .iter()
        .find(|l| l.string("type").as_deref() == Some("dgram"))
        .expect("the datagram socket");
    assert_eq!(dgram.string("state").as_deref(), Some("close"));
    // One line per socket: the connected stream pair shows its peer inode.
    let peers: Vec<i64> = unix.iter().filter_map(|l| l.int("peer")).collect();
    assert!(peers.len() >= 2, "{unix:?}");
    // The procstat line is there too, and a lookup.
    assert_eq!(of(&lines, "procstat").len(), 1);
    assert_eq!(of(&lines, "procstat_lookup")[0].int("running"), Some(1));

    // socket_protocols narrows the dump.
    let (lines, _) = once(&format!(
        "[[inputs.procstat]]\n  pid_file = \"{}\"\n  properties = [\"sockets\"]\n\
         socket_protocols = [\"udp4\"]\n",
        s.pid_file().display()
    ));
    let socks = of(&lines, "procstat_socket");
    assert!(!socks.is_empty());
    assert!(
        socks
            .iter()
            .all(|l| l.string("protocol").as_deref() == Some("udp4"))
    );
}

#[test]
fn procstat_limits_are_the_processes_rlimits() {
    let p = Sleeper::shell("ulimit -n 321 && ulimit -s 4096 && exec sleep 300");
    let (lines, _) = once(&format!(
        "[[inputs.procstat]]\n  pid_file = \"{}\"\n  properties = [\"limits\"]\n  prefix = \"p\"\n",
        p.pid_file().display()
    ));
    let l = of(&lines, "procstat")[0];
    assert_eq!(l.int("p_rlimit_num_fds_soft"), Some(321));
    assert_eq!(l.int("p_rlimit_num_fds_hard"), Some(321));
    assert_eq!(l.int("p_rlimit_memory_stack_soft"), Some(4096 * 1024));
    // Unlimited is the largest int, as telegraf writes it.
    assert_eq!(l.int("p_rlimit_cpu_time_soft"), Some(i64::MAX));
    let fds = std::fs::read_dir(format!("/proc/{}/fd", p.pid()))
        .unwrap()
        .count();
    assert_eq!(l.int("p_num_fds"), Some(fds as i64));
    assert_eq!(
        l.int("p_nice_priority"),
        Some(20),
        "getpriority's 20 - nice"
    );
    assert!(
        l.field("p_file_locks").is_none(),
        "telegraf has no use for file locks"
    );
    assert!(l.field("p_memory_usage").is_none(), "memory not asked for");
    // pid is never prefixed.
    assert_eq!(l.int("pid"), Some(i64::from(p.pid())));
    assert!(l.field("p_pid").is_none());
}

#[test]
fn procstat_filter_recurses_into_children_with_levels() {
    let p = Sleeper::shell("sleep 300 & sleep 300 & wait");
    let start = Instant::now();
    let exec_done = |pid: &i32| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    };
    while children(p.pid()).len() < 2 || !children(p.pid()).iter().all(exec_done) {
        assert!(start.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(10));
    }
    let kids = children(p.pid());
    let me = Command::new("id").arg("-un").output().unwrap().stdout;
    let me = String::from_utf8(me).unwrap();
    let user_glob = format!("{}*", &me.trim()[..1]);
    let (lines, _) = once(&format!(
        "[[inputs.procstat]]\n  tag_with = [\"level\"]\n\
         [[inputs.procstat.filter]]\n  name = \"tree\"\n  pid_files = [\"{pf}\"]\n\
         recursion_depth = -1\n\
         [[inputs.procstat.filter]]\n  name = \"sleeps\"\n  process_names = [\"sle?p\"]\n\
         patterns = [\"^sleep 300$\"]\n  users = [\"{user_glob}\"]\n  executables = [\"*/sleep\"]\n",
        pf = p.pid_file().display()
    ));
    let procs = of(&lines, "procstat");
    let tree: Vec<_> = procs
        .iter()
        .filter(|l| l.tag("filter") == Some("tree"))
        .collect();
    assert_eq!(tree.len(), 3, "{tree:?}");
    let shell = tree
        .iter()
        .find(|l| l.int("pid") == Some(i64::from(p.pid())))
        .unwrap();
    assert_eq!(shell.tag("level"), Some("0"));
    assert_eq!(shell.tag("parent_pid"), None);
    for k in &kids {
        let c = tree
            .iter()
            .find(|l| l.int("pid") == Some(i64::from(*k)))
            .unwrap();
        assert_eq!(c.tag("level"), Some("1"));
        assert_eq!(c.tag("parent_pid"), Some(p.pid().to_string().as_str()));
        assert_eq!(
            c.tag("pidfile"),
            Some(p.pid_file().display().to_string().as_str())
        );
    }
    let lookups = of(&lines, "procstat_lookup");
    let tree_lookups: Vec<_> = lookups
        .iter()
        .filter(|l| l.tag("filter") == Some("tree"))
        .collect();
    let levels: Vec<(Option<i64>, Option<i64>)> = tree_lookups
        .iter()
        .map(|l| (l.int("level"), l.int("pid_count")))
        .collect();
    assert_eq!(
        levels,
        vec![(Some(0), Some(1)), (Some(1), Some(2)), (None, Some(3))]
    );
    assert!(tree_lookups.iter().all(|l| l.tag("pid_finder").is_none()));
    // Every `sleep 300` of this machine run by our user, our two among them, and nothing else.
    let sleeps: Vec<_> = procs
        .iter()
        .filter(|l| l.tag("filter") == Some("sleeps"))
        .collect();
    for k in &kids {
        assert!(
            sleeps.iter().any(|l| l.int("pid") == Some(i64::from(*k))),
            "{sleeps:?}"
        );
    }
    assert!(
        sleeps
            .iter()
            .all(|l| l.tag("process_name") == Some("sleep"))
    );
}

/// A supervisord of the test's own (Debian's `supervisor`), its socket and config in a temporary
/// directory, where supervisorctl finds the config when run from it (as from a shell there).
struct Supervisord {
    dir: tempfile::TempDir,
}

impl Supervisord {
    fn start() -> Supervisord {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let conf = format!(
            "[unix_http_server]\nfile={d}/sock\n\
             [supervisord]\nlogfile={d}/log\npidfile={d}/pid\nchildlogdir={d}\n\
             [rpcinterface:supervisor]\n\
             supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\
             [supervisorctl]\nserverurl=unix://{d}/sock\n\
             [program:web]\ncommand=sh -c 'sleep 300 & wait'\nstartsecs=0\n\
             stopasgroup=true\nkillasgroup=true\n\
             [program:idle]\ncommand=sleep 300\nautostart=false\n"
        );
        std::fs::write(dir.path().join("supervisord.conf"), conf).unwrap();
        let st = Command::new("supervisord")
            .arg("-c")
            .arg(dir.path().join("supervisord.conf"))
            .status()
            .expect("supervisord (Debian package supervisor) installed");
        assert!(st.success());
        let s = Supervisord { dir };
        let start = Instant::now();
        loop {
            let out = s.ctl(&["status", "web"]);
            if out.contains("RUNNING") && s.web_child().is_some() {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "web never ran: {out}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn ctl(&self, args: &[&str]) -> String {
        let out = Command::new("supervisorctl")
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// (program's PID, its child's PID).
    fn web_child(&self) -> Option<(u32, i32)> {
        let out = self.ctl(&["status", "web"]);
        let pid: u32 = out.split("pid ").nth(1)?.split(',').next()?.parse().ok()?;
        Some((pid, *children(pid).first()?))
    }
}

impl Drop for Supervisord {
    fn drop(&mut self) {
        self.ctl(&["shutdown"]);
    }
}

#[test]
fn procstat_supervisor_units_are_the_programs_children() {
    let s = Supervisord::start();
    let (main, child) = s.web_child().unwrap();
    let config = "[[inputs.procstat]]\n  supervisor_units = [\"web\", \"idle\"]\n\
                  [[inputs.procstat]]\n  [[inputs.procstat.filter]]\n    name = \"sv\"\n\
                  supervisor_units = [\"web\", \"idle\"]\n";
    let (ok, lines, err) = once_in(config, s.dir.path(), &[]);
    assert!(ok, "{err}");
    let procs = of(&lines, "procstat");
    let old = procs
        .iter()
        .find(|l| l.tag("filter").is_none())
        .expect(&err);
    assert_eq!(old.int("pid"), Some(i64::from(child)));
    assert_eq!(old.tag("supervisor_unit"), Some("web"));
    assert_eq!(old.tag("status"), Some("RUNNING"));
    assert!(old.tag("uptimes").is_some());
    let lookup = of(&lines, "procstat_lookup");
    let old_lookup = lookup
        .iter()
        .find(|l| l.tag("pid_finder").is_some())
        .unwrap();
    assert_eq!(old_lookup.tag("supervisor_unit"), Some("web;idle"));
    assert_eq!(old_lookup.int("pid_count"), Some(1));
    let new = procs
        .iter()
        .find(|l| l.tag("filter") == Some("sv"))
        .unwrap();
    assert_eq!(new.int("pid"), Some(i64::from(child)));
    assert_eq!(new.tag("parent_pid"), Some(main.to_string().as_str()));
    let new_lookup = lookup
        .iter()
        .find(|l| l.tag("filter") == Some("sv"))
        .unwrap();
    assert_eq!(new_lookup.int("pid_count"), Some(1));

    // Without supervisord's config in reach, supervisorctl fails: a lookup error.
    let (ok, lines, err) = once_in(config, Path::new("/"), &[]);
    assert!(ok);
    let lookup = of(&lines, "procstat_lookup");
    assert!(
        lookup
            .iter()
            .all(|l| l.tag("result") == Some("lookup_error")),
        "{lookup:?}"
    );
    assert!(err.contains("supervisorctl"), "{err}");
}

#[test]
fn procstat_systemd_unit_is_the_main_pid() {
    let config = "[[inputs.procstat]]\n  systemd_unit = \"procstat-test-none.service\"\n";
    if !Path::new("/run/systemd/system").exists() {
        // No systemd here: systemctl cannot answer, which is a lookup error saying so.
        let (lines, err) = once(config);
        let l = of(&lines, "procstat_lookup");
        assert_eq!(l[0].tag("result"), Some("lookup_error"));
        assert!(err.contains("systemctl"), "{err}");
        return;
    }
    // A transient unit: its MainPID only, and a stopped unit is zero processes.
    let unit = format!("procstat-test-{}.service", std::process::id());
    let st = Command::new("systemd-run")
        .args(["--unit", &unit, "sh", "-c", "sleep 300 & exec sleep 301"])
        .status()
        .unwrap();
    assert!(st.success());
    let start = Instant::now();
    loop {
        let out = Command::new("systemctl")
            .args(["show", "--property=MainPID", "--value", &unit])
            .output()
            .unwrap();
        let pid = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmdline.starts_with(b"sleep\x00301") {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the unit never ran"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (lines, _) = once(&format!(
        "[[inputs.procstat]]\n  systemd_unit = \"{unit}\"\n"
    ));
    let _ = Command::new("systemctl").args(["stop", &unit]).status();
    let procs = of(&lines, "procstat");
    assert_eq!(procs.len(), 1, "{procs:?}");
    assert_eq!(procs[0].string("cmdline").as_deref(), Some("sleep 301"));
    let (lines, _) = once(config);
    let l = of(&lines, "procstat_lookup");
    assert_eq!(
        (l[0].tag("result"), l[0].int("pid_count")),
        (Some("success"), Some(0))
    );
}

#[test]
fn procstat_cgroup_globs_name_each_cgroup() {
    let p = Sleeper::start();
    // A cgroup of our own under a hierarchy that takes new ones (v1 `pids`, else v2).
    let made = [
        "/sys/fs/cgroup/pids",
        "/sys/fs/cgroup/unified",
        "/sys/fs/cgroup",
    ]
    .iter()
    .map(|root| format!("{root}/procstat-test-{}-{}", std::process::id(), now_ns()))
    .find(|dir| {
        std::fs::create_dir(dir).is_ok()
            && (Path::new(&format!("{dir}/cgroup.procs")).exists()
                || std::fs::remove_dir(dir).is_err())
    });
    let dir = made.expect("no cgroup hierarchy takes a new cgroup here");
    struct Rm(String);
    impl Drop for Rm {
        fn drop(&mut self) {
            let parent = Path::new(&self.0).parent().unwrap().join("cgroup.procs");
            for pid in std::fs::read_to_string(format!("{}/cgroup.procs", self.0))
                .unwrap_or_default()
                .lines()
            {
                let _ = std::fs::write(&parent, pid);
            }
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _rm = Rm(dir.clone());
    std::fs::write(format!("{dir}/cgroup.procs"), p.pid().to_string()).unwrap();
    // This process's cgroups only, whatever else runs.
    let glob = format!("{}*", &dir[..dir.rfind('-').unwrap() + 1]);
    let (lines, _) = once(&format!("[[inputs.procstat]]\n  cgroup = \"{glob}\"\n"));
    let procs = of(&lines, "procstat");
    assert_eq!(procs.len(), 1, "{procs:?}");
    assert_eq!(procs[0].int("pid"), Some(i64::from(p.pid())));
    assert_eq!(procs[0].tag("cgroup"), Some(glob.as_str()));
    assert_eq!(procs[0].tag("cgroup_full"), Some(dir.as_str()));
    let l = of(&lines, "procstat_lookup");
    assert_eq!(l[0].tag("cgroup_full"), Some(dir.as_str()));
    assert_eq!(l[0].int("pid_count"), Some(1));
}

#[test]
fn procstat_reads_proc_where_host_proc_says() {
    let p = Sleeper::start();
    let config = format!(
        "[[inputs.procstat]]\n  pid_file = \"{}\"\n  pid_finder = \"native\"\n\
         [[inputs.procstat]]\n  exe = \"^sleep$\"\n",
        p.pid_file().display()
    );
    // HOST_PROC pointing at a link to /proc: the same processes.
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("proc");
    std::os::unix::fs::symlink("/proc", &link).unwrap();
    let (ok, lines, err) = once_in(
        &config,
        Path::new("/"),
        &[("HOST_PROC", link.to_str().unwrap())],
    );
    assert!(ok, "{err}");
    let procs = of(&lines, "procstat");
    assert!(
        procs
            .iter()
            .any(|l| l.tag("pidfile").is_some() && l.int("pid") == Some(i64::from(p.pid())))
    );
    assert!(
        procs
            .iter()
            .any(|l| l.tag("exe").is_some() && l.int("pid") == Some(i64::from(p.pid())))
    );
    // HOST_PROC somewhere else: the PID file's process is not found there, and the scan for
    // `exe` fails naming the place.
    let empty = tempfile::tempdir().unwrap();
    let none = empty.path().join("none");
    let (ok, lines, err) = once_in(
        &config,
        Path::new("/"),
        &[("HOST_PROC", none.to_str().unwrap())],
    );
    assert!(ok, "{err}");
    assert!(of(&lines, "procstat").is_empty(), "{lines:?}");
    let lookups = of(&lines, "procstat_lookup");
    let pf = lookups.iter().find(|l| l.tag("pidfile").is_some()).unwrap();
    assert_eq!((pf.int("pid_count"), pf.int("running")), (Some(1), Some(0)));
    assert!(
        lookups
            .iter()
            .any(|l| l.tag("result") == Some("lookup_error")),
        "{lookups:?}"
    );
    assert!(err.contains(none.to_str().unwrap()), "{err}");
}
