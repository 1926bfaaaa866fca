#!/usr/bin/env python3
"""Captures the fuzz seed corpora of the parser targets from real sources on this machine:
DNS replies from a dnsmasq on a loopback port, ICMP packets as raw and datagram ("ping")
sockets return them (echo replies, our own request, a port unreachable), sock_diag dump replies
from the kernel, the requests curl and Python send to an HTTP server, /proc and /sys files,
x509 sources, a PEM file and DER certificates (a system CA and a fresh openssl certificate).
Each file starts with the target's selector byte (see src/fuzz_api.rs). Needs root (raw
sockets; the datagram ICMP part runs again in a new network namespace, where the ping group
range can be opened without touching the host's) and dnsmasq, curl, openssl, unshare.
Usage: sudo python3 fuzz/seeds/capture.py fuzz/seeds
"""
import os, socket, struct, subprocess, time, sys, threading
root = sys.argv[1]
def put(target, name, data):
    d = os.path.join(root, target); os.makedirs(d, exist_ok=True)
    open(os.path.join(d, name), 'wb').write(data)

def echo(seq):
    icmp = bytearray(struct.pack('>BBHHH', 8, 0, 0, 0x4242, seq) + bytes(range(56)))
    s = 0
    for i in range(0, len(icmp), 2): s += (icmp[i] << 8) + icmp[i+1]
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    icmp[2:4] = struct.pack('>H', ~s & 0xffff)
    return bytes(icmp)

if os.environ.get("CAPTURE_DGRAM"):
    # Inside `unshare -n`: loopback up, ping sockets allowed for root's group.
    e6 = bytearray(echo(3)); e6[0] = 128; e6[2:4] = b'\0\0'
    d = socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_ICMP); d.settimeout(2)
    d.sendto(echo(2), ('127.0.0.1', 0)); put('icmp', 'dgram-v4-echo-reply', b'\x02' + d.recv(2048))
    d6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM, socket.IPPROTO_ICMPV6); d6.settimeout(2)
    d6.sendto(bytes(e6), ('::1', 0)); put('icmp', 'dgram-v6-echo-reply', b'\x03' + d6.recv(2048))
    sys.exit(0)

# --- dns: replies from a real dnsmasq on loopback
port = 15353
dm = subprocess.Popen(['dnsmasq', '-k', '--port', str(port), '--listen-address=127.0.0.1', '--bind-interfaces',
    '--no-resolv', '--no-hosts', '--conf-file=/dev/null', '--pid-file=',
    '--address=/example.test/192.0.2.7', '--address=/example.test/2001:db8::7',
    '--txt-record=txt.example.test,"hello world"', '--mx-host=example.test,mail.example.test,10'],
    stderr=subprocess.DEVNULL)
time.sleep(0.5)
def q(name, qtype, tcp=False):
    msg = struct.pack('>HHHHHH', 0x1234, 0x0100, 1, 0, 0, 0)
    for l in name.split('.'):
        msg += bytes([len(l)]) + l.encode()
    msg += b'\0' + struct.pack('>HH', qtype, 1)
    if tcp:
        s = socket.create_connection(('127.0.0.1', port)); s.sendall(struct.pack('>H', len(msg)) + msg)
        n = struct.unpack('>H', s.recv(2))[0]; b = b''
        while len(b) < n: b += s.recv(n - len(b))
        return b
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
    s.sendto(msg, ('127.0.0.1', port)); return s.recv(4096)
put('dns', 'a-noerror', q('example.test', 1))
put('dns', 'aaaa-noerror', q('example.test', 28))
put('dns', 'mx-tcp', q('example.test', 15, tcp=True))
put('dns', 'txt', q('txt.example.test', 16))
put('dns', 'refused-or-nx', q('nothere.invalid', 1))
dm.terminate(); dm.wait()

# --- icmp: echo replies and an error, as the sockets return them
r = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); r.settimeout(2)
r.sendto(echo(1), ('127.0.0.1', 0))
got = []
while len(got) < 2:
    got.append(r.recv(2048))
# raw v4 sees our own request, then the reply
put('icmp', 'raw-v4-own-request', b'\x00' + got[0])
put('icmp', 'raw-v4-echo-reply', b'\x00' + got[1])
# port unreachable: a UDP datagram to a closed port
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.sendto(b'x', ('127.0.0.1', 9))
while True:
    b = r.recv(2048)
    if b[20] == 3: put('icmp', 'raw-v4-port-unreachable', b'\x00' + b); break
