//! Entry points for the fuzz targets (`fuzz/`) and the test that replays their inputs: one thin
//! wrapper per parser of bytes that come from outside the process. The fuzz crate reaches the
//! parsers only through this module, so moving a parser means fixing one path here. Not an API:
//! hidden from the docs, no stability promised.
//!
//! Each wrapper returns nothing and must never panic (the fuzz build turns overflow and debug
//! assertions into crashes); where a parser's result becomes a metric, the metric is encoded too,
//! since that is where the bytes end up.

use crate::modules::{
    cgroup, disk, diskio, dns_query, hostutil, kernel, mem, mqtt_consumer, net, netstat, processes,
    procfs, procstat, swap, system, tls, x509_cert,
};
use crate::output::{Decoration, Metric, encode_line};

/// Encodes `m` as the writer would (refusing it is fine; panicking is not).
fn encode(m: &Metric) {
    let mut out = Vec::new();
    let _ = encode_line(&mut out, m, &Decoration::default());
}

/// A reply from a hostile resolver (UDP payload, or a TCP message after its length prefix):
/// header, then the answer section read into telegraf's fields, every one encoded.
pub fn dns_reply(bytes: &[u8]) {
    if let Some(h) = dns_query::parse_header(bytes) {
        assert!(bytes.len() >= 12);
        let mut m = Metric::new("dns_query", 0).field("answer_count", i64::from(h.answer_count));
        if let Some(name) = dns_query::rcode_name(h.rcode) {
            m = m.tag("rcode", name);
        }
        if let Some(f) = dns_query::parse_answers(bytes) {
            assert!(f.ips.iter().all(|(i, _)| *i < usize::from(h.answer_count)));
        }
        encode(&dns_query::answer_fields(m, bytes, true, true));
    } else {
        assert!(bytes.len() < 12, "a 12-byte header is always read");
    }
}

/// What `recvmsg` returned on an ICMP socket: the first byte picks the family and socket kind
/// (bit 0: IPv6, bit 1: datagram socket), the rest is the packet (anyone on the network can
/// send one). With bit 2 set the rest is instead the output of a ping program (the exec
/// method), which echoes what the network and name service said.
pub fn icmp_packet(bytes: &[u8]) {
    use crate::modules::ping::packet::{Family, Kind, checksum, decode_reply};
    let Some((&sel, data)) = bytes.split_first() else {
        return;
    };
    if sel & 4 != 0 {
        let text = String::from_utf8_lossy(data);
        let parsed = crate::modules::ping::exec::parse_output(&text);
        if let Ok(s) = &parsed {
            assert!(s.transmitted >= 0 && s.received >= 0);
        }
        let _ = crate::modules::ping::exec::metric(0, "u", Some(1), &text);
        return;
    }
    let family = if sel & 1 == 0 { Family::V4 } else { Family::V6 };
    let kind = if sel & 2 == 0 {
        Kind::Raw
    } else {
        Kind::Datagram
    };
    if let Some(reply) = decode_reply(data, family, kind) {
        assert_eq!(
            reply.ttl.is_some(),
            (family, kind) == (Family::V4, Kind::Raw)
        );
        if reply.ttl.is_some() {
            let ihl = usize::from(data[0] & 0x0f) * 4;
            assert_eq!(checksum(&data[ihl..]), 0, "a raw IPv4 reply is checksummed");
        }
    }
}

/// One datagram of a `NETLINK_SOCK_DIAG` dump reply. The first byte picks the request type the
/// records must carry (bit 0: the legacy `TCPDIAG_GETSOCK` 18, else `SOCK_DIAG_BY_FAMILY` 20);
/// the sequence number expected is the first message's, so its records are walked.
pub fn sock_diag(bytes: &[u8]) {
    let Some((&sel, data)) = bytes.split_first() else {
        return;
    };
    let ty = if sel & 1 == 0 { 20 } else { 18 };
    let seq = data
        .get(8..12)
        .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]));
    let mut n = 0u64;
    let _ = netstat::sock_diag::parse_diag(data, seq, ty, &mut |r| {
        n += 1;
        let _ = (r.family(), r.state(), r.timer(), r.sport(), r.dport());
        // procstat's `procstat_socket` reads the whole record of inet and unix dumps.
        if let Some(s) = procstat::sockets::parse_inet_record(r.bytes()) {
            let _ = (s.src.to_string(), s.dest.to_string(), s.tcp);
            let _ = procstat::sockets::state_name(s.state);
        }
        if let Some(s) = procstat::sockets::parse_unix_record(r.bytes()) {
            let _ = (s.name, procstat::sockets::type_name(s.kind));
        }
    });
}

