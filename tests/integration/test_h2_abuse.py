"""HTTP/2 abuse handling and connection management (checklist §8 DOS-01..DOS-06, NG-05, NG-08,
NG-09, H2-03, H2-04, H2-05, H2C-16). Raw frames (hyperframe-free builders in h2util) for what
python-h2 will not send; each case ends by showing the proxy still serves a new connection.

The rule for every connection the proxy ends (SessionEndTest): a GOAWAY with an error code, read
here from the raw bytes, whenever the socket can still be written, and one log line
"h2 <peer>: session ended: <reason> (<why>)"."""
import os
import select
import signal
import socket
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import EchoOrigin, KiB, MiB, Proxy, StreamOrigin, main  # noqa: E402
from h2util import (CONTINUATION, DATA, ENHANCE_YOUR_CALM, FLAG_END_HEADERS, FLAG_END_STREAM,  # noqa: E402
                    FLOW_CONTROL_ERROR, HEADERS, NO_ERROR, PING, PREFACE, PROTOCOL_ERROR, RST_STREAM,
                    SETTINGS, H2Client, RawConn, StallOrigin, echo_roundtrip, frame, memory_env, ping_frame,
                    rst_frame, settings_frame, window_update_frame, wait_log)
import hpack  # noqa: E402

STREAM_WINDOW = 1 * MiB     # proxy default --h2-stream-window
CONN_WINDOW = 64 * MiB      # proxy default --h2-conn-window


def connect_headers(enc, sid, authority, end_stream=False, extra=()):
    block = enc.encode([(":method", "CONNECT"), (":authority", authority)] + list(extra))
    return frame(HEADERS, FLAG_END_HEADERS | (FLAG_END_STREAM if end_stream else 0), sid, block)


