"""Dialing upstreams (proxy/dialer.c, tunnel/tcp_ep.c) from outside, with real clients.

Names come from a FakeDNS; every address is on loopback (Linux routes all of 127.0.0.0/8 to lo),
and all addresses of a name share the origin's port, so one address can refuse (nothing listens
there), black-hole (a full accept queue: SYNs dropped) or accept. Spec IDs refer to
/work/shared/reference/spec-checklist.md (H1C-07/H1C-14: upstream failures map to 502/504 with
Proxy-Status).
"""
import contextlib
import os
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hpack  # noqa: E402

from harness import (Blackhole, EchoOrigin, FakeDNS, Proxy, TunnelRefused, main, open_tunnel,  # noqa: E402
                     proxy_bin, recv_exact)
from h2util import (CANCEL, FLAG_END_HEADERS, HEADERS, H2Client, RawConn, echo_roundtrip,  # noqa: E402
                    frame, rst_frame)

REFUSING = "127.0.0.2"  # nothing listens here (or a Blackhole does)
ORIGIN = "127.0.0.3"
ALSO_REFUSING = "127.0.0.4"
# The reset test: ROUNDS rounds of STREAMS CONNECTs on each of CONNS connections; the connections'
# resets go out STEP seconds apart (on the old code this aborted the proxy in 6 runs out of 6).
ROUNDS, CONNS, STREAMS, STEP = 48, 8, 8, 0.0007


