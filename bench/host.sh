#!/usr/bin/env bash
# CPU time per gather of the host inputs against Debian's prometheus-node-exporter, in the same
# run, measured from each process's own CPU time (per-thread schedstat, summed).
#
#   ours:  cpu, mem, system, disk, diskio, net, netstat at a 100 ms interval, stdout a pipe as
#          under telegraf; gathers counted from the `mem` lines (one per round).
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
#   bench host-tcpstates: …  (node_exporter with its tcpstat collector too: TCP states both sides)
#   bench host-no-tcpstates: …  (ours without netstat: TCP states on neither side)
#   bench host-floor: …  (bench/host-floor.c: the same kernel work with nothing else, in C)
#   bench procstat: ours_cpu_ms_per_gather=… processes=500 gathers=N properties=…
#   bench procstat-floor: …  (bench/procstat-floor.c: the same /proc files of the same
#                             processes at the same interval, in C; ratio = ours / floor)
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
# CPU time of a process in ns, summed over its threads' schedstat (clock ticks are 10 ms, too
# coarse for 200 gathers of well under a millisecond). Threads that exit during a run would be
# missed; neither process here starts a thread per gather or scrape.
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {print s}'; }
count() { grep -c "^$1" "$2" || true; }

# --- node_exporter -----------------------------------------------------------------------
# CPU ms per scrape of a node_exporter with the given collectors, scraped n times at our cadence.
ne_cpu() {
  local port ne t0 t1
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  prometheus-node-exporter --web.listen-address="127.0.0.1:$port" --collector.disable-defaults \
    "$@" >"$tmp/ne.log" 2>&1 9>&- &
  ne=$!
  pids+=("$ne")
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/metrics" >/dev/null && break; sleep 0.05; done
  for _ in 1 2 3; do curl -fs "http://127.0.0.1:$port/metrics" >/dev/null; done # warm up
  t0=$(cpu_ns "$ne")
  for _ in $(seq "$n"); do
    curl -fs "http://127.0.0.1:$port/metrics" >/dev/null
    sleep 0.1 # the same cadence as ours, so both see the same amount of change
  done
  t1=$(cpu_ns "$ne")
  kill "$ne"
  python3 -c "print(($t1 - $t0) / 1e6 / $n)"
}

# --- ours ----------------------------------------------------------------------------------
# CPU ms per round of the agent with the given inputs at a 100 ms interval.
ours_cpu() {
  local ag a0 a1 g0 g1
  { printf '[agent]\n  interval = "100ms"\n  round_interval = false\n'
    for i in "$@"; do printf '[[inputs.%s]]\n' "$i"; done; } >"$tmp/host.toml"
  # stdout is a pipe, as under telegraf (whose execd reads the child's stdout pipe); a cat
  # drains it into the file the lines are counted in. Only the agent's own CPU is counted.
  rm -f "$tmp/host.pipe" "$tmp/host.out"
  mkfifo "$tmp/host.pipe"
  cat "$tmp/host.pipe" >"$tmp/host.out" 9>&- &
  pids+=("$!")
  "$bin" --config "$tmp/host.toml" <"$tmp/stdin" 9>&- >"$tmp/host.pipe" 2>"$tmp/host.err" &
  ag=$!
  pids+=("$ag")
  sleep 1 # start-up and first (priming) gathers
  a0=$(cpu_ns "$ag"); g0=$(count "mem " "$tmp/host.out")
  while (( $(count "mem " "$tmp/host.out") - g0 < n )); do sleep 0.1; done
  a1=$(cpu_ns "$ag"); g1=$(count "mem " "$tmp/host.out")
  kill "$ag"
  python3 -c "print(($a1 - $a0) / 1e6 / ($g1 - $g0))"
}

collectors=(--collector.cpu --collector.meminfo --collector.loadavg --collector.filesystem
  --collector.diskstats --collector.netdev --collector.stat)
