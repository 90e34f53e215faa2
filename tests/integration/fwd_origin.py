"""A loopback HTTP/1.1 origin for the forwarding tests (asyncio in a thread; standard library only).

Keep-alive, Content-Length and chunked request bodies, Expect: 100-continue, and a few paths:
  /info            200 JSON: method, target, header lines as received, body length and sha256
  /bytes/N         N bytes of prng_chunks(7, N), Content-Length
  /chunked/N       the same bytes chunked, with a trailer x-sha256
  /close/N         the same bytes close-delimited (no length, Connection: close)
  /small           100 bytes "x", Content-Length
  /early           103 Early Hints, then 200
  /page?u=URL      an HTML page with URL in an iframe
  /nobody/204, /nobody/304   no body
  /hang            never answers
  /raw/NAME        a scripted, possibly hostile, response (RAW below), then the connection closes
It counts requests and connections, so a test can prove that nothing reached it.
"""
import asyncio
import hashlib
import json
import os
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import prng_chunks  # noqa: E402

RAW = {
    # FWD-07 from the origin: each must be 502 (or a cut response) and the connection not reused.
    "cl_te": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    "two_cl": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    "bad_chunk": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    "obs_fold": b"HTTP/1.1 200 OK\r\nX-A: 1\r\n  folded\r\nContent-Length: 2\r\n\r\nok",
    "short": b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"s" * 50,
    "short_chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
    "long": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA-BYTES-NOT-FOR-YOU",
    "garbage": b"SSH-2.0-OpenSSH\r\n\r\n",
    "nothing": b"",
    "hop": (b"HTTP/1.1 200 OK\r\nConnection: close, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: timeout=5\r\n"
            b"Proxy-Authenticate: Basic\r\nUpgrade: h2c\r\nX-Kept: yes\r\nContent-Length: 2\r\n\r\nok"),
}


class FwdOrigin:
    def __init__(self, host="127.0.0.1"):
        self.requests = 0
        self.conns = 0
        self.seen = []  # (method, target) of every request
        self.lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        ready = threading.Event()
        self.t = threading.Thread(target=self._run, args=(host, ready), daemon=True)
        self.t.start()
        ready.wait(10)

    def _run(self, host, ready):
        asyncio.set_event_loop(self.loop)

        async def start():
            self.server = await asyncio.start_server(self._conn, host, 0, backlog=1024, limit=1 << 20)
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
        self.loop.run_until_complete(start())
        self.loop.run_forever()

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def close(self):
        async def stop():
            self.server.close()
        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.t.join(5)

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    async def _conn(self, r, w):
        with self.lock:
            self.conns += 1
        try:
            while await self._one(r, w):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            try:
                w.close()
            except Exception:  # noqa: BLE001
                pass

    async def _read_body(self, r, w, headers):
        h = {k.lower(): v for k, v in headers}
        if h.get("expect", "").lower() == "100-continue":
            w.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await w.drain()
        sha = hashlib.sha256()
        n = 0
        trailers = []
        if "chunked" in h.get("transfer-encoding", "").lower():
            while True:
                size = int((await r.readline()).split(b";")[0].strip(), 16)
                if size == 0:
                    while True:
                        ln = await r.readline()
                        if ln in (b"\r\n", b""):
                            break
                        k, _, v = ln.decode("latin-1").partition(":")
                        trailers.append([k.strip(), v.strip()])
                    break
                left = size
                while left:
                    b = await r.read(min(left, 1 << 20))
                    if not b:
                        raise ConnectionError("eof in body")
                    sha.update(b)
                    n += len(b)
                    left -= len(b)
                await r.readexactly(2)
        else:
            left = int(h.get("content-length", "0"))
            while left:
                b = await r.read(min(left, 1 << 20))
                if not b:
                    raise ConnectionError("eof in body")
                sha.update(b)
                n += len(b)
                left -= len(b)
        return n, sha.hexdigest(), trailers

    async def _one(self, r, w):
        line = await r.readline()
        if not line:
            return False
        method, target, version = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
        headers = []
        while True:
            ln = await r.readline()
            if ln in (b"\r\n", b""):
                break
            k, _, v = ln.decode("latin-1").rstrip("\r\n").partition(":")
            headers.append([k, v.strip()])
        with self.lock:
            self.requests += 1
            self.seen.append((method, target))
        n, sha, trailers = await self._read_body(r, w, headers)
        path = target.split("?")[0]
        head_only = method == "HEAD"

        async def send(status, body=b"", extra=b"", length=True):
            hd = b"HTTP/1.1 %d X\r\n" % status + extra
            if length:
                hd += b"Content-Length: %d\r\n" % len(body)
            w.write(hd + b"\r\n" + (b"" if head_only else body))
            await w.drain()

        if path == "/info":
            body = json.dumps({"method": method, "target": target, "version": version, "headers": headers,
                               "len": n, "sha256": sha, "trailers": trailers}).encode()
            await send(200, body, b"Content-Type: application/json\r\n")
        elif path.startswith("/bytes/"):
            total = int(path.split("/")[2])
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % total)
            if not head_only:
                for c in prng_chunks(7, total):
                    w.write(c)
                    await w.drain()
            await w.drain()
        elif path.startswith("/chunked/"):
            total = int(path.split("/")[2])
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sha256\r\n\r\n")
            h = hashlib.sha256()
            for c in prng_chunks(7, total, chunk=100000):
                h.update(c)
                w.write(b"%x\r\n" % len(c) + c + b"\r\n")
                await w.drain()
            w.write(b"0\r\nX-Sha256: " + h.hexdigest().encode() + b"\r\n\r\n")
            await w.drain()
        elif path.startswith("/close/"):
            total = int(path.split("/")[2])
            w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
            for c in prng_chunks(7, total):
                w.write(c)
                await w.drain()
            return False
        elif path == "/page":
            # An HTML page that loads the URL in its query in an iframe (the browser test).
            u = target.split("?u=", 1)[1] if "?u=" in target else "about:blank"
            await send(200, b"<html><body><p id=fwd>forwarded page</p><iframe src=\"" + u.encode() +
                       b"\"></iframe></body></html>", b"Content-Type: text/html\r\n")
        elif path == "/small":
            await send(200, b"x" * 100)
        elif path == "/early":
            w.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n")
            await send(200, b"after hints")
        elif path.startswith("/nobody/"):
            await send(int(path.split("/")[2]), length=False)
        elif path == "/hang":
            await asyncio.sleep(3600)
        elif path.startswith("/raw/"):
            w.write(RAW[path.split("/")[2]])
            await w.drain()
            await asyncio.sleep(0.2)
            return False
        else:
            await send(404, b"no such path")
        return True
