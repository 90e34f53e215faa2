"""connect-udp (RFC 9298, capsules RFC 9297) through h2tunnel, over HTTP/2 (python-h2, PYH2-01)
and over HTTP/1.1 Upgrade (raw socket). Checklist IDs: UDP-01..UDP-03, UDP-05..UDP-07, UDP-09.

The big exchanges pace the sender (at most 32 datagrams outstanding) against a UDP echo thread
and match echoes by content (sequence number in the payload), asserting >= 99% came back."""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from h2util import H2Client  # noqa: E402
import xcutil  # noqa: E402
from harness import Proxy  # noqa: E402

N_DGRAMS = 10000
DRAIN = ["--drain-timeout", "2s"]


def has_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class UdpCase(unittest.TestCase):
    def h2_tunnel(self, p, c, host, port, template=xcutil.DEFAULT_TEMPLATE):
        sid = c.connect_udp("localhost:%d" % p.tls_port, xcutil.udp_path(host, port, template))
        st = c.wait_response(sid)
        return sid, st

    def ping(self, tun, payload=b"ping", tries=3):
        """One datagram round trip (retried: UDP may lose one)."""
        for _ in range(tries):
            tun.send_payload(payload)
            deadline = time.time() + 2
            while time.time() < deadline:
                got = tun.recv(0.05)
                if payload in got:
                    return True
                if tun.closed:
                    return False
        return False


