#!/usr/bin/python3
"""curl 8.x through the HTTP/1.1 CONNECT front end, to a real HTTPS origin on loopback.

H1C-06: curl accepts the "200 Connection Established" and tunnels TLS to the origin.
H1C-04: curl sends Host: <target>; H1C-03: it brackets IPv6 itself (not tested: origin is v4).
"""
import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def curl_version():
    try:
        out = subprocess.run(["curl", "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.match(r"curl (\d+)\.(\d+)\.(\d+)", out)
    return tuple(int(x) for x in m.groups()) if m else None


CURL = curl_version()


@H.needs_tool(CURL and CURL >= (8, 0, 0),
              "curl >= 8 (found %s); install curl from bookworm-backports"
                     % (".".join(map(str, CURL)) if CURL else "none"))
class CurlH1(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = H.HTTPSOrigin()
        cls.proxy = H.Proxy()
        cls.proxy.start()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.origin.close()

    def curl(self, proxy_url, *extra):
        # -p: tunnel through the proxy with CONNECT even though the target is https anyway.
        cmd = ["curl", "-sS", "-v", "--max-time", "20", "-p", "-x", proxy_url,
               "--cacert", self.origin.ca, *extra,
               "https://localhost:%d/" % self.origin.port]
        r = subprocess.run(cmd, capture_output=True, timeout=60)
        err = r.stderr.decode(errors="replace")
        self.assertEqual(r.returncode, 0, "curl failed (%d):\n%s" % (r.returncode, err))
        return r.stdout, err

    def test_https_proxy_alpn_http11(self):
        """H1C-06 over a TLS proxy listener: ALPN http/1.1 with the proxy, then TLS to the origin."""
        body, err = self.curl("https://127.0.0.1:%d" % self.proxy.tls_port,
                              "--proxy-cacert", self.proxy.ca)
        self.assertEqual(body, self.origin.body)
        # curl 8.x logs the proxy's ALPN choice before "Establish HTTP proxy tunnel"; what it
        # logs after that is the origin's handshake inside the tunnel.
        pre, sep, _post = err.partition("Establish HTTP proxy tunnel")
        self.assertTrue(sep, err)
        self.assertIn("ALPN: curl offers http/1.1", pre)
        self.assertIn("ALPN: server accepted http/1.1", pre, err)
        self.assertIn("Proxy certificate:", pre)
        self.assertIn("CONNECT tunnel: HTTP/1.1 negotiated", pre)
        self.assertIn("CONNECT localhost:%d HTTP/1.1" % self.origin.port, err)
        self.assertRegex(err, r"CONNECT tunnel established, response 200", err)
        self.assertIn("HTTP/1.1 200 Connection Established", err)

    def test_http_proxy(self):
        """H1C-06 over the cleartext listener."""
        body, err = self.curl("http://127.0.0.1:%d" % self.proxy.tcp_port)
        self.assertEqual(body, self.origin.body)
        self.assertIn("CONNECT localhost:%d HTTP/1.1" % self.origin.port, err)
        self.assertRegex(err, r"CONNECT tunnel established, response 200", err)

    def test_tunnels_logged(self):
        """Each curl tunnel produces an access-log line with status 200 and both byte counts."""
        self.curl("http://127.0.0.1:%d" % self.proxy.tcp_port)
        target = "localhost:%d" % self.origin.port
        rec = self.proxy.wait_access_log(
            lambda r: r.get("target") == target and r.get("status") == 200
            and r.get("bytes_up", 0) > 0 and r.get("bytes_down", 0) > 0)
        self.assertEqual(rec["front"], "h1")
        self.assertTrue(rec["resolved"].endswith(":%d" % self.origin.port), rec)


if __name__ == "__main__":
    H.main()
