#!/usr/bin/python3
"""HTTP/1.1 CONNECT rejections, limits, policy and the local endpoints.

Every rejection is checked for: the status, `Proxy-Status: h2tunnel; error=<type>` (PS-01, §12
error table), Content-Length framing with `Connection: close`, exactly one response followed by
EOF (RFC 9931 / H1C-09), no connection to the origin, an access-log line with status and error,
and a good tunnel through the same proxy right afterwards.
"""
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
from harness import KiB  # noqa: E402


class RejectMixin:
    """Needs self.proxy (a started H.Proxy) and self.echo (an H.EchoOrigin) on the class."""

    def reject(self, data, status, error, tls=False, proxy=None, split=None, detail=None):
        proxy = proxy or self.proxy
        port = proxy.tls_port if tls else proxy.tcp_port
        before = self.echo.accepted
        s = H.dial(port, tls_ca=proxy.ca if tls else None)
        client = "127.0.0.1:%d" % s.getsockname()[1]
        t0 = time.time()
        with s:
            if split is None:
                s.sendall(data)
            else:
                for p in split:
                    s.sendall(p)
                    time.sleep(0.005)
            try:
                raw = H.recv_until_eof(s, timeout=10)
            except socket.timeout:
                self.fail("no EOF after the rejection of %r" % data[:120])
        elapsed = time.time() - t0
        r = H.parse_response(raw)
        self.assertEqual(r.status, status, "%r -> %r" % (data[:120], raw[:400]))
        ps = r.proxy_status()
        self.assertIsNotNone(ps, "no Proxy-Status: %r" % raw[:400])
        self.assertEqual(ps["proxy"], "h2tunnel")
        self.assertEqual(ps.get("error"), error, raw[:400])
        if detail is not None:
            self.assertIn(detail, ps.get("details", ""))
        self.assertIsNotNone(r.header("content-length"), "H1C-09: framed by Content-Length")
        self.assertEqual((r.header("connection") or "").lower(), "close", "H1C-09: Connection: close")
        self.assertEqual(r.rest, b"", "H1C-09: exactly one response, then EOF; got extra %r" % r.rest[:200])
        # The rejected request never reached the origin.
        self.assertEqual(self.echo.accepted, before, "rejected CONNECT reached the origin")
        # The rejection is in the access log, with its reason.
        proxy.wait_access_log(lambda rec: rec.get("client") == client and rec.get("status") == status
                              and rec.get("error") == error
                              and (detail is None or detail in rec.get("detail", "")))
        # And the proxy still tunnels.
        self.good_tunnel(proxy, tls=tls)
        return r, elapsed

    def good_tunnel(self, proxy=None, tls=False):
        proxy = proxy or self.proxy
        s = proxy.tunnel(self.echo.addr, tls=tls)
        with s:
            msg = os.urandom(32)
            s.sendall(msg)
            self.assertEqual(H.recv_exact(s, len(msg)), msg)


