//! One integration-test binary (ripgrep style): every file here runs the real `metrics-agent`
//! binary; servers it talks to are real programs on loopback.

mod harness;

mod agent;
mod deployment;
mod dropin;
mod filters;
mod fuzz_regressions;
mod groups;
mod health;
mod host;
mod hostfs;
mod hostile;
mod http_dropin;
mod layers;
mod mqtt;
mod netprobes;
mod ping;
mod procstat_dropin;
mod properties;
mod registry;
mod reliability;
mod services;
mod x509_cert;
