#!/usr/bin/python3
"""Reloading on SIGHUP (issue 13 item 1; README "Reloading").

Real clients over loopback: raw HTTP/1.1 CONNECT sockets (harness), TLS through Python's ssl
module (the certificate served is compared byte for byte), curl 8.x over HTTP/2 (--proxy-http2)
for a tunnel opened after a refused reload. Every streaming tunnel sends a deterministic stream
through an echo origin while the reloads happen and compares sha256 of what was sent and what
came back.

- A user removed from the htpasswd file while their tunnel is open: that tunnel is closed with
  close reason policy_changed (access log, metric), another user's tunnel is byte-exact through
  the reload (H1C-01: the tunnel is a plain byte pipe after the 200; AUTH-01: the removed user
  gets 407 afterwards).
- A rule changed to deny a destination closes the tunnel to it; a rule with keep-on-reload keeps
  its tunnels; reload-keep-tunnels keeps them all.
- A bad configuration is refused: FILE:LINE:COL logged, the old configuration keeps running (a
  new tunnel is still allowed as before), the failed reload counted.
- A new certificate is served to new handshakes while an older TLS connection's tunnel goes on.
- Listeners added and removed by a reload, the others keeping their sockets.
- 100 reloads while tunnels carry data (bounded loop; the ASan build's leak check runs when the
  proxy exits): no byte lost, the snapshot count right.
"""
import base64
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402
import h2util  # noqa: E402

HTPASSWD = shutil.which("htpasswd")
CURL = shutil.which("curl")
OPENSSL = shutil.which("openssl")


def basic(user, password):
    return ("Proxy-Authorization: Basic %s\r\n"
            % base64.b64encode(("%s:%s" % (user, password)).encode()).decode()).encode()


def write(path, text):
    tmp = path + ".new"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)  # as an editor or a config manager does: never a half-written file


def htpasswd_lines(users):
    out = []
    for u in users:
        r = subprocess.run([HTPASSWD, "-nbB", "-C", "5", u, u + "-pw"], capture_output=True, text=True,
                           check=True)
        out.append(r.stdout.strip())
    return "\n".join(out) + "\n"


def wait_for(pred, what, timeout=60):
    deadline = time.time() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.time() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(0.02)


def reload(p, version, workers):
    """SIGHUP, then wait until every worker runs |version|."""
    p.proc.send_signal(signal.SIGHUP)
    pat = "configuration version %d in use" % version
    wait_for(lambda: p.stderr().count(pat) >= workers, "%d worker(s) at version %d:\n%s"
             % (workers, version, p.stderr()[-3000:]))


def metrics_at(port):
    r = H.http_get(port, "/metrics")
    assert r.status == 200, r
    out = {}
    for ln in r.body.decode().splitlines():
        if ln and not ln.startswith("#"):
            k, _, v = ln.rpartition(" ")
            out[k] = float(v)
    return out


class Stream:
    """Sends a deterministic stream on |sock| until stop(), reading the echo as it comes, in one
    thread with select (an ssl socket must not be used by two threads at once). stop() stops
    sending, waits for the echo of every byte sent and returns (sent bytes, sent sha256, received
    bytes, received sha256)."""

    WINDOW = 512 * H.KiB  # at most this much unechoed: a long-lived stream, not a flood

    def __init__(self, sock, seed):
        self.sock = sock
        self.seed = seed
        self.sent = 0
        self.received = 0
        self.h_sent = hashlib.sha256()
        self.h_recv = hashlib.sha256()
        self.stopping = threading.Event()
        self.error = None
        self.eof = False
        self.sock.setblocking(False)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        gen = H.prng_forever(self.seed)
        block, piece = b"", b""
        try:
            while True:
                if self.stopping.is_set() and not piece and self.received >= self.sent:
                    return
                want_send = bool(piece) or (not self.stopping.is_set() and self.sent - self.received < self.WINDOW)
                r, w, _ = select.select([self.sock], [self.sock] if want_send else [], [], 0.05)
                if w:
                    if not piece:
                        if not block:
                            block = next(gen)
                        piece, block = block[:16 * H.KiB], block[16 * H.KiB:]
                    try:
                        n = self.sock.send(piece)
                        self.h_sent.update(piece[:n])
                        self.sent += n
                        piece = piece[n:]
                    except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                        pass
                if r or (isinstance(self.sock, ssl.SSLSocket) and self.sock.pending()):
                    while True:
                        try:
                            b = self.sock.recv(1 << 16)
                        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                            break
                        if not b:
                            self.eof = True
                            raise ConnectionError("EOF from the proxy after %d bytes" % self.received)
                        self.h_recv.update(b)
                        self.received += len(b)
        except (OSError, ConnectionError) as e:
            self.error = e

    def wait_received(self, n, timeout=60):
        wait_for(lambda: self.received >= n or self.error, "%d bytes echoed (have %d)" % (n, self.received),
                 timeout)
        if self.error:
            raise AssertionError("stream failed: %r" % (self.error,))

    def stop(self):
        self.stopping.set()
        self.thread.join(120)
        self.sock.close()
        return self.sent, self.h_sent.hexdigest(), self.received, self.h_recv.hexdigest()


