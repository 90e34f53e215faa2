#!/usr/bin/env python3
"""Binary upgrade without refusing a connection (issue 13 item 2; README "Upgrading without
downtime"): a new process started with the same --upgrade-socket takes the running one's
listening sockets, and the old one drains and exits.

The load test counts every connection of a steady stream (four client threads opening CONNECT
tunnels and echoing through them) while the new process starts and the old one stops: none may
be refused or reset, every echo is byte-exact, and tunnels open on the old process before the
switch keep working until they end. It also checks what makes that hold whatever the timing:
every listening socket the old process had is still open after it exited (no socket of the
SO_REUSEPORT group was closed, so no queued connection could be reset).
Spec IDs: H1C-01 (CONNECT 200 then bytes), H2C-01 (HTTP/2 CONNECT), H2-GOAWAY (a stopping
process ends its HTTP/2 connections with GOAWAY while their streams finish)."""

import os
import random
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import EchoOrigin, Proxy, open_tunnel, recv_exact  # noqa: E402
from h2util import H2Client  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402


class GoawayTolerantClient(H2Client):
    """python-h2 4.1 closes its connection state machine on any GOAWAY, although RFC 9113 §6.8
    lets the streams up to last_stream_id finish (H2-GOAWAY): this client keeps it open, so that a
    tunnel on the old process can be used after that process sent its GOAWAY."""

    def _event(self, ev):
        super()._event(ev)
        if isinstance(ev, h2.events.ConnectionTerminated):
            self.c.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN


class Successor(Proxy):
    """A proxy started on the ports (and dev CA) of |old|, to take over from it."""

    def __init__(self, old, sock, workers, extra=()):
        super().__init__(args=["--upgrade-socket", sock] + list(extra), workers=workers,
                         tcp=old.want_tcp, tls=old.want_tls)
        self.old = old

    def argv(self):
        # Proxy.start picks free ports: the successor must use the old process's instead.
        self.tcp_port, self.tls_port = self.old.tcp_port, self.old.tls_port
        self.state_dir = self.old.state_dir
        return super().argv()


def listening_inodes(port):
    """Inodes of the listening TCP sockets on 127.0.0.1:|port| (/proc/net/tcp, state 0A)."""
    out = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for ln in f:
            p = ln.split()
            if p[3] == "0A" and int(p[1].split(":")[1], 16) == port:
                out.add(int(p[9]))
    return out


def socket_inodes(pid):
    out = set()
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            t = os.readlink(os.path.join(d, fd))
        except OSError:
            continue
        if t.startswith("socket:["):
            out.add(int(t[8:-1]))
    return out


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


class Load:
    """Four threads opening, echoing through and closing CONNECT tunnels until stopped; every
    outcome is counted (a refused or reset connection, a wrong byte, any other failure)."""

    def __init__(self, port, origin, tls_port=None, ca=None, threads=4):
        self.port, self.origin, self.tls_port, self.ca = port, origin, tls_port, ca
        self.lock = threading.Lock()
        self.ok = 0
        self.failures = []  # (kind, detail)
        self.stopping = False
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()

    def stop(self):
        self.stopping = True
        for t in self.threads:
            t.join(120)

    def done(self):
        with self.lock:
            return self.ok + len(self.failures)

    def _one(self, rnd, n):
        tls = self.tls_port and n % 8 == 7  # one in eight through the TLS listener
        payload = rnd.randbytes(rnd.randint(1, 16 * 1024))
        s = open_tunnel(self.tls_port if tls else self.port, self.origin.addr, tls_ca=self.ca if tls else None,
                        timeout=60)
        try:
            s.sendall(payload)
            got = recv_exact(s, len(payload), timeout=60)
            if got != payload:
                return ("corrupt", "%d bytes differ" % len(payload))
        finally:
            s.close()
        return None

    def _run(self, idx):
        rnd = random.Random(idx)
        n = 0
        while not self.stopping:
            n += 1
            try:
                bad = self._one(rnd, n)
            except ConnectionRefusedError as e:
                bad = ("refused", repr(e))
            except (ConnectionResetError, BrokenPipeError) as e:
                bad = ("reset", repr(e))
            except Exception as e:  # noqa: BLE001 - every failure is counted and shown
                bad = ("error", repr(e))
            with self.lock:
                if bad:
                    self.failures.append(bad)
                else:
                    self.ok += 1


