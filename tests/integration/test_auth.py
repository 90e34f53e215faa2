#!/usr/bin/python3
"""Authentication (issue 10 item 2, and the auth parts of item 5) with real clients and real tools.

Hashes are made at test time by the real tools: `htpasswd -B` (bcrypt), `mkpasswd -m yescrypt`
and `mkpasswd -m sha-512` (whois). Clients: curl 8.x `--proxy-user` over `-p -x http://`,
`-p -x https://` and `--proxy-http2`; Node's http2 module (three users' streams on one
connection); python3-h2 and raw sockets for malformed headers; socat + ssh for the seed's SSH
case; openssl for client certificates.

- No credentials: 407 with `Proxy-Authenticate: Basic realm="...", charset="UTF-8"` and
  Proxy-Status; the h1 connection then closes like any refused CONNECT (checklist H1C-09, RFC 9931):
  curl reconnects with credentials (--proxy-anyauth: first 407, then 200).
- Wrong password, unknown user, malformed values (bad base64, no colon, empty, 8 KiB, other
  schemes): 407, no crash, on h1 and h2; each h2 stream is judged on its own credentials.
- A password is checked off the event loop and a client that goes away meanwhile is safe (ASan
  build: no use-after-free); the next tunnel of a user is served from the cache.
- Failed logins from one address lead to 429 with Retry-After, another address is unaffected
  (127.0.0.2 as a second source address; two workers share the count).
- allowed-client-nets (403), no-auth-nets (no credentials needed), client certificates (the
  certificate's CN names the user), the access log's `user`, the auth metrics, and no password in
  any log.
"""
import base64
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import h2util  # noqa: E402
import xcutil  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
HTPASSWD = shutil.which("htpasswd")
MKPASSWD = shutil.which("mkpasswd")
CURL = shutil.which("curl")
NODE = shutil.which("node")
SOCAT = shutil.which("socat")
SSH = shutil.which("ssh")
SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if os.path.exists("/usr/sbin/sshd") else None)
OPENSSL = shutil.which("openssl")

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw", "dave": "dave-pw",
             "erin": "p\u00e4sswort"}


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def make_users(path):
    """alice: bcrypt cost 10; bob: bcrypt cost 13 (slow on purpose: a check still runs when its
    client leaves); carol: yescrypt; dave: SHA-512 crypt; erin: bcrypt of a UTF-8 password."""
    lines = []
    for user, cost in (("alice", "10"), ("bob", "13"), ("erin", "5")):
        r = subprocess.run([HTPASSWD, "-nbB", "-C", cost, user, PASSWORDS[user]], capture_output=True,
                           text=True, check=True)
        lines.append(r.stdout.strip())
    for user, method in (("carol", "yescrypt"), ("dave", "sha-512")):
        r = subprocess.run([MKPASSWD, "-m", method, PASSWORDS[user]], capture_output=True, text=True,
                           check=True)
        lines.append("%s:%s" % (user, r.stdout.strip()))
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def write_config(dirname, auth_yaml, name="h2tunnel.yaml"):
    path = os.path.join(dirname, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write("auth:\n" + "".join("  %s\n" % ln for ln in auth_yaml.strip().splitlines()))
    return path


def dial_from(port, source, timeout=10):
    """A TCP connection to the proxy from the loopback address `source` (127.0.0.2, ...)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def connect_raw(port, target, auth=None, source="127.0.0.1", extra=b""):
    """One CONNECT with an optional Proxy-Authorization value (bytes or str); returns
    (Response, eof) where eof says the proxy closed the connection after answering."""
    s = dial_from(port, source)
    with s:
        hdr = b""
        if auth is not None:
            hdr = b"Proxy-Authorization: " + (auth if isinstance(auth, bytes) else auth.encode()) + b"\r\n"
        s.sendall(H.connect_head(target, extra=hdr + extra))
        head = H.read_head(s, timeout=20)
        resp = H.parse_response(head)
        if resp.status == 200:
            s.sendall(b"ping\n")
            got = H.recv_exact(s, 5, timeout=20)
            assert got == b"ping\n", got
            s.shutdown(socket.SHUT_WR)
            H.recv_until_eof(s, timeout=20)
            return resp, True
        try:
            rest = H.recv_until_eof(s, timeout=20)
            eof = True
        except socket.timeout:
            rest, eof = b"", False
        return H.parse_response(head + rest), eof


class AuthProxy(H.Proxy):
    """With authentication on, /metrics is served on the admin listener only (?admin)."""

    def __init__(self, config, workers):
        self.admin_port = H.free_port()
        super().__init__(["--config", config, "--listen", "tcp://127.0.0.1:%d?admin" % self.admin_port],
                         workers=workers)

    def _wait_healthy(self):
        """On the admin listener: with client-cert: required, the TLS listener refuses the
        harness's own TLS probe (it has no certificate)."""
        deadline = time.time() + self.start_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("proxy exited with %d during start-up" % self.proc.returncode)
            try:
                if H.http_get(self.admin_port, "/healthz", timeout=2).status == 200 and os.path.exists(self.ca):
                    return
            except (OSError, ValueError, AssertionError, EOFError):
                pass
            time.sleep(0.05)
        raise TimeoutError("no /healthz within %ss" % self.start_timeout)

    def metrics(self):
        r = H.http_get(self.admin_port, "/metrics")
        assert r.status == 200, r
        out = {}
        for ln in r.body.decode().splitlines():
            if ln and not ln.startswith("#"):
                k, _, v = ln.rpartition(" ")
                out[k] = float(v)
        return out


class Base(unittest.TestCase):
    auth_yaml = ""
    more_yaml = ""  # other top-level sections (groups, rules), e.g. set in extra_setup
    workers = 1

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="h2t-auth-")
        make_users(os.path.join(cls.dir, "users"))
        cls.extra_setup()
        cls.config = write_config(cls.dir, cls.auth_yaml)
        if cls.more_yaml:
            with open(cls.config, "a", encoding="utf-8") as f:
                f.write(cls.more_yaml)
        cls.echo = H.EchoOrigin()
        cls.proxy = AuthProxy(cls.config, cls.workers)
        cls.proxy.start()

    @classmethod
    def extra_setup(cls):
        pass

    @classmethod
    def tearDownClass(cls):
        try:
            cls.proxy.stop()
        finally:
            cls.echo.close()
            shutil.rmtree(cls.dir, ignore_errors=True)

    @property
    def target(self):
        return "127.0.0.1:%d" % self.echo.port

    def curl(self, proxy_url, *extra, user=None, ok=True):
        cmd = [CURL, "-sS", "-v", "--max-time", "30", "-p", "-x", proxy_url]
        if user:
            cmd += ["--proxy-user", "%s:%s" % (user, PASSWORDS.get(user, "x"))]
        cmd += list(extra) + ["--cacert", self.origin.ca, "https://localhost:%d/" % self.origin.port]
        r = subprocess.run(cmd, capture_output=True, timeout=90)
        err = r.stderr.decode(errors="replace")
        if ok:
            self.assertEqual(r.returncode, 0, "curl failed (%d):\n%s" % (r.returncode, err))
            self.assertEqual(r.stdout, self.origin.body)
        return r, err

    def no_password_logged(self):
        """Credentials never appear in any log: neither the passwords nor their base64."""
        with open(self.proxy.access_log_path, encoding="utf-8", errors="replace") as f:
            logs = f.read() + self.proxy.stderr()
        for user, pw in PASSWORDS.items():
            self.assertNotIn(pw, logs)
            self.assertNotIn(basic(user, pw)[6:], logs)


