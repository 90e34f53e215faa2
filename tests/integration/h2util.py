"""HTTP/2 helpers for the integration tests (Debian python3-h2 4.1 / hpack / hyperframe).

H2Client, the one HTTP/2 test client (every test_h2_* and test_xc_* test uses it), drives one
connection to the proxy (TLS with ALPN h2, or h2c prior knowledge on the cleartext listener) from
a single thread: every wait is a bounded loop of pump() calls. Raw
frame builders are here for the malformed and abuse cases python-h2 refuses to produce. Spec IDs
(H2C-*, H2-*, DOS-*, NG-*) refer to /work/shared/reference/spec-checklist.md.
"""

import hashlib
import os
import select
import socket
import ssl
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.events  # noqa: E402
import h2.exceptions  # noqa: E402
import h2.settings  # noqa: E402
import hpack  # noqa: E402

from harness import KiB, MiB, TCPOrigin  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types and error codes (RFC 9113 §6, §7).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = range(10)
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0, 1, 2, 3
REFUSED_STREAM, CANCEL, CONNECT_ERROR, ENHANCE_YOUR_CALM = 7, 8, 0xa, 0xb
FLAG_END_STREAM, FLAG_ACK, FLAG_END_HEADERS = 0x1, 0x1, 0x4
SETTINGS_ENABLE_CONNECT_PROTOCOL = 8


# ---------------------------------------------------------------------------------------------
# Raw frames (checklist §11)


def frame(ftype, flags, sid, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) + payload


