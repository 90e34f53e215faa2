#!/usr/bin/python3
"""Installing h2tunnel as a service (issue 13 item 6): `cmake --install` into a throwaway root
puts the binary, the service configuration, a hardened systemd unit, its sysusers.d user and a
logrotate snippet where systemd and logrotate look; the unit passes `systemd-analyze verify` and
`systemd-analyze security --offline` rates it OK; `cpack -G DEB` builds a .deb with its shared
libraries declared that dpkg unpacks into an empty root; SIGUSR1 reopens the access log, through
a real logrotate run as well.

systemd is not PID 1 here, so the unit is not started here, nor the .deb's postinst run (it
would change this machine): test_deb_systemd.py does both in a Debian 12 container booted with
systemd. Every wait is on an event with a generous bound.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import harness as H  # noqa: E402


def build_dir():
    return os.path.dirname(os.path.abspath(H.proxy_bin()))


def cache_value(name):
    with open(os.path.join(build_dir(), "CMakeCache.txt")) as f:
        for ln in f:
            if ln.startswith(name + ":"):
                return ln.split("=", 1)[1].strip()
    raise AssertionError("%s not in CMakeCache.txt" % name)


def need(tool):
    if not shutil.which(tool):
        raise unittest.SkipTest("%s is not installed (scripts/deps.sh --test installs it)" % tool)


class Install(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="h2t-install-")
        cls.root = os.path.join(cls.tmp, "root")
        env = dict(os.environ, DESTDIR=cls.root)
        r = subprocess.run(["cmake", "--install", build_dir()], env=env, capture_output=True, text=True,
                           timeout=300)
        if r.returncode != 0:
            raise AssertionError("cmake --install failed: %s%s" % (r.stdout, r.stderr))
        cls.prefix = cache_value("CMAKE_INSTALL_PREFIX")
        cls.etc = "/etc" if cls.prefix == "/usr" else cls.prefix + "/etc"

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, p):
        return self.root + p

    def unit_text(self):
        with open(self.path(self.prefix + "/lib/systemd/system/h2tunnel.service")) as f:
            return f.read()

    def test_files_where_systemd_and_logrotate_look(self):
        for p in [self.prefix + "/bin/h2tunnel",
                  self.prefix + "/lib/systemd/system/h2tunnel.service",
                  self.prefix + "/lib/sysusers.d/h2tunnel.conf",
                  self.etc + "/h2tunnel/h2tunnel.yaml",
                  self.etc + "/logrotate.d/h2tunnel",
                  self.prefix + "/share/doc/h2tunnel/README.md",
                  self.prefix + "/share/doc/h2tunnel/examples/h2tunnel.yaml"]:
            self.assertTrue(os.path.exists(self.path(p)), p)
        self.assertTrue(os.access(self.path(self.prefix + "/bin/h2tunnel"), os.X_OK))
        with open(self.path(self.prefix + "/lib/sysusers.d/h2tunnel.conf")) as f:
            self.assertRegex(f.read(), r"(?m)^u h2tunnel - ")

    def test_unit_is_hardened(self):
        u = self.unit_text()
        for line in ["User=h2tunnel", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                     "CapabilityBoundingSet=CAP_NET_BIND_SERVICE", "AmbientCapabilities=CAP_NET_BIND_SERVICE",
                     "StateDirectory=h2tunnel", "LogsDirectory=h2tunnel", "PrivateTmp=yes",
                     "ExecStart=%s/bin/h2tunnel --config %s/h2tunnel/h2tunnel.yaml" % (self.prefix, self.etc)]:
            self.assertIn("\n" + line + "\n", u)
        # Only one capability, and no other line grants any.
        self.assertEqual(len(re.findall(r"(?m)^(Ambient)?Capabilit", u)), 2)

    def test_installed_config_is_valid(self):
        r = subprocess.run([self.path(self.prefix + "/bin/h2tunnel"), "--check-config",
                            self.path(self.etc + "/h2tunnel/h2tunnel.yaml")], capture_output=True, text=True,
                           timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("state-dir: \"/var/lib/h2tunnel\"", r.stdout)
        self.assertIn("access-log: \"/var/log/h2tunnel/access.log\"", r.stdout)
        # The unit's StateDirectory and LogsDirectory are these two.

    def test_systemd_analyze(self):
        need("systemd-analyze")
        # verify checks that ExecStart exists: point it at the binary in the throwaway root.
        unit = os.path.join(self.tmp, "h2tunnel.service")
        with open(unit, "w") as f:
            f.write(self.unit_text().replace(self.prefix + "/bin/h2tunnel", self.path(self.prefix + "/bin/h2tunnel")))
        r = subprocess.run(["systemd-analyze", "verify", unit], capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual((r.stdout + r.stderr).strip(), "")
        r = subprocess.run(["systemd-analyze", "security", "--offline=yes", unit], capture_output=True, text=True,
                           timeout=120)
        m = re.search(r"Overall exposure level for h2tunnel.service: ([0-9.]+) (\w+)", r.stdout + r.stderr)
        self.assertIsNotNone(m, r.stdout + r.stderr)
        self.assertLessEqual(float(m.group(1)), 2.0, m.group(0))

    def test_deb(self):
        need("cpack")
        need("dpkg-deb")
        out = os.path.join(self.tmp, "deb")
        r = subprocess.run(["cpack", "-G", "DEB", "--config", os.path.join(build_dir(), "CPackConfig.cmake"),
                            "-B", out], capture_output=True, text=True, timeout=600, cwd=build_dir())
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        debs = [f for f in os.listdir(out) if f.endswith(".deb")]
        self.assertEqual(len(debs), 1, os.listdir(out))
        deb = os.path.join(out, debs[0])
        info = subprocess.run(["dpkg-deb", "-I", deb], capture_output=True, text=True, check=True).stdout
        depends = re.search(r"(?m)^ Depends: (.*)$", info).group(1)
        for lib in ["libuv1", "libssl3", "libnghttp2-14", "libc-ares2", "libyaml-0-2", "libcrypt1", "adduser"]:
            self.assertIn(lib, depends)
        for script in ["postinst", "prerm", "postrm", "conffiles"]:
            self.assertRegex(info, r"(?m)^ .* %s\b" % script)
        listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True, check=True).stdout
        for p in ["/bin/h2tunnel", "/lib/systemd/system/h2tunnel.service", "/h2tunnel/h2tunnel.yaml",
                  "/logrotate.d/h2tunnel", "/lib/sysusers.d/h2tunnel.conf"]:
            self.assertIn(p, listing)
        conffiles = subprocess.run(["dpkg-deb", "-I", deb, "conffiles"], capture_output=True, text=True,
                                   check=True).stdout.split()
        self.assertEqual(conffiles, [self.etc + "/h2tunnel/h2tunnel.yaml", self.etc + "/logrotate.d/h2tunnel"])
        # dpkg takes it into an empty root (unpack: no maintainer script runs, no user is made here).
        root = os.path.join(self.tmp, "dpkgroot")
        for d in ["var/lib/dpkg/updates", "var/lib/dpkg/info"]:
            os.makedirs(os.path.join(root, d))
        open(os.path.join(root, "var/lib/dpkg/status"), "w").close()
        r = subprocess.run(["dpkg", "--root=" + root, "--force-depends", "--unpack", deb], capture_output=True,
                           text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        st = subprocess.run(["dpkg", "--root=" + root, "-s", "h2tunnel"], capture_output=True, text=True).stdout
        self.assertIn("Status: install ok unpacked", st)
        self.assertTrue(os.access(os.path.join(root, self.prefix.lstrip("/"), "bin/h2tunnel"), os.X_OK))


class ReopenAccessLog(unittest.TestCase):
    """SIGUSR1: rename the log, signal, and new lines go to a new file at the configured path."""

    def tunnel_once(self, proxy, origin, payload):
        s = proxy.tunnel(origin.addr)
        with s:
            s.sendall(payload)
            self.assertEqual(H.recv_exact(s, len(payload)), payload)

    def lines(self, path):
        with open(path) as f:
            return [json.loads(ln) for ln in f if ln.strip()]

    def wait_lines(self, path, pred, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if os.path.exists(path) and any(pred(r) for r in self.lines(path)):
                return
            time.sleep(0.05)
        raise AssertionError("no matching line in %s" % path)

    def wait_stderr(self, proxy, text, count, timeout=20):
        deadline = time.time() + timeout
        while proxy.stderr().count(text) < count:
            if time.time() > deadline:
                raise AssertionError("no %r in stderr: %s" % (text, proxy.stderr()[-2000:]))
            time.sleep(0.05)

    def test_rename_then_sigusr1(self):
        with H.Proxy(tls=False) as p, H.EchoOrigin() as origin:
            log = p.access_log_path
            self.tunnel_once(p, origin, b"first")
            self.wait_lines(log, lambda r: r.get("bytes_up") == 5)
            os.rename(log, log + ".1")
            self.tunnel_once(p, origin, b"second!")  # still into the renamed file
            self.wait_lines(log + ".1", lambda r: r.get("bytes_up") == 7)
            os.kill(p.pid, signal.SIGUSR1)
            self.wait_stderr(p, "SIGUSR1: access log reopened", 1)
            self.tunnel_once(p, origin, b"third!!!!")
            self.wait_lines(log, lambda r: r.get("bytes_up") == 9)
            self.assertEqual([r["bytes_up"] for r in self.lines(log)], [9])
            self.assertEqual(sorted(r["bytes_up"] for r in self.lines(log + ".1")), [5, 7])
            self.assertEqual(oct(os.stat(log).st_mode & 0o777), "0o640")
            # Unreadable new path: the old file is kept, and the error says so.
            os.rename(log, log + ".2")
            os.makedirs(log)
            os.kill(p.pid, signal.SIGUSR1)
            self.wait_stderr(p, "cannot reopen the access log", 1)
            os.rmdir(log)
            self.tunnel_once(p, origin, b"fourth")
            self.wait_lines(log + ".2", lambda r: r.get("bytes_up") == 6)
            self.assertTrue(p.alive())

    def test_logrotate_snippet(self):
        need("logrotate")
        src = os.path.join(H.SOURCE_DIR, "dist", "h2tunnel.logrotate.in")
        with H.Proxy(tls=False) as p, H.EchoOrigin() as origin:
            log = p.access_log_path
            self.tunnel_once(p, origin, b"before")
            self.wait_lines(log, lambda r: r.get("bytes_up") == 6)
            # The shipped snippet with the test's log path, and its systemctl call replaced by the
            # signal systemctl would send.
            with open(src) as f:
                text = f.read()
            self.assertIn("systemctl kill --signal=USR1 --kill-whom=main h2tunnel.service", text)
            text = text.replace("/var/log/h2tunnel/access.log", log)
            text = re.sub(r"systemctl kill [^\n]*", "kill -USR1 %d" % p.pid, text)
            conf = os.path.join(p.tmp, "logrotate.conf")
            with open(conf, "w") as f:
                f.write(text)
            r = subprocess.run(["logrotate", "--force", "--state", os.path.join(p.tmp, "lr.state"), conf],
                               capture_output=True, text=True, timeout=120)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertTrue(os.path.exists(log + ".1"))  # delaycompress: the first rotation stays plain
            self.wait_stderr(p, "SIGUSR1: access log reopened", 1)
            self.tunnel_once(p, origin, b"after!")
            self.wait_lines(log, lambda r: r.get("bytes_up") == 6)
            self.assertEqual(len(self.lines(log)), 1)
            self.assertEqual(len(self.lines(log + ".1")), 1)


if __name__ == "__main__":
    H.main()
