"""The layering, checked on every #include "..." in the tree (ctest: lint/layering).

Folders stack one way; each may include only the folders listed for it in ALLOWED (and itself):

    src  <-  tunnel  <-  proxy  <-  h1, h2  <-  src/main.c (the composition root)
    src  <-  certs;      tunnel  <-  load

Nothing below the front ends includes them, the front ends never include each other, and the
listener finds a front end through the table src/main.c fills at start-up (src/frontend.h). On
top of the folder rules, no two modules (src/conn.c + src/conn.h = src/conn) may include each
other, directly or around a cycle. README.md's Layout table must say the same as ALLOWED.

Usage: layering.py [TOP]   (TOP defaults to the source tree this file is in). Before checking the
tree it checks itself on a small tree with one planted problem of each kind.
"""
import os
import re
import shutil
import sys
import tempfile

# Which project folders each folder may include. Keep in step with README's Layout table (checked).
ALLOWED = {
    "src": {"src"},
    "certs": {"src", "certs"},
    "tunnel": {"src", "tunnel"},
    "proxy": {"src", "tunnel", "proxy"},
    "h1": {"src", "tunnel", "proxy", "h1"},
    "h2": {"src", "tunnel", "proxy", "h2"},
    "load": {"load", "tunnel"},
}
# The program's composition root fills the front-end table and so may include every layer.
ROOTS = {"src/main.c"}
# Folders that hold C but are not layers of the program.
NOT_LAYERS = {"tests", "bench"}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
TABLE_ROW = re.compile(r"^\|\s*`([a-z0-9_]+)/`\s*\|[^|]*\|([^|]*)\|\s*$")
FOLDER = re.compile(r"`([a-z0-9_]+)/`")


def project_files(top):
    for d in sorted(ALLOWED):
        base = os.path.join(top, d)
        for root, dirs, files in os.walk(base):
            dirs.sort()
            for name in sorted(files):
                if name.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(root, name), top).replace(os.sep, "/")


def unknown_folders(top):
    """Top-level folders with C sources that no rule covers (a new layer must get one)."""
    out = []
    for d in sorted(os.listdir(top)):
        if d in ALLOWED or d in NOT_LAYERS or d.startswith((".", "build")):
            continue
        base = os.path.join(top, d)
        if not os.path.isdir(base):
            continue
        for _root, _dirs, files in os.walk(base):
            if any(f.endswith((".c", ".h")) for f in files):
                out.append(d)
                break
    return out


def includes(top, rel):
    with open(os.path.join(top, rel), encoding="utf-8", errors="replace") as f:
        return [i for i in INCLUDE.findall(f.read()) if "/" in i and i.split("/")[0] in ALLOWED]


def module(rel):
    """src/conn.c and src/conn.h are one module: src/conn."""
    return rel.rsplit(".", 1)[0]


