//! metrics-agent: one process that runs network probes and host collectors and writes InfluxDB
//! line protocol to stdout for telegraf's `[[inputs.execd]]`.
//!
//! Map of the crate, by layer (each imports only the ones listed before it; checked by
//! `tests/integration/layers.rs`):
//! - Leaves: [`options`] (config primitives: durations, located errors), `isolation` (panics
//!   caught into messages), [`stats`] (counters behind the self-metrics, log-once per instance).
//! - [`output`]: metric type, line-protocol encoder, bounded queue, the single stdout writer.
//! - [`modules`]: the inputs, one module each, and the registry (`modules::INPUTS`) every name,
//!   parser and builder is derived from; [`health`]: the optional `/healthz` `/readyz` endpoint.
//! - [`config`]: the whole TOML file, parsed into raw structs, then resolved into validated
//!   runtime types through the registry.
//! - [`supervisor`]: one isolated task per input instance (ticked or service), the local lane,
//!   schedule, timeouts, panics, backoff, gates, and the watchdog; [`control`]: SIGHUP/SIGTERM/
//!   SIGINT, stdin and stdout events mapped to one enum; [`logging`]: stderr logging in
//!   telegraf's `E!`/`W!`/`I!`/`D!` form; [`cli`]: command-line flags.
//! - [`coordination`]: probe groups: leases in PostgreSQL that open and close instance gates.
//! - [`app`]: the process: start-up, the control loop, reload and shutdown.

pub mod app;
pub(crate) mod cli;
pub mod config;
pub(crate) mod control;
pub(crate) mod coordination;
#[doc(hidden)]
pub mod fuzz_api;
pub(crate) mod health;
pub(crate) mod isolation;
pub(crate) mod logging;
pub mod modules;
pub mod options;
pub mod output;
pub(crate) mod rand;
pub(crate) mod stats;
pub(crate) mod supervisor;
