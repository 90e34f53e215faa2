#!/usr/bin/python3
"""README "Using it from...": each recipe run as written, against the real binary (issue 13 item
8). The clients trust the proxy's CA each in its own way: curl `--proxy-cacert` (CURL-07), git
`http.proxySSLCAInfo`, python3-requests one bundle holding both CAs, ssh through socat on the
cleartext listener, Chromium `--ignore-certificate-errors-spki-list` with `--proxy-bypass-list
"<-loopback>"` (CHR-06). Origins are HTTPS servers on loopback with their own test CA
(certs/mkcerts.sh), sshd on loopback, and `git http-backend` behind a small HTTPS CGI server.

Refusals that explain themselves (H1C-12, H1C-14): socat, which shows only the status line,
prints "403 Forbidden (port 22 not allowed)". The start-up "Try it" lines work as printed, with the
dev CA and with --cert.
"""
import base64
import hashlib
import os
import re
import shutil
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import http.server

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402

NEED_CURL = H.needs_tool(shutil.which("curl"), "curl")
NEED_GIT = H.needs_tool(shutil.which("git"), "git")
NEED_SOCAT = H.needs_tool(shutil.which("socat"), "socat")
NEED_SSH = H.needs_tool(shutil.which("ssh") and os.path.exists("/usr/sbin/sshd"), "openssh-server")
NEED_CHROMIUM = H.needs_tool(shutil.which("chromium"), "chromium")
try:
    import requests  # noqa: F401
    HAVE_REQUESTS = True
except ImportError:
    HAVE_REQUESTS = False
NEED_REQUESTS = H.needs_tool(HAVE_REQUESTS, "python3-requests")


