"""Extended CONNECT negotiation and dispatch: SETTINGS_ENABLE_CONNECT_PROTOCOL (XC-01),
--no-extended-connect (XC-02, NODE-02), malformed extended CONNECT requests (XC-03) and unknown
:protocol values (XC-04, IP-01). python-h2 with validation off (PYH2-01) and Node 20."""

import os
import shutil
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from h2util import H2Client  # noqa: E402
import xcutil  # noqa: E402
from harness import EchoOrigin, Proxy  # noqa: E402

ENABLE_CONNECT_PROTOCOL = 0x8


def xc(protocol, authority, path="/", scheme="https"):
    return [(":method", "CONNECT"), (":protocol", protocol), (":scheme", scheme),
            (":authority", authority), (":path", path)]


class ExtendedConnectNegotiation(unittest.TestCase):
    def check_connection_alive(self, c, echo):
        """The connection still works: PING, and a plain CONNECT echoes."""
        self.assertTrue(c.ping_ok())
        sid = c.connect(echo.addr)
        st = c.wait_response(sid)
        self.assertEqual(st.status, 200)
        c.send_all(sid, b"still alive", end_stream=True)
        c.wait_closed(sid)
        self.assertEqual(bytes(st.data), b"still alive")
        self.assertIsNone(c.goaway)

    def test_setting_advertised(self):
        """XC-01: the server's first SETTINGS carries ENABLE_CONNECT_PROTOCOL = 1."""
        with Proxy() as p, H2Client(p.tls_port, tls_ca=p.ca, **xcutil.WINDOWS) as c:
            c.wait_settings()
            self.assertEqual(c.first_settings.get(ENABLE_CONNECT_PROTOCOL), 1, c.first_settings)
        with Proxy() as p, H2Client(p.tcp_port, **xcutil.WINDOWS) as c:  # h2c prior knowledge too
            c.wait_settings()
            self.assertEqual(c.first_settings.get(ENABLE_CONNECT_PROTOCOL), 1, c.first_settings)

    def test_unknown_protocol_501(self):
        """XC-04 / IP-01: :protocol foo and connect-ip -> 501 with proxy-status; connection
        survives; the access log records the rejection."""
        with EchoOrigin() as echo, Proxy() as p, H2Client(p.tls_port, tls_ca=p.ca, **xcutil.WINDOWS) as c:
            auth = "localhost:%d" % p.tls_port
            for proto, path in (("foo", "/"), ("connect-ip", "/.well-known/masque/ip/*/*/")):
                sid = c.request(xc(proto, auth, path))
                st = c.wait_response(sid)
                self.assertEqual(st.status, 501, (proto, st.headers))
                self.assertIn("h2tunnel", st.headers.get("proxy-status", ""))
                c.wait_closed(sid)
                self.assertIn(st.reset, (None, 0))  # RST_STREAM(NO_ERROR) after a complete answer is allowed (RFC 9113 §8.1, H2C-18)
            self.check_connection_alive(c, echo)
            self.assertEqual(echo.accepted, 1)  # only the liveness CONNECT reached an origin
            rec = p.wait_access_log(lambda x: x.get("status") == 501)
            self.assertEqual(rec["front"], "h2")

    def test_malformed_extended_connect(self):
        """XC-03: :protocol without :path / :scheme / :authority, or on a GET -> RST_STREAM
        (PROTOCOL_ERROR) from nghttp2; the connection survives."""
        with EchoOrigin() as echo, Proxy() as p, H2Client(p.tls_port, tls_ca=p.ca, **xcutil.WINDOWS) as c:
            auth = "localhost:%d" % p.tls_port
            full = xc("websocket", auth, "/chat", "http")
            variants = {
                "no :path": [h for h in full if h[0] != ":path"],
                "no :scheme": [h for h in full if h[0] != ":scheme"],
                "no :authority": [h for h in full if h[0] != ":authority"],
                ":protocol on GET": [(":method", "GET")] + full[1:],
            }
            for name, headers in variants.items():
                sid = c.request(headers)
                st = c.wait_closed(sid)
                self.assertEqual(st.reset, 1, (name, st.status, st.reset))
            self.check_connection_alive(c, echo)

    def test_no_extended_connect(self):
        """XC-02: --no-extended-connect -> the setting is absent, and :protocol requests
        (websocket, connect-udp) get RST_STREAM(PROTOCOL_ERROR); the connection survives and
        no backend is contacted."""
        with EchoOrigin() as echo, xcutil.UDPEcho() as ue, Proxy(["--no-extended-connect"]) as p, \
                H2Client(p.tls_port, tls_ca=p.ca, **xcutil.WINDOWS) as c:
            c.wait_settings()
            self.assertNotIn(ENABLE_CONNECT_PROTOCOL, c.first_settings)
            self.assertEqual(c.c.remote_settings.enable_connect_protocol, 0)
            auth = "localhost:%d" % p.tls_port
            sid = c.request(xc("websocket", echo.addr, "/chat", "http")
                            + [("sec-websocket-version", "13")])
            st = c.wait_closed(sid)
            self.assertEqual((st.status, st.reset), (None, 1))
            sid = c.connect_udp(auth, xcutil.udp_path("127.0.0.1", ue.port))
            st = c.wait_closed(sid)
            self.assertEqual((st.status, st.reset), (None, 1))
            self.check_connection_alive(c, echo)
            self.assertEqual(echo.accepted, 1)
            self.assertEqual(ue.count, 0)

    @harness.needs_tool(shutil.which(xcutil.NODE), "node (nodejs)")
    def test_no_extended_connect_node(self):
        """NODE-02: Node sees enableConnectProtocol false and its :protocol stream is reset
        with code 1; with the default configuration it sees true."""
        with Proxy(["--no-extended-connect"]) as p:
            r = xcutil.node_ws_client({"url": "https://127.0.0.1:%d" % p.tls_port, "ca": p.ca,
                                       "authority": "127.0.0.1:9", "scheme": "http",
                                       "mode": "status", "timeoutMs": 10000})
            self.assertIs(r.get("enableConnectProtocol"), False, r)
            self.assertIsNone(r.get("status"), r)
            self.assertEqual(r.get("rstCode"), 1, r)
            self.assertNotIn("timeout", r.get("errors", []))
        with Proxy() as p:
            r = xcutil.node_ws_client({"url": "https://127.0.0.1:%d" % p.tls_port, "ca": p.ca,
                                       "authority": "127.0.0.1:%d" % harness.free_port(),
                                       "scheme": "http", "mode": "status", "timeoutMs": 10000})
            self.assertIs(r.get("enableConnectProtocol"), True, r)
            self.assertEqual(r.get("status"), 502, r)


if __name__ == "__main__":
    xcutil.main()
