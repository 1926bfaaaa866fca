#!/usr/bin/env bash
# CPU time per gather of the host inputs against Debian's prometheus-node-exporter, in the same
# run, measured from each process's own utime+stime (/proc/<pid>/stat).
#
#   ours:  cpu, mem, system, disk, diskio, net, netstat at a 100 ms interval; gathers counted from
#          the `mem` lines (one per round).
#   peer:  node_exporter with only the matching collectors (cpu, meminfo, loadavg, filesystem,
#          diskstats, netdev, stat), scraped the same number of times with curl.
# Then procstat over 500 `sleep` processes matched by pattern, with telegraf's default
# properties (cpu, memory, mmap = smaps_rollup per process) and without mmap.
# node_exporter has no TCP-state collector in this list while ours includes netstat, whose cost
# grows with the host's socket table (TIME_WAIT sockets of other programs): the host line also
# prints the TCP socket count seen at the end.
#
# Prints:
#   bench host: ours_cpu_ms_per_gather=… node_exporter=… ratio=… gathers=N
#   bench procstat: ours_cpu_ms_per_gather=… processes=500 gathers=N properties=…
# Usage: bench/host.sh [GATHERS]   (default 200)
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-200}

if ! command -v prometheus-node-exporter >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  # Keep the packaged service from starting: the benchmark runs its own instance.
  printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  apt-get install -y -qq --no-install-recommends prometheus-node-exporter curl >/dev/null
  rm -f /usr/sbin/policy-rc.d
fi
cargo build --release -q
bin=$PWD/target/release/metrics-agent

tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
# The agents' stdin: a fifo this script holds open (read-write, so opening never blocks),
# like telegraf's pipe; it closes when the script exits. No feeder process to outlive us.
mkfifo "$tmp/stdin"
exec 9<>"$tmp/stdin"

# utime+stime of a process in clock ticks (fields 14 and 15; counted after the `(comm)`).
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
hz=$(getconf CLK_TCK)
count() { grep -c "^$1" "$2" || true; }

# --- node_exporter -----------------------------------------------------------------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
prometheus-node-exporter --web.listen-address="127.0.0.1:$port" \
  --collector.disable-defaults --collector.cpu --collector.meminfo --collector.loadavg \
  --collector.filesystem --collector.diskstats --collector.netdev --collector.stat \
  >"$tmp/ne.log" 2>&1 &
ne=$!
pids+=("$ne")
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/metrics" >/dev/null && break; sleep 0.05; done
for _ in 1 2 3; do curl -fs "http://127.0.0.1:$port/metrics" >/dev/null; done # warm up
t0=$(ticks "$ne")
for _ in $(seq "$n"); do
  curl -fs "http://127.0.0.1:$port/metrics" >/dev/null
  sleep 0.1 # the same cadence as ours, so both see the same amount of change
done
t1=$(ticks "$ne")

# --- ours ----------------------------------------------------------------------------------
cat >"$tmp/host.toml" <<'EOF'
[agent]
  interval = "100ms"
  round_interval = false
[[inputs.cpu]]
[[inputs.mem]]
[[inputs.system]]
[[inputs.disk]]
[[inputs.diskio]]
[[inputs.net]]
[[inputs.netstat]]
EOF
"$bin" --config "$tmp/host.toml" <"$tmp/stdin" 9>&- >"$tmp/host.out" 2>"$tmp/host.err" &
ag=$!
pids+=("$ag")
sleep 1 # start-up and first (priming) gathers
a0=$(ticks "$ag"); g0=$(count "mem " "$tmp/host.out")
while (( $(count "mem " "$tmp/host.out") - g0 < n )); do sleep 0.1; done
a1=$(ticks "$ag"); g1=$(count "mem " "$tmp/host.out")
kill "$ag"

tcp=$(( $(cat /proc/net/tcp /proc/net/tcp6 | wc -l) - 2 ))
python3 - "$hz" "$n" "$t0" "$t1" "$a0" "$a1" "$g0" "$g1" "$tcp" <<'PY'
import sys
hz, n, t0, t1, a0, a1, g0, g1 = map(float, sys.argv[1:9])
peer = (t1 - t0) * 1000 / hz / n
ours = (a1 - a0) * 1000 / hz / (g1 - g0)
print(f"bench host: ours_cpu_ms_per_gather={ours:.3f} node_exporter={peer:.3f} "
      f"ratio={ours / peer if peer else float('nan'):.3f} gathers={int(g1 - g0)} scrapes={int(n)} "
      f"tcp_sockets={sys.argv[9]}")
PY

# --- procstat over 500 processes -------------------------------------------------------------
marker="ma-bench-sleep-$$"
for _ in $(seq 500); do
  bash -c "exec -a '$marker' sleep 600" &
  pids+=("$!")
done
sleep 1
np=$(( n / 4 ))
for props in '"cpu", "memory", "mmap"' '"cpu", "memory"'; do
  cat >"$tmp/procstat.toml" <<EOF
[agent]
  interval = "200ms"
  round_interval = false
[[inputs.procstat]]
  pattern = "^$marker"
  properties = [$props]
EOF
  "$bin" --config "$tmp/procstat.toml" <"$tmp/stdin" 9>&- >"$tmp/ps.out" 2>"$tmp/ps.err" &
  ag=$!
  pids+=("$ag")
  sleep 1
  p0=$(ticks "$ag"); c0=$(count "procstat_lookup" "$tmp/ps.out")
  while (( $(count "procstat_lookup" "$tmp/ps.out") - c0 < np )); do sleep 0.1; done
  p1=$(ticks "$ag"); c1=$(count "procstat_lookup" "$tmp/ps.out")
  found=$(grep '^procstat_lookup' "$tmp/ps.out" | tail -1 | sed 's/.*pid_count=\([0-9]*\)i.*/\1/')
  kill "$ag"
  python3 - "$hz" "$p0" "$p1" "$c0" "$c1" "$found" "$props" <<'PY'
import sys
hz, p0, p1, c0, c1, found = map(float, sys.argv[1:7])
props = sys.argv[7].replace('"', '').replace(' ', '')
print(f"bench procstat: ours_cpu_ms_per_gather={(p1 - p0) * 1000 / hz / (c1 - c0):.3f} "
      f"processes={int(found)} gathers={int(c1 - c0)} properties={props}")
PY
done
