#!/usr/bin/python3
"""Several instances behind a load balancer (issue 13 item 7), the setup README "Several instances
behind HAProxy" documents: two h2tunnel instances, each with a ?proxy-protocol listener trusting
only HAProxy's source address (127.0.0.2), behind HAProxy in TCP mode with send-proxy-v2,
roundrobin, and health checks on /healthz (HTTP over the PROXY header, v2 LOCAL).

- Client addresses arrive intact: each instance's access log shows the real client (127.0.0.5,
  127.0.0.6), not HAProxy's.
- Killing one instance (SIGKILL) leaves the other's tunnel untouched (byte-exact both ways after
  the kill) and new tunnels keep working (all on the survivor; HAProxy redispatches the ones that
  met the dead port, then marks it DOWN).
- A drained instance (SIGTERM: listeners close at once, /healthz answers 503 on connections
  already open, tunnels may finish until --drain-timeout) stops receiving new connections while
  its tunnel keeps echoing, and exits when that tunnel ends.

Every wait is on an event (HAProxy's server state, bytes, an access-log line, an exit) with a
generous bound.
"""
import os
import signal
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402
import haproxy_util as HP  # noqa: E402

LB_SOURCE = "127.0.0.2"


def haproxy_config(lb_port, servers):
    lines = ["listen h2tunnel",
             "  bind 127.0.0.1:%d" % lb_port,
             "  balance roundrobin",
             "  option redispatch",
             "  retries 3",
             "  option httpchk GET /healthz",
             "  http-check expect status 200",
             "  default-server source %s send-proxy-v2 check inter 200ms fall 2 rise 2" % LB_SOURCE]
    for name, port in servers:
        lines.append("  server %s 127.0.0.1:%d" % (name, port))
    return "\n".join(lines) + "\n"


class Instance:
    """One h2tunnel: its own direct listener (metrics, health) and a ?proxy-protocol one for HAProxy."""

    def __init__(self, extra=()):
        self.pp_port = H.free_port()
        self.proxy = H.Proxy(["--listen", "tcp://127.0.0.1:%d?proxy-protocol" % self.pp_port,
                              "--proxy-protocol-from", LB_SOURCE + "/32"] + list(extra), tls=False)
        self.proxy.start()

    def active(self):
        return self.proxy.metrics().get('h2tunnel_tunnels_active{protocol="connect"}', 0)


