//! Network probes against real servers on loopback: nginx (HTTP, HTTPS with a generated CA),
//! dnsmasq, in-test TCP/UDP servers, a header-delaying HTTP server for the phase timings.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn wait_port(port: u16, what: &str) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{what} did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the agent once on `config`; returns the lines (checked by InfluxDB) parsed.
pub(crate) fn once(config: &str) -> Vec<Line> {
    let (status, lines, stderr) = run_once(config);
    assert!(status.success(), "agent failed: {stderr}");
    influx().assert_accepts(&lines);
    if std::env::var_os("SHOW_LINES").is_some() {
        eprintln!("{}", lines.join("\n"));
    }
    parse_all(&lines)
}

pub(crate) fn only<'a>(lines: &'a [Line], measurement: &str) -> Vec<&'a Line> {
    lines
        .iter()
        .filter(|l| l.measurement == measurement)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Certificates and nginx

pub(crate) struct Pki {
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub(crate) fn path(&self, f: &str) -> PathBuf {
        self.dir.path().join(f)
    }
}

pub(crate) fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl not found: tests/run.sh installs it");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `-newkey` arguments of an EC P-256 key.
pub(crate) const EC_P256: &[&str] = &["ec", "-pkeyopt", "ec_paramgen_curve:P-256"];

/// A self-signed CA `NAME.pem` with its key `NAME.key`, EC P-256, valid `days`.
pub(crate) fn new_root_ca(d: &Path, name: &str, subj: &str, days: &str) {
    let (key, pem) = (format!("{name}.key"), format!("{name}.pem"));
    let mut args = vec!["req", "-x509", "-nodes", "-newkey"];
    args.extend(EC_P256);
    args.extend([
        "-keyout",
        &key,
        "-out",
        &pem,
        "-days",
        days,
        "-subj",
        subj,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    ]);
    openssl(d, &args);
}

/// `NAME.pem` for a new key `NAME.key` (`newkey`: `-newkey` arguments), signed by the CA
/// `ca.pem`/`ca.key` (file stem `ca`) with the extensions `ext`, valid `days`.
pub(crate) fn new_signed(
    d: &Path,
    name: &str,
    newkey: &[&str],
    subj: &str,
    ca: &str,
    ext: &str,
    days: &str,
) {
    let (key, csr, cnf, pem) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.cnf"),
        format!("{name}.pem"),
    );
    let mut args = vec!["req", "-nodes", "-newkey"];
    args.extend(newkey);
    args.extend(["-keyout", &key, "-out", &csr, "-subj", subj]);
    openssl(d, &args);
    std::fs::write(d.join(&cnf), ext).unwrap();
    let (ca_pem, ca_key) = (format!("{ca}.pem"), format!("{ca}.key"));
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_pem,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            days,
            "-extfile",
            &cnf,
        ],
    );
}

/// A root CA and a leaf for localhost/127.0.0.1 valid 10 days; `fullchain.pem` = leaf + CA.
pub(crate) fn make_pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    new_root_ca(d, "ca", "/CN=Test Root CA", "30");
    new_signed(
        d,
        "leaf",
        EC_P256,
        "/CN=localhost/O=Probe Test",
        "ca",
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        "10",
    );
    // A client certificate for mutual TLS.
    new_signed(
        d,
        "client",
        EC_P256,
        "/CN=probe client",
        "ca",
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
        "10",
    );
    let chain = std::fs::read_to_string(d.join("leaf.pem")).unwrap()
        + &std::fs::read_to_string(d.join("ca.pem")).unwrap();
    std::fs::write(d.join("fullchain.pem"), chain).unwrap();
    Pki { dir }
}

pub(crate) struct Nginx {
    _process: NginxProcess,
    pub http: u16,
    pub https: u16,
    /// HTTPS requiring a client certificate signed by the test CA.
    pub mtls: u16,
    pub pki: Pki,
}

/// An nginx master started on a config of its own (in `dir`).
pub(crate) struct NginxProcess {
    child: Child,
    _dir: tempfile::TempDir,
}

