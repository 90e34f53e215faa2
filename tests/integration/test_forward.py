"""Forward proxying of ordinary requests (issue 11; checklist FWD-01..14, H2-06).

The proxy's own pages (/healthz, /metrics) answer only for the proxy's own authority: origin-form
on HTTP/1.1, or an absolute-form / :authority naming localhost, the address the client connected
to, or a --proxy-name (port absent or the listener's). Every other authority is forwarded to that
origin over HTTP/1.1. Origins are loopback servers started here.
"""
import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (MiB, EchoOrigin, HTTPSOrigin, Proxy, dial, main, needs_tool, parse_response, prng_sha256,  # noqa: E402
                     raise_nofile, read_head, recv_until_eof, start_proxy_small_quarantine)
from h2util import INTERNAL_ERROR, H2Client  # noqa: E402
from fwd_origin import FwdOrigin  # noqa: E402

CURL = shutil.which("curl")
H2LOAD = shutil.which("h2load")
NODE = shutil.which("node")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
HERE = os.path.dirname(os.path.abspath(__file__))


def curl(args, timeout=120):
    return subprocess.run([CURL, "-sS", "--max-time", "100"] + args, capture_output=True, timeout=timeout)


def metric(p, name):
    return p.metrics().get(name, 0.0)


def h1_exchange(port, req, tls_ca=None, timeout=10):
    s = dial(port, tls_ca=tls_ca, timeout=timeout)
    with s:
        s.sendall(req)
        return parse_response(recv_until_eof(s, timeout=timeout))


class OwnAuthorityTest(unittest.TestCase):
    """Step 1: local pages only for the proxy itself (H2-06, issue 11)."""

    @classmethod
    def setUpClass(cls):
        cls.proxy = Proxy(["--proxy-name", "proxy.example, other.example"])
        cls.proxy.start()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()

    def h2(self):
        return H2Client(self.proxy.tls_port, tls_ca=self.proxy.ca)

    def test_h2_own_authorities_get_local_pages(self):
        """H2-06: /healthz for localhost, the connected address (with and without the listener's
        port) and a --proxy-name."""
        p = self.proxy.tls_port
        with self.h2() as cli:
            for auth in ("localhost", "127.0.0.1", "127.0.0.1:%d" % p, "localhost:%d" % p,
                         "proxy.example", "OTHER.example:%d" % p):
                st = cli.wait_closed(cli.get("/healthz", authority=auth))
                self.assertEqual(st.status, 200, auth)
                self.assertEqual(bytes(st.data), b"ok\n", auth)

    def test_h2_other_authority_never_gets_metrics(self):
        """Issue 11: a request for another authority is not answered with the proxy's pages."""
        p = self.proxy.tls_port
        with self.h2() as cli:
            for auth in ("any-host.example", "127.0.0.1:%d" % (p + 1 if p < 65535 else p - 1),
                         "127.0.0.2", "proxy.example.org"):
                st = cli.wait_closed(cli.get("/metrics", authority=auth))
                self.assertNotIn(b"h2tunnel_", bytes(st.data), auth)
                self.assertNotEqual(st.status, 200, auth)

    def test_h1_absolute_form_for_the_proxy_is_local(self):
        """FWD-01 / RFC 9112 §3.2.2: an absolute-form request naming the proxy is its own."""
        p = self.proxy.tcp_port
        r = h1_exchange(p, b"GET http://127.0.0.1:%d/healthz HTTP/1.1\r\nHost: x\r\n"
                           b"Connection: close\r\n\r\n" % p)
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"ok\n")

    def test_h1_absolute_form_for_another_is_not_local(self):
        """Issue 11: absolute-form for another authority never gets the local pages."""
        r = h1_exchange(self.proxy.tcp_port, b"GET http://any-host.invalid/metrics HTTP/1.1\r\n"
                                             b"Host: any-host.invalid\r\nConnection: close\r\n\r\n")
        self.assertNotEqual(r.status, 200)
        self.assertNotIn(b"h2tunnel_", r.body)

    def test_h1_userinfo_is_400(self):
        """FWD-02: userinfo in an http URI is an error (RFC 9110 §4.2.4)."""
        r = h1_exchange(self.proxy.tcp_port, b"GET http://user:pw@example.com/ HTTP/1.1\r\n"
                                             b"Host: example.com\r\n\r\n")
        self.assertEqual(r.status, 400)
        self.assertIn("userinfo", r.proxy_status().get("details", ""))