AUTH_MAIN = """
htpasswd: users
realm: itest realm
max-failures: unlimited
cache-ttl: 5m
"""


@H.needs_tool(HTPASSWD and MKPASSWD and CURL and NODE, "htpasswd (apache2-utils), mkpasswd (whois), curl, node")
class BasicAuth(Base):
    auth_yaml = AUTH_MAIN

    @classmethod
    def extra_setup(cls):
        cls.origin = H.HTTPSOrigin()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.origin.close()

    def test_challenge_without_credentials(self):
        """407 with the Basic challenge (realm, charset="UTF-8", RFC 7617 §2.1) and Proxy-Status;
        the connection closes after it (H1C-09)."""
        resp, eof = connect_raw(self.proxy.tcp_port, self.target)
        self.assertEqual(resp.status, 407, resp)
        self.assertEqual(resp.header("proxy-authenticate"), 'Basic realm="itest realm", charset="UTF-8"')
        self.assertIn("error=http_request_denied", resp.header("proxy-status"))
        self.assertIn('details="proxy authentication required"', resp.header("proxy-status"))
        self.assertTrue(eof, "the connection stays open after a refused CONNECT (H1C-09)")
        rec = self.proxy.wait_access_log(lambda r: r.get("status") == 407 and r.get("detail") == "proxy authentication required")
        self.assertNotIn("user", rec)

    def test_curl_h1_cleartext(self):
        """curl --proxy-user over -p -x http:// (bcrypt, htpasswd -B): 200, the user in the log."""
        self.curl("http://127.0.0.1:%d" % self.proxy.tcp_port, user="alice")
        self.proxy.wait_access_log(lambda r: r.get("user") == "alice" and r.get("status") == 200
                                   and r.get("target") == "localhost:%d" % self.origin.port)
        self.no_password_logged()

    def test_curl_h1_anyauth_407_then_200(self):
        """curl --proxy-anyauth asks without credentials first: 407, then it reconnects (the 407
        closed the connection, H1C-09) and sends Basic: 200."""
        r, err = self.curl("http://127.0.0.1:%d" % self.proxy.tcp_port, "--proxy-anyauth", user="dave")
        i407 = err.find("407")
        i200 = err.find("HTTP/1.1 200 Connection Established")
        self.assertTrue(0 <= i407 < i200, err)
        self.assertIn("Proxy-Authorization: Basic", err[i407:])

    def test_curl_h1_over_tls(self):
        """curl -p -x https:// (TLS to the proxy, HTTP/1.1), SHA-512 crypt (mkpasswd)."""
        self.curl("https://127.0.0.1:%d" % self.proxy.tls_port, "--proxy-cacert", self.proxy.ca, user="dave")
        self.proxy.wait_access_log(lambda r: r.get("user") == "dave" and r.get("front") == "h1")

    def test_curl_h2(self):
        """curl --proxy-http2 (pre-emptive Basic on an h2 stream), yescrypt (mkpasswd)."""
        r, err = self.curl("https://127.0.0.1:%d" % self.proxy.tls_port, "--proxy-http2",
                           "--proxy-cacert", self.proxy.ca, user="carol")
        self.assertIn("CONNECT tunnel: HTTP/2 negotiated", err)
        self.proxy.wait_access_log(lambda r: r.get("user") == "carol" and r.get("front") == "h2")

    def test_utf8_password(self):
        """A UTF-8 password (what charset="UTF-8" announces) is checked byte for byte."""
        self.curl("http://127.0.0.1:%d" % self.proxy.tcp_port, user="erin")

    def test_wrong_password_and_unknown_user(self):
        """Wrong password, unknown user: 407 on h1 and h2, with the challenge again."""
        for proxy_url, extra in (("http://127.0.0.1:%d" % self.proxy.tcp_port, []),
                                 ("https://127.0.0.1:%d" % self.proxy.tls_port,
                                  ["--proxy-http2", "--proxy-cacert", self.proxy.ca])):
            for creds in ("alice:wrong", "nobody:alice-pw", "alice:"):
                cmd = [CURL, "-sS", "-v", "--max-time", "30", "-p", "-x", proxy_url, "--proxy-user", creds,
                       *extra, "--cacert", self.origin.ca, "https://localhost:%d/" % self.origin.port]
                r = subprocess.run(cmd, capture_output=True, timeout=90)
                err = r.stderr.decode(errors="replace")
                self.assertNotEqual(r.returncode, 0, err)
                if not extra:
                    self.assertIn("HTTP/1.1 407", err)
                    self.assertIn('Proxy-Authenticate: Basic realm="itest realm", charset="UTF-8"'.lower(), err.lower())
                else:
                    # curl's h2 proxy path does not print the answer's head; it gives up on it.
                    self.assertIn("Basic authentication problem", err)
        for front in ("h1", "h2"):
            self.proxy.wait_access_log(lambda r, front=front: r.get("front") == front and r.get("status") == 407
                                       and r.get("detail") == "invalid credentials")
        self.assertTrue(self.proxy.alive())

    MALFORMED = [
        (b"Basic !!!!", "not a base64"),
        (b"Basic YWxpY2U=", "no ':'"),                       # "alice"
        (b"", "empty"),
        (b"Basic " + b"QUFB" * 2048, "too long"),            # 8 KiB of base64
        (b"Bearer abc.def.ghi", "only the Basic scheme"),
        (b"Digest username=\"alice\", realm=\"x\"", "only the Basic scheme"),
        (b"Basic", "Basic without credentials"),
        (b"Basic YWxpY2U6YWxpY2UtcHc", "base64 length"),    # unpadded
        (b"Basic OmFsaWNlLXB3", "empty user"),               # ":alice-pw"
        (b"Basic YWxpY2UAOmFsaWNlLXB3", "base64 length"),
        (b"Basic YWxpY2U6YWxpY2UtcHcA", "base64 length"),
        (b"Basic YWxpY2U6YQBi", "not UTF-8"),               # a NUL in the password
    ]

    def test_malformed_h1(self):
        """Malformed Proxy-Authorization values over HTTP/1.1: 407 each, connection closed, the
        proxy alive; the reason is in the log's detail (never the value)."""
        for value, why in self.MALFORMED:
            resp, eof = connect_raw(self.proxy.tcp_port, self.target, auth=value)
            self.assertEqual(resp.status, 407, (value[:40], resp))
            self.assertTrue(resp.header("proxy-authenticate", "").startswith("Basic realm="), resp)
            self.assertTrue(eof)
            self.proxy.wait_access_log(lambda r, why=why: r.get("status") == 407 and why in r.get("detail", ""))
        self.assertTrue(self.proxy.alive())
        # Still serving, and a valid value in lower case works.
        resp, _ = connect_raw(self.proxy.tcp_port, self.target, auth=basic("alice", "alice-pw").replace("Basic", "basic"))
        self.assertEqual(resp.status, 200)

    def test_two_identities_refused(self):
        """Two Proxy-Authorization fields in one request: h1 400 (which one counts would depend
        on the hop), h2 a malformed stream (reset); neither is admitted."""
        resp, eof = connect_raw(self.proxy.tcp_port, self.target, auth=basic("nobody", "x"),
                                extra=b"Proxy-Authorization: " + basic("alice", "alice-pw").encode() + b"\r\n")
        self.assertEqual(resp.status, 400, resp)
        self.assertIn("more than one Proxy-Authorization", resp.header("proxy-status"))
        c = h2util.H2Client(self.proxy.tls_port, tls_ca=self.proxy.ca)
        try:
            sid = c.connect(self.target, extra=[("proxy-authorization", basic("nobody", "x")),
                                                ("proxy-authorization", basic("alice", "alice-pw"))])
            st = c.wait_response(sid, timeout=20)
            self.assertIsNone(st.status, st)
            self.assertIsNotNone(st.reset, st)
        finally:
            c.close()

    def test_malformed_h2(self):
        """The same values on h2 streams of one connection: 407 each, the connection keeps
        working, a valid stream after them gets 200."""
        c = h2util.H2Client(self.proxy.tls_port, tls_ca=self.proxy.ca)
        try:
            sids = []
            for value, _why in self.MALFORMED:
                if value == b"Basic " + b"QUFB" * 2048:
                    continue  # beyond the h2 header list default is its own test (below)
                sids.append(c.connect(self.target, extra=[("proxy-authorization", value.decode())]))
            for sid in sids:
                st = c.wait_response(sid, timeout=20)
                self.assertEqual(st.status, 407, st)
                self.assertEqual(st.header("proxy-authenticate"), 'Basic realm="itest realm", charset="UTF-8"')
            big = c.connect(self.target, extra=[("proxy-authorization", "Basic " + "QUFB" * 2048)])
            st = c.wait_response(big, timeout=20)
            self.assertEqual(st.status, 407, st)
            sid = c.connect(self.target, extra=[("proxy-authorization", basic("alice", "alice-pw"))])
            st = c.wait_response(sid, timeout=20)
            self.assertEqual(st.status, 200, st)
            self.assertIsNone(c.goaway)
        finally:
            c.close()

    def test_node_three_users_one_connection(self):
        """Node http2: streams of alice (bcrypt), carol (yescrypt) and dave (wrong password), and
        one without credentials, all at once on one connection: 200, 200, 407, 407 -- each stream
        judged on its own credentials; the tunnels echo."""
        conf = {"url": "https://127.0.0.1:%d" % self.proxy.tls_port, "ca": self.proxy.ca,
                "target": self.target, "timeoutMs": 60000,
                "streams": [{"auth": basic("alice", "alice-pw")}, {"auth": basic("carol", "carol-pw")},
                            {"auth": basic("dave", "not-dave")}, {"auth": None}]}
        r = subprocess.run([NODE, os.path.join(HERE, "node", "h2_auth_streams.js"), json.dumps(conf)],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout.strip().splitlines()[-1])
        self.assertEqual(out["errors"], [], out)
        self.assertEqual(out["sessions"], 1)
        self.assertEqual([s["status"] for s in out["streams"]], [200, 200, 407, 407], out)
        self.assertEqual([s["echoed"] for s in out["streams"]], [True, True, False, False], out)
        for s in out["streams"][2:]:
            self.assertEqual(s["proxyAuthenticate"], 'Basic realm="itest realm", charset="UTF-8"')
        self.proxy.wait_access_log(lambda r: r.get("user") == "alice" and r.get("front") == "h2" and r.get("status") == 200)
        self.proxy.wait_access_log(lambda r: r.get("user") == "carol" and r.get("front") == "h2" and r.get("status") == 200)

    def test_extended_connect(self):
        """The same admission for connect-udp (h1 Upgrade and h2 extended CONNECT, UDP-01/02) and
        WebSocket over h2 (XC-01): 407 without credentials, the tunnel with them; the user is
        logged for each protocol."""
        with xcutil.UDPEcho() as e:
            s, r = xcutil.h1_connect_udp(self.proxy.tcp_port, "127.0.0.1", e.port)
            s.close()
            self.assertEqual(r.status, 407, r)
            self.assertTrue(r.header("proxy-authenticate", "").startswith("Basic realm="))
            s, r = xcutil.h1_connect_udp(self.proxy.tcp_port, "127.0.0.1", e.port,
                                         extra=b"Proxy-Authorization: " + basic("dave", "dave-pw").encode() + b"\r\n")
            with s:
                self.assertEqual(r.status, 101, r)
            c = h2util.H2Client(self.proxy.tls_port, tls_ca=self.proxy.ca, **xcutil.WINDOWS)
            try:
                auth = "localhost:%d" % self.proxy.tls_port
                st = c.wait_response(c.connect_udp(auth, xcutil.udp_path("127.0.0.1", e.port)), timeout=20)
                self.assertEqual(st.status, 407, st.headers)
                sid = c.connect_udp(auth, xcutil.udp_path("127.0.0.1", e.port),
                                    extra=[("proxy-authorization", basic("carol", "carol-pw"))])
                st = c.wait_response(sid, timeout=20)
                self.assertEqual(st.status, 200, st.headers)
                c.reset(sid)
                ws = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
                      (":authority", self.target), (":path", "/chat"), ("sec-websocket-version", "13")]
                st = c.wait_response(c.request(ws), timeout=20)
                self.assertEqual(st.status, 407, st.headers)
                # With credentials the request goes on to the backend (an echo, not a WebSocket
                # server: its answer is not a 101, so 502 -- past authentication).
                st = c.wait_response(c.request(ws + [("proxy-authorization", basic("alice", "alice-pw"))]), timeout=30)
                self.assertNotIn(st.status, (403, 407, 429), st.headers)
            finally:
                c.close()
        self.proxy.wait_access_log(lambda r: r.get("proto") == "connect-udp" and r.get("user") == "dave")
        self.proxy.wait_access_log(lambda r: r.get("proto") == "connect-udp" and r.get("user") == "carol")
        self.proxy.wait_access_log(lambda r: r.get("proto") == "websocket" and r.get("user") == "alice")

    def test_cache_second_tunnel(self):
        """The second tunnel with the same credentials is admitted from the cache (no hash)."""
        before = self.proxy.metrics()
        for _ in range(3):
            resp, _ = connect_raw(self.proxy.tcp_port, self.target, auth=basic("alice", "alice-pw"))
            self.assertEqual(resp.status, 200)
        after = self.proxy.metrics()
        cached = after['h2tunnel_auth_successes_total{method="cached"}'] - before.get('h2tunnel_auth_successes_total{method="cached"}', 0)
        self.assertGreaterEqual(cached, 2)

    def test_client_gone_while_hashing(self):
        """bob's bcrypt (cost 13) takes long: h2 clients that leave while it runs (RST_STREAM,
        then a whole connection closed under a pending stream) cancel their requests; the checks
        finish on the thread pool and call no one back (the ASan build and the proxy's exit check
        catch a use of a freed request). Nothing is answered or logged for them; the proxy serves
        on, and bob's next request succeeds."""
        c = h2util.H2Client(self.proxy.tls_port, tls_ca=self.proxy.ca)
        sid = c.connect(self.target, extra=[("proxy-authorization", basic("bob", "bob-pw"))])
        c.wait(lambda: self.proxy.metrics().get("h2tunnel_auth_checks_pending", 0) >= 1, timeout=20,
               what="a pending check")
        c.reset(sid)
        c.connect(self.target, extra=[("proxy-authorization", basic("bob", "bob-pw"))])
        c.wait(lambda: self.proxy.metrics().get("h2tunnel_auth_checks_pending", 0) >= 1, timeout=20,
               what="a pending check")
        c.close()
        # The checks run to their end on the pool, then nothing is left pending.
        deadline = time.time() + 120
        while self.proxy.metrics()["h2tunnel_auth_checks_pending"] > 0:
            self.assertLess(time.time(), deadline, "checks still pending")
            time.sleep(0.1)
        self.assertFalse(any(r.get("user") == "bob" for r in self.proxy.access_log()))
        resp, _ = connect_raw(self.proxy.tcp_port, self.target, auth=basic("bob", "bob-pw"))
        self.assertEqual(resp.status, 200)
        self.proxy.wait_access_log(lambda r: r.get("user") == "bob" and r.get("status") == 200, timeout=60)
        bob_lines = [r for r in self.proxy.access_log() if r.get("user") == "bob"]
        self.assertEqual(len(bob_lines), 1, bob_lines)

    def test_metrics_on_admin_listener_only(self):
        """/metrics needs the admin listener once users authenticate (403 elsewhere, h1 and h2);
        /healthz stays open for load balancers; the admin listener opens no tunnel."""
        r = H.http_get(self.proxy.tcp_port, "/metrics")
        self.assertEqual(r.status, 403, r)
        self.assertEqual(H.http_get(self.proxy.tcp_port, "/healthz").status, 200)
        self.assertEqual(H.http_get(self.proxy.admin_port, "/healthz").status, 200)
        c = h2util.H2Client(self.proxy.tls_port, tls_ca=self.proxy.ca)
        try:
            self.assertEqual(c.wait_response(c.get("/metrics")).status, 403)
            self.assertEqual(c.wait_response(c.get("/healthz")).status, 200)
        finally:
            c.close()
        self.assertIn("h2tunnel_auth_failures_total", H.http_get(self.proxy.admin_port, "/metrics").body.decode())
        resp, _ = connect_raw(self.proxy.admin_port, self.target, auth=basic("alice", "alice-pw"))
        self.assertEqual(resp.status, 403, resp)
        self.assertIn("admin listener", resp.header("proxy-status"))

    def test_loop_not_blocked_by_hashes(self):
        """While the pool hashes (six of bob's bcrypt-13 checks queued, with wrong passwords so
        that no cache can answer them: seconds of work), the
        worker's loop goes on: a PING on another connection is answered, and a tunnel whose
        credentials are cached opens, each long before the checks end."""
        resp, _ = connect_raw(self.proxy.tcp_port, self.target, auth=basic("alice", "alice-pw"))
        self.assertEqual(resp.status, 200)  # alice is in the cache now
        busy = h2util.H2Client(self.proxy.tls_port, tls_ca=self.proxy.ca)
        other = h2util.H2Client(self.proxy.tls_port, tls_ca=self.proxy.ca)
        try:
            sids = [busy.connect(self.target, extra=[("proxy-authorization", basic("bob", "not-bob-%d" % i))])
                    for i in range(6)]
            busy.wait(lambda: self.proxy.metrics()["h2tunnel_auth_checks_pending"] >= 6, timeout=30,
                      what="six pending checks")
            t0 = time.monotonic()
            other.ping_ok(timeout=30)
            ping_s = time.monotonic() - t0
            t0 = time.monotonic()
            st = other.wait_response(other.connect(self.target, extra=[("proxy-authorization", basic("alice", "alice-pw"))]),
                                     timeout=30)
            open_s = time.monotonic() - t0
            self.assertEqual(st.status, 200, st)
            still = self.proxy.metrics()["h2tunnel_auth_checks_pending"]
            # Six bcrypt-13 checks on a pool of four take several seconds; the loop answered
            # while they were still running.
            self.assertGreater(still, 0, "the checks ended before the loop answered: inconclusive")
            sys.stderr.write("\n  PING %.1f ms, cached tunnel %.1f ms, with %d checks still pending\n"
                             % (ping_s * 1e3, open_s * 1e3, still))
            for sid in sids:
                st = busy.wait_response(sid, timeout=120)
                self.assertEqual(st.status, 407, st)
        finally:
            busy.close()
            other.close()

    def test_metrics_and_no_secrets(self):
        """/metrics counts successes and failures by reason; no password in any log."""
        connect_raw(self.proxy.tcp_port, self.target)
        connect_raw(self.proxy.tcp_port, self.target, auth=b"Bearer x")
        connect_raw(self.proxy.tcp_port, self.target, auth=basic("alice", "nope"))
        m = self.proxy.metrics()
        for reason in ("missing", "scheme", "invalid"):
            self.assertGreaterEqual(m['h2tunnel_auth_failures_total{reason="%s"}' % reason], 1, reason)
        self.assertIn('h2tunnel_auth_successes_total{method="password"}', m)
        self.assertEqual(m["h2tunnel_auth_bans_total"], 0)
        self.no_password_logged()


