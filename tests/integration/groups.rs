//! Probe groups against a real PostgreSQL (Debian's `postgresql`): each test makes its own
//! throwaway cluster (a copy of one `initdb` made per test binary) on a free loopback port, and
//! runs two or three agents as separate processes whose `net_response` probe of a loopback
//! listener is in one group. Who probed when is read from the lines themselves: their timestamps
//! are the agents' own clock, the same clock the test reads when it kills or stops one.
//!
//! Timings: ttl 3s, renew 1s, db_timeout 0.4s, probe interval 200ms. Bounds allow `SLACK` more
//! than the design's figure for a loaded CI machine; every test prints what it measured.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::harness::{Agent, Line, parse_line, spawn_for_life_of_tests};
use crate::netprobes::free_port;

const TTL: Duration = Duration::from_secs(3);
const RENEW: Duration = Duration::from_secs(1);
const PROBE: Duration = Duration::from_millis(200);
/// Allowance over a bound for a loaded 2-core CI machine (scheduling, process start).
const SLACK: Duration = Duration::from_millis(1500);
const PASSWORD: &str = "s3cret-for-tests";

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

fn postgres_bin(name: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL not installed: tests/run.sh installs Debian's postgresql")
        .filter_map(|e| e.ok().map(|e| e.path().join("bin").join(name)))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found
        .pop()
        .unwrap_or_else(|| panic!("no {name} under /usr/lib/postgresql"))
}

fn postgres_ids() -> (u32, u32) {
    let name = std::ffi::CString::new("postgres").unwrap();
    // SAFETY: getpwnam returns a pointer to static storage or null; read at once.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "no postgres user: install Debian's postgresql"
    );
    // SAFETY: non-null, checked above.
    unsafe { ((*pw).pw_uid, (*pw).pw_gid) }
}

fn chown_postgres(p: &Path) {
    let (uid, gid) = postgres_ids();
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).expect("chown");
}

/// One `initdb` per test binary, copied by each test (initdb takes seconds, a copy does not).
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<tempfile::TempDir> = OnceLock::new();
    TEMPLATE
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            chown_postgres(dir.path());
            let data = dir.path().join("data");
            let st = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(postgres_bin("initdb"))
                .args(["-N", "-A", "trust", "-U", "postgres", "-D"])
                .arg(&data)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()
                .expect("initdb");
            assert!(
                st.status.success(),
                "initdb failed: {}",
                String::from_utf8_lossy(&st.stderr)
            );
            // The agents log in with a password over TCP (the password_file path is real);
            // the test itself uses the socket as the superuser.
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhost all postgres 127.0.0.1/32 trust\n\
                 host all all 127.0.0.1/32 scram-sha-256\n",
            )
            .expect("pg_hba");
            dir
        })
        .path()
}

/// A throwaway cluster; killed when dropped (and with the test binary).
struct Pg {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    pub password_file: PathBuf,
}

impl Pg {
    fn start() -> Pg {
        let dir = tempfile::tempdir().expect("tempdir");
        chown_postgres(dir.path());
        let st = Command::new("cp")
            .arg("-a")
            .arg(template().join("data"))
            .arg(dir.path().join("data"))
            .status()
            .expect("cp");
        assert!(st.success());
        std::fs::create_dir(dir.path().join("sock")).unwrap();
        chown_postgres(&dir.path().join("sock"));
        let password_file = dir.path().join("pg-password");
        std::fs::write(&password_file, format!("{PASSWORD}\n")).unwrap();
        let mut pg = Pg {
            dir,
            port: free_port(),
            child: None,
            password_file,
        };
        pg.run();
        pg.psql(&format!("CREATE ROLE agent LOGIN PASSWORD '{PASSWORD}'"));
        pg.psql("CREATE DATABASE agents OWNER agent");
        pg
    }