peer=$(ne_cpu "${collectors[@]}")
peer_tcp=$(ne_cpu "${collectors[@]}" --collector.tcpstat)
ours=$(ours_cpu cpu mem system disk diskio net netstat)
# What one round of ours wrote and which mounts it reported, for the floor below.
rounds=$(count "mem " "$tmp/host.out")
bytes_per_round=$(( $(wc -c <"$tmp/host.out") / rounds ))
mapfile -t mounts < <(grep '^disk,' "$tmp/host.out" | sed 's/.*,path=\([^, ]*\).*/\1/' | sort -u)
ours_nonetstat=$(ours_cpu cpu mem system disk diskio net)

# The floor: the same kernel work (files read, statvfs, one sock_diag walk, one write per round)
# with nothing else, in C (bench/host-floor.c). No implementation of these inputs goes below it.
floor=none
if command -v gcc >/dev/null && gcc -O2 -o "$tmp/host-floor" bench/host-floor.c; then
  floor=$("$tmp/host-floor" "$n" "$bytes_per_round" "${mounts[@]}" 2>&1 >/dev/null 9>&- |
    sed -n 's/^cpu_ms_per_round=//p')
fi

tcp=$(( $(cat /proc/net/tcp /proc/net/tcp6 | wc -l) - 2 ))
python3 - "$peer" "$ours" "$peer_tcp" "$ours_nonetstat" "$n" "$tcp" "$floor" <<'PY'
import sys
peer, ours, peer_tcp, ours_nonetstat = map(float, sys.argv[1:5])
n, tcp, floor = sys.argv[5:8]
r = lambda a, b: a / b if b else float("nan")
# The issue's comparison: our 7 inputs (with netstat) against node_exporter's 7 collectors
# (none of which counts TCP states).
print(f"bench host: ours_cpu_ms_per_gather={ours:.3f} node_exporter={peer:.3f} "
      f"ratio={r(ours, peer):.3f} gathers={n} scrapes={n} tcp_sockets={tcp}")
# Like for like: TCP states on both sides (node_exporter's tcpstat, a sock_diag dump per family).
print(f"bench host-tcpstates: ours_cpu_ms_per_gather={ours:.3f} node_exporter_with_tcpstat={peer_tcp:.3f} "
      f"ratio={r(ours, peer_tcp):.3f}")
# Like for like: TCP states on neither side.
print(f"bench host-no-tcpstates: ours_cpu_ms_per_gather={ours_nonetstat:.3f} node_exporter={peer:.3f} "
      f"ratio={r(ours_nonetstat, peer):.3f}")
# The syscalls alone of one round of our 7 inputs (bench/host-floor.c), against the same peer.
if floor != "none":
    f = float(floor)
    print(f"bench host-floor: syscalls_only_cpu_ms_per_round={f:.3f} node_exporter={peer:.3f} "
          f"ratio={r(f, peer):.3f} ours_over_floor={r(ours, f):.2f}")
PY

# --- procstat over 500 processes -------------------------------------------------------------
gcc -O2 -o "$tmp/procstat-floor" bench/procstat-floor.c 2>/dev/null || true
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
  # The floor (bench/procstat-floor.c): the same files of the same processes at the same
  # interval, in plain C.
  mmap=0; [[ $props == *mmap* ]] && mmap=1
  pfloor=none
  if [[ -x $tmp/procstat-floor ]]; then
    pfloor=$("$tmp/procstat-floor" "$np" "$marker" "$mmap" 200 2>&1 >/dev/null 9>&- |
      sed -n 's/^cpu_ms_per_gather=\([0-9.]*\).*/\1/p')
  fi
  python3 - "$hz" "$p0" "$p1" "$c0" "$c1" "$found" "$props" "$pfloor" <<'PY'
import sys
hz, p0, p1, c0, c1, found = map(float, sys.argv[1:7])
props = sys.argv[7].replace('"', '').replace(' ', '')
floor = sys.argv[8]
ours = (p1 - p0) * 1000 / hz / (c1 - c0)
print(f"bench procstat: ours_cpu_ms_per_gather={ours:.3f} "
      f"processes={int(found)} gathers={int(c1 - c0)} properties={props}")
if floor != "none":
    f = float(floor)
    print(f"bench procstat-floor: floor_cpu_ms_per_gather={f:.3f} ours={ours:.3f} "
          f"ratio={ours / f if f else float('nan'):.2f} properties={props}")
PY
done