class AbuseTest(unittest.TestCase):
    def tunnel_works(self, p, echo, tls=True):
        with H2Client(p.tls_port if tls else p.tcp_port, tls_ca=p.ca if tls else None) as cli:
            sid = cli.open_tunnel(echo.addr)
            msg = os.urandom(50000)
            self.assertEqual(echo_roundtrip(cli, sid, msg), msg)

    def test_dos01_rapid_reset(self):
        """DOS-01: 3000 x (CONNECT HEADERS + RST_STREAM) on one connection -> GOAWAY and close
        after about --h2-reset-burst resets; far fewer upstream connects than streams; a new
        connection still tunnels."""
        with Proxy() as p, EchoOrigin() as echo:
            rc = RawConn(p.tls_port, tls_ca=p.ca)
            enc = hpack.Encoder()
            sent = 0
            for batch in range(30):
                buf = b"".join(connect_headers(enc, 2 * (batch * 100 + i) + 1, echo.addr)
                               + rst_frame(2 * (batch * 100 + i) + 1) for i in range(100))
                if not rc.try_send(buf):
                    break
                sent += 100
                rc.pump(0.001)
            self.assertTrue(rc.wait_eof(10), "connection not closed: " + rc.summary())
            ga = rc.goaways()
            self.assertTrue(ga, "no GOAWAY: " + rc.summary())
            last, code, _dbg = ga[-1]
            self.assertNotEqual(code, NO_ERROR)
            self.assertLess(last, 2 * 1500, "GOAWAY came late: last stream %d" % last)
            rc.close()
            time.sleep(0.2)
            sys.stderr.write("\n  [rapid reset] sent %d pairs, GOAWAY(code %d, last %d), origin accepted %d\n"
                             % (sent, code, last, echo.accepted))
            self.assertLess(echo.accepted, 1500)
            self.tunnel_works(p, echo)
            line = wait_log(p, "session ended: abuse_limit")
            self.assertIn("rapid reset", line)

    def test_dos03_continuation_flood(self):
        """DOS-03: HEADERS without END_HEADERS + 50 CONTINUATIONs -> GOAWAY(ENHANCE_YOUR_CALM) and
        close; 8 CONTINUATIONs (the limit) are still accepted; the proxy keeps serving."""
        with Proxy() as p, EchoOrigin() as echo:
            # within the limit: HEADERS + 8 CONTINUATION, last with END_HEADERS -> a tunnel
            rc = RawConn(p.tls_port, tls_ca=p.ca)
            enc = hpack.Encoder()
            block = enc.encode([(":method", "CONNECT"), (":authority", echo.addr)])
            parts = [frame(HEADERS, 0, 1, block)]
            for i in range(8):
                parts.append(frame(CONTINUATION, FLAG_END_HEADERS if i == 7 else 0, 1, b"\x00\x01a\x01b"))
            rc.send(b"".join(parts))
            rc.wait(lambda: rc.of_type(HEADERS, 1), 10, "response to 8 CONTINUATIONs")
            rc.send(frame(DATA, 0, 1, b"ping"))
            rc.wait(lambda: b"".join(f[3] for f in rc.of_type(DATA, 1)) == b"ping", 10, "echo")
            rc.close()

            rc = RawConn(p.tls_port, tls_ca=p.ca)
            enc = hpack.Encoder()
            block = enc.encode([(":method", "CONNECT"), (":authority", echo.addr)])
            flood = frame(HEADERS, 0, 1, block) + b"".join(
                frame(CONTINUATION, 0, 1, b"\x00\x01a\x01b") for _ in range(50))
            rc.try_send(flood)
            self.assertTrue(rc.wait_eof(10), "connection not closed: " + rc.summary())
            ga = rc.goaways()
            self.assertTrue(ga, "no GOAWAY: " + rc.summary())
            self.assertEqual(ga[-1][1], ENHANCE_YOUR_CALM)
            rc.close()
            wait_log(p, "session ended: abuse_limit")
            self.tunnel_works(p, echo)

    def test_settings_too_many_entries(self):
        """A SETTINGS frame with more than --h2-max-settings (32) entries -> GOAWAY
        ENHANCE_YOUR_CALM; unknown settings ids in a normal frame are ignored (H2-04)."""
        with Proxy() as p, EchoOrigin() as echo:
            rc = RawConn(p.tls_port, tls_ca=p.ca)
            rc.send(settings_frame([(0x0A0A, 1), (0x5A5A, 7)]) + frame(0xFA, 0, 0, b"grease"))
            rc.send(ping_frame(b"12345678"))
            rc.wait(lambda: any(t == PING and fl & 1 for t, fl, _s, _p in rc.frames), 10, "PING ACK")
            rc.send(settings_frame([(0x0A0A + i, i) for i in range(40)]))
            self.assertTrue(rc.wait_eof(10), rc.summary())
            self.assertEqual(rc.goaways()[-1][1], ENHANCE_YOUR_CALM)
            rc.close()
            wait_log(p, "session ended: abuse_limit")
            self.tunnel_works(p, echo)

    def test_dos05_ping_flood_without_reading(self):
        """CVE-2019-9512: a client sends PINGs and never reads the ACKs -> the outbound ACK limit
        (--h2-max-outbound-ack) ends the connection; the proxy keeps serving."""
        with Proxy(["--h2-max-outbound-ack", "100"]) as p, EchoOrigin() as echo:
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", p.tcp_port))
            s.settimeout(0.5)
            s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings_frame())
            burst = ping_frame(b"abcdefgh") * 1000
            closed = False
            deadline = time.monotonic() + 30
            n = 0
            while time.monotonic() < deadline:
                try:
                    s.sendall(burst)
                    n += 1000
                except (BrokenPipeError, ConnectionResetError):
                    closed = True
                    break
                except socket.timeout:
                    break  # the proxy stopped reading: that is backpressure, fine too
                if n >= 400000:
                    break
            # read whatever is there, to EOF
            s.settimeout(10)
            try:
                while s.recv(1 << 16):
                    pass
                closed = True
            except ConnectionResetError:
                closed = True
            except socket.timeout:
                pass
            s.close()
            sys.stderr.write("\n  [ping flood] sent %d PINGs; closed=%s\n" % (n, closed))
            self.assertTrue(closed, "the proxy neither closed nor stopped reading")
            self.assertTrue("session ended: abuse_limit" in p.stderr() or n < 400000, p.stderr()[-2000:])
            self.tunnel_works(p, echo, tls=False)

    def test_ng08_many_malformed_connects_memory_flat(self):
        """NG-08 / DOS-02: 10 000 malformed CONNECTs over 4 connections (bad :authority -> 400,
        :path -> RST 1), each answered; no crash, RSS roughly flat, tunnels still work."""
        with memory_env(), Proxy() as p, EchoOrigin() as echo:
            self.tunnel_works(p, echo)
            rss0 = p.rss_kib()
            answered = {"400": 0, "rst": 0, "goaway_conns": 0}
            rss_after = []
            total = 0
            for conn_i in range(4):
                rc = RawConn(p.tcp_port)
                enc = hpack.Encoder()
                sid = 1
                for batch in range(25):
                    ids = []
                    buf = []
                    for i in range(100):
                        if i % 2:
                            hdr = enc.encode([(":method", "CONNECT"), (":authority", "h:0")])
                        else:
                            hdr = enc.encode([(":method", "CONNECT"), (":authority", echo.addr), (":path", "/")])
                        buf.append(frame(HEADERS, FLAG_END_HEADERS, sid, hdr))
                        ids.append(sid)
                        sid += 2
                    if not rc.try_send(b"".join(buf)):
                        break
                    want = set(ids)

                    def done():
                        for t, fl, s_, _p in rc.frames[done.idx:]:
                            if s_ in want and (t == RST_STREAM or (fl & FLAG_END_STREAM and t in (HEADERS, DATA))):
                                want.discard(s_)
                                answered["rst" if t == RST_STREAM else "400"] += 1
                        done.idx = len(rc.frames)
                        return not want or bool(rc.goaways())
                    done.idx = len(rc.frames)
                    rc.wait(done, 20, "answers to batch %d" % batch)
                    total += len(ids) - len(want)
                    if rc.goaways():
                        answered["goaway_conns"] += 1
                        break
                    rc.frames = []
                rc.close()
                time.sleep(0.2)
                rss_after.append(p.rss_kib())
            time.sleep(0.5)
            rss1 = p.rss_kib()
            sys.stderr.write("\n  [malformed x10000] answered %d (%r); RSS %d -> %r -> %d KiB\n"
                             % (total, answered, rss0, rss_after, rss1))
            self.assertEqual(echo.accepted, 1)  # only tunnel_works dialled
            if answered["goaway_conns"] == 0:
                self.assertEqual(total, 10000)
                self.assertEqual(answered["400"], 5000)
                self.assertEqual(answered["rst"], 5000)
            self.assertLess((rss1 - rss0) * KiB, 32 * MiB)
            # flat once warmed up (ASan's 8 MB quarantine fills during the first 5000): the last
            # 5000 streams add no per-stream memory (LSan checks for leaks at exit too)
            if len(rss_after) == 4:
                self.assertLess((rss_after[-1] - rss_after[1]) * KiB, 4 * MiB, rss_after)
            self.tunnel_works(p, echo)
            m = p.metrics()
            self.assertGreaterEqual(m['h2tunnel_errors_total{type="http_request_error",status="400"}'], 5000)

    def test_dos06_idle_connection_timeout(self):
        """DOS-06: --conn-idle-timeout 1s: an h2 connection with nothing open gets
        GOAWAY(NO_ERROR, "idle_timeout") and is closed, with a log line; one holding a tunnel is
        not (the tunnel still works after 2.5 s)."""
        with Proxy(["--conn-idle-timeout", "1s"]) as p, EchoOrigin() as echo:
            rc = RawConn(p.tls_port, tls_ca=p.ca)
            self.assertTrue(rc.wait_eof(10), rc.summary())
            ga = rc.goaways()
            self.assertTrue(ga, rc.summary())
            self.assertEqual(ga[-1][1:], (NO_ERROR, b"idle_timeout"))
            rc.close()
            wait_log(p, "session ended: idle_timeout")
            with H2Client(p.tls_port, tls_ca=p.ca) as cli:
                sid = cli.open_tunnel(echo.addr)
                t_end = time.monotonic() + 2.5
                while time.monotonic() < t_end:
                    cli.pump(0.1)
                self.assertIsNone(cli.goaway)
                self.assertFalse(cli.eof)
                self.assertEqual(echo_roundtrip(cli, sid, b"still here"), b"still here")

    def _tunnel_on_raw(self, rc, enc, sid, echo):
        rc.send(connect_headers(enc, sid, echo.addr))
        rc.wait(lambda: rc.of_type(HEADERS, sid), 10, "200 on stream %d" % sid)
        self.assertIn((":status", "200"), rc.decoder.decode(rc.of_type(HEADERS, sid)[0][3]))

    def _echo_raw(self, rc, sid, msg):
        have = len(b"".join(f[3] for f in rc.of_type(DATA, sid)))
        rc.send(frame(DATA, 0, sid, msg))
        rc.wait(lambda: len(b"".join(f[3] for f in rc.of_type(DATA, sid))) >= have + len(msg), 10, "echo")
        self.assertEqual(b"".join(f[3] for f in rc.of_type(DATA, sid))[have:], msg)

    def test_h2_05_sigterm_drains_live_tunnel(self):
        """H2-05: SIGTERM -> GOAWAY(NO_ERROR) on the h2 connection; the live tunnel keeps working;
        a new stream is not served; when the tunnel ends the proxy exits 0, well within
        --drain-timeout."""
        with EchoOrigin() as echo:
            p = Proxy(["--drain-timeout", "3s"])
            p.start()
            try:
                rc = RawConn(p.tls_port, tls_ca=p.ca)
                enc = hpack.Encoder()
                self._tunnel_on_raw(rc, enc, 1, echo)
                self._echo_raw(rc, 1, b"before")
                p.proc.send_signal(signal.SIGTERM)
                rc.wait(lambda: rc.goaways(), 5, "GOAWAY after SIGTERM")
                last, code, dbg = rc.goaways()[-1]
                self.assertEqual(code, NO_ERROR)
                self.assertGreaterEqual(last, 1)
                self._echo_raw(rc, 1, b"after the GOAWAY")
                rc.send(connect_headers(enc, 3, echo.addr))
                t_end = time.monotonic() + 0.5
                while time.monotonic() < t_end:
                    rc.pump(0.05)
                statuses = [rc.decoder.decode(f[3]) for f in rc.of_type(HEADERS, 3)]
                self.assertNotIn([(":status", "200")], statuses, "a new stream was served after GOAWAY")
                self._echo_raw(rc, 1, b"still draining")
                self.assertIsNone(p.proc.poll(), "the proxy exited while a tunnel was live")
                # end the tunnel: our END_STREAM -> echo FIN -> END_STREAM -> both ended
                rc.send(frame(DATA, FLAG_END_STREAM, 1, b""))
                rc.wait(lambda: any(f[1] & FLAG_END_STREAM for f in rc.of_type(DATA, 1)), 5, "END_STREAM")
                rc.wait_eof(5)
                rc.close()
                rc_exit = p.proc.wait(timeout=10)
                self.assertEqual(rc_exit, 0)
                self.assertEqual(echo.accepted, 1, "the refused stream reached the origin")
                self.assertIn("session ended: shutdown", p.stderr())
            finally:
                p.stop()

    def test_h2_05_drain_deadline(self):
        """A tunnel that never ends is cut at --drain-timeout (1 s): the h2 session ends itself a
        tenth of the timeout early (so that its last frames leave before the worker's hard close):
        RST_STREAM on the tunnel, GOAWAY(NO_ERROR) (the stop's), a clean close and a log line
        "session ended: drain_deadline"; the proxy still exits 0."""
        with EchoOrigin() as echo:
            p = Proxy(["--drain-timeout", "1s"])
            p.start()
            try:
                # raw frames: python-h2 refuses to send anything once it has seen a GOAWAY
                rc = RawConn(p.tls_port, tls_ca=p.ca)
                enc = hpack.Encoder()
                self._tunnel_on_raw(rc, enc, 1, echo)
                t0 = time.monotonic()
                p.proc.send_signal(signal.SIGTERM)
                rc.wait(lambda: rc.goaways(), 5, "GOAWAY after SIGTERM")
                self._echo_raw(rc, 1, b"x")
                # never ended by us: the proxy cuts it at the deadline and closes the connection
                self.assertTrue(rc.wait_eof(10), rc.summary())
                self.assertFalse(rc.reset, "the connection was reset, not closed: " + rc.summary())
                self.assertTrue(rc.of_type(RST_STREAM, 1), rc.summary())
                self.assertEqual({g[1] for g in rc.goaways()}, {NO_ERROR}, rc.summary())
                self.assertIn("session ended: drain_deadline", p.stderr())
                rc_exit = p.proc.wait(timeout=10)
                waited = time.monotonic() - t0
                self.assertEqual(rc_exit, 0)
                self.assertGreaterEqual(waited, 0.85, "exited before the drain deadline")
                sys.stderr.write("\n  [drain] proxy exited %.2f s after SIGTERM (deadline 1 s)\n" % waited)
                rc.close()
            finally:
                p.stop()



