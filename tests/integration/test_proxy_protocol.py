#!/usr/bin/python3
"""PROXY protocol v1 and v2 on listeners marked ?proxy-protocol (issue 13 item 3; the checklist
has no PROXY protocol item, so HAProxy's proxy-protocol.txt is the reference).

Through real HAProxy in TCP mode (send-proxy to a cleartext listener, send-proxy-v2 to a TLS
listener, HAProxy connecting from 127.0.0.2, the only trusted source): the client address the
access log shows is the client's own (127.0.0.5, .6), not HAProxy's. Directly: a header from an
untrusted source is refused and logged, a connection without one is served as usual; from the
trusted source a malformed header, no header and a header that stalls past
--proxy-protocol-timeout are refused with a log line saying why; v2 LOCAL (HAProxy's health
check) keeps the real address. Every wait is on an event (bytes, EOF, a log line) with a
generous bound.
"""
import os
import socket
import ssl
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402
import haproxy_util as HP  # noqa: E402

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def wait_stderr(proxy, text, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if text in proxy.stderr():
            return
        time.sleep(0.05)
    raise AssertionError("no %r in the proxy's stderr:\n%s" % (text, proxy.stderr()[-3000:]))


def closed_without_answer(sock, timeout=20):
    """The proxy closes (FIN or RST) without sending a byte."""
    data = H.recv_until_eof(sock, timeout=timeout)
    return data == b""


class ProxyProtocol(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.pp_tcp, cls.pp_tls, cls.lb_v1, cls.lb_v2 = HP.free_ports(4)
        cls.proxy = H.Proxy([
            "--listen", "tcp://127.0.0.1:%d?proxy-protocol" % cls.pp_tcp,
            "--listen", "tls://127.0.0.1:%d?proxy-protocol" % cls.pp_tls,
            "--proxy-protocol-from", "127.0.0.2/32",
            "--proxy-protocol-timeout", "1s",
        ])
        cls.proxy.start()
        cls.origin = H.EchoOrigin()
        cls.lb = HP.HAProxy(
            "listen v1\n  bind 127.0.0.1:%d\n  server h2t 127.0.0.1:%d source 127.0.0.2 send-proxy\n"
            "listen v2\n  bind 127.0.0.1:%d\n  server h2t 127.0.0.1:%d source 127.0.0.2 send-proxy-v2\n"
            % (cls.lb_v1, cls.pp_tcp, cls.lb_v2, cls.pp_tls), ports=[cls.lb_v1, cls.lb_v2])
        cls.lb.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.lb.__exit__(None, None, None)
        cls.origin.close()
        cls.proxy.stop()

    def target(self):
        return self.origin.addr

    def echo_through(self, s, payload):
        s.sendall(H.connect_head(self.target()))
        resp = H.parse_response(H.read_head(s))
        self.assertEqual(resp.status, 200, resp.raw)
        s.sendall(payload)
        self.assertEqual(H.recv_exact(s, len(payload)), payload)

    def client_in_log(self, client):
        return self.proxy.wait_access_log(lambda r: r.get("client") == client and r.get("status") == 200,
                                          timeout=20)

    def test_haproxy_send_proxy_v1(self):
        s = HP.dial_from("127.0.0.5", self.lb_v1)
        with s:
            me = "%s:%d" % s.getsockname()
            self.echo_through(s, b"through haproxy v1")
        rec = self.client_in_log(me)
        self.assertEqual(rec["bytes_up"], len(b"through haproxy v1"))

    def test_haproxy_send_proxy_v2_tls(self):
        raw = HP.dial_from("127.0.0.6", self.lb_v2)
        me = "%s:%d" % raw.getsockname()
        s = H.tls_client_context(self.proxy.ca).wrap_socket(raw, server_hostname="localhost")
        with s:
            self.assertEqual(s.selected_alpn_protocol(), "http/1.1")
            self.echo_through(s, b"through haproxy v2, TLS after the header")
        self.client_in_log(me)

    def test_untrusted_header_refused(self):
        s = H.dial(self.pp_tcp)
        with s:
            s.sendall(b"PROXY TCP4 203.0.113.9 127.0.0.1 4444 80\r\n" + H.connect_head(self.target()))
            self.assertTrue(closed_without_answer(s))
        wait_stderr(self.proxy, "PROXY protocol header from a source not in proxy-protocol-from")
        s = H.dial(self.pp_tcp)
        with s:
            s.sendall(V2_SIG + b"\x21\x11\x00\x0c" + bytes([203, 0, 113, 9, 127, 0, 0, 1, 0, 1, 0, 2]))
            self.assertTrue(closed_without_answer(s))
        self.assertFalse(any(r.get("client", "").startswith("203.0.113.9") for r in self.proxy.access_log()))

    def test_untrusted_without_header_served(self):
        s = H.dial(self.pp_tcp)
        with s:
            me = "%s:%d" % s.getsockname()
            self.echo_through(s, b"direct, no header")
        self.client_in_log(me)
        # TLS straight to the TLS listener too (the sniff sees 0x16, not a signature).
        s = H.dial(self.pp_tls, tls_ca=self.proxy.ca)
        with s:
            me = "%s:%d" % s.getsockname()
            self.echo_through(s, b"direct TLS")
        self.client_in_log(me)

    def test_malformed_from_trusted(self):
        cases = [
            (b"PROXY TCP4 203.0.113.9 127.0.0.1 4444\r\n", "v1: not four fields"),
            (b"PROXY TCP6 203.0.113.9 127.0.0.1 1 2\r\n", "v1: an address not of the protocol's family"),
            (b"PROXY TCP4 203.0.113.9 127.0.0.1 99999 80\r\n", "v1: a port not 0..65535"),
            (V2_SIG + b"\x31\x11\x00\x0c" + b"\x00" * 12, "v2: version not 2"),
            (V2_SIG + b"\x21\x11\x00\x04abcd", "v2: length too short for INET addresses"),
            (H.connect_head("127.0.0.1:1"), "not a PROXY protocol header"),
        ]
        for data, why in cases:
            with self.subTest(why=why):
                s = HP.dial_from("127.0.0.2", self.pp_tcp)
                with s:
                    s.sendall(data)
                    self.assertTrue(closed_without_answer(s))
                wait_stderr(self.proxy, "invalid PROXY protocol header: " + why)

    def test_slow_header_times_out(self):
        s = HP.dial_from("127.0.0.2", self.pp_tcp)
        with s:
            s.sendall(b"PROXY TCP4 ")
            t0 = time.time()
            self.assertTrue(closed_without_answer(s, timeout=30))
            self.assertGreaterEqual(time.time() - t0, 0.5)
        wait_stderr(self.proxy, "no complete PROXY protocol header within 1000 ms")

    def test_v2_local_keeps_the_real_address(self):
        s = HP.dial_from("127.0.0.2", self.pp_tcp)
        with s:
            me = "%s:%d" % s.getsockname()
            s.sendall(V2_SIG + b"\x20\x00\x00\x00")
            self.echo_through(s, b"LOCAL")
        self.client_in_log(me)

    def test_header_split_byte_by_byte(self):
        s = HP.dial_from("127.0.0.2", self.pp_tcp)
        with s:
            hdr = b"PROXY TCP4 198.51.100.44 127.0.0.1 40404 80\r\n"
            for i in range(len(hdr)):
                s.sendall(hdr[i:i + 1])
                time.sleep(0.002)
            self.echo_through(s, b"split")
        self.client_in_log("198.51.100.44:40404")


class ProxyProtocolConfig(unittest.TestCase):
    def run_proxy(self, *args):
        return subprocess.run([H.proxy_bin(), "--check-config", "/dev/null"] + list(args),
                              capture_output=True, text=True, timeout=60)

    def test_listener_needs_trusted_sources(self):
        r = self.run_proxy("--listen", "tcp://127.0.0.1:1?proxy-protocol")
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("?proxy-protocol needs proxy-protocol-from", r.stderr)

    def test_unknown_listener_flag(self):
        r = self.run_proxy("--listen", "tcp://127.0.0.1:1?proxy")
        self.assertEqual(r.returncode, 2, r)
        self.assertIn("optionally ?proxy-protocol", r.stderr)

    def test_printed_back(self):
        r = self.run_proxy("--listen", "tcp://127.0.0.1:1?proxy-protocol", "--proxy-protocol-from", "10.0.0.0/8",
                           "--proxy-protocol-from", "loopback")
        self.assertEqual(r.returncode, 0, r)
        self.assertIn('listen: ["tcp://127.0.0.1:1?proxy-protocol"]', r.stdout)
        self.assertIn('proxy-protocol-from: ["10.0.0.0/8", "loopback"]', r.stdout)
        self.assertIn("proxy-protocol-timeout: 5s", r.stdout)


if __name__ == "__main__":
    H.main()
