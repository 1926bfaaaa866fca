//! telegraf's x509_cert: options and schema (to be filled: the options of telegraf's sample.conf
//! with its example values, and telegraf's measurement, tags, fields and types).

use super::{Setup, Table};

pub(crate) const TABLE: Table = Table {
    input: "x509_cert",
    base: "",
    options: &[],
    refused: &[],
    schema: &[],
    setup: || Setup::plain("[[inputs.x509_cert]]\n"),
};
