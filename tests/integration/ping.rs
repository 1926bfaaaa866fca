//! `ping`: real ICMP echo to loopback addresses with raw sockets, with unprivileged datagram
//! sockets inside a network namespace of our own, to an address that never answers, and with
//! neither socket kind allowed. Tests run as root (they create namespaces).

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::harness::*;

/// A network namespace that is deleted when dropped, also when the test fails.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Netns {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "ma-ping-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let ns = Netns { name };
        ns.sh(&["ip", "netns", "add", &ns.name], false);
        ns.sh(&["ip", "link", "set", "lo", "up"], true);
        ns
    }

    /// Runs `args` (inside the namespace if `inside`); panics on failure.
    fn sh(&self, args: &[&str], inside: bool) {
        let mut full: Vec<&str> = Vec::new();
        if inside {
            full.extend(["ip", "netns", "exec", &self.name]);
        }
        full.extend(args);
        let out = Command::new(full[0])
            .args(&full[1..])
            .output()
            .expect("run ip");
        assert!(
            out.status.success(),
            "{full:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn ping_group_range(&self, range: &str) {
        self.sh(
            &[
                "sysctl",
                "-w",
                &format!("net.ipv4.ping_group_range={range}"),
            ],
            true,
        );
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A command running the agent inside `ns` (as user nobody without capabilities if
/// `unprivileged`) on `config`, written where nobody can read it; keep the directory alive.
fn agent_in(ns: &Netns, unprivileged: bool, config: &str) -> (Command, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, config).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.name]);
    if unprivileged {
        cmd.args([
            "setpriv",
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
        ]);
    }
    cmd.arg(agent_bin()).arg("--config").arg(&path);
    (cmd, dir)
}

