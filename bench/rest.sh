#!/usr/bin/env bash
# Memory at rest: metrics-agent with the embedded default config (no --config), stdout a pipe
# as under telegraf, measured from /proc/PID/smaps_rollup after N seconds (default 25), in the
# same run as a floor and as the peers.
#   floor: examples/rest_floor.rs, a tokio runtime like ours writing one line every 10 s.
#   peers: Debian's prometheus-node-exporter (default collectors) and
#          prometheus-blackbox-exporter (an http_2xx module), when installed, idle (not scraped)
#          like ours between gathers. Static Go binaries: all their pages are their own.
# Columns, in kB:
#   rss      what `ps -o rss` shows: every resident page, shared library text included.
#   pss      rss with each shared page divided among the processes that map it.
#   dirty    written pages: anonymous memory (heap, stacks) plus data the loader relocated;
#            what the host really gives up for the process (clean file-backed pages such as
#            text can be dropped and read back, these cannot). The executables are fsynced
#            first, so a freshly built binary's unwritten page cache does not count as dirty.
#   anon     anonymous memory alone.
#   own      pages of our executable's file (text, rodata, unwind tables, relocated data).
#   libs     shared libraries' pages in rss (libc, libm, ld.so: mapped by nearly every process).
# Prints:
#   bench rest: ours_rss_kb=… pss=… dirty=… anon=… own=… libs=… threads=N floor_rss_kb=… floor_dirty=… ratio_rss=… ratio_dirty=…
#   bench rest-peers: node_exporter_rss_kb=… dirty=… blackbox_exporter_rss_kb=… dirty=…
# Usage: bench/rest.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-25}
# Two builds: an example brings in the dev-dependencies, whose features would change the
# binary's dependencies (and their symbol names, which link/symbol-order.txt lists) from the
# binary that `cargo build --release` and the package ship.
cargo build --release -q --bin metrics-agent
cargo build --release -q --example rest_floor
python3 - "$secs" <<'PY'
import os, shutil, socket, subprocess, sys, tempfile, threading, time
sys.path.insert(0, "bench")
from benchlib import free_port, stop  # noqa: E402

secs = float(sys.argv[1])

def measure(pid, exe):
    """smaps_rollup figures plus a split of rss by mapping (the executable, shared libraries)."""
    roll = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            k, _, v = line.partition(":")
            if v.strip().endswith("kB"):
                roll[k] = int(v.split()[0])
    own = libs = 0
    name = ""
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            first = line.split()
            if "-" in first[0] and ":" not in first[0]:
                name = first[5] if len(first) > 5 else ""
            elif first[0] == "Rss:":
                kb = int(first[1])
                if name == exe:
                    own += kb
                elif ".so" in name:
                    libs += kb
    return {"rss": roll["Rss"], "pss": roll["Pss"],
            "dirty": roll["Private_Dirty"] + roll["Shared_Dirty"],
            "anon": roll["Anonymous"], "own": own, "libs": libs,
            "threads": len(os.listdir(f"/proc/{pid}/task"))}

procs = []
tmp = tempfile.mkdtemp(prefix="bench-rest-")
def start(argv):
    # stdin held open and stdout a pipe: the agent stops on stdin EOF, and telegraf reads a pipe.
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    procs.append(p)
    return p

for exe in ("target/release/metrics-agent", "target/release/examples/rest_floor"):
    with open(exe, "rb") as f:
        os.fsync(f.fileno())
try:
    ours = start(["target/release/metrics-agent"])
    floor = start(["target/release/examples/rest_floor"])
    peers = {}
    with open(f"{tmp}/blackbox.yml", "w") as f:
        f.write("modules:\n  http_2xx:\n    prober: http\n")
    for name, exe, extra in [("node_exporter", "prometheus-node-exporter", []),
                             ("blackbox_exporter", "prometheus-blackbox-exporter",
                              [f"--config.file={tmp}/blackbox.yml"])]:
        path = shutil.which(exe)
        if path:
            argv = [path, f"--web.listen-address=127.0.0.1:{free_port()}"] + extra
            peers[name] = (start(argv), os.path.realpath(path))
    # Drain our stdout (a few kB per 10 s) so the pipe never fills.
    for p in (ours, floor):
        threading.Thread(target=lambda p=p: [None for _ in p.stdout], daemon=True).start()
    time.sleep(secs)
    o = measure(ours.pid, os.path.realpath("target/release/metrics-agent"))
    f = measure(floor.pid, os.path.realpath("target/release/examples/rest_floor"))
    print(f"bench rest: ours_rss_kb={o['rss']} pss={o['pss']} dirty={o['dirty']} anon={o['anon']} "
          f"own={o['own']} libs={o['libs']} threads={o['threads']} "
          f"floor_rss_kb={f['rss']} floor_dirty={f['dirty']} "
          f"ratio_rss={o['rss'] / f['rss']:.2f} ratio_dirty={o['dirty'] / f['dirty']:.2f} seconds={secs:g}")
    if peers:
        figures = []
        for n, (p, exe) in peers.items():
            if p.poll() is not None:
                figures.append(f"{n}=exited")
                continue
            m = measure(p.pid, exe)
            figures.append(f"{n}_rss_kb={m['rss']} dirty={m['dirty']} threads={m['threads']}")
        print("bench rest-peers: " + " ".join(figures))
finally:
    shutil.rmtree(tmp, ignore_errors=True)
    stop(procs)
PY
