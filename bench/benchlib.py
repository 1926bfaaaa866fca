"""What the Python parts of the bench scripts share (they run from the repository's root)."""
import socket
import subprocess


def free_port():
    """A loopback TCP port nothing listens on right now."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def stop(procs):
    """SIGTERM first, so that servers stop their own children (nginx's master its workers;
    SIGKILL would orphan them), then SIGKILL whatever is still running after 5 s."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
