//! The floor of `bench/rest.sh`: the least a tokio agent can be at rest. The same runtime as
//! the agent (multi-thread, two workers, timers and I/O enabled) writing one line to stdout
//! every 10 s, and nothing else: no config, inputs, logging or queue. What the agent keeps
//! resident above this is its own.

use std::io::Write;
use std::time::Duration;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            let mut out = std::io::stdout().lock();
            if writeln!(out, "floor value=1i")
                .and_then(|()| out.flush())
                .is_err()
            {
                return;
            }
        }
    });
}
