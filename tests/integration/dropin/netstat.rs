//! telegraf's netstat (`plugins/inputs/netstat`): no options, one line.

use super::{Kind::*, Series, Setup, Table};

pub(crate) const TABLE: Table = Table {
    input: "netstat",
    base: "",
    // telegraf's sample.conf has no option, only this line.
    options: &["# no configuration"],
    refused: &[],
    schema: &[Series {
        measurement: "netstat",
        tags: &[],
        fields: &[
            ("tcp_established", Int),
            ("tcp_syn_sent", Int),
            ("tcp_syn_recv", Int),
            ("tcp_fin_wait1", Int),
            ("tcp_fin_wait2", Int),
            ("tcp_time_wait", Int),
            ("tcp_close", Int),
            ("tcp_close_wait", Int),
            ("tcp_last_ack", Int),
            ("tcp_listen", Int),
            ("tcp_closing", Int),
            ("tcp_none", Int),
            ("udp_socket", Int),
        ],
        extra: &[],
        unseen: &[],
    }],
    setup: || Setup::plain("[[inputs.netstat]]\n"),
};