class LongTunnels:
    """Tunnels opened on the old process before the switch: three HTTP/1.1 CONNECT (two on the
    cleartext listener, one on TLS) and one HTTP/2 CONNECT stream; each echoes a round now and
    one after the switch, then ends with a FIN."""

    def __init__(self, proxy, origin):
        self.h1 = [open_tunnel(proxy.tcp_port, origin.addr, timeout=30) for _ in range(2)]
        self.h1.append(open_tunnel(proxy.tls_port, origin.addr, tls_ca=proxy.ca, timeout=30))
        self.h2 = GoawayTolerantClient(proxy.tls_port, tls_ca=proxy.ca, timeout=30)
        self.sid = self.h2.open_tunnel(origin.addr, timeout=30)
        self.sent = 0
        self.round(b"before")

    def round(self, tag):
        for i, s in enumerate(self.h1):
            data = tag + b"-%d-" % i + os.urandom(20000)
            s.sendall(data)
            assert recv_exact(s, len(data), timeout=60) == data
        data = tag + os.urandom(30000)
        self.h2.send_all(self.sid, data, timeout=60)
        self.sent += len(data)
        st = self.h2.streams[self.sid]
        self.h2.wait(lambda: st.received >= self.sent, 60, "h2 echo")
        assert bytes(st.data[self.sent - len(data):self.sent]) == data, "h2 tunnel echo differs"

    def finish(self):
        for s in self.h1:
            if isinstance(s, ssl.SSLSocket):  # close_notify is the FIN; the proxy answers with its own
                s.settimeout(60)
                s.unwrap()
                s.close()
                continue
            s.shutdown(socket.SHUT_WR)
            rest = harness.recv_until_eof(s, timeout=60)
            assert rest == b"", "after the last echo, before the FIN: %r" % rest[:200]  # nothing more
            s.close()
        self.h2.send_all(self.sid, b"", end_stream=True)
        st = self.h2.wait_closed(self.sid, timeout=60)
        assert st.reset is None, "h2 tunnel stream reset: %r" % st.reset
        assert self.h2.goaway and self.h2.goaway[0] == 0, "the old process's GOAWAY: %r" % (self.h2.goaway,)
        self.h2.close()


