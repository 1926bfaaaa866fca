//! telegraf's net_response (`plugins/inputs/net_response`): options and schema.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use super::{Kind::*, Series, Setup, Table};

pub(crate) const TABLE: Table = Table {
    input: "net_response",
    base: "protocol = \"tcp\"\naddress = \"127.0.0.1:1\"",
    options: &[
        r#"protocol = "tcp""#,
        r#"protocol = "udp"
send = "ping"
expect = "pong""#,
        r#"timeout = "1s""#,
        r#"read_timeout = "1s""#,
        r#"send = "ssh""#,
        r#"expect = "ssh""#,
        r#"fieldexclude = ["result_type", "string_found"]"#,
    ],
    refused: &[(r#"protocol = "sctp""#, "protocol")],
    schema: &[Series {
        measurement: "net_response",
        tags: &["server", "port", "protocol", "result"],
        fields: &[
            ("response_time", Float),
            ("result_code", Int),
            ("result_type", Str),
            ("string_found", Bool),
        ],
        extra: &[("connect_time", Float)],
        unseen: &[],
    }],
    setup,
};

/// A line server on loopback that answers every line with "pong".
fn setup() -> Setup {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut reader = BufReader::new(&conn);
                let mut line = String::new();
                if reader.read_line(&mut line).is_ok() {
                    let _ = (&conn).write_all(b"pong\n");
                }
            });
        }
    });
    Setup::plain(format!(
        "[[inputs.net_response]]\nprotocol = \"tcp\"\naddress = \"127.0.0.1:{port}\"\n\
         send = \"ping\\n\"\nexpect = \"pong\"\n"
    ))
}