/// SIGTERM to the master, which stops its workers before exiting (SIGKILL would orphan the
/// workers, still serving the test's ports); SIGKILL only if it has not exited after 5 s.
impl Drop for NginxProcess {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts nginx in the foreground on `body` (the config after the common head: pid, logs,
/// `events`), e.g. an `http { … }` or a `stream { … }` block, and waits for `ports`.
/// `load_modules`: lines placed before everything else (`load_module …;`).
pub(crate) fn run_nginx(load_modules: &str, body: &str, ports: &[u16]) -> NginxProcess {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let conf = format!(
        "{load_modules}daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\n\
         error_log {d}/error.log;\nevents {{ worker_connections 256; }}\n{}",
        body.replace("{dir}", &d.to_string())
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let child = Command::new("nginx")
        .arg("-p")
        .arg(dir.path())
        .arg("-e")
        .arg(dir.path().join("error.log"))
        .arg("-c")
        .arg(&conf_path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx not found: tests/run.sh installs it");
    let process = NginxProcess { child, _dir: dir };
    for p in ports {
        wait_port(*p, "nginx");
    }
    process
}

/// The body of /hello (20 bytes).
pub(crate) const HELLO: &str = "hello metrics world\n";

pub(crate) fn start_nginx() -> Nginx {
    let pki = make_pki();
    let (http, https, mtls) = (free_port(), free_port(), free_port());
    let ca = pki.path("ca.pem");
    let cert = pki.path("fullchain.pem");
    let key = pki.path("leaf.key");
    let body = format!(
        "http {{\n access_log off;\n client_body_temp_path {{dir}}/cb;\n proxy_temp_path {{dir}}/px;\n\
          fastcgi_temp_path {{dir}}/fc;\n uwsgi_temp_path {{dir}}/uw;\n scgi_temp_path {{dir}}/sc;\n\
          server {{\n  listen 127.0.0.1:{http};\n  listen 127.0.0.1:{https} ssl http2;\n\
           ssl_certificate {};\n  ssl_certificate_key {};\n\
           location = /hello {{ default_type text/plain; return 200 \"{}\"; }}\n\
           location = /missing {{ return 404; }}\n\
           location = /redirect {{ return 302 /hello; }}\n\
           location / {{ return 204; }}\n  }}\n\
          server {{\n  listen 127.0.0.1:{mtls} ssl;\n  ssl_certificate {};\n  ssl_certificate_key {};\n\
           ssl_client_certificate {};\n  ssl_verify_client on;\n  location / {{ return 200 \"mtls ok\"; }}\n  }}\n}}\n",
        cert.display(),
        key.display(),
        HELLO.replace('\n', "\\n"),
        cert.display(),
        key.display(),
        ca.display(),
    );
    let process = run_nginx("", &body, &[http, https, mtls]);
    Nginx {
        _process: process,
        http,
        https,
        mtls,
        pki,
    }
}

// ---------------------------------------------------------------------------------------------
// http_response

#[test]
fn http_against_nginx() {
    let ng = start_nginx();
    let (h, s) = (ng.http, ng.https);
    let ca = ng.pki.path("ca.pem");
    let ca = ca.display();
    let config = format!(
        "[[inputs.http_response]]\n  urls = [\"http://127.0.0.1:{h}/hello\"]\n  response_string_match = \"metrics w.rld\"\n  response_status_code = 200\n\
         [[inputs.http_response]]\n  urls = [\"http://127.0.0.1:{h}/missing\"]\n  response_status_code = 200\n\
         [[inputs.http_response]]\n  urls = [\"http://127.0.0.1:{h}/hello\"]\n  response_string_match = \"absent\"\n\
         [[inputs.http_response]]\n  urls = [\"https://localhost:{s}/hello\"]\n  tls_ca = \"{ca}\"\n  ip_version = \"ipv4\"\n  http2 = true\n\
         [[inputs.http_response]]\n  urls = [\"https://127.0.0.1:{s}/hello\"]\n  alias = \"noca\"\n\
         [[inputs.http_response]]\n  urls = [\"https://127.0.0.1:{s}/hello\"]\n  insecure_skip_verify = true\n\
         [[inputs.http_response]]\n  urls = [\"http://127.0.0.1:{h}/redirect\"]\n  follow_redirects = true\n\
         [[inputs.http_response]]\n  urls = [\"http://127.0.0.1:{h}/redirect\"]\n\
         [[inputs.http_response]]\n  urls = [\"http://127.0.0.1:{h}/hello\"]\n  response_body_field = \"body\"\n  http_header_tags = {{ \"Server\" = \"server_software\", \"X-Absent\" = \"absent\" }}\n"
    );
    let lines = once(&config);
    let http = only(&lines, "http_response");
    assert_eq!(http.len(), 9, "{http:#?}");
    let find = |url: &str, pred: &dyn Fn(&Line) -> bool| -> Line {
        http.iter()
            .find(|l| l.tag("server") == Some(url) && pred(l))
            .map(|l| (*l).clone())
            .unwrap_or_else(|| panic!("no line for {url}: {http:#?}"))
    };
    let hello = format!("http://127.0.0.1:{h}/hello");
    // Success, string and status match, body length, plain http: no DNS, no TLS phase.
    let ok = find(&hello, &|l| l.int("response_string_match") == Some(1));
    assert_eq!(ok.tag("result"), Some("success"));
    assert_eq!(ok.tag("status_code"), Some("200"));
    assert_eq!(ok.tag("method"), Some("GET"));
    assert_eq!(ok.int("result_code"), Some(0));
    assert_eq!(ok.int("http_response_code"), Some(200));
    assert_eq!(ok.int("response_status_code_match"), Some(1));
    assert_eq!(ok.int("content_length"), Some(HELLO.len() as i64));
    assert!(ok.float("dns_time").is_none() && ok.float("tls_time").is_none());
    for f in ["connect_time", "ttfb", "response_time", "transfer_time"] {
        assert!(ok.float(f).unwrap() >= 0.0, "{f}");
    }
    assert!(ok.int("tls_cert_expiry_s").is_none());
    // telegraf's http_header_tags and response_body_field.
    let tagged = find(&hello, &|l| l.tag("server_software").is_some());
    assert!(tagged.tag("server_software").unwrap().starts_with("nginx"));
    assert!(tagged.tag("absent").is_none());
    // The encoder writes the newline as `\n` (telegraf's serializer does the same).
    assert_eq!(tagged.string("body"), Some(HELLO.replace('\n', "\\n")));
    // String mismatch.
    let mis = find(&hello, &|l| l.int("response_string_match") == Some(0));
    assert_eq!(mis.tag("result"), Some("response_string_mismatch"));
    assert_eq!(mis.int("result_code"), Some(1));
    // Status mismatch.
    let nf = find(&format!("http://127.0.0.1:{h}/missing"), &|_| true);
    assert_eq!(nf.tag("status_code"), Some("404"));
    assert_eq!(nf.tag("result"), Some("response_status_code_mismatch"));
    assert_eq!(nf.int("result_code"), Some(6));
    assert_eq!(nf.int("response_status_code_match"), Some(0));
    // HTTPS with the CA: verified, HTTP/2 by ALPN, DNS for localhost, leaf expiry ~10 days.
    let tls = find(&format!("https://localhost:{s}/hello"), &|_| true);
    assert_eq!(tls.tag("result"), Some("success"), "{tls:?}");
    assert_eq!(tls.string("http_version").as_deref(), Some("2"));
    assert!(tls.float("dns_time").is_some());
    assert!(tls.float("tls_time").unwrap() > 0.0);
    assert_eq!(tls.int("tls_verification_code"), Some(0));
    assert!(tls.field("tls_verification_error").is_none());
    let exp = tls.int("tls_cert_expiry_s").unwrap();
    assert!((9 * 86400..=10 * 86400).contains(&exp), "{exp}");
    assert_eq!(tls.int("content_length"), Some(HELLO.len() as i64));
    // No CA: the verification failure is data, the probe fails as telegraf's would.
    let https_ip = format!("https://127.0.0.1:{s}/hello");
    let bad = find(&https_ip, &|l| {
        l.int("tls_verification_code") == Some(1) && l.tag("result") != Some("success")
    });
    assert_eq!(bad.tag("result"), Some("connection_failed"));
    assert_eq!(bad.int("result_code"), Some(3));
    assert!(
        bad.string("tls_verification_error")
            .unwrap()
            .contains("UnknownIssuer"),
        "{bad:?}"
    );
    assert!(bad.float("connect_time").is_some());
    assert!(bad.int("tls_cert_expiry_s").is_some());
    assert!(bad.float("response_time").is_none() && bad.int("http_response_code").is_none());
    assert!(bad.tag("status_code").is_none());
    // insecure_skip_verify: completes over HTTP/1.1 (the default, as telegraf), still reports
    // the failed verification.
    let skip = find(&https_ip, &|l| l.tag("result") == Some("success"));
    assert_eq!(skip.int("tls_verification_code"), Some(1));
    assert_eq!(skip.string("http_version").as_deref(), Some("1.1"));
    // Redirects.
    let red = format!("http://127.0.0.1:{h}/redirect");
    let followed = find(&red, &|l| l.int("redirects") == Some(1));
    assert_eq!(followed.int("http_response_code"), Some(200));
    assert_eq!(followed.int("content_length"), Some(HELLO.len() as i64));
    let not = find(&red, &|l| l.int("redirects") == Some(0));
    assert_eq!(not.int("http_response_code"), Some(302));
}

#[test]
fn http_failures_keep_the_phases_reached() {
    let closed = free_port();
    // A server that accepts and never answers.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let sp = silent.local_addr().unwrap().port();
    // Four more URLs on the silent server: probed one after another they would take 5 × 500 ms.
    let slow: String = (0..4)
        .map(|i| format!(", \"http://127.0.0.1:{sp}/slow{i}\""))
        .collect();
    let config = format!(
        "[[inputs.http_response]]\n  urls = [\"http://127.0.0.1:{closed}/\", \"http://127.0.0.1:{sp}/\", \"http://no-such-host.invalid/\"{slow}]\n  response_timeout = \"500ms\"\n"
    );
    // The reference, in the same run: the agent probing the silent server alone (start-up, one
    // 500 ms timeout, exit), however slow the machine is right now.
    let alone = format!(
        "[[inputs.http_response]]\n  urls = [\"http://127.0.0.1:{sp}/\"]\n  response_timeout = \"500ms\"\n"
    );
    let start = Instant::now();
    let (status, _, stderr) = run_once(&alone);
    let reference = start.elapsed();
    assert!(status.success(), "{stderr}");
    let start = Instant::now();
    let (status, raw, stderr) = run_once(&config);
    let took = start.elapsed();
    assert!(status.success(), "{stderr}");
    // Concurrent probes: one slow target does not add to another. One after another, the four
    // more timeouts would add 2 s; half a second covers two runs' different start-up times.
    assert!(
        took < reference + Duration::from_millis(500),
        "{took:?} for seven targets, {reference:?} for one"
    );
    influx().assert_accepts(&raw);
    let lines = parse_all(&raw);
    let http = only(&lines, "http_response");
    assert_eq!(http.len(), 7);
    let timeouts = http
        .iter()
        .filter(|l| l.tag("result") == Some("timeout"))
        .count();
    assert!(timeouts >= 5, "{http:#?}");
    let by = |p: &str| {
        *http
            .iter()
            .find(|l| l.tag("server").unwrap().ends_with(p))
            .unwrap()
    };
    let refused = by(&format!("{closed}/"));
    assert_eq!(refused.tag("result"), Some("connection_failed"));
    assert!(refused.float("connect_time").is_none());
    let slow = by(&format!("{sp}/"));
    assert_eq!(slow.tag("result"), Some("timeout"));
    assert_eq!(slow.int("result_code"), Some(4));
    assert!(slow.float("connect_time").is_some());
    assert!(slow.float("ttfb").is_none() && slow.float("response_time").is_none());
    let dns = by("no-such-host.invalid/");
    assert!(
        matches!(dns.tag("result"), Some("dns_error") | Some("timeout")),
        "{dns:?}"
    );
    drop(silent);
}

/// An HTTP/1.1 server that waits `delay` between reading a request head and sending the
/// response head, then `body_delay` before the body. For each request it sends on the returned
/// channel what it measured itself, on the machine's monotonic clock: from having read the whole
/// head to writing the first byte of the response (its real wait, oversleep included), the
/// reference `ttfb` is judged against.
fn delaying_server(delay: Duration, body_delay: Duration) -> (u16, std::sync::mpsc::Receiver<f64>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for conn in l.incoming().take(16) {
            let Ok(mut c) = conn else { continue };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut line = String::new();
                while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if line == "\r\n" {
                        break;
                    }
                    line.clear();
                }
                let read_done = Instant::now();
                std::thread::sleep(delay);
                let first_byte = Instant::now();
                let _ = c.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n",
                );
                let _ = tx.send(first_byte.duration_since(read_done).as_secs_f64());
                std::thread::sleep(body_delay);
                let _ = c.write_all(b"ok");
            });
        }
    });
    (port, rx)
}

