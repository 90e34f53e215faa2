"""Helpers for the Extended CONNECT integration tests (test_xc_*.py): RFC 9297 capsules, UDP
echo origins, datagram transports over connect-udp (HTTP/2 streams of h2util.H2Client, HTTP/1.1
upgraded sockets), a paced datagram exchange, and the python3-websockets echo backend (started as
a subprocess with Debian's interpreter).

Spec IDs (XC-*, UDP-*, PYH2-01, NODE-02) refer to /work/shared/reference/spec-checklist.md.
Every loop here is bounded in count and in time."""

import json
import os
import random
import select
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness  # noqa: E402

SYS_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
NODE = "/usr/bin/node" if os.path.exists("/usr/bin/node") else "node"
DEFAULT_TEMPLATE = "/.well-known/masque/udp/{target_host}/{target_port}/"
# The windows the Extended CONNECT tests open their HTTP/2 clients with: datagram bursts and the
# oversized-capsule cases go out without waiting for credit.
WINDOWS = {"stream_window": 1 << 24, "conn_window": 1 << 24}


# ---------------------------------------------------------------------------------------------
# RFC 9000 varints and RFC 9297 capsules


def varint(n):
    for bits, tag in ((6, 0), (14, 0x4000), (30, 0x80000000), (62, 0xC000000000000000)):
        if n < (1 << bits):
            return (tag | n).to_bytes((bits + 2) // 8, "big")
    raise ValueError("varint too large: %d" % n)


def varint_decode(buf, i):
    """Returns (value, next index) or (None, i) when the buffer is too short."""
    if i >= len(buf):
        return None, i
    ln = 1 << (buf[i] >> 6)
    if i + ln > len(buf):
        return None, i
    v = buf[i] & 0x3F
    for k in range(1, ln):
        v = (v << 8) | buf[i + k]
    return v, i + ln


def capsule(ctype, value):
    return varint(ctype) + varint(len(value)) + value


def datagram_capsule(payload, context_id=0):
    """RFC 9297 §3.5 DATAGRAM capsule carrying RFC 9298 §5 context ID + UDP payload."""
    return capsule(0x00, varint(context_id) + payload)


class CapsuleReader:
    """Incremental capsule parser over an arbitrary split byte stream."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data
        out = []
        i = 0
        while True:
            t, j = varint_decode(self.buf, i)
            if t is None:
                break
            ln, k = varint_decode(self.buf, j)
            if ln is None or k + ln > len(self.buf):
                break
            out.append((t, bytes(self.buf[k:k + ln])))
            i = k + ln
        del self.buf[:i]
        return out

    @staticmethod
    def udp_payloads(capsules):
        """UDP payloads of the context-0 DATAGRAM capsules in `capsules`."""
        out = []
        for t, v in capsules:
            if t != 0:
                continue
            cid, i = varint_decode(v, 0)
            if cid == 0:
                out.append(v[i:])
        return out


def udp_path(host, port, template=DEFAULT_TEMPLATE):
    """Expands the template; IPv6 colons are percent-encoded (UDP-03)."""
    h = host.replace(":", "%3A")
    return template.replace("{target_host}", h).replace("{target_port}", str(port))


# ---------------------------------------------------------------------------------------------
# UDP echo origin


class UDPEcho:
    """Echoes every datagram back to its sender from a dedicated thread (big SO_RCVBUF)."""

    def __init__(self, host="127.0.0.1", rcvbuf=8 << 20):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_DGRAM)
        for opt in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, opt, rcvbuf)
            except OSError:
                pass
        self.sock.bind((host, 0))
        self.sock.settimeout(0.2)
        self.host = host
        self.port = self.sock.getsockname()[1]
        self.count = 0
        self.peers = set()
        self.closing = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self):
        while not self.closing:
            try:
                d, peer = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            self.count += 1
            self.peers.add(peer)
            try:
                self.sock.sendto(d, peer)
            except OSError:
                pass

    def close(self):
        self.closing = True
        self.thread.join(2)
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# ---------------------------------------------------------------------------------------------
# Datagram transports over a connect-udp tunnel, and the paced exchange


class H2UdpTunnel:
    """Datagrams over a connect-udp stream of an h2util.H2Client."""

    def __init__(self, client, sid):
        self.c, self.sid = client, sid
        self.st = client.streams[sid]
        self.capsules = CapsuleReader()

    def send_raw(self, data):
        self.c.send_all(self.sid, data)

    def send_payload(self, payload, context_id=0):
        self.send_raw(datagram_capsule(payload, context_id))

    def recv(self, timeout):
        """UDP payloads that arrived within `timeout` (may be empty)."""
        self.c.pump(timeout)
        data = bytes(self.st.data)
        self.st.data.clear()
        return CapsuleReader.udp_payloads(self.capsules.feed(data))

    @property
    def closed(self):
        return self.st.closed or self.c.eof


class H1UdpTunnel:
    def __init__(self, sock, early=b""):
        self.sock = sock
        self.reader = CapsuleReader()
        self.pending = self.reader.feed(early)
        self.eof = False

    def send_raw(self, data):
        self.sock.sendall(data)

    def send_payload(self, payload, context_id=0):
        self.send_raw(datagram_capsule(payload, context_id))

    def recv(self, timeout):
        out = CapsuleReader.udp_payloads(self.pending)
        self.pending = []
        if self.eof:
            return out
        r, _, _ = select.select([self.sock], [], [], timeout)
        if r or (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
            try:
                d = self.sock.recv(1 << 18)
            except (ConnectionResetError, ssl.SSLError):
                d = b""
            except (BlockingIOError, socket.timeout, ssl.SSLWantReadError):
                return out
            if not d:
                self.eof = True
            out += CapsuleReader.udp_payloads(self.reader.feed(d))
        return out

    @property
    def closed(self):
        return self.eof


def h1_connect_udp(port, host, target_port, tls_ca=None, template=DEFAULT_TEMPLATE,
                   extra=b"", timeout=10):
    """HTTP/1.1 Upgrade: connect-udp (UDP-02). Returns (socket, Response); the socket is left
    positioned after the response head (101) or read to EOF (any other status)."""
    s = harness.dial(port, tls_ca=tls_ca, timeout=timeout)
    path = udp_path(host, target_port, template)
    s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: Upgrade\r\n"
               "Upgrade: connect-udp\r\nCapsule-Protocol: ?1\r\n" % (path, port)).encode()
              + extra + b"\r\n")
    head = harness.read_head(s, timeout=timeout)
    resp = harness.parse_response(head)
    if resp.status != 101:
        try:
            resp = harness.parse_response(head + harness.recv_until_eof(s, timeout=timeout))
        except OSError:
            pass
    return s, resp


def dgram_payload(seq, size):
    """Payload for datagram `seq`: for size >= 4 a 4-byte sequence number then bytes derived
    from it; smaller ones are the low bytes of seq (unique among the few outstanding)."""
    if size < 4:
        return (seq % (1 << (8 * size))).to_bytes(size, "big")
    rnd = random.Random(seq).randbytes(size - 4)
    return seq.to_bytes(4, "big") + rnd


def paced_exchange(tun, count=10000, window=32, seed=7, loss_timeout=1.0, max_time=120,
                   sizes=(1, 1400)):
    """Sends `count` datagrams of mixed sizes with at most `window` outstanding and matches the
    echoes by content. Returns dict(sent, echoed, lost, corrupt, seconds, bytes)."""
    r = random.Random(seed)
    lo, hi = sizes
    outstanding = {}  # payload -> send time
    sent = echoed = lost = corrupt = 0
    nbytes = 0
    t0 = time.time()
    seq = 0
    while (seq < count or outstanding) and time.time() - t0 < max_time:
        while seq < count and len(outstanding) < window:
            size = lo if seq == 0 else hi if seq == 1 else r.randint(lo, hi)
            p = dgram_payload(seq, size)
            if p in outstanding:
                p = dgram_payload(seq, max(size, 4))
            outstanding[p] = time.time()
            tun.send_payload(p)
            nbytes += len(p)
            sent += 1
            seq += 1
        for p in tun.recv(0.02):
            if p in outstanding:
                del outstanding[p]
                echoed += 1
            else:
                corrupt += 1
        if tun.closed:
            break
        now = time.time()
        for p, ts in list(outstanding.items()):
            if now - ts > loss_timeout:
                del outstanding[p]
                lost += 1
    lost += len(outstanding)
    return dict(sent=sent, echoed=echoed, lost=lost, corrupt=corrupt,
                seconds=round(time.time() - t0, 2), bytes=nbytes)


# ---------------------------------------------------------------------------------------------
# WebSocket backends


class WSBackend:
    """python3-websockets echo server (tests/integration/ws_echo_server.py) in a subprocess.
    tls=(cert, key) serves wss. Request heads it saw are in self.requests()."""

    def __init__(self, tls=None, subprotocols=("chat",)):
        self.log = os.path.join(tempfile.mkdtemp(prefix="h2t-ws-"), "requests.jsonl")
        argv = [SYS_PYTHON, os.path.join(HERE, "ws_echo_server.py"), "--log", self.log]
        if tls:
            argv += ["--cert", tls[0], "--key", tls[1]]
        if subprotocols:
            argv += ["--subprotocols", ",".join(subprotocols)]
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     stdin=subprocess.DEVNULL)
        deadline = time.time() + 15
        line = b""
        while time.time() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if r:
                line = self.proc.stdout.readline()
                break
            if self.proc.poll() is not None:
                break
        if not line.startswith(b"PORT "):
            err = self.proc.stderr.read() if self.proc.poll() is not None else b""
            self.close()
            raise RuntimeError("ws backend did not start: %r %r" % (line, err))
        self.port = int(line.split()[1])

    def requests(self):
        try:
            with open(self.log) as f:
                return [json.loads(ln) for ln in f if ln.strip()]
        except FileNotFoundError:
            return []

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for f in (self.proc.stdout, self.proc.stderr):
            if f:
                f.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


def node_ws_client(config, timeout=60):
    """Runs tests/integration/node/ws_h2_client.js with `config`; returns its JSON result."""
    p = subprocess.run([NODE, os.path.join(HERE, "node", "ws_h2_client.js"), json.dumps(config)],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    out = p.stdout.decode(errors="replace").strip().splitlines()
    if not out:
        raise AssertionError("node client printed nothing (rc %d): %s"
                             % (p.returncode, p.stderr.decode(errors="replace")[-3000:]))
    res = json.loads(out[-1])
    res["_rc"] = p.returncode
    res["_stderr"] = p.stderr.decode(errors="replace")[-3000:]
    return res


def main():
    """unittest.main, verbose, exits non-zero on failure. warnings=False keeps Python's default
    filters (ResourceWarning stays silent) instead of unittest's 'default' action."""
    harness.main(warnings=False)
