#!/usr/bin/env bash
# Scale: 10,000 ping targets (127.0.x.y) and 2,000 HTTP targets (one loopback nginx, distinct
# URLs) in one agent at a 10 s interval on this machine's cores, for ROUNDS rounds (default 6).
# Scheduling lag = a probe's start timestamp minus its 10 s boundary (round_interval).
# Prints:
#   bench scale: rounds=… ping_lines_per_round=… http_lines_per_round=… ticks_skipped=…
#   bench scale-lag: http_p50_ms=… http_p99_ms=… ping_p99_ms=…
#   bench scale-rss: max_rss_mib=… cpu_percent=…
# Needs nginx (Debian package); runs as root for raw ICMP sockets.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-6}
cargo build --release -q
bin=$PWD/target/release/metrics-agent
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
# The agents' stdin: a fifo this script holds open (read-write, so opening never blocks),
# like telegraf's pipe; it closes when the script exits. No feeder process to outlive us.
mkfifo "$tmp/stdin"
exec 9<>"$tmp/stdin"

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$tmp/nginx"
cat >"$tmp/nginx/nginx.conf" <<NGX
worker_processes 1;
daemon off;
pid $tmp/nginx/pid;
error_log $tmp/nginx/error.log;
worker_rlimit_nofile 8192;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $tmp/nginx; proxy_temp_path $tmp/nginx; fastcgi_temp_path $tmp/nginx;
  uwsgi_temp_path $tmp/nginx; scgi_temp_path $tmp/nginx;
  server { listen 127.0.0.1:$port backlog=4096; location / { return 200 "ok\n"; } }
}
NGX
nginx -c "$tmp/nginx/nginx.conf" &
pids+=("$!")
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.05; done

python3 - "$tmp/agent.toml" "$port" <<'PY'
import sys
path, port = sys.argv[1], sys.argv[2]
ping = ", ".join(f'"127.0.{i // 250}.{i % 250 + 1}"' for i in range(10000))
http = ", ".join(f'"http://127.0.0.1:{port}/t{i}"' for i in range(2000))
open(path, "w").write(f"""[agent]
interval = "10s"
metric_buffer_limit = 100000
metric_buffer_bytes = 67108864
[[inputs.internal]]
[[inputs.ping]]
urls = [{ping}]
count = 1
timeout = 2.0
deadline = 5
[[inputs.http_response]]
urls = [{http}]
response_timeout = "5s"
""")
PY
"$bin" --config "$tmp/agent.toml" <"$tmp/stdin" 9>&- >"$tmp/out" 2>"$tmp/err" &
ag=$!
pids+=("$ag")
hz=$(getconf CLK_TCK)
ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# Skip the start-up round; measure `rounds` full rounds after the next boundary.
sleep $(( 10 - $(date +%s) % 10 + 1 ))
c0=$(ticks "$ag"); t0=$(date +%s.%N); from=$(date +%s%N)
sleep $(( rounds * 10 ))
c1=$(ticks "$ag"); t1=$(date +%s.%N)
rss=$(awk '/VmHWM/ {print $2}' "/proc/$ag/status")
kill "$ag"; wait "$ag" 2>/dev/null || true

python3 - "$tmp/out" "$from" "$rounds" "$rss" "$c0" "$c1" "$t0" "$t1" "$hz" "$tmp/err" <<'PY'
import sys, collections
out, since, rounds, rss = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
c0, c1, t0, t1, hz = float(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7]), float(sys.argv[8]), float(sys.argv[9])
lag = collections.defaultdict(list)
per_round = collections.defaultdict(collections.Counter)
skipped = 0
for line in open(out):
    meas = line.split(",", 1)[0].split(" ", 1)[0]
    ts = int(line.rsplit(" ", 1)[1])
    if ts < since:
        continue
    if meas == "metrics_agent_gather" and "ticks_skipped=" in line:
        skipped = max(skipped, int(line.split("ticks_skipped=")[1].split("i")[0]))
    if meas in ("ping", "http_response"):
        lag[meas].append((ts % 10_000_000_000) / 1e6)
        per_round[meas][ts // 10_000_000_000] += 1
def pct(v, p):
    v = sorted(v); return v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")
full = lambda m: sorted(per_round[m].items())[:rounds]
print(f"bench scale: rounds={rounds} ping_lines_per_round={[n for _, n in full('ping')]} "
      f"http_lines_per_round={[n for _, n in full('http_response')]} ticks_skipped={skipped}")
print(f"bench scale-lag: http_p50_ms={pct(lag['http_response'], .5):.2f} http_p99_ms={pct(lag['http_response'], .99):.2f} "
      f"ping_p99_ms={pct(lag['ping'], .99):.2f}")
print(f"bench scale-rss: max_rss_mib={rss / 1024:.1f} cpu_percent={(c1 - c0) / hz / (t1 - t0) * 100:.1f}")
errs = [l for l in open(sys.argv[10]) if l.startswith(("E!", "W!"))]
if errs:
    print("agent warnings/errors:", *errs[:5], sep="\n  ")
PY
