//! telegraf's processes (`plugins/inputs/processes`): options and schema (Linux).

use super::{Kind::*, Series, Setup, Table};

pub(crate) const TABLE: Table = Table {
    input: "processes",
    base: "",
    // Only for *BSD in telegraf; Linux reads /proc and ignores it.
    options: &["use_sudo = false"],
    refused: &[],
    schema: &[Series {
        measurement: "processes",
        tags: &[],
        fields: &[
            ("blocked", Int),
            ("zombies", Int),
            ("stopped", Int),
            ("running", Int),
            ("sleeping", Int),
            ("total", Int),
            ("unknown", Int),
            ("dead", Int),
            ("paging", Int),
            ("total_threads", Int),
            ("idle", Int),
            ("parked", Int),
        ],
        extra: &[],
        unseen: &[(
            "parked",
            "written only while a kernel thread is parked (state P), as in telegraf",
        )],
    }],
    setup: || Setup::plain("[[inputs.processes]]\n"),
};
