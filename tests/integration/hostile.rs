//! Hostile targets: servers that trickle, never stop sending headers, send a 1 GiB body, answer
//! TLS with garbage, answer DNS with junk, or accept and never speak. Each probe must end in a
//! timely failed-probe result, and the agent's memory must stay bounded while they keep at it.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::harness::*;

const SEC: Duration = Duration::from_secs(1);

/// Accepts connections forever, each handled on its own thread by `serve`.
fn tcp_server(serve: fn(TcpStream)) -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for c in l.incoming().flatten() {
            std::thread::spawn(move || serve(c));
        }
    });
    port
}

/// Reads (bounded) until the end of the request headers.
fn read_request(c: &mut TcpStream) {
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    let _ = c.set_read_timeout(Some(5 * SEC));
    while !seen.windows(4).any(|w| w == b"\r\n\r\n") && seen.len() < 64 * 1024 {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
}

fn trickle(mut c: TcpStream) {
    read_request(&mut c);
    for b in b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
        .iter()
        .cycle()
        .take(600)
    {
        if c.write_all(&[*b]).is_err() {
            return;
        }
        std::thread::sleep(SEC);
    }
}

fn endless_headers(mut c: TcpStream) {
    read_request(&mut c);
    if c.write_all(b"HTTP/1.1 200 OK\r\n").is_err() {
        return;
    }
    let header = format!("X-Junk: {}\r\n", "a".repeat(1000));
    // Bounded: 100 MB at most per connection, usually cut short by the client.
    for _ in 0..100_000 {
        if c.write_all(header.as_bytes()).is_err() {
            return;
        }
    }
}

fn gigabyte_body(mut c: TcpStream) {
    read_request(&mut c);
    if c.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1073741824\r\n\r\n")
        .is_err()
    {
        return;
    }
    let chunk = vec![b'z'; 64 * 1024];
    for _ in 0..(1 << 14) {
        if c.write_all(&chunk).is_err() {
            return;
        }
    }
}

fn garbage_tls(mut c: TcpStream) {
    let mut buf = [0u8; 1024];
    let _ = c.set_read_timeout(Some(5 * SEC));
    let _ = c.read(&mut buf);
    let junk: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let _ = c.write_all(&junk);
    std::thread::sleep(10 * SEC);
}

fn silent(c: TcpStream) {
    std::thread::sleep(60 * SEC);
    drop(c);
}

/// Answers every DNS query with bytes that are not a DNS message.
fn junk_dns() -> u16 {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = s.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        // Bounded: plenty for the test's rounds.
        for _ in 0..1000 {
            let Ok((n, from)) = s.recv_from(&mut buf) else {
                return;
            };
            let mut reply = buf[..n.min(2)].to_vec();
            reply.extend_from_slice(b"\xff\xffjunk junk junk");
            let _ = s.send_to(&reply, from);
        }
    });
    port
}