/// `--once` inside `ns`: (success, stdout lines, stderr).
fn once_in(ns: &Netns, unprivileged: bool, config: &str) -> (bool, Vec<String>, String) {
    let (mut cmd, _dir) = agent_in(ns, unprivileged, config);
    let out = cmd
        .arg("--once")
        .stdin(Stdio::null())
        .output()
        .expect("run agent in namespace");
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    (
        out.status.success(),
        stdout.lines().map(str::to_owned).collect(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ping_lines(lines: &[String]) -> Vec<Line> {
    parse_all(lines)
        .into_iter()
        .filter(|l| l.measurement == "ping")
        .collect()
}

fn by_url<'a>(lines: &'a [Line], url: &str) -> &'a Line {
    lines
        .iter()
        .find(|l| l.tag("url") == Some(url))
        .unwrap_or_else(|| panic!("no ping line for {url}: {lines:?}"))
}

/// Every target answered all `count` requests with a sane loopback RTT.
fn assert_healthy(l: &Line, count: i64) {
    let url = l.tag("url").unwrap();
    assert_eq!(l.int("result_code"), Some(0), "{url}: {l:?}");
    assert_eq!(l.int("packets_transmitted"), Some(count), "{url}");
    assert_eq!(l.int("packets_received"), Some(count), "{url}");
    assert_eq!(l.float("percent_packet_loss"), Some(0.0), "{url}");
    assert_eq!(l.int("ttl"), Some(64), "{url}");
    for f in [
        "minimum_response_ms",
        "average_response_ms",
        "maximum_response_ms",
        "median_response_ms",
        "p95_response_ms",
    ] {
        let v = l.float(f).unwrap_or_else(|| panic!("{url}: no {f}"));
        assert!(v > 0.0 && v < 10.0, "{url}: {f} = {v} ms");
    }
    assert!(l.float("standard_deviation_ms").is_some_and(|v| v >= 0.0));
    assert!(l.float("jitter_ms").is_some_and(|v| v >= 0.0));
}

#[test]
fn ping_loopback_with_raw_sockets() {
    let (status, lines, stderr) = run_once(
        "[[inputs.ping]]\n  urls = [\"127.0.0.1\", \"127.0.0.2\", \"::1\"]\n  count = 3\n  \
         ping_interval = 0.2\n  socket = \"raw\"\n  percentiles = [50, 99]\n",
    );
    assert!(status.success(), "{stderr}");
    let pings = ping_lines(&lines);
    assert_eq!(pings.len(), 3, "{lines:?}");
    for url in ["127.0.0.1", "127.0.0.2", "::1"] {
        let l = by_url(&pings, url);
        assert_healthy(l, 3);
        assert!(l.float("percentile99_ms").is_some());
    }
    assert!(!stderr.contains("E!") && !stderr.contains("W!"), "{stderr}");
    influx().assert_accepts(&lines);
}

#[test]
fn ping_with_unprivileged_datagram_sockets_in_a_namespace() {
    let ns = Netns::new();
    ns.ping_group_range("0 2147483647");
    // As user nobody without capabilities a raw socket is impossible: an answer proves the
    // datagram path (forced here, and chosen by "auto").
    for mode in ["datagram", "auto"] {
        let config = format!(
            "[[inputs.ping]]\n  urls = [\"127.0.0.1\", \"::1\", \"localhost\"]\n  count = 2\n  \
             ping_interval = 0.2\n  size = 1400\n  socket = \"{mode}\"\n"
        );
        let (ok, lines, stderr) = once_in(&ns, true, &config);
        assert!(ok, "{stderr}");
        let pings = ping_lines(&lines);
        // Host names are resolved (IPv4 preferred) and tagged as written.
        for url in ["127.0.0.1", "::1", "localhost"] {
            assert_healthy(by_url(&pings, url), 2);
        }
        influx().assert_accepts(&lines);
    }
}

#[test]
fn unreachable_target_is_total_loss_without_delaying_others() {
    let ns = Netns::new();
    // A veth pair with both ends in the namespace and a permanent neighbour entry for
    // 10.213.0.2 whose MAC address nobody has: requests go out on v0, v1 drops them (not its
    // address), no ARP failure or ICMP error is involved, and nothing leaves the namespace.
    ns.sh(
        &[
            "ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1",
        ],
        true,
    );
    ns.sh(&["ip", "addr", "add", "10.213.0.1/24", "dev", "v0"], true);
    ns.sh(&["ip", "link", "set", "v0", "up"], true);
    ns.sh(&["ip", "link", "set", "v1", "up"], true);
    ns.sh(
        &[
            "ip",
            "neigh",
            "add",
            "10.213.0.2",
            "lladdr",
            "02:00:00:00:00:02",
            "dev",
            "v0",
            "nud",
            "permanent",
        ],
        true,
    );
    let config = "[[inputs.ping]]\n  urls = [\"10.213.0.2\", \"127.0.0.1\", \"no-such-host.invalid\"]\n  count = 3\n  \
                  ping_interval = 0.2\n  timeout = 0.5\n  socket = \"raw\"\n";
    // The reference, in the same run and namespace: the same gather without the dead target.
    let start = std::time::Instant::now();
    let (ok, _, stderr) = once_in(&ns, false, &config.replace("\"10.213.0.2\", ", ""));
    let reference = start.elapsed();
    assert!(ok, "{stderr}");
    let start = std::time::Instant::now();
    let (ok, lines, stderr) = once_in(&ns, false, config);
    let took = start.elapsed();
    assert!(ok, "{stderr}");
    let pings = ping_lines(&lines);
    let dead = by_url(&pings, "10.213.0.2");
    assert_eq!(dead.int("result_code"), Some(1), "{dead:?}");
    assert_eq!(dead.int("packets_transmitted"), Some(3));
    assert_eq!(dead.int("packets_received"), Some(0));
    assert_eq!(dead.float("percent_packet_loss"), Some(100.0));
    assert_eq!(dead.float("average_response_ms"), None);
    assert_healthy(by_url(&pings, "127.0.0.1"), 3);
    // A name that does not resolve: telegraf's error shape (result_code only), one warning.
    let unknown = by_url(&pings, "no-such-host.invalid");
    assert_eq!(unknown.fields.len(), 1, "{unknown:?}");
    assert_eq!(unknown.int("result_code"), Some(2));
    assert_eq!(
        stderr
            .matches("W! [inputs.ping] no-such-host.invalid")
            .count(),
        1,
        "{stderr}"
    );
    // Last request at ~0.4 s plus its 0.5 s timeout: the dead target adds about 0.5 s to the
    // reference's 0.4 s of requests; waiting count × timeout (1.5 s) would add 1.1 s. 0.8 s
    // splits the two and leaves 0.3 s for two runs' different start-up on a loaded machine.
    assert!(
        took < reference + std::time::Duration::from_millis(800),
        "took {took:?}, {reference:?} without the dead target"
    );
    assert!(
        !stderr.contains("E!"),
        "lost packets are data, not errors: {stderr}"
    );
    influx().assert_accepts(&lines);
}

#[test]
fn no_icmp_permission_is_one_clear_error_and_result_code_2() {
    let ns = Netns::new();
    ns.ping_group_range("1 0");
    let config = "[agent]\n  interval = \"1s\"\n  round_interval = false\n\
                  [[inputs.ping]]\n  urls = [\"127.0.0.1\", \"127.0.0.2\"]\n  timeout = 0.2\n";
    let (mut cmd, _dir) = agent_in(&ns, true, config);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run agent");
    // Several rounds, then stdin EOF (telegraf's stop) ends the agent.
    std::thread::sleep(std::time::Duration::from_millis(3500));
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("agent output");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
    let pings = ping_lines(&lines);
    assert!(
        pings.len() >= 4,
        "expected several rounds: {lines:?}\n{stderr}"
    );
    for l in &pings {
        assert_eq!(l.int("result_code"), Some(2), "{l:?}");
        assert_eq!(l.fields.len(), 1, "only result_code: {l:?}");
    }
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("E!")).collect();
    assert_eq!(
        errors.len(),
        1,
        "one error line, not one per round: {stderr}"
    );
    assert!(
        errors[0].contains("net.ipv4.ping_group_range") && errors[0].contains("CAP_NET_RAW"),
        "{stderr}"
    );
    influx().assert_accepts(&lines);
}

