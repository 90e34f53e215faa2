#!/usr/bin/python3
"""The .deb on a fresh Debian 12 with systemd as PID 1 (issue 13 item 6; README "Install as a
service"): a Release build with the prefix /usr, packed by `cpack -G DEB`, installed with
`dpkg -i` into a Debian 12 booted by `systemd-nspawn -b`. Its postinst must create the user
(systemd-sysusers) and enable and start the unit; the service answers /healthz over TLS with the
dev CA it made in its state directory; logrotate's snippet runs; `systemctl stop` drains and
stops it; removal masks the unit and stops it, purge removes its state and logs. lintian finds
nothing but what this project cannot say (no copyright file: the project names no licence; no
changelog).

The Debian root is made once with debootstrap (from deb.debian.org) and kept in
$H2T_DEBIAN_ROOTFS (default /var/tmp/h2t-debian12-rootfs); every run boots it with
--volatile=overlay, so nothing a run does stays in it. Needs root (systemd-nspawn).
"""
import os
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

ROOTFS = os.environ.get("H2T_DEBIAN_ROOTFS", "/var/tmp/h2t-debian12-rootfs")
DONE_MARK = ".h2t-rootfs-complete"
# What the .deb depends on (dpkg -i does not fetch dependencies), systemd as init, and curl.
INCLUDE = ("systemd,systemd-sysv,dbus,adduser,init-system-helpers,logrotate,libuv1,libssl3,libnghttp2-14,"
           "libc-ares2,libyaml-0-2,libcrypt1,curl,ca-certificates")
NEED = H.needs_tool(all(shutil.which(t) for t in ("systemd-nspawn", "debootstrap", "nsenter", "cpack", "lintian")),
                    "systemd-nspawn (systemd-container), debootstrap, lintian, cpack")


