"""A 1 GiB download through forward mode, HTTP/1.1 and HTTP/2 to the proxy (issue 11 Tests:
"a 1 GiB download with sha256"; checklist FWD-08): curl fetches http://ORIGIN/bytes/1GiB through
the proxy, this file hashes curl's output as it streams (nothing is held whole), and the proxy's
RSS is sampled along the way: it must stay flat, because the origin is read only while less than
--high-water waits for the client (and, on HTTP/2, the client's window bounds the stream).

The bound is on time too: each download must end within its deadline even on a busy machine (the
suite runs beside other builds); the rate is printed, not asserted."""

import hashlib
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fwd_origin import FwdOrigin  # noqa: E402
from harness import MiB, main, prng_sha256, start_proxy_small_quarantine  # noqa: E402

CURL = shutil.which("curl")
GiB = 1024 * MiB
DEADLINE_S = 480


class ForwardBulk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.origin = FwdOrigin()
        cls.want = prng_sha256(7, GiB)

    @classmethod
    def tearDownClass(cls):
        cls.origin.close()

    def proxy(self):
        p = start_proxy_small_quarantine()
        return p

    def download(self, p, curl_args, label):
        """Streams 1 GiB through curl; returns (sha256, bytes, RSS samples in KiB by bytes read)."""
        url = "http://%s/bytes/%d" % (self.origin.addr, GiB)
        argv = [CURL, "-sS", "--max-time", str(DEADLINE_S), "-o", "-"] + curl_args + [url]
        h = hashlib.sha256()
        got = 0
        base = p.rss_kib()
        samples = [(0, base)]
        next_mark = 64 * MiB
        t0 = time.time()
        with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as c:
            while True:
                b = c.stdout.read(MiB)
                if not b:
                    break
                h.update(b)
                got += len(b)
                if got >= next_mark:
                    samples.append((got, p.rss_kib()))
                    next_mark += 64 * MiB
            err = c.stderr.read()
            rc = c.wait(60)
        dt = time.time() - t0
        self.assertEqual(rc, 0, err)
        sys.stderr.write("\n  [%s 1 GiB] %.1f s (%.0f MB/s), proxy RSS %d KiB -> max %d KiB, end %d KiB\n"
                         % (label, dt, got / dt / 1e6, base, max(r for _, r in samples), samples[-1][1]))
        sys.stderr.write("  RSS KiB by MiB read: %s\n" % " ".join("%d:%d" % (n // MiB, r) for n, r in samples))
        return h.hexdigest(), got, samples

    def check(self, digest, got, samples):
        self.assertEqual(got, GiB)
        self.assertEqual(digest, self.want)
        base = samples[0][1]
        # Flat: bounded overall, and no growth with the bytes moved (the second half adds nothing
        # the first did not).
        self.assertLess(max(r for _, r in samples) - base, 64 * 1024, samples)
        mid = [r for n, r in samples if n >= GiB // 2][0]
        self.assertLess(max(r for _, r in samples) - mid, 16 * 1024, samples)

    def test_h1_1gib(self):
        """FWD-08 over HTTP/1.1 (curl -x http://PROXY): 1 GiB, sha256-exact, RSS flat."""
        p = self.proxy()
        try:
            self.check(*self.download(p, ["-x", "http://127.0.0.1:%d" % p.tcp_port], "h1"))
            rec = p.wait_access_log(lambda x: x.get("proto") == "forward" and x.get("front") == "h1", timeout=15)
            self.assertEqual((rec["status"], rec["bytes_down"]), (200, GiB))
        finally:
            p.stop()

    def test_h2_1gib(self):
        """FWD-08 over HTTP/2 (curl --proxy-http2 -x https://PROXY: the GET is an h2 stream with
        :scheme http): 1 GiB, sha256-exact, RSS flat."""
        p = self.proxy()
        try:
            self.check(*self.download(p, ["--proxy-http2", "-x", "https://127.0.0.1:%d" % p.tls_port,
                                          "--proxy-cacert", p.ca], "h2"))
            rec = p.wait_access_log(lambda x: x.get("proto") == "forward" and x.get("front") == "h2", timeout=15)
            self.assertEqual((rec["status"], rec["bytes_down"]), (200, GiB))
        finally:
            p.stop()


if __name__ == "__main__":
    main()
