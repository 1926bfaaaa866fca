//! telegraf's dns_query (`plugins/inputs/dns_query`): options and schema.
//!
//! Option values are sample.conf's, except `servers`: loopback instead of 8.8.8.8, so that the
//! runs send nothing off the machine.

use super::{Kind::*, Series, Setup, Table};
use crate::netprobes::start_zone_dnsmasq;

pub(crate) const TABLE: Table = Table {
    input: "dns_query",
    base: "servers = [\"127.0.0.1\"]\nport = 1\ntimeout = \"1s\"",
    options: &[
        r#"servers = ["127.0.0.1"]"#,
        r#"network = "udp""#,
        r#"domains = ["."]"#,
        r#"record_type = "A""#,
        r#"port = 53"#,
        r#"timeout = "2s""#,
        r#"include_fields = []"#,
        r#"include_fields = ["first_ip", "all_ips"]"#,
        r#"network = "tcp""#,
    ],
    refused: &[
        (r#"include_fields = ["last_ip"]"#, "invalid field"),
        // telegraf fails every query of it.
        (
            "domains = [\"example.org\"]\nrecord_type = \"HINFO\"",
            "record_type",
        ),
        // Ours: telegraf's DNS library also speaks DNS over TLS (README, "Where we differ").
        (r#"network = "tcp-tls""#, "DNS over TLS"),
    ],
    schema: &[Series {
        measurement: "dns_query",
        tags: &["server", "domain", "record_type", "result", "rcode"],
        fields: &[
            ("query_time_ms", Float),
            ("result_code", Int),
            ("rcode_value", Int),
            ("name", Str),
            ("preference", Int),
            ("expire", Int),
            ("minttl", Int),
            ("refresh", Int),
            ("retry", Int),
            ("serial", Int),
            ("ip", Str),
            ("ip_0", Str),
            ("ip_1", Str),
        ],
        extra: &[("answer_count", Int)],
        unseen: &[],
    }],
    setup,
};

/// dnsmasq authoritative for `zone.example`: SOA, MX and a name with two A records.
fn setup() -> Setup {
    let dns = start_zone_dnsmasq();
    let block = |t: &str, d: &str| {
        format!(
            "[[inputs.dns_query]]\nservers = [\"127.0.0.1\"]\nport = {}\ndomains = [\"{d}\"]\n\
             record_type = \"{t}\"\ninclude_fields = [\"first_ip\", \"all_ips\"]\n",
            dns.port
        )
    };
    let config = [
        block("SOA", "zone.example"),
        block("MX", "zone.example"),
        block("A", "multi.zone.example"),
    ]
    .concat();
    Setup::with(config, dns)
}
