//! A plain thread that notices when the async runtime makes no progress at all (every worker
//! stuck in code that blocks without yielding). Nothing inside the runtime can recover from that,
//! so the agent exits non-zero and telegraf (or systemd) restarts it, rather than hanging silently.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How often the canary task proves the runtime is alive, and the watchdog looks: an eighth of
/// the timeout, so a healthy runtime is never near it, within these bounds. Every beat is a
/// wake-up of an otherwise idle process (at the default 30 s timeout: one per 3.75 s, instead
/// of four a second).
fn beat(timeout: Duration) -> Duration {
    (timeout / 8).clamp(Duration::from_millis(100), Duration::from_secs(5))
}

/// Starts the canary task (on the current runtime) and the watchdog thread. `on_starved` runs on
/// the watchdog thread once, when no beat arrived for `timeout`.
pub(crate) fn start<F>(
    timeout: Duration,
    stop: CancellationToken,
    on_starved: F,
) -> std::io::Result<()>
where
    F: FnOnce(Duration) + Send + 'static,
{
    let beat_every = beat(timeout);
    let origin = Instant::now();
    let beat = Arc::new(AtomicU64::new(0));
    let canary_beat = beat.clone();
    let canary_stop = stop.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(beat_every);
        loop {
            tokio::select! {
                _ = canary_stop.cancelled() => return,
                _ = tick.tick() => canary_beat.store(origin.elapsed().as_millis() as u64, Ordering::Relaxed),
            }
        }
    });
    std::thread::Builder::new()
        .name("watchdog".into())
        .spawn(move || {
            loop {
                std::thread::sleep(beat_every);
                if stop.is_cancelled() {
                    return;
                }
                let last = Duration::from_millis(beat.load(Ordering::Relaxed));
                let silent = origin.elapsed().saturating_sub(last);
                if silent >= timeout {
                    on_starved(silent);
                    return;
                }
            }
        })?;
    Ok(())
}