class LoadBalancer(unittest.TestCase):
    def setUp(self):
        self.origin = H.EchoOrigin()
        # --drain-delay well above HAProxy's time to mark a server DOWN (fall 2 x inter 200ms).
        self.a = Instance(["--drain-timeout", "60s", "--drain-delay", "3s"])
        self.b = Instance(["--drain-timeout", "60s", "--drain-delay", "3s"])
        self.lb_port = H.free_port()
        self.lb = HP.HAProxy(haproxy_config(self.lb_port, [("a", self.a.pp_port), ("b", self.b.pp_port)]),
                             ports=[self.lb_port], stats_socket=True)
        self.lb.__enter__()
        self.lb.wait_server_state("h2tunnel", "a", 2)
        self.lb.wait_server_state("h2tunnel", "b", 2)
        self.socks = []

    def tearDown(self):
        for s in self.socks:
            s.close()
        self.lb.__exit__(None, None, None)
        self.origin.close()
        for inst in (self.a, self.b):
            inst.proxy.stop(check=False)

    def tunnel_from(self, src):
        s = HP.dial_from(src, self.lb_port)
        self.socks.append(s)
        s.sendall(H.connect_head(self.origin.addr))
        resp = H.parse_response(H.read_head(s, timeout=30))
        self.assertEqual(resp.status, 200, resp.raw)
        return s

    def echo(self, s, payload):
        s.sendall(payload)
        self.assertEqual(H.recv_exact(s, len(payload), timeout=30), payload)

    def one_on_each(self):
        """Two tunnels through HAProxy from two client addresses: roundrobin puts one on each.
        Returns (the one on A, the one on B)."""
        t5 = self.tunnel_from("127.0.0.5")
        self.echo(t5, b"five")
        first = self.a if self.a.active() == 1 else self.b
        self.assertEqual(first.active(), 1)
        t6 = self.tunnel_from("127.0.0.6")
        self.echo(t6, b"six")
        self.assertEqual((self.a.active(), self.b.active()), (1, 1))
        return (t5, t6) if first is self.a else (t6, t5)

    def client_logged(self, inst, src, timeout=30):
        return inst.proxy.wait_access_log(lambda r: r.get("client", "").startswith(src + ":") and r.get("status") == 200,
                                          timeout=timeout)

    def test_client_addresses_arrive_intact(self):
        on_a, on_b = self.one_on_each()
        src_a, src_b = on_a.getsockname()[0], on_b.getsockname()[0]
        me_a, me_b = "%s:%d" % on_a.getsockname(), "%s:%d" % on_b.getsockname()
        on_a.close()
        on_b.close()
        self.assertEqual(self.client_logged(self.a, src_a)["client"], me_a)
        self.assertEqual(self.client_logged(self.b, src_b)["client"], me_b)
        for inst in (self.a, self.b):
            self.assertFalse(any(r.get("client", "").startswith(LB_SOURCE + ":") for r in inst.proxy.access_log()))

    def test_kill_one_instance(self):
        on_a, on_b = self.one_on_each()
        self.a.proxy.proc.send_signal(signal.SIGKILL)
        self.a.proxy.proc.wait(timeout=30)
        # A's tunnel is gone; B's is untouched, byte-exact both ways.
        self.assertEqual(H.recv_until_eof(on_a, timeout=30), b"")
        for i in range(20):
            self.echo(on_b, bytes([i]) * (1000 + 977 * i))
        # New tunnels keep working, all on B (the ones that met A's closed port were redispatched).
        for i in range(10):
            s = self.tunnel_from("127.0.0.7")
            self.echo(s, b"new tunnel %d" % i)
            s.close()
        self.lb.wait_server_state("h2tunnel", "a", 0)
        self.wait_count(self.b, "127.0.0.7", 10)
        self.echo(on_b, b"still here")

    def wait_count(self, inst, src, n, timeout=30):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if len([r for r in inst.proxy.access_log() if r.get("client", "").startswith(src + ":")]) >= n:
                return True
            time.sleep(0.05)
        raise AssertionError("fewer than %d tunnels from %s on the instance" % (n, src))

    def test_drained_instance(self):
        on_a, on_b = self.one_on_each()
        me_b = "%s:%d" % on_b.getsockname()
        self.b.proxy.proc.send_signal(signal.SIGTERM)
        # --drain-delay: B fails its health checks but serves on, until HAProxy marks it DOWN; every
        # new tunnel meanwhile works, on either instance.
        t0 = time.time()
        n = 0
        while "h2tunnel b 127.0.0.1" not in self.down_servers():
            s = self.tunnel_from("127.0.0.8")
            self.echo(s, b"during the drain delay %d" % n)
            s.close()
            n += 1
            self.assertLess(time.time() - t0, 30, "HAProxy did not mark the draining instance DOWN")
        # From then on B receives no new connection, before and after its listeners close.
        for i in range(10):
            s = self.tunnel_from("127.0.0.9")
            self.echo(s, b"after DOWN %d" % i)
            s.close()
        self.wait_count(self.a, "127.0.0.9", 10)
        deadline = time.time() + 30
        while "stopping (draining tunnels" not in self.b.proxy.stderr():
            self.assertLess(time.time(), deadline, "the drain delay never ended")
            time.sleep(0.05)
        for i in range(5):
            s = self.tunnel_from("127.0.0.9")
            self.echo(s, b"after B stopped listening %d" % i)
            s.close()
        self.wait_count(self.a, "127.0.0.9", 15)
        self.assertFalse(any(r.get("client", "").startswith("127.0.0.9:") for r in self.b.proxy.access_log()))
        # B's tunnel finishes its work while B drains, and B exits when it ends.
        for i in range(10):
            self.echo(on_b, b"draining but alive %d" % i)
        self.assertTrue(self.b.proxy.alive())
        on_b.close()
        self.assertEqual(self.b.proxy.proc.wait(timeout=30), 0)
        rec = self.client_logged(self.b, on_b_src(me_b))
        self.assertEqual(rec["client"], me_b)
        self.echo(on_a, b"A untouched")

    def down_servers(self):
        """`show servers state` lines of servers DOWN (state 0), as "backend name address"."""
        out = []
        for ln in self.lb.command("show servers state h2tunnel").splitlines():
            f = ln.split()
            if len(f) > 5 and f[1] == "h2tunnel" and f[5] == "0":
                out.append("%s %s %s" % (f[1], f[3], f[4]))
        return " | ".join(out)


def on_b_src(client):
    return client.rsplit(":", 1)[0]


if __name__ == "__main__":
    H.main()
