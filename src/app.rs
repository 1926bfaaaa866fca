//! The process: load the config, start the writer, the watchdog and the supervisor, then obey
//! control events until told to stop; on stop, flush every queued line within telegraf's budget.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cli::{self, Action};
use crate::config::{Config, ConfigError, DEFAULT_CONFIG, Trigger};
use crate::control::{self, Event, Reason};
use crate::coordination::Coordinator;
use crate::logging::{self, LogHandle};
use crate::modules::ModuleContext;
use crate::output::{Queue, Writer, WriterExit, wait_until_read};
use crate::stats::{self, Registry};
use crate::supervisor::{Supervisor, watchdog};

/// Instances get this long to stop on reload or shutdown before they are aborted.
const STOP_GRACE: Duration = Duration::from_millis(300);
/// The writer gets this long to put the last queued lines on stdout at shutdown.
const DRAIN_LIMIT: Duration = Duration::from_millis(400);
/// Then this long for telegraf to read them out of the pipe (it closes its end when we exit).
const READ_LIMIT: Duration = Duration::from_millis(200);
/// Exit status when the watchdog finds the runtime starved.
const EXIT_STARVED: u8 = 3;

pub fn main() -> ExitCode {
    let cli = match cli::parse(std::env::args_os().skip(1)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("metrics-agent: {e}\n\n{}", cli::usage());
            return ExitCode::from(2);
        }
    };
    match cli.action {
        Action::Help => {
            print!("{}", cli::usage());
            ExitCode::SUCCESS
        }
        Action::Version => {
            println!("metrics-agent {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Action::PrintConfig => {
            print!("{DEFAULT_CONFIG}");
            ExitCode::SUCCESS
        }
        Action::CheckConfig => match load(&cli.config) {
            Ok(c) => {
                eprintln!(
                    "{}: valid, {} input instance(s)",
                    c.source_name(),
                    c.inputs.len()
                );
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("E! {e}");
                ExitCode::FAILURE
            }
        },
        Action::Run | Action::Once => match load(&cli.config) {
            Ok(c) => run(c, cli.action == Action::Once),
            Err(e) => {
                eprintln!("E! {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn load(path: &Option<PathBuf>) -> Result<Config, ConfigError> {
    match path {
        Some(p) => Config::load(p),
        None => Config::embedded_default(),
    }
}

fn run(config: Config, once: bool) -> ExitCode {
    let log = logging::init(config.agent.log_level, config.agent.log_format);
    logging::install_panic_hook();
    raise_fd_limit();
    let registry = Arc::new(Registry::default());
    let queue = Arc::new(Queue::new(
        config.agent.metric_buffer_limit,
        config.agent.metric_buffer_bytes,
    ));
    let (tx, rx) = mpsc::unbounded_channel();

    let stop_tx = tx.clone();
    let writer = match Writer::spawn(
        std::io::stdout(),
        queue.clone(),
        registry.clone(),
        move |exit| {
            if let WriterExit::Failed(e) = exit {
                tracing::error!("writing to stdout failed: {e}; shutting down");
            }
            let _ = stop_tx.send(Event::Shutdown(Reason::StdoutClosed));
        },
    ) {
        Ok(w) => w,
        Err(e) => {
            tracing::error!("cannot start the stdout writer thread: {e}");
            return ExitCode::FAILURE;
        }
    };
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .max(2);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .thread_name("agent-worker")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };

    let ctx = ModuleContext {
        registry: registry.clone(),
        queue: queue.clone(),
    };
    let result = runtime.block_on(async {
        if once {
            Supervisor::new(ctx).run_once(&config).await;
            return Ok(());
        }
        serve(config, ctx, tx, rx, log).await
    });
    let code = match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::FAILURE
        }
    };

    queue.close();
    match writer.join(DRAIN_LIMIT) {
        Some(WriterExit::Drained) => wait_until_read(READ_LIMIT),
        Some(_) => {}
        None => tracing::warn!(
            "stdout not read for {DRAIN_LIMIT:?}; exiting with {} line(s) undelivered",
            queue.depth()
        ),
    }
    // Blocking work stuck in the kernel (a hung statvfs) must not hold the exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    code
}

/// Thousands of concurrent probes need thousands of sockets, but a child of telegraf inherits the
/// usual soft limit of 1024 open files (Go raises its own limit and restores it for children).
/// Raise the soft limit to the hard limit, as Go programs do for themselves.
fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let wanted = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) != 0 {
                tracing::debug!("cannot raise the open-file limit above {}", lim.rlim_cur);
            }
        }
    }
}

