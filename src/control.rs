//! Maps what the operating system and telegraf do to the agent onto one event stream: SIGHUP →
//! reload; SIGTERM, SIGINT, stdin EOF and a closed stdout → shutdown; a newline on stdin → one
//! gather round (trigger = "stdin").

use std::io::{BufRead, Read};
use std::os::fd::AsRawFd;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::UnboundedSender;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Reload,
    Shutdown(Reason),
    /// A newline arrived on stdin.
    Trigger,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    Terminate,
    Interrupt,
    /// telegraf closes the child's stdin first when it stops or reloads.
    StdinClosed,
    /// The reader of stdout is gone (EPIPE): nothing can be delivered any more.
    StdoutClosed,
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Reason::Terminate => "SIGTERM",
            Reason::Interrupt => "SIGINT",
            Reason::StdinClosed => "stdin closed",
            Reason::StdoutClosed => "stdout closed",
        })
    }
}

/// Installs the signal handlers and forwards each delivery as an event. Must run on the runtime.
pub(crate) fn spawn_signals(tx: UnboundedSender<Event>) -> std::io::Result<()> {
    let mut hup = signal(SignalKind::hangup())?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        loop {
            let ev = tokio::select! {
                Some(()) = hup.recv() => Event::Reload,
                Some(()) = term.recv() => Event::Shutdown(Reason::Terminate),
                Some(()) = int.recv() => Event::Shutdown(Reason::Interrupt),
                else => return,
            };
            if tx.send(ev).is_err() {
                return;
            }
        }
    });
    Ok(())
}

/// What stdin is, which decides whether EOF on it means "stop".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StdinKind {
    /// A pipe or socket: telegraf's execd. EOF = telegraf is stopping us.
    Pipe,
    Terminal,
    /// /dev/null, a file: EOF says nothing; stdin is not read.
    Other,
}

pub(crate) fn stdin_kind() -> StdinKind {
    let fd = std::io::stdin().as_raw_fd();
    // SAFETY: an all-zero `stat` is a valid value of this plain C struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into the struct we own; fd 0 may be closed, which it reports.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return StdinKind::Other;
    }
    match st.st_mode & libc::S_IFMT {
        libc::S_IFIFO | libc::S_IFSOCK => StdinKind::Pipe,
        // SAFETY: isatty only inspects the descriptor.
        libc::S_IFCHR if unsafe { libc::isatty(fd) } == 1 => StdinKind::Terminal,
        _ => StdinKind::Other,
    }
}

/// Reads stdin on a plain thread (tokio's stdin read cannot be cancelled and would hold up
/// shutdown). Each newline becomes `Trigger`; EOF on a pipe becomes `Shutdown(StdinClosed)`.
/// The thread is detached: it ends with the process.
pub(crate) fn spawn_stdin_reader(
    tx: UnboundedSender<Event>,
    kind: StdinKind,
) -> std::io::Result<()> {
    if kind == StdinKind::Other {
        return Ok(());
    }
    std::thread::Builder::new()
        .name("stdin-reader".into())
        .spawn(move || {
            let stdin = std::io::stdin();
            // Bounded line reads: a peer that writes without newlines cannot grow memory.
            let mut reader = std::io::BufReader::with_capacity(4096, stdin.lock());
            loop {
                let mut line = Vec::new();
                match (&mut reader).take(4096).read_until(b'\n', &mut line) {
                    Ok(0) => break,
                    Ok(_) if line.ends_with(b"\n") => {
                        if tx.send(Event::Trigger).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
            if kind == StdinKind::Pipe {
                let _ = tx.send(Event::Shutdown(Reason::StdinClosed));
            }
        })?;
    Ok(())
}