@contextlib.contextmanager
def stopped(proxy):
    """Holds the proxy process stopped (SIGSTOP) for the duration of the block."""
    os.kill(proxy.pid, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + 5
        while proc_state(proxy.pid) != "T":
            if time.monotonic() > deadline:
                raise AssertionError("the proxy did not stop")
            time.sleep(0.001)
        yield
    finally:
        os.kill(proxy.pid, signal.SIGCONT)


def proc_state(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def connect_frame(enc, sid, authority):
    return frame(HEADERS, FLAG_END_HEADERS, sid, enc.encode([(":method", "CONNECT"), (":authority", authority)]))


class DialTest(unittest.TestCase):
    def test_reset_during_fallback_to_second_address(self):
        """Issue 8 item 1: a name whose first address refuses, and clients reset their CONNECT
        streams at once. The resolver's answers are held, then released in one burst to the
        stopped proxy, so it starts (and sees fail) many first attempts in one loop turn; the
        clients' RST_STREAMs follow at staggered moments, varied from round to round, so they
        land at different points of the dial (the answers, the first address failing, the
        second connecting). Cancelling in the turn where the failed attempt's socket was closing
        used to close it twice and abort the process. The proxy must stay up, keep every
        connection, serve a good tunnel through the same name afterwards and exit cleanly (no
        sanitizer report)."""
        with EchoOrigin(host=ORIGIN) as echo, \
                FakeDNS({"two.test": [REFUSING, ORIGIN]}) as dns, \
                Proxy(["--dns-server", dns.addr, "--h2-reset-burst", "100000"]) as p:
            target = "two.test:%d" % echo.port
            conns = [RawConn(p.tcp_port) for _ in range(CONNS)]
            encs = [hpack.Encoder() for _ in conns]
            sid = 1
            for rnd in range(ROUNDS):
                sids = list(range(sid, sid + 2 * STREAMS, 2))
                sid += 2 * STREAMS
                dns.hold()
                asked = len(dns.queries)
                for rc, enc in zip(conns, encs):
                    rc.send(b"".join(connect_frame(enc, s, target) for s in sids))
                deadline = time.monotonic() + 10
                while len(dns.queries) < asked + 2 * STREAMS * len(conns):  # A and AAAA each
                    self.assertTrue(p.alive(), p.stderr()[-3000:])
                    self.assertLess(time.monotonic(), deadline, "the proxy did not ask the resolver")
                    time.sleep(0.001)
                # Every answer reaches the stopped proxy at once: it issues all first attempts in
                # one loop turn. Then each connection resets its streams, STEP apart.
                with stopped(p):
                    dns.release()
                t0 = time.perf_counter() + (rnd % 8) * STEP
                for i, rc in enumerate(conns):
                    while time.perf_counter() < t0 + i * STEP:
                        pass
                    rc.send(b"".join(rst_frame(s, CANCEL) for s in sids))
                for rc in conns:
                    rc.pump(0.001)
                self.assertTrue(p.alive(), "proxy died in round %d:\n%s" % (rnd, p.stderr()[-3000:]))
            for rc in conns:
                rc.pump(0.1)
                self.assertFalse(rc.eof, "proxy closed a connection: " + rc.summary())
                self.assertEqual(rc.goaways(), [])
                rc.close()
            self.assertTrue(p.alive())
            with H2Client(p.tcp_port) as cli:
                tid = cli.open_tunnel(target)
                msg = os.urandom(20000)
                self.assertEqual(echo_roundtrip(cli, tid, msg), msg)
            rec = p.wait_access_log(lambda r: r.get("target") == target and r.get("status") == 200
                                    and r.get("resolved") == "%s:%d" % (ORIGIN, echo.port))
            self.assertIsNotNone(rec)

    def test_happy_eyeballs_black_holed_first_address(self):
        """RFC 8305 (issue 9 item 4): the name's first address black-holes (SYNs dropped), the
        second accepts. The next attempt starts after the connection attempt delay (250 ms by
        default), so the tunnel opens in about that time, over HTTP/1.1 and HTTP/2 -- not after
        the connect timeout (20 s here), as when addresses were tried one after another."""
        with EchoOrigin(host=ORIGIN) as echo, Blackhole(host=REFUSING, port=echo.port) as bh, \
                FakeDNS({"hole.test": [REFUSING, ORIGIN]}) as dns, \
                Proxy(["--dns-server", dns.addr, "--connect-timeout", "20s"]) as p:
            self.assertTrue(bh.works, "could not black-hole %s here (SYNs to a full accept queue "
                            "were answered), so this test cannot show anything" % bh.addr)
            target = "hole.test:%d" % echo.port
            t0 = time.monotonic()
            with open_tunnel(p.tcp_port, target, timeout=30) as s:
                h1_elapsed = time.monotonic() - t0
                s.sendall(b"eyeballs")
                self.assertEqual(recv_exact(s, 8), b"eyeballs")
            with H2Client(p.tcp_port, timeout=30) as cli:
                t0 = time.monotonic()
                sid = cli.open_tunnel(target, timeout=30)
                h2_elapsed = time.monotonic() - t0
                msg = os.urandom(1000)
                self.assertEqual(echo_roundtrip(cli, sid, msg), msg)
            sys.stderr.write("\n  [happy eyeballs] tunnel open after %.3f s (h1), %.3f s (h2); "
                             "connect timeout 20 s\n" % (h1_elapsed, h2_elapsed))
            for elapsed in (h1_elapsed, h2_elapsed):
                self.assertGreaterEqual(elapsed, 0.2)  # the black hole was tried first
                self.assertLess(elapsed, 10.0)        # and did not cost the connect timeout
            rec = p.wait_access_log(lambda r: r.get("target") == target)
            self.assertEqual(rec["resolved"], "%s:%d" % (ORIGIN, echo.port))

    def test_every_address_refused_502(self):
        """H1C-14: a name whose addresses all refuse: 502 connection_refused, at once."""
        with EchoOrigin(host=ORIGIN) as echo, \
                FakeDNS({"refused.test": [REFUSING, ALSO_REFUSING]}) as dns, \
                Proxy(["--dns-server", dns.addr]) as p:
            with self.assertRaises(TunnelRefused) as cm:
                open_tunnel(p.tcp_port, "refused.test:%d" % echo.port)
            r = cm.exception.resp
            self.assertEqual(r.status, 502)
            self.assertEqual(r.proxy_status().get("error"), "connection_refused")
            self.assertEqual(echo.accepted, 0)

    def test_refused_and_black_holed_504(self):
        """One address refuses, the other still hangs at the deadline: the dial ran out of time,
        so 504 connection_timeout (H1C-14) after --connect-timeout."""
        with EchoOrigin(host=ORIGIN) as echo, Blackhole(host=ALSO_REFUSING, port=echo.port) as bh, \
                FakeDNS({"mixed.test": [REFUSING, ALSO_REFUSING]}) as dns, \
                Proxy(["--dns-server", dns.addr, "--connect-timeout", "500ms"]) as p:
            self.assertTrue(bh.works, "could not black-hole %s here" % bh.addr)
            with H2Client(p.tcp_port) as cli:
                st = cli.wait_closed(cli.connect("mixed.test:%d" % echo.port), timeout=15)
                self.assertEqual(st.status, 504)
                self.assertIn("error=connection_timeout", st.header("proxy-status"))

    def test_happy_eyeballs_delay_option(self):
        """--happy-eyeballs-delay is validated (RFC 8305 section 5: at least 10 ms)."""
        r = subprocess.run([proxy_bin(), "--happy-eyeballs-delay", "5ms"], capture_output=True,
                           timeout=30, text=True)
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--happy-eyeballs-delay", r.stderr)


if __name__ == "__main__":
    main()
