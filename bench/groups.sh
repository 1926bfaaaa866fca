#!/usr/bin/env bash
# Probe groups (README "Probe groups"): the cost of coordination per agent and the takeover time
# after a SIGKILL, against a throwaway PostgreSQL cluster on a loopback port (Debian's
# postgresql; run as root: the cluster runs as the postgres user).
#
#   bash bench/groups.sh                 # DURATION=60 TRIALS=20; COST=0 skips the cost part
#
# Cost: two agents (one leads every group, one stands by) with 1, 10 and 50 leader groups at the
# default settings (ttl 15s, renew 5s, db_timeout 3s), against the same two agents without
# coordination over the same time: CPU of coordination as % of one core, CPU per renewal, and
# database transactions per minute (pg_stat_database, every renewal is one).
# Takeover: two agents, one net_response probe every 100ms in one group, ttl 3s, renew 1s; the
# leader is SIGKILLed TRIALS times; time from the kill to the new leader's first line.
# Prints: bench groups cost: groups=N cpu_pct=… us_per_renewal=… db_tx_per_min=…
#         bench groups takeover: median_s=… max_s=… bound_s=… trials=N
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${BIN:-}" ]; then
  cargo build --release -q
  BIN=target/release/metrics-agent
fi
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
work=$(mktemp -d)
chown postgres: "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
runuser -u postgres -- "$PGBIN/initdb" -N -A trust -U postgres -D "$work/data" >/dev/null
runuser -u postgres -- "$PGBIN/postgres" -D "$work/data" -p "$port" -k "$work" \
  -c listen_addresses=127.0.0.1 -c fsync=off >"$work/pg.log" 2>&1 &
pg=$!
trap 'kill $pg 2>/dev/null; wait $pg 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do "$PGBIN/pg_isready" -q -h "$work" -p "$port" && break; sleep 0.1; done
psql -X -q -h "$work" -p "$port" -U postgres -c "CREATE ROLE agent LOGIN" \
  -c "CREATE DATABASE agents OWNER agent"

python3 - "$BIN" "$work" "$port" "${DURATION:-60}" "${TRIALS:-20}" "${COST:-1}" <<'PY'
import os, random, socket, statistics, subprocess, sys, tempfile, threading, time
bin_, sock, port, duration, trials = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
cost = sys.argv[6] != "0"
tick = os.sysconf("SC_CLK_TCK")

def psql(sql):
    return subprocess.run(["psql", "-X", "-At", "-h", sock, "-p", port, "-U", "postgres", "-d", "agents",
                           "-c", sql], capture_output=True, text=True, check=True).stdout.strip()

def cpu_s(pid):
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / tick

class Agent:
    def __init__(self, config):
        self.dir = tempfile.mkdtemp()
        path = os.path.join(self.dir, "agent.toml")
        open(path, "w").write(config)
        self.p = subprocess.Popen([bin_, "--config", path], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.lines = []
        threading.Thread(target=self.read, daemon=True).start()
    def read(self):
        for line in self.p.stdout:
            self.lines.append((time.time(), line))
    def probes(self):
        return [t for t, l in self.lines if l.startswith(b"net_response,")]
    def kill(self):
        self.p.kill(); self.p.wait()
    def stop(self):
        self.p.stdin.close(); self.p.wait(timeout=10)

def coordination(agent_id, groups, ttl="15s", renew="5s", db_timeout="3s"):
    g = "\n".join(f'g{i} = "leader"' for i in range(groups))
    return (f'[agent.coordination]\npostgres = "host=127.0.0.1 port={port} user=agent dbname=agents"\n'
            f'agent_id = "{agent_id}"\nttl = "{ttl}"\nrenew_interval = "{renew}"\n'
            f'db_timeout = "{db_timeout}"\n[agent.coordination.groups]\n{g}\n')

# --- cost ---
base_input = '[[inputs.mem]]\ninterval = "10s"\n'
def run_pair(configs):
    agents = [Agent(c) for c in configs]
    time.sleep(2)
    tx0 = int(psql("SELECT xact_commit FROM pg_stat_database WHERE datname = 'agents'"))
    c0 = [cpu_s(a.p.pid) for a in agents]
    time.sleep(duration)
    c1 = [cpu_s(a.p.pid) for a in agents]
    tx1 = int(psql("SELECT xact_commit FROM pg_stat_database WHERE datname = 'agents'"))
    for a in agents:
        a.stop()
    return max(b - a for a, b in zip(c0, c1)), tx1 - tx0

for n in ((1, 10, 50) if cost else ()):
    base_cpu, _ = run_pair([base_input, base_input])
    cpu, tx = run_pair([coordination(f"a{i}", n) + base_input for i in range(2)])
    renewals = n * duration / 5.0  # per agent: one statement per group per renew_interval
    extra = max(cpu - base_cpu, 0.0)
    print(f"bench groups cost: groups={n} cpu_pct={100 * extra / duration:.3f} "
          f"us_per_renewal={1e6 * extra / renewals:.1f} db_tx_per_min={tx * 60 / duration:.0f} "
          f"(two agents; baseline cpu {base_cpu:.2f}s, with {cpu:.2f}s over {duration:.0f}s)", flush=True)

# --- takeover ---
listener = socket.socket(); listener.bind(("127.0.0.1", 0)); listener.listen(128)
def accept():
    while True:
        c, _ = listener.accept(); c.close()
threading.Thread(target=accept, daemon=True).start()
probe = (f'[agent]\ninterval = "100ms"\n' + coordination("{id}", 1, "3s", "1s", "400ms") +
         f'[[inputs.net_response]]\nprotocol = "tcp"\naddress = "127.0.0.1:{listener.getsockname()[1]}"\n'
         'group = "g0"\n')
def wait(pred, limit):
    end = time.time() + limit
    while not pred():
        if time.time() > end:
            raise SystemExit("bench groups: timed out waiting for a leader")
        time.sleep(0.01)
agents = [Agent(probe.replace("{id}", f"a{i}")) for i in range(2)]
takeovers = []
for trial in range(trials):
    wait(lambda: any(a.probes() for a in agents), 30)
    # A random phase against the leader's renewals: the takeover depends on it.
    time.sleep(1.5 + random.random())
    leader = next(i for i, a in enumerate(agents) if a.probes() and a.probes()[-1] > time.time() - 1)
    other = 1 - leader
    agents[leader].kill()
    killed = time.time()
    seen = len(agents[other].probes())
    wait(lambda: len(agents[other].probes()) > seen and agents[other].probes()[-1] > killed, 30)
    takeovers.append(next(t for t in agents[other].probes() if t > killed) - killed)
    agents[leader] = Agent(probe.replace("{id}", f"a{leader}"))
for a in agents:
    a.stop()
print(f"bench groups takeover: median_s={statistics.median(takeovers):.2f} max_s={max(takeovers):.2f} "
      f"bound_s=4.00 (ttl 3s + renew 1s) trials={trials}")
PY