r6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6); r6.settimeout(2)
e6 = bytearray(echo(3)); e6[0] = 128; e6[2:4] = b'\0\0'
r6.sendto(bytes(e6), ('::1', 0))
while True:
    b = r6.recv(2048)
    if b[0] == 129: put('icmp', 'raw-v6-echo-reply', b'\x01' + b); break
# --- sock_diag: a real dump of TCP sockets (a listener and a connection so there are records)
ls = socket.socket(); ls.bind(('127.0.0.1', 0)); ls.listen(); c = socket.create_connection(ls.getsockname()); a, _ = ls.accept()
nl = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 4)
def dump(ty, body, seq):
    hdr = struct.pack('=IHHII', 16 + len(body), ty, 0x301, seq, 0)
    nl.send(hdr + body)
    out = []
    while True:
        b = nl.recv(65536); out.append(b)
        t = struct.unpack('=H', b[4:6])[0]
        if t in (2, 3): return out
        # last message in this datagram
        off = 0; last = None
        while off + 16 <= len(b):
            l, t = struct.unpack('=IH', b[off:off+6]); last = t; off += (l + 3) & ~3
        if last in (2, 3): return out
v2 = struct.pack('=BBBBI', socket.AF_INET, socket.IPPROTO_TCP, 0, 0, 0xfff) + bytes(48)
out = dump(20, v2, 7)
put('sock_diag', 'by-family-tcp4', b'\x00' + out[0])
if len(out) > 1: put('sock_diag', 'by-family-done', b'\x00' + out[-1])
compat = bytearray(60); compat[0] = socket.AF_INET; compat[52:56] = struct.pack('=I', 0xfff)
out = dump(18, bytes(compat), 8)
put('sock_diag', 'compat-tcp', b'\x01' + out[0])
bad = dump(20, v2[:20], 9)
put('sock_diag', 'error-einval', b'\x00' + bad[0])
# procstat's procstat_socket: TCP with the tcp_info attribute, and a unix dump with names,
# peers and queue lengths (a listening unix socket and a connection to it so there are some)
c.sendall(b'x' * 100); a.recv(100)
out = dump(20, struct.pack('=BBBBI', socket.AF_INET, socket.IPPROTO_TCP, 1 << 1, 0, 0xfff) + bytes(48), 10)
put('sock_diag', 'by-family-tcp4-info', b'\x00' + out[0])
us = socket.socket(socket.AF_UNIX); us.bind('\0capture-unix'); us.listen()
uc = socket.socket(socket.AF_UNIX); uc.connect('\0capture-unix'); ua, _ = us.accept()
out = dump(20, struct.pack('=BBHIIIII', socket.AF_UNIX, 0, 0, 0xffffffff, 0, 1 | 4 | 16, 0, 0), 11)
put('sock_diag', 'by-family-unix', b'\x00' + out[0])