#[test]
fn ttfb_reads_the_server_delay_and_phases_add_up() {
    // The server answers 200 ms after reading the request and sends the body 300 ms after the
    // head: ttfb must hold the first wait and not the second, which transfer_time holds.
    let body_delay = 0.3;
    let (port, waits) = delaying_server(
        Duration::from_millis(200),
        Duration::from_secs_f64(body_delay),
    );
    let config = format!("[[inputs.http_response]]\n  urls = [\"http://127.0.0.1:{port}/\"]\n");
    // The reference is what the server itself measured in the same run (its sleep may overrun
    // on a loaded machine; that is the server's lateness, not our timer's). Our clock starts
    // when the write of the request's last byte returns, before the server has read it, and
    // stops when the response head has arrived: ttfb exceeds the reference by the loopback hop
    // and the wake-ups of both sides. Those are milliseconds on a loaded machine (and this
    // test's VM showed 2 to 4 ms even idle), so the upper bound is half the body delay, far
    // from both. The lower bound can be missed in one try: a preemption of our thread between
    // its write and its clock read made ttfb 1.1 ms short once under tests/stress.sh. So up to
    // five tries, and one must not be short; a clock that starts late is short in every one.
    let mut gaps = Vec::new();
    for _ in 0..5 {
        let lines = once(&config);
        let l = only(&lines, "http_response")[0].clone();
        assert_eq!(l.tag("result"), Some("success"), "{l:?}");
        let reference = waits
            .recv_timeout(Duration::from_secs(10))
            .expect("the server measured its wait");
        let ttfb = l.float("ttfb").unwrap();
        assert!(
            ttfb < reference + body_delay / 2.0,
            "ttfb {ttfb} holds the body's delay (server's wait {reference})"
        );
        let transfer = l.float("transfer_time").unwrap();
        assert!(
            transfer > body_delay / 2.0,
            "transfer_time {transfer} misses the body's delay of {body_delay}"
        );
        let sum = l.float("connect_time").unwrap() + l.float("request_write_time").unwrap() + ttfb;
        let rt = l.float("response_time").unwrap();
        // Not a timing bound: the phases telescope (differences of the same clock readings).
        assert!(
            (sum - rt).abs() <= rt * 0.01,
            "phases {sum} vs response_time {rt}"
        );
        gaps.push(ttfb - reference);
        if ttfb >= reference - 0.001 {
            println!("ttfb minus the server's measured wait, s: {gaps:?}");
            return;
        }
    }
    panic!("ttfb shorter than the server's measured wait in every try, s: {gaps:?}");
}

