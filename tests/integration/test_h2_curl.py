"""curl 8.x against the HTTP/2 front end (checklist CURL-01..07, H2-01, H2C-05, H2C-18, H2-06).

curl's --proxy-http2 offers ALPN h2,http/1.1 to an https:// proxy and opens one CONNECT stream
per proxy connection; --http2-prior-knowledge exercises the cleartext listener's preface sniffing.
"""
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import HTTPSOrigin, Proxy, main, needs_tool  # noqa: E402

CURL = shutil.which("curl")


def curl_has_proxy_http2():
    if not CURL:
        return False
    out = subprocess.run([CURL, "--help", "all"], capture_output=True, text=True).stdout
    return "--proxy-http2" in out


def run_curl(args, timeout=60):
    return subprocess.run([CURL, "-sS", "--max-time", "30"] + args, capture_output=True, text=True,
                          timeout=timeout)


@needs_tool(curl_has_proxy_http2(), "curl with --proxy-http2 (8.1+) is required (CURL-01)")
class CurlH2Test(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proxy = Proxy()
        cls.proxy.start()
        cls.origin = HTTPSOrigin()

    @classmethod
    def tearDownClass(cls):
        cls.origin.close()
        cls.proxy.stop()

    def proxy_args(self):
        return ["--proxy-http2", "-x", "https://127.0.0.1:%d" % self.proxy.tls_port,
                "--proxy-cacert", self.proxy.ca]

    def test_curl01_h2c05_tunnel_over_h2_proxy(self):
        """CURL-07 / H2C-05 / H2-01: ALPN h2 to the proxy, 200 to the CONNECT, origin body intact."""
        url = "https://localhost:%d/" % self.origin.port
        r = run_curl(["-v"] + self.proxy_args() + ["--cacert", self.origin.ca, url,
                                                   "-w", "\n##%{http_code} %{num_connects}"])
        self.assertEqual(r.returncode, 0, r.stderr)
        body, _, tail = r.stdout.rpartition("\n##")
        self.assertEqual(body.encode(), self.origin.body)
        self.assertEqual(tail.split()[0], "200")
        # curl 8.14.1 prints both lines; the first proves ALPN chose h2 on the proxy connection.
        self.assertIn("ALPN: server accepted h2", r.stderr)
        self.assertIn("CONNECT tunnel: HTTP/2 negotiated", r.stderr)
        self.assertIn("CONNECT tunnel established, response 200", r.stderr)
        rec = self.proxy.wait_access_log(lambda x: x.get("target") == "localhost:%d" % self.origin.port
                                         and x.get("front") == "h2")
        self.assertEqual(rec["status"], 200)
        self.assertEqual(rec["proto"], "connect")
        self.assertGreater(rec["bytes_down"], len(self.origin.body))

    def test_curl05_h2c18_refused_connect(self):
        """H2C-18 / CURL-05: CONNECT to a closed port -> 502; curl reports the status and fails."""
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()  # nothing listens there now
        # curl 8.14.1 prints no "CONNECT tunnel failed" line on the h2 path; its H2-PROXY trace
        # filter shows the response the proxy sent.
        r = run_curl(["-v", "--trace-config", "h2-proxy"] + self.proxy_args()
                     + ["-k", "https://127.0.0.1:%d/" % port])
        self.assertIn(r.returncode, (7, 56), r.stderr)  # 56 in 8.14.1, 7 from 8.20.0
        self.assertIn("got http status: 502", r.stderr)
        self.assertRegex(r.stderr, r"header: proxy-status: h2tunnel; error=connection_refused")

    def test_curl_sequential_tunnels_each_new_connection(self):
        """CURL-04: curl opens one tunnel per proxy connection; several in a row all work."""
        url = "https://localhost:%d/" % self.origin.port
        for _ in range(3):
            r = run_curl(self.proxy_args() + ["--cacert", self.origin.ca, url])
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(r.stdout.encode(), self.origin.body)

    def test_h2c_prior_knowledge_healthz(self):
        """Cleartext listener: the h2 preface selects HTTP/2 (h2c prior knowledge); /healthz local."""
        r = run_curl(["-v", "--http2-prior-knowledge", "-w", "##%{http_version} %{http_code}",
                      "http://127.0.0.1:%d/healthz" % self.proxy.tcp_port])
        self.assertEqual(r.returncode, 0, r.stderr)
        body, _, tail = r.stdout.rpartition("##")
        self.assertEqual(body, "ok\n")
        self.assertEqual(tail, "2 200")
        self.assertIn("< HTTP/2 200", r.stderr)

    def test_h2c_prior_knowledge_metrics(self):
        """The cleartext h2 path serves /metrics with the h2 connection counter."""
        r = run_curl(["--http2-prior-knowledge", "http://127.0.0.1:%d/metrics" % self.proxy.tcp_port])
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.search(r'^h2tunnel_connections_by_protocol_total\{protocol="h2"\} (\d+)$', r.stdout, re.M)
        self.assertIsNotNone(m, r.stdout)
        self.assertGreaterEqual(int(m.group(1)), 1)

    def test_h2_over_tls_healthz(self):
        """ALPN h2 on the TLS listener also answers local requests (curl --http2 to the proxy)."""
        r = run_curl(["--http2", "--cacert", self.proxy.ca, "-w", "##%{http_version}",
                      "https://127.0.0.1:%d/healthz" % self.proxy.tls_port])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, "ok\n##2")


if __name__ == "__main__":
    main()
