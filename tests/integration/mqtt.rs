//! `mqtt_consumer` against Debian's mosquitto on loopback, started by each test with a config of
//! its own. Every sent message carries a sequence number, so each test accounts for all of
//! them: written (once or more) or dead-lettered.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::netprobes::{free_port, make_pki};

const SEC: Duration = Duration::from_secs(1);

/// A mosquitto of the test's own: `extra` is appended to a config listening on a free loopback
/// port; the process runs as root (no privilege drop) so it can read the test's files.
pub(crate) struct Broker {
    child: Option<Child>,
    pub(crate) port: u16,
    dir: tempfile::TempDir,
}

impl Broker {
    pub(crate) fn start(extra: &str) -> Broker {
        Self::start_with(extra, |_| {})
    }

    /// `prepare` runs in the broker's directory before it starts; `{dir}` in `extra` is that
    /// directory.
    fn start_with(extra: &str, prepare: impl FnOnce(&std::path::Path)) -> Broker {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let extra = extra.replace("{dir}", &dir.path().display().to_string());
        let port = free_port();
        let d = dir.path().display();
        let conf = format!(
            "user root\nper_listener_settings false\nlistener {port} 127.0.0.1\nallow_anonymous true\n\
             persistence_location {d}/\nlog_dest file {d}/broker.log\nlog_type all\n\
             max_queued_messages 100000\n{extra}\n"
        );
        std::fs::write(dir.path().join("mosquitto.conf"), conf).unwrap();
        let mut b = Broker {
            child: None,
            port,
            dir,
        };
        b.spawn();
        b
    }

    fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }

    fn spawn(&mut self) {
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.path("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto not found: tests/run.sh installs it");
        self.child = Some(child);
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(start.elapsed() < 10 * SEC, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: i32) {
        if let Some(c) = &self.child {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, sig) };
        }
    }

    /// SIGTERM and wait (mosquitto saves its persistence file on the way out).
    fn stop(&mut self) {
        self.signal(libc::SIGCONT);
        self.signal(libc::SIGTERM);
        if let Some(mut c) = self.child.take() {
            let _ = c.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("broker.log")).unwrap_or_default()
    }

    /// Waits (up to `timeout`) until the broker's log contains `needle`; the agent's stderr
    /// explains a time-out.
    fn wait_log(&self, needle: &str, timeout: Duration, a: &Agent) {
        let start = Instant::now();
        while !self.log().contains(needle) {
            assert!(
                start.elapsed() < timeout,
                "the broker never logged {needle}:\n{}",
                a.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Publishes one message per entry with `mosquitto_pub -l` (one connection for all).
    fn publish(&self, topic: &str, qos: u8, messages: &[String]) {
        publish_to(self.port, topic, qos, messages);
    }

    /// Collects what arrives on `topic` (for dead letters).
    fn subscribe(&self, topic: &str) -> Subscriber {
        let mut child = Command::new("mosquitto_sub")
            .args(["-p", &self.port.to_string(), "-q", "1", "-t", topic])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub");
        let out = child.stdout.take().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let g = got.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                g.lock().unwrap().push(line);
            }
        });
        // The subscription is in place once the broker logged it.
        let start = Instant::now();
        while !self.log().contains("SUBSCRIBE") || !self.log().contains(topic) {
            assert!(start.elapsed() < 5 * SEC, "mosquitto_sub did not subscribe");
            std::thread::sleep(Duration::from_millis(20));
        }
        Subscriber { child, got }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn publish_to(port: u16, topic: &str, qos: u8, messages: &[String]) {
    publish_as(port, &[], topic, qos, messages);
}

/// `publish_to` with extra `mosquitto_pub` arguments (credentials).
fn publish_as(port: u16, extra: &[&str], topic: &str, qos: u8, messages: &[String]) {
    let (port, qos) = (port.to_string(), qos.to_string());
    let mut child = Command::new("mosquitto_pub")
        .args(["-p", &port, "-q", &qos, "-t", topic, "-l"])
        .args(extra)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mosquitto_pub");
    {
        let mut stdin = child.stdin.take().unwrap();
        for m in messages {
            writeln!(stdin, "{m}").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "mosquitto_pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

struct Subscriber {
    child: Child,
    got: Arc<Mutex<Vec<String>>>,
}

impl Subscriber {
    fn wait_for(&self, n: usize, timeout: Duration) -> Vec<String> {
        let start = Instant::now();
        loop {
            let got = self.got.lock().unwrap().clone();
            if got.len() >= n {
                return got;
            }
            assert!(
                start.elapsed() < timeout,
                "only {} of {n} dead letters: {got:?}",
                got.len()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sequence numbers (field `seq`) of the lines of `measurement`, in order of arrival.
fn seqs(lines: &[String], measurement: &str) -> Vec<i64> {
    lines
        .iter()
        .filter(|l| {
            l.starts_with(&format!("{measurement},")) || l.starts_with(&format!("{measurement} "))
        })
        .filter_map(|l| {
            let p = parse_line(l);
            p.int("seq").or_else(|| p.float("seq").map(|f| f as i64))
        })
        .collect()
}

fn unique(s: &[i64]) -> BTreeSet<i64> {
    s.iter().copied().collect()
}

/// The latest value of a self-metric field of the `mqtt_consumer` instance `n`.
fn counter(lines: &[String], n: usize, field: &str) -> Option<i64> {
    let id = format!("instance=inputs.mqtt_consumer[{n}]");
    lines
        .iter()
        .rev()
        .filter(|l| l.starts_with("metrics_agent_gather,") && l.contains(&id))
        .find_map(|l| parse_line(l).int(field))
}

/// Waits until the instance's self-metric `field` satisfies `pred`; returns the lines then.
fn wait_counter(
    a: &Agent,
    n: usize,
    field: &str,
    timeout: Duration,
    pred: impl Fn(i64) -> bool,
) -> Vec<String> {
    a.wait_for(&format!("{field} of mqtt_consumer[{n}]"), timeout, |l| {
        counter(l, n, field).is_some_and(&pred)
    })
}

fn range(from: i64, to: i64) -> BTreeSet<i64> {
    (from..to).collect()
}

const AGENT: &str = "[agent]\ninterval = \"1s\"\n[[inputs.internal]]\ncollect_memstats = true\n";

#[test]
fn mqtt_influx_and_json_at_qos1_every_message_accounted() {
    let b = Broker::start("");
    let p = b.port;
    let a = Agent::start(&format!(
        "{AGENT}\
         [[inputs.mqtt_consumer]]\nservers = [\"tcp://127.0.0.1:{p}\"]\ntopics = [\"lp/#\"]\nqos = 1\n\
         [[inputs.mqtt_consumer]]\nservers = [\"tcp://127.0.0.1:{p}\"]\ntopics = [\"/js/+/#\"]\nqos = 1\n\
         data_format = \"json\"\ntag_keys = [\"sensor\"]\njson_string_fields = [\"state\"]\nname_override = \"js\"\n\
         [[inputs.mqtt_consumer.topic_parsing]]\ntopic = \"/js/+/#\"\ntags = \"_/_/room/#\"\nfields = \"_/_/_/#/channel\"\n\
         [inputs.mqtt_consumer.topic_parsing.types]\nchannel = \"int\"\n"
    ));
    wait_counter(&a, 1, "messages_received", 10 * SEC, |v| v == 0);
    // Both instances subscribed (each logged by the broker).
    let start = Instant::now();
    while b.log().matches("SUBSCRIBE").count() < 2 {
        assert!(start.elapsed() < 10 * SEC, "subscriptions: {}", b.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    const N: i64 = 500;
    let lp: Vec<String> = (0..N)
        .map(|i| {
            format!(
                "lp,sensor=s{} seq={i}i,temp=21.5 {}",
                i % 7,
                1_700_000_000_000_000_000i64 + i
            )
        })
        .collect();
    let js: Vec<String> = (0..N)
        .map(|i| {
            format!(
                r#"{{"sensor":"s{}","seq":{i},"temp":{{"c":21.5}},"state":"ok","ignored":"x"}}"#,
                i % 7
            )
        })
        .collect();
    b.publish("lp/kitchen", 1, &lp);
    b.publish("/js/attic/ch/3", 1, &js);
    let lines = a.wait_for("every message", 60 * SEC, |l| {
        unique(&seqs(l, "lp")).len() == N as usize && unique(&seqs(l, "js")).len() == N as usize
    });
    influx().assert_accepts(
        &lines
            .iter()
            .filter(|l| !l.starts_with("internal"))
            .cloned()
            .collect::<Vec<_>>(),
    );
    let j = lines.iter().find(|l| l.starts_with("js,")).unwrap();
    let jl = parse_line(j);
    assert_eq!(
        jl.tag("sensor").map(|s| s.starts_with('s')),
        Some(true),
        "{j}"
    );
    assert_eq!(jl.tag("room"), Some("attic"), "{j}");
    assert_eq!(jl.tag("topic"), Some("/js/attic/ch/3"), "{j}");
    assert_eq!(jl.int("channel"), Some(3), "{j}");
    assert_eq!(jl.float("temp_c"), Some(21.5), "{j}");
    assert_eq!(jl.string("state").as_deref(), Some("ok"), "{j}");
    assert!(jl.field("ignored").is_none(), "{j}");
    let l = parse_line(lines.iter().find(|l| l.starts_with("lp,")).unwrap());
    assert_eq!(l.tag("topic"), Some("lp/kitchen"));
    assert!(
        l.timestamp >= 1_700_000_000_000_000_000 && l.timestamp < 1_700_000_000_000_000_000 + N
    );
    // Accounting, once the counters caught up: received = written + duplicates, all acked.
    for (n, m) in [(0, "lp"), (1, "js")] {
        let lines = wait_counter(&a, n, "acknowledged", 10 * SEC, |v| v >= N);
        let written = seqs(&lines, m).len() as i64;
        let received = counter(&lines, n, "messages_received").unwrap();
        let dups = counter(&lines, n, "duplicates").unwrap();
        assert_eq!(received, written, "{m}: received vs written");
        assert_eq!(written - N, dups, "{m}: extra lines are the redeliveries");
        assert_eq!(counter(&lines, n, "parse_errors"), Some(0));
        assert_eq!(counter(&lines, n, "in_flight"), Some(0));
        assert_eq!(counter(&lines, n, "acknowledged"), Some(received));
    }
}

#[test]
fn mqtt_malformed_and_panicking_payloads_are_dead_lettered_without_stalling() {
    let b = Broker::start("");
    let p = b.port;
    let dead = b.subscribe("dead/letters");
    let a = Agent::start(&format!(
        "{AGENT}[[inputs.mqtt_consumer]]\nservers = [\"tcp://127.0.0.1:{p}\"]\ntopics = [\"in/#\"]\nqos = 1\n\
         dead_letter_topic = \"dead/letters\"\nmax_undelivered_messages = 4\n"
    ));
    wait_counter(&a, 0, "messages_received", 10 * SEC, |v| v == 0);
    // Far more bad messages than undelivered slots and the broker's in-flight window (20):
    // a bad message that held its slot would stall the good ones behind it.
    let mut msgs = Vec::new();
    let mut bad = Vec::new();
    for i in 0..300i64 {
        match i % 3 {
            0 => msgs.push(format!("ok seq={i}i")),
            1 => {
                let m = format!("garbage {i} = not line protocol");
                bad.push(m.clone());
                msgs.push(m);
            }
            _ => {
                msgs.push("chaos:panic".to_owned());
                bad.push("chaos:panic".to_owned());
            }
        }
    }
    b.publish("in/x", 1, &msgs);
    let lines = a.wait_for("good messages", 60 * SEC, |l| {
        unique(&seqs(l, "ok")).len() == 100
    });
    assert_eq!(unique(&seqs(&lines, "ok")), (0..300).step_by(3).collect());
    let got = dead.wait_for(bad.len(), 30 * SEC);
    let mut got_sorted = got.clone();
    got_sorted.sort();
    bad.sort();
    assert_eq!(
        got_sorted, bad,
        "dead letters are the bad payloads, unchanged"
    );
    let lines = wait_counter(&a, 0, "acknowledged", 10 * SEC, |v| v >= 300);
    assert_eq!(counter(&lines, 0, "messages_received"), Some(300));
    assert_eq!(counter(&lines, 0, "parse_errors"), Some(200));
    assert_eq!(counter(&lines, 0, "dead_lettered"), Some(200));
    assert_eq!(counter(&lines, 0, "panics"), Some(100));
    assert_eq!(
        counter(&lines, 0, "restarts"),
        Some(0),
        "a poison message does not restart the input"
    );
    // Logged once per cause, not per message.
    let err = a.stderr();
    assert_eq!(err.matches("unparsable message").count(), 1, "{err}");
    assert_eq!(err.matches("parser panicked").count(), 1, "{err}");
    assert_eq!(err.matches("panic in thread").count(), 1, "{err}");
}

/// `m seq=…i` lines for `seqs`.
fn numbered(seqs: std::ops::Range<i64>) -> Vec<String> {
    seqs.map(|i| format!("m seq={i}i")).collect()
}

/// A broker with `conf`, an agent with a persistent QoS 1 session on topic `t` that has received
/// messages 0..50, then the broker restarted.
fn restarted_broker(conf: &str, client_id: &str) -> (Broker, Agent) {
    let mut b = Broker::start(conf);
    let p = b.port;
    let a = Agent::start(&format!(
        "{AGENT}[[inputs.mqtt_consumer]]\nservers = [\"tcp://127.0.0.1:{p}\"]\ntopics = [\"t\"]\nqos = 1\n\
         client_id = \"{client_id}\"\npersistent_session = true\n"
    ));
    wait_counter(&a, 0, "messages_received", 10 * SEC, |v| v == 0);
    b.publish("t", 1, &numbered(0..50));
    a.wait_for("first half", 30 * SEC, |l| {
        unique(&seqs(l, "m")).len() == 50
    });
    b.stop();
    b.spawn();
    (b, a)
}

#[test]
fn mqtt_broker_restart_without_persistence_resubscribes() {
    let (b, a) = restarted_broker("persistence false", "restart-test");
    // The broker forgot the session: without a new SUBSCRIBE nothing would ever arrive.
    wait_counter(&a, 0, "resubscribes", 30 * SEC, |v| v >= 1);
    let lines = a.wait_for("reconnect counted", 10 * SEC, |l| {
        counter(l, 0, "reconnects").is_some_and(|v| v >= 1)
    });
    assert_eq!(counter(&lines, 0, "resubscribes"), Some(1));
    b.publish("t", 1, &numbered(50..100));
    let lines = a.wait_for("second half", 30 * SEC, |l| {
        unique(&seqs(l, "m")).len() == 100
    });
    assert_eq!(unique(&seqs(&lines, "m")), range(0, 100));
}

#[test]
fn mqtt_broker_restart_with_persistence_keeps_the_session() {
    let (b, a) = restarted_broker("persistence true\nautosave_interval 1", "persist-test");
    // Published before we are back: the restored session queues them for us.
    b.publish("t", 1, &numbered(50..100));
    let lines = a.wait_for("second half", 60 * SEC, |l| {
        unique(&seqs(l, "m")).len() == 100
    });
    assert_eq!(unique(&seqs(&lines, "m")), range(0, 100));
    let lines = wait_counter(&a, 0, "reconnects", 10 * SEC, |v| v >= 1);
    assert_eq!(
        counter(&lines, 0, "resubscribes"),
        Some(0),
        "the session was present"
    );
}

#[test]
fn mqtt_agent_sigterm_and_restart_mid_stream_loses_nothing() {
    let b = Broker::start("");
    let p = b.port;
    let config = format!(
        "{AGENT}[[inputs.mqtt_consumer]]\nservers = [\"tcp://127.0.0.1:{p}\"]\ntopics = [\"s\"]\nqos = 1\n\
         client_id = \"sigterm-test\"\npersistent_session = true\n"
    );
    let mut a = Agent::start(&config);
    wait_counter(&a, 0, "messages_received", 10 * SEC, |v| v == 0);
    const N: i64 = 3000;
    let publisher = std::thread::spawn(move || {
        for chunk in (0..N).collect::<Vec<_>>().chunks(100) {
            publish_to(
                p,
                "s",
                1,
                &chunk
                    .iter()
                    .map(|i| format!("m seq={i}i"))
                    .collect::<Vec<_>>(),
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    a.wait_for("stream under way", 30 * SEC, |l| seqs(l, "m").len() >= 300);
    a.signal(libc::SIGTERM);
    let (st, _) = a.wait_exit(10 * SEC);
    assert!(st.success(), "{}", a.stderr());
    let first = seqs(&a.lines(), "m");
    let b2 = Agent::start(&config);
    publisher.join().unwrap();
    let lines = b2.wait_for("the rest", 60 * SEC, |l| {
        unique(&first).union(&unique(&seqs(l, "m"))).count() == N as usize
    });
    let second = seqs(&lines, "m");
    let all: BTreeSet<i64> = unique(&first).union(&unique(&second)).copied().collect();
    assert_eq!(all, range(0, N), "every message written");
    // Extra lines are redeliveries of messages queued but not yet acknowledged at SIGTERM.
    let extra = (first.len() + second.len()) as i64 - N;
    let lines = wait_counter(&b2, 0, "acknowledged", 10 * SEC, |v| {
        v >= second.len() as i64
    });
    let dups = counter(&lines, 0, "duplicates").unwrap();
    assert!(
        extra <= dups,
        "{extra} extra lines, {dups} redeliveries flagged by the broker"
    );
    assert!(
        extra <= 20 + 1,
        "at most the broker's in-flight window is redelivered: {extra}"
    );
}

#[test]
fn mqtt_wrong_password_backs_off_logs_once_then_rotated_file_connects() {
    let b = Broker::start_with("allow_anonymous false\npassword_file {dir}/passwd", |d| {
        let st = Command::new("mosquitto_passwd")
            .args(["-c", "-b"])
            .arg(d.join("passwd"))
            .args(["agent", "right"])
            .status()
            .unwrap();
        assert!(st.success());
    });
    let p = b.port;
    let secret = b.path("agent-password");
    std::fs::write(&secret, "wrong\n").unwrap();
    let a = Agent::start(&format!(
        "{AGENT}[[inputs.mqtt_consumer]]\nservers = [\"tcp://127.0.0.1:{p}\"]\ntopics = [\"t\"]\n\
         username = \"agent\"\npassword_file = \"{}\"\n",
        secret.display()
    ));
    a.wait_stderr("refused the credentials", 10 * SEC);
    let t0 = Instant::now();
    // Attempts at 1, 2, 4, 8 s (±20 %) after the first: at most 4 more within 9 s.
    std::thread::sleep(9 * SEC);
    let err = a.stderr();
    assert_eq!(
        err.matches("refused the credentials").count(),
        1,
        "one clear error:\n{err}"
    );
    assert!(
        !err.contains("right") && !err.contains("wrong\n"),
        "password never logged"
    );
    let connects = b.log().matches("New connection from").count();
    assert!(
        (2..=6).contains(&connects),
        "{connects} attempts in {:?}: backoff, no spin\n{}",
        t0.elapsed(),
        b.log()
    );
    // The file is read again on every attempt.
    std::fs::write(&secret, "right\n").unwrap();
    a.wait_for("connected", 40 * SEC, |l| {
        counter(l, 0, "messages_received").is_some()
    })
    .len();
    b.wait_log("SUBSCRIBE", 40 * SEC, &a);
    publish_as(
        p,
        &["-u", "agent", "-P", "right"],
        "t",
        0,
        &["m seq=1i".to_owned()],
    );
    a.wait_for("message after the password was fixed", 10 * SEC, |l| {
        seqs(l, "m") == [1]
    });
}

#[test]
fn mqtt_silent_peers_are_detected() {
    // A port that accepts and never speaks: bounded by connection_timeout, then backoff.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let sp = silent.local_addr().unwrap().port();
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let acc = accepted.clone();
    std::thread::spawn(move || {
        for s in silent.incoming().map_while(Result::ok) {
            acc.lock().unwrap().push((Instant::now(), s));
        }
    });
    let mut b = Broker::start("");
    let p = b.port;
    let a = Agent::start(&format!(
        "{AGENT}[[inputs.mqtt_consumer]]\nservers = [\"tcp://127.0.0.1:{sp}\"]\ntopics = [\"t\"]\nconnection_timeout = \"2s\"\n\
         [[inputs.mqtt_consumer]]\nservers = [\"tcp://127.0.0.1:{p}\"]\ntopics = [\"t\"]\nkeepalive = \"2s\"\nping_timeout = \"1s\"\nconnection_timeout = \"2s\"\n"
    ));
    a.wait_stderr("no CONNACK within connection_timeout", 10 * SEC);
    std::thread::sleep(8 * SEC);
    let times: Vec<Instant> = accepted.lock().unwrap().iter().map(|(t, _)| *t).collect();
    // Each attempt waits 2 s for CONNACK, then 1, 2, 4 s of backoff: no more than 4 in ~10 s.
    assert!((2..=5).contains(&times.len()), "{} attempts", times.len());
    for w in times.windows(2) {
        assert!(
            w[1] - w[0] >= Duration::from_millis(2500),
            "attempts too close: {:?}",
            w[1] - w[0]
        );
    }
    assert_eq!(a.stderr().matches("no CONNACK").count(), 1);
    // A broker that stops answering mid-connection (SIGSTOP keeps its socket open).
    wait_counter(&a, 1, "messages_received", 10 * SEC, |v| v == 0);
    b.signal(libc::SIGSTOP);
    let stopped = Instant::now();
    a.wait_stderr("no answer to a keep-alive ping", 20 * SEC);
    let took = stopped.elapsed();
    // keepalive (2 s) + ping_timeout (1 s) + the 1 s check tick, with room for a loaded machine.
    assert!(took < Duration::from_secs(8), "detected after {took:?}");
    b.signal(libc::SIGCONT);
    wait_counter(&a, 1, "reconnects", 20 * SEC, |v| v >= 1);
    // Published until one arrives: the new subscription's moment is the broker's to choose.
    let start = Instant::now();
    while !seqs(&a.lines(), "m").contains(&7) {
        assert!(
            start.elapsed() < 30 * SEC,
            "no flow after the broker came back:\n{}",
            a.stderr()
        );
        b.publish("t", 0, &["m seq=7i".to_owned()]);
        std::thread::sleep(Duration::from_millis(300));
    }
    let lines = a.lines();
    assert!(counter(&lines, 0, "restarts") == Some(0) && counter(&lines, 1, "restarts") == Some(0));
    b.stop();
}

#[test]
fn mqtt_stalled_stdout_keeps_memory_bounded_and_loses_nothing() {
    let b = Broker::start("");
    let p = b.port;
    let mut a = Agent::start_with(
        &format!(
            "[agent]\ninterval = \"1s\"\nmetric_buffer_limit = 2000\n[[inputs.internal]]\n\
             [[inputs.mqtt_consumer]]\nservers = [\"tcp://127.0.0.1:{p}\"]\ntopics = [\"big\"]\nqos = 1\n\
             client_id = \"stall-test\"\npersistent_session = true\nmax_undelivered_messages = 50\n"
        ),
        &[],
        false,
    );
    b.wait_log("SUBSCRIBE", 10 * SEC, &a);
    std::thread::sleep(SEC);
    let rss0 = a.rss_bytes();
    // 40 MB of lines: far more than the queue (2000 lines, 2 MB) and the pipe can hold.
    const N: i64 = 40_000;
    let pad = "x".repeat(1000);
    let msgs: Vec<String> = (0..N)
        .map(|i| format!("big seq={i}i,pad=\"{pad}\""))
        .collect();
    b.publish("big", 1, &msgs);
    std::thread::sleep(3 * SEC);
    let rss1 = a.rss_bytes();
    assert!(
        rss1 < rss0 + 12 * 1024 * 1024,
        "RSS grew from {rss0} to {rss1} while stdout was stalled"
    );
    a.resume_reading();
    let lines = a.wait_for("every message after resuming", 120 * SEC, |l| {
        unique(&seqs(l, "big")).len() == N as usize
    });
    assert_eq!(unique(&seqs(&lines, "big")), range(0, N));
    let lines = a.wait_for("a self-metric line after the backlog", 10 * SEC, |l| {
        l.len() > lines.len()
            && l[lines.len()..]
                .iter()
                .any(|x| x.starts_with("metrics_agent,"))
    });
    let agent = lines
        .iter()
        .rev()
        .find(|l| l.starts_with("metrics_agent,"))
        .unwrap();
    // Only other inputs' lines may be evicted while the queue is full of lossless ones.
    let a_line = parse_line(agent);
    let (dropped, gathered) = (
        a_line.int("metrics_dropped").unwrap(),
        a_line.int("metrics_gathered").unwrap(),
    );
    assert!(dropped <= gathered - N, "{agent}");
}

#[test]
fn mqtt_topics_changed_by_sighup_with_persistent_session() {
    let b = Broker::start("");
    let p = b.port;
    let conf = |topics: &str| {
        format!(
            "{AGENT}[[inputs.mqtt_consumer]]\nservers = [\"tcp://127.0.0.1:{p}\"]\ntopics = [{topics}]\nqos = 1\n\
             client_id = \"hup-test\"\npersistent_session = true\n"
        )
    };
    let a = Agent::start(&conf("\"old\""));
    wait_counter(&a, 0, "messages_received", 10 * SEC, |v| v == 0);
    b.publish("old", 1, &["m seq=1i".to_owned()]);
    a.wait_for("old topic", 10 * SEC, |l| seqs(l, "m") == [1]);
    a.write_config(&conf("\"new\""));
    a.signal(libc::SIGHUP);
    b.wait_log("UNSUBSCRIBE", 20 * SEC, &a);
    // In publish order: were "old" still subscribed, 2 would arrive before 3.
    b.publish("old", 1, &["m seq=2i".to_owned()]);
    b.publish("new", 1, &["m seq=3i".to_owned()]);
    let lines = a.wait_for("new topic", 20 * SEC, |l| seqs(l, "m").contains(&3));
    assert_eq!(seqs(&lines, "m"), [1, 3]);
}

#[test]
fn mqtt_tls_with_a_generated_ca() {
    let pki = make_pki();
    let tls_port = free_port();
    let b = Broker::start(&format!(
        "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
        pki.path("ca.pem").display(),
        pki.path("leaf.pem").display(),
        pki.path("leaf.key").display()
    ));
    let a = Agent::start(&format!(
        "{AGENT}[[inputs.mqtt_consumer]]\nservers = [\"ssl://localhost:{tls_port}\"]\ntopics = [\"t\"]\ntls_ca = \"{}\"\n\
         [[inputs.mqtt_consumer]]\nservers = [\"ssl://localhost:{tls_port}\"]\ntopics = [\"t\"]\n",
        pki.path("ca.pem").display()
    ));
    wait_counter(&a, 0, "messages_received", 10 * SEC, |v| v == 0);
    b.wait_log("SUBSCRIBE", 10 * SEC, &a);
    b.publish("t", 0, &["m seq=5i".to_owned()]);
    let lines = a.wait_for("message over TLS", 10 * SEC, |l| seqs(l, "m") == [5]);
    // The second instance trusts only the system roots: it does not connect, and says why.
    a.wait_stderr("inputs.mqtt_consumer", 10 * SEC);
    let err = a.stderr();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert_eq!(counter(&lines, 1, "messages_received"), Some(0));
}

#[test]
fn mqtt_websocket_transport_at_qos2() {
    let ws = free_port();
    let b = Broker::start(&format!("listener {ws} 127.0.0.1\nprotocol websockets\n"));
    let a = Agent::start(&format!(
        "{AGENT}[[inputs.mqtt_consumer]]\nservers = [\"ws://127.0.0.1:{ws}/mqtt\"]\ntopics = [\"w/+\"]\nqos = 2\n"
    ));
    b.wait_log("SUBSCRIBE", 10 * SEC, &a);
    b.publish(
        "w/x",
        2,
        &(0..100).map(|i| format!("m seq={i}i")).collect::<Vec<_>>(),
    );
    let lines = a.wait_for("every message over websockets", 20 * SEC, |l| {
        unique(&seqs(l, "m")).len() == 100
    });
    assert_eq!(
        seqs(&lines, "m"),
        (0..100).collect::<Vec<_>>(),
        "exactly once, in order"
    );
    let lines = wait_counter(&a, 0, "acknowledged", 10 * SEC, |v| v >= 100);
    assert_eq!(counter(&lines, 0, "acknowledged"), Some(100));
    // Connected but silent is visible: the gauge grows, and a message resets it.
    let lines = wait_counter(&a, 0, "seconds_since_last_message", 10 * SEC, |v| v >= 3);
    let before = counter(&lines, 0, "seconds_since_last_message").unwrap();
    b.publish("w/x", 2, &numbered(100..101));
    // Without the reset it could only stay at `before` or grow.
    wait_counter(&a, 0, "seconds_since_last_message", 10 * SEC, |v| {
        v < before
    });
}

#[test]
fn mqtt_servers_are_tried_in_turn() {
    let closed = free_port();
    let b = Broker::start("");
    let p = b.port;
    let a = Agent::start(&format!(
        "{AGENT}[[inputs.mqtt_consumer]]\nservers = [\"tcp://127.0.0.1:{closed}\", \"tcp://127.0.0.1:{p}\"]\ntopics = [\"t\"]\n"
    ));
    a.wait_stderr(&format!("tcp://127.0.0.1:{closed}"), 10 * SEC);
    let start = Instant::now();
    while !seqs(&a.lines(), "m").contains(&1) {
        assert!(
            start.elapsed() < 20 * SEC,
            "never used the second server:\n{}",
            a.stderr()
        );
        b.publish("t", 0, &numbered(1..2));
        std::thread::sleep(Duration::from_millis(300));
    }
}