# --- health: what real clients send
def capture_client(cmd):
    srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen()
    p = srv.getsockname()[1]
    proc = subprocess.Popen([x.replace('PORT', str(p)) for x in cmd], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    conn, _ = srv.accept(); conn.settimeout(2); data = b''
    while b'\r\n\r\n' not in data:
        data += conn.recv(4096)
    conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'); conn.close(); proc.wait(); return data
put('health', 'curl-healthz', b'\x00' + capture_client(['curl', '-s', 'http://127.0.0.1:PORT/healthz']))
put('health', 'curl-readyz-head', b'\x07' + capture_client(['curl', '-sI', 'http://127.0.0.1:PORT/readyz?verbose=1']))
put('health', 'python-version', b'\x3f' + capture_client(['python3', '-c', 'import urllib.request;urllib.request.urlopen("http://127.0.0.1:PORT/version")']))
put('health', 'lenient-post', b'\x01' + b'POST /healthz HTTP/1.0\n\n')

# --- procfs: real files of this machine, prefixed with their parser's index
def rd(p):
    return open(p, 'rb').read()
procfs = [
    (0, 'cpu-stat', rd('/proc/stat')), (1, 'meminfo', rd('/proc/meminfo')), (2, 'vmstat', rd('/proc/vmstat')),
    (3, 'kernel-stat', rd('/proc/stat')), (4, 'pressure-io', rd('/proc/pressure/io')),
    (5, 'diskstats', rd('/proc/diskstats')), (6, 'net-dev', rd('/proc/net/dev')),
    (7, 'net-flags-lo', rd('/sys/class/net/lo/flags')), (8, 'mountinfo', rd('/proc/self/mountinfo')),
    (10, 'pid-stat-processes', rd('/proc/self/stat')), (11, 'cgroup-cpu-stat', rd('/sys/fs/cgroup/cpu/cpu.stat') if os.path.exists('/sys/fs/cgroup/cpu/cpu.stat') else rd('/sys/fs/cgroup/cpu.stat')),
    (12, 'pid-stat-procstat', rd('/proc/1/stat')), (13, 'pid-status', rd('/proc/self/status')),
    (14, 'pid-io', rd('/proc/self/io')), (15, 'smaps-rollup', rd('/proc/self/smaps_rollup')),
    (16, 'loadavg', rd('/proc/loadavg')), (16, 'uptime', rd('/proc/uptime')),
    (17, 'cpu-online', rd('/sys/devices/system/cpu/online')), (19, 'net-tcp', rd('/proc/net/tcp')),
    (19, 'sockstat', rd('/proc/net/sockstat')), (20, 'pid-limits', rd('/proc/self/limits')),
]
st = os.statvfs('/')
procfs.append((9, 'statvfs-root', b''.join(struct.pack('>Q', v) for v in (st.f_blocks, st.f_bfree, st.f_bavail, st.f_frsize, st.f_files, st.f_ffree))))
wtmp = '/var/log/wtmp'
if os.path.exists(wtmp) and os.path.getsize(wtmp) >= 384:
    procfs.append((18, 'utmp-records', rd(wtmp)[:384 * 4]))
# supervisorctl status of a supervisord the procstat tests run (captured there)
fixture = os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../tests/fixtures/procstat/supervisorctl_status')
procfs.append((21, 'supervisorctl-status', rd(fixture)))
for i, name, data in procfs:
    put('procfs', f'{i:02}-{name}', bytes([i]) + data)

# --- x509: sources, a PEM file and a DER certificate
put('x509', 'source-https', b'\x00https://example.test:8443/')
put('x509', 'source-file', b'\x00file:///etc/ssl/certs/ca-certificates.crt')
put('x509', 'source-tcp-v6', b'\x00tcp://[::1]:993')

# --- x509: a PEM file (a system CA), a chain, DER certificates
def der(pem_path):
    return subprocess.run(['openssl', 'x509', '-in', pem_path, '-outform', 'der'], check=True, capture_output=True).stdout
isrg2 = rd('/etc/ssl/certs/ISRG_Root_X2.pem')
put('x509', 'pem-isrg-root-x2', b'\x01' + isrg2)
subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
    '-keyout', '/tmp/capture-leaf.key', '-subj', '/CN=agent.example.test/O=Example/C=DE',
    '-addext', 'subjectAltName=DNS:agent.example.test,IP:127.0.0.1,IP:::1', '-days', '30',
    '-out', '/tmp/capture-leaf.pem'], check=True, capture_output=True)
put('x509', 'der-leaf-ec-san', b'\x02' + der('/tmp/capture-leaf.pem'))
put('x509', 'der-isrg-root-x1-rsa', b'\x02' + der('/etc/ssl/certs/ISRG_Root_X1.pem'))
put('x509', 'pem-chain', b'\x01' + rd('/tmp/capture-leaf.pem') + isrg2)

# --- utmp: no login records on a container; two records in the kernel's layout (384 bytes:
# type at 0, user name at 44), a USER_PROCESS (7) and a DEAD_PROCESS (8)
rec = bytearray(384); rec[0:2] = struct.pack('=h', 7); rec[44:48] = b'root'
rec2 = bytearray(384); rec2[0:2] = struct.pack('=h', 8)
put('procfs', '18-utmp-user-process', bytes([18]) + bytes(rec) + bytes(rec2))

# --- the datagram ICMP sockets, in a namespace of their own
subprocess.run(['unshare', '-n', 'sh', '-c', 'ip link set lo up && sysctl -qw net.ipv4.ping_group_range="0 0" && exec python3 "$0" "$1"', sys.argv[0], root],
    env=dict(os.environ, CAPTURE_DGRAM='1'), check=True)