/// Bytes a client sends to the health endpoint, fed to its request reader in chunks (the first
/// byte sets the chunk size, as reads from a socket would split them).
pub fn health_request(bytes: &[u8]) {
    use crate::health::{Head, MAX_REQUEST, RequestReader};
    let Some((&sel, data)) = bytes.split_first() else {
        return;
    };
    let chunk = usize::from(sel % 64) + 1;
    let mut r = RequestReader::default();
    let mut head = Head::Incomplete;
    for c in data.chunks(chunk) {
        head = r.push(c);
        if !matches!(head, Head::Incomplete) {
            break;
        }
    }
    // However the bytes were split, the answer is the one for all of them at once.
    let mut whole = RequestReader::default();
    let at_once = whole.push(data);
    assert_eq!(head, at_once, "chunks of {chunk}");
    if let Head::Complete { method, path } = &head {
        assert!(method.len() + path.len() <= MAX_REQUEST);
        let _ = crate::health::route(method, path, &crate::stats::Registry::default(), 0);
    }
}

/// The `/proc` and `/sys` file parsers: the first byte picks the parser (modulo the table),
/// the rest is the file (under `HOST_PROC`/`HOST_SYS` a mounted tree can hold anything). Text
/// files are read into a `String` by the inputs, so they get the bytes as lossy UTF-8.
pub fn procfs(bytes: &[u8]) {
    let Some((&sel, data)) = bytes.split_first() else {
        return;
    };
    let (_, parse) = PROCFS[usize::from(sel) % PROCFS.len()];
    parse(data);
}

