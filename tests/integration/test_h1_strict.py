#!/usr/bin/python3
"""HTTP/1.1 request heads that RFC 9112 says to refuse (issue 8 item 6), sent as raw bytes to the
real binary. Before h1/h1_req.c every one of them got 200 (or 101): a CONNECT without a version,
an HTTP/2.0 version, obs-fold (even a folded Host), irregular whitespace in the request line, a
Host naming another authority than the CONNECT target, and an `Upgrade: connect-udp` request with
a body (whose body was then read as capsules).

Each refusal is checked by RejectMixin (test_h1_errors.py): the status, `Proxy-Status:
h2tunnel; error=...; details=...`, Content-Length framing with `Connection: close`, exactly one
response then EOF, no connection to the origin, an access-log line with status, error and the
reason, and a good tunnel through the same proxy right after, on a new connection.
"""
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import xcutil  # noqa: E402
from test_h1_errors import RejectMixin  # noqa: E402

V505 = "only HTTP/1.0 and HTTP/1.1 requests are served here"


class Strict(RejectMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.echo = H.EchoOrigin()
        cls.dns = H.FakeDNS({"good.test": ["127.0.0.1"]})
        cls.proxy = H.Proxy(["--dns-server", cls.dns.addr])
        cls.proxy.start()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.dns.close()
        cls.echo.close()

    def target(self):
        return b"127.0.0.1:%d" % self.echo.port

    def table(self, cases, status=400, error="http_request_error"):
        for name, (data, detail) in cases.items():
            with self.subTest(name):
                self.reject(data, status, error, detail=detail)

    # -- the request line (RFC 9112 §3, H1S-09)
    def test_connect_without_version_400(self):
        """`CONNECT h:p` with no HTTP version (the HTTP/0.9 form) is 400, Host or not."""
        t = self.target()
        self.table({
            "with Host": (b"CONNECT " + t + b"\r\nHost: " + t + b"\r\n\r\nPING", "without HTTP version"),
            "without Host": (b"CONNECT " + t + b"\r\n\r\nPING", "without HTTP version"),
            "GET": (b"GET /healthz\r\n\r\n", "without HTTP version"),
        })

    def test_unsupported_version_505(self):
        """A well-formed version other than HTTP/1.0 and HTTP/1.1 is 505 (RFC 9110 §15.6.6: the
        server refuses that major version; RFC 9112 §2.3), with a text saying what is served."""
        t = self.target()
        for v in (b"2.0", b"3.0", b"0.9", b"1.2", b"9.9"):
            with self.subTest(version=v):
                self.reject(b"CONNECT " + t + b" HTTP/" + v + b"\r\nHost: " + t + b"\r\n\r\n", 505,
                            "http_request_error", detail=V505)
        self.reject(b"GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n", 505, "http_request_error", detail=V505)

    def test_malformed_version_400(self):
        t = self.target()
        for v in (b"HTTP/1", b"HTTP/1.10", b"http/1.1", b"HTTP/1.1x", b"HTTPS/1.1"):
            with self.subTest(version=v):
                self.reject(b"CONNECT " + t + b" " + v + b"\r\nHost: " + t + b"\r\n\r\n", 400,
                            "http_request_error")

    def test_request_line_whitespace_400(self):
        """Exactly one SP between the three parts, no other whitespace (RFC 9112 §3, H1S-09)."""
        t = self.target()
        host = b"\r\nHost: " + t + b"\r\n\r\n"
        w = "whitespace in the request line"
        self.table({
            "two SP after the method": (b"CONNECT  " + t + b" HTTP/1.1" + host, w),
            "two SP before the version": (b"CONNECT " + t + b"  HTTP/1.1" + host, w),
            "trailing SP": (b"CONNECT " + t + b" HTTP/1.1 " + host, w),
            "HT after the method": (b"CONNECT\t" + t + b" HTTP/1.1" + host, w),
            "HT before the version": (b"CONNECT " + t + b"\tHTTP/1.1" + host, w),
            "VT in the target": (b"CONNECT " + t + b"\x0b HTTP/1.1" + host, w),
            "leading SP": (b" CONNECT " + t + b" HTTP/1.1" + host, "whitespace before the request line"),
        })

    def test_bare_cr_lf_400(self):
        """CRLF only (RFC 9112 §2.2, H1S-07)."""
        t = self.target()
        self.table({
            "bare LF everywhere": (b"CONNECT " + t + b" HTTP/1.1\nHost: " + t + b"\n\n", "bare LF"),
            "bare LF ending the head": (b"CONNECT " + t + b" HTTP/1.1\r\nHost: " + t + b"\r\n\n",
                                        "bare LF"),
            "bare CR in a field": (b"CONNECT " + t + b" HTTP/1.1\r\nHost: " + t + b"\rX: y\r\n\r\n",
                                   "bare CR"),
        })

    # -- field lines (RFC 9112 §5)
    def test_obs_fold_400(self):
        """obs-fold anywhere is 400 (RFC 9112 §5.2, H1S-06), a folded Host above all: llhttp 8.1
        would have joined it into the value that names the tunnel's peer."""
        t = self.target()
        fold = "obs-fold (line folding) is not allowed"
        self.table({
            "folded Host": (b"CONNECT " + t + b" HTTP/1.1\r\nHost:\r\n " + t + b"\r\n\r\n", fold),
            "Host continued": (b"CONNECT " + t + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\t:%d\r\n\r\n"
                               % self.echo.port, fold),
            "other field, SP": (H.connect_head(t, extra=b"X-A: a\r\n b\r\n"), fold),
            "other field, HT": (H.connect_head(t, extra=b"X-A: a\r\n\tb\r\n"), fold),
            "local GET": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", fold),
            "first field line": (b"CONNECT " + t + b" HTTP/1.1\r\n Host: " + t + b"\r\n\r\n",
                                 "whitespace before the first field line"),
        })

    def test_obs_fold_split_and_tls(self):
        """The same refusals when the fold arrives in another segment, and over TLS."""
        t = self.target()
        head = b"CONNECT " + t + b" HTTP/1.1\r\nHost:\r\n"
        fold = b" " + t + b"\r\n\r\n"
        self.reject(head + fold, 400, "http_request_error", split=[head, fold[:1], fold[1:]],
                    detail="obs-fold")
        self.reject(head + fold, 400, "http_request_error", tls=True, detail="obs-fold")

    def test_field_name_whitespace_400(self):
        """RFC 9112 §5.1 (H1S-05): `Host : x` is 400; llhttp 8.1 read it as a field "host "."""
        t = self.target()
        self.reject(b"CONNECT " + t + b" HTTP/1.1\r\nHost : " + t + b"\r\n\r\n", 400,
                    "http_request_error", detail="whitespace between a field name and its colon")

    # -- Host against the CONNECT target (as H2C-03 on h2)
    def test_host_names_another_authority_400(self):
        p = self.echo.port
        d = "Host differs from the CONNECT target"
        self.table({
            "other name": (H.connect_head(self.target(), host="evil.invalid:1"), d),
            "other port": (H.connect_head(self.target(), host="127.0.0.1:%d" % (p + 1)), d),
            "other address": (H.connect_head(self.target(), host="127.0.0.2:%d" % p), d),
            "no port, target not 80/443": (H.connect_head(self.target(), host="127.0.0.1"), d),
            "empty Host": (H.connect_head(self.target(), host=b" "), d),
            "name for an address": (H.connect_head(self.target(), host="localhost:%d" % p), d),
            "HTTP/1.0": (H.connect_head(self.target(), version="1.0", host="evil.invalid:1"), d),
            "invalid Host": (H.connect_head(self.target(), host="u@127.0.0.1:%d" % p),
                             "invalid Host field"),
        })

    def test_host_matching_target_tunnels(self):
        """The same authority spelled another way is the same: names compare case-insensitively,
        and trailing whitespace is not part of the value (ports by value and IPv6 spellings are
        in tests/unit/test_h1_req.c)."""
        p = self.echo.port
        for target, host in (("good.test:%d" % p, "GOOD.Test:%d" % p),
                             ("GOOD.test:%d" % p, "good.test:%d" % p),
                             ("127.0.0.1:%d" % p, "127.0.0.1:%d \t" % p)):
            with self.subTest(host=host):
                s = self.proxy.tunnel(target, host=host)
                with s:
                    s.sendall(b"same")
                    self.assertEqual(H.recv_exact(s, 4), b"same")

    # -- pipelining (H1S-14): a refusal after good requests
    def test_refusal_after_pipelined_get(self):
        """A good GET is answered, then the folded CONNECT behind it gets its 400 and EOF."""
        get = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        bad = b"CONNECT " + self.target() + b" HTTP/1.1\r\nHost:\r\n " + self.target() + b"\r\n\r\nPING"
        before = self.echo.accepted
        raw, eof = H.raw_exchange(self.proxy.tcp_port, get + bad)
        self.assertTrue(eof)
        r1 = H.parse_response(raw)
        self.assertEqual((r1.status, r1.body), (200, b"ok\n"))
        r2 = H.parse_response(r1.rest)
        self.assertEqual(r2.status, 400, raw)
        self.assertIn("obs-fold", r2.proxy_status().get("details", ""))
        self.assertEqual(r2.rest, b"")
        self.assertEqual(self.echo.accepted, before)
        self.good_tunnel()


class ConnectUdpBody(unittest.TestCase):
    """RFC 9298 §3.2: connect-udp is a GET; after its head come capsules. A request that announces
    content is refused before anything is dialled, and its body is never read as capsules."""

    @classmethod
    def setUpClass(cls):
        cls.udp = xcutil.UDPEcho()
        cls.proxy = H.Proxy()
        cls.proxy.start()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.udp.close()

    def head(self, method=b"GET", version=b"1.1", extra=b""):
        path = xcutil.udp_path("127.0.0.1", self.udp.port).encode()
        return (method + b" " + path + b" HTTP/" + version + b"\r\nHost: 127.0.0.1:%d\r\n"
                b"Connection: Upgrade\r\nUpgrade: connect-udp\r\nCapsule-Protocol: ?1\r\n"
                % self.proxy.tcp_port + extra + b"\r\n")

    def roundtrip(self, s, payload):
        """One datagram through the tunnel on |s| and back (retried: UDP may lose one)."""
        tun = xcutil.H1UdpTunnel(s)
        for _ in range(3):
            tun.send_payload(payload)
            if payload in tun.recv(2.0):
                return
        self.fail("no datagram came back through the connect-udp tunnel")

    def good_udp(self):
        s, r = xcutil.h1_connect_udp(self.proxy.tcp_port, "127.0.0.1", self.udp.port)
        with s:
            self.assertEqual(r.status, 101, r)
            self.roundtrip(s, b"after")

    def refuse(self, data, status, detail, proto="connect-udp"):
        before = self.udp.count
        s = H.dial(self.proxy.tcp_port)
        client = "127.0.0.1:%d" % s.getsockname()[1]
        with s:
            s.sendall(data)
            raw = H.recv_until_eof(s, timeout=10)
        r = H.parse_response(raw)
        self.assertEqual(r.status, status, raw)
        ps = r.proxy_status()
        self.assertEqual(ps.get("error"), "http_request_error", raw)
        self.assertIn(detail, ps.get("details", ""))
        self.assertEqual((r.header("connection") or "").lower(), "close")
        self.assertEqual(r.rest, b"", "exactly one response, then EOF")
        rec = self.proxy.wait_access_log(lambda x: x.get("client") == client)
        self.assertEqual((rec["status"], rec["proto"]), (status, proto), rec)
        self.assertIn(detail, rec["detail"])
        # The body was a valid DATAGRAM capsule; the refusal comes before any dial, so the origin
        # has seen nothing.
        self.assertEqual(self.udp.count, before, "the refused request's body reached the origin")
        self.good_udp()

    def test_content_length_400(self):
        body = xcutil.datagram_capsule(b"smuggled")
        self.refuse(self.head(extra=b"Content-Length: %d\r\n" % len(body)) + body, 400,
                    "connect-udp request with a body")

    def test_chunked_400(self):
        body = xcutil.datagram_capsule(b"smuggled")
        chunked = b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n"
        self.refuse(self.head(extra=b"Transfer-Encoding: chunked\r\n") + chunked, 400,
                    "connect-udp request with a body")

    def test_not_get_400(self):
        self.refuse(self.head(method=b"POST"), 400, "connect-udp needs GET")

    def test_content_length_0_allowed(self):
        s = H.dial(self.proxy.tcp_port)
        with s:
            s.sendall(self.head(extra=b"Content-Length: 0\r\n"))
            r = H.parse_response(H.read_head(s))
            self.assertEqual(r.status, 101, r)
            self.roundtrip(s, b"cl0")

    def test_http10_upgrade_ignored(self):
        """RFC 9110 §7.8: Upgrade in an HTTP/1.0 request is ignored, so this is a plain GET of a
        path the proxy does not serve (404), not a tunnel; the connection then closes."""
        before = self.udp.count
        raw, eof = H.raw_exchange(self.proxy.tcp_port, self.head(version=b"1.0")
                                  + xcutil.datagram_capsule(b"smuggled"))
        self.assertTrue(eof)
        r = H.parse_response(raw)
        self.assertEqual(r.status, 404, raw)
        self.assertEqual(r.rest, b"")
        self.assertEqual(self.udp.count, before, "an HTTP/1.0 Upgrade opened a tunnel")
        self.good_udp()


if __name__ == "__main__":
    H.main()