def settings_frame(pairs=(), ack=False):
    return frame(SETTINGS, FLAG_ACK if ack else 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def rst_frame(sid, code=CANCEL):
    return frame(RST_STREAM, 0, sid, struct.pack(">I", code))


def window_update_frame(sid, inc):
    return frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", inc))


def ping_frame(data=b"\0" * 8, ack=False):
    return frame(PING, FLAG_ACK if ack else 0, 0, data)


def headers_block(fields, encoder=None):
    enc = encoder or hpack.Encoder()
    return enc.encode(fields)


def parse_frames(buf):
    """Splits complete frames off the front of `buf`: returns ([(type, flags, sid, payload)], rest)."""
    out = []
    i = 0
    while len(buf) - i >= 9:
        ln = int.from_bytes(buf[i:i + 3], "big")
        if len(buf) - i < 9 + ln:
            break
        t, fl = buf[i + 3], buf[i + 4]
        sid = int.from_bytes(buf[i + 5:i + 9], "big") & 0x7FFFFFFF
        out.append((t, fl, sid, bytes(buf[i + 9:i + 9 + ln])))
        i += 9 + ln
    return out, buf[i:]


def goaway_fields(payload):
    last, code = struct.unpack(">II", payload[:8])
    return last & 0x7FFFFFFF, code, payload[8:]


def send_fully(sock, data, rx, timeout=60):
    """Writes all of `data` to `sock` (plain or TLS) and returns True, or False when the proxy
    closed the connection. Whatever the proxy sends meanwhile is appended to the bytearray `rx`
    (for the caller's next read), so neither side can block the other.

    Why not sock.sendall: the socket keeps the short timeout of the last poll, and on a busy
    machine the proxy may take longer than that to read a large write; sendall then raises
    socket.timeout (an OSError) after an unknown part went out, which looked like "the proxy
    closed the connection" and cut a frame in half (the NG-05 failure under CPU contention).
    Only a proxy that takes nothing for `timeout` seconds fails the test."""
    view = memoryview(data)
    off = 0
    deadline = time.monotonic() + timeout
    sock.setblocking(False)
    try:
        while off < len(view):
            try:
                # A TLS write that wanted to wait is retried with the same bytes (OpenSSL's rule).
                off += sock.send(view[off:off + 256 * KiB])
                deadline = time.monotonic() + timeout
                continue
            except (BlockingIOError, InterruptedError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                pass
            except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
                return False
            if time.monotonic() > deadline:
                raise AssertionError("the proxy took none of %d bytes for %ss" % (len(view) - off, timeout))
            readable, _w, _x = select.select([sock], [sock], [], 0.5)
            if readable:
                try:
                    b = sock.recv(1 << 18)
                except (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    continue
                except (ConnectionResetError, ssl.SSLError):
                    return False
                if not b:
                    return False
                rx += b
        return True
    finally:
        sock.setblocking(True)


class RawConn:
    """A raw-frame HTTP/2 client connection (TLS+ALPN h2, or cleartext prior knowledge).
    `frames` collects every frame received; `eof` says the proxy closed the connection. Without
    `send_preface` it sends nothing by itself (not even SETTINGS ACKs)."""

    def __init__(self, port, tls_ca=None, timeout=10, send_preface=True):
        self.sock = open_socket(port, tls_ca, timeout)
        self.buf = b""
        self.rx = bytearray()       # read while sending, not yet parsed
        self.frames = []
        self.eof = False
        self.reset = False
        self.decoder = hpack.Decoder()
        self.auto_ack = send_preface
        if send_preface:
            self.send(PREFACE + settings_frame())

    def send(self, data):
        if not send_fully(self.sock, data, self.rx):
            raise BrokenPipeError("the proxy closed the connection")

    def try_send(self, data):
        """send that reports False when the proxy already closed the connection."""
        try:
            return send_fully(self.sock, data, self.rx)
        except OSError:
            return False

    def pump(self, timeout=0.05):
        if self.rx:
            b = bytes(self.rx)
            self.rx.clear()
        else:
            self.sock.settimeout(timeout)
            try:
                b = self.sock.recv(1 << 16)
            except (socket.timeout, BlockingIOError, ssl.SSLWantReadError):
                return False
            except (ConnectionResetError, ssl.SSLError, OSError):
                self.eof = self.reset = True
                return False
            if not b:
                self.eof = True
                return False
        self.buf += b
        fr, self.buf = parse_frames(self.buf)
        for f in fr:
            self.frames.append(f)
            if f[0] == SETTINGS and not (f[1] & FLAG_ACK) and self.auto_ack:
                self.try_send(settings_frame(ack=True))
        return True

    def wait(self, pred, timeout=10, what="condition"):
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for %s; frames: %s" % (what, self.summary()))
            if self.eof:
                if pred():
                    break
                raise AssertionError("connection closed while waiting for %s; frames: %s"
                                     % (what, self.summary()))
            self.pump()
        return True

    def wait_eof(self, timeout=10):
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self.pump()
        return self.eof

    def goaways(self):
        return [goaway_fields(p) for t, _f, _s, p in self.frames if t == GOAWAY]

    def window_updates(self, sid):
        """The sum of the WINDOW_UPDATE increments received for `sid` (0: the connection)."""
        return sum(struct.unpack(">I", p[:4])[0] & 0x7FFFFFFF for t, _f, s, p in self.frames
                   if t == WINDOW_UPDATE and s == sid)

    def of_type(self, t, sid=None):
        return [f for f in self.frames if f[0] == t and (sid is None or f[2] == sid)]

    def summary(self, n=30):
        names = {0: "DATA", 1: "HEADERS", 3: "RST", 4: "SETTINGS", 6: "PING", 7: "GOAWAY", 8: "WU"}
        return " ".join("%s(%d,f=%x,%d)" % (names.get(t, t), s, fl, len(p))
                        for t, fl, s, p in self.frames[-n:]) + (" EOF" if self.eof else "")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# ---------------------------------------------------------------------------------------------
# python-h2 client


def open_socket(port, tls_ca=None, timeout=10, host="127.0.0.1"):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls_ca:
        ctx = ssl.create_default_context(cafile=tls_ca)
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        s = ctx.wrap_socket(s, server_hostname="localhost")
        if s.selected_alpn_protocol() != "h2":
            raise AssertionError("ALPN selected %r, expected h2 (H2-01)" % s.selected_alpn_protocol())
    return s


class Stream:
    """What one stream received. With keep=False the payload is only hashed and counted."""

    def __init__(self, sid, keep=True, ack=True):
        self.sid = sid
        self.keep = keep
        self.ack = ack              # acknowledge DATA at once (give the window back)
        self.headers = None         # the response header fields: name -> value (the first one)
        self.status = None          # :status as an int
        self.trailers = None
        self.data = bytearray()
        self.received = 0
        self.sha = hashlib.sha256()
        self.unacked = 0
        self.ended = False
        self.reset = None           # RST_STREAM error code, when reset
        self.sent = 0

    def header(self, name, default=None):
        return (self.headers or {}).get(name, default)

    @property
    def closed(self):
        return self.ended or self.reset is not None

    def __repr__(self):
        return "<Stream %d status=%s recv=%d sent=%d ended=%s reset=%s>" % (
            self.sid, self.status, self.received, self.sent, self.ended, self.reset)


class ServerSettings(dict):
    """The SETTINGS the server sent (id -> value), also readable by h2's names
    (settings.enable_connect_protocol); a setting it did not send is None."""

    def __getattr__(self, name):
        try:
            return self.get(int(h2.settings.SettingCodes[name.upper()]))
        except KeyError:
            raise AttributeError(name) from None


def fields(headers):
    """Header fields as a dict of the first value of each name."""
    out = {}
    for k, v in headers:
        out.setdefault(k, v)
    return out


class H2Client:
    """One HTTP/2 connection to the proxy (TLS with ALPN h2, or h2c prior knowledge on the
    cleartext listener), driven by pump() from the calling thread. python3-h2 4.1 with outbound
    validation off, so that plain CONNECT and malformed requests go out as written (PYH2-01).

    settings: extra local SETTINGS (e.g. {h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 10})
    stream_window: our INITIAL_WINDOW_SIZE (bytes; default 65535)
    conn_window: raise the connection receive window to this size (bytes)."""

    def __init__(self, port, tls_ca=None, host="127.0.0.1", timeout=10, settings=None,
                 stream_window=None, conn_window=None):
        self.sock = open_socket(port, tls_ca, timeout, host)
        cfg = h2.config.H2Configuration(client_side=True, validate_outbound_headers=False,
                                        normalize_outbound_headers=False,
                                        validate_inbound_headers=False,
                                        normalize_inbound_headers=False, header_encoding="utf-8")
        self.c = h2.connection.H2Connection(cfg)
        local = {h2.settings.SettingCodes.ENABLE_PUSH: 0,
                 h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 1000}
        if stream_window:
            local[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] = stream_window
        local.update(settings or {})
        self.c.local_settings = h2.settings.Settings(client=True, initial_values=local)
        self.c.initiate_connection()
        if conn_window and conn_window > 65535:
            self.c.increment_flow_control_window(conn_window - 65535)
        self.streams = {}
        self.remote_settings = ServerSettings()  # every SETTINGS value the server sent
        self.first_settings = None  # the ids the server's first SETTINGS frame carried
        self.goaway = None          # (error_code, last_stream_id, additional_data)
        self.eof = False
        self.events = 0
        self.pings_acked = set()
        self.rx = bytearray()       # read while sending, not yet handled
        self.flush()

    # -- I/O
    def flush(self):
        d = self.c.data_to_send()
        if d and not self.eof and not send_fully(self.sock, d, self.rx):
            self.eof = True

    def pump(self, timeout=0.02):
        """Reads once (waiting up to `timeout`), handles the events, sends what h2 queued."""
        if self.rx:
            b = bytes(self.rx)
            self.rx.clear()
        elif self.eof:
            return False
        else:
            self.sock.settimeout(timeout)
            try:
                b = self.sock.recv(1 << 18)
            except (socket.timeout, ssl.SSLWantReadError):
                self.flush()
                return False
            except (ConnectionResetError, ssl.SSLError, OSError):
                self.eof = True
                return False
            if not b:
                self.eof = True
                return False
        try:
            evs = self.c.receive_data(b)
        except h2.exceptions.ProtocolError as e:
            raise AssertionError("h2 protocol error from the proxy: %r" % e)
        for ev in evs:
            self._event(ev)
        self.flush()
        return True

    def _event(self, ev):
        self.events += 1
        st = self.streams.get(getattr(ev, "stream_id", None))
        if isinstance(ev, h2.events.ResponseReceived):
            st.headers = fields(ev.headers)
            st.status = int(st.headers.get(":status", "0"))
        elif isinstance(ev, h2.events.TrailersReceived):
            st.trailers = fields(ev.headers)
        elif isinstance(ev, h2.events.DataReceived):
            if st is None:
                self.c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                return
            st.received += len(ev.data)
            st.sha.update(ev.data)
            if st.keep:
                st.data += ev.data
            if st.ack:
                self.c.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            else:
                st.unacked += ev.flow_controlled_length
        elif isinstance(ev, h2.events.StreamEnded):
            st.ended = True
        elif isinstance(ev, h2.events.StreamReset):
            if st is not None:
                st.reset = ev.error_code
        elif isinstance(ev, h2.events.ConnectionTerminated):
            self.goaway = (ev.error_code, ev.last_stream_id, ev.additional_data)
        elif isinstance(ev, h2.events.RemoteSettingsChanged):
            sent = {int(k): v.new_value for k, v in ev.changed_settings.items()}
            if self.first_settings is None:
                self.first_settings = sent
            self.remote_settings.update(sent)
        elif isinstance(ev, h2.events.PingAckReceived):
            self.pings_acked.add(ev.ping_data)

    def wait(self, pred, timeout=10, what="condition"):
        deadline = time.monotonic() + timeout
        while not pred():
            if time.monotonic() > deadline:
                raise AssertionError("timed out (%ss) waiting for %s; streams: %r goaway=%r eof=%s"
                                     % (timeout, what, list(self.streams.values())[-8:], self.goaway,
                                        self.eof))
            if self.eof and not self.rx:
                if pred():
                    break
                raise AssertionError("connection closed while waiting for %s; streams: %r goaway=%r"
                                     % (what, list(self.streams.values())[-8:], self.goaway))
            self.pump()
        return True

    def wait_settings(self, timeout=10):
        """The server's SETTINGS (ServerSettings), once its first SETTINGS frame arrived."""
        self.wait(lambda: self.first_settings is not None, timeout, "server SETTINGS")
        return self.remote_settings

    def ping_ok(self, timeout=5):
        """True once the connection answered a PING (shows it survived); fails the test otherwise."""
        payload = os.urandom(8)
        self.c.ping(payload)
        self.flush()
        self.wait(lambda: payload in self.pings_acked, timeout, "PING ACK")
        return True

    # -- requests
    def request(self, headers, end_stream=False, keep=True, ack=True, data=None):
        """Sends a request head as given (no validation). Returns the stream id. With `data`, DATA
        follows the HEADERS at once, before any response (at most one window, not waited for)."""
        sid = self.c.get_next_available_stream_id()
        self.streams[sid] = Stream(sid, keep=keep, ack=ack)
        self.c.send_headers(sid, headers, end_stream=end_stream)
        if data is not None:
            fs = self.c.max_outbound_frame_size
            for i in range(0, len(data), fs):
                self.c.send_data(sid, data[i:i + fs])
            self.streams[sid].sent += len(data)
        self.flush()
        return sid

    def connect(self, authority, extra=(), end_stream=False, keep=True, ack=True, data=None):
        """Plain CONNECT (H2C-01: only :method and :authority). Returns the stream id. With
        `data`, a DATA frame follows the HEADERS at once, before any response (H2C-06)."""
        hdrs = [(":method", "CONNECT")]
        if authority is not None:
            hdrs.append((":authority", authority))
        return self.request(hdrs + list(extra), end_stream=end_stream, keep=keep, ack=ack, data=data)

    def connect_udp(self, authority, path, scheme="https", extra=()):
        """Extended CONNECT for connect-udp (RFC 9298 §3.4, UDP-01)."""
        return self.request([(":method", "CONNECT"), (":protocol", "connect-udp"),
                             (":scheme", scheme), (":authority", authority), (":path", path),
                             ("capsule-protocol", "?1")] + list(extra))

    def get(self, path, authority="127.0.0.1"):
        return self.request([(":method", "GET"), (":scheme", "https"), (":authority", authority),
                             (":path", path)], end_stream=True)

    def wait_response(self, sid, timeout=10):
        st = self.streams[sid]
        self.wait(lambda: st.headers is not None or st.reset is not None, timeout,
                  "response on stream %d" % sid)
        return st

    def wait_closed(self, sid, timeout=10):
        st = self.streams[sid]
        self.wait(lambda: st.closed, timeout, "end of stream %d" % sid)
        return st

    def open_tunnel(self, authority, timeout=10, **kw):
        sid = self.connect(authority, **kw)
        st = self.wait_response(sid, timeout)
        if st.status != 200:
            raise AssertionError("CONNECT %s answered %r reset=%r body=%r" % (
                authority, st.status, st.reset, bytes(st.data[:200])))
        return sid

    def window(self, sid):
        try:
            return min(self.c.local_flow_control_window(sid), self.c.max_outbound_frame_size)
        except (h2.exceptions.StreamClosedError, h2.exceptions.NoSuchStreamError, KeyError):
            return 0

    def send_some(self, sid, data, end_stream=False):
        """Sends as much of `data` as the windows allow now; returns the byte count sent."""
        off = 0
        while off < len(data):
            n = min(self.window(sid), len(data) - off)
            if n <= 0:
                break
            self.c.send_data(sid, data[off:off + n])
            off += n
        if end_stream and off == len(data):
            self.c.end_stream(sid)
        self.streams[sid].sent += off
        self.flush()
        return off

    def send_all(self, sid, data, end_stream=False, timeout=30):
        """Sends `data` honouring flow control, pumping (and so receiving) while it waits."""
        deadline = time.monotonic() + timeout
        view = memoryview(data)
        off = 0
        while off < len(view):
            n = self.send_some(sid, view[off:off + 16 * 16384])
            off += n
            if off < len(view):
                if time.monotonic() > deadline:
                    raise AssertionError("send stalled on stream %d after %d of %d bytes"
                                         % (sid, off, len(view)))
                if self.streams[sid].reset is not None or self.eof:
                    raise AssertionError("stream %d reset (%r) while sending" % (
                        sid, self.streams[sid].reset))
                self.pump(0.01 if n else 0.05)
        if end_stream:
            self.c.end_stream(sid)
            self.flush()

    def reset(self, sid, code=CANCEL):
        self.c.reset_stream(sid, code)
        self.flush()

    def ack_stream(self, sid):
        st = self.streams[sid]
        if st.unacked:
            self.c.acknowledge_received_data(st.unacked, sid)
            st.unacked = 0
            self.flush()

    def close(self):
        try:
            self.c.close_connection()
            self.flush()
        except Exception:  # noqa: BLE001
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def echo_roundtrip(cli, sid, payload, timeout=30, end_stream=True):
    """Sends `payload` on tunnel `sid` (to an echo origin) and waits until it all came back."""
    st = cli.streams[sid]
    start = st.received
    cli.send_all(sid, payload, end_stream=end_stream, timeout=timeout)
    cli.wait(lambda: st.received - start >= len(payload) or st.reset is not None, timeout,
             "echo of %d bytes on stream %d" % (len(payload), sid))
    return bytes(st.data[start:start + len(payload)])


# ---------------------------------------------------------------------------------------------
# Extra loopback origins


class StallOrigin(TCPOrigin):
    """Accepts and never reads until `release` is set (or 120 s pass); then drains until EOF/RST
    and records how the connection ended: results[i] = {"received", "end": "eof"|"reset"}."""

    def __init__(self, rcvbuf=None, **kw):
        self.release = threading.Event()
        self.rcvbuf = rcvbuf
        super().__init__(**kw)

    def handle(self, c, idx, res):
        if self.rcvbuf:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf)
        self.release.wait(120)
        n = 0
        c.settimeout(30)
        try:
            while True:
                b = c.recv(1 << 16)
                if not b:
                    res["end"] = "eof"
                    break
                n += len(b)
        except ConnectionResetError:
            res["end"] = "reset"
        except socket.timeout:
            res["end"] = "timeout"
        res["received"] = n


class ResetOrigin(TCPOrigin):
    """Sends `hello`, waits `delay`, then closes with SO_LINGER {1,0} (a TCP RST, H2C-11)."""

    def __init__(self, hello=b"hello before reset", delay=0.2, **kw):
        self.hello, self.delay = hello, delay
        super().__init__(**kw)

    def handle(self, c, idx, res):
        c.sendall(self.hello)
        time.sleep(self.delay)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        res["reset"] = True


class WatchOrigin(TCPOrigin):
    """Reads until EOF or reset and records which (results[i]["end"], ["received"], ["t_end"]).
    Used for H2C-12 (client RST_STREAM -> upstream reset)."""

    def handle(self, c, idx, res):
        c.settimeout(60)
        n = 0
        try:
            while True:
                b = c.recv(1 << 16)
                if not b:
                    res["end"] = "eof"
                    break
                n += len(b)
                res["received"] = n
        except ConnectionResetError:
            res["end"] = "reset"
        except socket.timeout:
            res["end"] = "timeout"
        res["received"] = n
        res["t_end"] = time.monotonic()


def wait_log(proxy, needles, timeout=10):
    """Waits (bounded) until a line of the proxy's stderr holds `needles` (a string, or a tuple
    of which any will do); returns the first such line."""
    if isinstance(needles, str):
        needles = (needles,)
    deadline = time.monotonic() + timeout
    while True:
        for ln in proxy.stderr().splitlines():
            if any(n in ln for n in needles):
                return ln
        if time.monotonic() > deadline:
            raise AssertionError("no log line with %r within %ss; stderr tail:\n%s"
                                 % (needles, timeout, proxy.stderr()[-3000:]))
        time.sleep(0.05)


def metric(m, name, labels=None):
    key = name + (labels or "")
    return m.get(key, 0.0)


def parse_metrics_text(text):
    out = {}
    for ln in text.splitlines():
        if not ln or ln.startswith("#"):
            continue
        k, _, v = ln.rpartition(" ")
        out[k] = float(v)
    return out


class env_override:  # noqa: N801  (a context manager, used like a function)
    """Temporarily sets environment variables (Proxy.start copies os.environ)."""

    def __init__(self, **kv):
        self.kv = kv
        self.old = {}

    def __enter__(self):
        for k, v in self.kv.items():
            self.old[k] = os.environ.get(k)
            os.environ[k] = v
        return self

    def __exit__(self, *a):
        for k, v in self.old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def memory_env():
    """env_override for memory-bound tests: small ASan quarantine, leak detection kept."""
    return env_override(ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:quarantine_size_mb=8")