/// One parser of [`PROCFS`]: its name (the seed files' names) and the wrapper.
pub type Parser = (&'static str, fn(&[u8]));

/// The parsers of [`procfs`], by selector byte (the index).
pub const PROCFS: [Parser; 22] = [
    ("cpu-stat", |b| {
        procfs::stat::parse(
            &String::from_utf8_lossy(b),
            Some(&mut |name, t| {
                let _ = (name.len(), t.total(), t.total().saturating_sub(t.idle));
            }),
        );
    }),
    ("meminfo", |b| {
        let text = String::from_utf8_lossy(b);
        let mut v: mem::MemValues = std::array::from_fn(|_| 0);
        mem::parse_meminfo(&text, &mut v);
        let _ = mem::derived(&v);
        if let Ok(m) = mem::build(0, &v, true) {
            encode(&m);
        }
        let _ = swap::parse_meminfo_swap(&text);
    }),
    ("vmstat", |b| {
        let _ = procfs::vmstat::values(&String::from_utf8_lossy(b), ["pswpin", "pswpout"]);
    }),
    ("kernel-stat", |b| {
        let _ = procfs::stat::parse(&String::from_utf8_lossy(b), None);
    }),
    ("pressure", |b| {
        for p in kernel::parse_pressure(&String::from_utf8_lossy(b)) {
            assert!(p.avg10.is_finite() && p.avg60.is_finite() && p.avg300.is_finite());
        }
    }),
    ("diskstats", |b| {
        let mut prev: Option<diskio::DiskStat> = None;
        diskio::parse_diskstats(&String::from_utf8_lossy(b), |_, s| {
            if let Some(p) = &prev {
                let d = diskio::derived(p, &s, 1000.0);
                assert!(d.await_ms.is_none_or(|a| a >= 0.0) && d.svctm_ms.is_none_or(|s| s >= 0.0));
                assert!(d.util.is_none_or(|u| u >= 0.0));
            }
            prev = Some(s);
        })
    }),
    ("net-dev", |b| {
        net::parse_net_dev(&String::from_utf8_lossy(b), |name, _| {
            assert!(!name.is_empty())
        })
    }),
    ("net-flags", |b| {
        let _ = net::parse_flags(&String::from_utf8_lossy(b));
    }),
    ("mountinfo", |b| {
        let mounts = disk::parse_mountinfo(b);
        assert_eq!(disk::inline_ok(&mounts).len(), mounts.len());
        for m in &mounts {
            let _ = (m.mode(), m.device());
        }
    }),
    ("statvfs", |b| {
        // A statvfs answer: a FUSE daemon or a network file system server chooses the numbers.
        let mut n = b
            .chunks(8)
            .map(|c| c.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x)));
        let mut next = || n.next().unwrap_or(0);
        let u = disk::Usage {
            blocks: next(),
            bfree: next(),
            bavail: next(),
            frsize: next(),
            files: next(),
            ffree: next(),
        };
        let mount = disk::parse_mountinfo(b"1 0 8:1 / / rw - ext4 /dev/sda1 rw");
        if let Some(m) = disk::metric(0, &mount[0], &u) {
            encode(&m);
        }
    }),
    ("pid-stat-processes", |b| {
        let mut c = processes::Counts::default();
        c.add_stat(b);
        encode(&processes::metric(0, &c));
    }),
    ("cgroup-file", |b| {
        encode(&cgroup::add_file_fields(
            Metric::new("cgroup", 0).tag("path", "/sys/fs/cgroup"),
            "memory.stat",
            &String::from_utf8_lossy(b),
        ));
    }),
    ("pid-stat-procstat", |b| {
        if let Some((comm, s)) = procstat::proc::parse_stat(b) {
            let _ = (comm.len(), procstat::proc::status_word(s.state));
        }
    }),
    ("pid-status", |b| {
        let _ = procstat::proc::parse_status(&String::from_utf8_lossy(b));
    }),
    ("pid-io", |b| {
        let _ = procstat::proc::parse_io(&String::from_utf8_lossy(b));
    }),
    ("smaps-rollup", |b| {
        let _ = procstat::proc::parse_smaps_rollup(&String::from_utf8_lossy(b));
    }),
    ("loadavg-uptime", |b| {
        let text = String::from_utf8_lossy(b);
        let _ = system::parse_loadavg(&text);
        if let Some(s) = system::parse_uptime(&text) {
            let _ = system::format_uptime(s);
        }
    }),
    ("cpu-list", |b| {
        let _ = system::count_cpu_list(&String::from_utf8_lossy(b));
    }),
    ("utmp", |b| {
        let (sessions, users) = system::count_users(b);
        assert!(users <= sessions);
    }),
    ("net-tcp-sockstat", |b| {
        let text = String::from_utf8_lossy(b);
        let mut counts = [0u64; 12];
        netstat::proc_net::count_tcp(&text, &mut counts);
        let _ = (
            netstat::proc_net::count_lines(&text),
            netstat::proc_net::sockstat_tw(&text),
            hostutil::kv_number(&text),
        );
    }),
    ("pid-limits", |b| {
        let _ = procstat::proc::parse_limits(&String::from_utf8_lossy(b));
    }),
    ("supervisorctl-status", |b| {
        let _ = procstat::services::parse_supervisor_status(&String::from_utf8_lossy(b));
    }),
];

/// x509_cert's inputs from outside: the first byte picks what the rest is (0: a `sources`
/// string; 1: a PEM file; 2: a stapled OCSP response; 3: a JKS keystore; 4: a PKCS#12 file;
/// else: one DER certificate as a TLS server sends it). Certificates are judged (verdict,
/// type) against themselves as roots and their lines encoded.
pub fn x509(bytes: &[u8]) {
    use x509_cert::{keystore, ocsp, verify};
    let Some((&sel, data)) = bytes.split_first() else {
        return;
    };
    let certs = match sel {
        0 => {
            let _ = x509_cert::parse_source(&String::from_utf8_lossy(data));
            return;
        }
        1 => match tls::pem_certs(data) {
            Ok(c) => c,
            Err(_) => return,
        },
        2 => {
            if let Ok(o) = ocsp::parse(data) {
                assert!((0..=2).contains(&o.status));
                assert_eq!(o.revoked_at.is_some(), o.status == 1);
            }
            return;
        }
        3 => match keystore::parse_jks(data, "changeit") {
            Ok(s) => s.0,
            Err(_) => return,
        },
        4 => match keystore::parse_pkcs12(data, "changeit") {
            Ok(s) => s.0,
            Err(_) => return,
        },
        _ => vec![data.to_vec().into()],
    };
    let now = 1_700_000_000;
    let parsed: Vec<_> = certs
        .iter()
        .filter_map(|d| {
            use x509_parser::prelude::FromDer;
            let (_, x) = x509_parser::prelude::X509Certificate::from_der(d).ok()?;
            Some((x, tls::parse_cert(d).ok()?))
        })
        .collect();
    let (xs, infos): (Vec<_>, Vec<_>) = parsed.into_iter().unzip();
    let roots = verify::Roots::new(certs.iter().cloned());
    let judged = verify::judge(&xs, &roots, Some("example.org"), now);
    assert_eq!(judged.len(), infos.len());
    for (info, j) in infos.iter().zip(&judged) {
        encode(&x509_cert::cert_metric(
            "file:///fuzz.pem",
            info,
            j,
            true,
            now,
            0,
        ));
    }
}

