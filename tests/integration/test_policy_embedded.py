"""Issue 8 item 7 (H1C-13): IPv6 forms that embed an IPv4 address, driven from outside with real
CONNECT requests and DNS answers. Teredo used to count as public; every embedding class is now
denied by default, and allowing one (v4-mapped, 6to4, teredo) still needs the embedded IPv4
address to be allowed too. The loopback echo origin is what an attacker would reach."""

import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402


def teredo(server_v4, client_v4, port=40000):
    """RFC 4380 §4: 2001:0:<server>:<flags>:<~port>:<~client>."""
    s = socket.inet_aton(server_v4)
    c = bytes(b ^ 0xff for b in socket.inet_aton(client_v4))
    p = (port ^ 0xffff).to_bytes(2, "big")
    return socket.inet_ntop(socket.AF_INET6, b"\x20\x01\x00\x00" + s + b"\x80\x00" + p + c)


def canon(target):
    """The access log writes an IPv6 literal in inet_ntop's canonical text."""
    if not target.startswith("["):
        return target
    host, _, port = target[1:].partition("]:")
    return "[%s]:%s" % (socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, host)), port)


class EmbeddedIPv4(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.echo = H.EchoOrigin()
        p = cls.echo.port
        cls.dns = H.FakeDNS({"mapped.test": ["::ffff:127.0.0.1"],
                             "nat64.test": ["64:ff9b::7f00:1"],
                             "teredo.test": [teredo("65.54.227.120", "127.0.0.1")],
                             "sixtofour.test": ["2002:7f00:1::1"]})
        cls.targets = ["[::ffff:127.0.0.1]:%d" % p, "[::127.0.0.1]:%d" % p,
                       "[64:ff9b::7f00:1]:%d" % p, "[64:ff9b:1::7f00:1]:%d" % p,
                       "[2002:7f00:1::1]:%d" % p, "[%s]:%d" % (teredo("65.54.227.120", "127.0.0.1"), p),
                       "[%s]:%d" % (teredo("127.0.0.1", "8.8.8.8"), p),
                       "[2001:db8::5efe:127.0.0.1]:%d" % p,
                       "mapped.test:%d" % p, "nat64.test:%d" % p, "teredo.test:%d" % p,
                       "sixtofour.test:%d" % p]

    @classmethod
    def tearDownClass(cls):
        cls.dns.close()
        cls.echo.close()

    def refused(self, proxy, target, detail):
        with self.assertRaises(H.TunnelRefused) as cm:
            s = proxy.tunnel(target)
            s.close()
        r = cm.exception.resp
        self.assertEqual(r.status, 403, r)
        self.assertIn("destination_ip_prohibited", r.header("proxy-status", ""))
        rec = proxy.wait_access_log(lambda x: x.get("target") == canon(target))
        self.assertEqual(rec["status"], 403)
        self.assertIn(detail, rec.get("detail", ""), rec)

    def test_denied_by_default(self):
        """The default policy denies each form by its class (teredo no longer counts as public)."""
        want = {"::ffff": "v4-mapped", "::127": "v4-mapped", "64:ff9b": "v4-mapped",
                "2002:": "6to4", "2001:0:": "teredo", "2001:db8": "reserved",
                "mapped": "v4-mapped", "nat64": "v4-mapped", "teredo.": "teredo",
                "sixtofour": "6to4"}
        with H.Proxy(["--dns-server", self.dns.addr], allow_loopback=False) as p:
            for t in self.targets:
                detail = next(v for k, v in want.items() if t.lstrip("[").startswith(k))
                with self.subTest(target=t):
                    self.refused(p, t, detail)

    def test_class_allowed_embedded_still_checked(self):
        """With v4-mapped, 6to4, teredo and reserved allowed but not loopback, every form that
        embeds 127.0.0.1 (a Teredo server or client, an ISATAP identifier) is still denied, and
        the log says why."""
        args = ["--dns-server", self.dns.addr]
        for c in ("v4-mapped", "6to4", "teredo", "reserved"):
            args += ["--allow-net", c]
        with H.Proxy(args, allow_loopback=False) as p:
            for t in self.targets:
                with self.subTest(target=t):
                    self.refused(p, t, "embedded loopback")
            self.assertIn("embedded loopback", p.stderr())

    def test_both_allowed_reaches_origin(self):
        """Allowing v4-mapped and loopback opens ::ffff:127.0.0.1: the tunnel reaches the echo
        origin (the embedding rule denies nothing more than it must)."""
        with H.Proxy(["--allow-net", "v4-mapped"]) as p:
            s = p.tunnel("[::ffff:127.0.0.1]:%d" % self.echo.port)
            with s:
                s.sendall(b"ping")
                self.assertEqual(H.recv_exact(s, 4), b"ping")


if __name__ == "__main__":
    unittest.main(verbosity=2, warnings=False)
