"""The memory budget (--memory-limit, issue 12 item 4; README "Memory budget").

Many stalled tunnels against a small budget: 2,000 HTTP/2 streams over 20 connections and 500
HTTP/1.1 tunnels, each with an origin pushing a download as fast as it can and a client that does
not take it (HTTP/2: no WINDOW_UPDATE ever; HTTP/1.1: a socket never read). The proxy must keep
its buffers within the budget (shrinking water marks and windows as it fills), refuse the tunnels
it cannot afford with 429 (Proxy-Status details, a log line, a metric: checklist PS-01), keep its
RSS under the budget plus a stated fixed overhead, and admit new tunnels again once the stalled
ones are gone. Correctness only: no timing is asserted; every wait is on an event with a generous
deadline.
"""
import os
import selectors
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (EchoOrigin, KiB, MiB, Proxy, TunnelRefused, main, open_tunnel,  # noqa: E402
                     raise_nofile, recv_exact)
from h2util import H2Client, echo_roundtrip, memory_env  # noqa: E402

LIMIT = 64 * MiB
H2_CONNS, H2_STREAMS, H1_TUNNELS = 20, 100, 500
# What the budget does not count, per admitted tunnel: the tunnel, stream/connection and endpoint
# structures, the upstream socket's and (h1) client conn's state, ASan's redzones and shadow for
# them; plus a fixed part for the allocator's arenas and the pool caches.
PER_TUNNEL_OVERHEAD = 48 * KiB
FIXED_OVERHEAD = 24 * MiB


class PushOrigin:
    """Accepts any number of connections and writes to each as fast as it drains, never reading
    what comes: an origin pushing a download. One thread, one selector, for thousands of
    sockets. A connection the proxy closes is closed here too."""

    def __init__(self):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4096)
        self.lsock.setblocking(False)
        self.addr = "127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.lsock, selectors.EVENT_READ)
        self.open = 0
        self.accepted = 0
        self.pushed = 0
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _drop(self, c):
        self.sel.unregister(c)
        c.close()
        self.open -= 1

    def _run(self):
        block = b"\x5a" * (64 * KiB)
        while not self.stopping:
            for key, ev in self.sel.select(0.2):
                s = key.fileobj
                if s is self.lsock:
                    while True:
                        try:
                            c, _ = self.lsock.accept()
                        except (BlockingIOError, OSError):
                            break
                        c.setblocking(False)
                        c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * KiB)
                        self.sel.register(c, selectors.EVENT_READ | selectors.EVENT_WRITE)
                        self.open += 1
                        self.accepted += 1
                    continue
                try:
                    if ev & selectors.EVENT_READ and not s.recv(65536):
                        self._drop(s)
                        continue
                    if ev & selectors.EVENT_WRITE:
                        self.pushed += s.send(block)
                except BlockingIOError:
                    pass
                except OSError:
                    self._drop(s)

    def close(self):
        self.stopping = True
        self.thread.join()
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()


def memory_metrics(p):
    m = p.metrics()
    return {k[len("h2tunnel_memory_"):]: v for k, v in m.items() if k.startswith("h2tunnel_memory_")}


