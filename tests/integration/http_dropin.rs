//! http_response with telegraf's options beyond the basics, against real servers on loopback:
//! `body_form`, cookie authentication and its renewal, proxies with credentials (tinyproxy with
//! BasicAuth), an HTTPS proxy (nginx terminating TLS in front of tinyproxy), the environment's
//! proxy variables, and telegraf's verdicts when several checks fail.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::*;
use crate::netprobes::{HELLO, free_port, run_nginx, start_nginx, start_tinyproxy_with, wait_port};

/// One request as the recording server read it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Seen {
    pub method: String,
    /// The request target as sent (origin form, or absolute form to a proxy).
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub(crate) fn header(&self, k: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.as_str())
    }
}

/// Status, extra headers and body of an answer.
pub(crate) type Answer = (u16, Vec<(&'static str, String)>, String);

/// Reads one HTTP/1.1 request (head and a `Content-Length` body).
fn read_request(r: &mut impl BufRead) -> Option<Seen> {
    let mut line = String::new();
    r.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let mut seen = Seen {
        method: parts.next()?.to_owned(),
        target: parts.next()?.to_owned(),
        ..Seen::default()
    };
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        seen.headers
            .push((k.trim().to_owned(), v.trim().to_owned()));
    }
    let len: usize = seen
        .header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    seen.body = vec![0; len.min(1 << 20)];
    r.read_exact(&mut seen.body).ok()?;
    Some(seen)
}

/// An HTTP/1.1 server on loopback that records every request and answers it with `answer`
/// (one request per connection, at most 500 connections).
pub(crate) fn recorder(
    answer: impl Fn(&Seen) -> Answer + Send + Sync + 'static,
) -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let (log, answer) = (seen.clone(), Arc::new(answer));
    std::thread::spawn(move || {
        for c in l.incoming().take(500).flatten() {
            let (log, answer) = (log.clone(), answer.clone());
            std::thread::spawn(move || {
                let mut r = BufReader::new(c.try_clone().unwrap());
                let Some(req) = read_request(&mut r) else {
                    return;
                };
                let (status, headers, body) = answer(&req);
                log.lock().unwrap().push(req);
                let mut head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n",
                    body.len()
                );
                for (k, v) in headers {
                    head.push_str(&format!("{k}: {v}\r\n"));
                }
                let _ = (&c).write_all(format!("{head}\r\n{body}").as_bytes());
            });
        }
    });
    (port, seen)
}

/// A login service: `POST /login` with Basic `probe:pa$$word`, header `X-Login: yes` and body
/// `{"user": "probe"}` gets cookie `session=N` (N counts logins); `/private` answers 200 with a
/// cookie some login issued, 403 otherwise; `/login-denied` always 403.
fn login_service() -> (u16, Arc<Mutex<Vec<Seen>>>) {
    let logins = Arc::new(Mutex::new(0u32));
    recorder(move |r| {
        let path = r.target.as_str();
        if path == "/login" {
            let ok = r.method == "POST"
                // base64("probe:pa$$word")
                && r.header("authorization") == Some("Basic cHJvYmU6cGEkJHdvcmQ=")
                && r.header("x-login") == Some("yes")
                && r.body == br#"{"user": "probe"}"#;
            if !ok {
                return (401, vec![], "bad login".into());
            }
            let mut n = logins.lock().unwrap();
            *n += 1;
            return (
                200,
                vec![("Set-Cookie", format!("session={n}; Path=/; HttpOnly"))],
                "welcome".into(),
            );
        }
        if path == "/private" {
            let n = *logins.lock().unwrap();
            let valid = r
                .header("cookie")
                .and_then(|c| c.split("; ").find_map(|c| c.strip_prefix("session=")))
                .and_then(|v| v.parse::<u32>().ok())
                .is_some_and(|v| v >= 1 && v <= n);
            return match valid {
                true => (200, vec![], "secret".into()),
                false => (403, vec![], "no".into()),
            };
        }
        if path == "/login-denied" {
            return (403, vec![], "denied".into());
        }
        (200, vec![], "ok".into())
    })
}

/// Runs the agent once on `config` with `env`; returns its http_response lines (checked by
/// InfluxDB) and its whole output (stdout and stderr, to look for leaked secrets or logs).
fn probe_once(config: &str, env: &[(&str, Option<&str>)]) -> (Vec<Line>, String) {
    let (status, raw, stderr) = run_once_env(config, env);
    assert!(status.success(), "{stderr}");
    influx().assert_accepts(&raw);
    let lines = parse_all(&raw)
        .into_iter()
        .filter(|l| l.measurement == "http_response")
        .collect();
    (lines, raw.join("\n") + "\n" + &stderr)
}

