#!/usr/bin/python3
"""README "Using it from..." / apt: apt (2.6, Debian 12) through the proxy, against a local flat
repository on loopback holding one small .deb, with apt's own state in a temp dir (the machine's
apt lists, cache and status are not touched).

What it shows: apt speaks TLS to an https:// proxy (it is not limited to cleartext proxies), sends
http:// repositories to it as forwarded requests (absolute-form GET) and https:// ones through
CONNECT inside that TLS; the proxy's CA is given for the proxy's host alone
(Acquire::https::PROXYHOST::CaInfo), so the origins keep their own trust; without it apt refuses
the proxy's certificate. Spec IDs: H1C-01 (CONNECT), FWD-01 (absolute-form forwarding).
"""
import functools
import hashlib
import http.server
import os
import shutil
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402

NEED_APT = H.needs_tool(shutil.which("apt-get") and shutil.which("dpkg-scanpackages"),
                        "apt-get and dpkg-scanpackages (dpkg-dev)")
PKG = "h2t-apt-probe"


class Repo:
    """A flat repository (`deb [trusted=yes] URL ./`) served over http or https on 127.0.0.1."""

    def __init__(self, root, tls_dir=None):
        handler = functools.partial(QuietHandler, directory=root)

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.httpd = Server(("127.0.0.1", 0), handler)
        if tls_dir:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(os.path.join(tls_dir, "cert.pem"), os.path.join(tls_dir, "key.pem"))
            self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = "%s://127.0.0.1:%d/" % ("https" if tls_dir else "http", self.httpd.server_address[1])
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *a):
        pass