@H.needs_tool(HTPASSWD and MKPASSWD, "htpasswd (apache2-utils), mkpasswd (whois)")
class BruteForce(Base):
    """Two workers: the failures of one address are counted across them."""
    workers = 2
    auth_yaml = """
htpasswd: users
max-failures: 5
failure-window: 1m
ban-time: 30s
"""

    def test_ban_after_failures_other_address_unaffected(self):
        for i in range(5):
            resp, _ = connect_raw(self.proxy.tcp_port, self.target, auth=basic("alice", "guess-%d" % i))
            self.assertEqual(resp.status, 407, resp)
        # Banned now: even the right password gets 429 with Retry-After.
        resp, eof = connect_raw(self.proxy.tcp_port, self.target, auth=basic("alice", "alice-pw"))
        self.assertEqual(resp.status, 429, resp)
        self.assertTrue(eof)
        ra = int(resp.header("retry-after"))
        self.assertTrue(0 < ra <= 30, ra)
        self.assertIn("error=http_request_denied", resp.header("proxy-status"))
        self.assertIn("too many failed logins", resp.header("proxy-status"))
        # h2 from the same address: 429 as well.
        c = h2util.H2Client(self.proxy.tls_port, tls_ca=self.proxy.ca)
        try:
            st = c.wait_response(c.connect(self.target, extra=[("proxy-authorization", basic("alice", "alice-pw"))]), timeout=20)
            self.assertEqual(st.status, 429, st)
            self.assertIsNotNone(st.header("retry-after"))
        finally:
            c.close()
        # Another address is not affected.
        resp, _ = connect_raw(self.proxy.tcp_port, self.target, auth=basic("alice", "alice-pw"), source="127.0.0.2")
        self.assertEqual(resp.status, 200, resp)
        self.assertRegex(self.proxy.stderr(), r"auth: 127\.0\.0\.1 banned for 30 s after 5 failed logins")
        m = self.proxy.metrics()
        self.assertEqual(m["h2tunnel_auth_bans_total"], 1)
        self.assertGreaterEqual(m['h2tunnel_auth_failures_total{reason="banned"}'], 2)
        self.no_password_logged()