class ForwardTest(unittest.TestCase):
    """Steps 2-8: forwarding through real clients to a loopback origin."""

    @classmethod
    def setUpClass(cls):
        # h2load's 1000 concurrent streams need 1000 upstream connections (HTTP/1.1 to the origin),
        # all accepted by the origin in this process.
        raise_nofile(8192)
        cls.proxy = Proxy()
        cls.proxy.start()
        cls.origin = FwdOrigin()

    @classmethod
    def tearDownClass(cls):
        cls.origin.close()
        cls.proxy.stop()

    def url(self, path):
        return "http://%s%s" % (self.origin.addr, path)

    def px(self):
        return ["-x", "http://127.0.0.1:%d" % self.proxy.tcp_port]

    def info(self, r):
        self.assertEqual(r.returncode, 0, r.stderr)
        return json.loads(r.stdout)

    # -- HTTP/1.1 front end with curl

    def test_fwd01_curl_get_headers(self):
        """FWD-01/02/03/04: absolute-form in, origin-form out with Host from the target, hop-by-hop
        fields (and those Connection lists) removed, Via added both ways."""
        r = curl(self.px() + ["-D", "/dev/stderr", "-H", "Connection: X-Private", "-H", "X-Private: secret",
                              "-H", "Keep-Alive: 5", "-H", "Proxy-Authorization: Basic Zm9vOmJhcg==",
                              "-H", "TE: trailers", "-H", "X-Kept: 1", "-H", "Host: wrong.example",
                              self.url("/info?q=1")])
        i = self.info(r)
        names = [k.lower() for k, _ in i["headers"]]
        self.assertEqual(i["target"], "/info?q=1")
        self.assertEqual(dict((k.lower(), v) for k, v in i["headers"])["host"], self.origin.addr)
        for hop in ("connection", "x-private", "keep-alive", "proxy-authorization", "proxy-connection", "te"):
            self.assertNotIn(hop, names)
        self.assertIn("x-kept", names)
        self.assertEqual(dict((k.lower(), v) for k, v in i["headers"])["via"], "1.1 h2tunnel")
        self.assertRegex(r.stderr.decode(), r"(?i)via: 1\.1 h2tunnel")
        rec = self.proxy.wait_access_log(lambda x: x.get("proto") == "forward" and x.get("path") == "/info"
                                         and x.get("method") == "GET")
        self.assertEqual(rec["status"], 200)
        self.assertEqual(rec["target"], self.origin.addr)
        self.assertEqual(rec["scheme"], "http")
        self.assertNotIn("q=1", json.dumps(rec))  # the query is not logged by default
        self.assertIn(rec["upstream"], ("new", "reused"))

    def test_fwd03_response_hop_by_hop(self):
        """FWD-03 on responses: Connection and what it lists, Keep-Alive, Upgrade,
        Proxy-Authenticate are removed; other fields are kept."""
        r = curl(self.px() + ["-D", "-", "-o", "/dev/null", self.url("/raw/hop")])
        head = r.stdout.decode().lower()
        self.assertIn("x-kept: yes", head)
        for f in ("x-secret", "keep-alive", "upgrade:", "proxy-authenticate"):
            self.assertNotIn(f, head)

    def test_fwd_curl_https_proxy_and_h2_proxy(self):
        """curl -x https://proxy (TLS to the proxy, HTTP/1.1) and --proxy-http2, which for an
        http:// URL sends the request itself as an HTTP/2 GET with :scheme http and :authority
        the origin on the proxy connection (curl 8.14)."""
        base = ["-x", "https://127.0.0.1:%d" % self.proxy.tls_port, "--proxy-cacert", self.proxy.ca]
        i = self.info(curl(base + [self.url("/info")]))
        self.assertEqual(dict((k.lower(), v) for k, v in i["headers"])["via"], "1.1 h2tunnel")
        r = curl(["--proxy-http2", "-v"] + base + [self.url("/info")])
        i = self.info(r)
        self.assertEqual(dict((k.lower(), v) for k, v in i["headers"])["via"], "2 h2tunnel")
        self.assertIn("ALPN: server accepted h2", r.stderr.decode())
        self.proxy.wait_access_log(lambda x: x.get("proto") == "forward" and x.get("front") == "h2")

    def test_fwd_uploads(self):
        """Request bodies stream to the origin: Content-Length (--data-binary), chunked, and -T with
        Expect: 100-continue (FWD-06: the origin's 100 is relayed)."""
        with tempfile.NamedTemporaryFile() as t:
            data = os.urandom(3 * MiB + 17)
            t.write(data)
            t.flush()
            want = hashlib.sha256(data).hexdigest()
            for extra in (["--data-binary", "@" + t.name],
                          ["--data-binary", "@" + t.name, "-H", "Transfer-Encoding: chunked"],
                          ["-T", t.name, "-H", "Expect: 100-continue", "-v"]):
                r = curl(self.px() + extra + [self.url("/info")])
                i = self.info(r)
                self.assertEqual((i["len"], i["sha256"]), (len(data), want), extra)
                if "-T" in extra:
                    self.assertIn("HTTP/1.1 100", r.stderr.decode())

    def test_fwd09_head_204_304_and_103(self):
        """FWD-09: HEAD, 204 and 304 carry no body; 103 is passed on before the final answer."""
        r = curl(self.px() + ["-I", self.url("/bytes/1000")])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout.decode(), r"(?i)content-length: 1000")
        for code in (204, 304):
            r = curl(self.px() + ["-D", "-", "-w", "%{size_download}", self.url("/nobody/%d" % code)])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertTrue(r.stdout.decode().endswith("\r\n\r\n0"), r.stdout)
        s = dial(self.proxy.tcp_port)
        with s:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.url("/early").encode())
            h1 = read_head(s)
            self.assertTrue(h1.startswith(b"HTTP/1.1 103"), h1)
            h2 = read_head(s)
            self.assertTrue(h2.startswith(b"HTTP/1.1 200"), h2)

    def test_fwd08_bodies_framings(self):
        """FWD-08/10: Content-Length, chunked (re-chunked with its trailer) and close-delimited
        bodies arrive whole."""
        n = 5 * MiB + 3
        want = prng_sha256(7, n)
        for path in ("/bytes/%d" % n, "/chunked/%d" % n, "/close/%d" % n):
            r = curl(self.px() + [self.url(path)])
            self.assertEqual(r.returncode, 0, (path, r.stderr))
            self.assertEqual(hashlib.sha256(r.stdout).hexdigest(), want, path)
        s = dial(self.proxy.tcp_port)
        with s:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % self.url("/chunked/10").encode())
            raw = recv_until_eof(s)
        self.assertIn(b"transfer-encoding: chunked", raw.lower())
        self.assertRegex(raw, rb"(?i)\r\n0\r\nx-sha256: [0-9a-f]{64}\r\n\r\n$")

    def test_fwd_large_download_sha256(self):
        """256 MiB through the proxy, checked with sha256 (memory stays bounded: backpressure)."""
        n = 256 * MiB
        p = start_proxy_small_quarantine()
        try:
            base = p.rss_kib()
            r = curl(["-x", "http://127.0.0.1:%d" % p.tcp_port, "-o", "-", self.url("/bytes/%d" % n)], timeout=600)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(len(r.stdout), n)
            self.assertEqual(hashlib.sha256(r.stdout).hexdigest(), prng_sha256(7, n))
            grown = p.rss_kib() - base
            sys.stderr.write("\n  [256 MiB download] proxy RSS grew by %d KiB\n" % grown)
            self.assertLess(grown, 64 * 1024)
        finally:
            p.stop()

    def test_fwd_keepalive_pipelined(self):
        """Keep-alive and pipelining on the client side: two requests in one write, answered in
        order on one connection (H1S-14)."""
        s = dial(self.proxy.tcp_port)
        with s:
            req = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.url("/small").encode()
            s.sendall(req + req.replace(b"/small", b"/info") + b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            raw = recv_until_eof(s)
        self.assertEqual(raw.count(b"HTTP/1.1 200"), 3, raw)
        self.assertTrue(raw.endswith(b"ok\n"), raw[-200:])

    def test_fwd_python_requests_pool_reuse(self):
        """python requests with a proxy: keep-alive reuse on both sides, proven by the pool metric."""
        import requests
        before = metric(self.proxy, 'h2tunnel_forward_pool_total{result="hit"}')
        proxies = {"http": "http://127.0.0.1:%d" % self.proxy.tcp_port}
        with requests.Session() as sess:
            for _ in range(10):
                r = sess.get(self.url("/small"), proxies=proxies, timeout=30)
                self.assertEqual(r.status_code, 200)
                self.assertEqual(r.content, b"x" * 100)
        import urllib.request
        op = urllib.request.build_opener(urllib.request.ProxyHandler(proxies))
        self.assertEqual(op.open(self.url("/small"), timeout=30).read(), b"x" * 100)
        self.assertGreaterEqual(metric(self.proxy, 'h2tunnel_forward_pool_total{result="hit"}') - before, 9)
        self.assertGreaterEqual(metric(self.proxy, 'h2tunnel_forward_requests_total{class="2xx"}'), 11)

    # -- errors (step 7)

    def test_fwd_errors_like_tunnels(self):
        """Refused, DNS, loop, response timeout: status and Proxy-Status before any response byte."""
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
        s.close()
        cases = [("http://127.0.0.1:%d/" % dead, 502, "connection_refused", []),
                 ("http://no-such-host.invalid/", 502, "dns_error", []),
                 (self.url("/info"), 508, "proxy_loop_detected", ["-H", "Via: 1.0 other, 1.1 h2tunnel"])]
        for url, status, err, extra in cases:
            r = curl(self.px() + ["-D", "-", "-o", "/dev/null"] + extra + [url])
            head = r.stdout.decode()
            self.assertIn(" %d " % status, head.split("\r\n")[0], (url, head))
            self.assertIn("error=%s" % err, head, url)
        with Proxy(["--fwd-response-timeout", "1s"]) as p:
            r = curl(["-x", "http://127.0.0.1:%d" % p.tcp_port, "-D", "-", "-o", "/dev/null", self.url("/hang")])
            head = r.stdout.decode()
            self.assertIn(" 504 ", head.split("\r\n")[0], head)
            self.assertIn("error=http_response_timeout", head)

    def test_fwd_policy_default(self):
        """The target policy applies as for CONNECT: a loopback origin is 403 by default."""
        with Proxy(allow_loopback=False) as p:
            r = curl(["-x", "http://127.0.0.1:%d" % p.tcp_port, "-D", "-", "-o", "/dev/null", self.url("/info")])
            self.assertIn(" 403 ", r.stdout.decode().split("\r\n")[0])
            self.assertIn("destination_ip_prohibited", r.stdout.decode())
        self.assertGreaterEqual(self.origin.requests, 0)

    def test_fwd05_max_forwards(self):
        """FWD-05: OPTIONS/TRACE with Max-Forwards 0 are answered by the proxy; otherwise the
        value is decremented on the way."""
        before = self.origin.requests
        r = curl(self.px() + ["-X", "OPTIONS", "-H", "Max-Forwards: 0", "-D", "-", self.url("/info")])
        self.assertIn(" 200 ", r.stdout.decode().split("\r\n")[0])
        self.assertIn("Allow:", r.stdout.decode())
        self.assertEqual(self.origin.requests, before)
        i = self.info(curl(self.px() + ["-X", "OPTIONS", "-H", "Max-Forwards: 5", self.url("/info")]))
        self.assertEqual(dict((k.lower(), v) for k, v in i["headers"])["max-forwards"], "4")
        with H2Client(self.proxy.tls_port, tls_ca=self.proxy.ca) as cli:
            st = cli.wait_closed(cli.request([(":method", "OPTIONS"), (":scheme", "http"),
                                              (":authority", self.origin.addr), (":path", "/info"),
                                              ("max-forwards", "0")], end_stream=True))
            self.assertEqual(st.status, 200)
            st = cli.wait_closed(cli.request([(":method", "TRACE"), (":scheme", "http"),
                                              (":authority", self.origin.addr), (":path", "/trace"),
                                              ("max-forwards", "0")], end_stream=True))
            self.assertEqual(st.status, 200)
        self.assertEqual(self.origin.requests, before + 1)
        # Each answer of the proxy's own has its access-log line, as any forwarded request.
        for front, method in (("h1", "OPTIONS"), ("h2", "OPTIONS"), ("h2", "TRACE")):
            rec = self.proxy.wait_access_log(lambda x: x.get("front") == front and x.get("method") == method
                                             and x.get("answered") == "proxy", timeout=10)
            self.assertEqual(rec["proto"], "forward")
            self.assertEqual(rec["status"], 200)
            self.assertEqual(rec["target"], self.origin.addr)
            self.assertEqual(rec["detail"], "Max-Forwards: 0")

    def test_fwd_pool_bounds(self):
        """The pool keeps at most --fwd-pool-per-origin idle connections, closes them after
        --fwd-pool-idle, and past --fwd-pool-max a request is 503 connection_limit_reached."""
        import threading
        import requests
        with Proxy(["--fwd-pool-per-origin", "2", "--fwd-pool-idle", "500ms", "--fwd-pool-max", "6"]) as p:
            proxies = {"http": "http://127.0.0.1:%d" % p.tcp_port}
            errors = []

            def worker():
                try:
                    with requests.Session() as sess:
                        for _ in range(5):
                            r = sess.get(self.url("/small"), proxies=proxies, timeout=30)
                            if r.status_code != 200:
                                errors.append(r.status_code)
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))
            ts = [threading.Thread(target=worker) for _ in range(5)]
            for t in ts:
                t.start()
            for t in ts:
                t.join(60)
            self.assertEqual(errors, [])
            self.assertLessEqual(metric(p, "h2tunnel_forward_upstreams_open"), 2)
            deadline = time.time() + 15
            while metric(p, "h2tunnel_forward_upstreams_open") > 0:
                self.assertLess(time.time(), deadline, "idle upstream connections not closed")
                time.sleep(0.1)
            # Six requests hang at the origin and hold six connections: the seventh is refused.
            held = []
            for _ in range(6):
                s = dial(p.tcp_port)
                s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % self.url("/hang").encode())
                held.append(s)
            deadline = time.time() + 15
            while metric(p, "h2tunnel_forward_upstreams_open") < 6:
                self.assertLess(time.time(), deadline, "hanging requests did not reach the origin")
                time.sleep(0.1)
            r = curl(["-x", "http://127.0.0.1:%d" % p.tcp_port, "-D", "-", "-o", "/dev/null", self.url("/small")])
            self.assertIn(" 503 ", r.stdout.decode().split("\r\n")[0])
            self.assertIn("connection_limit_reached", r.stdout.decode())
            for s in held:
                s.close()

    # -- smuggling (step 6)

    def test_fwd07_client_framing_attacks(self):
        """FWD-07 from the client: CL+TE, differing Content-Lengths, bad chunk size, obs-fold are
        refused (400), the connection closed, and nothing of them reaches the origin."""
        before = self.origin.requests
        u = self.url("/info").encode()
        attacks = [b"POST " + u + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
                   b"POST " + u + b" HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
                   b"POST " + u + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked, x\r\n\r\n",
                   b"GET " + u + b" HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n folded\r\n\r\n"]
        for a in attacks:
            s = dial(self.proxy.tcp_port)
            with s:
                s.sendall(a)
                r = parse_response(recv_until_eof(s))
            self.assertEqual(r.status, 400, a)
        self.assertEqual(self.origin.requests, before)
        # A bad chunk size after the head went out: the request is cut, the client closed.
        s = dial(self.proxy.tcp_port)
        with s:
            s.sendall(b"POST " + u + b" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n")
            raw = recv_until_eof(s)
        self.assertIn(b"400", raw.split(b"\r\n")[0])

    def test_fwd07_hostile_origin(self):
        """FWD-07/08 from the origin: a bad response is 502 before the head, a cut one never looks
        complete, and extra bytes are never passed on."""
        for name in ("cl_te", "two_cl", "obs_fold", "garbage", "nothing"):
            r = curl(self.px() + ["-D", "-", "-o", "/dev/null", self.url("/raw/" + name)])
            self.assertIn(" 502 ", r.stdout.decode().split("\r\n")[0], name)
        for name in ("short", "short_chunked", "bad_chunk"):
            r = curl(self.px() + [self.url("/raw/" + name)])
            self.assertNotEqual(r.returncode, 0, name)  # 18: partial file, or 56
        s = dial(self.proxy.tcp_port)
        with s:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % self.url("/raw/long").encode())
            raw = recv_until_eof(s)
        self.assertTrue(raw.endswith(b"\r\n\r\nhello"), raw)

    # -- HTTP/2 front end

    def test_fwd11_h2_python(self):
        """FWD-11: h2 -> h1: :authority -> Host, cookie crumbs joined, DATA -> chunked body;
        content-length disagreeing with DATA is a stream error (nghttp2, RFC 9113 §8.1.1)."""
        with H2Client(self.proxy.tls_port, tls_ca=self.proxy.ca) as cli:
            hdrs = [(":method", "POST"), (":scheme", "http"), (":authority", self.origin.addr),
                    (":path", "/info"), ("cookie", "a=1"), ("cookie", "b=2")]
            sid = cli.request(hdrs)
            cli.send_all(sid, b"z" * 100000, end_stream=True)
            st = cli.wait_closed(sid, timeout=30)
            self.assertEqual(st.status, 200)
            i = json.loads(bytes(st.data))
            h = dict((k.lower(), v) for k, v in i["headers"])
            self.assertEqual(h["host"], self.origin.addr)
            self.assertEqual(h["cookie"], "a=1; b=2")
            self.assertEqual(i["len"], 100000)
            # FWD-10: request trailers (a trailing HEADERS) go to the origin after a chunked body.
            sid = cli.request([(":method", "POST"), (":scheme", "http"), (":authority", self.origin.addr),
                               (":path", "/info")])
            cli.send_all(sid, b"abc")
            cli.c.send_headers(sid, [("x-trailer", "t1")], end_stream=True)
            cli.flush()
            st = cli.wait_closed(sid, timeout=30)
            i = json.loads(bytes(st.data))
            self.assertEqual((i["len"], i["trailers"]), (3, [["x-trailer", "t1"]]))
            sid = cli.request([(":method", "POST"), (":scheme", "http"), (":authority", self.origin.addr),
                               (":path", "/info"), ("content-length", "10")], data=b"12345")
            cli.c.end_stream(sid)
            cli.flush()
            st = cli.wait_closed(sid, timeout=30)
            self.assertIsNotNone(st.reset)

    def test_fwd12_h2_scheme_https_verified(self):
        """FWD-12: :scheme https for another authority: TLS to the origin, verified against
        --upstream-ca; an origin the proxy cannot verify is 502 tls_certificate_error; the pool keys
        TLS connections apart (a second request reuses the TLS one)."""
        with HTTPSOrigin() as o:
            with Proxy(["--upstream-ca", o.ca]) as p, H2Client(p.tls_port, tls_ca=p.ca) as cli:
                for _ in range(2):
                    st = cli.wait_closed(cli.get("/", authority="localhost:%d" % o.port), timeout=30)
                    self.assertEqual(st.status, 200)
                    self.assertEqual(bytes(st.data), o.body)
                rec = p.wait_access_log(lambda x: x.get("proto") == "forward" and x.get("upstream") == "reused")
                self.assertEqual(rec["scheme"], "https")
            with Proxy() as p, H2Client(p.tls_port, tls_ca=p.ca) as cli:
                st = cli.wait_closed(cli.get("/", authority="localhost:%d" % o.port), timeout=30)
                self.assertEqual(st.status, 502)
                self.assertIn("tls_certificate_error", st.header("proxy-status") or "")

    def test_fwd08_h2_cut_response_is_reset(self):
        """FWD-08 on h2: an origin dying mid-body resets the stream with INTERNAL_ERROR."""
        with H2Client(self.proxy.tls_port, tls_ca=self.proxy.ca) as cli:
            sid = cli.request([(":method", "GET"), (":scheme", "http"), (":authority", self.origin.addr),
                               (":path", "/raw/short")], end_stream=True)
            st = cli.wait_closed(sid, timeout=30)
            self.assertEqual(st.reset, INTERNAL_ERROR)

    @needs_tool(NODE, "node (nodejs)")
    def test_fwd_node_h2_mixed(self):
        """Node http2: :scheme http requests and CONNECT tunnels interleaved on one session."""
        with EchoOrigin() as echo:
            r = subprocess.run([NODE, os.path.join(HERE, "node", "h2_fwd_mixed.js"),
                                "https://127.0.0.1:%d" % self.proxy.tls_port, self.proxy.ca,
                                self.origin.addr, echo.addr, "40", "20"],
                               capture_output=True, text=True, timeout=180)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        s = json.loads(r.stdout.strip().splitlines()[-1])
        self.assertEqual((s["gets_ok"], s["tunnels_ok"]), (40, 20), s)

    @needs_tool(CHROMIUM, "chromium")
    def test_fwd_chromium(self):
        """Headless Chromium with an https:// proxy loads an http:// page (forwarded over HTTP/2)
        whose iframe is an https:// page (a CONNECT tunnel over HTTP/2)."""
        with HTTPSOrigin() as o, tempfile.TemporaryDirectory() as prof:
            page = self.url("/page?u=https://localhost:%d/" % o.port)
            r = subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                                "--disable-background-networking", "--disable-component-update",
                                "--proxy-server=https://127.0.0.1:%d" % self.proxy.tls_port,
                                "--proxy-bypass-list=<-loopback>", "--ignore-certificate-errors",
                                "--user-data-dir=" + prof, "--virtual-time-budget=5000", "--dump-dom", page],
                               capture_output=True, text=True, timeout=120)
            self.assertIn("forwarded page", r.stdout, r.stderr[-2000:])
            fwd = self.proxy.wait_access_log(lambda x: x.get("proto") == "forward" and x.get("path") == "/page"
                                             and x.get("front") == "h2")
            self.assertEqual(fwd["status"], 200)
            tun = self.proxy.wait_access_log(lambda x: x.get("proto") == "connect"
                                             and x.get("target") == "localhost:%d" % o.port, timeout=30)
            self.assertEqual(tun["status"], 200)
            # Both over HTTP/2 to the proxy. Chromium 156 keeps its tunnels and its proxied http://
            # requests in separate socket pools, so they come on two proxy connections, not one.
            self.assertEqual((fwd["front"], tun["front"]), ("h2", "h2"))
            self.assertTrue(o.requests)

    @needs_tool(H2LOAD, "h2load (nghttp2-client)")
    def test_fwd_h2load(self):
        """h2load -c 100 -m 10 -n 5000 with :authority a loopback origin: 0 failed, 0 errored."""
        r = subprocess.run([H2LOAD, "-c", "100", "-m", "10", "-n", "5000", "-H", ":scheme: http",
                            "-H", ":authority: " + self.origin.addr,
                            "https://127.0.0.1:%d/small" % self.proxy.tls_port],
                           capture_output=True, text=True, timeout=300)
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                      r"(\d+) errored", r.stdout)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        errs = [x for x in self.proxy.access_log() if x.get("proto") == "forward" and x.get("status") != 200][-20:]
        self.assertEqual(tuple(map(int, m.groups())), (5000, 5000, 5000, 5000, 0, 0),
                         r.stdout + "\n".join(json.dumps(x) for x in errs))
        self.assertIn("5000 2xx", r.stdout)


if __name__ == "__main__":
    main()