#[test]
fn adversarial_urls_are_escaped_in_tags() {
    let ng = start_nginx();
    let url = format!("http://127.0.0.1:{}/hello?a=b c,d=\"e\" f\\g", ng.http);
    // A TOML literal string keeps the quotes and backslash as written.
    let config = format!("[[inputs.http_response]]\n  urls = ['{url}']\n");
    let lines = once(&config);
    let l = only(&lines, "http_response")[0];
    assert_eq!(l.tag("server"), Some(url.as_str()));
    assert_eq!(l.tag("result"), Some("success"));
    assert_eq!(l.int("http_response_code"), Some(200));
}

// ---------------------------------------------------------------------------------------------
// net_response

/// A listener whose accept queue is full, so further SYNs are dropped and connects time out.
fn full_backlog_listener() -> (TcpListener, Vec<TcpStream>, u16) {
    use std::os::fd::FromRawFd;
    // SAFETY: plain socket calls on a descriptor we own; checked below.
    let l = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: 0,
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
            },
            sin_zero: [0; 8],
        };
        assert_eq!(
            libc::bind(
                fd,
                &addr as *const _ as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_in>() as u32
            ),
            0
        );
        assert_eq!(libc::listen(fd, 0), 0);
        TcpListener::from_raw_fd(fd)
    };
    let port = l.local_addr().unwrap().port();
    let mut fill = Vec::new();
    for _ in 0..3 {
        if let Ok(s) =
            TcpStream::connect_timeout(&l.local_addr().unwrap(), Duration::from_millis(200))
        {
            fill.push(s);
        }
    }
    (l, fill, port)
}

#[test]
fn net_response_tcp_and_udp() {
    let open = TcpListener::bind("127.0.0.1:0").unwrap();
    let op = open.local_addr().unwrap().port();
    let closed = free_port();
    let (_full, _fill, fp) = full_backlog_listener();
    // Line server: answers each line with "pong <line>".
    let line_srv = TcpListener::bind("127.0.0.1:0").unwrap();
    let lp = line_srv.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in line_srv.incoming().take(8).flatten() {
            std::thread::spawn(move || {
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut line = String::new();
                if r.read_line(&mut line).is_ok() {
                    let _ = (&c).write_all(format!("pong {line}").as_bytes());
                }
            });
        }
    });
    // UDP echo.
    let echo = UdpSocket::bind("127.0.0.1:0").unwrap();
    let up = echo.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        for _ in 0..8 {
            if let Ok((n, from)) = echo.recv_from(&mut buf) {
                let _ = echo.send_to(&buf[..n], from);
            }
        }
    });
    let silent_udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sup = silent_udp.local_addr().unwrap().port();
    let t = |addr: String, extra: &str| {
        format!(
            "[[inputs.net_response]]\n  protocol = \"tcp\"\n  address = \"{addr}\"\n  timeout = \"300ms\"\n  read_timeout = \"300ms\"\n{extra}"
        )
    };
    let u = |port: u16, expect: &str| {
        format!(
            "[[inputs.net_response]]\n  protocol = \"udp\"\n  address = \"127.0.0.1:{port}\"\n  send = \"hello udp\"\n  expect = \"{expect}\"\n  read_timeout = \"300ms\"\n"
        )
    };
    let config = [
        t(format!("127.0.0.1:{op}"), ""),
        t(format!("127.0.0.1:{closed}"), ""),
        t(format!("127.0.0.1:{fp}"), ""),
        t(
            format!("127.0.0.1:{lp}"),
            "  send = \"ping\\n\"\n  expect = \"pong p.ng\"\n",
        ),
        t(
            format!("127.0.0.1:{lp}"),
            "  send = \"ping\\n\"\n  expect = \"nothing\"\n",
        ),
        u(up, "hel+o udp"),
        u(sup, "x"),
    ]
    .concat();
    let lines = once(&config);
    let nr = only(&lines, "net_response");
    assert_eq!(nr.len(), 7, "{nr:#?}");
    let by = |port: u16, pred: &dyn Fn(&Line) -> bool| {
        (*nr.iter()
            .find(|l| l.tag("port") == Some(port.to_string().as_str()) && pred(l))
            .unwrap_or_else(|| panic!("no line for port {port}: {nr:#?}")))
        .clone()
    };
    let ok = by(op, &|_| true);
    assert_eq!(ok.tag("result"), Some("success"));
    assert_eq!(ok.tag("server"), Some("127.0.0.1"));
    assert_eq!(ok.tag("protocol"), Some("tcp"));
    assert!(ok.float("response_time").is_some() && ok.float("connect_time").is_some());
    assert!(ok.field("string_found").is_none());
    let refused = by(closed, &|_| true);
    assert_eq!(refused.tag("result"), Some("connection_failed"));
    assert_eq!(refused.int("result_code"), Some(2));
    assert!(refused.float("response_time").is_none());
    let to = by(fp, &|_| true);
    assert_eq!(to.tag("result"), Some("timeout"), "{to:?}");
    assert_eq!(to.int("result_code"), Some(1));
    let found = by(lp, &|l| l.tag("result") == Some("success"));
    assert_eq!(found.field("string_found"), Some("true"));
    let mism = by(lp, &|l| l.tag("result") != Some("success"));
    assert_eq!(mism.tag("result"), Some("string_mismatch"));
    assert_eq!(mism.int("result_code"), Some(4));
    assert_eq!(mism.field("string_found"), Some("false"));
    let udp = by(up, &|_| true);
    assert_eq!(udp.tag("result"), Some("success"), "{udp:?}");
    assert_eq!(udp.field("string_found"), Some("true"));
    assert!(udp.float("response_time").is_some() && udp.float("connect_time").is_none());
    let lost = by(sup, &|_| true);
    assert_eq!(lost.tag("result"), Some("read_failed"));
    assert_eq!(lost.int("result_code"), Some(3));
    assert!(lost.float("response_time").is_none());
    drop(open);
}

