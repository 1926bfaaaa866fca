//! The registry of inputs. Each input is one module here, owning its config (the raw serde
//! struct is its user documentation), its resolved config, its gather and its unit tests. Adding
//! an input means adding a line to `NAMES`, a variant to `InputConfig` and `Module`, and an arm
//! to each match below: the compiler lists every place.

#[cfg(feature = "chaos")]
pub mod chaos;
pub mod dns_query;
pub mod http_response;
pub mod internal;
pub mod mqtt_consumer;
pub mod net_response;
pub mod ping;
pub mod probe;
pub mod system;
pub mod tls;
pub mod x509_cert;

// Host inputs (Linux /proc and /sys).
pub mod cgroup;
pub mod cpu;
pub mod disk;
pub mod diskio;
pub mod hostutil;
pub mod kernel;
pub mod mem;
pub mod net;
pub mod netstat;
pub mod processes;
pub mod procstat;
pub mod swap;

use std::sync::Arc;

use toml::Spanned;
use toml::de::DeValue;

use crate::config::{SpanError, deserialize_value};
use crate::output::{Accumulator, Queue};
use crate::stats::Registry;

/// Every input name the config accepts, in the order `--help` lists them.
pub const NAMES: &[&str] = &[
    "internal",
    "ping",
    "system",
    "net_response",
    "http_response",
    "dns_query",
    "x509_cert",
    "cpu",
    "mem",
    "swap",
    "kernel",
    "processes",
    "disk",
    "diskio",
    "net",
    "netstat",
    "procstat",
    "cgroup",
    "mqtt_consumer",
    #[cfg(feature = "chaos")]
    "chaos",
];

/// The static name for `name`, if it is a known input.
pub fn lookup(name: &str) -> Option<&'static str> {
    NAMES.iter().copied().find(|n| *n == name)
}

/// Resolved per-input options.
#[derive(Debug, Clone)]
pub enum InputConfig {
    Internal(internal::Config),
    Ping(ping::Config),
    System(system::Config),
    NetResponse(net_response::Config),
    HttpResponse(Box<http_response::Config>),
    DnsQuery(dns_query::Config),
    X509Cert(x509_cert::Config),
    Cpu(cpu::Config),
    Mem(mem::Config),
    Swap(swap::Config),
    Kernel(kernel::Config),
    Processes(processes::Config),
    Disk(disk::Config),
    DiskIo(diskio::Config),
    Net(net::Config),
    Netstat(netstat::Config),
    Procstat(procstat::Config),
    Cgroup(cgroup::Config),
    MqttConsumer(Box<mqtt_consumer::Config>),
    #[cfg(feature = "chaos")]
    Chaos(chaos::Config),
}

impl InputConfig {
    /// Collectors that only read local kernel interfaces (/proc, /sys, statvfs of local file
    /// systems, a netlink dump), in bounded work and without waiting on anything outside the
    /// machine. They gather inside their instance's task, and all their instances share one task
    /// (the supervisor's local lane): a task per gather, and a task per instance woken on each
    /// tick, cost more wake-ups and cross-thread scheduling than most of these gathers take.
    /// A panic is still caught and the module restarted; `disk` hands remote file systems to the
    /// blocking pool itself. Everything that waits on the network or on other processes keeps a
    /// task per instance and per gather, which can be aborted and reported when it does not end.
    pub fn runs_inline(&self) -> bool {
        #[cfg(feature = "chaos")]
        if let InputConfig::Chaos(c) = self {
            return c.inline;
        }
        matches!(
            self,
            InputConfig::Internal(_)
                | InputConfig::System(_)
                | InputConfig::Cpu(_)
                | InputConfig::Mem(_)
                | InputConfig::Swap(_)
                | InputConfig::Kernel(_)
                | InputConfig::Disk(_)
                | InputConfig::DiskIo(_)
                | InputConfig::Net(_)
                | InputConfig::Netstat(_)
        )
    }
}

