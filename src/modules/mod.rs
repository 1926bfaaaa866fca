//! The inputs, and the one list of them ([`INPUTS`]) from which everything else is derived: the
//! names the config accepts (and `--help` lists), how each input's table is parsed and resolved,
//! and how a resolved config is built into a running instance.
//!
//! Each input is one file or folder here, owning its config (the raw serde struct is its user
//! documentation), its resolved config, its gather (or service) and its unit tests, and
//! implementing [`Input`] (for a ticked input, one `ticked_input!` line). Adding an input is that
//! file plus one line in `inputs!` below; a test checks that every input also has a commented
//! sample block in `config/metrics-agent.toml` and a row in the README.

// Helpers the inputs share (not inputs themselves).
pub(crate) mod hostutil;
pub(crate) mod probe;
pub(crate) mod procfs;
pub(crate) mod service;
pub(crate) mod tls;

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::DeValue;

use crate::options::{SpanError, deserialize_value};
use crate::output::{Accumulator, Queue};
use crate::stats::Registry;

/// The registry: one line per input, `name` being both its module and its `[[inputs.name]]`
/// table; the module's `Config` implements [`Input`]. Order is the order `--help` lists them.
macro_rules! inputs {
    ($($(#[$attr:meta])* $name:ident),* $(,)?) => {
        $($(#[$attr])* pub(crate) mod $name;)*

        /// Every input, in the order `--help` lists them.
        pub static INPUTS: &[Entry] = &[
            $($(#[$attr])* Entry::of::<$name::Config>(stringify!($name)),)*
        ];
    };
}

inputs! {
    internal,
    ping,
    system,
    net_response,
    http_response,
    dns_query,
    x509_cert,
    cpu,
    mem,
    swap,
    kernel,
    processes,
    disk,
    diskio,
    net,
    netstat,
    procstat,
    cgroup,
    mqtt_consumer,
    #[cfg(feature = "chaos")]
    chaos,
}

/// One input kind: its name and how its table becomes a resolved config.
pub struct Entry {
    pub name: &'static str,
    parse: fn(Spanned<DeValue<'_>>) -> Result<InputConfig, SpanError>,
}

impl Entry {
    const fn of<C: Resolve>(name: &'static str) -> Entry {
        Entry {
            name,
            parse: parse_as::<C>,
        }
    }
}

fn parse_as<C: Resolve>(table: Spanned<DeValue<'_>>) -> Result<InputConfig, SpanError> {
    Ok(InputConfig(Arc::new(C::resolve(deserialize_value(
        table,
    )?)?)))
}

/// Every input name the config accepts.
pub fn names() -> impl Iterator<Item = &'static str> {
    INPUTS.iter().map(|e| e.name)
}

/// The registry entry of `name`, if it is a known input.
pub fn lookup(name: &str) -> Option<&'static Entry> {
    INPUTS.iter().find(|e| e.name == name)
}

/// How an input runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Gathers on ticks in a task of its own per gather: anything that waits on the network or
    /// on other processes, so a gather can be aborted and one that will not end is reported.
    Ticked,
    /// Gathers on ticks inside its instance's task, all such instances sharing one task (the
    /// supervisor's local lane): collectors that only read local kernel interfaces (/proc,
    /// /sys, statvfs of local file systems, a netlink dump) in bounded work. A task per gather,
    /// and a task per instance woken on each tick, cost more wake-ups and cross-thread
    /// scheduling than most of these gathers take. A panic is still caught and the module
    /// restarted; `disk` hands remote file systems to the blocking pool itself.
    Local,
    /// Runs continuously (subscribe, listen): see [`service`].
    Service,
}

/// How an input's resolved config (`<module>::Config`) is made from its table.
pub trait Resolve: Input + Sized {
    /// The serde struct of the input's table (`deny_unknown_fields`; its doc comments are the
    /// user documentation).
    type Raw: DeserializeOwned;
    /// Validates the raw table; errors carry the span of the offending key or value.
    fn resolve(raw: Self::Raw) -> Result<Self, SpanError>;
}

/// What an input's resolved config provides to the supervisor.
pub trait Input: Debug + Send + Sync + 'static {
    fn shape(&self) -> Shape;
    /// Creates a running instance; errors here (a socket that cannot be opened) restart it
    /// with backoff.
    fn build(&self, ctx: &ModuleContext) -> Result<Built, GatherError>;
}

/// A running instance with its state between gathers (previous counters, sockets...).
pub enum Built {
    Ticked(Module),
    Service(Box<dyn service::Service>),
}

/// The future of one gather.
pub type GatherFuture<'a> = Pin<Box<dyn Future<Output = Result<(), GatherError>> + Send + 'a>>;

/// A ticked input's running state.
pub trait Gather: Send + 'static {
    /// One gather: every metric goes into `acc`, timestamps taken at the start of the gather.
    fn gather<'a>(&'a mut self, acc: &'a mut Accumulator) -> GatherFuture<'a>;
}

pub type Module = Box<dyn Gather>;

/// Implements [`Input`] for the calling module's `Config` (resolved by its `resolve(Raw)`) and
/// [`Gather`] for its state `$state`, built by `$state::new(config.clone())`.
macro_rules! ticked_input {
    ($state:ident, $shape:expr) => {
        impl $crate::modules::Resolve for Config {
            type Raw = Raw;
            fn resolve(raw: Raw) -> Result<Self, $crate::options::SpanError> {
                resolve(raw)
            }
        }

        impl $crate::modules::Input for Config {
            fn shape(&self) -> $crate::modules::Shape {
                $shape
            }
            fn build(
                &self,
                _ctx: &$crate::modules::ModuleContext,
            ) -> Result<$crate::modules::Built, $crate::modules::GatherError> {
                Ok($crate::modules::Built::Ticked(Box::new($state::new(
                    self.clone(),
                ))))
            }
        }

        impl $crate::modules::Gather for $state {
            fn gather<'a>(
                &'a mut self,
                acc: &'a mut $crate::output::Accumulator,
            ) -> $crate::modules::GatherFuture<'a> {
                Box::pin($state::gather(self, acc))
            }
        }
    };
}
pub(crate) use ticked_input;

/// A resolved input config, shared by every (re)build of its instance.
#[derive(Debug, Clone)]
pub struct InputConfig(Arc<dyn Input>);

impl InputConfig {
    /// Parses and resolves the input-specific keys of one `[[inputs.NAME]]` table.
    pub fn parse(entry: &Entry, table: Spanned<DeValue<'_>>) -> Result<InputConfig, SpanError> {
        (entry.parse)(table)
    }

    pub fn shape(&self) -> Shape {
        self.0.shape()
    }

    pub fn runs_inline(&self) -> bool {
        self.shape() == Shape::Local
    }

    pub fn is_service(&self) -> bool {
        self.shape() == Shape::Service
    }

    pub fn build(&self, ctx: &ModuleContext) -> Result<Built, GatherError> {
        self.0.build(ctx)
    }
}

/// What a module may need from the agent when it is built.
#[derive(Clone)]
pub struct ModuleContext {
    pub registry: Arc<Registry>,
    pub queue: Arc<Queue>,
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