def clean_env(**extra):
    """The environment without proxy variables (a NO_PROXY for 127.0.0.1 would bypass us)."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy",
                                                                    "no_proxy")}
    env.update(extra)
    return env


def run(argv, timeout=120, **kw):
    return subprocess.run(argv, capture_output=True, timeout=timeout, env=kw.pop("env", clean_env()), **kw)


class TLSOrigin:
    """An HTTPS server on 127.0.0.1 with a mkcerts.sh CA: GET serves `files` ({path: bytes}); with
    `git_root`, every request is run through `git http-backend` (smart HTTP, a real clone)."""

    def __init__(self, files=None, git_root=None):
        self.dir = tempfile.mkdtemp(prefix="h2t-recipe-origin-")
        subprocess.run(["bash", os.path.join(H.SOURCE_DIR, "certs", "mkcerts.sh"), self.dir], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.ca = os.path.join(self.dir, "ca.pem")
        self.cert = os.path.join(self.dir, "cert.pem")
        files = files or {}

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def cgi(self):
                path, _, query = self.path.partition("?")
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                env = dict(os.environ, GIT_PROJECT_ROOT=git_root, GIT_HTTP_EXPORT_ALL="1", PATH_INFO=path,
                           QUERY_STRING=query, REQUEST_METHOD=self.command, REMOTE_ADDR="127.0.0.1",
                           CONTENT_TYPE=self.headers.get("Content-Type", ""), CONTENT_LENGTH=str(len(body)))
                if self.headers.get("Git-Protocol"):
                    env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
                out = subprocess.run(["git", "http-backend"], input=body, capture_output=True, env=env,
                                     timeout=60).stdout
                head, _, payload = out.partition(b"\r\n\r\n")
                if not _:
                    head, _, payload = out.partition(b"\n\n")
                status = 200
                fields = []
                for ln in head.decode().splitlines():
                    k, _, v = ln.partition(":")
                    if k.lower() == "status":
                        status = int(v.split()[0])
                    elif k:
                        fields.append((k, v.strip()))
                self.send_response(status)
                for k, v in fields:
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):  # noqa: N802
                if git_root:
                    return self.cgi()
                body = files.get(self.path)
                self.send_response(200 if body is not None else 404)
                body = body if body is not None else b"not found\n"
                self.send_header("Content-Type", "text/html" if body.startswith(b"<") else "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):  # noqa: N802
                self.cgi()

            def log_message(self, *a):
                pass

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True
            allow_reuse_address = True

        self.httpd = Server(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(self.cert, os.path.join(self.dir, "key.pem"))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.url = "https://127.0.0.1:%d" % self.port
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        shutil.rmtree(self.dir, ignore_errors=True)


def spki_sha256(cert_pem):
    """Base64 SHA-256 of a certificate's SubjectPublicKeyInfo (Chromium's SPKI list)."""
    der = subprocess.run(["openssl", "x509", "-in", cert_pem, "-noout", "-pubkey"], capture_output=True,
                         check=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=der, capture_output=True,
                         check=True).stdout
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class Recipes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proxy = H.Proxy()
        cls.proxy.start()
        cls.body = b"recipe origin " + os.urandom(6).hex().encode() + b"\n"
        cls.origin = TLSOrigin({"/": cls.body, "/page.html": b"<html><body><p id=x>" + cls.body + b"</p></body></html>"})
        cls.tmp = tempfile.mkdtemp(prefix="h2t-recipes-")
        # One bundle with both CAs: what requests, pip and apt need (they verify the proxy and the
        # origin against the same file).
        cls.bundle = os.path.join(cls.tmp, "bundle.pem")
        with open(cls.bundle, "wb") as out:
            for f in (cls.proxy.ca, cls.origin.ca):
                with open(f, "rb") as src:
                    out.write(src.read())
        cls.https_proxy = "https://127.0.0.1:%d" % cls.proxy.tls_port
        cls.http_proxy = "http://127.0.0.1:%d" % cls.proxy.tcp_port

    @classmethod
    def tearDownClass(cls):
        cls.origin.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)
        cls.proxy.stop()

    def tunnels_to(self, port, n=1, timeout=20):
        """Waits for n access-log lines of tunnels to 127.0.0.1:port that ended with 200."""
        deadline = time.time() + timeout
        while True:
            got = [r for r in self.proxy.access_log()
                   if r.get("target") == "127.0.0.1:%d" % port and r.get("status") == 200]
            if len(got) >= n:
                return got
            if time.time() > deadline:
                raise AssertionError("fewer than %d tunnels to %d: %r" % (n, port, self.proxy.access_log()[-5:]))
            time.sleep(0.05)

    @NEED_CURL
    def test_curl(self):
        for argv in (["curl", "-sS", "--proxy-http2", "-x", self.https_proxy, "--proxy-cacert", self.proxy.ca],
                     ["curl", "-sS", "-p", "-x", self.https_proxy, "--proxy-cacert", self.proxy.ca],
                     ["curl", "-sS", "-p", "-x", self.http_proxy]):
            with self.subTest(argv=" ".join(argv)):
                r = run(argv + ["--cacert", self.origin.ca, self.origin.url + "/"])
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(r.stdout, self.body)
        # CURL_CA_BUNDLE is the origin's trust only, not the proxy's (even holding both CAs): why
        # the recipe says --proxy-cacert.
        r = run(["curl", "-sS", "-p", "-x", self.https_proxy, self.origin.url + "/"],
                env=clean_env(CURL_CA_BUNDLE=self.bundle))
        self.assertEqual(r.returncode, 60, r.stderr)

    @NEED_GIT
    def test_git_clone_through_https_proxy(self):
        root = os.path.join(self.tmp, "git")
        work = os.path.join(root, "work")
        os.makedirs(work)
        g = ["git", "-c", "init.defaultBranch=main", "-c", "user.name=t", "-c", "user.email=t@t"]
        env = clean_env(HOME=root, GIT_CONFIG_NOSYSTEM="1")
        for argv in (g + ["init", "-q", work],
                     ["sh", "-c", "echo recipe > %s/file.txt" % work],
                     g + ["-C", work, "add", "file.txt"],
                     g + ["-C", work, "commit", "-qm", "one"],
                     g + ["clone", "-q", "--bare", work, os.path.join(root, "repo.git")]):
            r = run(argv, env=env)
            self.assertEqual(r.returncode, 0, r.stderr)
        origin = TLSOrigin(git_root=root)
        try:
            # The recipe, in the user's global configuration; the origin's own test CA through
            # GIT_SSL_CAINFO (a real origin has a public certificate).
            for key, value in (("http.proxy", self.https_proxy), ("http.proxySSLCAInfo", self.proxy.ca)):
                r = run(["git", "config", "--global", key, value], env=env)
                self.assertEqual(r.returncode, 0, r.stderr)
            env = dict(env, GIT_SSL_CAINFO=origin.ca)
            dest = os.path.join(root, "clone")
            r = run(["git", "clone", "-q", origin.url + "/repo.git", dest], env=env, timeout=180)
            self.assertEqual(r.returncode, 0, r.stderr)
            with open(os.path.join(dest, "file.txt")) as f:
                self.assertEqual(f.read(), "recipe\n")
            self.tunnels_to(origin.port)
            # The cleartext listener: http.proxy=http://...
            r = run(["git", "-c", "http.proxy=" + self.http_proxy, "clone", "-q", origin.url + "/repo.git",
                     dest + "2"], env=env, timeout=180)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.tunnels_to(origin.port, 2)
        finally:
            origin.close()

    @NEED_REQUESTS
    def test_python_requests(self):
        import requests
        for proxy in (self.https_proxy, self.http_proxy):
            with self.subTest(proxy=proxy):
                r = requests.get(self.origin.url + "/", proxies={"https": proxy}, verify=self.bundle, timeout=30)
                self.assertEqual(r.status_code, 200)
                self.assertEqual(r.content, self.body)
        # The same through the environment, as pip and most tools built on requests take it.
        code = ("import requests,sys; r=requests.get(sys.argv[1], timeout=30); "
                "sys.stdout.buffer.write(r.content)")
        r = run(["/usr/bin/python3", "-c", code, self.origin.url + "/"],
                env=clean_env(HTTPS_PROXY=self.https_proxy, REQUESTS_CA_BUNDLE=self.bundle))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, self.body)

    @NEED_SSH
    @NEED_SOCAT
    def test_ssh_through_socat(self):
        d = os.path.join(self.tmp, "ssh")
        os.makedirs(d)
        os.chmod(d, 0o700)
        for kind, path in (("ed25519", "host_key"), ("ed25519", "id")):
            subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", os.path.join(d, path)], check=True)
        shutil.copy(os.path.join(d, "id.pub"), os.path.join(d, "authorized_keys"))
        port = H.free_port()
        user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        with open(os.path.join(d, "sshd_config"), "w") as f:
            f.write("Port %d\nListenAddress 127.0.0.1\nHostKey %s/host_key\nAuthorizedKeysFile %s/authorized_keys\n"
                    "PidFile %s/sshd.pid\nStrictModes no\nUsePAM no\nPasswordAuthentication no\n"
                    "PermitRootLogin prohibit-password\nAllowUsers %s\n" % (port, d, d, d, user))
        os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory
        sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", os.path.join(d, "sshd_config")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.time() + 20
            while True:
                try:
                    H.dial(port, timeout=2).close()
                    break
                except OSError:
                    self.assertIsNone(sshd.poll(), "sshd exited")
                    self.assertLess(time.time(), deadline, "sshd not listening")
                    time.sleep(0.05)
            ssh = ["ssh", "-F", "/dev/null", "-i", os.path.join(d, "id"), "-o", "StrictHostKeyChecking=no",
                   "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR",
                   "-o", "ProxyCommand=socat - PROXY:127.0.0.1:%%h:%%p,proxyport=%d" % self.proxy.tcp_port,
                   "-p", str(port), "%s@127.0.0.1" % user]
            r = run(ssh + ["echo", "through the tunnel"], timeout=60)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout, b"through the tunnel\n")
            rec = self.tunnels_to(port)[-1]
            self.assertGreater(rec["bytes_up"], 1000)  # the SSH handshake went up the tunnel
        finally:
            sshd.terminate()
            sshd.wait(timeout=20)

    @NEED_CHROMIUM
    def test_chromium_headless(self):
        spki = ",".join([spki_sha256(os.path.join(self.proxy.state_dir, "cert.pem")), spki_sha256(self.origin.cert)])
        profile = os.path.join(self.tmp, "chromium")
        r = run(["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--user-data-dir=" + profile, "--proxy-server=" + self.https_proxy,
                 "--proxy-bypass-list=<-loopback>", "--ignore-certificate-errors-spki-list=" + spki,
                 "--dump-dom", self.origin.url + "/page.html"], timeout=180)
        self.assertIn(self.body.strip(), r.stdout, r.stderr[-3000:])
        self.tunnels_to(self.origin.port)


@NEED_SOCAT
class Refusals(unittest.TestCase):
    """H1C-12: a client that shows only the status line says why (default ports: 443 and 80)."""

    def test_socat_shows_the_reason(self):
        with H.Proxy(any_port=False) as p:
            r = run(["socat", "-T", "10", "-", "PROXY:127.0.0.1:127.0.0.1:22,proxyport=%d" % p.tcp_port],
                    input=b"", timeout=60)
            self.assertNotEqual(r.returncode, 0)
            # socat prints the reason phrase: "E CONNECT 127.0.0.1:22: Forbidden (port 22 not allowed)"
            self.assertIn(b"Forbidden (port 22 not allowed)", r.stderr)
            rec = p.wait_access_log(lambda x: x.get("status") == 403)
            self.assertEqual(rec["detail"], "port 22 not allowed")


class TryIt(unittest.TestCase):
    """The start-up "Try it" lines run as printed (the example.com URL swapped for a loopback
    origin): with the dev CA, and with --cert whose file holds its root (then that file is the
    CA to give), or holds no root (then the issuer's CA is named, not the dev CA)."""

    def try_lines(self, p):
        deadline = time.time() + 20
        while "Stop with Ctrl-C" not in p.stderr():
            self.assertLess(time.time(), deadline)
            time.sleep(0.05)
        return [ln.strip() for ln in p.stderr().splitlines() if ln.strip().startswith("curl ")]

    def run_lines(self, lines, origin, replace=None):
        self.assertEqual(len(lines), 3, lines)
        for ln in lines:
            for a, b in (replace or {}).items():
                ln = ln.replace(a, b)
            argv = ln.split() + ["-sS", "--cacert", origin.ca]
            argv[-3] = origin.url + "/"  # https://example.com/
            r = run(argv)
            self.assertEqual(r.returncode, 0, (ln, r.stderr))

    @NEED_CURL
    def test_dev_ca(self):
        origin = TLSOrigin({"/": b"x"})
        try:
            with H.Proxy() as p:
                lines = self.try_lines(p)
                self.assertTrue(all("--proxy-cacert %s" % p.ca in ln for ln in lines if "https://" in ln.split()[3]))
                self.run_lines([ln.replace("https://example.com/", "X") for ln in lines], origin)
        finally:
            origin.close()

    @NEED_CURL
    def test_with_cert(self):
        origin = TLSOrigin({"/": b"x"})
        certs = tempfile.mkdtemp(prefix="h2t-tryit-")
        try:
            subprocess.run(["bash", os.path.join(H.SOURCE_DIR, "certs", "mkcerts.sh"), certs], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            chain = os.path.join(certs, "fullchain.pem")
            # tls=False: the harness's health check would trust the dev CA; the TLS listener is ours.
            tls = ["--listen", "tls://127.0.0.1:%d" % H.free_port()]
            with H.Proxy(["--cert", chain, "--key", os.path.join(certs, "key.pem")] + tls, tls=False) as p:
                lines = self.try_lines(p)
                self.assertFalse(any(p.state_dir in ln for ln in lines), lines)
                self.assertTrue(any("--proxy-cacert %s" % chain in ln for ln in lines), lines)
                self.run_lines([ln.replace("https://example.com/", "X") for ln in lines], origin)
            leaf = os.path.join(certs, "cert.pem")
            with H.Proxy(["--cert", leaf, "--key", os.path.join(certs, "key.pem")] + tls, tls=False) as p:
                lines = self.try_lines(p)
                self.assertTrue(any("--proxy-cacert ISSUER-CA.pem" in ln for ln in lines), lines)
                self.assertIn("is not trusted by the system store and holds no root", p.stderr())
                self.run_lines([ln.replace("https://example.com/", "X") for ln in lines], origin,
                               replace={"ISSUER-CA.pem": os.path.join(certs, "ca.pem")})
        finally:
            origin.close()
            shutil.rmtree(certs, ignore_errors=True)


if __name__ == "__main__":
    H.main()
