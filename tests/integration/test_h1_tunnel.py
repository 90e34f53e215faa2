#!/usr/bin/python3
"""HTTP/1.1 CONNECT tunnels: bulk data, backpressure, half-close, early data, concurrency.

Spec IDs: H1C-06 (200 then raw bytes), H1C-08 (early bytes after the head are tunnel payload),
H1C-11 (close / half-close forwarding), plus the proxy's backpressure contract (--high-water).
"""
import concurrent.futures
import hashlib
import os
import random
import socket
import struct
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import KiB, MiB  # noqa: E402

FIGURES = []  # measured numbers, printed at the end


def note(msg):
    FIGURES.append(msg)
    sys.stderr.write("  [figure] %s\n" % msg)


class Bulk(unittest.TestCase):
    """H1C-06 + data integrity: big transfers in both directions at once through one tunnel."""

    def setUp(self):
        self.proxy = H.Proxy()
        self.proxy.start()

    def tearDown(self):
        self.proxy.stop()

    def _both_ways(self, size, tls, read_pause=0.0):
        seed_up, seed_down = random.randrange(1 << 30), random.randrange(1 << 30)
        with H.StreamOrigin(send_bytes=size, seed=seed_down, read_pause=read_pause) as origin:
            s = self.proxy.tunnel(origin.addr, tls=tls)
            t0 = time.time()
            with s:
                if tls:
                    # TLS: read up to the proxy's close_notify (the origin's FIN), then send ours
                    # (unwrap). Closing with that close_notify unread would make the kernel answer
                    # with RST, and a reset tunnel may drop bytes still on their way upstream.
                    sent, got, sha = H.pump(s, H.prng_chunks(seed_up, size), expect=size,
                                            until_eof=True, timeout=240)
                    s.setblocking(True)
                    s.settimeout(60)
                    s.unwrap()
                else:
                    # Cleartext: client FIN after its last byte; origin FIN after its last byte.
                    sent, got, sha = H.pump(s, H.prng_chunks(seed_up, size), expect=size,
                                            until_eof=True, timeout=240)
            dt = time.time() - t0
            origin.wait_finished(1, timeout=60)
            res = origin.results[0]
        self.assertEqual(sent, size)
        self.assertEqual(got, size)
        self.assertEqual(sha, H.prng_sha256(seed_down, size), "downstream bytes corrupted")
        self.assertEqual(res["received"], size)
        self.assertEqual(res["sha256"], H.prng_sha256(seed_up, size), "upstream bytes corrupted")
        note("%s %d MiB each way concurrently: %.2fs, %.0f MiB/s aggregate"
             % ("tls" if tls else "tcp", size // MiB, dt, 2 * size / MiB / dt))
        rec = self.proxy.wait_access_log(lambda r: r.get("target") == origin.addr)
        self.assertEqual(rec["status"], 200)
        self.assertEqual(rec["bytes_up"], size)
        self.assertEqual(rec["bytes_down"], size)

    def test_256mib_each_way_cleartext(self):
        self._both_ways(256 * MiB, tls=False)

    def test_64mib_each_way_tls(self):
        self._both_ways(64 * MiB, tls=True)

    def test_tls_slow_upstream_half_close(self):
        """H1C-11: the download ends (origin FIN -> close_notify) long before the upload has
        drained into a slow origin; the client's close_notify must reach the origin only after
        every byte queued in the proxy."""
        self._both_ways(8 * MiB, tls=True, read_pause=0.02)


class Backpressure(unittest.TestCase):
    """A client that never reads: the proxy must stop reading the origin (bounded memory)."""

    def test_non_reading_client_bounded_rss(self):
        with H.Proxy() as proxy:
            # Calibrate: how long does 64 MiB take through this (possibly sanitized) proxy?
            with H.StreamOrigin(send_bytes=64 * MiB, seed=7, read=False) as cal:
                s = proxy.tunnel(cal.addr)
                t0 = time.time()
                with s:
                    _, got, _ = H.pump(s, (), expect=64 * MiB, until_eof=True, shut_wr=False)
                t64 = time.time() - t0
                self.assertEqual(got, 64 * MiB)
            # Watch for as long as 256 MiB would take at that rate (x1.5), within [4s, 60s].
            window = min(60.0, max(4.0, 1.5 * 4 * t64))
            note("calibration: 64 MiB down in %.2fs (%.0f MiB/s); observation window %.1fs"
                 % (t64, 64 / t64, window))

            seed = 99
            with H.StreamOrigin(send_bytes=None, seed=seed, read=False, sndbuf=256 * KiB) as origin:
                s = proxy.tunnel(origin.addr, rcvbuf=64 * KiB)
                with s:
                    time.sleep(0.5)
                    rss0 = proxy.rss_kib()
                    samples = []
                    t0 = time.time()
                    peak = rss0
                    while time.time() - t0 < window:
                        time.sleep(0.25)
                        sent = origin.results[0]["sent"]
                        rss = proxy.rss_kib()
                        peak = max(peak, rss)
                        samples.append((time.time() - t0, sent, rss))
                    # Blocked: no progress over the last 2 seconds of the window.
                    recent = [x for x in samples if x[0] >= samples[-1][0] - 2.0]
                    sent_end = samples[-1][1]
                    note("non-reading client: origin pushed %.1f MiB then blocked; proxy RSS "
                         "%d KiB -> peak %d KiB (growth %d KiB) over %.1fs"
                         % (sent_end / MiB, rss0, peak, peak - rss0, window))
                    self.assertEqual(recent[0][1], sent_end,
                                     "origin still sending at the end: proxy keeps reading; "
                                     "samples %r" % samples[-10:])
                    self.assertLess(sent_end, 64 * MiB, "far more than buffers+high-water moved")
                    self.assertLess(peak - rss0, 64 * 1024, "proxy RSS grew by %d KiB" % (peak - rss0))
                    # Reading resumes the flow and the bytes are the right ones, in order.
                    want = 8 * MiB
                    data = H.recv_exact(s, want, timeout=60)
                    self.assertEqual(hashlib.sha256(data).hexdigest(), H.prng_sha256(seed, want))
                    deadline = time.time() + 10
                    while origin.results[0]["sent"] == sent_end and time.time() < deadline:
                        time.sleep(0.05)
                    self.assertGreater(origin.results[0]["sent"], sent_end, "proxy never resumed")


class HalfClose(unittest.TestCase):
    """H1C-11 with half-close propagation, which h2tunnel implements as a documented choice."""

    @classmethod
    def setUpClass(cls):
        cls.proxy = H.Proxy()
        cls.proxy.start()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()

    def test_client_fin_then_origin_reply(self):
        """Client sends, shuts its write side; the origin sees EOF and its later reply arrives."""
        payload = os.urandom(1 * MiB + 123)
        with H.HalfCloseOrigin() as origin:
            s = self.proxy.tunnel(origin.addr)
            with s:
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                reply = H.recv_until_eof(s, timeout=20)
            origin.wait_finished(1)
        want = b"GOT %d %s\n" % (len(payload), hashlib.sha256(payload).hexdigest().encode())
        self.assertEqual(reply, want)
        self.assertEqual(origin.results[0]["received"], len(payload))
        self.assert_conns_released()

    def test_origin_fin_then_client_bytes(self):
        """Origin sends a banner and FIN; the client sees banner+EOF, then its bytes still arrive."""
        banner = b"220 hello, then FIN\r\n"
        payload = os.urandom(300 * KiB)
        with H.BannerOrigin(banner=banner) as origin:
            s = self.proxy.tunnel(origin.addr)
            with s:
                got = H.recv_until_eof(s, timeout=20)
                self.assertEqual(got, banner)
                time.sleep(0.1)  # really after the EOF
                s.sendall(payload)
                s.shutdown(socket.SHUT_WR)
                origin.wait_finished(1)
                # Both directions are done now: the proxy closes the client connection.
                self.assertEqual(H.recv_until_eof(s, timeout=10), b"")
        self.assertEqual(origin.results[0]["data"], payload)
        self.assert_conns_released()

    def assert_conns_released(self):
        """Once both directions have ended, the proxy must drop the client connection
        (regression: an upstream-FIN-first tunnel kept it until the 300 s idle timer, and SIGTERM
        then waited for the drain deadline). The /metrics request itself is the 1 active conn."""
        deadline = time.time() + 5
        while True:
            m = self.proxy.metrics()
            if (m["h2tunnel_connections_active"] == 1
                    and m['h2tunnel_tunnels_active{protocol="connect"}'] == 0):
                return
            if time.time() > deadline:
                self.fail("connections still open after the tunnel ended: %r" % {
                    k: v for k, v in m.items() if "active" in k})
            time.sleep(0.05)

    def test_origin_closes_after_1mib(self):
        """H1C-11: origin writes 1 MiB and closes; the client gets all of it, then EOF."""
        with H.StreamOrigin(send_bytes=MiB, seed=3, read=False) as origin:
            s = self.proxy.tunnel(origin.addr)
            with s:
                data = H.recv_until_eof(s, timeout=20)
        self.assertEqual(hashlib.sha256(data).hexdigest(), H.prng_sha256(3, MiB))
        self.assert_conns_released()
        rec = self.proxy.wait_access_log(lambda r: r.get("target") == origin.addr)
        self.assertEqual((rec["close"], rec["bytes_down"], rec["bytes_up"]), ("upstream_fin", MiB, 0))


class RstOrigin(H.TCPOrigin):
    """Sends a few bytes, then closes with SO_LINGER {1,0} (a TCP RST)."""

    def handle(self, c, idx, res):
        c.sendall(b"bye")
        time.sleep(0.1)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class UpstreamReset(unittest.TestCase):
    def test_upstream_rst_reaches_client(self):
        """H1C-11 / §12: an upstream RST after the 200 is passed on (reset or at least EOF)
        within about a second, and the proxy releases both sides."""
        with H.Proxy() as proxy, RstOrigin() as origin:
            s = proxy.tunnel(origin.addr)
            with s:
                t0 = time.time()
                got, how = b"", "eof"
                s.settimeout(5)
                try:
                    while True:
                        b = s.recv(4096)
                        if not b:
                            break
                        got += b
                except ConnectionResetError:
                    how = "reset"
                dt = time.time() - t0
            note("upstream RST seen by the client as %s after %.0f ms" % (how, dt * 1000))
            self.assertLess(dt, 2.0)
            self.assertIn(got, (b"", b"bye"))
            rec = proxy.wait_access_log(lambda r: r.get("target") == origin.addr)
            self.assertEqual(rec["status"], 200)
            self.assertEqual(rec["close"], "upstream_reset")


class EarlyData(unittest.TestCase):
    """H1C-08: bytes after the CONNECT head (same write, or split anywhere) are tunnel payload."""

    @classmethod
    def setUpClass(cls):
        cls.proxy = H.Proxy()
        cls.proxy.start()
        cls.echo = H.EchoOrigin()

    @classmethod
    def tearDownClass(cls):
        cls.echo.close()
        cls.proxy.stop()

    def roundtrip(self, pieces, payload, tls=False):
        port = self.proxy.tls_port if tls else self.proxy.tcp_port
        s = H.dial(port, tls_ca=self.proxy.ca if tls else None)
        with s:
            for i, p in enumerate(pieces):
                if i:
                    time.sleep(0.003)  # separate segments
                s.sendall(p)
            head = H.read_head(s)
            r = H.parse_response(head)
            self.assertEqual(r.status, 200, head)
            self.assertIsNone(r.header("content-length"), "H1C-06: no Content-Length in 2xx")
            self.assertIsNone(r.header("transfer-encoding"), "H1C-06: no Transfer-Encoding in 2xx")
            got = H.recv_exact(s, len(payload), timeout=20)
            self.assertEqual(got, payload)

    def test_same_write(self):
        head = H.connect_head(self.echo.addr)
        self.roundtrip([head + b"PING\n"], b"PING\n")

    def test_same_write_tls(self):
        head = H.connect_head(self.echo.addr)
        self.roundtrip([head + b"PING\n"], b"PING\n", tls=True)

    def test_split_at_every_offset(self):
        req = H.connect_head(self.echo.addr) + b"PING\n"
        for i in range(1, len(req)):
            with self.subTest(split=i):
                self.roundtrip([req[:i], req[i:]], b"PING\n")

    def test_byte_at_a_time(self):
        req = H.connect_head(self.echo.addr) + b"PING\n"
        self.roundtrip([req[i:i + 1] for i in range(len(req))], b"PING\n")

    def test_256kib_early_payload(self):
        """H1C-08: a large early payload is kept and forwarded in order (with backpressure)."""
        payload = os.urandom(256 * KiB)
        self.roundtrip([H.connect_head(self.echo.addr) + payload], payload)


class Concurrency(unittest.TestCase):
    N = 500

    def test_500_concurrent_tunnels(self):
        """500 tunnels open at the same time in one proxy process, each echoing distinct bytes."""
        H.raise_nofile(4 * self.N + 256)
        with H.Proxy() as proxy, H.EchoOrigin(backlog=1024) as echo:
            t0 = time.time()

            def opener(i):
                for attempt in range(3):
                    try:
                        return proxy.tunnel(echo.addr, timeout=30)
                    except (ConnectionResetError, socket.timeout):
                        if attempt == 2:
                            raise
                        time.sleep(0.2)

            with concurrent.futures.ThreadPoolExecutor(max_workers=32) as ex:
                socks = list(ex.map(opener, range(self.N)))
            t_open = time.time() - t0
            try:
                m = proxy.metrics()
                self.assertEqual(m['h2tunnel_tunnels_active{protocol="connect"}'], self.N)
                payloads = [os.urandom(random.randint(1, 16 * KiB)) + b"#%d" % i
                            for i in range(self.N)]
                for s, p in zip(socks, payloads):
                    s.sendall(p)
                for i, (s, p) in enumerate(zip(socks, payloads)):
                    self.assertEqual(H.recv_exact(s, len(p), timeout=30), p, "tunnel %d" % i)
            finally:
                for s in socks:
                    s.close()
            echo.wait_finished(self.N, timeout=60)
            note("%d concurrent tunnels opened in %.2fs; proxy RSS %d KiB"
                 % (self.N, t_open, proxy.rss_kib()))
            deadline = time.time() + 10
            while time.time() < deadline:
                if proxy.metrics()['h2tunnel_tunnels_active{protocol="connect"}'] == 0:
                    break
                time.sleep(0.1)
            m = proxy.metrics()
            self.assertEqual(m['h2tunnel_tunnels_active{protocol="connect"}'], 0)
            self.assertGreaterEqual(m['h2tunnel_tunnels_opened_total{protocol="connect"}'], self.N)
            lines = [r for r in proxy.access_log() if r.get("target") == echo.addr]
            self.assertEqual(len(lines), self.N)
            self.assertTrue(all(r["status"] == 200 for r in lines))


def tearDownModule():
    if FIGURES:
        sys.stderr.write("\nMeasured:\n" + "".join("  %s\n" % f for f in FIGURES))


if __name__ == "__main__":
    H.main()