#[test]
fn hostile_targets_give_timely_failed_results_and_bounded_memory() {
    let trickle = tcp_server(trickle);
    let headers = tcp_server(endless_headers);
    let body = tcp_server(gigabyte_body);
    let tls = tcp_server(garbage_tls);
    let mute = tcp_server(silent);
    let dns = junk_dns();
    let config = format!(
        "[agent]\ninterval = \"4s\"\n\
         [[inputs.http_response]]\nalias = \"trickle\"\nurls = [\"http://127.0.0.1:{trickle}/\"]\nresponse_timeout = \"1s\"\n\
         [[inputs.http_response]]\nalias = \"headers\"\nurls = [\"http://127.0.0.1:{headers}/\"]\nresponse_timeout = \"2s\"\n\
         [[inputs.http_response]]\nalias = \"body\"\nurls = [\"http://127.0.0.1:{body}/\"]\nresponse_timeout = \"2s\"\n\
         response_string_match = \"never there\"\nresponse_body_max_size = \"1MiB\"\n\
         [[inputs.http_response]]\nalias = \"tls\"\nurls = [\"https://127.0.0.1:{tls}/\"]\nresponse_timeout = \"2s\"\n\
         [[inputs.http_response]]\nalias = \"mute\"\nurls = [\"http://127.0.0.1:{mute}/\"]\nresponse_timeout = \"1s\"\n\
         [[inputs.net_response]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:{mute}\"\nsend = \"hello\\n\"\nexpect = \"hi\"\n\
         timeout = \"1s\"\nread_timeout = \"1s\"\n\
         [[inputs.dns_query]]\nservers = [\"127.0.0.1\"]\nport = {dns}\ndomains = [\"example.org\"]\nrecord_type = \"A\"\ntimeout = \"1s\"\n\
         [[inputs.internal]]\n"
    );
    let start = Instant::now();
    let a = Agent::start(&config);
    // Every probe of the first round ends within its own timeout (at most 2 s) plus slack: 4 s
    // from spawning the agent leaves 2 s for start-up on a loaded machine, and still fails a
    // probe that waits for the 4 s interval or for a server that never ends.
    let want = |l: &[String]| {
        let p = parse_all(l);
        let http = p
            .iter()
            .filter(|m| m.measurement == "http_response")
            .count();
        let net = p.iter().filter(|m| m.measurement == "net_response").count();
        let dns = p.iter().filter(|m| m.measurement == "dns_query").count();
        http >= 5 && net >= 1 && dns >= 1
    };
    let lines = a.wait_for("one result per hostile target", 4 * SEC, want);
    let first_round = start.elapsed();
    eprintln!("hostile: first round of results after {first_round:?}");
    influx().assert_accepts(&lines);
    let parsed = parse_all(&lines);
    let http = |port: u16| {
        parsed
            .iter()
            .find(|l| {
                l.measurement == "http_response"
                    && l.tag("server")
                        .is_some_and(|s| s.contains(&format!(":{port}/")))
            })
            .unwrap_or_else(|| panic!("no http_response for port {port}"))
            .clone()
    };
    for (what, port) in [
        ("trickle", trickle),
        ("headers", headers),
        ("body", body),
        ("tls", tls),
        ("mute", mute),
    ] {
        let l = http(port);
        let result = l.tag("result").unwrap_or("?").to_owned();
        eprintln!(
            "hostile: http {what}: result={result} result_code={:?}",
            l.int("result_code")
        );
        assert_ne!(result, "success", "{what}: {l:?}");
        assert_ne!(l.int("result_code"), Some(0), "{what}: {l:?}");
    }
    assert_eq!(http(trickle).tag("result"), Some("timeout"));
    assert_eq!(http(mute).tag("result"), Some("timeout"));
    assert!(
        matches!(
            http(body).tag("result"),
            Some("body_read_error") | Some("response_string_mismatch")
        ),
        "{:?}",
        http(body)
    );
    let net = parsed
        .iter()
        .find(|l| l.measurement == "net_response")
        .unwrap();
    eprintln!("hostile: net_response mute: result={:?}", net.tag("result"));
    assert!(
        matches!(net.tag("result"), Some("timeout") | Some("read_failed")),
        "{net:?}"
    );
    let dns_line = parsed
        .iter()
        .find(|l| l.measurement == "dns_query")
        .unwrap();
    eprintln!("hostile: dns junk: result={:?}", dns_line.tag("result"));
    assert_ne!(dns_line.tag("result"), Some("success"), "{dns_line:?}");

    // Three more rounds of the same abuse: memory stays bounded.
    let rss1 = a.rss_bytes();
    std::thread::sleep(12 * SEC);
    let rss2 = a.rss_bytes();
    eprintln!(
        "hostile: RSS {} KiB after round 1, {} KiB after round 4",
        rss1 / 1024,
        rss2 / 1024
    );
    assert!(rss2 < 64 << 20, "RSS {rss2}");
    assert!(rss2 < rss1 + (8 << 20), "RSS grew from {rss1} to {rss2}");
    let late = parse_all(&a.lines())
        .iter()
        .filter(|l| l.measurement == "metrics_agent_gather")
        .filter_map(|l| l.int("gather_timeouts"))
        .max()
        .unwrap_or(0);
    assert_eq!(late, 0, "a hostile target made a whole gather overrun");
}
