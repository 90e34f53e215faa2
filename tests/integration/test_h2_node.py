"""Node.js node:http2 as the client: one session, 200 concurrent CONNECT streams through an echo
origin plus /healthz GETs on the same session (checklist NODE-01, H2C-16, H2-06, H2-03)."""
import json
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import EchoOrigin, KiB, Proxy, main, needs_tool, raise_nofile  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NODE = shutil.which("node")
SCRIPT = os.path.join(HERE, "node", "h2_many_tunnels.js")


@needs_tool(NODE, "node (nodejs)")
class NodeH2Test(unittest.TestCase):
    def run_node(self, proxy, echo, n, lo, hi, gets, tls=True):
        url = ("https://127.0.0.1:%d" % proxy.tls_port) if tls else ("http://127.0.0.1:%d" % proxy.tcp_port)
        r = subprocess.run([NODE, SCRIPT, url, proxy.ca, echo.addr, str(n), str(lo), str(hi), str(gets)],
                           capture_output=True, text=True, timeout=180)
        lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
        self.assertTrue(lines, "node printed no summary: rc=%d\n%s\n%s" % (r.returncode, r.stdout, r.stderr))
        return r.returncode, json.loads(lines[-1]), r.stderr

    def test_node01_h2c16_200_concurrent_tunnels_and_gets(self):
        """200 CONNECT streams at once (64..256 KiB each, distinct random bytes), 40 GETs interleaved:
        every tunnel echoes exactly its bytes and ends cleanly, every GET answers ok."""
        raise_nofile(4096)
        with Proxy() as p, EchoOrigin() as echo:
            rc, s, err = self.run_node(p, echo, 200, 64 * KiB, 256 * KiB, 40)
            self.assertEqual(rc, 0, "%r\n%s" % (s, err[-3000:]))
            self.assertTrue(s["enableConnectProtocol"], s)  # H2-03 / NG-02
            self.assertEqual(s["maxConcurrentStreams"], 256)
            self.assertEqual(s["tunnels_ok"], 200, s)
            self.assertEqual(s["gets_ok"], 40, s)
            self.assertEqual(s["tunnels_bad"], [])
            self.assertEqual(s["errors"], [])
            self.assertEqual(echo.accepted, 200)
            echo.wait_finished(200, timeout=20)
            self.assertEqual(echo.errors, [])
            m = p.metrics()
            self.assertEqual(m['h2tunnel_tunnels_opened_total{protocol="connect"}'], 200)
            self.assertGreaterEqual(m["h2tunnel_h2_streams_total"], 240)
            # every tunnel was logged as an h2 CONNECT that both sides ended with FIN
            recs = [r for r in p.access_log() if r.get("front") == "h2" and r.get("status") == 200]
            self.assertEqual(len(recs), 200)

    def test_node_h2c_prior_knowledge_tunnels(self):
        """The same through the cleartext listener (h2c prior knowledge), 50 streams."""
        with Proxy() as p, EchoOrigin() as echo:
            rc, s, err = self.run_node(p, echo, 50, 1, 64 * KiB, 10, tls=False)
            self.assertEqual(rc, 0, "%r\n%s" % (s, err[-3000:]))
            self.assertEqual(s["tunnels_ok"], 50, s)
            self.assertEqual(s["gets_ok"], 10, s)


if __name__ == "__main__":
    main()
