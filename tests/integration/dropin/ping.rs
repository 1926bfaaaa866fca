//! telegraf's ping: options and schema (to be filled: the options of telegraf's sample.conf
//! with its example values, and telegraf's measurement, tags, fields and types).

use super::{Setup, Table};

pub(crate) const TABLE: Table = Table {
    input: "ping",
    base: "",
    options: &[],
    refused: &[],
    schema: &[],
    setup: || Setup::plain("[[inputs.ping]]\n"),
};
