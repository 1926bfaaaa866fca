//! Test harness: runs the real `metrics-agent` binary, collects its stdout lines and stderr, sends
//! it signals, and checks lines against a real InfluxDB 1.x started on loopback.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

pub(crate) fn agent_bin() -> &'static str {
    env!("CARGO_BIN_EXE_metrics-agent")
}

/// A running agent. Its stdout and stderr are read on threads into shared buffers.
pub(crate) struct Agent {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    /// Bytes after the last newline when stdout closed (must stay empty: no partial lines).
    partial: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<String>>,
    stdout_reader: Option<std::thread::JoinHandle<()>>,
    pub dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

impl Agent {
    /// Starts the agent on `config` (TOML text) with stdin and stdout as pipes, like telegraf.
    pub(crate) fn start(config: &str) -> Agent {
        Self::start_with(config, &[], true)
    }

    /// `read_stdout = false` leaves stdout unread (a stalled telegraf) until `resume_reading`.
    pub(crate) fn start_with(config: &str, extra_args: &[&str], read_stdout: bool) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let config_path = dir.path().join("agent.toml");
        std::fs::write(&config_path, config).expect("write config");
        let mut child = Command::new(agent_bin())
            .arg("--config")
            .arg(&config_path)
            .args(extra_args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn metrics-agent");
        let stdin = child.stdin.take();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let partial = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err_pipe = child.stderr.take().expect("stderr");
        let err_buf = stderr.clone();
        std::thread::spawn(move || {
            let mut r = BufReader::new(&mut err_pipe);
            let mut line = String::new();
            while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                err_buf.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let mut agent = Agent {
            child,
            stdin,
            lines,
            partial,
            stderr,
            stdout_reader: None,
            dir,
            config_path,
        };
        if read_stdout {
            agent.resume_reading();
        }
        agent
    }

    /// Starts (or resumes) reading stdout.
    pub(crate) fn resume_reading(&mut self) {
        let Some(out) = self.child.stdout.take() else {
            return;
        };
        let lines = self.lines.clone();
        let partial = self.partial.clone();
        self.stdout_reader = Some(std::thread::spawn(move || read_lines(out, lines, partial)));
    }

    /// Closes our end of the agent's stdout without reading it (a reader that went away).
    pub(crate) fn close_stdout(&mut self) {
        self.child.stdout.take();
    }

    /// Replaces the config file (for reload tests).
    pub(crate) fn write_config(&self, config: &str) {
        let tmp = self.config_path.with_extension("tmp");
        std::fs::write(&tmp, config).expect("write config");
        std::fs::rename(&tmp, &self.config_path).expect("rename config");
    }

    pub(crate) fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub(crate) fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid(), sig) };
    }

    pub(crate) fn send_stdin(&mut self, bytes: &[u8]) {
        if let Some(s) = self.stdin.as_mut() {
            let _ = s.write_all(bytes);
            let _ = s.flush();
        }
    }

    pub(crate) fn close_stdin(&mut self) {
        self.stdin.take();
    }

    pub(crate) fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    pub(crate) fn line_count(&self) -> usize {
        self.lines.lock().unwrap().len()
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the lines so far; panics with the agent's stderr on time-out.
    pub(crate) fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        wait_for_lines(what, timeout, || self.lines(), || self.stderr(), pred)
    }

