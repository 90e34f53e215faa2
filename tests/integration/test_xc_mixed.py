"""100 connect-udp streams and 100 CONNECT streams at once on ONE HTTP/2 connection (python-h2,
PYH2-01): every UDP stream exchanges a few datagrams with a UDP echo, every TCP stream echoes
some KiB through a TCP echo; all must be correct. Checklist IDs: UDP-01, UDP-06, H2C-05, H2C-09."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from h2util import H2Client  # noqa: E402
import xcutil  # noqa: E402
from harness import EchoOrigin, Proxy  # noqa: E402

N_UDP = 100
N_TCP = 100
DGRAMS_PER_STREAM = 4
TCP_BYTES = 24 * 1024


class MixedOnOneConnection(unittest.TestCase):
    def test_100_udp_and_100_connect(self):
        with xcutil.UDPEcho() as ue, EchoOrigin() as te, \
                Proxy(["--h2-max-streams", "256", "--drain-timeout", "2s"]) as p, \
                H2Client(p.tls_port, tls_ca=p.ca, **xcutil.WINDOWS) as c:
            settings = c.wait_settings()
            self.assertEqual(settings.enable_connect_protocol, 1)
            self.assertGreaterEqual(settings.max_concurrent_streams, N_UDP + N_TCP)
            udp, tcp = {}, {}
            # Interleave the two kinds while opening.
            for i in range(max(N_UDP, N_TCP)):
                if i < N_UDP:
                    sid = c.connect_udp("localhost:%d" % p.tls_port,
                                        xcutil.udp_path("127.0.0.1", ue.port))
                    udp[sid] = i
                if i < N_TCP:
                    tcp[c.connect(te.addr)] = i
            c.wait(lambda: all(c.streams[s].status is not None or c.streams[s].closed
                               for s in list(udp) + list(tcp)), 30, "200 responses")
            bad = {s: (c.streams[s].status, c.streams[s].reset) for s in list(udp) + list(tcp)
                   if c.streams[s].status != 200}
            self.assertEqual(bad, {})
            for s in udp:
                self.assertEqual(c.streams[s].headers.get("capsule-protocol"), "?1")

            def dgram(i, k):
                return b"u%03d-d%d-" % (i, k) + bytes([i]) * (50 + 10 * k)

            expect_udp = {s: {dgram(i, k) for k in range(DGRAMS_PER_STREAM)} for s, i in udp.items()}
            got_udp = {s: set() for s in udp}
            readers = {s: xcutil.CapsuleReader() for s in udp}
            expect_tcp = {s: b"".join(harness.prng_chunks(1000 + i, TCP_BYTES)) for s, i in tcp.items()}

            # Send everything: datagrams on each UDP stream, payload + END_STREAM on each TCP one.
            for s, i in udp.items():
                c.send_all(s, b"".join(xcutil.datagram_capsule(d) for d in sorted(expect_udp[s])))
            for s, i in tcp.items():
                c.send_all(s, expect_tcp[s], end_stream=True)

            def collect():
                for s in udp:
                    st = c.streams[s]
                    if st.data:
                        data = bytes(st.data)
                        st.data.clear()
                        got_udp[s].update(xcutil.CapsuleReader.udp_payloads(readers[s].feed(data)))

            def done():
                collect()
                return (all(got_udp[s] >= expect_udp[s] for s in udp)
                        and all(c.streams[s].ended for s in tcp))

            resends = 0
            deadline = time.time() + 60
            last_resend = time.time()
            while not done() and time.time() < deadline:
                c.pump(0.05)
                if time.time() - last_resend > 1.0 and resends < 5:
                    # UDP may lose a datagram: resend only what has not come back yet.
                    resends += 1
                    last_resend = time.time()
                    for s in udp:
                        missing = expect_udp[s] - got_udp[s]
                        if missing:
                            c.send_all(s, b"".join(xcutil.datagram_capsule(d) for d in missing))
            sys.stderr.write("\n  mixed: udp streams complete %d/%d, tcp streams ended %d/%d, "
                             "resend rounds %d, udp echo count %d\n"
                             % (sum(got_udp[s] >= expect_udp[s] for s in udp), N_UDP,
                                sum(c.streams[s].ended for s in tcp), N_TCP, resends, ue.count))
            incomplete = {udp[s]: len(expect_udp[s] - got_udp[s]) for s in udp
                          if not got_udp[s] >= expect_udp[s]}
            self.assertEqual(incomplete, {}, "udp streams missing datagrams")
            for s in udp:
                self.assertEqual(got_udp[s], expect_udp[s], "foreign datagram on stream %d" % s)
            resets = {s: c.streams[s].reset for s in tcp if c.streams[s].reset is not None}
            if resets:  # say why: the proxy's own account of those tunnels
                recs = [x for x in p.access_log() if x.get("proto") == "connect"
                        and x.get("close") not in ("client_fin", "upstream_fin")]
                self.fail("tcp streams reset: %r\naccess log: %r\nproxy stderr tail:\n%s"
                          % (resets, recs, p.stderr()[-3000:]))
            for s, i in tcp.items():
                st = c.streams[s]
                self.assertIsNone(st.reset, (s, st.reset))
                self.assertTrue(st.ended, s)
                self.assertEqual(len(st.data), TCP_BYTES, s)
                self.assertEqual(bytes(st.data), expect_tcp[s], "tcp echo corrupt on stream %d" % s)
            # Close the UDP streams and check the books.
            for s in udp:
                c.send_all(s, b"", end_stream=True)
            c.wait(lambda: all(c.streams[s].closed for s in udp), 20, "udp streams closed")
            self.assertIsNone(c.goaway)
            self.assertTrue(c.ping_ok())
            want = lambda x: x.get("proto") in ("connect", "connect-udp") and "bytes_up" in x  # noqa: E731
            deadline = time.time() + 10
            while len([x for x in p.access_log() if want(x)]) < N_UDP + N_TCP and time.time() < deadline:
                time.sleep(0.1)
            recs = [x for x in p.access_log() if want(x)]
            self.assertEqual(sum(x["proto"] == "connect-udp" for x in recs), N_UDP)
            self.assertEqual(sum(x["proto"] == "connect" for x in recs), N_TCP)
            self.assertEqual(len({x["client"] for x in recs}), 1)  # one client connection
            for x in recs:
                if x["proto"] == "connect":
                    self.assertEqual((x["bytes_up"], x["bytes_down"]), (TCP_BYTES, TCP_BYTES), x)
                else:
                    self.assertGreaterEqual(x["dgrams_down"], DGRAMS_PER_STREAM, x)
            m = p.metrics()
            self.assertEqual(m['h2tunnel_tunnels_opened_total{protocol="connect-udp"}'], N_UDP)
            self.assertEqual(m['h2tunnel_tunnels_opened_total{protocol="connect"}'], N_TCP)
            self.assertGreaterEqual(m['h2tunnel_udp_datagrams_total{direction="down"}'],
                                    N_UDP * DGRAMS_PER_STREAM)
            self.assertEqual(len(ue.peers), N_UDP)  # one UDP socket per stream (UDP-07)


if __name__ == "__main__":
    xcutil.main()