// ---------------------------------------------------------------------------------------------
// dns_query

pub(crate) struct Dnsmasq {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_dnsmasq() -> Dnsmasq {
    start_dnsmasq_with(&["--address=/test.example/127.0.0.5", "--local=/nx.example/"])
}

/// Authoritative for `zone.example` (and only that): an SOA, an MX, a CNAME to an A record,
/// a name with two A records and an AAAA record.
pub(crate) fn start_zone_dnsmasq() -> Dnsmasq {
    start_dnsmasq_with(&[
        "--auth-zone=zone.example",
        "--auth-server=ns.zone.example,127.0.0.1",
        "--auth-soa=2026,hostmaster.zone.example,1200,180,1209600,600",
        "--mx-host=zone.example,mail.zone.example,10",
        "--cname=alias.zone.example,www.zone.example",
        "--host-record=www.zone.example,127.0.0.5",
        "--host-record=multi.zone.example,127.0.0.6",
        "--host-record=multi.zone.example,127.0.0.7,::7",
    ])
}

/// dnsmasq on a free loopback port with `records` (its options) and nothing else.
pub(crate) fn start_dnsmasq_with(records: &[&str]) -> Dnsmasq {
    let dir = tempfile::tempdir().unwrap();
    // dnsmasq listens on TCP and UDP on the same port: find one free for both.
    let port = loop {
        let p = free_port();
        if UdpSocket::bind(("127.0.0.1", p)).is_ok() {
            break p;
        }
    };
    let child = Command::new("dnsmasq")
        .args([
            "--no-daemon",
            "--user=root",
            &format!("--port={port}"),
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            &format!("--pid-file={}", dir.path().join("pid").display()),
        ])
        .args(records)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq not found: tests/run.sh installs it");
    wait_port(port, "dnsmasq");
    Dnsmasq {
        child,
        port,
        _dir: dir,
    }
}

#[test]
fn dns_query_against_dnsmasq() {
    let dns = start_dnsmasq();
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sp = silent.local_addr().unwrap().port();
    let p = dns.port;
    let config = format!(
        "[[inputs.dns_query]]\n  servers = [\"127.0.0.1\"]\n  port = {p}\n  domains = [\"test.example\", \"nx.example\"]\n  record_type = \"A\"\n\
         [[inputs.dns_query]]\n  servers = [\"127.0.0.1\"]\n  port = {p}\n  network = \"tcp\"\n  domains = [\"www.test.example\"]\n  record_type = \"A\"\n\
         [[inputs.dns_query]]\n  servers = [\"127.0.0.1\"]\n  port = {sp}\n  domains = [\"test.example\"]\n  timeout = \"300ms\"\n"
    );
    let lines = once(&config);
    let q = only(&lines, "dns_query");
    assert_eq!(q.len(), 4, "{q:#?}");
    let by = |d: &str| *q.iter().find(|l| l.tag("domain") == Some(d)).unwrap();
    let ok = by("test.example");
    assert_eq!(ok.tag("rcode"), Some("NOERROR"));
    assert_eq!(ok.tag("result"), Some("success"));
    assert_eq!(ok.tag("record_type"), Some("A"));
    assert_eq!(ok.tag("server"), Some("127.0.0.1"));
    assert_eq!(ok.int("rcode_value"), Some(0));
    assert_eq!(ok.int("answer_count"), Some(1));
    assert!(ok.float("query_time_ms").unwrap() > 0.0);
    let tcp = by("www.test.example");
    assert_eq!(tcp.tag("rcode"), Some("NOERROR"));
    assert_eq!(tcp.int("answer_count"), Some(1));
    let nx = by("nx.example");
    assert_eq!(nx.tag("rcode"), Some("NXDOMAIN"));
    assert_eq!(nx.tag("result"), Some("error"));
    assert_eq!(nx.int("rcode_value"), Some(3));
    assert_eq!(nx.int("result_code"), Some(2));
    let to = q
        .iter()
        .find(|l| l.tag("result") == Some("timeout"))
        .expect("timeout line");
    assert_eq!(to.int("result_code"), Some(1));
    assert_eq!(to.tag("record_type"), Some("NS"));
    assert!(to.tag("rcode").is_none() && to.float("query_time_ms").is_none());
    drop(silent);
}

/// telegraf's answer fields: `name` (owner of the last A/AAAA/CNAME/MX/SOA record),
/// `preference`, the SOA figures, and with `include_fields` `ip` and `ip_<position>`.
#[test]
fn dns_query_answer_fields_and_include_fields() {
    let dns = start_zone_dnsmasq();
    let p = dns.port;
    let q = |t: &str, d: &str| {
        format!(
            "[[inputs.dns_query]]\n  servers = [\"127.0.0.1\"]\n  port = {p}\n  domains = [\"{d}\"]\n  record_type = \"{t}\"\n  include_fields = [\"first_ip\", \"all_ips\"]\n"
        )
    };
    let config = [
        q("SOA", "zone.example"),
        q("MX", "zone.example"),
        q("A", "alias.zone.example"),
        q("A", "multi.zone.example"),
        q("AAAA", "multi.zone.example"),
        format!(
            "[[inputs.dns_query]]\n  servers = [\"127.0.0.1\"]\n  port = {p}\n  network = \"tcp4\"\n  domains = [\"multi.zone.example\"]\n  record_type = \"A\"\n  include_fields = [\"first_ip\"]\n  alias = \"tcp4\"\n"
        ),
        format!(
            "[[inputs.dns_query]]\n  servers = [\"127.0.0.1\"]\n  port = {p}\n  network = \"udp6\"\n  record_type = \"A\"\n"
        ),
    ]
    .concat();
    let lines = once(&config);
    let q = only(&lines, "dns_query");
    assert_eq!(q.len(), 7, "{q:#?}");
    let by = |t: &str, d: &str| -> Vec<&Line> {
        q.iter()
            .copied()
            .filter(|l| l.tag("record_type") == Some(t) && l.tag("domain") == Some(d))
            .collect()
    };
    let soa = by("SOA", "zone.example")[0];
    assert_eq!(soa.string("name").as_deref(), Some("zone.example."));
    for (f, v) in [
        ("serial", 2026),
        ("refresh", 1200),
        ("retry", 180),
        ("expire", 1_209_600),
        ("minttl", 600),
    ] {
        assert_eq!(soa.int(f), Some(v), "{f}");
    }
    let mx = by("MX", "zone.example")[0];
    assert_eq!(mx.int("preference"), Some(10));
    let alias = by("A", "alias.zone.example")[0];
    assert_eq!(alias.int("answer_count"), Some(2));
    assert_eq!(alias.string("name").as_deref(), Some("www.zone.example."));
    assert_eq!(alias.string("ip").as_deref(), Some("127.0.0.5"));
    assert_eq!(
        alias.string("ip_1").as_deref(),
        Some("127.0.0.5"),
        "position 1: after the CNAME"
    );
    assert!(alias.field("ip_0").is_none());
    let multi = by("A", "multi.zone.example");
    assert_eq!(multi.len(), 2);
    let (udp, tcp4) = match multi[0].field("ip_0") {
        Some(_) => (multi[0], multi[1]),
        None => (multi[1], multi[0]),
    };
    // dnsmasq may rotate the two A records between queries: positions follow the answer.
    let mut both = [udp.string("ip_0"), udp.string("ip_1")];
    both.sort();
    assert_eq!(
        both,
        [Some("127.0.0.6".to_owned()), Some("127.0.0.7".to_owned())]
    );
    assert_eq!(
        udp.string("ip"),
        udp.string("ip_0"),
        "first_ip is position 0"
    );
    assert_eq!(tcp4.tag("result"), Some("success"));
    assert!(
        matches!(
            tcp4.string("ip").as_deref(),
            Some("127.0.0.6" | "127.0.0.7")
        ),
        "{tcp4:?}"
    );
    assert!(tcp4.field("ip_0").is_none(), "first_ip only");
    let v6 = by("AAAA", "multi.zone.example")[0];
    assert_eq!(v6.string("ip").as_deref(), Some("::7"));
    // udp6 to an IPv4 server: an error line. Without `domains`, telegraf's "." and NS.
    let err = by("NS", ".")[0];
    assert_eq!(err.tag("result"), Some("error"));
    assert!(err.tag("rcode").is_none());
}

// ---------------------------------------------------------------------------------------------
// x509_cert

#[test]
fn x509_cert_from_nginx_and_file() {
    let ng = start_nginx();
    let ca = ng.pki.path("ca.pem");
    let leaf = ng.pki.path("leaf.pem");
    let s = ng.https;
    let config = format!(
        "[[inputs.x509_cert]]\n  sources = [\"https://127.0.0.1:{s}\"]\n  tls_ca = \"{}\"\n\
         [[inputs.x509_cert]]\n  sources = [\"tcp://127.0.0.1:{s}\", \"file://{}\"]\n",
        ca.display(),
        leaf.display()
    );
    let lines = once(&config);
    let x = only(&lines, "x509_cert");
    let https = format!("https://127.0.0.1:{s}");
    let tcp = format!("tcp://127.0.0.1:{s}");
    let file = format!("file://{}", leaf.display());
    let of = |src: &str| -> Vec<&Line> {
        x.iter()
            .copied()
            .filter(|l| l.tag("source") == Some(src))
            .collect()
    };
    let chain = of(&https);
    assert_eq!(chain.len(), 2, "{x:#?}");
    let (l, r) = (chain[0], chain[1]);
    assert_eq!(l.tag("type"), Some("leaf"));
    assert_eq!(l.tag("common_name"), Some("localhost"));
    assert_eq!(l.tag("organization"), Some("Probe Test"));
    assert_eq!(l.tag("issuer_common_name"), Some("Test Root CA"));
    assert_eq!(l.tag("san"), Some("localhost,127.0.0.1"));
    assert_eq!(l.tag("signature_algorithm"), Some("ECDSA-SHA256"));
    assert_eq!(l.tag("public_key_algorithm"), Some("ECDSA"));
    assert_eq!(l.int("public_key_length"), Some(256));
    assert_eq!(l.tag("verification"), Some("valid"));
    assert_eq!(l.int("verification_code"), Some(0));
    let expiry = l.int("expiry").unwrap();
    assert!((9 * 86400..=10 * 86400).contains(&expiry), "{expiry}");
    assert!(l.int("age").unwrap() >= 0);
    assert_eq!(
        l.int("enddate").unwrap() - l.int("startdate").unwrap(),
        10 * 86400
    );
    assert!(!l.tag("serial_number").unwrap().is_empty());
    assert_eq!(r.tag("type"), Some("root"));
    assert_eq!(r.tag("common_name"), Some("Test Root CA"));
    // Every certificate has its own verdict (telegraf's); the root is among the roots.
    assert_eq!(r.tag("verification"), Some("valid"));
    // Without the CA the verdict is data.
    let untrusted = of(&tcp);
    assert_eq!(untrusted.len(), 2);
    assert_eq!(untrusted[0].tag("verification"), Some("invalid"));
    assert_eq!(untrusted[0].int("verification_code"), Some(1));
    assert!(
        untrusted[0]
            .string("verification_error")
            .unwrap()
            .contains("signed by unknown authority")
    );
    let f = of(&file);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].tag("type"), Some("leaf"));
    assert_eq!(f[0].tag("serial_number"), l.tag("serial_number"));
    assert_eq!(f[0].tag("verification"), Some("invalid"));
}