/// An MQTT message from anyone who may publish on a subscribed topic. The first byte picks the
/// input's config: 0 `influx`, 1 `json` (tag keys, string fields, name and time keys, a query),
/// 2 `value` (float), 3 `value` (string); each with `topic_parsing` rules using `+`, `#` and a
/// leading `/`. The topic is the rest up to the first newline, the payload what follows. Every
/// resulting metric is encoded.
pub fn mqtt_message(bytes: &[u8]) {
    use std::sync::OnceLock;
    static CONFIGS: OnceLock<Vec<mqtt_consumer::Config>> = OnceLock::new();
    let configs = CONFIGS.get_or_init(|| {
        const RULES: &str = "[[topic_parsing]]\ntopic = \"/+/#/x\"\nmeasurement = \"_/measurement/#/_\"\n\
            tags = \"_/_/#/t\"\n[[topic_parsing]]\ntopic = \"a/+/+\"\nfields = \"_/f/g\"\n\
            [topic_parsing.types]\nf = \"int\"\ng = \"float\"\n";
        [
            "data_format = \"influx\"\n",
            "data_format = \"json\"\ntag_keys = [\"id*\", \"a_?\"]\njson_string_fields = [\"s*\"]\n\
             json_name_key = \"name\"\njson_time_key = \"t\"\n\
             json_time_format = \"2006-01-02T15:04:05.000Z07:00\"\njson_query = \"data\"\n",
            "data_format = \"value\"\ndata_type = \"float\"\n",
            "data_format = \"value\"\ndata_type = \"string\"\n",
        ]
        .iter()
        .map(|f| {
            let text = format!("topics = [\"#\"]\n{f}{RULES}");
            mqtt_consumer::resolve(toml::from_str(&text).expect("fuzz config"))
                .expect("fuzz config resolves")
        })
        .collect()
    });
    let Some((&sel, rest)) = bytes.split_first() else {
        return;
    };
    let cfg = &configs[usize::from(sel) % configs.len()];
    let (topic, payload) = match rest.iter().position(|&b| b == b'\n') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (&b"sensors/x"[..], rest),
    };
    let topic = String::from_utf8_lossy(topic);
    if let Ok(metrics) = mqtt_consumer::parse_message(cfg, &topic, payload, 0) {
        for m in &metrics {
            encode(m);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutated_messages_never_panic() {
        let seeds: [&[u8]; 4] = [
            b"\x00s/k\nw,l=a\\ b t=82,h=71i,s=\"x\\\"y\" 1465839830100400200\n",
            b"\x01z/1\n{\"data\":{\"id\":\"x\",\"t\":\"2023-11-14T22:13:20.123Z\",\"a\":{\"b\":[1,{}]}}}",
            b"\x02/site/attic/x\n21.5",
            b"\x03a/7/0.5\nON",
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let mut m = seeds[(next() % 4) as usize].to_vec();
            for _ in 0..(next() % 4 + 1) {
                let i = (next() as usize) % m.len();
                match next() % 3 {
                    0 => m[i] = next() as u8,
                    1 => m.insert(i, b"/+#_\\\",={}[]:.\n "[(next() % 16) as usize]),
                    _ if m.len() > 2 => {
                        m.remove(i);
                    }
                    _ => {}
                }
            }
            mqtt_message(&m);
        }
    }
}