def find_cycle(graph):
    """A module-level include cycle as a list of modules, or None (iterative DFS)."""
    color = {}
    for start in sorted(graph):
        if color.get(start):
            continue
        stack = [(start, iter(sorted(graph[start])))]
        path = [start]
        color[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[node] = 2
                stack.pop()
                path.pop()
                continue
            if color.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if not color.get(nxt):
                color[nxt] = 1
                path.append(nxt)
                stack.append((nxt, iter(sorted(graph.get(nxt, ())))))
    return None


def readme_rules(top):
    """{folder: set of folders} from README.md's Layout table (its "may include" column)."""
    rules = {}
    path = os.path.join(top, "README.md")
    if not os.path.exists(path):
        return rules
    with open(path, encoding="utf-8") as f:
        text = f.read()
    start = text.find("\n## Layout")
    if start < 0:
        return rules
    end = text.find("\n## ", start + 1)
    for line in text[start:end if end > 0 else len(text)].splitlines():
        m = TABLE_ROW.match(line)
        if m and m.group(1) in ALLOWED:
            rules[m.group(1)] = set(FOLDER.findall(m.group(2)))
    return rules


def check(top):
    problems = []
    graph = {}
    for d in unknown_folders(top):
        problems.append("%s/ holds C sources but has no rule: add it to ALLOWED and README's Layout table" % d)
    for rel in project_files(top):
        folder = rel.split("/")[0]
        for inc in includes(top, rel):
            target = inc.split("/")[0]
            if rel not in ROOTS and target not in ALLOWED[folder]:
                problems.append("%s includes %s: %s/ may include only %s/" %
                                (rel, inc, folder, "/, ".join(sorted(ALLOWED[folder]))))
            if rel in ROOTS:
                continue
            if module(inc) != module(rel):
                graph.setdefault(module(rel), set()).add(module(inc))
    cycle = find_cycle(graph)
    if cycle:
        problems.append("include cycle: " + " -> ".join(cycle))
    documented = readme_rules(top)
    for folder in sorted(ALLOWED):
        if folder not in documented:
            problems.append("README.md's Layout table has no row for %s/ saying what it may include" % folder)
        elif documented[folder] != ALLOWED[folder]:
            problems.append("README.md's Layout table says %s/ may include %s; the rule is %s" %
                            (folder, ", ".join(sorted(documented[folder])) or "nothing",
                             ", ".join(sorted(ALLOWED[folder]))))
    return problems


def self_test():
    """The checker finds one planted problem of each kind, and nothing in a clean tree."""
    files = {
        "src/a.c": '#include "src/a.h"\n#include "src/b.h"\n',
        "src/a.h": "",
        "src/b.c": '#include "src/b.h"\n',
        "src/b.h": "",
        "src/main.c": '#include "h1/x.h"\n#include "h2/y.h"\n',
        "h1/x.c": '#include "h1/x.h"\n#include "src/a.h"\n',
        "h1/x.h": "",
        "h2/y.c": '#include "h2/y.h"\n',
        "h2/y.h": "",
        "README.md": "# t\n\n## Layout\n\n| folder | what | may include |\n|---|---|---|\n" +
                     "".join("| `%s/` | x | %s |\n" % (d, ", ".join("`%s/`" % i for i in sorted(a)))
                             for d, a in sorted(ALLOWED.items())) + "\n## Next\n",
    }
    planted = {
        "down-and-up": ("src/b.c", '#include "src/b.h"\n#include "h2/y.h"\n', "src/b.c includes h2/y.h"),
        "sideways": ("h2/y.c", '#include "h2/y.h"\n#include "h1/x.h"\n', "h2/y.c includes h1/x.h"),
        "cycle": ("src/b.h", '#include "src/a.h"\n', "include cycle: src/a -> src/b -> src/a"),
        "new folder": ("zz/z.c", "", "zz/ holds C sources but has no rule"),
        "readme": ("README.md", files["README.md"].replace("| `h1/` | x | `h1/`, ", "| `h1/` | x | `h2/`, `h1/`, "),
                   "README.md's Layout table says h1/ may include"),
    }

    def build(over):
        top = tempfile.mkdtemp(prefix="h2t-layering-")
        for rel, text in dict(files, **over).items():
            os.makedirs(os.path.dirname(os.path.join(top, rel)) or top, exist_ok=True)
            with open(os.path.join(top, rel), "w", encoding="utf-8") as f:
                f.write(text)
        return top

    failures = []
    top = build({})
    try:
        clean = check(top)
    finally:
        shutil.rmtree(top)
    if clean:
        failures.append("a clean tree is reported: %s" % clean)
    for name, (rel, text, expect) in sorted(planted.items()):
        top = build({rel: text})
        try:
            got = check(top)
        finally:
            shutil.rmtree(top)
        if not any(p.startswith(expect) for p in got):
            failures.append("planted %s problem not found (want %r, got %r)" % (name, expect, got))
    return failures


def main():
    failures = self_test()
    for f in failures:
        print("layering: self-test: " + f)
    if failures:
        return 1
    top = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
    problems = check(os.path.abspath(top))
    for p in problems:
        print("layering: " + p)
    if problems:
        print("layering: %d problem(s); see the Layout table in README.md" % len(problems))
        return 1
    print("layering: ok (self-test passed; %d folders, no include cycle)" % len(ALLOWED))
    return 0


if __name__ == "__main__":
    sys.exit(main())