    /// Waits until stderr contains `needle`.
    pub(crate) fn wait_stderr(&self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while !self.stderr().contains(needle) {
            if start.elapsed() > timeout {
                panic!(
                    "timed out waiting for {needle:?} on stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for exit; returns the status and how long it took. Then drains stdout fully.
    pub(crate) fn wait_exit(&mut self, timeout: Duration) -> (ExitStatus, Duration) {
        let start = Instant::now();
        loop {
            if let Some(st) = self.child.try_wait().expect("try_wait") {
                let took = start.elapsed();
                if let Some(r) = self.stdout_reader.take() {
                    r.join().expect("stdout reader");
                }
                return (st, took);
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!(
                    "agent did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Bytes left after the last newline when stdout closed: a partial line if non-empty.
    pub(crate) fn partial_line(&self) -> Vec<u8> {
        self.partial.lock().unwrap().clone()
    }

    /// File descriptors and threads of the agent process right now.
    pub(crate) fn fds_and_threads(&self) -> (usize, usize) {
        let pid = self.pid();
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|d| d.count())
            .unwrap_or(0);
        let threads = std::fs::read_dir(format!("/proc/{pid}/task"))
            .map(|d| d.count())
            .unwrap_or(0);
        (fds, threads)
    }

    pub(crate) fn rss_bytes(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        s.lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }
}

/// Polls `lines` until `pred` holds; on time-out panics with `stderr` (the agent's log) for context.
pub(crate) fn wait_for_lines(
    what: &str,
    timeout: Duration,
    lines: impl Fn() -> Vec<String>,
    stderr: impl Fn() -> String,
    pred: impl Fn(&[String]) -> bool,
) -> Vec<String> {
    let start = Instant::now();
    loop {
        let lines = lines();
        if pred(&lines) {
            return lines;
        }
        if start.elapsed() > timeout {
            panic!(
                "timed out after {timeout:?} waiting for {what}; {} lines so far, last: {:?}\nstderr:\n{}",
                lines.len(),
                lines.last(),
                stderr()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn read_lines(mut out: impl Read, lines: Arc<Mutex<Vec<String>>>, partial: Arc<Mutex<Vec<u8>>>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let n = match out.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        pending.extend_from_slice(&buf[..n]);
        if let Some(last_nl) = pending.iter().rposition(|&b| b == b'\n') {
            let complete: Vec<u8> = pending.drain(..=last_nl).collect();
            let mut l = lines.lock().unwrap();
            for line in complete.split(|&b| b == b'\n').filter(|s| !s.is_empty()) {
                l.push(String::from_utf8(line.to_vec()).expect("stdout is UTF-8"));
            }
        }
    }
    *partial.lock().unwrap() = pending;
}

/// Intervals missed by a stream of gather timestamps at `interval`: a gap of about k intervals
/// means k - 1 missed ticks.
pub(crate) fn missed_intervals(ts: &[i64], interval: Duration) -> i64 {
    let iv = interval.as_nanos() as f64;
    ts.windows(2)
        .map(|w| ((w[1] - w[0]) as f64 / iv).round() as i64 - 1)
        .filter(|&m| m > 0)
        .sum()
}

/// Runs `metrics-agent --once` on `config`; returns (exit status, stdout lines, stderr).
pub(crate) fn run_once(config: &str) -> (ExitStatus, Vec<String>, String) {
    run_once_env(config, &[])
}

/// [`run_once`] with environment variables set (`Some`) or removed (`None`).
pub(crate) fn run_once_env(
    config: &str,
    env: &[(&str, Option<&str>)],
) -> (ExitStatus, Vec<String>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("agent.toml");
    std::fs::write(&path, config).expect("write config");
    let mut cmd = Command::new(agent_bin());
    for (k, v) in env {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    let out = cmd
        .arg("--config")
        .arg(&path)
        .arg("--once")
        .stdin(Stdio::null())
        .output()
        .expect("run agent");
    let stdout = String::from_utf8(out.stdout).expect("utf8");
    let lines = stdout.lines().map(str::to_owned).collect();
    (
        out.status,
        lines,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the agent binary with arguments only; returns (status, stdout, stderr).
pub(crate) fn run_args(args: &[&str]) -> (ExitStatus, String, String) {
    let out = Command::new(agent_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run agent");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

// ---------------------------------------------------------------------------------------------
// Line-protocol reading for assertions (InfluxDB's rules: `\` escapes the next byte when scanning;
// tags and keys unescape `\,` `\=` `\ `; strings unescape `\"` `\\`).

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Line {
    pub measurement: String,
    pub tags: Vec<(String, String)>,
    pub fields: Vec<(String, String)>,
    pub timestamp: i64,
}

impl Line {
    pub(crate) fn tag(&self, k: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    /// Raw field text (`12i`, `1.5`, `"s"`, `true`).
    pub(crate) fn field(&self, k: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn float(&self, k: &str) -> Option<f64> {
        self.field(k)?.parse().ok()
    }

    pub(crate) fn int(&self, k: &str) -> Option<i64> {
        self.field(k)?.strip_suffix('i')?.parse().ok()
    }

    /// String field value, unescaped.
    pub(crate) fn string(&self, k: &str) -> Option<String> {
        let raw = self.field(k)?;
        let inner = raw.strip_prefix('"')?.strip_suffix('"')?;
        Some(unescape(inner, &['"', '\\']))
    }
}

fn unescape(s: &str, specials: &[char]) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\'
            && let Some(&n) = chars.peek()
            && specials.contains(&n)
        {
            out.push(n);
            chars.next();
            continue;
        }
        out.push(c);
    }
    out
}

/// Splits at unescaped `delim` outside quotes (quotes only matter in the field set, and there
/// only in values: a `"` in a field key is a plain character, as InfluxDB 1.x reads it).
fn split_unescaped(s: &str, delim: u8, quotes: bool) -> Vec<&str> {
    let b = s.as_bytes();
    let mut parts = Vec::new();
    let (mut start, mut i, mut in_q, mut in_value) = (0, 0, false, false);
    while i < b.len() {
        let c = b[i];
        if c == b'\\' {
            i += 2;
            continue;
        }
        if quotes && in_value && c == b'"' {
            in_q = !in_q;
        } else if !in_q {
            match c {
                b'=' => in_value = true,
                b',' | b' ' => in_value = false,
                _ => {}
            }
            if c == delim {
                parts.push(&s[start..i]);
                start = i + 1;
            }
        }
        i += 1;
    }
    parts.push(&s[start.min(s.len())..]);
    parts
}

pub(crate) fn parse_line(text: &str) -> Line {
    // Series (measurement and tags) ends at the first unescaped space; quotes are literal there.
    let series_end = split_unescaped(text, b' ', false)[0].len();
    let series_text = &text[..series_end];
    let rest = text
        .get(series_end + 1..)
        .unwrap_or_else(|| panic!("no field set in {text:?}"));
    let sections = split_unescaped(rest, b' ', true);
    assert_eq!(
        sections.len(),
        2,
        "line must have series, fields, timestamp: {text:?}"
    );
    let series = split_unescaped(series_text, b',', false);
    let key_specials = [',', '=', ' '];
    let measurement = unescape(series[0], &[',', ' ']);
    let tag = |s: &str| {
        let parts = split_unescaped(s, b'=', false);
        assert_eq!(parts.len(), 2, "bad tag {s:?} in {text:?}");
        (
            unescape(parts[0], &key_specials),
            unescape(parts[1], &key_specials),
        )
    };
    let field = |s: &str| {
        let parts = split_unescaped(s, b'=', true);
        assert_eq!(parts.len(), 2, "bad field {s:?} in {text:?}");
        (unescape(parts[0], &key_specials), parts[1].to_owned())
    };
    let tags = series[1..].iter().map(|t| tag(t)).collect();
    let fields = split_unescaped(sections[0], b',', true)
        .iter()
        .map(|f| field(f))
        .collect();
    Line {
        measurement,
        tags,
        fields,
        timestamp: sections[1]
            .parse()
            .unwrap_or_else(|_| panic!("bad timestamp in {text:?}")),
    }
}

pub(crate) fn parse_all(lines: &[String]) -> Vec<Line> {
    lines.iter().map(|l| parse_line(l)).collect()
}

// ---------------------------------------------------------------------------------------------
// A real InfluxDB 1.x on loopback, one per test binary.

pub(crate) struct Influx {
    pub addr: String,
    _child: Mutex<Child>,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The shared InfluxDB, started on first use. Fails the test if `influxd` is not installed: the
/// test script (`tests/run.sh`) installs Debian's `influxdb` package.
/// Starts a server that lives as long as the test binary: the static that owns it is never
/// dropped, so the child is told to die with us (PR_SET_PDEATHSIG). That signal follows the
/// *thread* that forked, so the fork happens on a thread that never ends.
pub(crate) fn spawn_for_life_of_tests(cmd: &mut Command) -> std::io::Result<Child> {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; the closure touches nothing else.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    let cmd = std::mem::replace(cmd, Command::new("true"));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut cmd = cmd;
        let _ = tx.send(cmd.spawn());
        loop {
            std::thread::park();
        }
    });
    rx.recv().expect("spawner thread")
}

pub(crate) fn influx() -> &'static Influx {
    static INFLUX: OnceLock<Influx> = OnceLock::new();
    INFLUX.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let (http, rpc) = (free_port(), free_port());
        let d = dir.path().display();
        let conf = format!(
            "reporting-disabled = true\nbind-address = \"127.0.0.1:{rpc}\"\n\
             [meta]\n dir = \"{d}/meta\"\n\
             [data]\n dir = \"{d}/data\"\n wal-dir = \"{d}/wal\"\n query-log-enabled = false\n\
             [monitor]\n store-enabled = false\n\
             [http]\n bind-address = \"127.0.0.1:{http}\"\n log-enabled = false\n"
        );
        let conf_path = dir.path().join("influxdb.conf");
        std::fs::write(&conf_path, conf).expect("write influx conf");
        let child = spawn_for_life_of_tests(
            Command::new("influxd")
                .arg("-config")
                .arg(&conf_path)
                .stdout(Stdio::null())
                .stderr(Stdio::null()),
        )
        .expect("influxd not found: run tests via tests/run.sh, which installs Debian's influxdb");
        let addr = format!("127.0.0.1:{http}");
        let start = Instant::now();
        while http_request(&addr, "GET", "/ping", b"").map(|(s, _)| s) != Ok(204) {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "influxd did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let influx = Influx {
            addr,
            _child: Mutex::new(child),
            _dir: dir,
        };
        influx.query("CREATE DATABASE test");
        influx
    })
}

impl Influx {
    /// Writes lines to database `test`; returns the HTTP status and body (204 = all accepted).
    pub(crate) fn write(&self, lines: &[String]) -> (u16, String) {
        let body = lines.join("\n") + "\n";
        http_request(
            &self.addr,
            "POST",
            "/write?db=test&precision=ns",
            body.as_bytes(),
        )
        .expect("influx write")
    }

    /// Asserts InfluxDB accepts every line.
    pub(crate) fn assert_accepts(&self, lines: &[String]) {
        assert!(!lines.is_empty(), "no lines to check");
        let (status, body) = self.write(lines);
        assert_eq!(
            status,
            204,
            "InfluxDB refused lines: {body}\nlines:\n{}",
            lines.join("\n")
        );
    }

    /// Runs an InfluxQL query against database `test`; returns the JSON body.
    pub(crate) fn query(&self, q: &str) -> String {
        let path = format!("/query?db=test&q={}", urlencode(q));
        let (status, body) = http_request(&self.addr, "POST", &path, b"").expect("influx query");
        assert_eq!(status, 200, "query {q:?} failed: {body}");
        body
    }
}

pub(crate) fn urlencode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Minimal HTTP/1.1 request over a fresh connection; returns (status, body).
pub(crate) fn http_request(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect(addr).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    s.write_all(body).map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("bad response {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

pub(crate) fn path_exists(p: &str) -> bool {
    Path::new(p).exists()
}

/// The measurement of a raw line.
pub(crate) fn measurement(line: &str) -> &str {
    line.split([',', ' ']).next().unwrap_or("")
}

/// A field of the last `metrics_agent_gather` line of the instance with `alias`.
pub(crate) fn gather_stat(lines: &[String], alias: &str, field: &str) -> Option<i64> {
    lines
        .iter()
        .rev()
        .filter(|l| measurement(l) == "metrics_agent_gather")
        .map(|l| parse_line(l))
        .find(|l| l.tag("alias") == Some(alias))?
        .int(field)
}
