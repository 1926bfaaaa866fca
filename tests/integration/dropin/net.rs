//! telegraf's net (`plugins/inputs/net`): options and schema.

use super::{Kind::*, Series, Setup, Table};

pub(crate) const TABLE: Table = Table {
    input: "net",
    base: "",
    options: &[
        r#"interfaces = ["eth*", "enp0s[0-1]", "lo"]"#,
        // Deprecated in telegraf 1.37 and ignored there too.
        "ignore_protocol_stats = true",
    ],
    refused: &[],
    schema: &[Series {
        measurement: "net",
        tags: &["interface"],
        fields: &[
            ("bytes_sent", Int),
            ("bytes_recv", Int),
            ("packets_sent", Int),
            ("packets_recv", Int),
            ("err_in", Int),
            ("err_out", Int),
            ("drop_in", Int),
            ("drop_out", Int),
            ("speed", Int),
        ],
        extra: &[],
        unseen: &[],
    }],
    setup: || Setup::plain("[[inputs.net]]\ninterfaces = [\"lo\", \"eth*\"]\n"),
};
