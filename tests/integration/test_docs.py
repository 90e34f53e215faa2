"""The README documents every option: its Options block is exactly `h2tunnel --help`."""
import os
import subprocess
import sys
import unittest

BIN = os.environ.get("H2TUNNEL_BIN", "build/h2tunnel")
SRC = os.environ.get("H2T_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", ".."))


class DocsTest(unittest.TestCase):
    def test_help_matches_readme(self):
        out = subprocess.run([BIN, "--help"], capture_output=True, text=True, check=True).stdout
        with open(os.path.join(SRC, "README.md"), encoding="utf-8") as f:
            readme = f.read()
        self.assertIn(out.rstrip("\n"), readme, "README's Options block is out of date: paste `h2tunnel --help`")

    def test_bad_option_fails(self):
        r = subprocess.run([BIN, "--idle-timeout", "soon"], capture_output=True, text=True)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--idle-timeout", r.stderr)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import harness  # noqa: E402
    harness.main()
