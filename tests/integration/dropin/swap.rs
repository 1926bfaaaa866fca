//! telegraf's swap (`plugins/inputs/swap`): no options; schema.

use super::{Kind::*, Series, Setup, Table};

pub(crate) const TABLE: Table = Table {
    input: "swap",
    base: "",
    // telegraf's sample has no option: the block alone.
    options: &[""],
    refused: &[("use_sudo = true", "use_sudo")],
    schema: &[Series {
        measurement: "swap",
        tags: &[],
        fields: &[
            ("free", Int),
            ("total", Int),
            ("used", Int),
            ("used_percent", Float),
            ("in", Int),
            ("out", Int),
        ],
        extra: &[],
        unseen: &[],
    }],
    setup: || Setup::plain("[[inputs.swap]]\n"),
};
