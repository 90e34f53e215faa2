#!/usr/bin/python3
"""Smoke tests of h2tunnel-load against a loopback h2tunnel and its own loopback origins.

Checks that counts add up, errors are reported (status, Proxy-Status, exit code), and that the tool
stops on time: on -d, on a stuck proxy (--timeout) and when the proxy dies. Not a benchmark.

Env: H2TUNNEL_BIN (the proxy), H2TUNNEL_LOAD_BIN (the tool; default: load/h2tunnel-load next to
the proxy binary).
"""
import base64
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

PROXY_BIN = os.environ.get("H2TUNNEL_BIN", "")
# The suite runs on busy machines: wall-clock bounds only tell "stopped on its own" from "hung"
# (every run here would take minutes, or forever, without the bound under test); the tool's own
# elapsed_s carries the tighter check, with slack for a loaded scheduler.
NOT_HUNG = 30.0
SLACK = 2.0
LOAD_BIN = os.environ.get("H2TUNNEL_LOAD_BIN") or os.path.join(
    os.path.dirname(PROXY_BIN), "load", "h2tunnel-load")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthz(port, proc, deadline=20.0):
    end = time.time() + deadline
    while time.time() < end:
        if proc.poll() is not None:
            raise RuntimeError("proxy exited with %s" % proc.returncode)
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError("proxy did not become healthy")


