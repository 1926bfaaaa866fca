//! telegraf's disk: options and schema (to be filled: the options of telegraf's sample.conf
//! with its example values, and telegraf's measurement, tags, fields and types).

use super::{Setup, Table};

pub(crate) const TABLE: Table = Table {
    input: "disk",
    base: "",
    options: &[],
    refused: &[],
    schema: &[],
    setup: || Setup::plain("[[inputs.disk]]\n"),
};
