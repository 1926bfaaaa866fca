#!/usr/bin/env bash
# CPU time per probe: metrics-agent's http_response / net_response against Debian's
# prometheus-blackbox-exporter (http_2xx / tcp_connect modules), both probing the same nginx
# on loopback in the same run. CPU = utime+stime from /proc/<pid>/stat, taken after a warm-up,
# so start-up is excluded. blackbox's probes are triggered with curl on /probe (one curl per
# batch of URLs, keep-alive, which spares blackbox connection set-up: conservative for it);
# ours are triggered with `trigger = "stdin"` (one gather round per newline), each round
# probing the same URL `per_round` times concurrently on fresh connections.
# Prints:
#   bench http: ours_cpu_ms_per_probe=… blackbox=… ratio=… probes=N
#   bench tcp: ours_cpu_ms_per_probe=… blackbox=… ratio=… probes=N
#   bench https: ours_cpu_ms_per_probe=… blackbox=… ratio=… probes=N   (TLS 1.3, P-256 cert,
#     verification skipped on both sides: the handshake and HTTP/1.1 request are what is measured)
# Needs: nginx, prometheus-blackbox-exporter, curl, openssl (Debian packages).
set -euo pipefail
cd "$(dirname "$0")/.."
probes=${1:-2000}
cargo build --release -q
python3 - "$probes" <<'PY'
import os, socket, subprocess, sys, tempfile, threading, time
sys.path.insert(0, "bench")
from benchlib import free_port, stop  # noqa: E402

N = int(sys.argv[1])
PER_ROUND = 50
TICK_MS = 1000.0 / os.sysconf("SC_CLK_TCK")

def wait_port(p):
    for _ in range(500):
        try:
            socket.create_connection(("127.0.0.1", p), 0.1).close(); return
        except OSError:
            time.sleep(0.02)
    sys.exit(f"port {p} did not open")

def cpu_ms(pid):
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) * TICK_MS  # utime, stime (fields 14, 15)

tmp = tempfile.mkdtemp(prefix="bench-http-")
ng_port, bb_port, tls_port = free_port(), free_port(), free_port()
subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", f"{tmp}/key.pem", "-out", f"{tmp}/cert.pem", "-days", "2", "-subj", "/CN=localhost",
                "-addext", "subjectAltName=IP:127.0.0.1", "-addext", "basicConstraints=CA:FALSE"],
               check=True, capture_output=True)