/// ICMP sockets the agent holds open: `socket:[inode]` links in /proc/PID/fd whose inode is
/// listed in /proc/net/raw{,6} or /proc/net/icmp{,6}.
fn icmp_socket_fds(pid: i32) -> usize {
    let mut inodes = std::collections::HashSet::new();
    for table in ["raw", "raw6", "icmp", "icmp6"] {
        let text = std::fs::read_to_string(format!("/proc/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            if let Some(inode) = line.split_whitespace().nth(9) {
                inodes.insert(format!("socket:[{inode}]"));
            }
        }
    }
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|p| inodes.contains(p.to_string_lossy().as_ref()))
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn instances_share_one_socket_per_family_across_reloads() {
    use std::time::Duration;
    // internal samples at 70 ms while the ping rounds (a few µs each on loopback) run every
    // 500 ms, so most samples see no ping gather in flight.
    let cfg = "[agent]\n  interval = \"500ms\"\n  round_interval = false\n\
               [[inputs.ping]]\n  urls = [\"127.0.0.1\", \"::1\"]\n  timeout = 0.1\n  socket = \"raw\"\n\
               [[inputs.ping]]\n  urls = [\"127.0.0.2\", \"::1\"]\n  timeout = 0.1\n  socket = \"raw\"\n\
               [[inputs.internal]]\n  interval = \"70ms\"\n";
    let a = Agent::start(cfg);
    let pings = |l: &[String]| ping_lines(l).len();
    a.wait_for("ping rounds", Duration::from_secs(5), |l| pings(l) >= 8);
    // Two instances, two families: two sockets in all, not one per instance or target.
    assert_eq!(icmp_socket_fds(a.pid()), 2);
    let (fds0, threads0) = a.fds_and_threads();
    // Live tasks, as the minimum of the last ten reports: a gather in flight when `internal`
    // samples adds one, a leak raises every sample.
    let tasks = |a: &Agent| {
        parse_all(&a.lines())
            .iter()
            .rev()
            .filter(|l| l.measurement == "metrics_agent")
            .take(10)
            .filter_map(|l| l.int("tasks"))
            .min()
    };
    std::thread::sleep(Duration::from_millis(800));
    let tasks0 = tasks(&a).expect("tasks");
    for _ in 0..30 {
        a.signal(libc::SIGHUP);
        std::thread::sleep(Duration::from_millis(30));
    }
    let n = pings(&a.lines());
    a.wait_for("rounds after the reloads", Duration::from_secs(5), |l| {
        pings(l) >= n + 8
    });
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(icmp_socket_fds(a.pid()), 2, "sockets leaked across reloads");
    let (fds1, threads1) = a.fds_and_threads();
    assert_eq!(fds1, fds0, "fd count changed across 30 SIGHUPs");
    assert!(
        threads1 <= threads0 + 1,
        "threads grew {threads0} → {threads1}"
    );
    assert_eq!(
        tasks(&a),
        Some(tasks0),
        "live tasks changed across 30 SIGHUPs"
    );
    let lines = a.lines();
    let last: Vec<Line> = ping_lines(&lines).into_iter().rev().take(4).collect();
    for l in &last {
        assert_eq!(l.int("result_code"), Some(0), "{l:?}");
    }
    assert!(!a.stderr().contains("E!"), "{}", a.stderr());
    influx().assert_accepts(&lines);
}

