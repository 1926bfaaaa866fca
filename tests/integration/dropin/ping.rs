//! telegraf's ping (`plugins/inputs/ping`): options and schema (Linux; `errors`,
//! `reply_received` and `percent_reply_loss` are Windows-only in telegraf).

use super::{Kind::*, Series, Setup, Table};

pub(crate) const TABLE: Table = Table {
    input: "ping",
    base: "urls = [\"127.0.0.1\"]",
    options: &[
        r#"urls = ["example.org"]"#,
        r#"method = "exec""#,
        r#"method = "native""#,
        "count = 1",
        r#"ping_interval = "1s""#,
        r#"timeout = "1s""#,
        r#"deadline = "10s""#,
        r#"interface = """#,
        "percentiles = [50, 95, 99]",
        "privileged = true",
        r#"binary = "ping""#,
        r#"arguments = ["-c", "3"]"#,
        "ipv4 = false",
        "ipv6 = false",
        r#"size = "56B""#,
    ],
    refused: &[(r#"method = "icmp""#, "method")],
    schema: &[Series {
        measurement: "ping",
        tags: &["url"],
        fields: &[
            ("result_code", Int),
            ("packets_transmitted", Int),
            ("packets_received", Int),
            ("percent_packet_loss", Float),
            ("ttl", Int),
            ("minimum_response_ms", Float),
            ("average_response_ms", Float),
            ("maximum_response_ms", Float),
            ("standard_deviation_ms", Float),
            ("percentile*", Float),
        ],
        extra: &[
            ("median_response_ms", Float),
            ("p95_response_ms", Float),
            ("jitter_ms", Float),
        ],
        unseen: &[],
    }],
    setup: || {
        Setup::plain(
            "[[inputs.ping]]\nurls = [\"127.0.0.1\", \"::1\"]\ncount = 3\nping_interval = 0.2\n\
             percentiles = [50, 95]\n",
        )
    },
};