STORM_USERS = 200


@H.needs_tool(HTPASSWD and MKPASSWD, "htpasswd (apache2-utils), mkpasswd (whois)")
class LoginStorm(Base):
    """200 users log in at once over HTTP/2 on two workers (the benchmark's storm, asserted for
    correctness only, never for time): every right password gets 200, every wrong one 407; each
    worker hashes one password at a time and queues the rest (--auth-hash-concurrency 1); ten
    identical requests of one user while its check is in flight share one hash (single flight,
    h2tunnel_auth_checks_shared_total); the hash counter says no credential was hashed twice."""
    workers = 2
    auth_yaml = """
htpasswd: storm-users
max-failures: unlimited
"""

    @classmethod
    def extra_setup(cls):
        # Storm users at bcrypt cost 4 (the test is about correctness; the benchmark uses 10), and
        # "slow" at cost 12 so that its check is surely still in flight when its copies arrive.
        lines = []
        for i in range(STORM_USERS):
            r = subprocess.run([HTPASSWD, "-nbB", "-C", "4", "u%03d" % i, "pw-%03d" % i], capture_output=True,
                               text=True, check=True)
            lines.append(r.stdout.strip())
        r = subprocess.run([HTPASSWD, "-nbB", "-C", "12", "slow", "slow-pw"], capture_output=True, text=True,
                           check=True)
        lines.append(r.stdout.strip())
        with open(os.path.join(cls.dir, "storm-users"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")

    def test_single_flight(self):
        """Ten streams with the same credentials on one connection: one hash, nine shared."""
        before = self.proxy.metrics()
        c = h2util.H2Client(self.proxy.tls_port, tls_ca=self.proxy.ca)
        try:
            auth = [("proxy-authorization", basic("slow", "slow-pw"))]
            sids = [c.connect(self.target, extra=auth) for _ in range(10)]
            for sid in sids:
                self.assertEqual(c.wait_response(sid, timeout=120).status, 200)
        finally:
            c.close()
        after = self.proxy.metrics()
        shared = after["h2tunnel_auth_checks_shared_total"] - before.get("h2tunnel_auth_checks_shared_total", 0)
        hashes = after["h2tunnel_auth_hashes_total"] - before.get("h2tunnel_auth_hashes_total", 0)
        self.assertEqual(hashes, 1)
        self.assertEqual(shared, 9)

    def test_storm(self):
        before = self.proxy.metrics()
        clients = [h2util.H2Client(self.proxy.tls_port, tls_ca=self.proxy.ca, timeout=60) for _ in range(4)]
        try:
            want = {}
            for i in range(STORM_USERS):
                c = clients[i % len(clients)]
                sid = c.connect(self.target, extra=[("proxy-authorization", basic("u%03d" % i, "pw-%03d" % i))])
                want[(c, sid)] = 200
                if i % 10 == 0:  # every tenth user also tries a wrong password
                    sid = c.connect(self.target, extra=[("proxy-authorization", basic("u%03d" % i, "wrong-%d" % i))])
                    want[(c, sid)] = 407
            got = {}
            for (c, sid), status in want.items():
                st = c.wait_response(sid, timeout=300)
                got[(c, sid)] = st.status
                if st.status == 407:
                    self.assertIn("Basic", st.header("proxy-authenticate"))
            wrong = [(k, want[k], got[k]) for k in want if want[k] != got[k]]
            self.assertEqual(wrong, [])
        finally:
            for c in clients:
                c.close()
        after = self.proxy.metrics()
        nwrong = len(range(0, STORM_USERS, 10))

        def delta(name):
            return after.get(name, 0) - before.get(name, 0)

        self.assertEqual(delta('h2tunnel_auth_successes_total{method="password"}'), STORM_USERS)
        self.assertEqual(delta('h2tunnel_auth_failures_total{reason="invalid"}'), nwrong)
        self.assertEqual(delta("h2tunnel_auth_hashes_total"), STORM_USERS + nwrong)  # each value once
        self.assertEqual(after["h2tunnel_auth_checks_pending"], 0)
        self.no_password_logged()


@H.needs_tool(HTPASSWD and MKPASSWD, "htpasswd (apache2-utils), mkpasswd (whois)")
class ClientNets(Base):
    auth_yaml = """
htpasswd: users
allowed-client-nets: ["127.0.0.1/32", "127.0.0.3/32"]
no-auth-nets: ["127.0.0.3/32"]
"""

    def test_allowed_and_no_auth_nets(self):
        resp, eof = connect_raw(self.proxy.tcp_port, self.target, auth=basic("alice", "alice-pw"), source="127.0.0.2")
        self.assertEqual(resp.status, 403, resp)
        self.assertIn('details="client address not allowed"', resp.header("proxy-status"))
        self.assertTrue(eof)
        resp, _ = connect_raw(self.proxy.tcp_port, self.target, source="127.0.0.3")
        self.assertEqual(resp.status, 200, resp)
        resp, _ = connect_raw(self.proxy.tcp_port, self.target, source="127.0.0.1")
        self.assertEqual(resp.status, 407, resp)
        # Credentials sent from a no-auth network are still checked, and name the user.
        resp, _ = connect_raw(self.proxy.tcp_port, self.target, auth=basic("carol", "carol-pw"), source="127.0.0.3")
        self.assertEqual(resp.status, 200, resp)
        self.proxy.wait_access_log(lambda r: r.get("user") == "carol" and r["client"].startswith("127.0.0.3:"))
        m = self.proxy.metrics()
        self.assertEqual(m['h2tunnel_auth_failures_total{reason="client_net"}'], 1)
        self.assertEqual(m['h2tunnel_auth_successes_total{method="no_auth_net"}'], 1)


def openssl(*args, cwd):
    subprocess.run([OPENSSL, *args], cwd=cwd, check=True, capture_output=True)


def make_client_certs(d):
    """A client CA, a certificate for CN=carol under it, and one from an unrelated CA."""
    for ca in ("ca", "rogue"):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", ca + "-key.pem", "-out", ca + ".pem", "-days", "2", "-subj", "/CN=%s test CA" % ca,
                cwd=d)
    for name, ca in (("carol", "ca"), ("mallory", "rogue")):
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                name + "-key.pem", "-out", name + ".csr", "-subj", "/CN=" + name, cwd=d)
        with open(os.path.join(d, "ext.cnf"), "w") as f:
            f.write("extendedKeyUsage=clientAuth\nsubjectAltName=email:%s@example.com\n" % name)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + ".pem", "-CAkey", ca + "-key.pem",
                "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)


