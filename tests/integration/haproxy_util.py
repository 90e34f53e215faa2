"""HAProxy on loopback for the PROXY protocol and load-balancer tests: writes a configuration,
runs `haproxy -db` in the foreground, and waits until every frontend accepts."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
import unittest

import harness


def haproxy_bin():
    b = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if not b:
        raise unittest.SkipTest("haproxy is not installed (scripts/deps.sh --test installs it)")
    return b


class HAProxy:
    """with HAProxy(cfg_text, ports=[...]) as h: ...  `cfg_text` is the part after `defaults`;
    `ports` are the frontends' ports, waited for before the block runs."""

    def __init__(self, body, ports, stats_socket=False):
        self.body = body
        self.ports = ports
        self.proc = None
        self.tmp = tempfile.mkdtemp(prefix="h2t-haproxy-")
        self.sock = os.path.join(self.tmp, "admin.sock") if stats_socket else None

    def config(self):
        g = "global\n  maxconn 1000\n"
        if self.sock:
            g += "  stats socket %s mode 600 level admin\n" % self.sock
        return (g + "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 120s\n"
                "  timeout server 120s\n  timeout check 2s\n\n" + self.body)

    def __enter__(self):
        path = os.path.join(self.tmp, "haproxy.cfg")
        with open(path, "w") as f:
            f.write(self.config())
        self.err_path = os.path.join(self.tmp, "haproxy.err")
        with open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen([haproxy_bin(), "-db", "-f", path], stdin=subprocess.DEVNULL,
                                         stdout=err, stderr=err)
        deadline = time.time() + 20
        for port in self.ports:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError("haproxy exited: %s" % self.stderr())
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise RuntimeError("haproxy not listening on %d: %s" % (port, self.stderr()))
                    time.sleep(0.05)
        # The admin socket may be bound after the frontends: wait for it too.
        while self.sock:
            if self.proc.poll() is not None:
                raise RuntimeError("haproxy exited: %s" % self.stderr())
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(2)
                    s.connect(self.sock)
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("haproxy admin socket %s missing: %s" % (self.sock, self.stderr()))
                time.sleep(0.05)
        return self

    def stderr(self):
        try:
            with open(self.err_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def command(self, cmd):
        """One command on the admin socket (stats_socket=True); returns the answer."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(self.sock)
            s.sendall(cmd.encode() + b"\n")
            out = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                out += d
        return out.decode(errors="replace")

    def wait_server_state(self, backend, server, want, timeout=30):
        """Waits until `show servers state` says `server` of `backend` is UP (want=2) or DOWN (0)."""
        deadline = time.time() + timeout
        last = ""
        while time.time() < deadline:
            try:
                last = self.command("show servers state %s" % backend)
            except OSError as e:  # the admin socket is not there yet: haproxy is still starting
                last = repr(e)
                time.sleep(0.1)
                continue
            for ln in last.splitlines():
                f = ln.split()
                if len(f) > 5 and f[1] == backend and f[3] == server and f[5] == str(want):
                    return
            time.sleep(0.1)
        raise AssertionError("haproxy %s/%s not in state %d: %s" % (backend, server, want, last))

    def __exit__(self, *a):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)
        return False


def dial_from(src, port, timeout=10):
    """A TCP connection to 127.0.0.1:`port` from the loopback address `src` (the client address
    the test expects to see arrive through the balancer)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def free_ports(n):
    return [harness.free_port() for _ in range(n)]