    /// Starts the server and waits until it answers.
    fn run(&mut self) {
        let (uid, gid) = postgres_ids();
        let mut cmd = Command::new(postgres_bin("postgres"));
        std::os::unix::process::CommandExt::uid(&mut cmd, uid);
        std::os::unix::process::CommandExt::gid(&mut cmd, gid);
        cmd.arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-p", &self.port.to_string(), "-k"])
            .arg(self.dir.path().join("sock"))
            .args([
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "max_connections=30",
                "-c",
                "shared_buffers=16MB",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        self.child = Some(spawn_for_life_of_tests(&mut cmd).expect("start postgres"));
        let start = Instant::now();
        loop {
            let ok = Command::new(postgres_bin("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .is_ok_and(|s| s.success());
            if ok {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "postgres did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fast shutdown (SIGINT): clients are disconnected, as in a restart of the service.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
            let _ = c.wait();
        }
    }

    fn psql(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-X", "-At", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-h"])
            .arg(self.dir.path().join("sock"))
            .args(["-p", &self.port.to_string(), "-d", "postgres", "-c", sql])
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "psql {sql:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// `token|holder` of group `g`.
    fn lease(&self) -> String {
        let out = Command::new("psql")
            .args(["-X", "-At", "-U", "postgres", "-h"])
            .arg(self.dir.path().join("sock"))
            .args([
                "-p",
                &self.port.to_string(),
                "-d",
                "agents",
                "-c",
                "SELECT token, holder FROM metrics_agent_lease WHERE grp = 'g'",
            ])
            .output()
            .expect("psql");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Pg {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A TCP listener that accepts and closes: the probed target.
fn target() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming() {
            drop(s);
        }
    });
    port
}

fn config(db_port: u16, pg: &Pg, id: &str, target: u16, mode: &str, extra: &str) -> String {
    format!(
        r#"[agent]
interval = "{probe}ms"
[agent.coordination]
postgres = "host=127.0.0.1 port={db_port} user=agent dbname=agents"
password_file = "{pw}"
agent_id = "{id}"
ttl = "3s"
renew_interval = "1s"
db_timeout = "400ms"
{extra}
[agent.coordination.groups]
g = "{mode}"
[[inputs.net_response]]
protocol = "tcp"
address = "127.0.0.1:{target}"
timeout = "1s"
group = "g"
"#,
        probe = PROBE.as_millis(),
        pw = pg.password_file.display(),
    )
}

/// The group's probe lines of one agent, as (timestamp ns).
fn probe_times(a: &Agent) -> Vec<i64> {
    a.lines()
        .iter()
        .filter(|l| l.starts_with("net_response,"))
        .map(|l| parse_line(l))
        .inspect(|l: &Line| assert_eq!(l.tag("probe_group"), Some("g"), "{l:?}"))
        .map(|l| l.timestamp)
        .collect()
}

fn wait_until(what: &str, limit: Duration, agents: &[&Agent], pred: impl Fn() -> bool) {
    let start = Instant::now();
    while !pred() {
        if start.elapsed() > limit {
            let logs: Vec<String> = agents.iter().map(|a| a.stderr()).collect();
            panic!(
                "timed out after {limit:?} waiting for {what}; logs:\n{}",
                logs.join("\n----\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `n` agents in group `g` and waits until one of them probes; returns them and the
/// leader's index.
fn start_group(pg_port: u16, pg: &Pg, n: usize, extra: &str) -> (Vec<Agent>, usize) {
    let t = target();
    let agents: Vec<Agent> = (0..n)
        .map(|i| Agent::start(&config(pg_port, pg, &format!("a{i}"), t, "leader", extra)))
        .collect();
    let refs: Vec<&Agent> = agents.iter().collect();
    wait_until(
        "a leader's first probe",
        Duration::from_secs(20),
        &refs,
        || agents.iter().any(|a| !probe_times(a).is_empty()),
    );
    let leader = agents
        .iter()
        .position(|a| !probe_times(a).is_empty())
        .unwrap();
    (agents, leader)
}

/// Asserts that no two agents' probe lines interleave: sorted by time, the writer changes at
/// most `handovers` times. Returns the overlap (ns) of each handover: how long two agents
/// probed at once (0 when the old one's last line precedes the new one's first).
fn handovers(agents: &[&Agent], max: usize) -> Vec<(i64, i64)> {
    let mut all: Vec<(i64, usize)> = agents
        .iter()
        .enumerate()
        .flat_map(|(i, a)| probe_times(a).into_iter().map(move |t| (t, i)))
        .collect();
    all.sort();
    let mut out = Vec::new();
    for w in all.windows(2) {
        if w[0].1 != w[1].1 {
            // Gap between the last line of one writer and the first of the next.
            out.push((w[0].0, w[1].0));
        }
    }
    assert!(
        out.len() <= max,
        "the writer changed {} times (at most {max} expected): {out:?}",
        out.len()
    );
    out
}

fn secs(ns: i64) -> f64 {
    ns as f64 / 1e9
}

#[test]
fn one_agent_of_three_probes_and_a_killed_leader_is_replaced_within_ttl_and_renew() {
    let pg = Pg::start();
    let (agents, leader) = start_group(pg.port, &pg, 3, "");
    // Several renewal rounds with three contenders: still one writer.
    std::thread::sleep(RENEW * 3);
    let refs: Vec<&Agent> = agents.iter().collect();
    assert!(handovers(&refs, 0).is_empty());
    let token_before = pg.lease();
    assert!(
        token_before.ends_with(&format!("|a{leader}")),
        "{token_before}"
    );

    let last_old = *probe_times(&agents[leader]).last().unwrap();
    agents[leader].signal(libc::SIGKILL);
    let killed_at = now_ns();
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let candidates: Vec<&Agent> = others.iter().map(|i| &agents[*i]).collect();
    let (i, first_new) = await_takeover(
        "SIGKILL",
        &refs,
        &candidates,
        killed_at,
        TTL + RENEW + PROBE,
    );
    let new = others[i];
    println!(
        "SIGKILL takeover: {:.2}s after the old leader's last line",
        secs(first_new - last_old)
    );
    std::thread::sleep(RENEW * 2);
    let survivors: Vec<&Agent> = others.iter().map(|i| &agents[*i]).collect();
    assert!(
        handovers(&survivors, 0).is_empty(),
        "one writer after the takeover"
    );
    let token_after = pg.lease();
    let tok = |s: &str| s.split('|').next().unwrap().parse::<i64>().unwrap();
    assert_eq!(token_after, format!("{}|a{new}", tok(&token_before) + 1));
}

#[test]
fn a_leader_stopped_with_sigterm_releases_its_lease_and_is_replaced_within_one_renewal() {
    let pg = Pg::start();
    let (mut agents, leader) = start_group(pg.port, &pg, 2, "");
    let other = 1 - leader;
    std::thread::sleep(RENEW);
    agents[leader].signal(libc::SIGTERM);
    let termed_at = now_ns();
    let (status, _) = agents[leader].wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert!(
        agents[leader].stderr().contains("lease released"),
        "{}",
        agents[leader].stderr()
    );
    let refs: Vec<&Agent> = agents.iter().collect();
    let (_, first_new) = await_takeover(
        "SIGTERM",
        &refs,
        &[&agents[other]],
        termed_at,
        RENEW + PROBE,
    );
    let last_old = *probe_times(&agents[leader]).last().unwrap();
    println!(
        "SIGTERM takeover: overlap {:.3}s",
        secs((last_old - first_new).max(0))
    );
    assert!(
        last_old < first_new,
        "the old leader probed after the new one started"
    );
}

#[test]
fn a_leader_stopped_past_its_ttl_writes_nothing_after_it_resumes() {
    let pg = Pg::start();
    let (agents, leader) = start_group(pg.port, &pg, 2, "");
    let other = 1 - leader;
    std::thread::sleep(RENEW);
    agents[leader].signal(libc::SIGSTOP);
    let stopped_at = now_ns();
    let refs: Vec<&Agent> = agents.iter().collect();
    wait_until("a takeover", TTL + RENEW + PROBE + SLACK * 4, &refs, || {
        !probe_times(&agents[other]).is_empty()
    });
    // Past the ttl for sure, then resume: its timers are all due at once.
    std::thread::sleep(RENEW);
    agents[leader].signal(libc::SIGCONT);
    let resumed_at = now_ns();
    agents[leader].wait_stderr("no longer leader", Duration::from_secs(10));
    std::thread::sleep(RENEW * 2);
    let after: Vec<i64> = probe_times(&agents[leader])
        .into_iter()
        .filter(|t| *t > stopped_at)
        .collect();
    let first_new = probe_times(&agents[other])[0];
    println!(
        "SIGSTOP for {:.2}s: takeover {:.2}s after the stop; lines of the stopped leader after resuming: {}",
        secs(resumed_at - stopped_at),
        secs(first_new - stopped_at),
        after.len()
    );
    assert!(
        after.is_empty(),
        "the resumed leader probed at {after:?} (stopped at {stopped_at}, resumed at {resumed_at})"
    );
    assert!(handovers(&refs, 1).iter().all(|(a, b)| a < b));
}

#[test]
fn a_sighup_storm_on_the_leader_keeps_its_lease() {
    let pg = Pg::start();
    let (agents, leader) = start_group(pg.port, &pg, 2, "");
    std::thread::sleep(RENEW);
    let before = pg.lease();
    for _ in 0..20 {
        agents[leader].signal(libc::SIGHUP);
        std::thread::sleep(Duration::from_millis(100));
    }
    agents[leader].wait_stderr("reloaded", Duration::from_secs(5));
    std::thread::sleep(RENEW * 2);
    let after = pg.lease();
    assert_eq!(before, after, "the lease changed hands during reloads");
    let refs: Vec<&Agent> = agents.iter().collect();
    assert!(handovers(&refs, 0).is_empty());
    // Still probing after the storm.
    let n = probe_times(&agents[leader]).len();
    wait_until(
        "probes after the storm",
        Duration::from_secs(10),
        &refs,
        || probe_times(&agents[leader]).len() > n + 2,
    );
}

#[test]
fn after_a_database_restart_one_agent_probes_again_without_overlap() {
    let mut pg = Pg::start();
    let (agents, _) = start_group(pg.port, &pg, 2, "");
    std::thread::sleep(RENEW);
    pg.stop();
    let down_at = now_ns();
    std::thread::sleep(RENEW);
    pg.run();
    let up_at = now_ns();
    let refs: Vec<&Agent> = agents.iter().collect();
    wait_until(
        "probes after the restart",
        TTL + RENEW * 2 + SLACK * 4,
        &refs,
        || {
            agents.iter().any(|a| {
                probe_times(a)
                    .last()
                    .is_some_and(|t| *t > up_at + 2 * RENEW.as_nanos() as i64)
            })
        },
    );
    std::thread::sleep(RENEW * 2);
    let h = handovers(&refs, 1);
    let resumed = agents
        .iter()
        .flat_map(probe_times)
        .filter(|t| *t > up_at)
        .min()
        .unwrap();
    println!(
        "database down {:.2}s; first probe {:.2}s after it came back; handovers {h:?}",
        secs(up_at - down_at),
        secs(resumed - up_at)
    );
    assert!(h.iter().all(|(a, b)| a < b), "overlap in {h:?}");
}

/// Forwards TCP to `to`, each chunk after `delay_ms` (a slow database or network); frozen, it
/// holds every byte (a partition that leaves both ends' sockets open, the case where only the
/// lease deadline saves the day).
struct Relay {
    port: u16,
    frozen: Arc<AtomicBool>,
    delay_ms: Arc<AtomicU64>,
}

impl Relay {
    fn start(to: u16) -> Relay {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let frozen = Arc::new(AtomicBool::new(false));
        let delay_ms = Arc::new(AtomicU64::new(0));
        let (f, d) = (frozen.clone(), delay_ms.clone());
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let Ok(s) = TcpStream::connect(("127.0.0.1", to)) else {
                    continue;
                };
                for (mut r, mut w) in [(c.try_clone().unwrap(), s.try_clone().unwrap()), (s, c)] {
                    let (f, d) = (f.clone(), d.clone());
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        loop {
                            let n = match r.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            std::thread::sleep(Duration::from_millis(d.load(Ordering::Relaxed)));
                            while f.load(Ordering::Relaxed) {
                                std::thread::sleep(Duration::from_millis(10));
                            }
                            if w.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = w.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Relay {
            port,
            frozen,
            delay_ms,
        }
    }
}

/// Agent a0 reaches the database through a relay and leads; a1 reaches it directly and waits.
fn leader_behind_relay(pg: &Pg, extra: &str) -> (Relay, Agent, Agent) {
    let relay = Relay::start(pg.port);
    let t = target();
    let a = Agent::start(&config(relay.port, pg, "a0", t, "leader", extra));
    wait_until("a0 leads", Duration::from_secs(20), &[&a], || {
        !probe_times(&a).is_empty()
    });
    let b = Agent::start(&config(pg.port, pg, "a1", t, "leader", extra));
    std::thread::sleep(RENEW * 2);
    assert!(probe_times(&b).is_empty(), "a standby probed");
    (relay, a, b)
}

/// After the leader lost the database at `cut_at`: the standby took over with no overlap.
fn assert_clean_handover(what: &str, a: &Agent, b: &Agent, cut_at: i64) {
    wait_until(
        "b takes over",
        TTL + RENEW + PROBE + SLACK * 4,
        &[a, b],
        || !probe_times(b).is_empty(),
    );
    std::thread::sleep(RENEW);
    let last_a = *probe_times(a).last().unwrap();
    let first_b = probe_times(b)[0];
    println!(
        "{what}: leader's last probe {:.2}s after the cut, new leader's first {:.2}s after; gap {:.2}s, overlap {:.3}s",
        secs(last_a - cut_at),
        secs(first_b - cut_at),
        secs(first_b - last_a),
        secs((last_a - first_b).max(0))
    );
    assert!(last_a < first_b, "two agents probed at once");
    assert!(handovers(&[a, b], 1).len() == 1);
    assert!(
        a.stderr().contains("lease not renewed in time"),
        "{}",
        a.stderr()
    );
}

#[test]
fn a_leader_cut_off_from_the_database_stops_before_another_starts() {
    let pg = Pg::start();
    let (relay, a, b) = leader_behind_relay(&pg, "");
    relay.frozen.store(true, Ordering::Relaxed);
    let cut_at = now_ns();
    assert_clean_handover("partition", &a, &b, cut_at);
    // Healed: the old leader finds the lease taken and stays paused.
    relay.frozen.store(false, Ordering::Relaxed);
    assert_no_probes_for(
        &a,
        RENEW * 3,
        "the old leader probed after the partition healed",
    );
}

#[test]
fn a_database_slower_than_the_call_timeout_is_a_lost_database() {
    let pg = Pg::start();
    let (relay, a, b) = leader_behind_relay(&pg, "");
    // Every answer arrives after db_timeout (400ms).
    relay.delay_ms.store(700, Ordering::Relaxed);
    let cut_at = now_ns();
    assert_clean_handover("slow database", &a, &b, cut_at);
}

#[test]
fn with_on_db_loss_keep_a_cut_off_leader_keeps_probing_until_it_sees_the_new_holder() {
    let pg = Pg::start();
    let (relay, a, b) = leader_behind_relay(&pg, "on_db_loss = \"keep\"");
    relay.frozen.store(true, Ordering::Relaxed);
    let cut_at = now_ns();
    wait_until(
        "b takes over",
        TTL + RENEW + PROBE + SLACK * 4,
        &[&a, &b],
        || !probe_times(&b).is_empty(),
    );
    std::thread::sleep(RENEW);
    let first_b = probe_times(&b)[0];
    let last_a = *probe_times(&a).last().unwrap();
    println!(
        "on_db_loss = keep: duplicates for {:.2}s while partitioned (expected)",
        secs(last_a - first_b)
    );
    assert!(last_a > first_b, "the cut-off leader stopped probing");
    assert!(last_a > cut_at + TTL.as_nanos() as i64);
    relay.frozen.store(false, Ordering::Relaxed);
    a.wait_stderr("no longer leader", TTL + SLACK * 4);
    std::thread::sleep(RENEW);
    assert_no_probes_for(&a, RENEW * 2, "it stepped down once it saw the holder");
}

#[test]
fn in_all_mode_every_agent_probes_and_tags_its_lines() {
    let pg = Pg::start();
    let t = target();
    let agents: Vec<Agent> = (0..2)
        .map(|i| Agent::start(&config(pg.port, &pg, &format!("a{i}"), t, "all", "")))
        .collect();
    let refs: Vec<&Agent> = agents.iter().collect();
    wait_until("both probe", Duration::from_secs(20), &refs, || {
        agents.iter().all(|a| probe_times(a).len() >= 3)
    });
    // Self-metrics of the group carry the role.
    wait_until("group self-metrics", Duration::from_secs(10), &refs, || {
        agents.iter().all(|a| {
            a.lines()
                .iter()
                .any(|l| l.starts_with("metrics_agent_group,") && l.contains("role=\"member\""))
        })
    });
}

#[test]
fn group_self_metrics_show_role_token_and_lease_left() {
    let pg = Pg::start();
    let (agents, leader) = start_group(pg.port, &pg, 2, "");
    let refs: Vec<&Agent> = agents.iter().collect();
    let find = |a: &Agent, role: &str| {
        a.lines()
            .iter()
            .filter(|l| l.starts_with("metrics_agent_group,"))
            .map(|l| parse_line(l))
            .rfind(|l| l.string("role").as_deref() == Some(role))
    };
    // A standby's lines from before the leader took the lease carry no token yet: wait for one
    // written after it did.
    wait_until(
        "both roles reported, the standby's with the holder's token",
        Duration::from_secs(10),
        &refs,
        || {
            find(&agents[leader], "leader").is_some()
                && find(&agents[1 - leader], "standby").is_some_and(|s| s.int("token").is_some())
        },
    );
    let l = find(&agents[leader], "leader").unwrap();
    let s = find(&agents[1 - leader], "standby").unwrap();
    assert_eq!(l.tag("probe_group"), Some("g"));
    assert_eq!(l.tag("agent_id"), Some(format!("a{leader}").as_str()));
    let token: i64 = pg.lease().split('|').next().unwrap().parse().unwrap();
    assert_eq!(l.int("token"), Some(token));
    assert_eq!(
        s.int("token"),
        Some(token),
        "a standby sees the holder's token"
    );
    let left = l.float("lease_left_s").unwrap();
    assert!(left > 0.0 && left <= (TTL.as_secs_f64()), "{left}");
    assert!(l.float("renew_latency_ms").is_some());
    assert_eq!(l.int("renew_failures"), Some(0));
}

/// `n` net_response instances of group `g` in shard mode, each tagged `target = tN`.
/// The `timeout` of [`shard_config`]'s probes.
const SHARD_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

fn shard_config(pg: &Pg, id: &str, port: u16, n: usize) -> String {
    let mut c = format!(
        r#"[agent]
interval = "500ms"
# 300 probes of one listener spread over the interval, not all at the boundary (a burst of 300
# SYNs overflows the listen backlog and a dropped SYN is retried only after 1s).
round_interval = false
collection_jitter = "400ms"
[agent.coordination]
postgres = "host=127.0.0.1 port={db} user=agent dbname=agents"
password_file = "{pw}"
agent_id = "{id}"
ttl = "3s"
renew_interval = "1s"
db_timeout = "400ms"
[agent.coordination.groups]
g = "shard"
"#,
        db = pg.port,
        pw = pg.password_file.display(),
    );
    for i in 0..n {
        c.push_str(&format!(
            "[[inputs.net_response]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n\
             timeout = \"1s\"\ngroup = \"g\"\nalias = \"t{i}\"\ntags = {{ target = \"t{i}\" }}\n"
        ));
    }
    c
}

/// (target, timestamp) of every probe line of one agent.
fn shard_lines(a: &Agent) -> Vec<(String, i64)> {
    a.lines()
        .iter()
        .filter(|l| l.starts_with("net_response,"))
        .map(|l| parse_line(l))
        .map(|l| (l.tag("target").unwrap().to_owned(), l.timestamp))
        .collect()
}

#[test]
fn shard_mode_spreads_300_targets_over_three_agents_and_moves_only_a_killed_ones_share() {
    const N: usize = 300;
    let pg = Pg::start();
    let port = target();
    let agents: Vec<Agent> = (0..3)
        .map(|i| Agent::start(&shard_config(&pg, &format!("a{i}"), port, N)))
        .collect();
    let refs: Vec<&Agent> = agents.iter().collect();
    let owners = |since: i64| -> Vec<std::collections::BTreeMap<String, usize>> {
        // For each agent, how many lines per target since `since`.
        agents
            .iter()
            .map(|a| {
                let mut m = std::collections::BTreeMap::new();
                for (t, ts) in shard_lines(a) {
                    if ts > since {
                        *m.entry(t).or_insert(0) += 1;
                    }
                }
                m
            })
            .collect()
    };
    // Steady state: every agent sees three members and the targets they own add up to N (a
    // late starter joins after the others' warm-up: its share waits for its own).
    let owned = |a: &Agent| {
        a.lines()
            .iter()
            .filter(|l| l.starts_with("metrics_agent_group,"))
            .map(|l| parse_line(l))
            .next_back()
            .map(|l| (l.int("members"), l.int("targets_owned").unwrap_or(0)))
    };
    wait_until(
        "three members sharing all targets",
        TTL * 5 + SLACK * 4,
        &refs,
        || {
            let o: Vec<_> = agents.iter().map(owned).collect();
            o.iter().all(|x| x.is_some_and(|(m, _)| m == Some(3)))
                && o.iter().map(|x| x.map_or(0, |(_, n)| n)).sum::<i64>() == N as i64
        },
    );
    let t0 = now_ns();
    // Two renewals, then long enough for a gather begun in them to end: a probe whose SYN the
    // listener dropped waits out its 1 s timeout and writes its line (stamped with its start)
    // only then. Under load that happened to a few targets twice in a row.
    std::thread::sleep(RENEW * 2 + SHARD_PROBE_TIMEOUT + SLACK);
    let before = owners(t0);
    let total: usize = before.iter().map(|m| m.len()).sum();
    if total != N {
        for i in 0..N {
            let t = format!("t{i}");
            if before.iter().all(|m| !m.contains_key(&t)) {
                let last: Vec<Option<f64>> = agents
                    .iter()
                    .map(|a| {
                        shard_lines(a)
                            .iter()
                            .filter(|(k, _)| *k == t)
                            .map(|(_, ts)| secs(ts - t0))
                            .next_back()
                    })
                    .collect();
                println!("missing {t}: last lines relative to t0 {last:?}");
            }
        }
        for a in &agents {
            println!("{}", a.stderr());
        }
    }
    assert_eq!(
        total,
        N,
        "each target probed by exactly one agent: {:?}",
        before.iter().map(|m| m.len()).collect::<Vec<_>>()
    );
    for (i, m) in before.iter().enumerate() {
        assert!(m.len() > N / 6, "agent a{i} owns only {} targets", m.len());
    }

    let victim = 1;
    agents[victim].signal(libc::SIGKILL);
    let killed_at = now_ns();
    let moved: Vec<String> = before[victim].keys().cloned().collect();
    wait_until(
        "the killed agent's targets probed again",
        TTL + RENEW * 2 + SLACK * 4,
        &refs,
        || {
            let after = owners(killed_at);
            moved
                .iter()
                .all(|t| after.iter().any(|m| m.contains_key(t)))
        },
    );
    // The time each moved target went unprobed: its first line after the kill.
    let mut worst = 0i64;
    for t in &moved {
        let first = [0, 2]
            .iter()
            .flat_map(|i| shard_lines(&agents[*i]))
            .filter(|(k, ts)| k == t && *ts > killed_at)
            .map(|(_, ts)| ts)
            .min()
            .unwrap();
        worst = worst.max(first - killed_at);
    }
    std::thread::sleep(RENEW * 2 + SHARD_PROBE_TIMEOUT + SLACK);
    let after = owners(killed_at);
    println!(
        "shard: {} / {} / {} targets; {} moved after SIGKILL, the last probed again {:.2}s after the kill",
        before[0].len(),
        before[1].len(),
        before[2].len(),
        moved.len(),
        secs(worst)
    );
    assert!(
        Duration::from_nanos(worst.max(0) as u64)
            <= TTL + RENEW + Duration::from_millis(500) + SLACK,
        "took {:.2}s",
        secs(worst)
    );
    // Survivors kept their own targets, and no target was probed by both at once.
    for i in [0, 2] {
        for t in before[i].keys() {
            assert!(after[i].contains_key(t), "a{i} lost {t} though it stayed");
        }
    }
    for t in &moved {
        let n = [0, 2].iter().filter(|i| after[**i].contains_key(t)).count();
        assert_eq!(n, 1, "{t} probed by {n} survivors");
    }
}

#[test]
fn a_paused_standby_is_ready_and_so_is_the_leader() {
    let pg = Pg::start();
    let t = target();
    let health: Vec<u16> = (0..2).map(|_| free_port()).collect();
    let agents: Vec<Agent> = (0..2)
        .map(|i| {
            let extra = format!("[agent.health]\nlisten = \"127.0.0.1:{}\"\n", health[i]);
            Agent::start(&config(pg.port, &pg, &format!("a{i}"), t, "leader", &extra))
        })
        .collect();
    let refs: Vec<&Agent> = agents.iter().collect();
    wait_until("a leader", Duration::from_secs(20), &refs, || {
        agents.iter().any(|a| probe_times(a).len() >= 3)
    });
    // Well past two probe intervals: a standby that counted as late would be 503 by now.
    std::thread::sleep(PROBE * 4);
    for (i, port) in health.iter().enumerate() {
        let (status, body) =
            crate::harness::http_request(&format!("127.0.0.1:{port}"), "GET", "/readyz", b"")
                .expect("readyz");
        assert_eq!(
            status,
            200,
            "a{i} ({} lines): {body}",
            probe_times(&agents[i]).len()
        );
        let role = if probe_times(&agents[i]).is_empty() {
            "standby"
        } else {
            "leader"
        };
        assert!(
            body.contains(&format!(r#""groups":{{"g":"{role}"}}"#)),
            "a{i}: {body}"
        );
    }
    assert!(
        agents.iter().any(|a| probe_times(a).is_empty()),
        "one agent is a standby"
    );
}

#[test]
fn a_leader_cut_off_from_the_database_still_stops_at_once_on_sigterm() {
    let pg = Pg::start();
    let (relay, mut a, _b) = leader_behind_relay(&pg, "");
    relay.frozen.store(true, Ordering::Relaxed);
    std::thread::sleep(RENEW);
    a.signal(libc::SIGTERM);
    let (status, took) = a.wait_exit(Duration::from_secs(10));
    println!("SIGTERM while partitioned: exit after {took:?}");
    assert!(status.success(), "{status:?}");
    // One db_timeout (400ms) for the release that cannot arrive, plus the usual stop.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    relay.frozen.store(false, Ordering::Relaxed);
}

#[test]
fn a_reload_that_drops_the_group_hands_it_over_at_once() {
    let pg = Pg::start();
    let t = target();
    let (agents, leader) = start_group(pg.port, &pg, 2, "");
    let other = 1 - leader;
    std::thread::sleep(RENEW);
    // The leader's new config has no group: its probe runs ungrouped, the lease goes at once.
    let ungrouped = config(pg.port, &pg, &format!("a{leader}"), t, "leader", "")
        .replace("group = \"g\"\n", "")
        .replace("g = \"leader\"\n", "");
    agents[leader].write_config(&ungrouped);
    agents[leader].signal(libc::SIGHUP);
    let hup_at = now_ns();
    let refs: Vec<&Agent> = agents.iter().collect();
    // The lease released on reload, so within one renewal and not the ttl.
    await_takeover(
        "group dropped by a reload",
        &refs,
        &[&agents[other]],
        hup_at,
        RENEW + PROBE,
    );
    assert!(agents[leader].stderr().contains("lease released"));
}

#[test]
fn while_the_database_is_down_past_the_ttl_nobody_probes_and_one_agent_resumes() {
    let mut pg = Pg::start();
    let (agents, _) = start_group(pg.port, &pg, 2, "");
    std::thread::sleep(RENEW);
    pg.stop();
    let down_at = now_ns();
    std::thread::sleep(TTL + RENEW);
    pg.run();
    let up_at = now_ns();
    let refs: Vec<&Agent> = agents.iter().collect();
    wait_until(
        "probes after the restart",
        TTL + RENEW * 2 + SLACK * 4,
        &refs,
        || {
            agents
                .iter()
                .any(|a| probe_times(a).iter().any(|t| *t > up_at))
        },
    );
    std::thread::sleep(RENEW * 2);
    let all: Vec<i64> = agents.iter().flat_map(probe_times).collect();
    let last_before = all.iter().filter(|t| **t < up_at).max().copied().unwrap();
    let first_after = all.iter().filter(|t| **t > up_at).min().copied().unwrap();
    println!(
        "database down {:.2}s: last probe {:.2}s after it went down, first {:.2}s after it came back",
        secs(up_at - down_at),
        secs(last_before - down_at),
        secs(first_after - up_at)
    );
    // The leader stopped at its deadline (at most ttl after its last renewal).
    assert!(
        last_before < down_at + TTL.as_nanos() as i64,
        "probed {:.2}s into the outage",
        secs(last_before - down_at)
    );
    let h = handovers(&refs, 1);
    assert!(h.iter().all(|(a, b)| a < b), "overlap in {h:?}");
}

/// Waits for the first probe by one of `candidates` and asserts it came within `bound` (plus
/// `SLACK`) of `since`, the event (ns) that let them take over. Returns which candidate and when.
fn await_takeover(
    what: &str,
    all: &[&Agent],
    candidates: &[&Agent],
    since: i64,
    bound: Duration,
) -> (usize, i64) {
    let first = || candidates.iter().position(|a| !probe_times(a).is_empty());
    wait_until("a takeover", bound + SLACK * 4, all, || first().is_some());
    let i = first().unwrap();
    let at = probe_times(candidates[i])[0];
    println!(
        "{what} takeover: {:.2}s after the event (bound {:.1}s + slack)",
        secs(at - since),
        bound.as_secs_f64()
    );
    assert!(
        Duration::from_nanos((at - since).max(0) as u64) <= bound + SLACK,
        "{what}: takeover took {:.2}s",
        secs(at - since)
    );
    (i, at)
}

/// Asserts that `a` writes no probe line for `d`.
fn assert_no_probes_for(a: &Agent, d: Duration, what: &str) {
    let n = probe_times(a).len();
    std::thread::sleep(d);
    assert_eq!(probe_times(a).len(), n, "{what}");
}
