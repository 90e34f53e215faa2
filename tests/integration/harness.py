"""Integration-test harness for h2tunnel (Python 3 standard library only).

Everything runs on loopback: the proxy binary ($H2TUNNEL_BIN) is started by `Proxy`, and the
origins below are threads in the test process. Spec IDs (H1C-*, H1S-*) refer to
/work/shared/reference/spec-checklist.md.
"""

import contextlib
import hashlib
import http.server
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import socketserver
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("H2T_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", ".."))
MiB = 1 << 20
KiB = 1 << 10

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                     "ERROR: ThreadSanitizer", "WARNING: ThreadSanitizer")


def proxy_bin():
    b = os.environ.get("H2TUNNEL_BIN")
    if not b:
        for cand in ("build/h2tunnel", "build-test/h2tunnel"):
            p = os.path.join(SOURCE_DIR, cand)
            if os.path.exists(p):
                return p
        raise unittest.SkipTest("H2TUNNEL_BIN is not set and no build/h2tunnel found")
    return b


def free_port(family=socket.AF_INET, host="127.0.0.1"):
    """A TCP port that was free a moment ago (callers retry on a bind race)."""
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def raise_nofile(n=8192):
    """Raise the soft RLIMIT_NOFILE (inherited by the proxy) for the many-tunnels tests."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(max(soft, n), hard) if hard != resource.RLIM_INFINITY else max(soft, n)
    if want > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# ---------------------------------------------------------------------------------------------
# Deterministic pseudo-random streams


def prng_chunks(seed, total, chunk=MiB):
    """Yields `total` bytes of the stream for `seed`, in pieces of at most `chunk` bytes.
    The stream is the concatenation of random.Random(seed).randbytes(MiB) blocks, so any prefix
    length gives the same bytes whatever the chunking."""
    r = random.Random(seed)
    left = total
    block = b""
    while left > 0:
        if not block:
            block = r.randbytes(MiB)
        n = min(left, chunk, len(block))
        yield block[:n]
        block = block[n:]
        left -= n


def prng_forever(seed):
    r = random.Random(seed)
    while True:
        yield r.randbytes(MiB)


def prng_sha256(seed, total):
    h = hashlib.sha256()
    for c in prng_chunks(seed, total):
        h.update(c)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# Socket helpers


def recv_exact(sock, n, timeout=30):
    sock.settimeout(timeout)
    out = bytearray()
    while len(out) < n:
        b = sock.recv(min(n - len(out), 1 << 20))
        if not b:
            raise EOFError("EOF after %d of %d bytes" % (len(out), n))
        out += b
    return bytes(out)


def recv_until_eof(sock, timeout=30, limit=1 << 30):
    """Reads until EOF; raises socket.timeout if the peer neither sends nor closes in time.
    A connection reset after some bytes is reported as EOF (the bytes are kept)."""
    sock.settimeout(timeout)
    out = bytearray()
    while len(out) < limit:
        try:
            b = sock.recv(1 << 16)
        except ConnectionResetError:
            break
        if not b:
            break
        out += b
    return bytes(out)


def read_head(sock, timeout=10, limit=64 * KiB):
    """Reads one HTTP head byte by byte (so nothing after the blank line is consumed)."""
    sock.settimeout(timeout)
    head = bytearray()
    while not head.endswith(b"\r\n\r\n"):
        b = sock.recv(1)
        if not b:
            raise EOFError("EOF inside response head: %r" % bytes(head))
        head += b
        if len(head) > limit:
            raise ValueError("response head too long")
    return bytes(head)


class Response:
    def __init__(self, status, reason, headers, body, raw, rest=b""):
        self.status = status
        self.reason = reason
        self.headers = headers  # list of (lowercased name, value)
        self.body = body
        self.raw = raw
        self.rest = rest  # bytes after this response (pipelining / smuggling checks)

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def header_all(self, name):
        return [v for k, v in self.headers if k == name.lower()]

    def proxy_status(self):
        """Parses `Proxy-Status: h2tunnel; error=TYPE; details="..."` into a dict."""
        v = self.header("proxy-status")
        if v is None:
            return None
        parts = [p.strip() for p in v.split(";")]
        d = {"proxy": parts[0]}
        for p in parts[1:]:
            if "=" in p:
                k, val = p.split("=", 1)
                if val.startswith('"') and val.endswith('"'):
                    val = val[1:-1]
                d[k.strip()] = val
        return d

    def __repr__(self):
        return "<Response %d %r %r body=%r rest=%r>" % (self.status, self.reason, self.headers,
                                                        self.body[:200], self.rest[:200])


def parse_response(data):
    """Parses one Content-Length-framed (or EOF-framed) response from the front of `data`."""
    i = data.find(b"\r\n\r\n")
    if i < 0:
        raise ValueError("no complete response head in %r" % data[:500])
    head = data[:i].decode("latin-1")
    lines = head.split("\r\n")
    m = re.match(r"HTTP/(\d)\.(\d) (\d{3})(?: (.*))?$", lines[0])
    if not m:
        raise ValueError("bad status line %r" % lines[0])
    status = int(m.group(3))
    headers = []
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        headers.append((k.strip().lower(), v.strip()))
    rest = data[i + 4:]
    cl = [v for k, v in headers if k == "content-length"]
    if cl:
        n = int(cl[0])
        body, rest = rest[:n], rest[n:]
    elif status == 200 and True:
        body, rest = b"", rest  # 2xx to CONNECT: tunnel bytes follow
    else:
        body, rest = rest, b""
    return Response(status, m.group(4) or "", headers, body, data, rest)


def tls_client_context(cafile, alpn=("http/1.1",)):
    ctx = ssl.create_default_context(cafile=cafile)
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def dial(port, tls_ca=None, alpn=("http/1.1",), host="127.0.0.1", timeout=10, rcvbuf=None):
    """A client connection to the proxy: plain TCP, or TLS verified against `tls_ca`."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:  # before connect(), so the window scale matches and autotuning is off
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
    except BaseException:
        s.close()
        raise
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if tls_ca:
        ctx = tls_client_context(tls_ca, alpn)
        s = ctx.wrap_socket(s, server_hostname="localhost")
        if alpn:
            assert s.selected_alpn_protocol() == "http/1.1", s.selected_alpn_protocol()
    return s