@H.needs_tool(HTPASSWD and MKPASSWD and CURL and OPENSSL, "htpasswd, mkpasswd, curl, openssl")
class ClientCerts(Base):
    auth_yaml = """
htpasswd: users
client-ca: ca.pem
client-cert: optional
"""

    @classmethod
    def extra_setup(cls):
        make_client_certs(cls.dir)
        cls.origin = H.HTTPSOrigin()

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.origin.close()

    def cert_args(self, name):
        return ["--proxy-cert", os.path.join(self.dir, name + ".pem"),
                "--proxy-key", os.path.join(self.dir, name + "-key.pem"), "--proxy-cacert", self.proxy.ca]

    def test_certificate_names_the_user(self):
        """A verified client certificate (h1 over TLS and h2) is the credential: its CN names the user."""
        url = "https://127.0.0.1:%d" % self.proxy.tls_port
        self.curl(url, *self.cert_args("carol"))
        self.curl(url, "--proxy-http2", *self.cert_args("carol"))
        self.proxy.wait_access_log(lambda r: r.get("user") == "carol" and r.get("front") == "h1")
        self.proxy.wait_access_log(lambda r: r.get("user") == "carol" and r.get("front") == "h2")
        self.assertGreaterEqual(self.proxy.metrics()['h2tunnel_auth_successes_total{method="certificate"}'], 2)

    def test_optional_falls_back_to_basic(self):
        url = "https://127.0.0.1:%d" % self.proxy.tls_port
        r, err = self.curl(url, "--proxy-cacert", self.proxy.ca, ok=False)
        self.assertIn("407", err)
        self.curl(url, "--proxy-cacert", self.proxy.ca, user="alice")

    def test_untrusted_certificate_refused(self):
        """A certificate from another CA fails the TLS handshake."""
        r, err = self.curl("https://127.0.0.1:%d" % self.proxy.tls_port, *self.cert_args("mallory"), ok=False)
        self.assertNotEqual(r.returncode, 0)
        self.assertFalse(any(rec.get("user") == "mallory" for rec in self.proxy.access_log()))


