"""CONNECT over HTTP/2 semantics (RFC 9113 §8.5), python-h2 with outbound validation off
(checklist H2C-01..H2C-13, H2C-18, H2C-19, H2-03, H2-06, NG-02, PYH2-01, §12 error table).

Every error case runs on a connection that also carries a live echo tunnel, which must keep
working afterwards: a stream error never takes the connection down.
"""
import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BannerOrigin, Blackhole, EchoOrigin, FakeDNS, HalfCloseOrigin, Proxy,  # noqa: E402
                     main)
from h2util import (CONNECT_ERROR, PROTOCOL_ERROR, SETTINGS_ENABLE_CONNECT_PROTOCOL, H2Client,  # noqa: E402
                    ResetOrigin, WatchOrigin, echo_roundtrip, frame, parse_metrics_text)


def closed_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class SemanticsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proxy = Proxy()
        cls.proxy.start()
        cls.echo = EchoOrigin()

    @classmethod
    def tearDownClass(cls):
        cls.echo.close()
        cls.proxy.stop()

    def client(self, tls=True):
        p = self.proxy
        return H2Client(p.tls_port, tls_ca=p.ca) if tls else H2Client(p.tcp_port)

    def sibling_ok(self, cli, sid, tag):
        msg = b"sibling still fine after " + tag.encode() + os.urandom(8)
        self.assertEqual(echo_roundtrip(cli, sid, msg, end_stream=False), msg, tag)

    def assert_rejected(self, st, statuses, tag):
        """A malformed request: either :status 4xx with Proxy-Status and END_STREAM, or
        RST_STREAM(PROTOCOL_ERROR)."""
        if st.reset is not None and st.headers is None:
            self.assertEqual(st.reset, PROTOCOL_ERROR, tag)
            return "RST"
        self.assertIn(st.status, statuses, tag)
        self.assertTrue(st.ended, tag)
        ps = st.header("proxy-status")
        self.assertIsNotNone(ps, tag)
        self.assertTrue(ps.startswith("h2tunnel; error="), ps)
        self.assertEqual(st.header("content-type"), "text/plain; charset=utf-8")
        self.assertTrue(bytes(st.data).startswith(str(st.status).encode()), st.data)
        return st.status

    # -- half-close (H2C-08, H2C-09)

    def test_h2c08_client_end_stream_becomes_fin(self):
        """H2C-08: 'abc' + END_STREAM; the origin replies only after EOF; the client gets the
        reply and then END_STREAM."""
        with HalfCloseOrigin() as o, self.client() as cli:
            sid = cli.open_tunnel(o.addr)
            cli.c.send_data(sid, b"abc", end_stream=True)
            cli.flush()
            st = cli.wait_closed(sid)
            self.assertTrue(st.ended)
            self.assertIsNone(st.reset)
            self.assertTrue(bytes(st.data).startswith(b"GOT 3 "), st.data)
            o.wait_finished(1)
            self.assertEqual(o.results[0]["received"], 3)

    def test_h2c09_upstream_fin_becomes_end_stream_and_client_can_still_send(self):
        """H2C-09: banner + FIN -> banner + END_STREAM; the stream stays half-open and the
        client's later 'x' reaches the origin."""
        with BannerOrigin(banner=b"220 hi\r\n") as o, self.client() as cli:
            sid = cli.open_tunnel(o.addr)
            st = cli.streams[sid]
            cli.wait(lambda: st.ended, 10, "END_STREAM after the banner")
            self.assertEqual(bytes(st.data), b"220 hi\r\n")
            self.assertIsNone(st.reset)
            cli.c.send_data(sid, b"x", end_stream=True)
            cli.flush()
            o.wait_finished(1)
            self.assertEqual(o.results[0]["data"], b"x")
            cli.pump(0.2)
            self.assertIsNone(st.reset)
            rec = self.proxy.wait_access_log(lambda r: r.get("target") == o.addr)
            self.assertEqual(rec["close"], "upstream_fin")
            self.assertEqual((rec["bytes_up"], rec["bytes_down"]), (1, 8))

    def test_h2c19_connect_headers_with_end_stream(self):
        """H2C-19 (decided behaviour): HEADERS with END_STREAM connects, sends 200, and FINs the
        upstream at once; the echo origin's FIN then ends the stream."""
        with self.client() as cli:
            sid = cli.connect(self.echo.addr, end_stream=True)
            st = cli.wait_closed(sid)
            self.assertEqual(st.status, 200)
            self.assertTrue(st.ended)
            self.assertEqual(bytes(st.data), b"")

    # -- resets (H2C-11, H2C-12, H2C-13)

    def test_h2c11_upstream_rst_becomes_connect_error(self):
        """H2C-11: the origin sends bytes and closes with SO_LINGER {1,0}: the client gets the
        bytes and RST_STREAM(CONNECT_ERROR=0xa); a sibling tunnel is unaffected."""
        with ResetOrigin(hello=b"hello then RST") as o, self.client() as cli:
            sib = cli.open_tunnel(self.echo.addr)
            sid = cli.open_tunnel(o.addr)
            st = cli.wait_closed(sid)
            self.assertEqual(st.reset, CONNECT_ERROR)
            self.assertEqual(bytes(st.data), b"hello then RST")
            self.sibling_ok(cli, sib, "H2C-11")
            rec = self.proxy.wait_access_log(lambda r: r.get("target") == o.addr)
            self.assertEqual(rec["close"], "upstream_reset")

    def test_h2c12_client_rst_resets_upstream(self):
        """H2C-12: client RST_STREAM -> the origin's recv fails with a reset (or sees EOF) soon."""
        with WatchOrigin() as o, self.client() as cli:
            sid = cli.open_tunnel(o.addr)
            cli.c.send_data(sid, b"some bytes")
            cli.flush()
            deadline = time.monotonic() + 10
            while o.results.get(0, {}).get("received", 0) < 10 and time.monotonic() < deadline:
                cli.pump(0.02)
            t0 = time.monotonic()
            cli.reset(sid)
            o.wait_finished(1, timeout=10)
            res = o.results[0]
            self.assertIn(res["end"], ("reset", "eof"), res)
            self.assertEqual(res["end"], "reset", "expected a TCP RST upstream (checklist §12)")
            self.assertLess(res["t_end"] - t0, 5)
            rec = self.proxy.wait_access_log(lambda r: r.get("target") == o.addr)
            self.assertEqual(rec["close"], "client_reset")

    def test_h2c13_trailer_headers_on_tunnel(self):
        """H2C-13: HEADERS(END_STREAM) after the 200 -> RST_STREAM(PROTOCOL_ERROR) and an upstream
        reset; an unknown frame type (0xfa) on a tunnel stream is ignored; siblings fine."""
        with WatchOrigin() as o, self.client() as cli:
            sib = cli.open_tunnel(self.echo.addr)
            # unknown frame type on the sibling tunnel: ignored (RFC 9113 §5.5)
            cli.sock.sendall(frame(0xFA, 0, sib, b"grease"))
            self.sibling_ok(cli, sib, "unknown frame type")
            sid = cli.open_tunnel(o.addr)
            cli.c.send_headers(sid, [("x-trailer", "y")], end_stream=True)
            cli.flush()
            st = cli.wait_closed(sid)
            self.assertEqual(st.reset, PROTOCOL_ERROR)
            o.wait_finished(1)
            self.assertEqual(o.results[0]["end"], "reset")
            self.sibling_ok(cli, sib, "H2C-13")

    # -- malformed CONNECTs (H2C-01..04)

    def test_h2c01_h2c02_h2c03_h2c04_malformed_connects(self):
        """Malformed CONNECTs each get 400 + Proxy-Status (or RST_STREAM(1)); the connection and
        a sibling tunnel keep working throughout."""
        target = self.echo.addr
        cases = [
            ("H2C-01 :path", [(":method", "CONNECT"), (":authority", target), (":path", "/")]),
            ("H2C-01 :scheme", [(":method", "CONNECT"), (":authority", target), (":scheme", "https")]),
            ("H2C-01 no :authority", [(":method", "CONNECT")]),
            ("H2C-02 empty", [(":method", "CONNECT"), (":authority", "")]),
            ("H2C-02 h", [(":method", "CONNECT"), (":authority", "h")]),
            ("H2C-02 h:", [(":method", "CONNECT"), (":authority", "h:")]),
            ("H2C-02 h:0", [(":method", "CONNECT"), (":authority", "h:0")]),
            ("H2C-02 h:65536", [(":method", "CONNECT"), (":authority", "h:65536")]),
            ("H2C-02 userinfo", [(":method", "CONNECT"), (":authority", "u@" + target)]),
            ("H2C-02 unbracketed v6", [(":method", "CONNECT"), (":authority", "2001:db8::1:443")]),
            ("H2C-02 port junk", [(":method", "CONNECT"), (":authority", "127.0.0.1:80x")]),
            ("H2C-03 host differs", [(":method", "CONNECT"), (":authority", target), ("host", "other:1")]),
            ("H2C-04 proxy-connection", [(":method", "CONNECT"), (":authority", target),
                                         ("proxy-connection", "keep-alive")]),
            ("H2C-04 connection", [(":method", "CONNECT"), (":authority", target), ("connection", "close")]),
        ]
        seen = {}
        before = self.echo.accepted
        with self.client() as cli:
            sib = cli.open_tunnel(self.echo.addr)
            for tag, hdrs in cases:
                sid = cli.request(hdrs)
                st = cli.wait_closed(sid)
                seen[tag] = self.assert_rejected(st, (400,), tag)
                self.sibling_ok(cli, sib, tag)
            # all of them at once on fresh stream ids, then the sibling again
            sids = [cli.request(h) for _t, h in cases]
            for (tag, _h), sid in zip(cases, sids):
                self.assert_rejected(cli.wait_closed(sid), (400,), tag + " (batch)")
            self.sibling_ok(cli, sib, "batch")
        sys.stderr.write("\n  [malformed] %s\n" % ", ".join("%s=%s" % kv for kv in seen.items()))
        self.assertEqual(self.echo.accepted - before, 1, "a malformed CONNECT reached the origin")
        # the proxy's own answers say why
        self.assertEqual(seen["H2C-02 h:0"], 400)
        self.assertEqual(seen["H2C-03 host differs"], 400)

    def test_h2c02_bracketed_v6_accepted(self):
        """H2C-02: [::1]:port is a valid authority (accepted when the policy allows loopback)."""
        try:
            o = EchoOrigin(host="::1", family=socket.AF_INET6)
        except OSError:
            self.skipTest("no IPv6 loopback")
        with o, self.client() as cli:
            sid = cli.open_tunnel(o.addr)
            self.assertEqual(echo_roundtrip(cli, sid, b"v6"), b"v6")

    # -- errors with Proxy-Status (H2C-18, §12)

    def test_h2c18_502_connection_refused(self):
        with self.client() as cli:
            sib = cli.open_tunnel(self.echo.addr)
            st = cli.wait_closed(cli.connect("127.0.0.1:%d" % closed_port()))
            self.assertEqual(st.status, 502)
            self.assertTrue(st.ended)
            self.assertIn("error=connection_refused", st.header("proxy-status"))
            self.assertTrue(bytes(st.data).startswith(b"502 Bad Gateway"))
            self.sibling_ok(cli, sib, "502")

    def test_h2c18_error_response_then_rst_no_error(self):
        """H2C-18 / RFC 9113 §8.1: after a complete error response to a CONNECT whose client side
        is still open, the proxy sends RST_STREAM(NO_ERROR), so failed CONNECTs do not hold
        stream slots. 300 refused CONNECTs (more than MAX_CONCURRENT_STREAMS=256) in batches of
        100 on one connection all get their 502/400, and the connection stays usable."""
        dead = "127.0.0.1:%d" % closed_port()
        with self.client(tls=False) as cli:
            sib = cli.open_tunnel(self.echo.addr)
            for batch in range(3):
                sids = [cli.connect(dead if i % 2 else "h:0") for i in range(100)]
                for i, sid in enumerate(sids):
                    st = cli.wait_closed(sid)
                    self.assertEqual(st.status, 502 if i % 2 else 400)
                    self.assertTrue(st.ended)
                # the follow-up RST_STREAM(NO_ERROR) for each
                cli.wait(lambda: all(cli.streams[s].reset is not None for s in sids), 10,
                         "RST_STREAM(NO_ERROR) after the error responses")
                self.assertEqual({cli.streams[s].reset for s in sids}, {0})
            self.assertIsNone(cli.goaway)
            self.sibling_ok(cli, sib, "300 refused CONNECTs")

    def test_h2c18_502_dns_nxdomain(self):
        with FakeDNS({"known.test": ["127.0.0.1"]}) as dns, \
                Proxy(["--dns-server", dns.addr]) as p, \
                H2Client(p.tls_port, tls_ca=p.ca) as cli:
            st = cli.wait_closed(cli.connect("nosuch.test:443"))
            self.assertEqual(st.status, 502)
            self.assertIn("error=dns_error", st.header("proxy-status"))
            # and the name that resolves goes through
            sid = cli.open_tunnel("known.test:%d" % self.echo.port)
            self.assertEqual(echo_roundtrip(cli, sid, b"via dns"), b"via dns")

    def test_403_policy(self):
        """Without --allow-net loopback a loopback target is 403 destination_ip_prohibited; a port
        outside the default --allow-ports (443,80) is 403 http_request_denied. Nothing is dialled
        and the connection lives on."""
        before = self.echo.accepted
        with Proxy(allow_loopback=False, any_port=True) as p, H2Client(p.tls_port, tls_ca=p.ca) as cli:
            st = cli.wait_closed(cli.connect(self.echo.addr))
            self.assertEqual(st.status, 403)
            self.assertTrue(st.ended)
            self.assertIn("error=destination_ip_prohibited", st.header("proxy-status"))
            for a in ("127.0.0.2:%d" % self.echo.port, "[::1]:%d" % self.echo.port):
                st = cli.wait_closed(cli.connect(a))
                self.assertEqual(st.status, 403, a)
            g = cli.wait_closed(cli.get("/healthz"))
            self.assertEqual((g.status, bytes(g.data)), (200, b"ok\n"))
        with Proxy(allow_loopback=True, any_port=False) as p, H2Client(p.tls_port, tls_ca=p.ca) as cli:
            st = cli.wait_closed(cli.connect(self.echo.addr))
            self.assertEqual(st.status, 403)
            self.assertIn("error=http_request_denied", st.header("proxy-status"))
            g = cli.wait_closed(cli.get("/healthz"))
            self.assertEqual((g.status, bytes(g.data)), (200, b"ok\n"))
        self.assertEqual(self.echo.accepted, before, "a denied CONNECT reached the origin")

    def test_504_connect_timeout(self):
        with Blackhole() as bh:
            if bh.works:
                args, target, token = ["--connect-timeout", "300ms"], bh.addr, "connection_timeout"
                dns = None
            else:  # SYNs are not dropped here: fall back to a silent resolver (dns_timeout)
                dns = FakeDNS(silent=True)
                args, target, token = ["--dns-server", dns.addr, "--dns-timeout", "300ms"], "slow.test:443", "dns_timeout"
            try:
                with Proxy(args) as p, H2Client(p.tls_port, tls_ca=p.ca) as cli:
                    sib = cli.open_tunnel(self.echo.addr)
                    st = cli.wait_closed(cli.connect(target), timeout=15)
                    self.assertEqual(st.status, 504)
                    self.assertIn("error=" + token, st.header("proxy-status"))
                    self.sibling_ok(cli, sib, "504")
            finally:
                if dns:
                    dns.close()

    # -- extended CONNECT and SETTINGS (H2-03, NG-02, XC)

    def test_h2_03_settings_and_unknown_protocol_501(self):
        """SETTINGS: ENABLE_CONNECT_PROTOCOL=1, MAX_CONCURRENT_STREAMS=256, INITIAL_WINDOW_SIZE=1 MiB;
        an extended CONNECT with an unserved :protocol gets 501 with Proxy-Status."""
        with self.client() as cli:
            s = cli.wait_settings()
            self.assertEqual(s.get(SETTINGS_ENABLE_CONNECT_PROTOCOL), 1)
            self.assertEqual(s.get(3), 256)
            self.assertEqual(s.get(4), 1 << 20)
            self.assertNotEqual(s.get(2), 1)  # never ENABLE_PUSH=1
            # websocket and connect-udp are served (test_xc_*); anything else is 501 (XC-04).
            for proto in ("foo-unknown", "connect-ip"):
                sid = cli.request([(":method", "CONNECT"), (":protocol", proto), (":scheme", "https"),
                                       (":authority", self.echo.addr), (":path", "/chat")])
                st = cli.wait_closed(sid)
                self.assertEqual(st.status, 501, proto)
                self.assertIsNotNone(st.header("proxy-status"))

    def test_no_extended_connect(self):
        """--no-extended-connect: the setting is absent and :protocol is refused by nghttp2 (RST 1)."""
        with Proxy(["--no-extended-connect"]) as p, H2Client(p.tls_port, tls_ca=p.ca) as cli:
            s = cli.wait_settings()
            self.assertNotIn(SETTINGS_ENABLE_CONNECT_PROTOCOL, s)
            sid = cli.request([(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "https"),
                                   (":authority", self.echo.addr), (":path", "/")])
            st = cli.wait_closed(sid)
            self.assertEqual(st.reset, PROTOCOL_ERROR)
            t = cli.open_tunnel(self.echo.addr)  # plain CONNECT still fine
            self.assertEqual(echo_roundtrip(cli, t, b"plain"), b"plain")

    # -- local requests on the tunnel connection (H2-06)

    def test_h2_06_local_requests_beside_tunnels(self):
        """GET /healthz, /metrics, an unknown path and a POST on the same connection as live
        tunnels; metrics count the tunnels and h2 streams."""
        for tls in (True, False):
            with self.client(tls) as cli:
                t1 = cli.open_tunnel(self.echo.addr)
                t2 = cli.open_tunnel(self.echo.addr)
                h = cli.wait_closed(cli.get("/healthz"))
                self.assertEqual((h.status, bytes(h.data)), (200, b"ok\n"))
                self.sibling_ok(cli, t1, "healthz")
                m = cli.wait_closed(cli.get("/metrics"))
                self.assertEqual(m.status, 200)
                mm = parse_metrics_text(bytes(m.data).decode())
                self.assertGreaterEqual(mm['h2tunnel_tunnels_opened_total{protocol="connect"}'], 2)
                self.assertGreaterEqual(mm['h2tunnel_tunnels_active{protocol="connect"}'], 2)
                self.assertGreaterEqual(mm["h2tunnel_h2_streams_total"], 4)
                self.assertGreaterEqual(mm['h2tunnel_connections_by_protocol_total{protocol="h2"}'], 1)
                n = cli.wait_closed(cli.get("/nope"))
                self.assertEqual(n.status, 404)
                sid = cli.request([(":method", "POST"), (":scheme", "https"), (":authority", "localhost"),
                                       (":path", "/healthz")], data=b"body")
                cli.c.end_stream(sid)
                cli.flush()
                self.assertEqual(cli.wait_closed(sid).status, 405)
                self.sibling_ok(cli, t2, "metrics")
                self.sibling_ok(cli, t1, "post")


if __name__ == "__main__":
    main()
