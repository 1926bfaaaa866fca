//! End to end with real parts: the agent's stdout forwarded to a real InfluxDB 1.x in batches
//! (what telegraf's execd input and influxdb output do, including telegraf's `host` tag), then
//! every InfluxQL query of the shipped Grafana dashboard, template variables filled in, must
//! return data. Also signals through the whole path: SIGHUP with a changed config adds a
//! target that then appears in InfluxDB; SIGTERM leaves no line unwritten.

use std::time::{Duration, Instant};

use crate::harness::*;
use crate::netprobes::{Nginx, start_dnsmasq, start_nginx};

const SEC: Duration = Duration::from_secs(1);

/// Inserts telegraf's `host` tag after the measurement, as telegraf does for lines without one.
fn with_host(line: &str, host: &str) -> String {
    let b = line.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b',' | b' ' => break,
            _ => i += 1,
        }
    }
    format!("{},host={host}{}", &line[..i], &line[i..])
}

/// Forwards new agent lines to InfluxDB; returns how many were forwarded so far.
fn forward(agent: &Agent, sent: &mut usize, host: &str) {
    let lines = agent.lines();
    if lines.len() > *sent {
        let batch: Vec<String> = lines[*sent..].iter().map(|l| with_host(l, host)).collect();
        influx().assert_accepts(&batch);
        *sent = lines.len();
    }
}

/// The dashboard's queries with Grafana's variables replaced as Grafana would for "All".
fn dashboard_queries(host: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/packaging/grafana/metrics-agent.json"
    ))
    .expect("dashboard");
    let dash: serde_json::Value = serde_json::from_str(&text).expect("dashboard is JSON");
    let mut out = Vec::new();
    for p in dash["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().into_iter().flatten() {
            let q = t["query"].as_str().expect("raw query");
            let q = q
                .replace("$timeFilter", "time > now() - 15m")
                .replace("$__interval", "1s")
                .replace("/^$host$/", &format!("/^{host}$/"))
                .replace("/^$ping_url$/", "/.*/")
                .replace("/^$http_server$/", "/.*/")
                .replace("/^$tcp_server$/", "/.*/")
                .replace("/^$dns_server$/", "/.*/");
            let unreplaced = q.match_indices('$').any(|(i, _)| {
                q[i + 1..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            });
            assert!(!unreplaced, "unreplaced variable in {q}");
            out.push((
                format!("{} / {}", p["title"].as_str().unwrap_or("?"), t["refId"]),
                q,
            ));
        }
    }
    assert!(out.len() >= 15, "dashboard has {} queries", out.len());
    out
}

/// Agent config for the end-to-end run: host inputs, ping, the agent's health, and whatever
/// probe targets `extra` adds.
fn e2e_config(ping_urls: &[&str], extra: &str) -> String {
    let urls: Vec<String> = ping_urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        "[agent]\ninterval = \"1s\"\n\
         [[inputs.internal]]\n[[inputs.system]]\n[[inputs.cpu]]\n[[inputs.mem]]\n\
         [[inputs.disk]]\n[[inputs.net]]\ninterfaces = [\"*\"]\n\
         [[inputs.ping]]\nurls = [{}]\ncount = 1\ntimeout = 0.5\ndeadline = 1\n{extra}",
        urls.join(", ")
    )
}

/// HTTP, HTTPS, TCP, DNS and certificate probes of the loopback nginx and dnsmasq.
fn probe_config(nginx: &Nginx, dns_port: u16) -> String {
    let ca = nginx.pki.path("ca.pem");
    format!(
        "[[inputs.http_response]]\nurls = [\"http://127.0.0.1:{http}/\", \"https://localhost:{https}/\"]\n\
         tls_ca = \"{ca}\"\nresponse_timeout = \"2s\"\n\
         [[inputs.net_response]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:{http}\"\n\
         [[inputs.dns_query]]\nservers = [\"127.0.0.1\"]\nport = {dns_port}\ndomains = [\"test.example\"]\nrecord_type = \"A\"\n\
         [[inputs.x509_cert]]\nsources = [\"https://localhost:{https}\"]\ntls_ca = \"{ca}\"\n",
        http = nginx.http,
        https = nginx.https,
        ca = ca.display(),
    )
}

#[test]
fn dashboard_queries_return_data_from_a_real_influxdb() {
    let host = format!("e2e-{}", std::process::id());
    let nginx = start_nginx();
    let dns = start_dnsmasq();
    let probes = probe_config(&nginx, dns.port);
    let mut a = Agent::start(&e2e_config(&["127.0.0.1"], &probes));
    let mut sent = 0;
    let start = Instant::now();
    // Run long enough for counters to have two samples (derivatives) and cpu to have a delta.
    while start.elapsed() < 3500 * Duration::from_millis(1) {
        forward(&a, &mut sent, &host);
        std::thread::sleep(Duration::from_millis(200));
    }

    // SIGHUP with a changed config: a new ping target appears in InfluxDB.
    a.write_config(&e2e_config(&["127.0.0.1", "127.0.0.2"], &probes));
    a.signal(libc::SIGHUP);
    let t = Instant::now();
    loop {
        forward(&a, &mut sent, &host);
        let r = influx().query(&format!(
            "SELECT count(\"packets_received\") FROM \"ping\" WHERE \"host\" = '{host}' AND \"url\" = '127.0.0.2'"
        ));
        if r.contains("\"values\"") {
            break;
        }
        assert!(
            t.elapsed() < 10 * SEC,
            "new ping target never reached InfluxDB: {r}\n{}",
            a.stderr()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // SIGTERM: every line the agent wrote is forwarded and accepted.
    a.signal(libc::SIGTERM);
    let (st, _) = a.wait_exit(5 * SEC);
    assert!(st.success(), "{}", a.stderr());
    forward(&a, &mut sent, &host);
    let written = parse_all(&a.lines())
        .iter()
        .rev()
        .find(|l| l.measurement == "metrics_agent")
        .and_then(|l| l.int("metrics_written"))
        .expect("metrics_agent line");
    assert!(
        sent as i64 >= written,
        "agent wrote {written} lines, {sent} arrived"
    );
    let stored = influx().query(&format!(
        "SELECT count(\"uptime\") FROM \"system\" WHERE \"host\" = '{host}'"
    ));
    assert!(stored.contains("\"values\""), "{stored}");

    let mut empty = Vec::new();
    for (panel, q) in dashboard_queries(&host) {
        let r = influx().query(&q);
        let has_data = r.contains("\"values\"") && !r.contains("\"error\"");
        if !has_data {
            empty.push(format!("{panel}: {q}\n  -> {r}"));
        }
    }
    assert!(
        empty.is_empty(),
        "dashboard queries without data:\n{}",
        empty.join("\n")
    );
}
