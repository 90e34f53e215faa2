"""Forward proxying of ordinary requests (issue 11; checklist FWD-01..14, H2-06).

The proxy's own pages (/healthz, /metrics) answer only for the proxy's own authority: origin-form
on HTTP/1.1, or an absolute-form / :authority naming localhost, the address the client connected
to, or a --proxy-name (port absent or the listener's). Every other authority is forwarded to that
origin over HTTP/1.1. Origins are loopback servers started here.
"""
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Proxy, dial, main, parse_response, recv_until_eof  # noqa: E402
from h2util import H2Client  # noqa: E402


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


if __name__ == "__main__":
    main()
