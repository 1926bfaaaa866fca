#!/usr/bin/env bash
# CPU per echo and RTT against Debian's fping, then a 10,000-target scale run.
#
# 1. 1,000 loopback targets (127.0.{1..4}.{1..250}), 10 echoes each, 1 s apart, raw sockets
#    (fping uses raw sockets as root too): `fping -C 10 -q -p 1000 -i 1` vs
#    `metrics-agent --once` with count = 10, ping_interval = 1.0. CPU = user + sys of the whole
#    process (start-up included for both) from /usr/bin/time, divided by 10,000 echoes.
#    RTT: median over targets of each target's median RTT, for both.
# 2. 10,000 targets (127.0.{0..39}.{1..250}) every 10 s, count 1, for SCALE_SECONDS (default 65),
#    pinned to 2 CPUs: RSS, CPU, rounds, loss, and the metrics_agent_gather figures (ticks_skipped,
#    gather_time_ns) of the ping input.
# Prints:
#   bench ping: ours_cpu_us_per_echo=… fping=… ratio=…
#   bench ping-rtt: ours_median_us=… fping_median_us=… diff_us=…
#   bench ping-scale: targets=10000 interval_s=10 rounds=… ticks_skipped=… max_gather_ms=… rss_mib=… cpu_pct=… loss_pct=…
# Needs root (raw sockets) and fping (installed if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v fping >/dev/null || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fping >/dev/null; }
[[ -x /usr/bin/time ]] || { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time >/dev/null; }
cargo build --release -q
bin=$PWD/target/release/metrics-agent
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

targets() { # $1 = number of /24s, $2 = first third octet
  for x in $(seq "$2" $(($2 + $1 - 1))); do for y in $(seq 1 250); do echo "127.0.$x.$y"; done; done
}
targets 4 1 >"$work/t1k"
urls=$(sed 's/.*/"&"/' "$work/t1k" | paste -sd,)
cat >"$work/ours.toml" <<TOML
[agent]
  interval = "60s"
[[inputs.ping]]
  urls = [$urls]
  count = 10
  ping_interval = 1.0
  timeout = 1.0
  deadline = 20
  socket = "raw"
TOML

/usr/bin/time -f "%U %S" -o "$work/fping.time" \
  fping -C 10 -q -p 1000 -i 1 $(cat "$work/t1k") 2>"$work/fping.out" || true
/usr/bin/time -f "%U %S" -o "$work/ours.time" \
  "$bin" --config "$work/ours.toml" --once >"$work/ours.out" 2>"$work/ours.err" </dev/null

python3 - "$work" <<'PY'
import sys, statistics
w = sys.argv[1]
def cpu(f):
    u, s = open(f).read().split()[-2:]
    return (float(u) + float(s)) * 1e6
echoes = 1000 * 10
fping_vals, fping_sent = [], 0
for line in open(f"{w}/fping.out"):
    if " : " not in line:
        continue
    vals = [float(v) for v in line.split(" : ")[1].split() if v != "-"]
    fping_sent += 10
    if vals:
        fping_vals.append(statistics.median(vals))
ours_vals, ours_recv = [], 0
for line in open(f"{w}/ours.out"):
    if not line.startswith("ping,"):
        continue
    fields = dict(kv.split("=", 1) for kv in line.split(" ")[1].split(","))
    ours_recv += int(fields["packets_received"].rstrip("i"))
    if "median_response_ms" in fields:
        ours_vals.append(float(fields["median_response_ms"]))
ours_cpu, fping_cpu = cpu(f"{w}/ours.time") / echoes, cpu(f"{w}/fping.time") / echoes
print(f"bench ping: ours_cpu_us_per_echo={ours_cpu:.2f} fping={fping_cpu:.2f} "
      f"ratio={ours_cpu / fping_cpu:.2f} (targets=1000 echoes_each=10 ours_received={ours_recv} "
      f"fping_targets_answered={len(fping_vals)})")
om, fm = statistics.median(ours_vals) * 1000, statistics.median(fping_vals) * 1000
print(f"bench ping-rtt: ours_median_us={om:.1f} fping_median_us={fm:.1f} diff_us={om - fm:+.1f}")
PY

# Scale run.
scale_seconds=${SCALE_SECONDS:-65}
targets 40 0 >"$work/t10k"
urls=$(sed 's/.*/"&"/' "$work/t10k" | paste -sd,)
cat >"$work/scale.toml" <<TOML
[agent]
  interval = "10s"
  metric_buffer_limit = 100000
  metric_buffer_bytes = 67108864
[[inputs.ping]]
  urls = [$urls]
  socket = "raw"
[[inputs.internal]]
TOML
(sleep "$scale_seconds") | taskset -c 0,1 "$bin" --config "$work/scale.toml" >"$work/scale.out" 2>"$work/scale.err" &
sleep 2
pid=$(pgrep -nf "$work/scale.toml")
ticks0=$(awk '{print $14+$15}' "/proc/$pid/stat")
sleep $((scale_seconds - 4))
ticks1=$(awk '{print $14+$15}' "/proc/$pid/stat")
rss_kb=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
wait
python3 - "$work" "$((ticks1 - ticks0))" "$(getconf CLK_TCK)" "$((scale_seconds - 6))" "$rss_kb" <<'PY'
import sys
w, ticks, hz, secs, rss_kb = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
rounds = {}
sent = recv = 0
gather = []
skipped = 0
for line in open(f"{w}/scale.out"):
    head, fields, ts = line.rstrip("\n").split(" ")
    f = dict(kv.split("=", 1) for kv in fields.split(","))
    if head.startswith("ping,"):
        rounds[ts] = rounds.get(ts, 0) + 1
        sent += int(f.get("packets_transmitted", "0i").rstrip("i"))
        recv += int(f.get("packets_received", "0i").rstrip("i"))
    elif head.startswith("metrics_agent_gather,") and "input=ping" in head:
        skipped = int(f["ticks_skipped"].rstrip("i"))
        gather.append(int(f["gather_time_ns"].rstrip("i")) / 1e6)
complete = sum(1 for n in rounds.values() if n == 10000)
loss = 100.0 * (sent - recv) / sent if sent else 100.0
print(f"bench ping-scale: targets=10000 interval_s=10 rounds={len(rounds)} complete_rounds={complete} "
      f"ticks_skipped={skipped} max_gather_ms={max(gather or [0]):.0f} rss_mib={rss_kb / 1024:.1f} "
      f"cpu_pct={100.0 * ticks / hz / secs:.2f} loss_pct={loss:.3f}")
PY