def connect_head(target, version="1.1", host=True, extra=b""):
    if isinstance(target, str):
        target = target.encode()
    h = b"CONNECT " + target + b" HTTP/" + version.encode() + b"\r\n"
    if host is True:
        h += b"Host: " + target + b"\r\n"
    elif host:
        h += b"Host: " + (host if isinstance(host, bytes) else host.encode()) + b"\r\n"
    return h + extra + b"\r\n"


def open_tunnel(proxy_port, target, tls_ca=None, early=b"", timeout=10, rcvbuf=None, **kw):
    """CONNECTs to `target` ("host:port") through the proxy and returns the socket positioned
    right after the 200 head. Raises TunnelRefused (with the Response) for any other status."""
    s = dial(proxy_port, tls_ca=tls_ca, timeout=timeout, rcvbuf=rcvbuf)
    try:
        s.sendall(connect_head(target, **kw) + early)
        head = read_head(s, timeout=timeout)
        resp = parse_response(head)
        if resp.status != 200:
            body = b""
            try:
                body = recv_until_eof(s, timeout=timeout)
            except OSError:
                pass
            resp = parse_response(head + body)
            raise TunnelRefused(resp)
        return s
    except BaseException:
        s.close()
        raise


class TunnelRefused(Exception):
    def __init__(self, resp):
        super().__init__("CONNECT answered %d: %r" % (resp.status, resp.raw[:300]))
        self.resp = resp