async fn serve(
    config: Config,
    ctx: ModuleContext,
    tx: mpsc::UnboundedSender<Event>,
    mut rx: mpsc::UnboundedReceiver<Event>,
    log: Option<LogHandle>,
) -> std::io::Result<()> {
    control::spawn_signals(tx.clone())?;
    control::spawn_stdin_reader(tx.clone(), control::stdin_kind())?;
    let watchdog_stop = CancellationToken::new();
    let wd_queue = ctx.queue.clone();
    watchdog::start(
        config.agent.watchdog_timeout,
        watchdog_stop.clone(),
        move |silent| {
            tracing::error!(
                "the runtime made no progress for {:.1}s: an input blocks every worker thread; exiting so the agent is restarted",
                silent.as_secs_f64()
            );
            wd_queue.close();
            std::thread::sleep(DRAIN_LIMIT);
            std::process::exit(i32::from(EXIT_STARVED));
        },
    )?;

    let registry = ctx.registry.clone();
    let queue = ctx.queue.clone();
    let mut health = Health::default();
    health.apply(config.agent.health_listen, &registry).await;
    let mut coordinator = Coordinator::start(&config.agent, &ctx);
    let mut supervisor = Supervisor::new(ctx.clone());
    supervisor.start(&config, &|i| coordinator.as_ref().and_then(|c| c.gate(i)));
    tracing::info!(
        "metrics-agent {} started with {} input instance(s) from {}",
        env!("CARGO_PKG_VERSION"),
        config.inputs.len(),
        config.source_name()
    );
    let mut current = config;

    while let Some(mut event) = rx.recv().await {
        if event == Event::Reload {
            // A burst of SIGHUPs is one reload; anything else that arrived meanwhile is kept.
            let mut next = None;
            while let Ok(ev) = rx.try_recv() {
                if ev != Event::Reload {
                    next = Some(ev);
                    break;
                }
            }
            reload(
                &mut supervisor,
                &mut coordinator,
                &mut current,
                &ctx,
                log.as_ref(),
            )
            .await;
            match next {
                Some(ev) => event = ev,
                None => continue,
            }
        }
        match event {
            Event::Trigger if current.agent.trigger == Trigger::Stdin => supervisor.trigger(),
            Event::Trigger | Event::Reload => {}
            Event::Shutdown(reason) => {
                tracing::info!(
                    "stopping ({reason}): flushing {} queued line(s)",
                    queue.depth()
                );
                break;
            }
        }
    }
    supervisor.stop(STOP_GRACE).await;
    // After the probes stopped: a standby may take over at once.
    if let Some(c) = coordinator {
        c.stop().await;
    }
    health.apply(None, &registry).await;
    watchdog_stop.cancel();
    Ok(())
}

/// The running health endpoint, if configured; re-bound when its address changes on reload.
#[derive(Default)]
struct Health {
    running: Option<(std::net::SocketAddr, CancellationToken)>,
}

impl Health {
    async fn apply(&mut self, want: Option<std::net::SocketAddr>, registry: &Arc<Registry>) {
        if self.running.as_ref().map(|(a, _)| *a) == want {
            return;
        }
        if let Some((_, stop)) = self.running.take() {
            stop.cancel();
        }
        if let Some(addr) = want {
            let stop = CancellationToken::new();
            match crate::health::serve(addr, registry.clone(), stop.clone()).await {
                Ok(()) => self.running = Some((addr, stop)),
                Err(e) => tracing::error!("health endpoint: cannot listen on {addr}: {e}"),
            }
        }
    }
}

async fn reload(
    supervisor: &mut Supervisor,
    coordinator: &mut Option<Coordinator>,
    current: &mut Config,
    ctx: &ModuleContext,
    log: Option<&LogHandle>,
) {
    let (registry, queue) = (&ctx.registry, &ctx.queue);
    let next = match &current.path {
        Some(p) => Config::load(p),
        None => Config::embedded_default(),
    };
    let next = match next {
        Ok(c) => c,
        Err(e) => {
            stats::inc(&registry.agent.reload_failures);
            tracing::error!("reload failed, keeping the running config: {e}");
            return;
        }
    };
    stats::inc(&registry.agent.reloads);
    supervisor.stop(STOP_GRACE).await;
    queue.set_limits(
        next.agent.metric_buffer_limit,
        next.agent.metric_buffer_bytes,
    );
    if let Some(log) = log {
        log.set_level(next.agent.log_level);
    }
    if next.agent.log_format != current.agent.log_format {
        tracing::warn!("log_format changes take effect at the next start, not on reload");
    }
    // The coordinator outlives the reload: leases held stay held.
    *coordinator = Coordinator::apply(coordinator.take(), &next.agent, ctx).await;
    supervisor.start(&next, &|i| coordinator.as_ref().and_then(|c| c.gate(i)));
    tracing::info!(
        "reloaded {}: {} input instance(s)",
        next.source_name(),
        next.inputs.len()
    );
    *current = next;
}
