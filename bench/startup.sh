#!/usr/bin/env bash
# Time from exec to the first line on stdout, with the embedded default config, over N runs.
# Prints: bench startup: ours_ms_to_first_line_median=… min=… max=… runs=N
# (telegraf, the natural peer, is not packaged in Debian bookworm, so there is no peer column.)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-20}
cargo build --release -q
python3 - "$runs" <<'PY'
import os, subprocess, sys, time, statistics
runs = int(sys.argv[1])
times = []
for _ in range(runs):
    t0 = time.perf_counter()
    p = subprocess.Popen(["target/release/metrics-agent"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    p.stdout.readline()
    times.append((time.perf_counter() - t0) * 1000)
    p.stdin.close()
    p.wait(timeout=5)
print(f"bench startup: ours_ms_to_first_line_median={statistics.median(times):.2f} "
      f"min={min(times):.2f} max={max(times):.2f} runs={runs}")
PY