class UdpOverH2(UdpCase):
    def test_10k_datagrams_and_observability(self):
        """UDP-01/05/06/07: 10,000 datagrams of 1..1400 bytes echoed (>= 99%, none corrupt);
        200 + capsule-protocol ?1 without content-length; access log and metrics counters."""
        with xcutil.UDPEcho() as e, Proxy(DRAIN) as p, H2Client(p.tls_port, tls_ca=p.ca, **xcutil.WINDOWS) as c:
            self.assertEqual(c.wait_settings().enable_connect_protocol, 1)  # XC-01
            sid, st = self.h2_tunnel(p, c, "127.0.0.1", e.port)
            self.assertEqual(st.status, 200, st.headers)
            self.assertEqual(st.headers.get("capsule-protocol"), "?1")
            for h in ("content-length", "content-type", "transfer-encoding"):
                self.assertNotIn(h, st.headers)
            r = xcutil.paced_exchange(xcutil.H2UdpTunnel(c, sid), count=N_DGRAMS)
            sys.stderr.write("\n  h2 connect-udp: %r (%.2f%% echoed)\n"
                             % (r, 100.0 * r["echoed"] / r["sent"]))
            self.assertEqual(r["sent"], N_DGRAMS)
            self.assertEqual(r["corrupt"], 0, r)
            self.assertGreaterEqual(r["echoed"], 0.99 * N_DGRAMS, r)
            c.send_all(sid, b"", end_stream=True)  # UDP has no half-close: the tunnel ends
            c.wait_closed(sid)
            rec = p.wait_access_log(lambda x: x.get("proto") == "connect-udp" and "dgrams_up" in x)
            self.assertEqual(rec["front"], "h2")
            self.assertEqual(rec["status"], 200)
            self.assertEqual(rec["target"], "127.0.0.1:%d" % e.port)
            self.assertGreaterEqual(rec["dgrams_up"], r["echoed"])
            self.assertGreaterEqual(rec["dgrams_down"], r["echoed"])
            self.assertLessEqual(rec["dgrams_up"], N_DGRAMS)
            self.assertGreater(rec["dgram_bytes_up"], 0)
            self.assertGreaterEqual(rec["dgram_bytes_down"], 0.98 * r["bytes"])
            # Every datagram sent was forwarded or counted as dropped.
            self.assertEqual(rec["dgrams_up"] + rec["drops_up"], N_DGRAMS, rec)
            m = p.metrics()
            self.assertEqual(m['h2tunnel_udp_datagrams_total{direction="up"}'], rec["dgrams_up"])
            self.assertEqual(m['h2tunnel_udp_datagrams_total{direction="down"}'], rec["dgrams_down"])
            self.assertEqual(m['h2tunnel_tunnels_opened_total{protocol="connect-udp"}'], 1)
            self.assertIn("h2tunnel_udp_datagrams_dropped_total", m)

    def test_private_target_403(self):
        """UDP-09: a loopback target under the default policy -> 403 destination_ip_prohibited."""
        with xcutil.UDPEcho() as e, Proxy(DRAIN, allow_loopback=False) as p, \
                H2Client(p.tls_port, tls_ca=p.ca, **xcutil.WINDOWS) as c:
            sid, st = self.h2_tunnel(p, c, "127.0.0.1", e.port)
            self.assertEqual(st.status, 403, st.headers)
            self.assertIn("error=destination_ip_prohibited", st.headers.get("proxy-status", ""))
            self.assertNotIn("capsule-protocol", st.headers)
            c.wait_closed(sid)
            self.assertEqual(e.count, 0)

    def test_bad_template_paths_400(self):
        """UDP-03: paths that do not match the template, empty/zero/huge ports, zone IDs -> 400;
        the connection stays usable."""
        bad = ["/.well-known/masque/udp/127.0.0.1/",
               "/.well-known/masque/udp/127.0.0.1//",
               "/.well-known/masque/udp//53/",
               "/.well-known/masque/udp/127.0.0.1/0/",
               "/.well-known/masque/udp/127.0.0.1/65536/",
               "/.well-known/masque/udp/fe80%3A%3A1%25eth0/53/",
               "/masque/udp/127.0.0.1/53/",
               "/.well-known/masque/udp/127.0.0.1/53/extra/"]
        with Proxy(DRAIN) as p, H2Client(p.tls_port, tls_ca=p.ca, **xcutil.WINDOWS) as c:
            for path in bad:
                sid = c.connect_udp("localhost:%d" % p.tls_port, path)
                st = c.wait_response(sid)
                self.assertEqual(st.status, 400, (path, st.headers))
                c.wait_closed(sid)
            self.assertTrue(c.ping_ok())

    def test_custom_query_template(self):
        """--udp-template with a query form; the default path is then refused (400)."""
        tmpl = "/masque?h={target_host}&p={target_port}"
        with xcutil.UDPEcho() as e, Proxy(DRAIN + ["--udp-template", tmpl]) as p, \
                H2Client(p.tls_port, tls_ca=p.ca, **xcutil.WINDOWS) as c:
            sid, st = self.h2_tunnel(p, c, "127.0.0.1", e.port, template=tmpl)
            self.assertEqual(st.status, 200, st.headers)
            self.assertTrue(self.ping(xcutil.H2UdpTunnel(c, sid)))
            sid2, st2 = self.h2_tunnel(p, c, "127.0.0.1", e.port)
            self.assertEqual(st2.status, 400, st2.headers)
            s, r = xcutil.h1_connect_udp(p.tcp_port, "127.0.0.1", e.port, template=tmpl)
            with s:
                self.assertEqual(r.status, 101, r)
                self.assertTrue(self.ping(xcutil.H1UdpTunnel(s), b"h1-query"))

    @unittest.skipUnless(has_ipv6_loopback(), "no IPv6 loopback")
    def test_ipv6_target(self):
        """UDP-03: an IPv6 literal with percent-encoded colons (::1 -> %3A%3A1)."""
        with xcutil.UDPEcho("::1") as e, Proxy(DRAIN) as p, H2Client(p.tls_port, tls_ca=p.ca, **xcutil.WINDOWS) as c:
            path = xcutil.udp_path("::1", e.port)
            self.assertIn("%3A%3A1", path)
            sid = c.connect_udp("localhost:%d" % p.tls_port, path)
            st = c.wait_response(sid)
            self.assertEqual(st.status, 200, st.headers)
            self.assertTrue(self.ping(xcutil.H2UdpTunnel(c, sid), b"v6"))
            c.send_all(sid, b"", end_stream=True)
            rec = p.wait_access_log(lambda x: x.get("proto") == "connect-udp" and "dgrams_up" in x)
            self.assertEqual(rec["target"], "[::1]:%d" % e.port)

    def test_capsule_handling(self):
        """UDP-06: an unknown capsule type (0x2a) is skipped; a DATAGRAM split at every byte
        boundary is reassembled; a context-ID-1 datagram is dropped (drops_up in the access log)
        and the tunnel keeps working."""
        with xcutil.UDPEcho() as e, Proxy(DRAIN) as p, H2Client(p.tls_port, tls_ca=p.ca, **xcutil.WINDOWS) as c:
            sid, st = self.h2_tunnel(p, c, "127.0.0.1", e.port)
            self.assertEqual(st.status, 200)
            tun = xcutil.H2UdpTunnel(c, sid)
            self.assertTrue(self.ping(tun, b"first"))
            # Unknown type before a DATAGRAM, in one DATA frame.
            tun.send_raw(xcutil.capsule(0x2a, b"abc") + xcutil.datagram_capsule(b"after-unknown"))
            got = []
            deadline = time.time() + 3
            while b"after-unknown" not in got and time.time() < deadline:
                got += tun.recv(0.05)
            self.assertIn(b"after-unknown", got)
            # One DATAGRAM in one-byte DATA frames.
            for b in xcutil.datagram_capsule(b"split-at-every-byte"):
                c.send_all(sid, bytes([b]))
            got = []
            deadline = time.time() + 3
            while b"split-at-every-byte" not in got and time.time() < deadline:
                got += tun.recv(0.05)
            self.assertIn(b"split-at-every-byte", got)
            # Context ID 1: dropped, never reaches the origin.
            before = e.count
            tun.send_raw(xcutil.datagram_capsule(b"ctx1-must-not-arrive", context_id=1))
            self.assertTrue(self.ping(tun, b"after-ctx1"))
            self.assertEqual(e.count, before + 1)  # only the ping (no loss on loopback here)
            c.send_all(sid, b"", end_stream=True)
            c.wait_closed(sid)
            rec = p.wait_access_log(lambda x: x.get("proto") == "connect-udp" and "dgrams_up" in x)
            self.assertEqual(rec["drops_up"], 1, rec)
            self.assertEqual(rec["dgrams_up"], 4, rec)
            self.assertEqual(p.metrics()["h2tunnel_udp_datagrams_dropped_total"], 1)

    def test_malformed_capsule_ends_tunnel(self):
        """UDP-06 / RFC 9297 §3.3: a capsule length beyond the maximum is malformed: the stream
        is reset with PROTOCOL_ERROR and the connection survives."""
        with xcutil.UDPEcho() as e, Proxy(DRAIN) as p, H2Client(p.tls_port, tls_ca=p.ca, **xcutil.WINDOWS) as c:
            sid, st = self.h2_tunnel(p, c, "127.0.0.1", e.port)
            self.assertEqual(st.status, 200)
            self.assertTrue(self.ping(xcutil.H2UdpTunnel(c, sid)))
            c.send_all(sid, b"\x00" + b"\xff" * 8)  # DATAGRAM, Length = 2^62-1
            c.wait_closed(sid, timeout=5)
            self.assertEqual(st.reset, 1, "expected RST_STREAM(PROTOCOL_ERROR), got %r" % st.reset)
            self.assertTrue(c.ping_ok())
            rec = p.wait_access_log(lambda x: x.get("proto") == "connect-udp" and "dgrams_up" in x)
            self.assertEqual(rec["close"], "protocol_error")

    def test_truncated_and_oversized_capsules(self):
        """UDP-06: a capsule cut short by END_STREAM, and a 70,000-byte DATAGRAM (over the
        65,527-byte UDP maximum), each end the stream with RST_STREAM(PROTOCOL_ERROR)."""
        with xcutil.UDPEcho() as e, Proxy(DRAIN) as p, H2Client(p.tls_port, tls_ca=p.ca, **xcutil.WINDOWS) as c:
            sid, st = self.h2_tunnel(p, c, "127.0.0.1", e.port)
            self.assertEqual(st.status, 200)
            c.send_all(sid, xcutil.datagram_capsule(b"x" * 100)[:50], end_stream=True)
            c.wait_closed(sid, timeout=5)
            self.assertEqual(st.reset, 1, "truncated: expected PROTOCOL_ERROR, got %r" % st.reset)
            sid, st = self.h2_tunnel(p, c, "127.0.0.1", e.port)
            self.assertEqual(st.status, 200)
            c.send_all(sid, xcutil.datagram_capsule(b"y" * 70000))
            c.wait_closed(sid, timeout=5)
            self.assertEqual(st.reset, 1, "oversized: expected PROTOCOL_ERROR, got %r" % st.reset)
            self.assertTrue(c.ping_ok())
            self.assertEqual(e.count, 0)
            for _ in range(50):
                recs = [x for x in p.access_log() if x.get("proto") == "connect-udp"]
                if len(recs) >= 2:
                    break
                time.sleep(0.05)
            self.assertEqual([x["close"] for x in recs], ["protocol_error"] * 2)

    def test_optimistic_datagram(self):
        """UDP-08: on HTTP/2 a DATAGRAM sent right behind the HEADERS, before the 200, is
        buffered (or dropped) but never breaks the stream."""
        with xcutil.UDPEcho() as e, Proxy(DRAIN) as p, H2Client(p.tls_port, tls_ca=p.ca, **xcutil.WINDOWS) as c:
            sid = c.connect_udp("localhost:%d" % p.tls_port, xcutil.udp_path("127.0.0.1", e.port))
            c.send_all(sid, xcutil.datagram_capsule(b"optimistic"))
            st = c.wait_response(sid)
            self.assertEqual(st.status, 200)
            tun = xcutil.H2UdpTunnel(c, sid)
            got = []
            deadline = time.time() + 2
            while b"optimistic" not in got and time.time() < deadline:
                got += tun.recv(0.05)
            sys.stderr.write("\n  optimistic datagram echoed: %s\n" % (b"optimistic" in got))
            self.assertTrue(self.ping(tun, b"after-optimistic"))

    def test_icmp_unreachable_closes_stream(self):
        """UDP-07: datagrams to a closed UDP port (ICMP port unreachable) close the stream."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as hole:
            hole.bind(("127.0.0.1", 0))
            port = hole.getsockname()[1]
        with Proxy(DRAIN) as p, H2Client(p.tls_port, tls_ca=p.ca, **xcutil.WINDOWS) as c:
            sid, st = self.h2_tunnel(p, c, "127.0.0.1", port)
            self.assertEqual(st.status, 200)
            tun = xcutil.H2UdpTunnel(c, sid)
            for _ in range(5):
                tun.send_payload(b"anyone?")
                tun.recv(0.3)
                if st.closed:
                    break
            closed = st.closed
            if not closed:
                c.send_all(sid, b"", end_stream=True)
                c.wait_closed(sid)
            self.assertTrue(closed, "stream still open after ICMP port unreachable")

    def test_udp_idle_timeout(self):
        """--udp-idle-timeout 1s ends an idle tunnel (UDP-07); a busy one outlives it."""
        with xcutil.UDPEcho() as e, Proxy(DRAIN + ["--udp-idle-timeout", "1s"]) as p, \
                H2Client(p.tls_port, tls_ca=p.ca, **xcutil.WINDOWS) as c:
            sid, st = self.h2_tunnel(p, c, "127.0.0.1", e.port)
            busy, bst = self.h2_tunnel(p, c, "127.0.0.1", e.port)
            self.assertEqual((st.status, bst.status), (200, 200))
            t0 = time.time()
            self.assertTrue(self.ping(xcutil.H2UdpTunnel(c, sid)))
            btun = xcutil.H2UdpTunnel(c, busy)
            for i in range(8):  # 2 s of traffic every 250 ms on the busy stream
                self.assertTrue(self.ping(btun, b"busy-%d" % i), i)
                time.sleep(0.25)
            self.assertTrue(st.closed)
            self.assertFalse(bst.closed)
            self.assertLess(time.time() - t0, 10)
            rec = p.wait_access_log(lambda x: x.get("proto") == "connect-udp" and "dgrams_up" in x)
            self.assertEqual(rec["close"], "idle_timeout")
            self.assertGreaterEqual(rec["duration_ms"], 900)
            self.assertLess(rec["duration_ms"], 3000)
            self.assertTrue(c.ping_ok())
            c.send_all(busy, b"", end_stream=True)
            c.wait_closed(busy)


class UdpOverH1(UdpCase):
    def test_10k_datagrams_upgrade(self):
        """UDP-02: GET + Upgrade: connect-udp -> 101 (Upgrade, Capsule-Protocol: ?1); 10,000
        datagrams over the TLS listener echoed (>= 99%); access log front h1."""
        with xcutil.UDPEcho() as e, Proxy(DRAIN) as p:
            s, r = xcutil.h1_connect_udp(p.tls_port, "127.0.0.1", e.port, tls_ca=p.ca)
            with s:
                self.assertEqual(r.status, 101, r)
                self.assertEqual(r.header("upgrade"), "connect-udp")
                self.assertEqual(r.header("capsule-protocol"), "?1")
                self.assertEqual(r.header("connection", "").lower(), "upgrade")
                res = xcutil.paced_exchange(xcutil.H1UdpTunnel(s), count=N_DGRAMS, seed=11)
                sys.stderr.write("\n  h1 connect-udp: %r (%.2f%% echoed)\n"
                                 % (res, 100.0 * res["echoed"] / res["sent"]))
                self.assertEqual(res["corrupt"], 0, res)
                self.assertGreaterEqual(res["echoed"], 0.99 * N_DGRAMS, res)
            rec = p.wait_access_log(lambda x: x.get("proto") == "connect-udp" and "dgrams_up" in x)
            self.assertEqual(rec["front"], "h1")
            self.assertEqual(rec["status"], 101)
            self.assertGreaterEqual(rec["dgrams_down"], res["echoed"])

    def test_errors(self):
        """HTTP/1.1: private target -> 403, bad path -> 400, both with proxy-status and close."""
        with Proxy(DRAIN, allow_loopback=False) as p:
            s, r = xcutil.h1_connect_udp(p.tcp_port, "127.0.0.1", 5353)
            s.close()
            self.assertEqual(r.status, 403, r)
            self.assertEqual(r.proxy_status()["error"], "destination_ip_prohibited")
            s, r = xcutil.h1_connect_udp(p.tcp_port, "127.0.0.1", 0)
            s.close()
            self.assertEqual(r.status, 400, r)

    def test_capsules_and_malformed(self):
        """Unknown capsule skipped, context 1 dropped, then a malformed capsule closes the
        connection; drops_up and close reason in the access log."""
        with xcutil.UDPEcho() as e, Proxy(DRAIN) as p:
            s, r = xcutil.h1_connect_udp(p.tcp_port, "127.0.0.1", e.port)
            with s:
                self.assertEqual(r.status, 101)
                tun = xcutil.H1UdpTunnel(s)
                tun.send_raw(xcutil.capsule(0x2a, b"xyz") + xcutil.capsule(0x3fff, b"")
                             + xcutil.datagram_capsule(b"ignored", context_id=1))
                self.assertTrue(self.ping(tun, b"h1-after"))
                s.sendall(b"\x00" + b"\xff" * 8)
                self.assertEqual(harness.recv_until_eof(s, timeout=5), b"")
            rec = p.wait_access_log(lambda x: x.get("proto") == "connect-udp" and "dgrams_up" in x)
            self.assertEqual(rec["drops_up"], 1, rec)
            self.assertEqual(rec["close"], "protocol_error")


if __name__ == "__main__":
    xcutil.main()