def listen_inodes(port):
    """The inodes of the listening TCP sockets bound to |port| (/proc/net/tcp, state 0A)."""
    out = set()
    with open("/proc/net/tcp") as f:
        next(f)
        for ln in f:
            parts = ln.split()
            if parts[3] == "0A" and int(parts[1].split(":")[1], 16) == port:
                out.add(parts[9])
    return out


def closed_by_proxy(sock, timeout=30):
    """True once the proxy closed |sock| (EOF or reset), reading and dropping what comes."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        pass
    return True


class FileListeners(H.Proxy):
    """The harness's proxy with its listeners in the configuration file instead of --listen flags
    (flags would override the file's list on every reload too)."""

    def __init__(self, conf, make_text, **kw):
        self.conf, self.make_text = conf, make_text
        super().__init__(["--config", conf], **kw)

    def argv(self):
        a = super().argv()
        out = []
        i = 0
        while i < len(a):
            if a[i] == "--listen":
                i += 2
                continue
            out.append(a[i])
            i += 1
        write(self.conf, self.make_text(self))
        return out


@unittest.skipUnless(HTPASSWD, "htpasswd (apache2-utils) missing")
class ReloadUsers(unittest.TestCase):
    """A user removed from the htpasswd file while their tunnel is open."""

    def test_user_removed(self):
        tmp = tempfile.mkdtemp(prefix="h2t-reload-")
        self.addCleanup(shutil.rmtree, tmp, True)
        users = os.path.join(tmp, "users.htpasswd")
        write(users, htpasswd_lines(["alice", "bob"]))
        conf = os.path.join(tmp, "h2tunnel.yaml")
        # The limits are not re-read, but their counts carry over: 3 tunnels per client.
        write(conf, "auth:\n  htpasswd: users.htpasswd\nlimits:\n  per-client: {tunnels: 3}\n")
        admin = H.free_port()
        with H.EchoOrigin() as origin, H.Proxy(["--config", conf, "--listen", "tcp://127.0.0.1:%d?admin" % admin],
                                               tls=False, workers=2) as p:
            a = p.tunnel(origin.addr, extra=basic("alice", "alice-pw"))
            b = p.tunnel(origin.addr, extra=basic("bob", "bob-pw"))
            sa, sb = Stream(a, 11), Stream(b, 12)
            sa.wait_received(256 * H.KiB)
            sb.wait_received(256 * H.KiB)
            before = sb.received
            write(users, htpasswd_lines(["bob"]))
            reload(p, 2, 2)
            rec = p.wait_access_log(lambda r: r.get("user") == "alice" and r.get("close") == "policy_changed",
                                    timeout=30)
            self.assertEqual(rec["config_version"], 1)  # the version that admitted it
            sa.stop()
            # alice's tunnel gave its count back, bob's is still counted: 1 + 2 = 3, the 4th is 429.
            more = [p.tunnel(origin.addr, extra=basic("bob", "bob-pw")) for _ in range(2)]
            with self.assertRaises(H.TunnelRefused) as cm:
                p.tunnel(origin.addr, extra=basic("bob", "bob-pw"))
            self.assertEqual(cm.exception.resp.status, 429)
            for m in more:
                m.close()
            # bob's tunnel keeps going after the reload, byte-exact.
            sb.wait_received(before + 2 * H.MiB)
            sent, h_sent, received, h_recv = sb.stop()
            self.assertEqual((received, h_recv), (sent, h_sent))
            rec = p.wait_access_log(lambda r: r.get("user") == "bob" and "close" in r, timeout=30)
            self.assertNotEqual(rec["close"], "policy_changed")
            # alice is gone for new tunnels too (AUTH-01: 407), bob still gets in.
            with self.assertRaises(H.TunnelRefused) as cm:
                p.tunnel(origin.addr, extra=basic("alice", "alice-pw"))
            self.assertEqual(cm.exception.resp.status, 407)
            t = p.tunnel(origin.addr, extra=basic("bob", "bob-pw"))
            t.sendall(b"ping")
            self.assertEqual(H.recv_exact(t, 4), b"ping")
            t.close()
            m = metrics_at(admin)
            self.assertEqual(m["h2tunnel_config_version"], 2)
            self.assertEqual(m['h2tunnel_config_reloads_total{result="ok"}'], 1)
            self.assertEqual(m['h2tunnel_reload_tunnels_total{action="closed"}'], 1)
            self.assertIn("closing tunnel", p.stderr())
            self.assertNotIn("alice-pw", p.stderr())


class ReloadRules(unittest.TestCase):
    def rules_conf(self, path, a, b, c, deny_a=False, deny_c=False, extra=""):
        text = extra + "rules:\n"
        if deny_a:
            text += "  - name: no-a\n    deny: {ports: [%d]}\n" % a
        if deny_c:
            text += "  - name: no-c\n    deny: {ports: [%d]}\n" % c
        text += "  - name: to-a\n    allow: {ports: [%d]}\n" % a
        text += "  - name: to-b\n    allow: {ports: [%d]}\n" % b
        text += "  - name: to-c\n    keep-on-reload: true\n    allow: {ports: [%d]}\n" % c
        write(path, text)

    def test_rule_denies_destination(self):
        tmp = tempfile.mkdtemp(prefix="h2t-reload-")
        self.addCleanup(shutil.rmtree, tmp, True)
        conf = os.path.join(tmp, "h2tunnel.yaml")
        with H.EchoOrigin() as oa, H.EchoOrigin() as ob, H.EchoOrigin() as oc:
            self.rules_conf(conf, oa.port, ob.port, oc.port)
            with H.Proxy(["--config", conf], tls=False, workers=2) as p:
                ta, tb, tc = p.tunnel(oa.addr), p.tunnel(ob.addr), p.tunnel(oc.addr)
                sb, sc = Stream(tb, 21), Stream(tc, 22)
                sb.wait_received(128 * H.KiB)
                sc.wait_received(128 * H.KiB)
                self.rules_conf(conf, oa.port, ob.port, oc.port, deny_a=True, deny_c=True)
                reload(p, 2, 2)
                rec = p.wait_access_log(lambda r: r.get("target") == oa.addr and r.get("close") == "policy_changed",
                                        timeout=30)
                self.assertEqual(rec["rule"], "to-a")
                self.assertTrue(closed_by_proxy(ta))
                ta.close()
                # B untouched, C kept by its rule's keep-on-reload.
                for s in (sb, sc):
                    s.wait_received(s.received + H.MiB)
                    sent, h_sent, received, h_recv = s.stop()
                    self.assertEqual((received, h_recv), (sent, h_sent))
                self.assertIn("keep-on-reload", p.stderr())
                # New tunnels are decided by the new rules.
                with self.assertRaises(H.TunnelRefused) as cm:
                    p.tunnel(oa.addr)
                self.assertEqual(cm.exception.resp.status, 403)
                self.assertIn(b"no-a", cm.exception.resp.raw)
                p.wait_access_log(lambda r: r.get("target") == oa.addr and r.get("status") == 403
                                  and r.get("config_version") == 2)
                m = p.metrics()
                self.assertEqual(m['h2tunnel_reload_tunnels_total{action="closed"}'], 1)
                self.assertEqual(m['h2tunnel_reload_tunnels_total{action="kept"}'], 1)
                st = json.loads(H.http_get(p.tcp_port, "/status.json").body)
                self.assertEqual(st["config_version"], 2)
                self.assertEqual(st["reloads"], {"ok": 1, "failed": 0, "tunnels_closed": 1})

    def test_h2_stream_reset_others_go_on(self):
        """On HTTP/2 the refused tunnel's stream is reset (CONNECT_ERROR, H2C-11), the other
        CONNECT stream of the same connection goes on byte-exact (python3-h2)."""
        tmp = tempfile.mkdtemp(prefix="h2t-reload-")
        self.addCleanup(shutil.rmtree, tmp, True)
        conf = os.path.join(tmp, "h2tunnel.yaml")
        with H.EchoOrigin() as oa, H.EchoOrigin() as ob:
            self.rules_conf(conf, oa.port, ob.port, 3)
            with H.Proxy(["--config", conf], tls=False, workers=1) as p:
                h2 = h2util.H2Client(p.tcp_port)
                try:
                    sa, sb = h2.open_tunnel(oa.addr), h2.open_tunnel(ob.addr)
                    one, two = os.urandom(256 * H.KiB), os.urandom(256 * H.KiB)
                    h2.send_all(sb, one)
                    h2.wait(lambda: h2.streams[sb].received >= len(one), 30, "the first echo")
                    self.rules_conf(conf, oa.port, ob.port, 3, deny_a=True)
                    p.proc.send_signal(signal.SIGHUP)
                    h2.wait(lambda: h2.streams[sa].reset is not None, 30, "stream A reset")
                    self.assertEqual(h2.streams[sa].reset, 0xa)  # CONNECT_ERROR
                    h2.send_all(sb, two, end_stream=True)
                    h2.wait(lambda: h2.streams[sb].ended, 30, "the second echo and END_STREAM")
                    self.assertEqual(bytes(h2.streams[sb].data), one + two)
                    self.assertTrue(h2.ping_ok())
                finally:
                    h2.close()
                rec = p.wait_access_log(lambda r: r.get("target") == oa.addr and "close" in r, timeout=30)
                self.assertEqual((rec["front"], rec["close"]), ("h2", "policy_changed"))

    def test_reload_keep_tunnels(self):
        tmp = tempfile.mkdtemp(prefix="h2t-reload-")
        self.addCleanup(shutil.rmtree, tmp, True)
        conf = os.path.join(tmp, "h2tunnel.yaml")
        with H.EchoOrigin() as oa:
            self.rules_conf(conf, oa.port, 1, 2, extra="reload-keep-tunnels: true\n")
            with H.Proxy(["--config", conf], tls=False, workers=1) as p:
                s = Stream(p.tunnel(oa.addr), 31)
                s.wait_received(64 * H.KiB)
                self.rules_conf(conf, oa.port, 1, 2, deny_a=True, extra="reload-keep-tunnels: true\n")
                reload(p, 2, 1)
                s.wait_received(s.received + H.MiB)
                sent, h_sent, received, h_recv = s.stop()
                self.assertEqual((received, h_recv), (sent, h_sent))
                self.assertIn("reload-keep-tunnels", p.stderr())
                rec = p.wait_access_log(lambda r: r.get("target") == oa.addr and "close" in r)
                self.assertNotEqual(rec["close"], "policy_changed")


@unittest.skipUnless(CURL, "curl missing")
class ReloadBadConfig(unittest.TestCase):
    def test_bad_config_keeps_old(self):
        tmp = tempfile.mkdtemp(prefix="h2t-reload-")
        self.addCleanup(shutil.rmtree, tmp, True)
        conf = os.path.join(tmp, "h2tunnel.yaml")
        write(conf, "connect-timeout: 5s\nidle-timeout: 60s\n")
        with H.HTTPSOrigin() as origin, H.Proxy(["--config", conf], tls=True, workers=2) as p:
            write(conf, "connect-timeout: 5s\nidle-timeout: banana\n")
            p.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "reload refused" in p.stderr(), "the refusal")
            self.assertRegex(p.stderr(), re.escape(conf) + r":2:\d+: idle-timeout")
            m = p.metrics()
            self.assertEqual(m['h2tunnel_config_reloads_total{result="failed"}'], 1)
            self.assertEqual(m["h2tunnel_config_version"], 1)
            # A new tunnel as before, through curl over HTTP/2 (H2C-01: CONNECT stream, 200).
            r = subprocess.run([CURL, "-sS", "--max-time", "20", "--proxy-http2", "-x",
                                "https://127.0.0.1:%d" % p.tls_port, "--proxy-cacert", p.ca, "--cacert", origin.ca,
                                "https://127.0.0.1:%d/" % origin.port], capture_output=True, timeout=60)
            self.assertEqual(r.stdout, origin.body, r.stderr)
            rec = p.wait_access_log(lambda r: r.get("target") == "127.0.0.1:%d" % origin.port and "close" in r)
            self.assertEqual(rec["config_version"], 1)
            # Fixed, it applies.
            write(conf, "connect-timeout: 5s\nidle-timeout: 90s\n")
            reload(p, 2, 2)
            self.assertEqual(p.metrics()['h2tunnel_config_reloads_total{result="ok"}'], 1)


