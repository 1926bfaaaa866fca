#!/usr/bin/env bash
# mqtt_consumer against mosquitto_sub (the floor for receiving a stream), both subscribed to
# the same topics of one mosquitto on loopback in the same run, QoS 0. CPU = utime+stime from
# /proc/<pid>/stat over the publishing window only (start-up excluded). mosquitto_sub prints
# each payload to a pipe; the agent writes line protocol to a pipe; both pipes are read by this
# script (whose CPU is not counted).
#   1. top rate: a burst of messages published as fast as mosquitto_pub can; the rate at which
#      mosquitto delivers them to mosquitto_sub, and what the agent received of the same burst
#      (lost = published - received, must be 0), with the agent's RSS at the end of the burst;
#   2. influx and JSON payloads at a fixed rate: CPU per message of each.
# Prints:
#   bench mqtt top_rate: mosquitto_sub_msgs_per_s=… ours_msgs_per_s=… ours_lost=… sub_lost=… ours_rss_mib=… msgs=N
#   bench mqtt influx: ours_cpu_us_per_msg=… mosquitto_sub=… ratio=… rate=…/s msgs=N lost=…
#   bench mqtt json: ours_cpu_us_per_msg=… mosquitto_sub=… ratio=… rate=…/s msgs=N lost=…
# Targets (issue 12): ratio <= 3 for influx, <= 5 for JSON; no loss at the top rate.
# Needs: mosquitto, mosquitto-clients (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/.."
burst=${1:-200000}
rate=${2:-20000}
seconds=${3:-5}
cargo build --release -q
python3 - "$burst" "$rate" "$seconds" <<'PY'
import os, socket, subprocess, sys, tempfile, threading, time
sys.path.insert(0, "bench")
from benchlib import free_port, stop  # noqa: E402

BURST, RATE, SECONDS = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
TICK_US = 1e6 / os.sysconf("SC_CLK_TCK")

def cpu_us(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) * TICK_US

def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for l in f:
            if l.startswith("VmRSS:"):
                return int(l.split()[1]) / 1024
    return 0.0

class Counter:
    """Counts lines of a pipe that start with one of `prefixes`, remembering when."""
    def __init__(self, pipe, prefixes):
        self.n = {p: 0 for p in prefixes}
        self.last = 0.0
        self.first = None
        def run():
            for line in pipe:
                for p in prefixes:
                    if line.startswith(p):
                        self.n[p] += 1
                        now = time.perf_counter()
                        if self.first is None:
                            self.first = now
                        self.last = now
                        break
        self.t = threading.Thread(target=run, daemon=True); self.t.start()

    def reset(self):
        self.first = None

def wait_count(c, key, want, timeout):
    end = time.time() + timeout
    while c.n[key] < want and time.time() < end:
        time.sleep(0.05)

tmp = tempfile.mkdtemp(prefix="bench-mqtt-")
port = free_port()
with open(f"{tmp}/m.conf", "w") as f:
    f.write(f"user root\nlistener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            "max_queued_messages 10000000\nlog_type error\n")
with open(f"{tmp}/agent.toml", "w") as f:
    f.write(f"""[agent]
metric_buffer_limit = 100000
metric_buffer_bytes = 67108864
[[inputs.mqtt_consumer]]
servers = ["tcp://127.0.0.1:{port}"]
topics = ["bench/lp"]
[[inputs.mqtt_consumer]]
servers = ["tcp://127.0.0.1:{port}"]
topics = ["bench/js"]
data_format = "json"
tag_keys = ["sensor"]
name_override = "bj"
""")
procs = []
try:
    procs.append(subprocess.Popen(["mosquitto", "-c", f"{tmp}/m.conf"], stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL))
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.1).close(); break
        except OSError:
            time.sleep(0.02)
    agent = subprocess.Popen(["target/release/metrics-agent", "--config", f"{tmp}/agent.toml"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                             text=True, bufsize=1 << 16)
    procs.append(agent)
    sub = subprocess.Popen(["mosquitto_sub", "-p", str(port), "-t", "bench/#", "-q", "0"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1 << 16)
    procs.append(sub)
    ours = Counter(agent.stdout, ["b,", "bj,"])
    floor = Counter(sub.stdout, ["b,", "{"])
    time.sleep(1.5)  # both subscribed

    def publish(topic, lines, per_s):
        """Publishes `lines` through one mosquitto_pub -l, paced at per_s (0 = as fast as possible)."""
        p = subprocess.Popen(["mosquitto_pub", "-p", str(port), "-q", "0", "-t", topic, "-l"],
                             stdin=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1 << 16)
        t0 = time.perf_counter()
        chunk = max(1, per_s // 100) if per_s else len(lines)
        for i in range(0, len(lines), chunk):
            p.stdin.write("".join(lines[i:i + chunk]))
            if per_s:
                p.stdin.flush()
                ahead = t0 + (i + chunk) / per_s - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
        p.stdin.close(); p.wait()

    def lp(i):
        return f"b,sensor=s{i % 50},site=lab temp={20 + i % 10}.5,hum={i % 100}i,seq={i}i\n"

    def js(i):
        return f'{{"sensor":"s{i % 50}","temp":{20 + i % 10}.5,"hum":{i % 100},"seq":{i}}}\n'

    # 1. Top rate: one burst of influx lines as fast as they can be published.
    ours.reset(); floor.reset()
    base_o, base_f = ours.n["b,"], floor.n["b,"]
    publish("bench/lp", [lp(i) for i in range(BURST)], 0)
    wait_count(floor, "b,", base_f + BURST, 60)
    wait_count(ours, "b,", base_o + BURST, 60)
    time.sleep(0.5)
    got_f, got_o = floor.n["b,"] - base_f, ours.n["b,"] - base_o
    span_f = max(floor.last - (floor.first or floor.last), 1e-9)
    span_o = max(ours.last - (ours.first or ours.last), 1e-9)
    print(f"bench mqtt top_rate: mosquitto_sub_msgs_per_s={got_f / span_f:.0f} "
          f"ours_msgs_per_s={got_o / span_o:.0f} ours_lost={BURST - got_o} sub_lost={BURST - got_f} "
          f"ours_rss_mib={rss_mib(agent.pid):.1f} msgs={BURST}", flush=True)

    # 2. Fixed rate, influx then JSON: CPU per message over the publishing window.
    n = int(RATE * SECONDS)
    for name, topic, make, ko, kf in (("influx", "bench/lp", lp, "b,", "b,"),
                                      ("json", "bench/js", js, "bj,", "{")):
        lines = [make(i) for i in range(n)]
        base_o, base_f = ours.n[ko], floor.n[kf]
        c_o, c_f = cpu_us(agent.pid), cpu_us(sub.pid)
        publish(topic, lines, RATE)
        wait_count(floor, kf, base_f + n, 30)
        wait_count(ours, ko, base_o + n, 30)
        d_o, d_f = cpu_us(agent.pid) - c_o, cpu_us(sub.pid) - c_f
        got_o, got_f = ours.n[ko] - base_o, floor.n[kf] - base_f
        per_o, per_f = d_o / max(got_o, 1), d_f / max(got_f, 1)
        print(f"bench mqtt {name}: ours_cpu_us_per_msg={per_o:.2f} mosquitto_sub={per_f:.2f} "
              f"ratio={per_o / max(per_f, 1e-9):.2f} rate={RATE}/s msgs={n} lost={n - got_o} "
              f"sub_lost={n - got_f}", flush=True)
finally:
    stop(procs)
PY