@H.needs_tool(HTPASSWD and MKPASSWD and CURL and OPENSSL, "htpasswd, mkpasswd, curl, openssl")
class ClientCertsRequired(ClientCerts):
    """client-cert: required -- a TLS client without a certificate fails the handshake; the
    cleartext listener still takes passwords."""
    auth_yaml = """
htpasswd: users
client-ca: ca.pem
client-cert: required
"""

    def test_optional_falls_back_to_basic(self):
        """(Overrides the optional case.) Required: no certificate, no handshake, whatever the
        password; the cleartext listener still takes Basic."""
        r, err = self.curl("https://127.0.0.1:%d" % self.proxy.tls_port, "--proxy-cacert", self.proxy.ca,
                           user="alice", ok=False)
        self.assertNotEqual(r.returncode, 0, err)
        self.assertNotIn("407", err)  # refused in the handshake, before any request
        self.curl("http://127.0.0.1:%d" % self.proxy.tcp_port, user="alice")


@H.needs_tool(HTPASSWD and MKPASSWD and SOCAT and SSH and SSHD, "htpasswd, mkpasswd, socat, ssh, sshd (openssh-server)")
class SSHThroughProxy(Base):
    """The seed's SSH case: ssh to a loopback sshd (its own host key, config and port) through
    the proxy with `ProxyCommand socat - PROXY:...,proxyauth=...`: allowed for the group ops
    on sshd's port (a rule), denied (403, by rule) for a user outside it, and refused (407) with a
    wrong password."""
    auth_yaml = """
htpasswd: users
"""

    @classmethod
    def extra_setup(cls):
        d = cls.dir
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(d, "host_key")], check=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", os.path.join(d, "client_key")], check=True)
        shutil.copy(os.path.join(d, "client_key.pub"), os.path.join(d, "authorized_keys"))
        os.chmod(os.path.join(d, "authorized_keys"), 0o600)
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", exist_ok=True)  # sshd's privilege separation directory
        cls.ssh_port = H.free_port()
        cls.more_yaml = ("groups: { ops: [alice] }\n"
                         "rules:\n"
                         "  - { name: ops-ssh, allow: { groups: [ops], ports: [%d], protocols: [connect] } }\n"
                         "  - { name: no-ssh, deny: { ports: [%d] } }\n" % (cls.ssh_port, cls.ssh_port))
        with open(os.path.join(d, "sshd_config"), "w") as f:
            f.write("Port %d\nListenAddress 127.0.0.1\nHostKey %s\nAuthorizedKeysFile %s\n"
                    "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
                    "StrictModes no\nPidFile %s\nPermitRootLogin prohibit-password\n"
                    % (cls.ssh_port, os.path.join(d, "host_key"), os.path.join(d, "authorized_keys"),
                       os.path.join(d, "sshd.pid")))
        cls.sshd = subprocess.Popen([SSHD, "-D", "-e", "-f", os.path.join(d, "sshd_config")],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", cls.ssh_port), timeout=1).close()
                break
            except OSError:
                if cls.sshd.poll() is not None:
                    raise RuntimeError("sshd exited: %s" % cls.sshd.stderr.read().decode())
                time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            cls.sshd.terminate()
            cls.sshd.wait(timeout=10)

    def ssh(self, proxyauth):
        pc = "socat - PROXY:127.0.0.1:%%h:%%p,proxyport=%d,proxyauth=%s" % (self.proxy.tcp_port, proxyauth)
        cmd = [SSH, "-F", "/dev/null", "-i", os.path.join(self.dir, "client_key"), "-p", str(self.ssh_port),
               "-o", "ProxyCommand=" + pc, "-o", "StrictHostKeyChecking=no",
               "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=30",
               "%s@127.0.0.1" % getpass.getuser(),
               "echo through-the-proxy"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120)

    def test_ssh_allowed_for_user(self):
        r = self.ssh("alice:alice-pw")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout.strip(), "through-the-proxy")
        rec = self.proxy.wait_access_log(lambda rec: rec.get("user") == "alice"
                                         and rec.get("target") == "127.0.0.1:%d" % self.ssh_port, timeout=20)
        self.assertEqual(rec["rule"], "ops-ssh")

    def test_ssh_denied_by_rule_for_another_user(self):
        """dave authenticates but is not in ops: the rule no-ssh refuses him (403), by name."""
        r = self.ssh("dave:dave-pw")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Forbidden", r.stderr)  # socat: "PROXY:...: HTTP/1.1 403 Forbidden"
        rec = self.proxy.wait_access_log(lambda x: x.get("user") == "dave" and x.get("status") == 403, timeout=20)
        self.assertEqual(rec["rule"], "no-ssh")
        self.assertEqual(rec["detail"], "denied by rule no-ssh")

    def test_ssh_wrong_password_refused(self):
        r = self.ssh("alice:wrong")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("Proxy Authentication Required", r.stderr)  # socat's words for the 407


if __name__ == "__main__":
    H.main()