/// The line whose `server` tag ends with `suffix`.
fn ending<'a>(http: &'a [Line], suffix: &str) -> &'a Line {
    http.iter()
        .find(|l| l.tag("server").is_some_and(|s| s.ends_with(suffix)))
        .unwrap_or_else(|| panic!("no line for {suffix}: {http:#?}"))
}

#[test]
fn http_body_form_and_cookie_authentication() {
    let (p, seen) = login_service();
    let base = format!("http://127.0.0.1:{p}");
    let config = format!(
        "[[inputs.http_response]]\n  urls = [\"{base}/form\"]\n  method = \"POST\"\n  body_form = {{ b = \"2 3\", a = [\"x\", \"y&z\"] }}\n  headers = {{ \"Content-Type\" = \"application/x-www-form-urlencoded\" }}\n\
         [[inputs.http_response]]\n  urls = [\"{base}/form-plain\"]\n  method = \"POST\"\n  body_form = {{ key = \"value\" }}\n\
         [[inputs.http_response]]\n  urls = [\"{base}/private\"]\n  cookie_auth_url = \"{base}/login\"\n  cookie_auth_username = \"probe\"\n  cookie_auth_password = \"pa$$word\"\n  cookie_auth_headers = {{ X-Login = \"yes\" }}\n  cookie_auth_body = '{{\"user\": \"probe\"}}'\n  response_status_code = 200\n  headers = {{ Cookie = \"pre=1\" }}\n\
         [[inputs.http_response]]\n  urls = [\"{base}/private\"]\n  alias = \"nocookie\"\n\
         [[inputs.http_response]]\n  urls = [\"{base}/private\"]\n  cookie_auth_url = \"{base}/login-denied\"\n  alias = \"denied\"\n"
    );
    let (http, output) = probe_once(&config, &[]);
    let seen = seen.lock().unwrap().clone();
    let req = |path: &str| {
        seen.iter()
            .find(|s| s.target == path)
            .unwrap_or_else(|| panic!("no request for {path}: {seen:#?}"))
    };
    // Go's url.Values.Encode: keys sorted, QueryEscape; the Content-Type only when configured.
    let form = req("/form");
    assert_eq!(form.method, "POST");
    assert_eq!(String::from_utf8_lossy(&form.body), "a=x&a=y%26z&b=2+3");
    assert_eq!(
        form.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let plain = req("/form-plain");
    assert_eq!(String::from_utf8_lossy(&plain.body), "key=value");
    assert_eq!(plain.header("content-type"), None);
    // One good login, then the probe with its cookie.
    let logins: Vec<_> = seen.iter().filter(|s| s.target == "/login").collect();
    assert_eq!(logins.len(), 1, "{seen:#?}");
    let privates: Vec<_> = seen.iter().filter(|s| s.target == "/private").collect();
    assert_eq!(privates.len(), 2, "{seen:#?}");
    // A configured Cookie header and the jar's cookie share one header, as Go's AddCookie.
    assert!(
        privates
            .iter()
            .any(|s| s.header("cookie") == Some("pre=1; session=1")),
        "{privates:#?}"
    );
    let cookie_headers = |s: &Seen| {
        s.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
            .count()
    };
    assert!(privates.iter().all(|s| cookie_headers(s) <= 1));
    assert!(
        privates.iter().any(|s| s.header("cookie").is_none()),
        "{privates:#?}"
    );
    let private = format!("{base}/private");
    let on = |code: &str| {
        http.iter()
            .find(|l| {
                l.tag("server") == Some(private.as_str()) && l.tag("status_code") == Some(code)
            })
            .unwrap_or_else(|| panic!("no {code} line: {http:#?}"))
    };
    let authed = on("200");
    assert_eq!(authed.tag("result"), Some("success"));
    assert_eq!(authed.int("response_status_code_match"), Some(1));
    assert_eq!(on("403").tag("result"), Some("success"));
    // The refused login: no probe, no line, the reason logged (telegraf fails the plugin's start).
    assert!(
        !seen
            .iter()
            .any(|s| s.target == "/login-denied" && s.header("cookie").is_some())
    );
    assert_eq!(http.len(), 4, "{http:#?}");
    assert!(output.contains("status code 403"), "{output}");
    assert!(!output.contains("pa$$word"));
}

#[test]
fn http_cookie_auth_renewal_sends_the_new_cookie() {
    let (p, seen) = login_service();
    let base = format!("http://127.0.0.1:{p}");
    let config = format!(
        "[[inputs.http_response]]\n  interval = \"500ms\"\n  urls = [\"{base}/private\"]\n  cookie_auth_url = \"{base}/login\"\n  cookie_auth_username = \"probe\"\n  cookie_auth_password = \"pa$$word\"\n  cookie_auth_headers = {{ X-Login = \"yes\" }}\n  cookie_auth_body = '{{\"user\": \"probe\"}}'\n  cookie_auth_renewal = \"1s\"\n"
    );
    let mut agent = Agent::start(&config);
    // Bounded wait on what the server saw (not on time): three logins and a probe sent with a
    // renewed cookie.
    let start = Instant::now();
    let renewed_probe = |s: &[Seen]| {
        s.iter().filter(|r| r.target == "/login").count() >= 3
            && s.iter().any(|r| {
                r.target == "/private"
                    && r.header("cookie")
                        .and_then(|c| c.strip_prefix("session="))
                        .is_some_and(|v| v != "1")
            })
    };
    while !renewed_probe(&seen.lock().unwrap()) && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    agent.signal(libc::SIGTERM);
    agent.wait_exit(Duration::from_secs(10));
    let seen = seen.lock().unwrap().clone();
    assert!(renewed_probe(&seen), "{seen:#?}\n{}", agent.stderr());
    let sessions: BTreeSet<&str> = seen
        .iter()
        .filter(|r| r.target == "/private")
        .filter_map(|r| r.header("cookie"))
        .collect();
    assert!(sessions.len() >= 2, "{sessions:?}");
    assert!(agent.lines().iter().any(|l| l.contains("status_code=200")));
}

#[test]
fn http_proxies_with_credentials_https_and_from_the_environment() {
    let ng = start_nginx();
    let tp = start_tinyproxy_with("BasicAuth probe s3cret");
    // An HTTPS proxy: nginx terminates TLS (the test CA's certificate for 127.0.0.1) and hands
    // the stream to tinyproxy.
    let tls_port = free_port();
    let front = run_nginx(
        "load_module /usr/lib/nginx/modules/ngx_stream_module.so;\n",
        &format!(
            "stream {{\n server {{\n  listen 127.0.0.1:{tls_port} ssl;\n  ssl_certificate {};\n  ssl_certificate_key {};\n  proxy_pass 127.0.0.1:{};\n }}\n}}\n",
            ng.pki.path("fullchain.pem").display(),
            ng.pki.path("leaf.key").display(),
            tp.port
        ),
        &[tls_port],
    );
    let (h, s, t) = (ng.http, ng.https, tp.port);
    let ca = ng.pki.path("ca.pem");
    let ca = ca.display();
    let urls = format!("[\"http://127.0.0.1:{h}/hello\", \"https://127.0.0.1:{s}/hello\"]");
    let config = format!(
        "[[inputs.http_response]]\n  urls = {urls}\n  http_proxy = \"http://probe:s3cret@127.0.0.1:{t}\"\n  tls_ca = \"{ca}\"\n  alias = \"creds\"\n\
         [[inputs.http_response]]\n  urls = {urls}\n  http_proxy = \"http://127.0.0.1:{t}\"\n  tls_ca = \"{ca}\"\n  alias = \"nocreds\"\n\
         [[inputs.http_response]]\n  urls = {urls}\n  http_proxy = \"https://probe:s3cret@127.0.0.1:{tls_port}\"\n  tls_ca = \"{ca}\"\n  alias = \"tls\"\n"
    );
    let (http, output) = probe_once(&config, &[]);
    assert_eq!(http.len(), 6, "{http:#?}");
    assert!(!output.contains("s3cret"));
    let results = |scheme: &str| -> Vec<(Option<&str>, Option<&str>)> {
        http.iter()
            .filter(|l| l.tag("server").unwrap().starts_with(scheme))
            .map(|l| (l.tag("result"), l.tag("status_code")))
            .collect()
    };
    // With credentials, through the plain and the TLS proxy: both succeed; without, tinyproxy
    // answers 407 (a response: success with its status, as telegraf) and refuses the tunnel.
    let mut plain = results("http:");
    plain.sort();
    assert_eq!(
        plain,
        vec![
            (Some("success"), Some("200")),
            (Some("success"), Some("200")),
            (Some("success"), Some("407")),
        ],
        "{http:#?}"
    );
    let mut tunnels = results("https:");
    tunnels.sort();
    assert_eq!(
        tunnels,
        vec![
            (Some("connection_failed"), None),
            (Some("success"), Some("200")),
            (Some("success"), Some("200")),
        ],
        "{http:#?}"
    );
    for l in http.iter().filter(|l| l.tag("status_code") == Some("200")) {
        assert_eq!(l.int("content_length"), Some(HELLO.len() as i64));
    }
    drop(front);

    // The environment (http_proxy unset): HTTP_PROXY with credentials for a name that is
    // never resolved here (the proxy answers for it); loopback URLs go direct, as in Go.
    let (rp, seen) = recorder(|r| match r.target.starts_with("http://") {
        true => (200, vec![], "via proxy".into()),
        false => (200, vec![], "direct".into()),
    });
    let config = format!(
        "[[inputs.http_response]]\n  urls = [\"http://probe.example/x\", \"http://127.0.0.1:{rp}/direct\"]\n  response_body_field = \"body\"\n"
    );
    let proxy = format!("http://user:pw@127.0.0.1:{rp}");
    let env = [
        ("HTTP_PROXY", Some(proxy.as_str())),
        ("http_proxy", None),
        ("HTTPS_PROXY", None),
        ("https_proxy", None),
        ("NO_PROXY", Some("other.example")),
        ("no_proxy", None),
        ("REQUEST_METHOD", None),
    ];
    let (http, _) = probe_once(&config, &env);
    let body = |url: &str| {
        http.iter()
            .find(|l| l.tag("server") == Some(url))
            .and_then(|l| l.string("body"))
    };
    assert_eq!(body("http://probe.example/x").as_deref(), Some("via proxy"));
    assert_eq!(
        body(&format!("http://127.0.0.1:{rp}/direct")).as_deref(),
        Some("direct")
    );
    let seen = seen.lock().unwrap().clone();
    let via = seen
        .iter()
        .find(|s| s.target == "http://probe.example/x")
        .unwrap();
    // base64("user:pw")
    assert_eq!(
        via.header("proxy-authorization"),
        Some("Basic dXNlcjpwdw==")
    );
    assert_eq!(via.header("host"), Some("probe.example"));
    let direct = seen.iter().find(|s| s.target == "/direct").unwrap();
    assert_eq!(direct.header("proxy-authorization"), None);
}

#[test]
fn http_verdicts_as_telegraf_writes_them() {
    let ng = start_nginx();
    let h = ng.http;
    let config = format!(
        "[[inputs.http_response]]\n  urls = [\"http://127.0.0.1:{h}/missing\"]\n  response_string_match = \"absent text\"\n  response_status_code = 200\n\
         [[inputs.http_response]]\n  urls = [\"http://127.0.0.1:{h}/hello\"]\n  response_string_match = \"hello\"\n  response_status_code = 200\n  response_body_max_size = \"5B\"\n"
    );
    let (http, _) = probe_once(&config, &[]);
    let by = |p: &str| ending(&http, p);
    // Both checks fail: the status code is checked last and names the result.
    let both = by("/missing");
    assert_eq!(both.tag("result"), Some("response_status_code_mismatch"));
    assert_eq!(both.int("result_code"), Some(6));
    assert_eq!(both.int("response_string_match"), Some(0));
    assert_eq!(both.int("response_status_code_match"), Some(0));
    // A body over the limit: body_read_error, response_string_match=0, no status-code check,
    // content_length = limit + 1 (what telegraf read).
    let big = by("/hello");
    assert_eq!(big.tag("result"), Some("body_read_error"));
    assert_eq!(big.int("result_code"), Some(2));
    assert_eq!(big.int("response_string_match"), Some(0));
    assert_eq!(big.int("response_status_code_match"), None);
    assert_eq!(big.int("content_length"), Some(6));
    assert_eq!(big.string("http_version").as_deref(), Some("1.1"));
}

#[test]
fn http_redirects_as_go_follows_them() {
    // /loop redirects to itself forever; /away sends the client to the same server under
    // another name (localhost), /post answers a POST with 302 to /landing.
    let (p, seen) = recorder(move |r| match r.target.as_str() {
        "/loop" => (302, vec![("Location", "/loop".into())], String::new()),
        "/away" => (
            302,
            vec![(
                "Location",
                format!(
                    "http://localhost:{}/landing",
                    r.header("x-port").unwrap_or("0")
                ),
            )],
            String::new(),
        ),
        "/post" => (302, vec![("Location", "/landing".into())], String::new()),
        _ => (200, vec![], "landed".into()),
    });
    let config = format!(
        "[[inputs.http_response]]\n  urls = [\"http://127.0.0.1:{p}/loop\"]\n  follow_redirects = true\n\
         [[inputs.http_response]]\n  urls = [\"http://127.0.0.1:{p}/away\"]\n  follow_redirects = true\n  username = \"probe\"\n  password = \"s3cret\"\n  headers = {{ X-Port = \"{p}\", Cookie = \"c=1\", User-Agent = \"pasted/1.0\" }}\n\
         [[inputs.http_response]]\n  urls = [\"http://127.0.0.1:{p}/post\"]\n  follow_redirects = true\n  method = \"POST\"\n  body = \"data\"\n"
    );
    let (http, _) = probe_once(&config, &[]);
    let by = |p: &str| ending(&http, p);
    // Ten redirects followed, the eleventh is an error without a status (Go's client).
    let looped = by("/loop");
    assert_eq!(
        looped.tag("result"),
        Some("connection_failed"),
        "{looped:?}"
    );
    assert_eq!(looped.tag("status_code"), None);
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.iter().filter(|s| s.target == "/loop").count(), 11);
    // Credentials and the configured cookie stay with the first host; our User-Agent is not
    // added to the configured one.
    assert_eq!(by("/away").int("http_response_code"), Some(200));
    let first = seen.iter().find(|s| s.target == "/away").unwrap();
    assert!(first.header("authorization").is_some() && first.header("cookie") == Some("c=1"));
    let landed = seen
        .iter()
        .find(|s| {
            s.target == "/landing" && s.header("host").is_some_and(|h| h.starts_with("localhost"))
        })
        .unwrap();
    assert_eq!(landed.header("authorization"), None);
    assert_eq!(landed.header("cookie"), None);
    assert_eq!(landed.header("user-agent"), Some("pasted/1.0"));
    assert_eq!(
        landed
            .headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
            .count(),
        1
    );
    // A POST answered with 302 continues as a GET without body.
    let post = seen.iter().find(|s| s.target == "/post").unwrap();
    assert_eq!(
        (post.method.as_str(), post.body.as_slice()),
        ("POST", &b"data"[..])
    );
    let after = seen
        .iter()
        .find(|s| {
            s.target == "/landing" && s.header("host").is_some_and(|h| h.starts_with("127.0.0.1"))
        })
        .unwrap();
    assert_eq!((after.method.as_str(), after.body.len()), ("GET", 0));
    assert_eq!(by("/post").tag("method"), Some("POST"));
}

