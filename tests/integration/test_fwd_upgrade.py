"""HTTP/1.1 Upgrade through forward mode (issue 11 item 6; checklist FWD-03, FWD-14).

`GET ws://origin/chat` (what curl 8.14 sends to an HTTP proxy for a ws:// URL) or
`GET http://origin/chat` with `Upgrade: websocket` is relayed to the origin with its Upgrade and
`Connection: upgrade`; the origin's 101 is relayed and the exchange becomes a tunnel (the tunnel/
machinery: one access-log line when it ends, proto "websocket"). The origin is python3-websockets
(Debian), a real WebSocket server; the clients are curl (the handshake) and this file's client,
which frames messages with python3-websockets' own frame codec.

HTTP/2 has no Upgrade (RFC 9113 §8.2.2: connection-specific fields make a request malformed);
WebSocket over HTTP/2 is the RFC 8441 extended CONNECT tunnel (test_xc_websocket.py)."""

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
import xcutil  # noqa: E402
from harness import Proxy, dial, main, parse_response, read_head, recv_until_eof  # noqa: E402

try:  # Debian's python3-websockets (scripts/deps.sh); the tests run with /usr/bin/python3
    from websockets.frames import Frame, Opcode
    from websockets.streams import StreamReader
except ImportError:  # pragma: no cover
    Frame = None

CURL = shutil.which("curl")
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest()).decode()


class WSClient:
    """A WebSocket client over a socket to the proxy: the upgrade request in absolute-form, then
    RFC 6455 frames (masked, as a client's must be) through python3-websockets' codec."""

    def __init__(self, sock, target, host, early=b""):
        self.sock = sock
        self.key = base64.b64encode(os.urandom(16)).decode()
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: chat\r\n"
               "Proxy-Connection: keep-alive\r\n\r\n" % (target, host, self.key)).encode()
        sock.sendall(req + early)
        head = read_head(sock, timeout=30)  # byte by byte: nothing after the head is taken
        self.resp = parse_response(head)
        self.reader = StreamReader()

    def send(self, opcode, data):
        self.sock.sendall(Frame(opcode, data).serialize(mask=True))

    def recv(self, timeout=60):
        """The next frame: the codec's parser is a generator that yields when it needs more bytes."""
        deadline = time.time() + timeout
        gen = Frame.parse(self.reader.read_exact, mask=False, max_size=64 << 20)
        try:
            next(gen)
            while True:
                self._refill(deadline)
                next(gen)
        except StopIteration as done:
            return done.value

    def _refill(self, deadline):
        self.sock.settimeout(max(0.1, deadline - time.time()))
        data = self.sock.recv(1 << 20)
        if not data:
            raise AssertionError("EOF before a whole frame")
        self.reader.feed_data(data)