class ReloadWhileStopping(unittest.TestCase):
    def test_sighup_during_drain_is_ignored(self):
        """SIGHUP while tunnels drain after SIGTERM neither reloads nor kills the process."""
        with H.EchoOrigin() as origin:
            p = H.Proxy(["--drain-timeout", "60s"], tls=False)
            p.start()
            try:
                t = p.tunnel(origin.addr)
                p.proc.send_signal(signal.SIGTERM)
                wait_for(lambda: "stopping" in p.stderr(), "the stop")
                p.proc.send_signal(signal.SIGHUP)  # still caught: its default action would kill
                t.sendall(b"still here")  # the tunnel drains on
                self.assertEqual(H.recv_exact(t, 10), b"still here")
                t.close()
                self.assertEqual(p.proc.wait(timeout=60), 0)
                self.assertNotIn("configuration version 2", p.stderr())
            finally:
                p.stop()


@unittest.skipUnless(OPENSSL, "openssl missing")
class ReloadCertificate(unittest.TestCase):
    def test_new_certificate_for_new_handshakes(self):
        tmp = tempfile.mkdtemp(prefix="h2t-reload-")
        self.addCleanup(shutil.rmtree, tmp, True)
        dirs = []
        for name in ("one", "two"):
            d = os.path.join(tmp, name)
            subprocess.run(["bash", os.path.join(H.SOURCE_DIR, "certs", "mkcerts.sh"), d], check=True,
                           capture_output=True, env=dict(os.environ, CN="cert-" + name))
            dirs.append(d)
        cafile = os.path.join(tmp, "cas.pem")
        with open(cafile, "w") as f:
            for d in dirs:
                with open(os.path.join(d, "ca.pem")) as ca:
                    f.write(ca.read())
        live = os.path.join(tmp, "live")
        os.mkdir(live)
        for n in ("cert.pem", "key.pem"):
            shutil.copy(os.path.join(dirs[0], n), os.path.join(live, n))
        conf = os.path.join(tmp, "h2tunnel.yaml")
        tls_port = H.free_port()

        def text(p):
            return ("listen: [tcp://127.0.0.1:%d, tls://127.0.0.1:%d]\ncert: live/cert.pem\nkey: live/key.pem\n"
                    % (p.tcp_port, tls_port))

        def der(d):
            with open(os.path.join(d, "cert.pem")) as f:
                return ssl.PEM_cert_to_DER_cert(f.read())

        def served():
            s = H.dial(p.tls_port, tls_ca=cafile)
            try:
                return s.getpeercert(binary_form=True)
            finally:
                s.close()

        with H.EchoOrigin() as origin, FileListeners(conf, text, tls=False, workers=2) as p:
            p.tls_port = tls_port
            self.assertEqual(served(), der(dirs[0]))
            old = H.open_tunnel(p.tls_port, origin.addr, tls_ca=cafile)
            self.assertEqual(old.getpeercert(binary_form=True), der(dirs[0]))
            s = Stream(old, 41)
            s.wait_received(128 * H.KiB)
            for n in ("cert.pem", "key.pem"):
                shutil.copy(os.path.join(dirs[1], n), os.path.join(live, n + ".new"))
                os.replace(os.path.join(live, n + ".new"), os.path.join(live, n))
            reload(p, 2, 2)
            for _ in range(4):  # whichever worker takes the connection
                self.assertEqual(served(), der(dirs[1]))
            s.wait_received(s.received + H.MiB)
            sent, h_sent, received, h_recv = s.stop()
            self.assertEqual((received, h_recv), (sent, h_sent))
            # A key that does not match: refused, the second certificate stays.
            shutil.copy(os.path.join(dirs[0], "key.pem"), os.path.join(live, "key.pem"))
            p.proc.send_signal(signal.SIGHUP)
            wait_for(lambda: "reload refused" in p.stderr(), "the refusal")
            self.assertEqual(served(), der(dirs[1]))