with open(f"{tmp}/nginx.conf", "w") as f:
    f.write(f"""daemon off; worker_processes 1; pid {tmp}/nginx.pid; error_log {tmp}/error.log;
events {{ worker_connections 1024; }}
http {{ access_log off; client_body_temp_path {tmp}/cb; proxy_temp_path {tmp}/px;
  fastcgi_temp_path {tmp}/fc; uwsgi_temp_path {tmp}/uw; scgi_temp_path {tmp}/sc;
  server {{ listen 127.0.0.1:{ng_port}; listen 127.0.0.1:{tls_port} ssl;
    ssl_certificate {tmp}/cert.pem; ssl_certificate_key {tmp}/key.pem; ssl_session_tickets off;
    location = /hello {{ default_type text/plain; return 200 "hello metrics world\\n"; }} }} }}
""")
with open(f"{tmp}/blackbox.yml", "w") as f:
    f.write("""modules:
  http_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
  https_2xx:
    prober: http
    timeout: 5s
    http:
      preferred_ip_protocol: ip4
      tls_config:
        insecure_skip_verify: true
  tcp_connect:
    prober: tcp
    timeout: 5s
    tcp:
      preferred_ip_protocol: ip4
""")
procs = []
try:
    procs.append(subprocess.Popen(["nginx", "-p", tmp, "-e", f"{tmp}/error.log", "-c", f"{tmp}/nginx.conf"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    bb = subprocess.Popen(["prometheus-blackbox-exporter", f"--config.file={tmp}/blackbox.yml",
                           f"--web.listen-address=127.0.0.1:{bb_port}"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    procs.append(bb)
    wait_port(ng_port); wait_port(bb_port); wait_port(tls_port)

    def blackbox(module, target, n):
        url = f"http://127.0.0.1:{bb_port}/probe?module={module}&target={target}"
        with open(f"{tmp}/curl.cfg", "w") as f:
            for _ in range(min(n, 100)):
                f.write(f'url = "{url}"\noutput = "/dev/null"\n')
        out = subprocess.run(["curl", "-sS", url], capture_output=True, text=True, check=True).stdout
        if "probe_success 1" not in out:
            sys.exit(f"blackbox {module} probe failed:\n{out}")
        for _ in range(5):  # warm-up
            subprocess.run(["curl", "-sS", "-K", f"{tmp}/curl.cfg"], check=True)
        before = cpu_ms(bb.pid)
        done = 0
        while done < n:
            subprocess.run(["curl", "-sS", "-K", f"{tmp}/curl.cfg"], check=True)
            done += min(n, 100)
        return (cpu_ms(bb.pid) - before) / done, done

    def ours(table, measurement, n):
        cfg = f"{tmp}/agent-{measurement}.toml"
        with open(cfg, "w") as f:
            f.write('[agent]\n  trigger = "stdin"\n' + table)
        p = subprocess.Popen(["target/release/metrics-agent", "--config", cfg], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=open(f"{cfg}.log", "w"))
        procs.append(p)
        lines, bad = [0], [0]
        cv = threading.Condition()
        def reader():
            for line in p.stdout:
                if line.startswith(measurement.encode()):
                    with cv:
                        lines[0] += 1
                        if b"result=success" not in line:
                            bad[0] += 1
                        cv.notify_all()
        threading.Thread(target=reader, daemon=True).start()
        def round_():
            # A trigger that reaches an instance whose previous gather is still finishing is
            # skipped by the supervisor (counted, by design); count the lines that did come.
            start = lines[0]
            p.stdin.write(b"\n"); p.stdin.flush()
            with cv:
                cv.wait_for(lambda: lines[0] >= start + PER_ROUND, timeout=2)
            time.sleep(0.005)
            return lines[0] - start
        time.sleep(0.3)
        for _ in range(3):  # warm-up
            round_()
        before, done = cpu_ms(p.pid), 0
        while done < n:
            got = round_()
            if got == 0:
                sys.exit(f"ours: no {measurement} lines in a round; agent log: {cfg}.log")
            done += got
        spent = cpu_ms(p.pid) - before
        if bad[0]:
            sys.exit(f"ours: {bad[0]} {measurement} probes did not succeed")
        p.stdin.close(); p.wait(timeout=10)
        return spent / done, done

    url = f"http://127.0.0.1:{ng_port}/hello"
    http_table = "[[inputs.http_response]]\n  urls = [" + ", ".join([f'"{url}"'] * PER_ROUND) + "]\n"
    tls_url = f"https://127.0.0.1:{tls_port}/hello"
    https_table = ("[[inputs.http_response]]\n  insecure_skip_verify = true\n  http2 = false\n  urls = ["
                   + ", ".join([f'"{tls_url}"'] * PER_ROUND) + "]\n")
    tcp_table = "".join(f'[[inputs.net_response]]\n  protocol = "tcp"\n  address = "127.0.0.1:{ng_port}"\n'
                        for _ in range(PER_ROUND))
    for name, module, target, table, meas in [
        ("http", "http_2xx", url, http_table, "http_response"),
        ("tcp", "tcp_connect", f"127.0.0.1:{ng_port}", tcp_table, "net_response"),
        ("https", "https_2xx", tls_url, https_table, "http_response"),
    ]:
        o, on = ours(table, meas, N)
        b, bn = blackbox(module, target, N)
        print(f"bench {name}: ours_cpu_ms_per_probe={o:.4f} blackbox={b:.4f} ratio={o / b:.3f} probes={on}/{bn}",
              flush=True)
finally:
    stop(procs)
PY
