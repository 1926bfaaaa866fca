//! metrics-agent: one process that runs network probes and host collectors and writes InfluxDB
//! line protocol to stdout for telegraf's `[[inputs.execd]]`.
//!
//! Map of the crate:
//! - [`app`]: the process: start-up, the control loop, reload and shutdown.
//! - [`cli`]: command-line flags.
//! - [`config`]: TOML parsed into raw structs, then resolved into validated runtime types.
//! - [`coordination`]: probe groups: leases in PostgreSQL that open and close instance gates.
//! - [`control`]: SIGHUP/SIGTERM/SIGINT, stdin and stdout events mapped to one enum.
//! - [`supervisor`]: one isolated task per input instance: schedule, timeouts, panics, backoff,
//!   and the watchdog.
//! - [`modules`]: the inputs, one module each, listed in one registry.
//! - [`output`]: metric type, line-protocol encoder, bounded queue, the single stdout writer.
//! - [`stats`]: counters behind the `internal` self-metrics.
//! - [`health`]: the optional `/healthz` `/readyz` `/version` endpoint.
//! - [`logging`]: stderr logging in telegraf's `E!`/`W!`/`I!`/`D!` form.

pub mod app;
pub mod cli;
pub mod config;
pub mod control;
pub mod coordination;
pub mod health;
pub(crate) mod isolation;
pub mod logging;
pub mod modules;
pub mod options;
pub mod output;
pub mod stats;
pub mod supervisor;