class MemoryBudgetTest(unittest.TestCase):
    def test_stalled_tunnels_stay_within_the_budget_and_later_ones_get_429(self):
        raise_nofile(16384)
        origin = PushOrigin()
        clients, h1_socks = [], []
        try:
            with memory_env(), Proxy(["--memory-limit", "64m", "--h2-max-streams", "1000"]) as p, \
                    EchoOrigin() as echo:
                # Warm up (allocator, pool) before the baseline.
                s = p.tunnel(echo.addr)
                s.sendall(b"warm")
                self.assertEqual(recv_exact(s, 4), b"warm")
                s.close()
                p.wait_access_log(lambda r: r.get("target") == echo.addr)
                rss0 = p.rss_kib()

                h2_ok = h2_refused = h1_ok = h1_refused = 0
                refusal = None
                for i in range(H2_CONNS):
                    cli = H2Client(p.tcp_port)
                    clients.append(cli)
                    cli.wait_settings()
                    sids = [cli.connect(origin.addr, keep=False, ack=False) for _ in range(H2_STREAMS)]
                    for sid in sids:
                        st = cli.wait_response(sid, timeout=60)
                        if st.status == 200:
                            h2_ok += 1
                        else:
                            self.assertEqual(st.status, 429, st)
                            refusal = refusal or st.headers
                            h2_refused += 1
                    for _ in range(H1_TUNNELS // H2_CONNS):
                        try:
                            h1_socks.append(open_tunnel(p.tcp_port, origin.addr, rcvbuf=4 * KiB, timeout=60))
                            h1_ok += 1
                        except TunnelRefused as e:
                            self.assertEqual(e.resp.status, 429)
                            self.assertEqual(e.resp.header("retry-after"), "1")
                            self.assertIn('details="memory budget exhausted"', e.resp.header("proxy-status"))
                            h1_refused += 1

                # Let the pushes settle: the budget's bytes stop growing (every admitted tunnel is
                # stalled at its water mark). Generous deadline; each poll is an event, not a tuned
                # sleep.
                last, stable, deadline = -1, 0, time.monotonic() + 120
                while stable < 4 and time.monotonic() < deadline:
                    time.sleep(0.5)
                    held = memory_metrics(p)["buffered_bytes"]
                    stable = stable + 1 if abs(held - last) < 1 * MiB else 0
                    last = held
                mm = memory_metrics(p)
                rss1 = p.rss_kib()
                admitted = h2_ok + h1_ok
                grew = rss1 - rss0
                allowed = LIMIT // KiB + admitted * PER_TUNNEL_OVERHEAD // KiB + FIXED_OVERHEAD // KiB
                sys.stderr.write(
                    "\n  budget 64 MiB: h2 %d admitted / %d refused, h1 %d / %d; origin pushed %.1f MiB, "
                    "buffered %.1f MiB (peak %.1f), RSS %d -> %d KiB (+%.1f MiB; allowed %.1f MiB = budget + "
                    "%d KiB x %d tunnels + %d MiB)\n"
                    % (h2_ok, h2_refused, h1_ok, h1_refused, origin.pushed / MiB, mm["buffered_bytes"] / MiB,
                       mm["buffered_peak_bytes"] / MiB, rss0, rss1, grew / 1024.0, allowed / 1024.0,
                       PER_TUNNEL_OVERHEAD // KiB, admitted, FIXED_OVERHEAD // MiB))

                # Both front ends were admitted while there was room, and refused after.
                self.assertGreater(h2_ok, 0)
                self.assertGreater(h1_ok, 0)
                self.assertGreater(h2_refused + h1_refused, 0)
                self.assertEqual(mm["rejections_total"], h2_refused + h1_refused)
                self.assertEqual(mm["tunnels"], admitted)
                self.assertIsNotNone(refusal)
                self.assertEqual(refusal.get("retry-after"), "1")
                self.assertIn('details="memory budget exhausted"', refusal.get("proxy-status", ""))
                self.assertIn("memory budget tight", p.stderr())
                # The tunnels really are stalled with bytes held, and the proxy kept them within
                # the budget: the buffers it counts, and its RSS with the stated overhead.
                self.assertGreater(origin.pushed, 64 * MiB)
                self.assertLessEqual(mm["buffered_peak_bytes"], LIMIT)
                self.assertLess(grew, allowed, "RSS grew by %d KiB" % grew)

                # The stalled ones go: everything is given back, and new tunnels work again.
                for cli in clients:
                    cli.close()
                for s in h1_socks:
                    s.close()
                clients, h1_socks = [], []
                deadline = time.monotonic() + 120
                while memory_metrics(p)["tunnels"] > 0 and time.monotonic() < deadline:
                    time.sleep(0.2)
                mm = memory_metrics(p)
                self.assertEqual(mm["tunnels"], 0)
                self.assertLessEqual(mm["buffered_bytes"], 4 * MiB)  # the pool's cache, at most
                s = p.tunnel(echo.addr)
                s.sendall(b"after")
                self.assertEqual(recv_exact(s, 5), b"after")
                s.close()
                with H2Client(p.tcp_port) as cli:
                    sids = [cli.open_tunnel(echo.addr) for _ in range(50)]
                    for sid in sids[:3]:
                        self.assertEqual(echo_roundtrip(cli, sid, b"x" * (100 * KiB)), b"x" * (100 * KiB))
                self.assertEqual(memory_metrics(p)["rejections_total"], h2_refused + h1_refused)
        finally:
            for cli in clients:
                cli.close()
            for s in h1_socks:
                s.close()
            origin.close()


if __name__ == "__main__":
    main()