/// microsocks (a SOCKS5 server) on loopback, requiring `probe`/`s3cret`.
struct Microsocks {
    child: std::process::Child,
    port: u16,
}

impl Drop for Microsocks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_microsocks() -> Microsocks {
    let port = free_port();
    let child = std::process::Command::new("microsocks")
        .args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-u",
            "probe",
            "-P",
            "s3cret",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("microsocks not found: tests/run.sh installs it");
    wait_port(port, "microsocks");
    Microsocks { child, port }
}

#[test]
fn http_through_a_socks5_proxy() {
    let ng = start_nginx();
    let socks = start_microsocks();
    let (h, s, p) = (ng.http, ng.https, socks.port);
    let ca = ng.pki.path("ca.pem");
    // By address: `localhost` may be ::1 first on the machine running this, and nginx and
    // microsocks's target are IPv4 loopback only.
    let urls = format!("[\"http://127.0.0.1:{h}/hello\", \"https://127.0.0.1:{s}/hello\"]");
    let config = format!(
        "[[inputs.http_response]]\n  urls = {urls}\n  http_proxy = \"socks5://probe:s3cret@127.0.0.1:{p}\"\n  tls_ca = \"{}\"\n\
         [[inputs.http_response]]\n  urls = [\"http://127.0.0.1:{h}/hello\"]\n  http_proxy = \"socks5h://probe:wrong@127.0.0.1:{p}\"\n  alias = \"wrong\"\n",
        ca.display()
    );
    let (http, output) = probe_once(&config, &[]);
    assert_eq!(http.len(), 3, "{http:#?}");
    let ok: Vec<_> = http
        .iter()
        .filter(|l| l.tag("result") == Some("success"))
        .collect();
    assert_eq!(ok.len(), 2, "{http:#?}");
    for l in &ok {
        assert_eq!(l.int("content_length"), Some(HELLO.len() as i64), "{l:?}");
    }
    // The https URL: through the tunnel (no dns_time of ours), TLS end to end.
    let tls = ok
        .iter()
        .find(|l| l.tag("server").unwrap().starts_with("https"))
        .unwrap();
    assert_eq!(tls.int("tls_verification_code"), Some(0));
    assert!(tls.float("dns_time").is_none());
    let refused = http
        .iter()
        .find(|l| l.tag("result") != Some("success"))
        .unwrap();
    assert_eq!(refused.tag("result"), Some("connection_failed"));
    assert!(!output.contains("s3cret"));
}