def ensure_rootfs():
    if os.path.exists(os.path.join(ROOTFS, DONE_MARK)):
        return
    tmp = ROOTFS + ".partial"
    shutil.rmtree(tmp, ignore_errors=True)
    r = subprocess.run(["debootstrap", "--variant=minbase", "--include=" + INCLUDE, "bookworm", tmp,
                        "http://deb.debian.org/debian"], capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise AssertionError("debootstrap failed: %s" % (r.stdout + r.stderr)[-3000:])
    open(os.path.join(tmp, DONE_MARK), "w").close()
    shutil.rmtree(ROOTFS, ignore_errors=True)
    os.rename(tmp, ROOTFS)


@NEED
@unittest.skipUnless(os.geteuid() == 0, H.MISSING_TOOL + "root (systemd-nspawn boots a container)")
class DebOnSystemd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="h2t-deb-")
        ensure_rootfs()
        build = os.path.join(cls.tmp, "build")
        for argv in (["cmake", "-S", H.SOURCE_DIR, "-B", build, "-DCMAKE_BUILD_TYPE=Release",
                      "-DCMAKE_INSTALL_PREFIX=/usr", "-DBUILD_TESTING=OFF"],
                     ["cmake", "--build", build, "-j2"]):
            r = subprocess.run(argv, capture_output=True, text=True, timeout=1800)
            if r.returncode != 0:
                raise AssertionError("%s: %s" % (" ".join(argv), (r.stdout + r.stderr)[-3000:]))
        r = subprocess.run(["cpack", "-G", "DEB"], cwd=build, capture_output=True, text=True, timeout=600)
        debs = [f for f in os.listdir(build) if f.endswith(".deb")]
        if r.returncode != 0 or len(debs) != 1:
            raise AssertionError("cpack: %s" % (r.stdout + r.stderr)[-3000:])
        cls.deb = os.path.join(build, debs[0])
        cls.machine = "h2t-test-%d" % os.getpid()
        cls.log = open(os.path.join(cls.tmp, "nspawn.log"), "w+")
        cls.nspawn = subprocess.Popen(
            ["systemd-nspawn", "-D", ROOTFS, "--volatile=overlay", "--private-network", "-b", "--register=no",
             "--keep-unit", "--console=passive", "-M", cls.machine, "--bind-ro=%s:/root/h2tunnel.deb" % cls.deb],
            stdin=subprocess.DEVNULL, stdout=cls.log, stderr=subprocess.STDOUT)
        cls.leader = None
        deadline = time.monotonic() + 180
        state = ""
        while time.monotonic() < deadline and cls.nspawn.poll() is None:
            cls.leader = cls.leader or cls.find_leader()
            if cls.leader:
                state = cls.sh("systemctl is-system-running", check=False).stdout.strip()
                if state in ("running", "degraded"):
                    return
            time.sleep(0.5)
        cls.tearDownClass()
        raise AssertionError("the container did not boot (state %r): %s" % (state, cls.nspawn_log()))

    @classmethod
    def find_leader(cls):
        for p in os.listdir("/proc"):
            if not p.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % p) as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == cls.nspawn.pid:
                return int(p)
        return None

    @classmethod
    def nspawn_log(cls):
        cls.log.seek(0)
        return cls.log.read()[-3000:]

    @classmethod
    def sh(cls, cmd, check=True, timeout=120):
        """Runs |cmd| inside the container (every namespace of its PID 1)."""
        r = subprocess.run(["nsenter", "-t", str(cls.leader), "-a", "--", "env", "-i",
                            "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LC_ALL=C", "sh", "-c", cmd],
                           capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError("in the container: %s: exit %d\n%s%s" % (cmd, r.returncode, r.stdout, r.stderr))
        return r

    @classmethod
    def tearDownClass(cls):
        if cls.nspawn.poll() is None:
            cls.nspawn.send_signal(signal.SIGTERM)  # the container's systemd powers off
            try:
                cls.nspawn.wait(timeout=120)
            except subprocess.TimeoutExpired:
                cls.nspawn.kill()
                cls.nspawn.wait()
        cls.log.close()
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def wait_state(self, cmd, want, timeout=60):
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            got = self.sh(cmd, check=False).stdout.strip()
            if got == want:
                return
            time.sleep(0.3)
        self.fail("%s: %r, expected %r\n%s" % (cmd, got, want, self.sh("journalctl -u h2tunnel --no-pager | tail -30",
                                                                       check=False).stdout))

    def test_lintian(self):
        r = subprocess.run(["lintian", "--tag-display-limit", "0", self.deb], capture_output=True, text=True,
                           timeout=600)
        tags = [ln for ln in r.stdout.splitlines() if ln[:2] in ("E:", "W:")]
        known = ("no-copyright-file", "no-changelog", "no-manual-page")
        self.assertEqual([t for t in tags if not any(k in t for k in known)], [], r.stdout)

    def test_install_start_stop_purge(self):
        self.assertNotEqual(self.sh("getent passwd h2tunnel", check=False).returncode, 0, "a fresh system")
        out = self.sh("dpkg -i /root/h2tunnel.deb 2>&1").stdout
        self.assertIn("Setting up h2tunnel", out)
        self.assertIn("h2tunnel", self.sh("getent passwd h2tunnel").stdout)  # postinst: systemd-sysusers
        self.assertEqual(self.sh("systemctl is-enabled h2tunnel").stdout.strip(), "enabled")
        self.wait_state("systemctl is-active h2tunnel", "active")
        # Serving: the dev CA it made in its state directory, as the unit's user.
        deadline = time.monotonic() + 60
        while True:
            r = self.sh("curl -sS --max-time 10 --cacert /var/lib/h2tunnel/ca.pem https://127.0.0.1:8443/healthz",
                        check=False)
            if r.stdout == "ok\n" or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        self.assertEqual(r.stdout, "ok\n", r.stderr)
        self.assertIn("h2tunnel h2tunnel", self.sh("stat -c '%U %G' /var/lib/h2tunnel/ca.pem").stdout)
        self.sh("logrotate --force /etc/logrotate.d/h2tunnel")
        self.wait_state("systemctl is-active h2tunnel", "active")
        self.sh("systemctl stop h2tunnel")
        self.assertEqual(self.sh("systemctl is-active h2tunnel", check=False).stdout.strip(), "inactive")
        self.sh("systemctl start h2tunnel")
        self.wait_state("systemctl is-active h2tunnel", "active")
        # Removal stops it and masks the unit; purge forgets the unit and removes state and logs.
        self.sh("dpkg -r h2tunnel")
        self.assertEqual(self.sh("systemctl is-active h2tunnel", check=False).stdout.strip(), "inactive")
        self.assertEqual(self.sh("systemctl is-enabled h2tunnel", check=False).stdout.strip(), "masked")
        self.sh("dpkg --purge h2tunnel")
        self.assertNotEqual(self.sh("test -e /var/lib/h2tunnel || test -e /var/log/h2tunnel", check=False).returncode,
                            0, "purge leaves state or logs behind")
        self.assertNotEqual(self.sh("systemctl is-enabled h2tunnel", check=False).stdout.strip(), "masked")


if __name__ == "__main__":
    H.main()
