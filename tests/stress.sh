#!/usr/bin/env bash
# The integration suite under full CPU load: builds it, starts one busy loop per core (plain bash,
# nothing to install), then runs `cargo test --all-features --test integration` STRESS_RUNS times
# in a row (default 3) and reports every failed test per run. Exits 1 if any run failed. Not run in
# CI (it takes several times the suite's own time); run it after changing timing-sensitive code.
# Usage: bash tests/stress.sh [extra cargo test args, e.g. a test name filter]
# Logs: one file per run under $STRESS_LOG_DIR (default a new /tmp/metrics-agent-stress.XXXXXX).
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${STRESS_RUNS:-3}"
logs="${STRESS_LOG_DIR:-$(mktemp -d /tmp/metrics-agent-stress.XXXXXX)}"
mkdir -p "$logs"

# Built before the load starts: the compile is not what is being tested.
cargo test --all-features --test integration --no-run -q

busy=()
stop_busy() {
  local pid
  for pid in "${busy[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait "${busy[@]}" 2>/dev/null || true
}
trap stop_busy EXIT
trap 'exit 130' INT TERM
for _ in $(seq "$(nproc)"); do
  # A subshell spinning in bash builtins: one full core each, killed by the trap above.
  bash -c 'while :; do :; done' &
  busy+=("$!")
done
echo "stress: ${#busy[@]} busy loop(s) (pids ${busy[*]}), $runs run(s), logs in $logs"

failed_runs=0
for run in $(seq "$runs"); do
  log="$logs/run-$run.log"
  start=$SECONDS
  if cargo test --all-features --test integration "$@" >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    failed_runs=$((failed_runs + 1))
  fi
  summary="$(grep -E '^test result:' "$log" | tail -1 || true)"
  echo "stress: run $run: $result in $((SECONDS - start)) s; ${summary:-no test summary (see $log)}"
  grep -E '^test .* \.\.\. FAILED$' "$log" | sed "s/^/stress: run $run: /" || true
done
echo "stress: $failed_runs of $runs run(s) failed under load"
((failed_runs == 0))