class ReloadListeners(unittest.TestCase):
    def test_listener_added_and_removed_under_load(self):
        """100 reloads while four tunnels carry data; every other one adds a listener, the next
        removes it; the listeners that stay keep their sockets throughout."""
        tmp = tempfile.mkdtemp(prefix="h2t-reload-")
        self.addCleanup(shutil.rmtree, tmp, True)
        conf = os.path.join(tmp, "h2tunnel.yaml")
        extra = H.free_port()

        def text(p, add, i):
            out = "listen:\n  - tcp://127.0.0.1:%d\n  - tls://127.0.0.1:%d\n" % (p.tcp_port, p.tls_port)
            if add:
                out += "  - tcp://127.0.0.1:%d\n" % extra
            return out + "idle-timeout: %ds\n" % (100 + i)

        with H.EchoOrigin() as origin, FileListeners(conf, lambda p: text(p, False, 0), workers=2) as p:
            base_tcp, base_tls = p.tcp_port, p.tls_port
            before = listen_inodes(base_tcp) | listen_inodes(base_tls)
            self.assertEqual(len(before), 4)  # one socket per worker and listener (SO_REUSEPORT)
            streams = [Stream(H.open_tunnel(base_tcp, origin.addr), 50 + i) for i in range(2)]
            streams += [Stream(H.open_tunnel(base_tls, origin.addr, tls_ca=p.ca), 60 + i) for i in range(2)]
            for s in streams:
                s.wait_received(64 * H.KiB)
            for i in range(100):
                version = i + 2
                add = i % 2 == 0
                write(conf, text(p, add, i))
                reload(p, version, 2)
                if i % 10 in (0, 1):
                    if add:
                        self.assertEqual(H.http_get(extra, "/healthz").status, 200)
                    else:
                        with self.assertRaises(ConnectionRefusedError):
                            socket.create_connection(("127.0.0.1", extra), timeout=5).close()
                    self.assertEqual(H.http_get(base_tcp, "/healthz").status, 200)
            for s in streams:
                s.wait_received(s.received + 256 * H.KiB)
            for s in streams:
                sent, h_sent, received, h_recv = s.stop()
                self.assertGreater(sent, 0)
                self.assertEqual((received, h_recv), (sent, h_sent))
            # The listeners that stayed kept their sockets through 100 reloads.
            self.assertEqual(listen_inodes(base_tcp) | listen_inodes(base_tls), before)
            self.assertEqual(listen_inodes(extra), set())
            m = metrics_at(base_tcp)
            self.assertEqual(m["h2tunnel_config_version"], 101)
            self.assertEqual(m['h2tunnel_config_reloads_total{result="ok"}'], 100)
            self.assertEqual(m['h2tunnel_reload_tunnels_total{action="closed"}'], 0)
            self.assertEqual(sum(v for k, v in m.items() if k.startswith("h2tunnel_tunnels_active")), 0)
        # Proxy.stop checked the exit code and that ASan/LSan reported nothing (no leak of the
        # 100 snapshots, SSL contexts or listeners).


if __name__ == "__main__":
    unittest.main(verbosity=2)