class UpgradeTest(unittest.TestCase):
    def setUp(self):
        harness.raise_nofile(8192)
        self.tmp = tempfile.mkdtemp(prefix="h2t-upg-")
        self.sock = os.path.join(self.tmp, "upgrade.sock")

    def tearDown(self):
        import shutil
        shutil.rmtree(self.tmp, ignore_errors=True)

    def test_upgrade_under_load(self):
        """2,000+ tunnels from 4 threads across the switch: zero refused, zero reset, every echo
        byte-exact; the old process's tunnels finish intact and it exits 0 by itself."""
        with EchoOrigin() as origin:
            old = Proxy(["--upgrade-socket", self.sock], workers=2)
            old.start()
            new = None
            load = None
            try:
                before = listening_inodes(old.tcp_port) & socket_inodes(old.pid)
                self.assertEqual(len(before), 2, "one listening socket per worker")
                longs = LongTunnels(old, origin)
                load = Load(old.tcp_port, origin, old.tls_port, old.ca)
                load.start()
                wait_for(lambda: load.done() >= 400, 300, "400 tunnels before the switch")
                at_switch = load.done()

                # Three workers for two handed-over sockets: the third binds its own.
                new = Successor(old, self.sock, workers=3)
                new.start()
                wait_for(lambda: "binary upgrade: pid %d took over" % new.pid in old.stderr(), 60,
                         "the old process to hear READY")
                self.assertIn("took 4 listening socket(s) from pid %d" % old.pid, new.stderr())  # 2 workers x 2 listeners
                self.assertTrue(old.alive(), "the old process waits for its tunnels")
                longs.round(b"after")  # the old process's tunnels still carry bytes both ways
                longs.finish()
                rc = old.proc.wait(timeout=60)
                self.assertEqual(rc, 0, old.stderr()[-3000:])
                at_exit = load.done()
                wait_for(lambda: load.done() >= max(2000, at_exit + 400), 600, "2,000 tunnels in all")
                load.stop()

                after = listening_inodes(old.tcp_port)
                self.assertTrue(before <= after, "a listening socket of the old process was closed: "
                                "its queued connections would have been reset")
                self.assertEqual(after, listening_inodes(old.tcp_port) & socket_inodes(new.pid))
                self.assertEqual(len(after), 3)
                print("upgrade under load: %d tunnels (%d before the switch, %d before the old process "
                      "exited), failures: %d" % (load.done(), at_switch, at_exit, len(load.failures)))
                kinds = {}
                for k, d in load.failures:
                    kinds.setdefault(k, []).append(d)
                self.assertEqual(load.failures, [], {k: (len(v), v[:5]) for k, v in kinds.items()})
                self.assertGreater(load.ok, 2000 - 1)
                self.assertNotIn("no listener on", new.stderr())
            finally:
                if load and not load.stopping:
                    load.stop()
                if new:
                    new.stop()
                old.stop()

    def test_generations_keep_the_socket_count(self):
        """Upgrades chained 2 -> 3 -> 1 workers: the sockets of the group are handed on, never
        closed, and their number stays the largest worker count (not a sum)."""
        with EchoOrigin() as origin:
            procs = [Proxy(["--upgrade-socket", self.sock], workers=2, tls=False)]
            procs[0].start()
            try:
                first = listening_inodes(procs[0].tcp_port)
                for workers, count in ((3, 3), (1, 3)):
                    prev = procs[-1]
                    nxt = Successor(prev, self.sock, workers=workers)
                    procs.append(nxt)
                    nxt.start()
                    self.assertEqual(prev.proc.wait(timeout=60), 0, prev.stderr()[-3000:])
                    now = listening_inodes(prev.tcp_port)
                    self.assertTrue(first <= now)
                    self.assertEqual(len(now), count, now)
                    s = open_tunnel(nxt.tcp_port, origin.addr, timeout=30)
                    s.sendall(b"ping")
                    self.assertEqual(recv_exact(s, 4, timeout=30), b"ping")
                    s.close()
                self.assertTrue(os.path.exists(self.sock))
            finally:
                for p in reversed(procs):
                    p.stop()
            self.assertFalse(os.path.exists(self.sock), "the last process removes its socket")

    def test_failed_successor_changes_nothing(self):
        """A new process that takes the sockets but cannot start (a new listener's port is in use)
        exits 1 without READY: the old one keeps serving and can still be upgraded."""
        with EchoOrigin() as origin:
            old = Proxy(["--upgrade-socket", self.sock], workers=2, tls=False)
            old.start()
            blocker = socket.socket()
            blocker.bind(("127.0.0.1", 0))
            blocker.listen(1)
            try:
                bad = Successor(old, self.sock, workers=1,
                                extra=["--listen", "tcp://127.0.0.1:%d" % blocker.getsockname()[1]])
                bad.tmp = tempfile.mkdtemp(prefix="h2t-itest-")
                bad.state_dir = old.state_dir
                bad.access_log_path = os.path.join(bad.tmp, "access.log")
                bad.stderr_path = os.path.join(bad.tmp, "stderr.log")
                with open(bad.stderr_path, "ab") as err:
                    rc = subprocess.run(bad.argv(), stdin=subprocess.DEVNULL, stderr=err, timeout=60).returncode
                self.assertEqual(rc, 1, bad.stderr())
                self.assertIn("took 2 listening socket(s)", bad.stderr())
                self.assertEqual(bad.sanitizer_reports(), [], bad.stderr())
                wait_for(lambda: "ended without starting: still serving" in old.stderr(), 30, "the old process's log")
                self.assertTrue(old.alive())
                s = open_tunnel(old.tcp_port, origin.addr, timeout=30)
                s.sendall(b"still")
                self.assertEqual(recv_exact(s, 5, timeout=30), b"still")
                s.close()
                good = Successor(old, self.sock, workers=2)
                good.start()
                self.assertEqual(old.proc.wait(timeout=60), 0)
                good.stop()
            finally:
                blocker.close()
                old.stop()


if __name__ == "__main__":
    harness.main()