@NEED_APT
class AptThroughProxy(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="h2t-apt-")
        pkg = os.path.join(cls.tmp, "pkg")
        os.makedirs(os.path.join(pkg, "DEBIAN"))
        os.makedirs(os.path.join(pkg, "usr/share/doc", PKG))
        with open(os.path.join(pkg, "DEBIAN/control"), "w") as f:
            f.write("Package: %s\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@localhost>\n"
                    "Description: fetched by apt through h2tunnel\n" % PKG)
        with open(os.path.join(pkg, "usr/share/doc", PKG, "payload"), "wb") as f:
            f.write(os.urandom(200 * 1024))  # several reads' worth through the tunnel
        cls.repo = os.path.join(cls.tmp, "repo")
        os.makedirs(cls.repo)
        cls.deb = os.path.join(cls.repo, PKG + "_1.0_all.deb")
        subprocess.run(["dpkg-deb", "--build", "-Zgzip", pkg, cls.deb], check=True, capture_output=True)
        with open(os.path.join(cls.repo, "Packages"), "wb") as f:
            subprocess.run(["dpkg-scanpackages", "-m", "."], cwd=cls.repo, stdout=f, stderr=subprocess.DEVNULL,
                           check=True)
        cls.certs = os.path.join(cls.tmp, "origin-certs")  # the https origin's own CA
        subprocess.run(["bash", os.path.join(H.SOURCE_DIR, "certs", "mkcerts.sh"), cls.certs], check=True,
                       capture_output=True)
        cls.http_repo = Repo(cls.repo)
        cls.https_repo = Repo(cls.repo, tls_dir=cls.certs)
        cls.proxy = H.Proxy(workers=1)
        cls.proxy.start()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.http_repo.close()
        cls.https_repo.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def apt(self, repo_url, *opts):
        """apt-get update, then apt-get download of the package, with state in a fresh dir."""
        d = tempfile.mkdtemp(dir=self.tmp)
        for sub in ("lists/partial", "cache/archives/partial", "etc/preferences.d", "out"):
            os.makedirs(os.path.join(d, sub))
        with open(os.path.join(d, "sources.list"), "w") as f:
            f.write("deb [trusted=yes] %s ./\n" % repo_url)
        user = os.environ.get("USER") or subprocess.run(["id", "-un"], capture_output=True, text=True).stdout.strip()
        base = ["-o", "Dir::Etc::SourceList=%s/sources.list" % d, "-o", "Dir::Etc::SourceParts=%s/none" % d,
                "-o", "Dir::Etc::Preferences=%s/none" % d, "-o", "Dir::Etc::PreferencesParts=%s/etc/preferences.d" % d,
                "-o", "Dir::State::Lists=%s/lists" % d, "-o", "Dir::Cache=%s/cache" % d,
                "-o", "Debug::NoLocking=1", "-o", "APT::Sandbox::User=%s" % user,
                "-o", "Acquire::Retries=0", "-o", "Acquire::http::Timeout=60", "-o", "Acquire::https::Timeout=60"]
        base += list(opts)
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env["LC_ALL"] = "C"
        up = subprocess.run(["apt-get"] + base + ["update"], capture_output=True, text=True, timeout=300, env=env)
        out = up.stdout + up.stderr
        if up.returncode != 0 or "W: " in out or "E: " in out:
            return False, out
        dl = subprocess.run(["apt-get"] + base + ["download", PKG], cwd=os.path.join(d, "out"), capture_output=True,
                            text=True, timeout=300, env=env)
        out += dl.stdout + dl.stderr
        got = os.path.join(d, "out", os.path.basename(self.deb))
        if dl.returncode != 0 or not os.path.exists(got):
            return False, out
        with open(got, "rb") as a, open(self.deb, "rb") as b:
            self.assertEqual(hashlib.sha256(a.read()).hexdigest(), hashlib.sha256(b.read()).hexdigest(),
                             "the .deb apt fetched differs from the repository's")
        return True, out

    def proxy_log(self, pred):
        return [e for e in self.proxy.access_log() if pred(e)]

    def test_cleartext_proxy_http_repo(self):
        """Acquire::http::Proxy http://PROXY: forwarded absolute-form GETs."""
        ok, out = self.apt(self.http_repo.url, "-o", "Acquire::http::Proxy=http://127.0.0.1:%d" % self.proxy.tcp_port)
        self.assertTrue(ok, out)
        self.assertTrue(self.proxy_log(lambda e: e.get("proto") == "forward" and e.get("path", "").endswith(".deb")
                                       and e.get("status") == 200))

    def test_https_proxy_http_repo(self):
        """Acquire::http::Proxy https://PROXY with the proxy's CA for its host only: apt speaks
        TLS to the proxy."""
        ok, out = self.apt(self.http_repo.url, "-o", "Acquire::http::Proxy=https://localhost:%d" % self.proxy.tls_port,
                           "-o", "Acquire::https::localhost::CaInfo=%s" % self.proxy.ca)
        self.assertTrue(ok, out)

    def test_https_proxy_https_repo(self):
        """Acquire::https::Proxy https://PROXY: CONNECT inside TLS; the origin is checked against
        its own CA (given for its host), the proxy against the proxy's."""
        ok, out = self.apt(self.https_repo.url, "-o", "Acquire::https::Proxy=https://localhost:%d" % self.proxy.tls_port,
                           "-o", "Acquire::https::localhost::CaInfo=%s" % self.proxy.ca,
                           "-o", "Acquire::https::127.0.0.1::CaInfo=%s" % os.path.join(self.certs, "ca.pem"))
        self.assertTrue(ok, out)
        self.assertTrue(self.proxy_log(lambda e: e.get("proto") == "connect" and e.get("status") == 200
                                       and e.get("target") == self.https_repo.url[8:-1]))

    def test_https_proxy_untrusted(self):
        """Without the proxy's CA apt refuses the proxy's certificate (and says so)."""
        ok, out = self.apt(self.http_repo.url, "-o", "Acquire::http::Proxy=https://localhost:%d" % self.proxy.tls_port)
        self.assertFalse(ok, out)
        self.assertIn("Certificate verification failed", out)


if __name__ == "__main__":
    H.main()
