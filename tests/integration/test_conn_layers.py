#!/usr/bin/python3
"""The connection layer between the listener and the front ends (issue 9): the front end found
through the table filled at start-up (cleartext h2 preface, sniffed byte by byte; bytes that
could still become the preface handed to h1 with the EOF behind them), and the worker's drain
deadline, which closes connections and leaves the front ends to end their tunnels -- so an h1
tunnel still open at the deadline is logged as "proxy_shutdown" and nothing is left behind.

Every wait is on an event (a byte, EOF, an access-log line, the process exit) and bounded.
"""
import os
import signal
import socket
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402

H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
H2_SETTINGS = 0x4


def read_frame_header(sock, timeout=10):
    hd = H.recv_exact(sock, 9, timeout)
    return int.from_bytes(hd[0:3], "big"), hd[3], hd[4], int.from_bytes(hd[5:9], "big") & 0x7FFFFFFF


class Sniff(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proxy = H.Proxy(tls=False)
        cls.proxy.start()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()

    def test_preface_byte_by_byte_is_served_h2(self):
        """RFC 9113 §3.3 prior knowledge: the preface in 24 one-byte writes still reaches the h2
        front end, which answers with its SETTINGS frame."""
        with socket.create_connection(("127.0.0.1", self.proxy.tcp_port), timeout=10) as s:
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for b in H2_PREFACE:
                s.sendall(bytes([b]))
                time.sleep(0.002)
            s.sendall(b"\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # our SETTINGS
            length, ftype, _flags, stream = read_frame_header(s)
            self.assertEqual((ftype, stream), (H2_SETTINGS, 0))
            H.recv_exact(s, length)

    def test_start_of_preface_then_eof_goes_to_h1(self):
        """Bytes that could still become the preface, then FIN: the fallback front end (h1) gets
        them and the EOF -- it answers 505 (HTTP/2.0 is not an HTTP/1.x version) and closes."""
        with socket.create_connection(("127.0.0.1", self.proxy.tcp_port), timeout=10) as s:
            s.sendall(H2_PREFACE[:16])
            s.shutdown(socket.SHUT_WR)
            got = H.recv_until_eof(s, timeout=10)
        self.assertTrue(got.startswith(b"HTTP/1.1 505 "), got[:200])

    def test_h1_request_on_cleartext(self):
        """A first byte that is not the preface's picks h1 at once."""
        r = H.http_get(self.proxy.tcp_port, "/healthz")
        self.assertEqual(r.status, 200)


class DrainDeadline(unittest.TestCase):
    def _tunnel_cut_at_deadline(self, tls):
        with H.EchoOrigin() as echo:
            p = H.Proxy(["--drain-timeout", "1s"])
            p.start()
            try:
                s = p.tunnel(echo.addr, tls=tls)
                s.sendall(b"ping")
                self.assertEqual(H.recv_exact(s, 4), b"ping")
                t0 = time.monotonic()
                p.proc.send_signal(signal.SIGTERM)
                # The tunnel lives on through the drain, then is cut at the deadline.
                s.sendall(b"still")
                self.assertEqual(H.recv_exact(s, 5), b"still")
                H.recv_until_eof(s, timeout=15)
                s.close()
                self.assertEqual(p.proc.wait(timeout=15), 0)
                waited = time.monotonic() - t0
                self.assertGreaterEqual(waited, 0.85, "exited before the drain deadline")
                rec = p.wait_access_log(lambda r: r.get("target") == echo.addr)
                self.assertEqual(rec["close"], "proxy_shutdown", rec)
                self.assertNotIn("left with no client connection", p.stderr())
            finally:
                p.stop()

    def test_h1_tunnel_cut_at_deadline_is_proxy_shutdown(self):
        self._tunnel_cut_at_deadline(tls=False)

    def test_h1_tls_tunnel_cut_at_deadline_is_proxy_shutdown(self):
        self._tunnel_cut_at_deadline(tls=True)


if __name__ == "__main__":
    H.main()