/// Parses and resolves the module-specific keys of one `[[inputs.NAME]]` table.
pub fn parse(module: &str, table: Spanned<DeValue<'_>>) -> Result<InputConfig, SpanError> {
    Ok(match module {
        "internal" => InputConfig::Internal(internal::resolve(deserialize_value(table)?)?),
        "ping" => InputConfig::Ping(ping::resolve(deserialize_value(table)?)?),
        "system" => InputConfig::System(system::resolve(deserialize_value(table)?)?),
        "net_response" => {
            InputConfig::NetResponse(net_response::resolve(deserialize_value(table)?)?)
        }
        "http_response" => {
            InputConfig::HttpResponse(Box::new(http_response::resolve(deserialize_value(table)?)?))
        }
        "dns_query" => InputConfig::DnsQuery(dns_query::resolve(deserialize_value(table)?)?),
        "x509_cert" => InputConfig::X509Cert(x509_cert::resolve(deserialize_value(table)?)?),
        "cpu" => InputConfig::Cpu(cpu::resolve(deserialize_value(table)?)?),
        "mem" => InputConfig::Mem(mem::resolve(deserialize_value(table)?)?),
        "swap" => InputConfig::Swap(swap::resolve(deserialize_value(table)?)?),
        "kernel" => InputConfig::Kernel(kernel::resolve(deserialize_value(table)?)?),
        "processes" => InputConfig::Processes(processes::resolve(deserialize_value(table)?)?),
        "disk" => InputConfig::Disk(disk::resolve(deserialize_value(table)?)?),
        "diskio" => InputConfig::DiskIo(diskio::resolve(deserialize_value(table)?)?),
        "net" => InputConfig::Net(net::resolve(deserialize_value(table)?)?),
        "netstat" => InputConfig::Netstat(netstat::resolve(deserialize_value(table)?)?),
        "procstat" => InputConfig::Procstat(procstat::resolve(deserialize_value(table)?)?),
        "cgroup" => InputConfig::Cgroup(cgroup::resolve(deserialize_value(table)?)?),
        "mqtt_consumer" => {
            InputConfig::MqttConsumer(Box::new(mqtt_consumer::resolve(deserialize_value(table)?)?))
        }
        #[cfg(feature = "chaos")]
        "chaos" => InputConfig::Chaos(chaos::resolve(deserialize_value(table)?)?),
        other => {
            let span = table.span();
            return Err(SpanError::new(span, "", format!("unknown input {other}")));
        }
    })
}

/// What a module may need from the agent when it is built.
#[derive(Clone)]
pub struct ModuleContext {
    pub registry: Arc<Registry>,
    pub queue: Arc<Queue>,
}

/// A running module instance with its state between gathers (previous counters, sockets...).
/// Large module states are boxed so the enum (moved in and out of gather tasks) stays small.
pub enum Module {
    Internal(internal::Internal),
    Ping(ping::Ping),
    System(system::System),
    NetResponse(net_response::NetResponse),
    HttpResponse(http_response::HttpResponse),
    DnsQuery(dns_query::DnsQuery),
    X509Cert(x509_cert::X509Cert),
    Cpu(Box<cpu::Cpu>),
    Mem(Box<mem::Mem>),
    Swap(Box<swap::Swap>),
    Kernel(Box<kernel::Kernel>),
    Processes(processes::Processes),
    Disk(Box<disk::Disk>),
    DiskIo(Box<diskio::DiskIo>),
    Net(Box<net::Net>),
    Netstat(Box<netstat::Netstat>),
    Procstat(Box<procstat::Procstat>),
    Cgroup(cgroup::Cgroup),
    #[cfg(feature = "chaos")]
    Chaos(chaos::Chaos),
}

/// A gather that failed as a whole. Partial failures (one target, one file) are data or counted
/// errors inside the gather, not this.
#[derive(Debug, thiserror::Error)]
pub enum GatherError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Failed(String),
}

impl GatherError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        GatherError::Io {
            what: what.into(),
            source,
        }
    }
}

