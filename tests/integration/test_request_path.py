"""One request path (issue 9): every protocol on every front end goes through proxy/request.c,
so a rule there holds for all of them. Here: admission while the proxy is stopping (H2-05).

A request whose head is complete only after the stop began is refused with 503 and
Proxy-Status `proxy_internal_response` on HTTP/2, whatever its protocol, and nothing is dialed.
(Before issue 9 the h2 connect-udp path had its own copy of the dispatch and dialed anyway.)
The head is begun before SIGTERM (HEADERS without END_HEADERS: the stream exists, so the GOAWAY
does not refuse it) and completed after the GOAWAY with a CONTINUATION.

HTTP/1.1: on stop a connection between requests is closed at once (h1_conn fe_on_stop); its
first request, or one whose head has begun, is read, and only a connection's first request is
admitted while stopping (accepted before the listeners closed: test_upgrade.py shows none is
refused across a binary upgrade), a later one gets 503; the unit test
(tests/unit/test_request.c) covers admission for every protocol with an h1 and an h2 front end
alike."""
import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import EchoOrigin, Proxy, main  # noqa: E402
from h2util import (CONTINUATION, DATA, FLAG_END_HEADERS, FLAG_END_STREAM, HEADERS,  # noqa: E402
                    RawConn, frame)
import hpack  # noqa: E402
import xcutil  # noqa: E402


def heads(target_addr, udp_port):
    """The request heads of the three protocols, each aimed at a live loopback origin."""
    return {
        "connect": [(":method", "CONNECT"), (":authority", target_addr)],
        "connect-udp": [(":method", "CONNECT"), (":protocol", "connect-udp"), (":scheme", "https"),
                        (":authority", "127.0.0.1"), (":path", xcutil.udp_path("127.0.0.1", udp_port))],
        "websocket": [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                      (":authority", target_addr), (":path", "/chat"), ("sec-websocket-version", "13")],
    }


class StoppingTest(unittest.TestCase):
    def test_h2_every_protocol_refused_while_stopping(self):
        for proto in ("connect", "connect-udp", "websocket"):
            with self.subTest(proto=proto):
                self.refused_while_stopping(proto)

    def refused_while_stopping(self, proto):
        with EchoOrigin() as echo, xcutil.UDPEcho() as udp:
            p = Proxy(["--drain-timeout", "5s"])
            p.start()
            rc = None
            try:
                rc = RawConn(p.tls_port, tls_ca=p.ca)
                rc.wait(lambda: rc.of_type(4), 5, "the proxy's SETTINGS")
                block = hpack.Encoder().encode(heads(echo.addr, udp.port)[proto])
                # The stream begins before the stop; its head ends after it.
                rc.send(frame(HEADERS, 0, 1, block[:3]))
                t_end = time.monotonic() + 0.2
                while time.monotonic() < t_end:
                    rc.pump(0.05)
                p.proc.send_signal(signal.SIGTERM)
                rc.wait(lambda: rc.goaways(), 5, "GOAWAY after SIGTERM")
                rc.send(frame(CONTINUATION, FLAG_END_HEADERS, 1, block[3:]))
                rc.wait(lambda: rc.of_type(HEADERS, 1), 5, "a response on stream 1")
                fields = dict(rc.decoder.decode(rc.of_type(HEADERS, 1)[0][3]))
                self.assertEqual(fields.get(":status"), "503", fields)
                self.assertIn("error=proxy_internal_response", fields.get("proxy-status", ""))
                self.assertIn("shutting down", fields.get("proxy-status", ""))
                rc.wait(lambda: any(f[1] & FLAG_END_STREAM for f in rc.of_type(DATA, 1)
                                    + rc.of_type(HEADERS, 1)), 5, "END_STREAM")
                rec = p.wait_access_log(lambda x: x.get("status") == 503)
                self.assertEqual((rec["proto"], rec["front"], rec["error"]),
                                 (proto, "h2", "proxy_internal_response"), rec)
                self.assertEqual((echo.accepted, udp.count), (0, 0), "the refused request was dialed")
                rc.wait_eof(10)
                rc.close()
                self.assertEqual(p.proc.wait(timeout=10), 0)
            finally:
                if rc:
                    rc.close()
                p.stop()


if __name__ == "__main__":
    main()