/// telegraf's exec method with `binary`/`arguments`: the named program runs per URL and its
/// summary becomes the line (real iputils `ping` on loopback; a script standing in for another
/// ping shows `binary` is the program run; a missing program is result_code 2).
#[test]
fn exec_method_runs_the_named_binary_with_its_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("fake-ping");
    std::fs::write(
        &script,
        "#!/bin/sh\necho \"args: $*\" >&2\necho '64 bytes from x: icmp_seq=0 ttl=55 time=1.5 ms'\n\
         echo '4 packets transmitted, 3 packets received, 25.0% packet loss'\n\
         echo 'round-trip min/avg/max/stddev = 1.0/1.5/2.0/0.5 ms'\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let config = format!(
        "[[inputs.ping]]\n  urls = [\"127.0.0.1\"]\n  arguments = [\"-c\", \"3\", \"-i\", \"0.2\", \"-n\"]\n\
         [[inputs.ping]]\n  urls = [\"scripted\"]\n  binary = \"{}\"\n  count = 4\n\
         [[inputs.ping]]\n  urls = [\"nowhere\"]\n  binary = \"/nonexistent/ping\"\n\
         [[inputs.ping]]\n  method = \"native\"\n  binary = \"/nonexistent/ping\"\n  urls = [\"127.0.0.2\"]\n  count = 2\n  ping_interval = 0.2\n",
        script.display()
    );
    let (status, lines, stderr) = run_once(&config);
    assert!(status.success(), "{stderr}");
    let pings = ping_lines(&lines);
    let real = by_url(&pings, "127.0.0.1");
    assert_eq!(real.int("result_code"), Some(0), "{real:?}");
    assert_eq!(
        real.int("packets_transmitted"),
        Some(3),
        "the arguments' -c 3: {real:?}"
    );
    assert_eq!(real.int("packets_received"), Some(3));
    assert_eq!(real.int("ttl"), Some(64));
    assert!(real.float("average_response_ms").is_some_and(|v| v > 0.0));
    assert!(
        real.float("median_response_ms").is_none(),
        "exec has no per-reply RTTs"
    );

    let s = by_url(&pings, "scripted");
    assert_eq!(
        s.int("result_code"),
        Some(1),
        "exit status 1 with a summary: {s:?}"
    );
    assert_eq!(s.int("packets_transmitted"), Some(4));
    assert_eq!(s.int("packets_received"), Some(3));
    assert_eq!(s.float("percent_packet_loss"), Some(25.0));
    assert_eq!(s.int("ttl"), Some(55));
    assert_eq!(s.float("standard_deviation_ms"), Some(0.5));

    let missing = by_url(&pings, "nowhere");
    assert_eq!(missing.int("result_code"), Some(2), "{missing:?}");
    assert!(stderr.contains("/nonexistent/ping"), "{stderr}");

    // method = "native" ignores `binary`, as telegraf does.
    assert_healthy(by_url(&pings, "127.0.0.2"), 2);
    influx().assert_accepts(&lines);
}