#[test]
fn x509_cert_file_verified_with_ca() {
    let pki = make_pki();
    let config = format!(
        "[[inputs.x509_cert]]\n  sources = [\"{}\"]\n  tls_ca = \"{}\"\n",
        pki.path("fullchain.pem").display(),
        pki.path("ca.pem").display()
    );
    let lines = once(&config);
    let x = only(&lines, "x509_cert");
    assert_eq!(x.len(), 2);
    assert_eq!(x[0].tag("verification"), Some("valid"), "{x:#?}");
    assert_eq!(x[1].tag("type"), Some("root"));
}

/// Answers 200 when the request's Authorization header is one of `accepted`, else 401.
fn auth_server(accepted: &'static [&'static str]) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().take(16).flatten() {
            std::thread::spawn(move || {
                let mut r = BufReader::new(c.try_clone().unwrap());
                let (mut line, mut auth) = (String::new(), String::new());
                while r.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.strip_prefix("authorization: ") {
                        auth = v.trim().to_owned();
                    }
                    line.clear();
                }
                let status = if accepted.contains(&auth.as_str()) {
                    "200 OK"
                } else {
                    "401 Unauthorized"
                };
                let _ = (&c).write_all(
                    format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                );
            });
        }
    });
    port
}

#[test]
fn http_auth_source_and_every_address() {
    let port = auth_server(&["Basic cHJvYmU6czNjcmV0", "Bearer tok-123"]);
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "tok-123\n").unwrap();
    // What is checked here is authentication and addresses, not timing: a 30 s response
    // timeout (default 5 s; the interval bounds a --once gather, hence 60 s) keeps a probe slowed by a loaded machine from coming back without
    // a status (seen once in a full suite run: `/basic` without `status_code`).
    let config = format!(
        "[[inputs.http_response]]\n  urls = [\"http://127.0.0.1:{port}/basic\"]\n  username = \"probe\"\n  password = \"s3cret\"\n\
         [[inputs.http_response]]\n  urls = [\"http://127.0.0.1:{port}/bearer\"]\n  bearer_token = \"{}\"\n  source_address = \"127.0.0.1\"\n\
         [[inputs.http_response]]\n  urls = [\"http://127.0.0.1:{port}/none\"]\n  interface = \"lo\"\n\
         [[inputs.http_response]]\n  urls = [\"http://localhost:{port}/all\"]\n  probe_all_addresses = true\n  ip_version = \"ipv4\"\n  bearer_token = \"{}\"\n",
        token.display(),
        token.display()
    )
    .replace(
        "[[inputs.http_response]]\n",
        "[[inputs.http_response]]\n  response_timeout = \"30s\"\n  interval = \"60s\"\n",
    );
    let (status, lines, stderr) = run_once(&config);
    assert!(status.success(), "{stderr}");
    influx().assert_accepts(&lines);
    let all = lines.join("\n") + &stderr;
    assert!(!all.contains("s3cret") && !all.contains("tok-123") && !all.contains("cHJvYmU6"));
    let parsed = parse_all(&lines);
    let http = only(&parsed, "http_response");
    let by = |p: &str| {
        *http
            .iter()
            .find(|l| l.tag("server").unwrap().ends_with(p))
            .unwrap()
    };
    assert_eq!(
        by("/basic").tag("status_code"),
        Some("200"),
        "{:?}",
        by("/basic")
    );
    assert_eq!(
        by("/bearer").tag("status_code"),
        Some("200"),
        "{:?}",
        by("/bearer")
    );
    assert_eq!(
        by("/none").tag("status_code"),
        Some("401"),
        "{:?}",
        by("/none")
    );
    let every: Vec<_> = http
        .iter()
        .filter(|l| l.tag("server").unwrap().ends_with("/all"))
        .collect();
    assert!(!every.is_empty());
    for l in every {
        assert_eq!(l.tag("ip"), Some("127.0.0.1"));
        assert_eq!(l.tag("status_code"), Some("200"));
        assert!(l.float("dns_time").is_some());
        let sum: f64 = ["dns_time", "connect_time", "request_write_time", "ttfb"]
            .iter()
            .map(|f| l.float(f).unwrap())
            .sum();
        let rt = l.float("response_time").unwrap();
        // Not a timing bound: the phases are differences of the same clock readings, so they
        // add up to response_time exactly but for the printed digits; load cannot move it.
        assert!((sum - rt).abs() <= rt * 0.01, "{sum} vs {rt}");
    }
}

