#!/usr/bin/python3
"""Clients counted by network (issue 10 leftovers): --client-ipv6-prefix (default 64) groups the
addresses of one IPv6 /64 into one client for per-client limits and failed-login bans.

Several addresses of one /64 need a network of their own: the test moves itself into a new
network namespace (unshare(CLONE_NEWNET), as root) before anything starts, brings up its loopback
and gives it 2001:db8:1:2::11, ::12 (one /64), 2001:db8:1:3::10 (the next /64) and the proxy's
2001:db8:ffff::1. Nothing outside the namespace is touched, and the proxy and origin started by the
test live in it too. Clients are raw sockets bound to those source addresses.

- per-client `tunnels: 1`: a tunnel from ::11 holds the /64's one tunnel, so ::12 gets 429
  (client_tunnels) while 2001:db8:1:3::10 gets 200; with --client-ipv6-prefix 128 each address is
  its own client and both get 200.
- max-failures 2: two wrong passwords from ::11 ban the /64; ::12 then gets 429 with Retry-After
  even with the right password, 2001:db8:1:3::10 is unaffected, and stderr names the network
  (`auth: 2001:db8:1:2::/64 banned ...`).
"""
import ctypes
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

HTPASSWD = shutil.which("htpasswd")
IP = shutil.which("ip") or "/usr/sbin/ip"
CLONE_NEWNET = 0x40000000
NET_A1, NET_A2, NET_B, PROXY_ADDR = "2001:db8:1:2::11", "2001:db8:1:2::12", "2001:db8:1:3::10", "2001:db8:ffff::1"


def own_network():
    """This process (and what it starts) in a fresh network namespace with our addresses on lo."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), "unshare(CLONE_NEWNET) needs root (CAP_SYS_ADMIN)")
    subprocess.run([IP, "link", "set", "lo", "up"], check=True)
    for a in (NET_A1, NET_A2, NET_B, PROXY_ADDR):
        subprocess.run([IP, "-6", "addr", "add", a + "/64", "dev", "lo", "nodad"], check=True)


def basic(user, password):
    import base64
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


class Tunnel:
    """One h1 CONNECT from |source| to the proxy's IPv6 listener; open while the object lives."""

    def __init__(self, port, source, target, auth):
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.bind((source, 0))
        self.sock.connect((PROXY_ADDR, port))
        self.sock.sendall(H.connect_head(target, extra=b"Proxy-Authorization: " + auth.encode() + b"\r\n"))
        self.resp = H.parse_response(H.read_head(self.sock, timeout=60))
        if self.resp.status == 200:
            self.sock.sendall(b"ping\n")
            assert H.recv_exact(self.sock, 5, timeout=30) == b"ping\n"

    def close(self):
        self.sock.close()


class PrefixBase(unittest.TestCase):
    prefix_args = []

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="h2t-prefix-")
        r = subprocess.run([HTPASSWD, "-nbB", "-C", "4", "alice", "alice-pw"], capture_output=True, text=True,
                           check=True)
        with open(os.path.join(cls.dir, "users"), "w", encoding="utf-8") as f:
            f.write(r.stdout)
        cls.config = os.path.join(cls.dir, "h2tunnel.yaml")
        with open(cls.config, "w", encoding="utf-8") as f:
            f.write("auth: { htpasswd: users, max-failures: 2, failure-window: 1m, ban-time: 1m }\n"
                    "limits: { per-client: { tunnels: 1 } }\n")
        cls.echo = H.EchoOrigin()
        cls.port6 = H.free_port(socket.AF_INET6, PROXY_ADDR)
        cls.proxy = H.Proxy(["--config", cls.config, "--listen", "tcp://[%s]:%d" % (PROXY_ADDR, cls.port6)]
                            + cls.prefix_args, tls=False)
        cls.proxy.start()

    @classmethod
    def tearDownClass(cls):
        try:
            cls.proxy.stop()
        finally:
            cls.echo.close()
            shutil.rmtree(cls.dir, ignore_errors=True)

    def tunnel(self, source, password="alice-pw"):
        return Tunnel(self.port6, source, "127.0.0.1:%d" % self.echo.port, basic("alice", password))


@H.needs_tool(HTPASSWD and os.path.exists(IP), "htpasswd (apache2-utils), ip (iproute2)")
class DefaultPrefix(PrefixBase):
    """--client-ipv6-prefix 64 (the default)."""

    def test_1_per_client_limit_holds_for_the_whole_64(self):
        held = self.tunnel(NET_A1)
        try:
            self.assertEqual(held.resp.status, 200, held.resp)
            other = self.tunnel(NET_A2)
            other.close()
            self.assertEqual(other.resp.status, 429, other.resp)
            self.assertIn("too many tunnels from this client", other.resp.header("proxy-status"))
            nxt = self.tunnel(NET_B)
            nxt.close()
            self.assertEqual(nxt.resp.status, 200, nxt.resp)
        finally:
            held.close()

    def test_2_ban_covers_the_whole_64(self):
        for i in range(2):
            t = self.tunnel(NET_A1, password="wrong-%d" % i)
            t.close()
            self.assertEqual(t.resp.status, 407, t.resp)
        t = self.tunnel(NET_A2)
        t.close()
        self.assertEqual(t.resp.status, 429, t.resp)
        self.assertIsNotNone(t.resp.header("retry-after"))
        self.assertIn("too many failed logins", t.resp.header("proxy-status"))
        # The earlier test's two tunnels are logged when they end, and then hold no count.
        self.proxy.wait_access_log(lambda r: sum(x.get("status") == 200 for x in self.proxy.access_log()) >= 2,
                                   timeout=60)
        t = self.tunnel(NET_B)
        t.close()
        self.assertEqual(t.resp.status, 200, t.resp)
        self.assertIn("auth: 2001:db8:1:2::/64 banned for 60 s after 2 failed logins", self.proxy.stderr())


@H.needs_tool(HTPASSWD and os.path.exists(IP), "htpasswd (apache2-utils), ip (iproute2)")
class FullAddresses(PrefixBase):
    """--client-ipv6-prefix 128: each address is its own client."""
    prefix_args = ["--client-ipv6-prefix", "128"]

    def test_each_address_its_own_client(self):
        a = self.tunnel(NET_A1)
        b = self.tunnel(NET_A2)
        a.close()
        b.close()
        self.assertEqual(a.resp.status, 200, a.resp)
        self.assertEqual(b.resp.status, 200, b.resp)


if __name__ == "__main__":
    own_network()
    H.main()
