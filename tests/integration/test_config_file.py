#!/usr/bin/python3
"""The configuration file (--config, --check-config) with the real binary and real tools.

- The annotated example etc/h2tunnel.yaml (with its htpasswd made by `htpasswd -B`) passes
  `--check-config`, which prints every option with its value and where it came from.
- Each kind of mistake stops the process with exit status 2 and one line
  "FILE:LINE:COL: what is wrong" on stderr (htpasswd mistakes: "FILE:LINE: user 'x': ...").
- Hashes made at test time by htpasswd (apache2-utils) and mkpasswd (whois): bcrypt, SHA-crypt
  and yescrypt are accepted; MD5 ($apr1$), {SHA}, DES crypt and plain text are refused.
- Flags override the file; a repeatable flag replaces the file's list.
- A proxy started with --config really runs with the file's values (its target policy).
- What --check-config prints is itself a configuration file that reads back to the same output.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as H  # noqa: E402

HTPASSWD = shutil.which("htpasswd")
MKPASSWD = shutil.which("mkpasswd")
EXAMPLE = os.path.join(H.SOURCE_DIR, "etc", "h2tunnel.yaml")


def run(*args, timeout=30):
    return subprocess.run([H.proxy_bin()] + list(args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def body(text):
    """The printed configuration without comment lines and trailing comments."""
    out = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        out.append(line.split("  # ")[0])
    return "\n".join(out)


class ConfigFileTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="h2t-cfg-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def check_fails(self, path, want, *flags):
        r = run("--check-config", path, *flags)
        self.assertEqual(r.returncode, 2, "accepted: %s\n%s" % (path, r.stdout))
        self.assertEqual(r.stdout, "")
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith(want), "got %r, want %r..." % (lines[0], want))
        # The proxy itself (not only --check-config) refuses to start the same way.
        r2 = run("--config", path, "--listen", "tcp://127.0.0.1:0", *flags)
        self.assertEqual(r2.returncode, 2)
        self.assertEqual(r2.stderr.splitlines()[:1], lines)

    # -- the example

    def test_example(self):
        r = run("--check-config", EXAMPLE)
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        self.assertIn("the effective configuration from %s" % EXAMPLE, out)
        self.assertRegex(out, r"\nworkers: 2  # file .*h2tunnel\.yaml:\d+\n")
        self.assertIn("\nheader-timeout: 10s  # default\n", out)
        self.assertIn('\nallow-ports: "443,80,22,8000-8100"  # file ', out)
        self.assertIn('  htpasswd: "%s"  # 5 user(s)\n' % os.path.join(os.path.dirname(EXAMPLE), "users.htpasswd"), out)
        self.assertIn('  - name: "ops-ssh"\n', out)
        self.assertIn("# rule #4\n", out)
        self.assertIn('    "bob": {tunnels: 10, ', out)
        # Every option of --help is in the printout (help, version and the file flags aside).
        help_text = run("--help").stdout
        for line in help_text.splitlines():
            if line.startswith("  --") and not line.startswith("  --help"):
                name = line.split()[0][2:]
                if name in ("config", "check-config"):
                    continue
                self.assertIn("\n%s: " % name, out, name)

    def test_readme_example(self):
        with open(os.path.join(H.SOURCE_DIR, "README.md"), encoding="utf-8") as f:
            readme = f.read()
        start = readme.index("```yaml\n", readme.index("## Configuration file")) + 8
        path = self.write("readme.yaml", readme[start:readme.index("```", start)])
        shutil.copy(os.path.join(os.path.dirname(EXAMPLE), "users.htpasswd"), self.dir)
        r = run("--check-config", path)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('  - name: "ops-ssh"\n', r.stdout)

    # -- every kind of mistake, with its position

    def test_errors_have_positions(self):
        users = self.write("users", "alice:$2y$04$nI7cJDKmEBh78Fpdmt1Gr.YUkac8vYAW4xcsSlMA04S.81i8cT98W\n")
        cases = [
            ("workers: [1\n", ":2:1: YAML syntax: did not find expected ',' or ']'"),
            ("\nconect-timeout: 5s\n", ":2:1: unknown key 'conect-timeout'"),
            ("idle-timeout: {a: 1}\n", ":1:15: idle-timeout: expected T, not a mapping"),
            ("listen: tcp://127.0.0.1:1\nconnect-timeout: soon\n", ":2:18: connect-timeout: 'soon': not a duration"),
            ("h2-max-streams: 0\n", ":1:17: h2-max-streams: '0': out of range 1..100000"),
            ("allow-net:\n  - loopback\n  - 10.1.2.3/8\n", ":3:5: allow-net: '10.1.2.3/8': not a CIDR"),
            ("rules:\n  - allow: {clients: [\"192.168.1.1/16\"]}\n", ":2:23: rules[0].allow.clients: '192.168.1.1/16' is not"),
            ("workers: 1\nworkers: 2\n", ":2:1: duplicate key 'workers' (first given at line 1, column 1)"),
            ("auth:\n  realm: a\n  realm: b\n", ":3:3: duplicate key 'realm'"),
            ("auth: {htpasswd: missing}\n", ":1:18: auth.htpasswd: %s/missing:1:1: cannot read: No such file" % self.dir),
            ("auth: {htpasswd: users}\ngroups: {ops: [alice, bob]}\n", ":2:23: groups: unknown user 'bob'"),
            ("limits: {default: {rate: fast}}\n", ":1:26: limits.default.rate: 'fast' is not a rate"),
        ]
        self.assertTrue(os.path.exists(users))
        for i, (text, want) in enumerate(cases):
            with self.subTest(i=i, text=text):
                path = self.write("c%d.yaml" % i, text)
                self.check_fails(path, path + want)

    def test_unreadable_file(self):
        path = os.path.join(self.dir, "nope.yaml")
        self.check_fails(path, path + ":1:1: cannot read: No such file or directory")
        self.check_fails(self.dir, self.dir + ":1:1: cannot read: Is a directory")

    def test_cross_checks_point_at_the_file(self):
        path = self.write("c.yaml", "high-water: 64k\nlow-water: 64k\n")
        self.check_fails(path, path + ":2:1: --low-water must be below --high-water")
        # Fixed by a flag: the flag wins over the file.
        r = run("--check-config", path, "--low-water", "16k")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("\nlow-water: 16k  # flag\n", r.stdout)

    # -- hashes made by the real tools

    @H.needs_tool(HTPASSWD and MKPASSWD, "htpasswd (apache2-utils) and mkpasswd (whois)")
    def test_real_tool_hashes(self):
        def tool(*argv):
            return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()

        good = [
            tool(HTPASSWD, "-nbB", "-C", "5", "bcrypt", "pw"),
            tool(HTPASSWD, "-nb", "-2", "sha256", "pw"),
            tool(HTPASSWD, "-nb", "-5", "sha512", "pw"),
            "yescrypt:" + tool(MKPASSWD, "-m", "yescrypt", "pw"),
            "sha512b:" + tool(MKPASSWD, "-m", "sha-512", "pw"),
        ]
        pw = self.write("users", "\n".join(good) + "\n")
        cfg = self.write("c.yaml", "auth: {htpasswd: users}\n"
                                   "groups: {all: [bcrypt, sha256, sha512, yescrypt, sha512b]}\n")
        r = run("--check-config", cfg)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("# 5 user(s)", r.stdout)

        weak = [
            (tool(HTPASSWD, "-nbm", "md5", "pw"), "MD5 $apr1$"),
            (tool(HTPASSWD, "-nbs", "sha1", "pw"), "{SHA}"),
            (tool(HTPASSWD, "-nbd", "des", "pw"), "DES crypt"),
            (tool(HTPASSWD, "-nbp", "plain", "pw"), "plain text"),
        ]
        for line, what in weak:
            with self.subTest(what=what):
                with open(pw, "w", encoding="utf-8") as f:
                    f.write("\n".join(good) + "\n" + line + "\n")
                user = line.split(":")[0]
                want = "%s:1:18: auth.htpasswd: %s:6: user '%s': weak or unknown hash format (%s" % (cfg, pw, user, what)
                self.check_fails(cfg, want)

        with open(pw, "w", encoding="utf-8") as f:
            f.write("\n".join(good) + "\n" + good[0] + "\n")
        self.check_fails(cfg, "%s:1:18: auth.htpasswd: %s:6: user 'bcrypt': given twice (first on line 1)" % (cfg, pw))

    # -- flags over the file

    def test_flags_override_file(self):
        path = self.write("c.yaml", "connect-timeout: 7s\nidle-timeout: 8s\n"
                                    "listen: [tcp://127.0.0.1:9001, tcp://127.0.0.1:9002]\n"
                                    "allow-net: [loopback, private]\n")
        r = run("--check-config", path, "--idle-timeout", "9s", "--listen", "tcp://127.0.0.1:9100",
                "--allow-net", "10.0.0.0/8", "--allow-net", "cgnat")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        self.assertIn("\nconnect-timeout: 7s  # file %s:1\n" % path, out)
        self.assertIn("\nidle-timeout: 9s  # flag\n", out)
        self.assertIn('\nlisten: ["tcp://127.0.0.1:9100"]  # flag\n', out)
        self.assertIn('\nallow-net: ["10.0.0.0/8", "cgnat"]  # flag\n', out)
        self.assertIn("\nheader-timeout: 10s  # default\n", out)
        # A bad flag is still reported as a flag, the file being fine.
        r = run("--check-config", path, "--idle-timeout", "soon")
        self.assertEqual(r.returncode, 2)
        self.assertTrue(r.stderr.startswith("h2tunnel: invalid value for --idle-timeout: 'soon'"), r.stderr)

    def test_roundtrip(self):
        shutil.copy(os.path.join(os.path.dirname(EXAMPLE), "users.htpasswd"), self.dir)
        shutil.copy(EXAMPLE, self.dir)
        first = run("--check-config", os.path.join(self.dir, "h2tunnel.yaml"))
        self.assertEqual(first.returncode, 0, first.stderr)
        again = self.write("again.yaml", first.stdout)
        second = run("--check-config", again)
        self.assertEqual(second.returncode, 0, second.stderr + first.stdout)
        self.assertEqual(body(first.stdout), body(second.stdout))

    # -- a running proxy takes the file's values

    def test_proxy_runs_with_file(self):
        allow = self.write("allow.yaml", "allow-net: [loopback]\nallow-ports: \"*\"\nconnect-timeout: 5s\n")
        deny = self.write("deny.yaml", "allow-ports: \"*\"\n")
        with H.EchoOrigin() as echo:
            target = echo.addr
            with H.Proxy(["--config", allow], tls=False, allow_loopback=False, any_port=False) as p:
                s = p.tunnel(target)
                with s:
                    s.sendall(b"through the file's policy")
                    self.assertEqual(H.recv_exact(s, 25), b"through the file's policy")
            with H.Proxy(["--config", deny], tls=False, allow_loopback=False, any_port=False) as p:
                with self.assertRaises(H.TunnelRefused) as cm:
                    p.tunnel(target)
                self.assertEqual(cm.exception.resp.status, 403)


if __name__ == "__main__":
    H.main()
