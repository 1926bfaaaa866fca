//! Fuzz targets for metrics-agent (coverage-guided, AFL++ through afl.rs, on stable Rust).
//! Run them with `fuzz/run.sh SECONDS`; see that script.

mod checks;
pub use checks::{PARSER_TARGETS, check_config, check_encode, metric_from_bytes};
