"""Status page, histograms and PAC file (issue 13 items 4 and 5) against the real binary.

- Histograms: tunnels opened over h1 (raw CONNECT) and h2 (python3-h2 CONNECT) show up in
  h2tunnel_tunnel_setup_seconds{front,protocol} at once, and in
  h2tunnel_tunnel_duration_seconds once they end; buckets cumulative, +Inf == _count.
- /status.json on two workers: the tunnels each worker lists (target, front end, bytes each way,
  age), grouped by target and user, and its totals agree with /metrics; a refusal (H1C-12: port not
  allowed, 403) appears in the recent rejections with its reason; the configuration version.
- Who sees it: a loopback listener when there is no admin listener; with one (?admin), only it
  (403 on the client listener); a listener bound to 0.0.0.0 never.
- /status in headless Chromium (CHR-06 style, --dump-dom after the page's fetch ran): the
  numbers of /status.json rendered in the tables, and no console message at all.
- /proxy.pac: Content-Type application/x-ns-proxy-autoconfig, run by node (new Function, then
  FindProxyForURL on sample URLs with the PAC helpers stubbed), and used by Chromium
  --proxy-pac-url: an https origin name (origin.test, which only the proxy's fake DNS knows)
  loaded through the proxy, as the access log shows.
"""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness as H  # noqa: E402
from harness import EchoOrigin, FakeDNS, HTTPSOrigin, Proxy, TunnelRefused, free_port, http_get  # noqa: E402
from h2util import H2Client  # noqa: E402

NODE = shutil.which("node")
CHROMIUM = shutil.which("chromium")


def get_json(port, path="/status.json"):
    r = http_get(port, path)
    assert r.status == 200, r
    assert r.header("content-type") == "application/json", r.headers
    return json.loads(r.body)


