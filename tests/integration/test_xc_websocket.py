"""WebSocket over HTTP/2 (RFC 8441) through h2tunnel: a Node 20 http2 client (NODE-02) with its
own RFC 6455 framing talks to a python3-websockets echo backend; python-h2 (PYH2-01) drives the
fake-backend cases. Checklist IDs: XC-01, XC-06, XC-07, XC-08, XC-09, XC-10, XC-12."""

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from h2util import H2Client  # noqa: E402
import xcutil  # noqa: E402
from harness import Proxy  # noqa: E402

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


class FakeWSBackend(harness.TCPOrigin):
    """Reads the upgrade request head and answers according to `mode`:
    'status403' a plain 403; 'badaccept' a 101 with a wrong Sec-WebSocket-Accept;
    'noupgrade' a 101 with the right Accept but no Upgrade field;
    'early' a correct 101 plus a text frame in the same write (XC-09), then echoes;
    'abort' a correct 101, then an abortive close (RST)."""

    def __init__(self, mode, **kw):
        self.mode = mode
        super().__init__(**kw)

    def handle(self, c, idx, res):
        head = harness.read_head(c).decode("latin-1")
        res["head"] = head
        key = ""
        for ln in head.split("\r\n"):
            k, _, v = ln.partition(":")
            if k.strip().lower() == "sec-websocket-key":
                key = v.strip()
        if self.mode == "status403":
            body = b"no websockets for you\n"
            c.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                      b"Connection: close\r\n\r\n" % len(body) + body)
            return
        acc = accept_for(key) if self.mode != "badaccept" else accept_for("not-the-key")
        upgrade = "" if self.mode == "noupgrade" else "Upgrade: websocket\r\n"
        resp = ("HTTP/1.1 101 Switching Protocols\r\n%sConnection: Upgrade\r\n"
                "Sec-WebSocket-Accept: %s\r\n\r\n" % (upgrade, acc)).encode()
        if self.mode == "early":
            c.sendall(resp + b"\x81\x05early")  # unmasked server text frame "early"
            c.settimeout(10)
            while True:
                b = c.recv(65536)
                if not b:
                    break
                res.setdefault("got", bytearray()).extend(b)
            return
        c.sendall(resp)
        if self.mode == "abort":
            time.sleep(0.2)
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return
        time.sleep(0.5)


def ws_headers(authority, path="/chat", scheme="http", extra=()):
    return [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", scheme),
            (":authority", authority), (":path", path), ("sec-websocket-version", "13")] + list(extra)


def masked_frame(opcode, payload):
    mask = os.urandom(4)
    assert len(payload) < 126
    return (bytes([0x80 | opcode, 0x80 | len(payload)]) + mask
            + bytes(b ^ mask[i & 3] for i, b in enumerate(payload)))