def raw_exchange(port, data, tls_ca=None, timeout=10, split=None):
    """Sends `data` (in one write, or in the pieces given by `split`) and reads until EOF.
    Returns (raw bytes, eof_seen)."""
    s = dial(port, tls_ca=tls_ca, timeout=timeout)
    with s:
        if split is None:
            s.sendall(data)
        else:
            for piece in split:
                s.sendall(piece)
                time.sleep(0.005)
        try:
            out = recv_until_eof(s, timeout=timeout)
            return out, True
        except socket.timeout:
            return b"", False


def http_get(port, path, tls_ca=None, timeout=10, headers=b""):
    """One GET on a fresh connection with Connection: close; returns Response."""
    req = (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
           + headers + b"\r\n")
    raw, eof = raw_exchange(port, req, tls_ca=tls_ca, timeout=timeout)
    if not eof:
        raise AssertionError("no EOF after GET %s" % path)
    return parse_response(raw)


def pump(sock, send_iter=(), expect=None, timeout=300, shut_wr=True, until_eof=True):
    """Sends everything from `send_iter` while concurrently reading, in one thread with
    non-blocking I/O (safe for SSLSocket). After the last byte: shutdown(SHUT_WR) if `shut_wr`
    (plain sockets only). Reads until EOF (if `until_eof`) or until `expect` bytes arrived.
    Returns (bytes_sent, bytes_received, sha256 hex of received)."""
    import selectors
    is_tls = isinstance(sock, ssl.SSLSocket)
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    it = iter(send_iter)
    pending = b""
    send_done = False
    sent = received = 0
    eof = False
    h = hashlib.sha256()
    deadline = time.time() + timeout
    piece = 16 * KiB if is_tls else 256 * KiB

    def recv_done():
        if eof:
            return True
        return (not until_eof) and expect is not None and received >= expect

    while not (send_done and recv_done()):
        if time.time() > deadline:
            raise TimeoutError("pump: sent %d, received %d, eof %s after %ss"
                               % (sent, received, eof, timeout))
        progress = False
        # write as much as the socket takes
        while not send_done:
            if not pending:
                try:
                    pending = next(it)
                except StopIteration:
                    send_done = True
                    if shut_wr and not is_tls:
                        sock.shutdown(socket.SHUT_WR)
                    break
            try:
                k = sock.send(pending[:piece])
            except (BlockingIOError, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                break
            pending = pending[k:]
            sent += k
            progress = True
        # read whatever is there (including bytes buffered inside the TLS layer)
        while not eof:
            try:
                b = sock.recv(1 << 18)
            except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                break
            if not b:
                eof = True
                break
            h.update(b)
            received += len(b)
            progress = True
            if expect is not None and received > expect:
                raise AssertionError("received %d bytes, more than the %d expected" % (received, expect))
        if not progress and not (send_done and recv_done()):
            ev = selectors.EVENT_READ | (0 if send_done else selectors.EVENT_WRITE)
            sel.modify(sock, ev)
            sel.select(0.5)
    sel.close()
    sock.setblocking(True)
    return sent, received, h.hexdigest()


# ---------------------------------------------------------------------------------------------
# The proxy process


class Proxy:
    """Starts h2tunnel on free loopback ports with a temporary state dir and access log.

    with Proxy(["--connect-timeout", "500ms"]) as p:
        p.tcp_port, p.tls_port, p.ca, p.rss_kib(), p.access_log(), p.metrics()

    allow_loopback / any_port add `--allow-net loopback` / `--allow-ports '*'` (what tests against
    loopback origins need); pass False to test the default policy."""

    def __init__(self, args=(), tcp=True, tls=True, allow_loopback=True, any_port=True,
                 workers=1, log_level="info", start_timeout=20):
        self.extra = list(args)
        self.want_tcp, self.want_tls = tcp, tls
        self.allow_loopback, self.any_port = allow_loopback, any_port
        self.workers = workers
        self.log_level = log_level
        self.start_timeout = start_timeout
        self.proc = None
        self.tmp = None
        self.tcp_port = self.tls_port = None
        self.stopped = False

    # -- lifecycle
    def __enter__(self):
        self.start()
        return self

    def __exit__(self, et, ev, tb):
        self.stop(check=et is None)
        return False

    def exe(self):
        """The binary is exec'd through a symlink with a neutral name, so that a broad
        `pkill h2tunnel` / `killall h2tunnel` run by something else on a shared machine does not
        kill the proxy under test (seen in practice). H2T_NO_ALIAS=1 runs it by its real path."""
        real = os.path.abspath(proxy_bin())
        if os.environ.get("H2T_NO_ALIAS"):
            return real
        link = os.path.join(self.tmp, "proxy-under-test")
        if not os.path.lexists(link):
            os.symlink(real, link)
        return link

    def argv(self):
        a = [self.exe(), "--state-dir", self.state_dir, "--access-log", self.access_log_path,
             "--log-level", self.log_level]
        if self.workers:
            a += ["--workers", str(self.workers)]
        if self.want_tcp:
            a += ["--listen", "tcp://127.0.0.1:%d" % self.tcp_port]
        if self.want_tls:
            a += ["--listen", "tls://127.0.0.1:%d" % self.tls_port]
        if self.allow_loopback:
            a += ["--allow-net", "loopback"]
        if self.any_port:
            a += ["--allow-ports", "*"]
        return a + self.extra

    def start(self):
        self.tmp = tempfile.mkdtemp(prefix="h2t-itest-")
        self.state_dir = os.path.join(self.tmp, "state")
        self.access_log_path = os.path.join(self.tmp, "access.log")
        self.stderr_path = os.path.join(self.tmp, "stderr.log")
        self.stdout_path = os.path.join(self.tmp, "stdout.log")
        last = None
        for _attempt in range(5):  # free_port() can race with other processes
            self.tcp_port = free_port() if self.want_tcp else None
            self.tls_port = free_port() if self.want_tls else None
            env = dict(os.environ)
            env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
            env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
            with open(self.stdout_path, "ab") as out, open(self.stderr_path, "ab") as err:
                self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=out,
                                             stderr=err, env=env)
            try:
                self._wait_healthy()
                return
            except Exception as e:  # noqa: BLE001
                last = e
                if self.proc.poll() is None:
                    self.proc.kill()
                    self.proc.wait()
                if "already in use" not in self.stderr().lower():  # uv_strerror: "address already in use"
                    break
        self._dump("proxy failed to start")
        raise RuntimeError("proxy did not become healthy: %r\n%s" % (last, self.stderr()))

    def _wait_healthy(self):
        deadline = time.time() + self.start_timeout
        port = self.tcp_port or self.tls_port
        ca = None if self.tcp_port else self.ca
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("proxy exited with %d during start-up" % self.proc.returncode)
            try:
                if ca is None or os.path.exists(ca):
                    r = http_get(port, "/healthz", tls_ca=ca, timeout=2)
                    if r.status == 200:
                        if self.tls_port and self.tcp_port:
                            # TLS listener up too (dev CA written by now).
                            r2 = http_get(self.tls_port, "/healthz", tls_ca=self.ca, timeout=2)
                            if r2.status != 200:
                                raise RuntimeError("tls /healthz: %d" % r2.status)
                        return
            except (OSError, ValueError, AssertionError, EOFError, ssl.SSLError):
                pass
            time.sleep(0.05)
        raise TimeoutError("no /healthz within %ss" % self.start_timeout)

    @property
    def ca(self):
        return os.path.join(self.state_dir, "ca.pem")

    @property
    def pid(self):
        return self.proc.pid

    def stderr(self):
        try:
            with open(self.stderr_path, "r", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def _dump(self, why):
        sys.stderr.write("\n===== h2tunnel stderr (%s; argv %s) =====\n%s\n===== end =====\n"
                         % (why, " ".join(self.argv()) if self.tmp else "", self.stderr()[-20000:]))

    def sanitizer_reports(self):
        err = self.stderr()
        return [m for m in SANITIZER_MARKERS if m in err]

    def stop(self, check=True, timeout=10):
        """SIGTERM; the proxy must exit 0 within `timeout` and its stderr must hold no sanitizer
        report. Tests close their tunnels first, so a proxy still draining after `timeout`
        (the default --drain-timeout is 30s) has leaked a connection or tunnel."""
        if self.stopped or self.proc is None:
            return
        self.stopped = True
        rc = None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                self._dump("did not exit within %ss of SIGTERM" % timeout)
                if check:
                    raise AssertionError("proxy did not exit within %ss of SIGTERM" % timeout)
        else:
            rc = self.proc.returncode
        problems = []
        if rc not in (0, None):
            problems.append("exit code %r (expected 0)" % rc)
        san = self.sanitizer_reports()
        if san:
            problems.append("sanitizer report(s): %s" % ", ".join(san))
        if problems:
            self._dump("; ".join(problems))
        keep = os.environ.get("H2T_KEEP_TMP")
        if not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        # A sanitizer report fails the test even when the test body itself already failed.
        if problems and (check or san):
            raise AssertionError("proxy: " + "; ".join(problems))

    # -- observation
    def alive(self):
        return self.proc.poll() is None

    def rss_kib(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for ln in f:
                if ln.startswith("VmRSS:"):
                    return int(ln.split()[1])
        raise RuntimeError("no VmRSS")

    def access_log(self):
        out = []
        try:
            with open(self.access_log_path) as f:
                for ln in f:
                    ln = ln.strip()
                    if ln:
                        out.append(json.loads(ln))
        except FileNotFoundError:
            pass
        return out

    def wait_access_log(self, pred, timeout=5):
        """Waits until some access-log line satisfies pred; returns it (tunnel lines are written
        when the tunnel ends, which can be a little after the client saw EOF)."""
        deadline = time.time() + timeout
        while True:
            for rec in self.access_log():
                if pred(rec):
                    return rec
            if time.time() > deadline:
                raise AssertionError("no matching access-log line; have:\n%s"
                                     % "\n".join(json.dumps(r) for r in self.access_log()[-20:]))
            time.sleep(0.05)

    def metrics(self):
        """GET /metrics -> {"name{labels}": value}."""
        r = http_get(self.tcp_port or self.tls_port, "/metrics",
                     tls_ca=None if self.tcp_port else self.ca)
        assert r.status == 200, r
        out = {}
        for ln in r.body.decode().splitlines():
            if not ln or ln.startswith("#"):
                continue
            k, _, v = ln.rpartition(" ")
            out[k] = float(v)
        return out

    def tunnel(self, target, tls=False, **kw):
        port = self.tls_port if tls else self.tcp_port
        return open_tunnel(port, target, tls_ca=self.ca if tls else None, **kw)



def start_proxy_small_quarantine(args=(), **kw):
    """A started Proxy whose ASan quarantine is small: for RSS checks, where the default
    quarantine would count freed chunks as resident."""
    old = os.environ.get("ASAN_OPTIONS")
    os.environ["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0:quarantine_size_mb=8"
    try:
        p = Proxy(args, **kw)
        p.start()
    finally:
        if old is None:
            del os.environ["ASAN_OPTIONS"]
        else:
            os.environ["ASAN_OPTIONS"] = old
    return p

# ---------------------------------------------------------------------------------------------
# Loopback origins (threads)


class TCPOrigin:
    """A threaded TCP server on 127.0.0.1 (or ::1) calling handle(conn, index) per connection.
    Records per-connection results in self.results (index -> dict)."""

    def __init__(self, host="127.0.0.1", backlog=1024, family=socket.AF_INET):
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(backlog)
        self.port = self.sock.getsockname()[1]
        self.host = host
        self.accepted = 0
        self.results = {}
        self.errors = []
        self.lock = threading.Lock()
        self.done = threading.Condition(self.lock)
        self.finished = 0
        self.conns = []
        self.closing = False
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    @property
    def addr(self):
        h = "[%s]" % self.host if ":" in self.host else self.host
        return "%s:%d" % (h, self.port)

    def _accept_loop(self):
        while not self.closing:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                idx = self.accepted
                self.accepted += 1
                self.results[idx] = {}
                self.conns.append(c)
            threading.Thread(target=self._run, args=(c, idx), daemon=True).start()

    def _run(self, c, idx):
        try:
            self.handle(c, idx, self.results[idx])
        except Exception as e:  # noqa: BLE001
            with self.lock:
                self.errors.append((idx, repr(e)))
            self.results[idx]["error"] = repr(e)
        finally:
            try:
                c.close()
            except OSError:
                pass
            with self.lock:
                self.finished += 1
                self.done.notify_all()

    def wait_finished(self, n, timeout=30):
        with self.lock:
            ok = self.done.wait_for(lambda: self.finished >= n, timeout)
        if not ok:
            raise AssertionError("origin: %d of %d connections finished" % (self.finished, n))

    def handle(self, c, idx, res):
        raise NotImplementedError

    def close(self):
        self.closing = True
        try:
            self.sock.close()
        except OSError:
            pass
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class EchoOrigin(TCPOrigin):
    """Echoes everything; on EOF sends FIN back (half-close friendly)."""

    def handle(self, c, idx, res):
        n = 0
        while True:
            b = c.recv(1 << 16)
            if not b:
                break
            n += len(b)
            c.sendall(b)
        res["echoed"] = n
        c.shutdown(socket.SHUT_WR)


class StreamOrigin(TCPOrigin):
    """Sends `send_bytes` of prng stream `seed` (or forever if send_bytes is None) and then FIN,
    while concurrently reading until EOF and hashing what arrives (a sink with sha256).
    results[i]: sent (live counter), received, sha256, send_done, recv_done."""

    def __init__(self, send_bytes=0, seed=1, sndbuf=None, read=True, read_pause=0.0, **kw):
        self.send_bytes = send_bytes
        self.seed = seed
        self.sndbuf = sndbuf
        self.read = read
        self.read_pause = read_pause  # seconds to sleep after each read: a slow sink
        super().__init__(**kw)

    def handle(self, c, idx, res):
        if self.sndbuf:
            c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.sndbuf)
        res.update(sent=0, received=0, send_done=False, recv_done=False)

        def sender():
            try:
                gen = (prng_forever(self.seed) if self.send_bytes is None
                       else prng_chunks(self.seed, self.send_bytes, 256 * KiB))
                for chunk in gen:
                    view = memoryview(chunk)
                    while view:
                        k = c.send(view)
                        view = view[k:]
                        res["sent"] += k
                c.shutdown(socket.SHUT_WR)
                res["send_done"] = True
            except OSError as e:
                res["send_error"] = repr(e)

        t = threading.Thread(target=sender, daemon=True)
        if self.send_bytes != 0:
            t.start()
        h = hashlib.sha256()
        if self.read:
            while True:
                try:
                    b = c.recv(1 << 18)
                except OSError as e:
                    res["recv_error"] = repr(e)
                    break
                if not b:
                    break
                h.update(b)
                res["received"] += len(b)
                if self.read_pause:
                    time.sleep(self.read_pause)
            res["sha256"] = h.hexdigest()
            res["recv_done"] = True
        if t.ident:
            t.join()
        if self.send_bytes == 0:
            res["send_done"] = True


class HalfCloseOrigin(TCPOrigin):
    """Reads until EOF, then replies b"GOT <n> <sha256>\\n" + reply_extra and closes.
    The reply is sent after the client's FIN, so it only arrives if the proxy forwards the
    client's half-close and keeps the downstream direction open."""

    reply_extra = b""

    def handle(self, c, idx, res):
        h = hashlib.sha256()
        n = 0
        while True:
            b = c.recv(1 << 16)
            if not b:
                break
            n += len(b)
            h.update(b)
        res["received"] = n
        res["sha256"] = h.hexdigest()
        time.sleep(0.05)  # the reply comes clearly after the FIN
        c.sendall(b"GOT %d %s\n" % (n, h.hexdigest().encode()) + self.reply_extra)
        res["replied"] = True


class BannerOrigin(TCPOrigin):
    """Sends `banner`, then shutdown(SHUT_WR), then reads until EOF and records the bytes."""

    def __init__(self, banner=b"220 banner then FIN\r\n", **kw):
        self.banner = banner
        super().__init__(**kw)

    def handle(self, c, idx, res):
        c.sendall(self.banner)
        c.shutdown(socket.SHUT_WR)
        res["banner_sent"] = True
        data = bytearray()
        c.settimeout(30)
        while True:
            b = c.recv(1 << 16)
            if not b:
                break
            data += b
        res["data"] = bytes(data)


class Blackhole:
    """A loopback port whose SYNs are dropped, so a connect() hangs (for 504 connection_timeout).

    listen(0) plus one filler connection fills the accept queue; Linux then drops further SYNs.
    `works` says whether a probe connect actually hung; when it did not, tests fall back to a
    never-answering DNS server (dns_timeout 504). `host`/`port` choose the address (any of
    127.0.0.0/8; port 0: a free one)."""

    def __init__(self, probe_timeout=1.0, host="127.0.0.1", port=0):
        self.host = host
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind((host, port))
        self.sock.listen(0)
        self.port = self.sock.getsockname()[1]
        self.fillers = []
        for _ in range(3):
            f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            f.setblocking(False)
            try:
                f.connect((host, self.port))
            except (BlockingIOError, InterruptedError):
                pass
            self.fillers.append(f)
        time.sleep(0.1)
        probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        probe.settimeout(probe_timeout)
        try:
            probe.connect((host, self.port))
            self.works = False
        except socket.timeout:
            self.works = True
        except OSError:
            self.works = False
        finally:
            probe.close()

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def close(self):
        for f in self.fillers:
            f.close()
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class FakeDNS:
    """A UDP DNS server on 127.0.0.1 answering A/AAAA queries from `records`
    ({name: ["1.2.3.4", "::1"]}); other names get NXDOMAIN. silent=True never answers
    (for dns_timeout). Pass `--dns-server 127.0.0.1:<port>` to the proxy. hold() keeps the
    answers back until release() sends them all in one burst (to time them against the client)."""

    def __init__(self, records=None, silent=False):
        self.records = {k.lower().rstrip("."): v for k, v in (records or {}).items()}
        self.silent = silent
        self.queries = []
        self.held = None  # answers kept back while holding: [(resp, peer)]
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.closing = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def _loop(self):
        while not self.closing:
            try:
                r, _, _ = select.select([self.sock], [], [], 0.2)
                if not r:
                    continue
                pkt, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                resp = self._answer(pkt)
            except Exception:  # noqa: BLE001  (malformed query: ignore)
                continue
            if resp is None or self.silent:
                continue
            with self.lock:
                if self.held is not None:
                    self.held.append((resp, peer))
                    continue
            try:
                self.sock.sendto(resp, peer)
            except OSError:
                pass

    def hold(self):
        with self.lock:
            self.held = []

    def release(self):
        with self.lock:
            held, self.held = self.held or [], None
        for resp, peer in held:
            try:
                self.sock.sendto(resp, peer)
            except OSError:
                pass

    def _answer(self, pkt):
        qid, flags, qd, _an, _ns, _ar = struct.unpack("!HHHHHH", pkt[:12])
        i = 12
        labels = []
        while pkt[i] != 0:
            n = pkt[i]
            labels.append(pkt[i + 1:i + 1 + n].decode("ascii", "replace"))
            i += 1 + n
        i += 1
        qtype, qclass = struct.unpack("!HH", pkt[i:i + 4])
        question = pkt[12:i + 4]
        name = ".".join(labels).lower()
        self.queries.append((name, qtype))
        rd = flags & 0x0100
        if name not in self.records:
            return struct.pack("!HHHHHH", qid, 0x8003 | rd | 0x0080, 1, 0, 0, 0) + question
        answers = b""
        count = 0
        for a in self.records[name]:
            fam = socket.AF_INET6 if ":" in a else socket.AF_INET
            t = 28 if fam == socket.AF_INET6 else 1
            if t != qtype:
                continue
            rdata = socket.inet_pton(fam, a)
            answers += struct.pack("!HHHIH", 0xC00C, t, 1, 5, len(rdata)) + rdata
            count += 1
        return struct.pack("!HHHHHH", qid, 0x8000 | rd | 0x0080, 1, count, 0, 0) + question + answers

    def close(self):
        self.closing = True
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class HTTPSOrigin:
    """An HTTPS origin (ssl + http.server) on 127.0.0.1 with certificates from certs/mkcerts.sh
    in a temp dir. GET / answers `body`; self.ca is the CA that signed its leaf."""

    def __init__(self, body=None, host="127.0.0.1"):
        self.body = body if body is not None else (
            b"hello from the https origin " + os.urandom(8).hex().encode() + b"\n")
        self.dir = tempfile.mkdtemp(prefix="h2t-origin-")
        subprocess.run(["bash", os.path.join(SOURCE_DIR, "certs", "mkcerts.sh"), self.dir],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.ca = os.path.join(self.dir, "ca.pem")
        body_ref = self.body
        self.requests = []
        reqs = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                reqs.append((self.path, dict(self.headers)))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body_ref)))
                self.end_headers()
                self.wfile.write(body_ref)

            def log_message(self, *a):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.httpd = Server((host, 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(os.path.join(self.dir, "cert.pem"), os.path.join(self.dir, "key.pem"))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


MISSING_TOOL = "missing tool: "
SKIP_EXIT = 77  # ctest's SKIP_RETURN_CODE for integration tests (tests/CMakeLists.txt)


def needs_tool(present, what):
    """Class/test decorator for a test that needs an external tool. Without it the test is skipped
    with a reason that starts with MISSING_TOOL, which scripts/test.sh turns into a failure: the
    install step (scripts/deps.sh --test) exists so that nothing is skipped."""
    return unittest.skipUnless(present, MISSING_TOOL + what)


def main(**kwargs):
    """unittest.main, verbose. Exit status: 1 if anything failed, SKIP_EXIT (ctest shows "Not Run")
    if anything was skipped, else 0. Skip reasons are appended to $H2T_SKIP_LOG when set, so the
    test script can list them and fail on missing tools."""
    kwargs.setdefault("verbosity", 2)
    result = unittest.main(exit=False, **kwargs).result
    if not result.wasSuccessful():
        sys.exit(1)
    if result.skipped:
        name = os.path.basename(sys.argv[0])
        lines = ["%s: %s: %s" % (name, t.id(), why) for t, why in result.skipped]
        sys.stderr.write("SKIPPED (not a pass):\n  " + "\n  ".join(lines) + "\n")
        log = os.environ.get("H2T_SKIP_LOG")
        if log:
            with open(log, "a", encoding="utf-8") as f:
                f.write("\n".join(lines) + "\n")
        sys.exit(SKIP_EXIT)
    sys.exit(0)