def wait_for(pred, what, timeout=30):
    """Polls pred() (returning a value or None) until it returns something: snapshots are taken
    once per --status-interval, and the machine may be busy."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError("timed out waiting for " + what)


def run(argv, timeout=120, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout, **kw)


class StatusAndHistograms(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = EchoOrigin()
        cls.proxy = Proxy(["--status-interval", "200ms"], workers=2, tls=False)
        cls.proxy.start()

    @classmethod
    def tearDownClass(cls):
        cls.proxy.stop()
        cls.origin.close()

    def test_tunnels_in_status_json_histograms_and_metrics_agree(self):
        p = self.proxy
        before = p.metrics()
        setup_h1 = 'h2tunnel_tunnel_setup_seconds_count{front="h1",protocol="connect"}'
        setup_h2 = 'h2tunnel_tunnel_setup_seconds_count{front="h2",protocol="connect"}'
        dur_h1 = 'h2tunnel_tunnel_duration_seconds_count{front="h1",protocol="connect"}'
        # h1: raw CONNECT, 3000 bytes echoed.
        s = p.tunnel(self.origin.addr)
        s.sendall(b"a" * 3000)
        got = H.recv_exact(s, 3000)
        self.assertEqual(got, b"a" * 3000)
        # h2: python3-h2, 5000 bytes echoed on a stream.
        h2 = H2Client(p.tcp_port)
        try:
            sid = h2.open_tunnel(self.origin.addr)
            h2.send_all(sid, b"b" * 5000)
            h2.wait(lambda: len(h2.streams[sid].data) >= 5000, what="echo on h2")
            # A refusal: port 1 is not allowed once --allow-ports is narrowed... here it is allowed
            # ('*'), so use a closed port: 502 connection_refused with its reason.
            closed = free_port()
            with self.assertRaises(TunnelRefused) as cm:
                p.tunnel("127.0.0.1:%d" % closed)
            self.assertEqual(cm.exception.resp.status, 502)

            m = p.metrics()
            # The setup of each tunnel is observed once it answered 200 (before it ends).
            self.assertEqual(m[setup_h1] - before.get(setup_h1, 0), 1)
            self.assertEqual(m[setup_h2] - before.get(setup_h2, 0), 1)
            inf = 'h2tunnel_tunnel_setup_seconds_bucket{front="h1",protocol="connect",le="+Inf"}'
            self.assertEqual(m[inf], m[setup_h1])
            le10 = 'h2tunnel_tunnel_setup_seconds_bucket{front="h1",protocol="connect",le="10"}'
            self.assertEqual(m[le10], m[setup_h1])  # a loopback dial takes far less than 10 s
            self.assertGreater(m['h2tunnel_tunnel_setup_seconds_sum{front="h1",protocol="connect"}'], 0)

            def both_listed():
                j = get_json(p.tcp_port)
                ts = [t for t in j["tunnels"] if t["target"] == self.origin.addr]
                # Each worker's snapshot has its own age: wait for the refusal's too.
                refused = [r for r in j["rejections"] if r["target"] == "127.0.0.1:%d" % closed]
                if len(ts) == 2 and {t["bytes_down"] for t in ts} == {3000, 5000} and refused:
                    return j
                return None

            j = wait_for(both_listed, "both tunnels and the refusal in /status.json")
            ts = {t["front"]: t for t in j["tunnels"] if t["target"] == self.origin.addr}
            self.assertEqual(ts["h1"]["bytes_up"], 3000)
            self.assertEqual(ts["h1"]["bytes_down"], 3000)
            self.assertEqual(ts["h2"]["bytes_up"], 5000)
            self.assertEqual(ts["h2"]["bytes_down"], 5000)
            for t in ts.values():
                self.assertEqual(t["protocol"], "connect")
                self.assertIsNone(t["user"])
                self.assertTrue(t["client"].startswith("127.0.0.1:"))
                self.assertGreaterEqual(t["age_ms"], 0)
            tgt = [g for g in j["by_target"] if g["target"] == self.origin.addr]
            self.assertEqual(tgt, [{"target": self.origin.addr, "tunnels": 2, "bytes_up": 8000,
                                    "bytes_down": 8000, "oldest_ms": tgt[0]["oldest_ms"]}])
            anon = [g for g in j["by_user"] if g["user"] is None]
            self.assertEqual(anon[0]["tunnels"], 2)
            self.assertEqual(j["top_talkers"][0]["front"], "h2")  # 10000 bytes beat 6000
            self.assertEqual(j["config_version"], 1)
            self.assertEqual(len(j["workers"]), 2)
            self.assertEqual(sum(w["tunnels"] for w in j["workers"]), 2)
            self.assertFalse(j["truncated"])
            # Against /metrics (nothing moves in between: both tunnels are idle).
            m = p.metrics()
            act = sum(v for k, v in m.items() if k.startswith("h2tunnel_tunnels_active{"))
            self.assertEqual(j["totals"]["tunnels_active"], act)
            self.assertEqual(act, 2)
            opened = sum(v for k, v in m.items() if k.startswith("h2tunnel_tunnels_opened_total{"))
            self.assertEqual(j["totals"]["tunnels_opened"], opened)
            self.assertEqual(j["totals"]["bytes_up"], m['h2tunnel_tunnel_bytes_total{direction="up"}'])
            self.assertEqual(j["totals"]["bytes_down"], m['h2tunnel_tunnel_bytes_total{direction="down"}'])
            self.assertEqual(opened, m[setup_h1] + m[setup_h2])
            # The refusal, with its reason.
            rej = [r for r in j["rejections"] if r["target"] == "127.0.0.1:%d" % closed]
            self.assertEqual(len(rej), 1, j["rejections"])
            self.assertEqual(rej[0]["status"], 502)
            self.assertEqual(rej[0]["error"], "connection_refused")
            self.assertEqual(rej[0]["front"], "h1")
        finally:
            h2.close()
            s.close()
        # Ended: the duration histogram has them; the status lists have not.
        wait_for(lambda: p.metrics().get(dur_h1, 0) - before.get(dur_h1, 0) >= 1 or None, "h1 duration")
        wait_for(lambda: not [t for t in get_json(p.tcp_port)["tunnels"] if t["target"] == self.origin.addr]
                 or None, "tunnels gone from /status.json")

    def test_page_is_html_and_methods(self):
        r = http_get(self.proxy.tcp_port, "/status")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("content-type"), "text/html; charset=utf-8")
        body = r.body.decode()
        self.assertIn("fetch('/status.json'", body)
        # No external resource: nothing but the page's own origin is referenced (the icon is data:).
        for bad in ("http://", "https://", "src=", "//"):
            self.assertNotIn(bad, body)
        raw, _ = H.raw_exchange(self.proxy.tcp_port, b"POST /status.json HTTP/1.1\r\nHost: x\r\n"
                                b"Content-Length: 0\r\nConnection: close\r\n\r\n")
        self.assertTrue(raw.startswith(b"HTTP/1.1 405"), raw[:100])

    @H.needs_tool(CHROMIUM, "chromium")
    def test_page_in_headless_chromium(self):
        p = self.proxy
        s = p.tunnel(self.origin.addr)
        try:
            s.sendall(b"c" * 4321)
            H.recv_exact(s, 4321)
            wait_for(lambda: any(t["bytes_down"] == 4321 for t in get_json(p.tcp_port)["tunnels"]) or None,
                     "the tunnel listed")
            profile = tempfile.mkdtemp(prefix="h2t-chromium-")
            try:
                r = run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                         "--disable-background-networking", "--user-data-dir=" + profile,
                         "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000",
                         "--dump-dom", "http://127.0.0.1:%d/status" % p.tcp_port], timeout=180)
            finally:
                shutil.rmtree(profile, ignore_errors=True)
            dom = r.stdout.decode(errors="replace")
            err = r.stderr.decode(errors="replace")
            self.assertIn('<b id="cfgver">1</b>', dom, err[-3000:])
            # The tunnel's row in "by target" and in the top talkers, numbers as rendered.
            self.assertIn("<td>%s</td>" % self.origin.addr, dom)
            self.assertIn('<td class="n">4321</td>', dom)
            self.assertIn('<span id="err"></span>', dom)  # no "(refresh failed: ...)"
            self.assertNotIn('<span id="updated">never</span>', dom)
            j = get_json(p.tcp_port)
            self.assertIn('<td class="n">%d</td>' % j["totals"]["tunnels_opened"], dom)
            # No console message: an error or a warning would be printed as CONSOLE(...) / console.
            console = [ln for ln in err.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]
            self.assertEqual(console, [], err[-3000:])
        finally:
            s.close()


class LimitsNearCeiling(unittest.TestCase):
    def test_counts_against_ceilings(self):
        """Two tunnels of one client against per-client 2 (near: 100 %) and instance 10 (20 %),
        the same counts as the limits module's 429 uses (a third gets 429)."""
        cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        cfg.write("limits:\n  per-client: { tunnels: 2 }\n  instance: { tunnels: 10 }\n")
        cfg.close()
        origin = EchoOrigin()
        try:
            with Proxy(["--config", cfg.name, "--status-interval", "200ms"], tls=False) as p:
                a = p.tunnel(origin.addr)
                b = p.tunnel(origin.addr)
                with self.assertRaises(TunnelRefused) as cm:
                    p.tunnel(origin.addr)
                self.assertEqual(cm.exception.resp.status, 429)

                def listed():
                    # Each worker publishes its own snapshot every 200 ms: the tunnels and the
                    # rejection may sit on different workers, so wait for both.
                    j = get_json(p.tcp_port)
                    tunnels = [t for t in j["tunnels"] if t["target"] == origin.addr]
                    rejected = [r for r in j["rejections"] if r["status"] == 429]
                    return j if len(tunnels) == 2 and rejected else None

                j = wait_for(listed, "two tunnels and the 429 listed")
                lim = {(x["scope"], x["name"]): x for x in j["limits"]}
                self.assertEqual(lim[("client", "127.0.0.1")],
                                 {"scope": "client", "name": "127.0.0.1", "limit": "tunnels", "active": 2,
                                  "max": 2, "near": True})
                self.assertEqual(lim[("instance", "")]["active"], 2)
                self.assertEqual(lim[("instance", "")]["max"], 10)
                self.assertFalse(lim[("instance", "")]["near"])
                rej = [r for r in j["rejections"] if r["status"] == 429]
                self.assertEqual(len(rej), 1)
                self.assertEqual(rej[0]["detail"], "too many tunnels from this client")
                a.close()
                b.close()
        finally:
            origin.close()
            os.unlink(cfg.name)