impl Module {
    /// Creates the instance; errors here (a socket that cannot be opened) restart it with backoff.
    pub fn build(config: &InputConfig, ctx: &ModuleContext) -> Result<Module, GatherError> {
        Ok(match config {
            InputConfig::Internal(c) => {
                Module::Internal(internal::Internal::new(c.clone(), ctx.clone()))
            }
            InputConfig::Ping(c) => Module::Ping(ping::Ping::new(c.clone())),
            InputConfig::System(c) => Module::System(system::System::new(c.clone())),
            InputConfig::NetResponse(c) => {
                Module::NetResponse(net_response::NetResponse::new(c.clone()))
            }
            InputConfig::HttpResponse(c) => {
                Module::HttpResponse(http_response::HttpResponse::new((**c).clone()))
            }
            InputConfig::DnsQuery(c) => Module::DnsQuery(dns_query::DnsQuery::new(c.clone())),
            InputConfig::X509Cert(c) => Module::X509Cert(x509_cert::X509Cert::new(c.clone())),
            InputConfig::Cpu(c) => Module::Cpu(Box::new(cpu::Cpu::new(c.clone()))),
            InputConfig::Mem(c) => Module::Mem(Box::new(mem::Mem::new(c.clone()))),
            InputConfig::Swap(c) => Module::Swap(Box::new(swap::Swap::new(c.clone()))),
            InputConfig::Kernel(c) => Module::Kernel(Box::new(kernel::Kernel::new(c.clone()))),
            InputConfig::Processes(c) => Module::Processes(processes::Processes::new(c.clone())),
            InputConfig::Disk(c) => Module::Disk(Box::new(disk::Disk::new(c.clone()))),
            InputConfig::DiskIo(c) => Module::DiskIo(Box::new(diskio::DiskIo::new(c.clone()))),
            InputConfig::Net(c) => Module::Net(Box::new(net::Net::new(c.clone()))),
            InputConfig::Netstat(c) => Module::Netstat(Box::new(netstat::Netstat::new(c.clone()))),
            InputConfig::Procstat(c) => {
                Module::Procstat(Box::new(procstat::Procstat::new(c.clone())))
            }
            InputConfig::Cgroup(c) => Module::Cgroup(cgroup::Cgroup::new(c.clone())),
            // A service input: run by the supervisor's service runner, never gathered.
            InputConfig::MqttConsumer(_) => {
                return Err(GatherError::Failed(
                    "mqtt_consumer is a service input and does not gather on ticks".into(),
                ));
            }
            #[cfg(feature = "chaos")]
            InputConfig::Chaos(c) => Module::Chaos(chaos::Chaos::new(c.clone())),
        })
    }

    /// One gather: every metric goes into `acc`, timestamps taken at the start of the gather.
    pub async fn gather(&mut self, acc: &mut Accumulator) -> Result<(), GatherError> {
        match self {
            Module::Internal(m) => m.gather(acc).await,
            Module::Ping(m) => m.gather(acc).await,
            Module::System(m) => m.gather(acc).await,
            Module::NetResponse(m) => m.gather(acc).await,
            Module::HttpResponse(m) => m.gather(acc).await,
            Module::DnsQuery(m) => m.gather(acc).await,
            Module::X509Cert(m) => m.gather(acc).await,
            Module::Cpu(m) => m.gather(acc).await,
            Module::Mem(m) => m.gather(acc).await,
            Module::Swap(m) => m.gather(acc).await,
            Module::Kernel(m) => m.gather(acc).await,
            Module::Processes(m) => m.gather(acc).await,
            Module::Disk(m) => m.gather(acc).await,
            Module::DiskIo(m) => m.gather(acc).await,
            Module::Net(m) => m.gather(acc).await,
            Module::Netstat(m) => m.gather(acc).await,
            Module::Procstat(m) => m.gather(acc).await,
            Module::Cgroup(m) => m.gather(acc).await,
            #[cfg(feature = "chaos")]
            Module::Chaos(m) => m.gather(acc).await,
        }
    }
}
