#!/usr/bin/env python3
"""Pastes `h2tunnel --help` into README.md's Options block (tests/integration/test_docs.py checks it)."""
import subprocess
import sys

binary = sys.argv[1] if len(sys.argv) > 1 else "build/h2tunnel"
help_text = subprocess.run([binary, "--help"], capture_output=True, text=True, check=True).stdout.rstrip("\n")
with open("README.md", encoding="utf-8") as f:
    readme = f.read()
start = readme.index("```\nUsage: h2tunnel") + 4
end = readme.index("```", start)
with open("README.md", "w", encoding="utf-8") as f:
    f.write(readme[:start] + help_text + "\n" + readme[end:])