class WhoSeesIt(unittest.TestCase):
    def test_admin_listener_only(self):
        admin = free_port()
        with Proxy(["--listen", "tcp://127.0.0.1:%d?admin" % admin], tls=False) as p:
            r = http_get(p.tcp_port, "/status.json")
            self.assertEqual(r.status, 403)
            self.assertIn(b"admin listener", r.body)
            self.assertEqual(http_get(p.tcp_port, "/status").status, 403)
            j = get_json(admin)
            self.assertEqual(j["config_version"], 1)
            self.assertEqual(http_get(admin, "/status").status, 200)
            # The PAC file is for the client listeners, not the admin one.
            self.assertEqual(http_get(admin, "/proxy.pac").status, 404)
            self.assertEqual(http_get(p.tcp_port, "/proxy.pac").status, 200)

    def test_wildcard_listener_refused(self):
        port = free_port()
        with Proxy(["--listen", "tcp://0.0.0.0:%d" % port], tls=False) as p:
            self.assertEqual(http_get(port, "/status.json").status, 403)  # reached over 127.0.0.1 too
            self.assertEqual(get_json(p.tcp_port)["config_version"], 1)  # the 127.0.0.1 one


NODE_PAC = r"""
const fs = require('fs');
const pac = fs.readFileSync(process.argv[1], 'utf8');
// The PAC helpers a browser provides, for the literals the file uses them on.
function ip4(s) { return s.split('.').reduce((a, b) => a * 256 + Number(b), 0); }
const helpers = {
  isPlainHostName: (h) => h.indexOf('.') < 0,
  dnsDomainIs: (h, d) => h.length >= d.length && h.slice(h.length - d.length) === d,
  isInNet: (h, net, mask) => {
    if (!/^\d+\.\d+\.\d+\.\d+$/.test(h)) throw new Error('isInNet on a name would resolve it: ' + h);
    const m = ip4(mask); return ((ip4(h) & m) >>> 0) === ((ip4(net) & m) >>> 0);
  },
};
const f = new Function(...Object.keys(helpers), pac + '\nreturn FindProxyForURL;')(...Object.values(helpers));
const out = {};
for (const u of JSON.parse(process.argv[2])) {
  const host = new URL(u).hostname.replace(/^\[|\]$/g, '');
  out[u] = f(u, host);
}
console.log(JSON.stringify(out));
"""