def start_proxy(tmp):
    tcp, tls = free_port(), free_port()
    proc = subprocess.Popen(
        [PROXY_BIN, "--listen", "tcp://127.0.0.1:%d" % tcp, "--listen", "tls://127.0.0.1:%d" % tls,
         "--state-dir", tmp, "--allow-net", "loopback", "--allow-ports", "*", "--workers", "1",
         "--access-log", os.devnull, "--log-level", "warn"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_healthz(tcp, proc)
    return proc, tcp, tls


def start_origin(kind):
    proc = subprocess.Popen([LOAD_BIN, "--origin", kind, "--listen", "127.0.0.1:0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    m = re.search(r"listening on 127\.0\.0\.1:(\d+)", line)
    if not m:
        raise RuntimeError("origin %s did not start: %r" % (kind, line))
    return proc, int(m.group(1))


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class FakeProxy:
    """A TCP listener that reads one request head per connection and answers |reply| (or never
    answers when |reply| is None). Records the heads it saw."""

    def __init__(self, reply):
        self.reply = reply
        self.heads = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.done = False
        threading.Thread(target=self.run, daemon=True).start()

    def run(self):
        while not self.done:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            buf = b""
            c.settimeout(5)
            try:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(4096)
                    if not d:
                        break
                    buf += d
            except OSError:
                pass
            self.heads.append(buf.decode("latin-1"))
            if self.reply is not None:
                try:
                    c.sendall(self.reply)
                    c.close()
                except OSError:
                    pass

    def close(self):
        self.done = True
        self.sock.close()
        for c in self.conns:
            c.close()


class LoadTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="h2t-load-")
        cls.procs = []
        cls.proxy, cls.tcp, cls.tls = start_proxy(cls.tmp)
        cls.procs.append(cls.proxy)
        cls.ports = {}
        for kind in ("echo", "source", "sink", "udp-echo"):
            p, port = start_origin(kind)
            cls.procs.append(p)
            cls.ports[kind] = port
        cls.ca = os.path.join(cls.tmp, "ca.pem")

    @classmethod
    def tearDownClass(cls):
        for p in cls.procs:
            stop(p)
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def proxy_url(self, kind):
        return {"h1": "http://127.0.0.1:%d" % self.tcp,
                "h1tls": "https://127.0.0.1:%d" % self.tls,
                "h2": "h2://127.0.0.1:%d" % self.tls,
                "h2c": "h2c://127.0.0.1:%d" % self.tcp}[kind]

    def load(self, *args, timeout=60, expect_rc=0):
        t0 = time.monotonic()
        r = subprocess.run([LOAD_BIN, "--progress", "0", *args], capture_output=True, text=True,
                           timeout=timeout)
        wall = time.monotonic() - t0
        lines = [l for l in r.stdout.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, "exactly one JSON line on stdout: %r\n%s" %
                         (r.stdout, r.stderr))
        d = json.loads(lines[0])
        if expect_rc is not None:
            self.assertEqual(r.returncode, expect_rc, r.stderr)
        return d, wall, r

    def run_mode(self, proto, *args, **kw):
        extra = ["--cacert", self.ca] if proto in ("h1tls", "h2") else []
        return self.load("--proxy", self.proxy_url(proto), *extra, *args, **kw)

    # --- counts add up ---------------------------------------------------------------------

    def test_rate_counts(self):
        for proto, shape in (("h1", ["-c", "4"]), ("h1tls", ["-c", "4"]),
                             ("h2", ["-c", "2", "-m", "8"]), ("h2c", ["-c", "2", "-m", "8"])):
            with self.subTest(proto=proto):
                n = 40 if proto == "h1tls" else 300
                d, _, _ = self.run_mode(proto, "--mode", "rate", "-n", str(n), *shape,
                                        "--target", "127.0.0.1:%d" % self.ports["echo"])
                self.assertEqual(d["tunnels"], n)
                self.assertEqual(d["tunnels_started"], n)
                self.assertEqual(d["round_trips"], n)
                self.assertEqual(d["errors"], 0)
                self.assertEqual(d["bytes_down"], 64 * n)
                self.assertGreater(d["p50_us"], 0)
                self.assertLessEqual(d["p50_us"], d["p99_us"])

    def test_bulk(self):
        size = 8 * 1024 * 1024
        for proto in ("h1", "h2"):
            for direction, origin in (("down", "source"), ("up", "sink"), ("both", "echo")):
                with self.subTest(proto=proto, direction=direction):
                    d, _, _ = self.run_mode(proto, "--mode", "bulk", "--size", "8m", "-n", "2",
                                            "--direction", direction,
                                            "--target", "127.0.0.1:%d" % self.ports[origin])
                    self.assertEqual(d["tunnels"], 2)
                    self.assertEqual(d["errors"], 0)
                    if direction in ("down", "both"):
                        self.assertEqual(d["bytes_down"], 2 * size)
                        self.assertGreater(d["mbps_down"], 0)
                    if direction in ("up", "both"):
                        self.assertEqual(d["bytes_up"], 2 * size)

    def test_rr(self):
        d, _, _ = self.run_mode("h2", "--mode", "rr", "-n", "1000", "-c", "1", "-m", "4",
                                "--target", "127.0.0.1:%d" % self.ports["echo"])
        self.assertEqual(d["round_trips"], 1000)
        self.assertEqual(d["tunnels"], 4)
        self.assertEqual(d["errors"], 0)
        self.assertGreater(d["rtt_p50_us"], 0)

    def test_idle(self):
        d, wall, _ = self.run_mode("h2", "--mode", "idle", "-d", "1", "-c", "5", "-m", "10",
                                   "--target", "127.0.0.1:%d" % self.ports["echo"])
        self.assertEqual(d["tunnels"], 50)
        self.assertEqual(d["tunnels_open_max"], 50)
        self.assertEqual(d["errors"], 0)
        self.assertGreaterEqual(d["elapsed_s"], 1.0)
        self.assertLess(wall, NOT_HUNG)
        d, _, _ = self.run_mode("h1", "--mode", "idle", "-d", "0.5", "-c", "20",
                                "--target", "127.0.0.1:%d" % self.ports["echo"])
        self.assertEqual(d["tunnels"], 20)

    def test_udp(self):
        d, _, _ = self.run_mode("h2", "--mode", "udp", "-n", "1000", "-c", "1", "-m", "2",
                                "--target", "127.0.0.1:%d" % self.ports["udp-echo"])
        self.assertEqual(d["dgrams_sent"], 1000)
        self.assertLessEqual(d["loss"], 0.01)
        self.assertGreaterEqual(d["dgrams_rcvd"], 990)
        self.assertEqual(d["errors"], 0)
        self.assertEqual(d["tunnels"], 2)

    # --- errors are reported ------------------------------------------------------------------

    def test_closed_port_is_502(self):
        closed = free_port()
        for proto in ("h1", "h2c"):
            with self.subTest(proto=proto):
                d, wall, _ = self.run_mode(proto, "-n", "20", "--target", "127.0.0.1:%d" % closed,
                                           expect_rc=1)
                self.assertGreaterEqual(d["errors"], 1)
                self.assertGreaterEqual(d["status"].get("502", 0), 1)
                self.assertIn("connection_refused", d["proxy_status"])
                self.assertLess(wall, NOT_HUNG)

    def test_max_errors_tolerates(self):
        closed = free_port()
        d, _, _ = self.run_mode("h1", "-n", "10", "--max-errors", "100",
                                "--target", "127.0.0.1:%d" % closed, expect_rc=0)
        self.assertEqual(d["errors"], 10)
        self.assertEqual(d["status"].get("502"), 10)

    def test_dead_proxy(self):
        dead = free_port()
        for scheme in ("http", "h2c", "h2"):
            with self.subTest(scheme=scheme):
                d, wall, _ = self.load("--proxy", "%s://127.0.0.1:%d" % (scheme, dead),
                                       "--insecure", "-n", "5", "--target", "127.0.0.1:9",
                                       expect_rc=1)
                self.assertEqual(d["errors_by_kind"], {"connect": 1})
                self.assertIn("connection refused", d["first_error"])
                self.assertLess(wall, NOT_HUNG)
                # With errors tolerated, failed connection attempts still use up -n.
                d, wall, _ = self.load("--proxy", "%s://127.0.0.1:%d" % (scheme, dead),
                                       "--insecure", "-n", "20", "--max-errors", "1000",
                                       "--target", "127.0.0.1:9", expect_rc=0)
                self.assertEqual(d["errors"], 20)
                self.assertLess(wall, NOT_HUNG)

    def test_proxy_authorization_and_status(self):
        fake = FakeProxy(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                         b"Proxy-Status: fake; error=http_request_denied\r\n"
                         b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        try:
            d, _, _ = self.load("--proxy", "http://127.0.0.1:%d" % fake.port, "--proxy-user",
                                "user:pass", "-n", "1", "--target", "example.net:443",
                                expect_rc=1)
            self.assertEqual(d["status"], {"407": 1})
            self.assertIn("http_request_denied", d["proxy_status"])
            head = fake.heads[0]
            self.assertTrue(head.startswith("CONNECT example.net:443 HTTP/1.1\r\n"), head)
            self.assertIn("Proxy-Authorization: Basic " +
                          base64.b64encode(b"user:pass").decode(), head)
        finally:
            fake.close()

    # --- it stops on time ---------------------------------------------------------------------

    def test_duration_bound(self):
        for proto in ("h1", "h2c"):
            with self.subTest(proto=proto):
                d, wall, _ = self.run_mode(proto, "-d", "1", "-c", "4", "-m", "2",
                                           "--target", "127.0.0.1:%d" % self.ports["echo"])
                self.assertGreater(d["tunnels"], 10)
                self.assertEqual(d["errors"], 0)
                self.assertLess(d["elapsed_s"], 1 + SLACK)
                self.assertLess(wall, NOT_HUNG)
        d, wall, _ = self.run_mode("h2c", "--mode", "bulk", "--size", "100g", "-d", "1",
                                   "--target", "127.0.0.1:%d" % self.ports["source"])
        self.assertEqual(d["errors"], 0)
        self.assertEqual(d["tunnels_cut"], 1)
        self.assertGreater(d["bytes_down"], 0)
        self.assertLess(wall, NOT_HUNG)

    def test_stuck_proxy_times_out(self):
        fake = FakeProxy(None)
        try:
            for scheme in ("http", "h2c"):
                with self.subTest(scheme=scheme):
                    d, wall, _ = self.load("--proxy", "%s://127.0.0.1:%d" % (scheme, fake.port),
                                           "-n", "3", "--timeout", "1",
                                           "--target", "127.0.0.1:9", expect_rc=1)
                    self.assertGreaterEqual(d["errors_by_kind"].get("timeout", 0), 1)
                    self.assertLess(wall, NOT_HUNG)
        finally:
            fake.close()

    def test_proxy_killed_mid_run(self):
        tmp = tempfile.mkdtemp(prefix="h2t-load-kill-")
        try:
            for proto in ("http", "h2c"):
                with self.subTest(proto=proto):
                    proxy, tcp, _ = start_proxy(tmp)
                    threading.Timer(1.0, proxy.kill).start()
                    d, wall, _ = self.load("--proxy", "%s://127.0.0.1:%d" % (proto, tcp), "-d",
                                           "120", "-c", "4", "-m", "4", "--target",
                                           "127.0.0.1:%d" % self.ports["echo"], expect_rc=1)
                    proxy.wait()
                    self.assertGreaterEqual(d["errors"], 1)
                    self.assertTrue(d["first_error"])
                    self.assertLess(wall, NOT_HUNG)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    # --- CLI ------------------------------------------------------------------------------------

    def test_usage(self):
        r = subprocess.run([LOAD_BIN, "--mode", "nope"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        r = subprocess.run([LOAD_BIN, "--mode", "udp", "--proxy", "http://127.0.0.1:1"],
                           capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        r = subprocess.run([LOAD_BIN, "--help"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 0)
        for opt in ("--proxy", "--target", "--mode", "-c N", "-m N", "-t N", "-n COUNT",
                    "-d DURATION", "--size", "--direction", "--msg", "--cacert", "--insecure",
                    "--proxy-user", "--json", "--progress", "--origin", "--listen", "--timeout",
                    "--max-errors", "--window", "--h2"):
            self.assertIn(opt, r.stdout)


if __name__ == "__main__":
    if not os.path.exists(PROXY_BIN) or not os.path.exists(LOAD_BIN):
        print("H2TUNNEL_BIN / H2TUNNEL_LOAD_BIN not found: %r %r" % (PROXY_BIN, LOAD_BIN))
        sys.exit(1)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import harness  # noqa: E402
    harness.main()