/// A DNS server that answers every UDP query with an empty truncated reply (TC bit) and every
/// TCP query with NOERROR and two (fake-counted) answers, so the TCP retry is visible.
fn truncating_dns() -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let tcp_queries = std::sync::Arc::new(AtomicUsize::new(0));
    let (udp, tcp) = loop {
        let t = TcpListener::bind("127.0.0.1:0").unwrap();
        if let Ok(u) = UdpSocket::bind(t.local_addr().unwrap()) {
            break (u, t);
        }
    };
    let port = tcp.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        for _ in 0..4 {
            if let Ok((n, from)) = udp.recv_from(&mut buf) {
                let mut reply = buf[..n].to_vec();
                reply[2] = 0x83; // QR, TC, RD
                reply[3] = 0x80; // RA, NOERROR
                let _ = udp.send_to(&reply, from);
            }
        }
    });
    let count = tcp_queries.clone();
    std::thread::spawn(move || {
        for mut c in tcp.incoming().take(4).flatten() {
            let mut len = [0u8; 2];
            if c.read_exact(&mut len).is_err() {
                continue;
            }
            let mut q = vec![0u8; u16::from_be_bytes(len) as usize];
            if c.read_exact(&mut q).is_err() {
                continue;
            }
            count.fetch_add(1, Ordering::SeqCst);
            q[2] = 0x81;
            q[3] = 0x80;
            q[7] = 2; // ANCOUNT = 2 (header only: the probe reads counts, not records)
            let mut out = (q.len() as u16).to_be_bytes().to_vec();
            out.extend_from_slice(&q);
            let _ = c.write_all(&out);
        }
    });
    (port, tcp_queries)
}