@H.needs_tool(NODE, "node")
class PacWithNode(unittest.TestCase):
    def test_generated_pac_runs(self):
        cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
        cfg.write("allow-ports: \"443,80,8000-8100\"\n"
                  "deny-net: [\"203.0.113.0/24\"]\n"
                  "rules:\n"
                  "  - name: no-social\n"
                  "    deny: { dest: [\"*.facebook.com\", \"facebook.com\"] }\n"
                  "  - name: ssh\n"
                  "    allow: { ports: [22], dest: [\"git.example\"] }\n")
        cfg.close()
        try:
            with Proxy(["--config", cfg.name], any_port=False) as p:
                r = http_get(p.tcp_port, "/proxy.pac")
                self.assertEqual(r.status, 200)
                self.assertEqual(r.header("content-type"), "application/x-ns-proxy-autoconfig")
                path = os.path.join(p.tmp, "proxy.pac")
                with open(path, "wb") as f:
                    f.write(r.body)
                proxied = "HTTPS 127.0.0.1:%d; PROXY 127.0.0.1:%d" % (p.tls_port, p.tcp_port)
                want = {
                    "https://example.com/": proxied,
                    "http://www.example.org/x": proxied,
                    "https://example.com:8080/": proxied,      # in 8000-8100
                    "https://git.example:22/": proxied,        # a rule opens 22
                    "https://example.com:8443/": "DIRECT",     # no port opened
                    "https://www.facebook.com/": "DIRECT",     # denied for everyone
                    "https://facebook.com/": "DIRECT",
                    "https://notfacebook.com/": proxied,
                    "http://intranet/": "DIRECT",              # plain host name
                    "http://localhost:3000/": "DIRECT",
                    "http://10.1.2.3/": "DIRECT",
                    "http://192.168.1.1/": "DIRECT",
                    "http://127.0.0.1/": "DIRECT",
                    "http://203.0.113.9/": "DIRECT",           # --deny-net
                    "http://198.51.100.1/": proxied,
                    "http://[::1]/": "DIRECT",
                    "http://[fd00::1]/": "DIRECT",
                    "http://[2001:db8::1]/": proxied,
                }
                out = run([NODE, "-e", NODE_PAC, path, json.dumps(list(want))], timeout=60)
                self.assertEqual(out.returncode, 0, out.stderr.decode())
                self.assertEqual(json.loads(out.stdout), want)
        finally:
            os.unlink(cfg.name)


@H.needs_tool(CHROMIUM, "chromium")
class PacWithChromium(unittest.TestCase):
    def test_chromium_loads_a_page_through_the_pac(self):
        origin = HTTPSOrigin()
        dns = FakeDNS({"origin.test": ["127.0.0.1"]})
        try:
            with Proxy(["--dns-server", dns.addr], tls=False) as p:
                profile = tempfile.mkdtemp(prefix="h2t-chromium-")
                try:
                    # Chromium never resolves origin.test (the proxy does, with the fake DNS); the
                    # rule makes sure nothing else is resolved or reached on the way.
                    r = run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                             "--disable-background-networking", "--user-data-dir=" + profile,
                             "--proxy-pac-url=http://127.0.0.1:%d/proxy.pac" % p.tcp_port,
                             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
                             "--ignore-certificate-errors",
                             "--dump-dom", "https://origin.test:%d/" % origin.port], timeout=180)
                finally:
                    shutil.rmtree(profile, ignore_errors=True)
                self.assertIn(origin.body.strip().decode(), r.stdout.decode(errors="replace"),
                              r.stderr.decode(errors="replace")[-3000:])
                rec = p.wait_access_log(lambda x: x.get("target") == "origin.test:%d" % origin.port
                                        and x.get("status") == 200, timeout=30)
                self.assertEqual(rec["resolved"], "127.0.0.1:%d" % origin.port)
                # Chromium fetched the PAC file from the proxy itself.
                self.assertGreaterEqual(p.metrics()["h2tunnel_local_requests_total"], 1)
        finally:
            dns.close()
            origin.close()


if __name__ == "__main__":
    H.main()
