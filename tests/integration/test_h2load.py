"""h2load (nghttp2-client 1.52) against the local endpoints over h2 (TLS, ALPN) and h2c
(checklist H2L-01..H2L-03). h2load cannot tunnel (H2L-01), so it loads the ordinary-request path
and, with -H ':method: CONNECT', generates malformed CONNECTs that must all be answered with a
stream error (H2C-01, DOS-02). Throughput is printed, never asserted."""
import os
import re
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import EchoOrigin, Proxy, main, needs_tool  # noqa: E402
from h2util import H2Client, echo_roundtrip  # noqa: E402

H2LOAD = shutil.which("h2load")


def run_h2load(args, timeout=240):
    r = subprocess.run([H2LOAD] + args, capture_output=True, text=True, timeout=timeout)
    out = r.stdout
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
                  r"(\d+) errored, (\d+) timeout", out)
    if not m:
        raise AssertionError("unexpected h2load output (rc %d):\n%s\n%s" % (r.returncode, out, r.stderr))
    keys = ("total", "started", "done", "succeeded", "failed", "errored", "timeout")
    res = dict(zip(keys, map(int, m.groups())))
    st = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    res["2xx"], res["4xx"] = int(st.group(1)), int(st.group(3))
    rps = re.search(r"finished in [^,]+, ([\d.]+) req/s", out)
    res["rps"] = float(rps.group(1)) if rps else 0.0
    proto = re.search(r"Application protocol: (\S+)", out)
    res["proto"] = proto.group(1) if proto else None
    res["out"] = out
    return res


@needs_tool(H2LOAD, "h2load (nghttp2-client)")
class H2LoadTest(unittest.TestCase):
    def test_h2l03_healthz_tls_and_h2c(self):
        """H2L-03(b): 20 000 GET /healthz over 10 connections x 10 streams, TLS (ALPN h2) and h2c:
        all succeed with 200, none failed or errored."""
        with Proxy() as p, EchoOrigin() as echo:
            for name, url in (("h2", "https://127.0.0.1:%d/healthz" % p.tls_port),
                              ("h2c", "http://127.0.0.1:%d/healthz" % p.tcp_port)):
                r = run_h2load(["-c", "10", "-m", "10", "-n", "20000", url])
                sys.stderr.write("\n  [h2load %s] %d succeeded, %.0f req/s (sanitizer build)\n"
                                 % (name, r["succeeded"], r["rps"]))
                self.assertEqual(r["proto"], "h2" if name == "h2" else "h2c", r["out"])
                self.assertEqual((r["done"], r["succeeded"], r["failed"], r["errored"], r["timeout"]),
                                 (20000, 20000, 0, 0, 0), r["out"])
                self.assertEqual(r["2xx"], 20000)
            m = p.metrics()
            self.assertGreaterEqual(m["h2tunnel_local_requests_total"], 40000)
            self.assertGreaterEqual(m['h2tunnel_connections_by_protocol_total{protocol="h2"}'], 20)
            # tunnels still fine afterwards
            with H2Client(p.tls_port, tls_ca=p.ca) as cli:
                sid = cli.open_tunnel(echo.addr)
                self.assertEqual(echo_roundtrip(cli, sid, b"after load"), b"after load")

    def test_h2l01_malformed_connect_flood(self):
        """H2L-01 / H2C-01 / DOS-02: h2load's CONNECT carries :scheme and :path, so every request is
        malformed and must be reset (errored), none succeeded; the proxy keeps serving."""
        with Proxy() as p, EchoOrigin() as echo:
            r = run_h2load(["-c", "2", "-m", "10", "-n", "2000", "-H", ":method: CONNECT",
                            "https://127.0.0.1:%d/" % p.tls_port])
            sys.stderr.write("\n  [h2load CONNECT] %d errored, %d failed, %d succeeded\n"
                             % (r["errored"], r["failed"], r["succeeded"]))
            self.assertEqual(r["succeeded"], 0, r["out"])
            self.assertEqual((r["failed"], r["errored"]), (2000, 2000), r["out"])  # errored is part of failed
            self.assertEqual(echo.accepted, 0)
            with H2Client(p.tls_port, tls_ca=p.ca) as cli:
                sid = cli.open_tunnel(echo.addr)
                self.assertEqual(echo_roundtrip(cli, sid, b"still serving"), b"still serving")


if __name__ == "__main__":
    main()