#[test]
fn dns_query_retries_over_tcp_when_truncated() {
    let (port, tcp_queries) = truncating_dns();
    let config = format!(
        "[[inputs.dns_query]]\n  servers = [\"127.0.0.1\"]\n  port = {port}\n  domains = [\"big.example\"]\n  record_type = \"TXT\"\n  timeout = \"2s\"\n"
    );
    let lines = once(&config);
    let q = only(&lines, "dns_query");
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].tag("result"), Some("success"), "{:?}", q[0]);
    assert_eq!(q[0].int("answer_count"), Some(2));
    assert_eq!(tcp_queries.load(std::sync::atomic::Ordering::SeqCst), 1);
}

pub(crate) struct Tinyproxy {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Tinyproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_tinyproxy() -> Tinyproxy {
    start_tinyproxy_with("")
}

/// tinyproxy on loopback with `extra` config lines (e.g. `BasicAuth user password`).
pub(crate) fn start_tinyproxy_with(extra: &str) -> Tinyproxy {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("tinyproxy.conf");
    std::fs::write(
        &conf,
        format!(
            "Port {port}\nListen 127.0.0.1\nTimeout 10\nLogLevel Error\nMaxClients 50\nUser nobody\nGroup nogroup\n{extra}\n"
        ),
    )
    .unwrap();
    let child = Command::new("tinyproxy")
        .arg("-d")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tinyproxy not found: tests/run.sh installs it");
    wait_port(port, "tinyproxy");
    Tinyproxy {
        child,
        port,
        _dir: dir,
    }
}

#[test]
fn http_through_a_proxy() {
    let ng = start_nginx();
    let proxy = start_tinyproxy();
    let (h, s, p) = (ng.http, ng.https, proxy.port);
    let dead = free_port();
    let ca = ng.pki.path("ca.pem");
    let config = format!(
        "[[inputs.http_response]]\n  urls = [\"http://127.0.0.1:{h}/hello\", \"https://127.0.0.1:{s}/hello\"]\n  http_proxy = \"http://127.0.0.1:{p}\"\n  tls_ca = \"{}\"\n\
         [[inputs.http_response]]\n  urls = [\"http://127.0.0.1:{h}/hello\"]\n  http_proxy = \"http://127.0.0.1:{dead}\"\n  alias = \"dead\"\n",
        ca.display()
    );
    let lines = once(&config);
    let http = only(&lines, "http_response");
    assert_eq!(http.len(), 3, "{http:#?}");
    let plain: Vec<_> = http
        .iter()
        .filter(|l| l.tag("server") == Some(format!("http://127.0.0.1:{h}/hello").as_str()))
        .collect();
    let ok = plain
        .iter()
        .find(|l| l.tag("result") == Some("success"))
        .expect("proxied http line");
    assert_eq!(ok.int("http_response_code"), Some(200));
    assert_eq!(ok.int("content_length"), Some(HELLO.len() as i64));
    let failed = plain
        .iter()
        .find(|l| l.tag("result") != Some("success"))
        .expect("dead proxy line");
    assert_eq!(failed.tag("result"), Some("connection_failed"));
    let tls = http
        .iter()
        .find(|l| l.tag("server") == Some(format!("https://127.0.0.1:{s}/hello").as_str()))
        .unwrap();
    assert_eq!(tls.tag("result"), Some("success"), "{tls:?}");
    assert_eq!(tls.int("tls_verification_code"), Some(0));
    assert_eq!(tls.string("http_version").as_deref(), Some("1.1"));
    assert!(tls.float("tls_time").is_some() && tls.float("dns_time").is_none());
}

#[test]
fn http_mutual_tls() {
    let ng = start_nginx();
    let (ca, cert, key) = (
        ng.pki.path("ca.pem"),
        ng.pki.path("client.pem"),
        ng.pki.path("client.key"),
    );
    let url = format!("https://127.0.0.1:{}/", ng.mtls);
    let config = format!(
        "[[inputs.http_response]]\n  urls = [\"{url}\"]\n  tls_ca = \"{}\"\n  tls_cert = \"{}\"\n  tls_key = \"{}\"\n  response_string_match = \"mtls ok\"\n\
         [[inputs.http_response]]\n  urls = [\"{url}\"]\n  tls_ca = \"{}\"\n  alias = \"nocert\"\n",
        ca.display(),
        cert.display(),
        key.display(),
        ca.display(),
    );
    let lines = once(&config);
    let http = only(&lines, "http_response");
    assert_eq!(http.len(), 2);
    let with = http
        .iter()
        .find(|l| l.int("response_string_match") == Some(1))
        .unwrap_or_else(|| panic!("{http:#?}"));
    assert_eq!(with.tag("status_code"), Some("200"));
    // nginx answers a missing client certificate with 400.
    let without = http
        .iter()
        .find(|l| l.tag("status_code") != Some("200"))
        .unwrap();
    assert_eq!(without.tag("status_code"), Some("400"), "{without:?}");
}