class WebSocketOverH2(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not shutil.which(xcutil.NODE):
            raise unittest.SkipTest("node not found")
        cls.ws = xcutil.WSBackend()

    @classmethod
    def tearDownClass(cls):
        cls.ws.close()

    def node(self, proxy, **cfg):
        cfg.setdefault("url", "https://127.0.0.1:%d" % proxy.tls_port)
        cfg.setdefault("ca", proxy.ca)
        cfg.setdefault("timeoutMs", 20000)
        r = xcutil.node_ws_client(cfg)
        if cfg.get("mode") == "status":
            self.assertEqual(r.get("errors"), [], r)
            self.assertTrue(r.get("ended"), r)
        return r

    def assert_full_exchange(self, r):
        self.assertEqual(r.get("errors"), [], r)
        self.assertTrue(r.get("enableConnectProtocol"), r)               # XC-01 / NODE-02
        self.assertEqual(r.get("status"), 200, r)                         # XC-07: 200, never 101
        self.assertNotIn("sec-websocket-accept", r["headers"])           # XC-07: stripped
        self.assertNotIn("upgrade", r["headers"])
        self.assertTrue(r.get("text_ok"), r)
        self.assertTrue(r.get("binary_ok"), r)                            # 100 KiB binary
        self.assertEqual(r.get("binary_len"), 100 * 1024)
        self.assertTrue(r.get("pong_ok"), r)
        self.assertEqual(r.get("close_code"), 1000, r)                    # close echoed
        self.assertTrue(r.get("ended"), r)                                # then the stream ends
        self.assertEqual(r.get("rstCode"), 0, r)

    def test_echo_via_authority_and_subprotocol(self):
        """XC-06/07/08: backend = :authority (loopback allowed); text, 100 KiB binary, ping,
        close 1000; 'chat' negotiated; fresh Sec-WebSocket-Key; access log and metrics."""
        n0 = len(self.ws.requests())
        client_key = "dGhlIHNhbXBsZSBub25jZQ=="
        with Proxy() as p:
            r = self.node(p, authority="127.0.0.1:%d" % self.ws.port, scheme="http",
                          subprotocol="chat", origin="https://app.example",
                          extraHeaders={"sec-websocket-key": client_key})
            self.assert_full_exchange(r)
            self.assertEqual(r["headers"].get("sec-websocket-protocol"), "chat")
            reqs = self.ws.requests()[n0:]
            self.assertEqual(len(reqs), 1, reqs)
            self.assertEqual(reqs[0]["path"], "/chat")
            h = {k.lower(): v for k, v in reqs[0]["headers"]}
            self.assertEqual(h.get("upgrade", "").lower(), "websocket")
            self.assertEqual(h.get("sec-websocket-version"), "13")
            self.assertEqual(h.get("sec-websocket-protocol"), "chat")
            self.assertEqual(h.get("origin"), "https://app.example")
            self.assertEqual(h.get("host"), "127.0.0.1:%d" % self.ws.port)
            key = h.get("sec-websocket-key", "")
            self.assertEqual(len(base64.b64decode(key)), 16)
            self.assertNotEqual(key, client_key)  # the proxy makes its own key (XC-06)
            rec = p.wait_access_log(lambda x: x.get("proto") == "websocket" and "bytes_up" in x)
            self.assertEqual(rec["status"], 200)
            self.assertEqual(rec["front"], "h2")
            self.assertGreater(rec["bytes_up"], 100 * 1024)
            self.assertGreater(rec["bytes_down"], 100 * 1024)
            m = p.metrics()
            self.assertGreaterEqual(m.get('h2tunnel_tunnels_opened_total{protocol="websocket"}', 0), 1)

    def test_route_skips_policy(self):
        """--ws-route chat.example:443=ws://127.0.0.1:PORT works on a proxy with the default
        policy (no --allow-net loopback, default ports): routes skip the target policy."""
        route = "chat.example:443=ws://127.0.0.1:%d" % self.ws.port
        with Proxy(["--ws-route", route], allow_loopback=False, any_port=False) as p:
            r = self.node(p, authority="chat.example:443", scheme="https", subprotocol="chat")
            self.assert_full_exchange(r)
            self.assertEqual(r["headers"].get("sec-websocket-protocol"), "chat")
            # Without the route the same loopback backend is refused by the policy.
            r2 = self.node(p, authority="127.0.0.1:%d" % self.ws.port, scheme="http",
                           mode="status")
            self.assertEqual(r2.get("status"), 403, r2)

    def test_routes_only(self):
        """XC-05/XC-12: with --ws-routes-only an unrouted :authority gets 421 and no backend
        connection, while the routed one works."""
        route = "chat.example:443=ws://127.0.0.1:%d" % self.ws.port
        n0 = len(self.ws.requests())
        with Proxy(["--ws-route", route, "--ws-routes-only"]) as p:
            r = self.node(p, authority="127.0.0.1:%d" % self.ws.port, scheme="http", mode="status")
            self.assertEqual(r.get("status"), 421, r)
            self.assertIn("error=http_request_denied", r["headers"].get("proxy-status", ""))
            self.assertEqual(len(self.ws.requests()), n0)
            r = self.node(p, authority="chat.example:443", scheme="https", subprotocol="chat")
            self.assert_full_exchange(r)

    def test_private_backend_forbidden(self):
        """websocket to a loopback :authority under the default policy -> 403, no connection."""
        n0 = len(self.ws.requests())
        with Proxy(allow_loopback=False) as p:
            r = self.node(p, authority="127.0.0.1:%d" % self.ws.port, scheme="http", mode="status")
            self.assertEqual(r.get("status"), 403, r)
            self.assertIn("error=destination_ip_prohibited", r["headers"].get("proxy-status", ""))
        self.assertEqual(len(self.ws.requests()), n0)

    def test_backend_refuses_403(self):
        """XC-07: a non-101 backend status is relayed with that status."""
        with FakeWSBackend("status403") as b, Proxy() as p:
            r = self.node(p, authority=b.addr, scheme="http", mode="status")
            self.assertEqual(r.get("status"), 403, r)
            self.assertTrue(r.get("ended"), r)
            self.assertIn("Upgrade: websocket", b.results[0]["head"])
            self.assertIn("GET /chat HTTP/1.1", b.results[0]["head"])

    def test_backend_down_502(self):
        """A backend that is down -> 502 + proxy-status connection_refused."""
        port = harness.free_port()
        with Proxy() as p:
            r = self.node(p, authority="127.0.0.1:%d" % port, scheme="http", mode="status")
            self.assertEqual(r.get("status"), 502, r)
            ps = r["headers"].get("proxy-status", "")
            self.assertIn("error=connection_refused", ps)

    def test_wss_route_with_upstream_ca(self):
        """XC-10: a wss:// route makes a verified TLS connection to the backend (trust from
        --upstream-ca); without that CA, verification fails and the client gets a 502."""
        d = tempfile.mkdtemp(prefix="h2t-wss-")
        try:
            subprocess.run(["bash", os.path.join(harness.SOURCE_DIR, "certs", "mkcerts.sh"), d],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with xcutil.WSBackend(tls=(os.path.join(d, "cert.pem"), os.path.join(d, "key.pem"))) as wss:
                route = "secure.example:443=wss://localhost:%d" % wss.port
                with Proxy(["--ws-route", route, "--upstream-ca", os.path.join(d, "ca.pem")],
                           allow_loopback=False, any_port=False) as p:
                    r = self.node(p, authority="secure.example:443", scheme="https",
                                  subprotocol="chat")
                    self.assert_full_exchange(r)
                    self.assertEqual(len(wss.requests()), 1)
                with Proxy(["--ws-route", route], allow_loopback=False, any_port=False) as p:
                    r = self.node(p, authority="secure.example:443", scheme="https", mode="status")
                    self.assertEqual(r.get("status"), 502, r)
                    self.assertEqual(len(wss.requests()), 1)  # handshake never reached it
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_h2c_prior_knowledge(self):
        """The same exchange on the cleartext listener (h2c prior knowledge)."""
        with Proxy() as p:
            r = xcutil.node_ws_client({"url": "http://127.0.0.1:%d" % p.tcp_port,
                                       "authority": "127.0.0.1:%d" % self.ws.port,
                                       "scheme": "http", "binSize": 100 * 1024})
            self.assert_full_exchange(r)


class FakeBackendCases(unittest.TestCase):
    """python-h2 client against hand-written backends."""

    def test_bad_101_502(self):
        """XC-07: a 101 with a wrong Sec-WebSocket-Accept, or without Upgrade: websocket, is not
        an upgrade -> 502 proxy-status http_upgrade_failed naming the problem."""
        for mode, detail in (("badaccept", "Sec-WebSocket-Accept"), ("noupgrade", "Upgrade")):
            with self.subTest(mode=mode), FakeWSBackend(mode) as b, Proxy() as p, \
                    H2Client(p.tls_port, tls_ca=p.ca, **xcutil.WINDOWS) as c:
                sid = c.request(ws_headers(b.addr))
                st = c.wait_response(sid)
                self.assertEqual(st.status, 502, st.headers)
                ps = st.headers.get("proxy-status", "")
                self.assertIn("error=http_upgrade_failed", ps)
                self.assertIn(detail, ps)
                c.wait_closed(sid)
                self.assertIn(st.reset, (None, 0))  # RST_STREAM(NO_ERROR) after a complete answer is allowed (RFC 9113 §8.1, H2C-18)

    def test_frame_with_101_forwarded(self):
        """XC-09: bytes in the same read as the backend's 101 head reach the client; then
        client frames reach the backend."""
        with FakeWSBackend("early") as b, Proxy() as p, H2Client(p.tls_port, tls_ca=p.ca, **xcutil.WINDOWS) as c:
            sid = c.request(ws_headers(b.addr))
            st = c.wait_response(sid)
            self.assertEqual(st.status, 200, st.headers)
            c.wait(lambda: len(st.data) >= 7, 10, "early frame")
            self.assertEqual(bytes(st.data), b"\x81\x05early")
            f = masked_frame(1, b"hi")
            c.send_all(sid, f, end_stream=True)
            c.wait_closed(sid)
            b.wait_finished(1)
            self.assertEqual(bytes(b.results[0].get("got", b"")), f)

    def test_backend_abort_cancel(self):
        """XC-08: a backend abort after the 200 -> RST_STREAM(CANCEL), connection survives."""
        with FakeWSBackend("abort") as b, Proxy() as p, H2Client(p.tls_port, tls_ca=p.ca, **xcutil.WINDOWS) as c:
            sid = c.request(ws_headers(b.addr))
            st = c.wait_response(sid)
            self.assertEqual(st.status, 200, st.headers)
            c.wait_closed(sid)
            self.assertEqual(st.reset, 8, "expected RST_STREAM(CANCEL)")
            self.assertTrue(c.ping_ok())


class RequestFieldChecks(unittest.TestCase):
    """Issue 8 item 2 (XC-06): the backend Upgrade request is built from the client's fields
    before the target policy runs, so any client controls them. Fields too large for the request
    (--max-header-bytes) get 431, malformed ones 400, both with Proxy-Status and a log line,
    before any backend connection; the proxy and the client's connection survive. On 0a1cfe5 the
    first case overflowed a stack buffer (ASan report; SIGSEGV in a release build)."""

    def request_with(self, path="/chat", **fields):
        hdrs = ws_headers("127.0.0.1:1", path=path)
        hdrs = [h for h in hdrs if h[0] != "sec-websocket-version" or "version" not in fields]
        for k, v in fields.items():
            hdrs.append(("sec-websocket-" + k, v))
        return hdrs

    def check(self, status, log_words, path="/chat", args=("--h2-max-header-list", "1m"),
              **fields):
        with FakeWSBackend("status403") as b, Proxy(list(args)) as p:
            hdrs = [(k, v if k != ":authority" else b.addr)
                    for k, v in self.request_with(path, **fields)]
            with H2Client(p.tls_port, tls_ca=p.ca, **xcutil.WINDOWS) as c:
                sid = c.request(hdrs)
                st = c.wait_response(sid, timeout=20)
                self.assertEqual(st.status, status, st.headers)
                self.assertIn("error=http_request_error", st.headers.get("proxy-status", ""))
                c.wait_closed(sid)
                self.assertTrue(c.ping_ok())
            deadline = time.time() + 10
            while not all(w in p.stderr() for w in log_words):
                self.assertLess(time.time(), deadline, "no log line with %r:\n%s"
                                % (log_words, p.stderr()[-3000:]))
                time.sleep(0.05)
            rec = p.wait_access_log(lambda x: x.get("proto") == "websocket")
            self.assertEqual(rec["status"], status)
            self.assertEqual(b.accepted, 0, "the backend was dialed")

    def test_huge_path_and_version(self):
        """The issue's reproduction: a 25 KB :path and a 40 KB sec-websocket-version."""
        self.check(400, ["Sec-WebSocket-Version"], path="/" + "a" * 25000, version="1" * 40000)

    def test_request_too_large_431(self):
        """Valid fields whose request exceeds --max-header-bytes (default 32k) -> 431."""
        self.check(431, ["larger than --max-header-bytes"], path="/" + "a" * 25000, extensions="x" * 40000)

    def test_request_limit_is_max_header_bytes(self):
        """A 20 KB path fits the default 32k but not --max-header-bytes 16k."""
        self.check(431, ["larger than --max-header-bytes"], path="/" + "p" * 20000,
                   args=("--max-header-bytes", "16k"))

    def test_version_not_digits(self):
        for v in ("13abc", "256", "013", ""):
            with self.subTest(version=v):
                self.check(400, ["Sec-WebSocket-Version"], version=v)

    def test_path_not_origin_form(self):
        for path in ("/a#frag", "/%zz", "/a\\b", "/a|b", "/%4"):
            with self.subTest(path=path):
                self.check(400, ["origin-form"], path=path)

    def test_ctl_bytes_never_reach_the_backend(self):
        """Whitespace or no leading '/' in :path, CR/LF/NUL in a value: nghttp2 resets the stream itself
        (PROTOCOL_ERROR, RFC 9113 §8.2.1) before our own check; no backend connection either."""
        cases = [{"path": "/a b"}, {"path": "chat"}, {"extensions": "a\r\nX-Injected: 1"}, {"protocol": "chat\x00x"}]
        with FakeWSBackend("status403") as b, Proxy(["--h2-max-header-list", "1m"]) as p, \
                H2Client(p.tls_port, tls_ca=p.ca, **xcutil.WINDOWS) as c:
            for case in cases:
                with self.subTest(**case):
                    path = case.pop("path", "/chat")
                    hdrs = [(k, v if k != ":authority" else b.addr)
                            for k, v in self.request_with(path, **case)]
                    sid = c.request(hdrs)
                    st = c.wait_closed(sid)
                    self.assertIsNone(st.status)
                    self.assertEqual(st.reset, 1)
            self.assertTrue(c.ping_ok())
            self.assertEqual(b.accepted, 0, "the backend was dialed")


if __name__ == "__main__":
    xcutil.main()