def slow_headers_conn(port, mode):
    """An h2c connection that starts a request head and never finishes it (DOS-06, the h2
    slowloris): "continuation" sends HEADERS without END_HEADERS and will trickle CONTINUATIONs
    without END_HEADERS; "payload" announces one HEADERS frame (END_HEADERS) with a valid block
    and sends 20 bytes of it, the rest to be trickled (rc.rest)."""
    rc = RawConn(port)
    # its SETTINGS ACK must go out before the head begins, not in the middle of it
    rc.wait(lambda: rc.of_type(SETTINGS), 10, "server SETTINGS")
    if mode == "continuation":
        block = hpack.Encoder().encode([(":method", "CONNECT"), (":authority", "example.com:443")])
        rc.send(frame(HEADERS, 0, 1, block))
        rc.rest = b""
    else:
        block = hpack.Encoder().encode([(":method", "CONNECT"), (":authority", "example.com:443"),
                                        ("x-pad", os.urandom(100).hex())])
        hd = frame(HEADERS, FLAG_END_HEADERS, 1, block)
        rc.send(hd[:9 + 20])
        rc.rest = hd[9 + 20:]
    rc.t_open = time.monotonic()
    rc.mode = mode
    return rc


def proxy_fds(p):
    return len(os.listdir("/proc/%d/fd" % p.pid))