class Rejections(RejectMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.echo = H.EchoOrigin()
        cls.dns = H.FakeDNS({"good.test": ["127.0.0.1"], "ten.test": ["10.0.0.1"]})
        cls.proxy = H.Proxy(["--dns-server", cls.dns.addr, "--connect-timeout", "500ms",
                             "--dns-timeout", "1s"])
        cls.proxy.start()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.dns.close()
        cls.echo.close()

    # -- upstream failures (H1C-07, H1C-14)
    def test_closed_port_502_connection_refused(self):
        """H1C-07/H1C-14: a closed loopback port gives 502 connection_refused, never 200."""
        port = H.free_port()
        self.reject(H.connect_head("127.0.0.1:%d" % port), 502, "connection_refused")

    def test_closed_port_502_over_tls(self):
        port = H.free_port()
        self.reject(H.connect_head("127.0.0.1:%d" % port), 502, "connection_refused", tls=True)

    def test_never_answering_504_connection_timeout(self):
        """H1C-07/H1C-14: a black-holed target gives 504 connection_timeout after
        --connect-timeout (500ms here)."""
        with H.Blackhole() as bh:
            if not bh.works:
                self.skipTest("could not black-hole a loopback port here (SYNs not dropped); "
                              "dns_timeout 504 is covered by test_dns_timeout_504")
            _, elapsed = self.reject(H.connect_head(bh.addr), 504, "connection_timeout")
        self.assertGreaterEqual(elapsed, 0.4)
        self.assertLess(elapsed, 5.0)

    def test_dns_nxdomain_502_dns_error(self):
        """H1C-14: NXDOMAIN from the (fake) resolver gives 502 dns_error."""
        port = H.free_port()
        self.reject(H.connect_head("nx.test:%d" % port), 502, "dns_error")
        self.assertIn(("nx.test", 1), self.dns.queries)

    def test_dns_name_resolves_and_tunnels(self):
        """A name from the fake resolver tunnels (checks the DNS path itself works)."""
        s = self.proxy.tunnel("good.test:%d" % self.echo.port)
        with s:
            s.sendall(b"dns ok")
            self.assertEqual(H.recv_exact(s, 6), b"dns ok")
        rec = self.proxy.wait_access_log(lambda r: r.get("target") == "good.test:%d" % self.echo.port)
        self.assertEqual(rec["resolved"], "127.0.0.1:%d" % self.echo.port)

    def test_dns_to_private_address_403(self):
        """H1C-13: the resolved address is checked, even with --allow-net loopback (10/8 stays
        denied)."""
        self.reject(H.connect_head("ten.test:443"), 403, "destination_ip_prohibited")

    # -- malformed targets (H1C-01, H1C-02, H1C-03)
    def test_malformed_authority_400(self):
        p = self.echo.port
        cases = {
            "missing port (H1C-02)": "127.0.0.1",
            "empty port (H1C-02)": "127.0.0.1:",
            "port 0 (H1C-02)": "127.0.0.1:0",
            "port 65536 (H1C-02)": "127.0.0.1:65536",
            "signed port (H1C-02)": "127.0.0.1:+%d" % p,
            "non-digit port (H1C-02)": "127.0.0.1:8a",
            "userinfo (H1C-03)": "u@127.0.0.1:%d" % p,
            "unbracketed IPv6 (H1C-03)": "::1:%d" % p,
            "empty host (H1C-03)": ":%d" % p,
            "percent in host (H1C-03)": "127.0.0.1%%25lo:%d" % p,
            "origin-form (H1C-01)": "/x",
            "absolute-form (H1C-01)": "http://127.0.0.1:%d/" % p,
            "asterisk-form (H1C-01)": "*",
        }
        for name, target in cases.items():
            with self.subTest(name, target=target):
                self.reject(H.connect_head(target, host="127.0.0.1:%d" % p), 400,
                            "http_request_error")

    def test_malformed_authority_400_over_tls(self):
        self.reject(H.connect_head("127.0.0.1:0"), 400, "http_request_error", tls=True)

    # -- Host (H1C-04)
    def test_missing_host_http11_400(self):
        self.reject(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % self.echo.port, 400,
                    "http_request_error", detail="Host")

    def test_duplicate_host_400(self):
        t = b"127.0.0.1:%d" % self.echo.port
        self.reject(b"CONNECT " + t + b" HTTP/1.1\r\nHost: " + t + b"\r\nHost: " + t + b"\r\n\r\n",
                    400, "http_request_error", detail="Host")

    def test_http10_without_host_allowed(self):
        """H1C-04: an HTTP/1.0 CONNECT without Host is legal."""
        s = self.proxy.tunnel(self.echo.addr, version="1.0", host=False)
        with s:
            s.sendall(b"v1.0")
            self.assertEqual(H.recv_exact(s, 4), b"v1.0")

    def test_host_differs_from_target_400(self):
        """A Host naming another authority than the CONNECT target is refused, as on h2 (H2C-03;
        issue 8 item 6). The checklist's H1C-04 test let the target win; two readings of one
        request are what smuggling is made of, so the proxy no longer picks one."""
        self.reject(H.connect_head(self.echo.addr, host="evil.invalid:1"), 400, "http_request_error",
                    detail="Host differs from the CONNECT target")

    # -- bodies, method (H1C-10, H1C-05)
    def test_connect_with_content_length_400(self):
        """H1C-10: a CONNECT announcing content is rejected."""
        self.reject(H.connect_head(self.echo.addr, extra=b"Content-Length: 5\r\n") + b"hello",
                    400, "http_request_error")

    def test_connect_with_transfer_encoding_400(self):
        self.reject(H.connect_head(self.echo.addr, extra=b"Transfer-Encoding: chunked\r\n")
                    + b"0\r\n\r\n", 400, "http_request_error")

    def test_connect_with_content_length_0_allowed(self):
        s = self.proxy.tunnel(self.echo.addr, extra=b"Content-Length: 0\r\n")
        with s:
            s.sendall(b"cl0")
            self.assertEqual(H.recv_exact(s, 3), b"cl0")

    def test_lowercase_connect_rejected(self):
        """H1C-05: the method is case-sensitive; `connect` is 4xx and opens no tunnel."""
        before = self.echo.accepted
        data = b"connect " + self.echo.addr.encode() + b" HTTP/1.1\r\nHost: x\r\n\r\nPING"
        raw, eof = H.raw_exchange(self.proxy.tcp_port, data)
        self.assertTrue(eof)
        r = H.parse_response(raw)
        self.assertTrue(400 <= r.status < 500, r)
        self.assertIsNotNone(r.proxy_status())
        self.assertEqual(r.rest, b"")
        self.assertNotIn(b"PING", raw)
        self.assertEqual(self.echo.accepted, before)
        self.good_tunnel()

    # -- size limits (H1S-10)
    def test_oversized_head_431(self):
        big = b"X-Big: " + b"a" * (70 * KiB) + b"\r\n"
        self.reject(H.connect_head(self.echo.addr, extra=big), 431, "http_request_error")

    def test_too_many_headers_431(self):
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(150))  # default --max-headers 100
        self.reject(H.connect_head(self.echo.addr, extra=many), 431, "http_request_error")

    def test_long_target_414(self):
        self.reject(b"GET /healthz?" + b"a" * (100 * KiB) + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414,
                    "http_request_error")

    def test_9000_byte_target_accepted(self):
        """H1S-10: request lines of at least 8000 octets are supported."""
        r = H.http_get(self.proxy.tcp_port, "/healthz?" + "a" * 9000)
        self.assertEqual(r.status, 200)

    # -- RFC 9931 / H1C-09: nothing after a rejected CONNECT head is parsed
    def test_smuggled_get_after_502_not_parsed(self):
        port = H.free_port()
        data = (H.connect_head("127.0.0.1:%d" % port)
                + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        r, _ = self.reject(data, 502, "connection_refused")
        self.assertNotIn(b"ok\n", r.raw)

    def test_smuggled_connect_after_400_not_parsed(self):
        """The second CONNECT (to the echo origin) must never be dialled."""
        data = (H.connect_head("127.0.0.1:0") + H.connect_head(self.echo.addr) + b"PING")
        self.reject(data, 400, "http_request_error")

    def test_smuggled_get_after_431_not_parsed(self):
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
        data = (H.connect_head(self.echo.addr, extra=many)
                + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        self.reject(data, 431, "http_request_error")

    def test_smuggled_get_after_502_split(self):
        """Same as above with the trailing request arriving in later segments."""
        port = H.free_port()
        head = H.connect_head("127.0.0.1:%d" % port)
        tail = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        self.reject(head + tail, 502, "connection_refused", split=[head, tail[:10], tail[10:]])

    # -- pipelining (H1S-14)
    def test_get_then_connect_pipelined(self):
        """H1S-14: a CONNECT queued behind local GETs in the same write takes effect after their
        responses, and only the bytes after its head are tunnel payload (H1C-08). Regression:
        the payload used to start inside the CONNECT head when GETs preceded it."""
        get = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        for ngets in (1, 2, 3):
            for tls in (False, True):
                with self.subTest(gets=ngets, tls=tls):
                    before = self.echo.accepted
                    s = H.dial(self.proxy.tls_port if tls else self.proxy.tcp_port,
                               tls_ca=self.proxy.ca if tls else None)
                    with s:
                        s.sendall(get * ngets + H.connect_head(self.echo.addr) + b"PIPE")
                        for _ in range(ngets):
                            r1 = H.parse_response(H.read_head(s) + H.recv_exact(s, 3))
                            self.assertEqual((r1.status, r1.body), (200, b"ok\n"))
                        r2 = H.parse_response(H.read_head(s))
                        self.assertEqual(r2.status, 200)
                        s.sendall(b"!")
                        self.assertEqual(H.recv_exact(s, 5), b"PIPE!")
                    self.assertEqual(self.echo.accepted, before + 1)


class PortPolicy(RejectMixin, unittest.TestCase):
    """H1C-12: only --allow-ports (default 80,443) may be CONNECTed to."""

    @classmethod
    def setUpClass(cls):
        cls.echo = H.EchoOrigin()
        cls.proxy = H.Proxy(any_port=False)
        cls.proxy.start()
        # The good tunnel needs an allowed port: a second proxy with '*' stands in for it.
        cls.open_proxy = H.Proxy()
        cls.open_proxy.start()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.open_proxy.stop()
        cls.echo.close()

    def good_tunnel(self, proxy=None, tls=False):
        # Tunnels on the restricted proxy are only possible to 80/443; check it still answers
        # and that the unrestricted one tunnels.
        r = H.http_get(self.proxy.tcp_port, "/healthz")
        self.assertEqual(r.status, 200)
        super().good_tunnel(self.open_proxy, tls=tls)

    def test_port_25_denied(self):
        self.reject(H.connect_head("127.0.0.1:25"), 403, "http_request_denied")

    def test_echo_port_denied(self):
        self.reject(H.connect_head(self.echo.addr), 403, "http_request_denied")

    def test_denied_over_tls(self):
        self.reject(H.connect_head("127.0.0.1:8080"), 403, "http_request_denied", tls=True)

    def test_smuggled_get_after_403_not_parsed(self):
        self.reject(H.connect_head("127.0.0.1:25")
                    + b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 403, "http_request_denied")


class DefaultAddressPolicy(RejectMixin, unittest.TestCase):
    """H1C-13: without --allow-net loopback, loopback/private/link-local targets are denied,
    whatever spelling reaches them, and names are checked on the resolved address."""

    @classmethod
    def setUpClass(cls):
        cls.echo = H.EchoOrigin()
        cls.dns = H.FakeDNS({"rebind.test": ["127.0.0.1"], "ten.test": ["10.0.0.1"]})
        cls.proxy = H.Proxy(["--dns-server", cls.dns.addr], allow_loopback=False)
        cls.proxy.start()
        cls.open_proxy = H.Proxy()
        cls.open_proxy.start()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.open_proxy.stop()
        cls.dns.close()
        cls.echo.close()

    def good_tunnel(self, proxy=None, tls=False):
        self.assertEqual(H.http_get(self.proxy.tcp_port, "/healthz").status, 200)
        super().good_tunnel(self.open_proxy, tls=tls)

    def test_private_targets_403(self):
        p = self.echo.port
        for target in ["127.0.0.1:%d" % p, "127.1:%d" % p, "0x7f000001:%d" % p,
                       "[::ffff:127.0.0.1]:%d" % p, "localhost:%d" % p, "[::1]:%d" % p,
                       "0.0.0.0:%d" % p, "10.0.0.1:%d" % p, "169.254.169.254:%d" % p,
                       "rebind.test:%d" % p, "ten.test:%d" % p]:
            with self.subTest(target=target):
                self.reject(H.connect_head(target), 403, "destination_ip_prohibited")

    def test_private_target_403_over_tls(self):
        self.reject(H.connect_head("127.0.0.1:%d" % self.echo.port), 403,
                    "destination_ip_prohibited", tls=True)


class DnsTimeout(RejectMixin, unittest.TestCase):
    """H1C-14: a resolver that never answers gives 504 dns_timeout (also the fallback for the
    black-hole test on machines where SYNs to a full accept queue are not dropped)."""

    def test_dns_timeout_504(self):
        with H.EchoOrigin() as echo, H.FakeDNS(silent=True) as dns, \
                H.Proxy(["--dns-server", dns.addr, "--dns-timeout", "300ms"]) as proxy:
            self.echo = echo
            self.proxy = proxy
            _, elapsed = self.reject(H.connect_head("slow.test:443"), 504, "dns_timeout")
            self.assertGreaterEqual(elapsed, 0.25)
            self.assertLess(elapsed, 10)
            self.assertTrue(any(q[0] == "slow.test" for q in dns.queries))


class LocalEndpoints(unittest.TestCase):
    """GET /healthz and /metrics over HTTP/1.1 (cleartext and TLS, keep-alive)."""

    def test_healthz_and_metrics(self):
        with H.EchoOrigin() as echo, H.Proxy() as proxy:
            for tls in (False, True):
                port = proxy.tls_port if tls else proxy.tcp_port
                r = H.http_get(port, "/healthz", tls_ca=proxy.ca if tls else None)
                self.assertEqual((r.status, r.body), (200, b"ok\n"))
                r = H.http_get(port, "/metrics", tls_ca=proxy.ca if tls else None)
                self.assertEqual(r.status, 200)
                self.assertTrue(r.header("content-type").startswith("text/plain"))
                self.assertIn(b"# TYPE h2tunnel_tunnels_opened_total counter", r.body)
            r = H.http_get(proxy.tcp_port, "/nope")
            self.assertEqual(r.status, 404)

            # Keep-alive: two requests on one connection, answered in order.
            s = H.dial(proxy.tcp_port)
            with s:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
                          b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                raw = H.recv_until_eof(s)
            r1 = H.parse_response(raw)
            r2 = H.parse_response(r1.rest)
            self.assertEqual((r1.status, r1.body, r2.status), (200, b"ok\n", 200))
            self.assertIn(b"h2tunnel_errors_total", r2.body)

            m0 = proxy.metrics()
            opened = 'h2tunnel_tunnels_opened_total{protocol="connect"}'
            refused = 'h2tunnel_errors_total{type="connection_refused",status="502"}'
            bad = 'h2tunnel_errors_total{type="http_request_error",status="400"}'
            for _ in range(3):
                s = proxy.tunnel(echo.addr)
                s.sendall(b"x")
                H.recv_exact(s, 1)
                s.close()
            closed = H.free_port()
            for _ in range(2):
                raw, _ = H.raw_exchange(proxy.tcp_port, H.connect_head("127.0.0.1:%d" % closed))
                self.assertEqual(H.parse_response(raw).status, 502)
            raw, _ = H.raw_exchange(proxy.tcp_port, H.connect_head("127.0.0.1:0"))
            self.assertEqual(H.parse_response(raw).status, 400)
            m1 = proxy.metrics()
            self.assertEqual(m1[opened] - m0[opened], 3)
            self.assertEqual(m1[refused] - m0[refused], 2)
            self.assertEqual(m1[bad] - m0[bad], 1)
            self.assertGreaterEqual(m1['h2tunnel_tunnel_bytes_total{direction="up"}'], 3)
            self.assertGreaterEqual(m1["h2tunnel_local_requests_total"], 6)


if __name__ == "__main__":
    H.main()
