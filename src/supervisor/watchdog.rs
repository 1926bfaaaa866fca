//! A plain thread that notices when the async runtime makes no progress at all (every worker
//! stuck in code that blocks without yielding). Nothing inside the runtime can recover from that,
//! so the agent exits non-zero and telegraf (or systemd) restarts it, rather than hanging silently.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

/// How often the canary task proves the runtime is alive.
const BEAT: Duration = Duration::from_millis(250);

/// Starts the canary task (on the current runtime) and the watchdog thread. `on_starved` runs on
/// the watchdog thread once, when no beat arrived for `timeout`.
pub fn start<F>(timeout: Duration, stop: CancellationToken, on_starved: F) -> std::io::Result<()>
where
    F: FnOnce(Duration) + Send + 'static,
{
    let origin = Instant::now();
    let beat = Arc::new(AtomicU64::new(0));
    let canary_beat = beat.clone();
    let canary_stop = stop.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(BEAT);
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
                std::thread::sleep(BEAT * 2);
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