@unittest.skipIf(Frame is None, "python3-websockets is missing (scripts/deps.sh installs it)")
class ForwardUpgrade(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.ws = xcutil.WSBackend()
        cls.proxy = Proxy()
        cls.proxy.start()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.ws.close()

    def origin(self):
        return "127.0.0.1:%d" % self.ws.port

    def exchange(self, sock, target, early=b""):
        """FWD-14: 101 relayed, echo of a text, a 1 MiB binary message, ping, close."""
        c = WSClient(sock, target, self.origin(), early=early)
        self.assertEqual(c.resp.status, 101, c.resp)
        self.assertEqual(c.resp.header("sec-websocket-accept"), accept_for(c.key))
        self.assertEqual(c.resp.header("upgrade", "").lower(), "websocket")
        self.assertIn("upgrade", c.resp.header("connection", "").lower())
        self.assertEqual(c.resp.header("sec-websocket-protocol"), "chat")
        self.assertIn("h2tunnel", c.resp.header("via", ""))                       # FWD-04
        # (bytes written with the request head, if any, come back first)
        if early:
            f = c.recv()
            self.assertEqual((f.opcode, f.data), (Opcode.TEXT, b"early bird"))
        c.send(Opcode.TEXT, "hello through forward mode".encode())
        f = c.recv()
        self.assertEqual((f.opcode, f.data), (Opcode.TEXT, b"hello through forward mode"))
        blob = os.urandom(1 << 20)
        c.send(Opcode.BINARY, blob)
        f = c.recv()
        self.assertEqual(f.opcode, Opcode.BINARY)
        self.assertEqual(hashlib.sha256(f.data).hexdigest(), hashlib.sha256(blob).hexdigest())
        c.send(Opcode.PING, b"p1")
        f = c.recv()
        self.assertEqual((f.opcode, f.data), (Opcode.PONG, b"p1"))
        c.send(Opcode.CLOSE, (1000).to_bytes(2, "big"))
        f = c.recv()
        self.assertEqual(f.opcode, Opcode.CLOSE)
        # The origin closes after the closing handshake: so does the tunnel (recv_until_eof).
        recv_until_eof(sock, timeout=30)
        return c

    def origin_saw(self, n_before):
        deadline = time.time() + 10
        while time.time() < deadline:
            reqs = self.ws.requests()
            if len(reqs) > n_before:
                return reqs[-1]
            time.sleep(0.05)
        self.fail("the origin saw no upgrade request")

    def test_ws_target_cleartext(self):
        """FWD-14: `GET ws://origin/chat` over cleartext; the origin sees origin-form with our Via,
        Upgrade and Connection: upgrade, and no Proxy-Connection (FWD-03)."""
        n = len(self.ws.requests())
        with dial(self.proxy.tcp_port, timeout=30) as s:
            self.exchange(s, "ws://%s/chat?room=1" % self.origin())
        req = self.origin_saw(n)
        self.assertEqual(req["path"], "/chat?room=1")
        names = {k.lower(): v for k, v in req["headers"]}
        self.assertEqual(names.get("upgrade", "").lower(), "websocket")
        self.assertEqual(names.get("connection", "").lower(), "upgrade")
        self.assertIn("h2tunnel", names.get("via", ""))
        self.assertNotIn("proxy-connection", names)
        # One line, the tunnel's, when it ends: the 1 MiB message each way is in its bytes.
        rec = self.proxy.wait_access_log(lambda r: r.get("proto") == "websocket" and r.get("front") == "h1"
                                         and r.get("target") == self.origin() and r.get("status") == 101
                                         and r.get("bytes_up", 0) > (1 << 20), timeout=15)
        self.assertGreater(rec["bytes_down"], 1 << 20)
        self.assertEqual(rec["resolved"], self.origin())

    def test_http_target_over_tls_with_early_frame(self):
        """FWD-14 over TLS to the proxy, `http://` target; a frame sent with the request head
        (before the 101) reaches the origin after the handshake and is echoed."""
        early = Frame(Opcode.TEXT, b"early bird").serialize(mask=True)
        with dial(self.proxy.tls_port, tls_ca=self.proxy.ca, timeout=30) as s:
            self.exchange(s, "http://%s/chat" % self.origin(), early=early)

    def test_curl_ws_url(self):
        """A real client: curl 8.14 with -x http://PROXY ws://ORIGIN/ sends absolute-form
        `GET ws://...` with Upgrade; it gets the 101 (curl then waits for frames; --max-time
        ends it)."""
        tmp = tempfile.mkdtemp(prefix="h2t-ws-curl-")
        hdr = os.path.join(tmp, "h")
        subprocess.run([CURL, "-sS", "--max-time", "3", "-D", hdr, "-o", os.devnull,
                        "-x", "http://127.0.0.1:%d" % self.proxy.tcp_port, "ws://%s/chat" % self.origin()],
                       capture_output=True, timeout=60)
        with open(hdr, "rb") as f:
            head = f.read()
        self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
        self.assertIn(b"via: 1.1 h2tunnel", head.lower())

    def test_origin_declines_upgrade(self):
        """An origin that answers with a final status instead of 101 is relayed as any response,
        then the connection closes (the request's bytes after the head are not HTTP)."""
        with dial(self.proxy.tcp_port, timeout=30) as s:
            key = base64.b64encode(os.urandom(16)).decode()
            s.sendall(("GET http://%s/chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 99\r\n\r\n" % (self.origin(), key)).encode())
            r = parse_response(recv_until_eof(s, timeout=30))
        self.assertEqual(r.status, 400, r)  # websockets' answer to an unknown version, relayed
        self.assertIsNone(r.header("sec-websocket-accept"))

    def test_ws_target_without_upgrade_400(self):
        """A ws:// target is only for an upgrade request."""
        with dial(self.proxy.tcp_port, timeout=30) as s:
            s.sendall(("GET ws://%s/chat HTTP/1.1\r\nHost: x\r\n\r\n" % self.origin()).encode())
            r = parse_response(recv_until_eof(s, timeout=30))
        self.assertEqual(r.status, 400, r)

    def test_origin_form_upgrade_still_501(self):
        """Only a forwarded request's Upgrade is relayed: the proxy itself speaks no other protocol."""
        with dial(self.proxy.tcp_port, timeout=30) as s:
            s.sendall(b"GET /x HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            r = parse_response(recv_until_eof(s, timeout=30))
        self.assertEqual(r.status, 501, r)


@unittest.skipIf(Frame is None, "python3-websockets is missing (scripts/deps.sh installs it)")
class ForwardUpgradeAdmission(unittest.TestCase):
    def test_port_policy_applies(self):
        """The same admission as any request: without --allow-ports '*' the origin's port is
        refused (403 with Proxy-Status), logged, and nothing reaches the origin."""
        ws = xcutil.WSBackend()
        try:
            with Proxy(any_port=False) as p:
                with dial(p.tcp_port, timeout=30) as s:
                    s.sendall(("GET ws://127.0.0.1:%d/chat HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                               "Sec-WebSocket-Version: 13\r\n\r\n" % ws.port).encode())
                    r = parse_response(recv_until_eof(s, timeout=30))
                self.assertEqual(r.status, 403, r)
                self.assertIn("http_request_denied", r.header("proxy-status", ""))
                p.wait_access_log(lambda x: x.get("status") == 403 and x.get("proto") == "forward")
            self.assertEqual(ws.requests(), [])
        finally:
            ws.close()


if __name__ == "__main__":
    main()