class SessionEndTest(unittest.TestCase):
    """Every path that ends an h2 session: GOAWAY + code from the raw bytes, and the log line."""

    def assert_ended(self, p, rc, code, reason, timeout=10):
        self.assertTrue(rc.wait_eof(timeout), "not closed: " + rc.summary())
        ga = rc.goaways()
        self.assertTrue(ga, "closed without a GOAWAY: " + rc.summary())
        self.assertEqual(ga[-1][1], code, rc.summary())
        line = wait_log(p, "session ended: " + reason)
        return ga[-1], line

    def test_dos03_bad_preface_is_protocol_error(self):
        """DOS-03: ALPN h2, then an HTTP/1.1 request instead of the preface -> nghttp2's fatal
        BAD_CLIENT_MAGIC: GOAWAY(PROTOCOL_ERROR), logged."""
        with Proxy() as p:
            rc = RawConn(p.tls_port, tls_ca=p.ca, send_preface=False)
            rc.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            _ga, line = self.assert_ended(p, rc, PROTOCOL_ERROR, "protocol_error")
            self.assertIn("magic", line.lower())
            rc.close()

    def test_ng09_protocol_error_found_by_nghttp2(self):
        """NG-09: a connection error nghttp2 finds itself (WINDOW_UPDATE with increment 0 on the
        connection) -> its GOAWAY(PROTOCOL_ERROR), then the close, logged with nghttp2's reason."""
        with Proxy() as p:
            rc = RawConn(p.tls_port, tls_ca=p.ca)
            rc.send(window_update_frame(0, 0))
            _ga, line = self.assert_ended(p, rc, PROTOCOL_ERROR, "protocol_error")
            self.assertIn("WINDOW_UPDATE", line)
            rc.close()

    def test_io_error_is_logged(self):
        """A client that resets its TCP connection while the proxy writes to it (a write or read
        error: no GOAWAY can be sent) is logged, as client_reset (ECONNRESET) or io_error, with
        the system's reason."""
        with Proxy() as p:
            with StreamOrigin(send_bytes=64 * MiB, seed=3) as src:
                cli = H2Client(p.tcp_port, settings={4: 16 * MiB}, conn_window=64 * MiB)
                sid = cli.open_tunnel(src.addr, keep=False, ack=False)
                st = cli.streams[sid]
                cli.wait(lambda: st.received > 0, 10, "first bytes")
                cli.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                cli.sock.close()
                line = wait_log(p, ("session ended: client_reset", "session ended: io_error"))
                self.assertTrue("ECONNRESET" in line or "EPIPE" in line, line)
                self.assertIn("no GOAWAY", line)

    def test_dos06_preface_timeout(self):
        """DOS-06 / H2-03: a TLS connection that negotiated h2 and sends nothing, and an h2c one
        that sends only the preface (no SETTINGS), end at --header-timeout with
        GOAWAY(ENHANCE_YOUR_CALM, "preface_timeout")."""
        with Proxy(["--header-timeout", "1s"]) as p:
            silent = RawConn(p.tls_port, tls_ca=p.ca, send_preface=False)
            half = RawConn(p.tcp_port, send_preface=False)
            half.send(PREFACE)
            t0 = time.monotonic()
            for rc in (silent, half):
                ga, _line = self.assert_ended(p, rc, ENHANCE_YOUR_CALM, "preface_timeout")
                self.assertEqual(ga[2], b"preface_timeout")
                rc.close()
            self.assertGreaterEqual(time.monotonic() - t0, 0.9)

    def test_dos06_h2_slowloris_header_timeout(self):
        """DOS-06, issue 8 item 5: 60 connections each start a request head and never finish it
        (half trickle CONTINUATIONs without END_HEADERS, half trickle one HEADERS frame's
        payload). With --header-timeout 1s each gets GOAWAY(ENHANCE_YOUR_CALM, "header_timeout")
        and is closed within a bound; the proxy's descriptors and RSS come back to where they
        were. A complete request on another connection is served meanwhile."""
        n = 60
        with memory_env(), Proxy(["--header-timeout", "1s"]) as p, EchoOrigin() as echo:
            with H2Client(p.tcp_port) as warm:  # warm up allocator and pools first
                sid = warm.open_tunnel(echo.addr)
                self.assertEqual(echo_roundtrip(warm, sid, b"warm"), b"warm")
            time.sleep(0.2)
            rss0, fds0 = p.rss_kib(), proxy_fds(p)
            conns = [slow_headers_conn(p.tcp_port, "continuation" if i % 2 else "payload")
                     for i in range(n)]
            fds_peak = proxy_fds(p)
            closed_after = {}
            trickled = 0
            next_trickle = time.monotonic() + 0.3
            deadline = time.monotonic() + 30
            with H2Client(p.tls_port, tls_ca=p.ca) as cli:  # a bystander request goes through
                sid = cli.open_tunnel(echo.addr)
                self.assertEqual(echo_roundtrip(cli, sid, b"bystander"), b"bystander")
            while len(closed_after) < n and time.monotonic() < deadline:
                live = [rc for rc in conns if id(rc) not in closed_after]
                r, _w, _x = select.select([rc.sock for rc in live], [], [], 0.1)
                for rc in live:
                    if rc.sock in r:
                        rc.pump(0.001)
                    if rc.eof:
                        closed_after[id(rc)] = time.monotonic() - rc.t_open
                if time.monotonic() >= next_trickle:  # keep each head "in progress", slowly
                    # (0.4 s: 8 CONTINUATIONs, nghttp2's flood limit, take more than 3 s)
                    next_trickle = time.monotonic() + 0.4
                    trickled += 1
                    for rc in live:
                        if rc.eof:
                            continue
                        if rc.mode == "continuation":
                            rc.try_send(frame(CONTINUATION, 0, 1, b"\x00\x01a\x01b"))
                        elif len(rc.rest) > 1:
                            rc.try_send(rc.rest[:1])
                            rc.rest = rc.rest[1:]
            self.assertEqual(len(closed_after), n, "still open after 30 s: %d" % (n - len(closed_after)))
            for rc in conns:
                ga = rc.goaways()
                self.assertTrue(ga, "closed without GOAWAY: " + rc.summary())
                self.assertEqual(ga[-1][1:], (ENHANCE_YOUR_CALM, b"header_timeout"), rc.mode + " " + rc.summary())
                rc.close()
            worst = max(closed_after.values())
            self.assertGreaterEqual(min(closed_after.values()), 0.9)
            self.assertLess(worst, 15, "closed %.1f s after the head began (timeout 1 s)" % worst)
            wait_log(p, "session ended: header_timeout")
            fds_end = time.monotonic() + 10
            while proxy_fds(p) > fds0 and time.monotonic() < fds_end:
                time.sleep(0.05)
            fds1, rss1 = proxy_fds(p), p.rss_kib()
            sys.stderr.write("\n  [slowloris] %d heads, trickled %d times; closed after %.2f..%.2f s; fds "
                             "%d -> %d -> %d; RSS %d -> %d KiB\n" % (n, trickled, min(closed_after.values()),
                                                                     worst, fds0, fds_peak, fds1, rss0, rss1))
            self.assertLessEqual(fds1, fds0)
            self.assertLess((rss1 - rss0) * KiB, 16 * MiB)

    def test_dos06_ping_does_not_keep_an_empty_connection(self):
        """Issue 8 item 5: PING every 200 ms on a connection with no stream, --conn-idle-timeout
        1s: the PINGs are answered, and still GOAWAY(NO_ERROR, "idle_timeout") and the close come
        about a second after the last stream (here: the start)."""
        with Proxy(["--conn-idle-timeout", "1s"]) as p:
            rc = RawConn(p.tls_port, tls_ca=p.ca)
            t0 = time.monotonic()
            pings = 0
            deadline = t0 + 15
            while not rc.eof and time.monotonic() < deadline:
                if rc.try_send(ping_frame(b"%08d" % pings)):
                    pings += 1
                t_next = time.monotonic() + 0.2
                while time.monotonic() < t_next and not rc.eof:
                    rc.pump(0.05)
            took = time.monotonic() - t0
            acks = [f for f in rc.of_type(PING) if f[1] & 1]
            sys.stderr.write("\n  [ping keepalive] %d PINGs, %d ACKs, closed after %.2f s\n" % (pings, len(acks), took))
            self.assertTrue(rc.eof, "PINGs kept the empty connection open for 15 s")
            self.assertGreaterEqual(len(acks), 3)
            self.assertEqual(rc.goaways()[-1][1:], (NO_ERROR, b"idle_timeout"))
            self.assertGreaterEqual(took, 0.9)
            wait_log(p, "session ended: idle_timeout")
            rc.close()

    def test_ng05_discard_budget_after_flow_control_violation(self):
        """NG-05, issue 8 item 5: a tunnel whose upstream never reads stalls; the client then
        breaks the stream's flow control: RST_STREAM(FLOW_CONTROL_ERROR), and the access log
        says protocol_error (not client_reset). The client goes on sending DATA on the reset
        stream inside the connection window (which nghttp2 credits back for ignored DATA): with
        the default budget (--h2-max-discard, twice the 64 MiB connection window) the proxy ends
        the session with GOAWAY(ENHANCE_YOUR_CALM, "discard_limit") after ~128 MiB, not never."""
        budget = 2 * CONN_WINDOW
        with Proxy() as p, StallOrigin(rcvbuf=32 * KiB) as stall:
            rc = RawConn(p.tcp_port)
            enc = hpack.Encoder()
            rc.send(frame(HEADERS, FLAG_END_HEADERS, 1,
                          enc.encode([(":method", "CONNECT"), (":authority", stall.addr)])))
            rc.wait(lambda: rc.of_type(HEADERS, 1), 10, "200")
            sent = {0: 0, 1: 0}

            def window(sid):
                base = 65535 if sid == 0 else STREAM_WINDOW
                return base + rc.window_updates(sid) - sent[sid]

            chunk = os.urandom(16384)
            # 1. fill the stream until the proxy stops giving credit (the upstream never reads)
            last_credit, credit = time.monotonic(), rc.window_updates(1)
            deadline = time.monotonic() + 60
            while time.monotonic() - last_credit < 1.0:
                self.assertLess(time.monotonic(), deadline, "the stream never stalled")
                n = min(len(chunk), window(0), window(1))
                if n > 0:
                    rc.send(frame(DATA, 0, 1, chunk[:n]))
                    sent[0] += n
                    sent[1] += n
                else:
                    rc.pump(0.05)
                if rc.window_updates(1) != credit:
                    credit, last_credit = rc.window_updates(1), time.monotonic()
            self.assertEqual(window(1), 0)
            # 2. one frame past the stream window: a flow-control violation (RFC 9113 §6.9.1)
            rc.send(frame(DATA, 0, 1, chunk))
            sent[0] += len(chunk)
            rc.wait(lambda: rc.of_type(RST_STREAM, 1), 10, "RST_STREAM")
            self.assertEqual(rc.of_type(RST_STREAM, 1)[0][3], FLOW_CONTROL_ERROR.to_bytes(4, "big"))
            rec = p.wait_access_log(lambda r: r.get("target") == stall.addr, timeout=10)
            self.assertEqual(rec["close"], "protocol_error")
            # 3. keep sending on the reset stream, inside the connection window
            discarded = 0
            limit = budget + CONN_WINDOW + 32 * MiB
            while not rc.eof and not rc.goaways() and discarded < limit:
                n = min(len(chunk), window(0))
                if n <= 0:
                    rc.pump(0.05)
                    continue
                batch = min(64, window(0) // n)
                if not rc.try_send(frame(DATA, 0, 1, chunk[:n]) * batch):
                    break
                sent[0] += n * batch
                discarded += n * batch
                rc.pump(0)
            rc.wait_eof(10)
            sys.stderr.write("\n  [discard] %.1f MiB sent on the reset stream before the GOAWAY\n" % (discarded / MiB))
            ga = rc.goaways()
            self.assertTrue(ga, "no GOAWAY after %d MiB on a reset stream: %s" % (discarded // MiB, rc.summary()))
            self.assertEqual(ga[-1][1:], (ENHANCE_YOUR_CALM, b"discard_limit"))
            self.assertGreaterEqual(discarded, budget)
            self.assertLess(discarded, limit)
            wait_log(p, "session ended: discard_limit")
            rc.close()


if __name__ == "__main__":
    main()
