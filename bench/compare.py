#!/usr/bin/env python3
"""bench/compare.py: runs the same CONNECT workloads against h2tunnel and its peers on loopback and
prints one table of figures and ratios. Normally started by bench/compare (which installs the
peers and builds the binaries first); see bench/README.md.

Every system runs pinned to CPU 0, the load tool and the origins to CPU 1. CPU per unit of work is
the delta of utime+stime (/proc/PID/stat) summed over the system's whole process tree across one
load run; memory is PSS from /proc/PID/smaps_rollup summed over the same tree. Each row is
repeated --reps times (rows interleaved across systems) and the median is reported.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

PROXY_CPU = "0"
LOAD_CPU = "1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
MiB = 1 << 20

# ------------------------------------------------------------------------------------------------
# processes


class Procs:
    """Every process this script starts, each in its own session so its whole group can be
    stopped by its id. stop_all() runs on normal exit, on exceptions and on SIGINT/SIGTERM."""

    def __init__(self):
        self.live = []

    def start(self, cmd, log, cpu=None, env=None, cwd=None, stdin=subprocess.DEVNULL):
        if cpu is not None:
            cmd = ["taskset", "-c", cpu] + list(cmd)
        out = open(log, "ab")
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=stdin, env=env,
                             cwd=cwd, start_new_session=True)
        out.close()
        self.live.append(p)
        return p

    def stop(self, p, grace=3.0):
        if p is None:
            return
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # the group may still hold children (squid kids, apache workers) after the leader exited
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(2)
        except subprocess.TimeoutExpired:
            pass
        if p in self.live:
            self.live.remove(p)

    def stop_all(self):
        for p in list(reversed(self.live)):
            self.stop(p, grace=2.0)


PROCS = Procs()


def ppid_map():
    kids = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
        except OSError:
            continue
        ppid = int(st[st.rindex(")") + 2:].split()[1])
        kids.setdefault(ppid, []).append(int(d))
    return kids


def proc_tree(roots):
    kids = ppid_map()
    seen, todo = [], list(roots)
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.append(p)
        todo.extend(kids.get(p, []))
    return seen


def cpu_seconds(pids):
    return cpu_times(pids)[0]


def cpu_times(pids):
    """(utime + stime, stime) in seconds over |pids|: the kernel's share tells what bounds a
    bulk row (loopback TCP in the kernel versus TLS and copies in the process)."""
    total = kern = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
        kern += int(fields[12])
    return total / CLK_TCK, kern / CLK_TCK


def pss_kib(pids):
    total = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10.0, procs=()):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        for p in procs:
            if p.poll() is not None:
                return f"exited with status {p.returncode}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return None
        except OSError:
            time.sleep(0.05)
    return f"port {port} not accepting after {timeout:.0f}s"


def established(port):
    """TCP connections in ESTABLISHED state whose local port is |port| (the origin's side), from
    sock_diag via ss(8): reading /proc/net/tcp while thousands of sockets come and go skips
    entries."""
    try:
        out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                             capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return -1
    return sum(1 for l in out.splitlines() if l.strip())


def tail(path, n=3):
    try:
        with open(path, errors="replace") as f:
            lines = [l.strip() for l in f if l.strip()]
        return " | ".join(lines[-n:])[:300]
    except OSError:
        return ""


def fill(template, out, **kw):
    with open(template) as f:
        s = f.read()
    for k, v in kw.items():
        s = s.replace(f"@{k}@", str(v))
    with open(out, "w") as f:
        f.write(s)


# ------------------------------------------------------------------------------------------------
# systems under test


class System:
    """One proxy under test: its processes (all of whose CPU and memory count), its front-end URLs
    by protocol ("h1", "h1tls", "h2") and the CA that verifies its TLS front end."""

    name = "?"
    protos = ()
    healthz = None  # "https://127.0.0.1:P/healthz" for h2load, or None
    note = ""

    def __init__(self, env):
        self.env = env
        self.dir = os.path.join(env.tmp, self.name.replace("+", "-"))
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o777)
        self.procs = []
        self.urls = {}
        self.cacert = env.cacert
        self.error = None

    def available(self):
        return None

    def launch(self):
        raise NotImplementedError

    def start(self):
        self.error = self.available()
        if self.error:
            return False
        try:
            self.error = self.launch()
        except Exception as e:  # a peer that fails to start must not stop the run
            self.error = f"start failed: {e}"
        if self.error:
            self.stop()
            return False
        return True

    def stop(self):
        for p in reversed(self.procs):
            PROCS.stop(p)
        self.procs = []

    def restart(self):
        self.stop()
        return self.start()

    def pids(self):
        return proc_tree([p.pid for p in self.procs if p.poll() is None])

    def alive(self):
        return bool(self.procs) and all(p.poll() is None for p in self.procs)

    def log(self, what):
        return os.path.join(self.dir, f"{what}.log")

    def squid(self, tag, https_port=None, auth_lines=""):
        """A Squid of this system's own (for squid itself and behind haproxy / nghttpx)."""
        d = os.path.join(self.dir, tag)
        os.makedirs(d, exist_ok=True)
        shutil.chown(d, user="proxy")
        port = free_port()
        https = ""
        if https_port:
            https = (f"https_port 127.0.0.1:{https_port} tls-cert={self.env.pcerts}/cert.pem "
                     f"tls-key={self.env.pcerts}/key.pem")
        fill(os.path.join(self.env.peers, "squid.conf"), os.path.join(d, "squid.conf"), PORT=port,
             DIR=d, HTTPS_PORT_LINE=https, MAXFD=self.env.nofile, AUTH_LINES=auth_lines)
        p = PROCS.start(["squid", "-N", "-f", os.path.join(d, "squid.conf")], self.log(tag),
                        cpu=PROXY_CPU)
        self.procs.append(p)
        err = wait_port(port, 15, [p])
        if not err and https_port:
            err = wait_port(https_port, 5, [p])
        if err:
            return None, f"squid: {err}: {tail(os.path.join(d, 'cache.log'))} {tail(self.log(tag))}"
        return port, None


def which(binary):
    return shutil.which(binary) or (os.path.exists(binary) and binary)


BENCH_USER, BENCH_PASS = "bench", "bench-pw"
STORM_USERS = 200


def write_htpasswd(path, users):
    """One bcrypt hash (cost 10, htpasswd -B) shared by every user name: each name still costs a
    full check (the cache is keyed by the whole Proxy-Authorization value)."""
    r = subprocess.run(["htpasswd", "-nbB", "-C", "10", "x", BENCH_PASS], capture_output=True,
                       text=True, check=True)
    h = r.stdout.strip().split(":", 1)[1]
    with open(path, "w") as f:
        f.write("".join(f"{u}:{h}\n" for u in users))


class H2tunnel(System):
    name = "h2tunnel"
    # h1auth/h2auth: the same listeners, the load tool sending Proxy-Authorization: Basic.
    # h1stall: the stalled-tunnels memory run (h2tunnel and h2tunnel-64m only).
    protos = ("h1", "h1tls", "h2", "h1auth", "h2auth", "h1stall")
    extra_args = ()

    def available(self):
        if not os.access(self.env.h2tunnel, os.X_OK):
            return f"not built: {self.env.h2tunnel}"
        return None

    def launch(self):
        port, tport, aport = free_port(), free_port(), free_port()
        state = os.path.join(self.dir, "state")
        # Authentication is configured; loopback clients without credentials are admitted
        # anonymously (no-auth-nets), so the other rows measure what they always did, and the
        # *auth rows send Basic credentials, which are checked (bcrypt cost 10, then the cache).
        users = os.path.join(self.dir, "users")
        write_htpasswd(users, [BENCH_USER] + [f"u{i}" for i in range(STORM_USERS)])
        conf = os.path.join(self.dir, "h2tunnel.yaml")
        with open(conf, "w") as f:
            f.write(f"auth: {{htpasswd: {users}, no-auth-nets: [loopback], max-failures: unlimited}}\n")
        p = PROCS.start([self.env.h2tunnel, "--config", conf, "--workers", "1", "--allow-net", "loopback",
                         "--allow-ports", "*", "--listen", f"tcp://127.0.0.1:{port}",
                         "--listen", f"tls://127.0.0.1:{tport}",
                         "--listen", f"tcp://127.0.0.1:{aport}?admin", "--state-dir", state,
                         "--access-log", "/dev/null", "--log-level", "warn"] + list(self.extra_args)
                        + shlex.split(os.environ.get("H2TUNNEL_ARGS", "")),  # e.g. "--auth-hash-concurrency 4"
                        self.log("h2tunnel"), cpu=PROXY_CPU)
        self.procs.append(p)
        err = wait_port(port, 10, [p]) or wait_port(tport, 5, [p])
        if err:
            return f"{err}: {tail(self.log('h2tunnel'))}"
        self.cacert = os.path.join(state, "ca.pem")
        self.urls = {"h1": f"http://127.0.0.1:{port}", "h1tls": f"https://127.0.0.1:{tport}",
                     "h2": f"h2://127.0.0.1:{tport}", "h1auth": f"http://127.0.0.1:{port}",
                     "h2auth": f"h2://127.0.0.1:{tport}", "h1stall": f"http://127.0.0.1:{port}",
                     "h2mem": f"h2://127.0.0.1:{tport}", "admin": f"http://127.0.0.1:{aport}"}
        self.healthz = f"https://127.0.0.1:{tport}/healthz"
        return None


class H2tunnelMem(H2tunnel):
    """The same h2tunnel under a small memory budget (issue 12 item 4): one fast tunnel must keep
    its speed, stalled tunnels must stay within the budget."""
    name = "h2tunnel-64m"
    protos = ("h2mem", "h1stall")
    extra_args = ("--memory-limit", "64m")
    note = "Release build, --workers 1, --memory-limit 64m"


class Squid(System):
    name = "squid"
    protos = ("h1", "h1tls", "h1auth")
    note = ("Squid 5.7 (GnuTLS https_port), one process (-N), no cache, no access log; Basic "
            "credentials checked by basic_ncsa_auth (4 helpers, credentialsttl 5 min) when sent")

    def available(self):
        return None if which("squid") else "squid not installed"

    def launch(self):
        tport = free_port()
        # As h2tunnel: loopback clients without credentials pass; credentials sent are checked
        # (the same htpasswd: bcrypt cost 10) by Squid's own helper, with its cache.
        users = os.path.join(self.dir, "users")
        write_htpasswd(users, [BENCH_USER] + [f"u{i}" for i in range(STORM_USERS)])
        os.chmod(users, 0o644)
        auth = (f"auth_param basic program /usr/lib/squid/basic_ncsa_auth {users}\n"
                "auth_param basic children 4\nauth_param basic credentialsttl 5 minutes\n"
                "acl hasauth req_header Proxy-Authorization .\nacl authed proxy_auth REQUIRED\n"
                "http_access allow lo hasauth authed\nhttp_access deny hasauth")
        port, err = self.squid("squid", https_port=tport, auth_lines=auth)
        if err:
            return err
        self.urls = {"h1": f"http://127.0.0.1:{port}", "h1tls": f"https://127.0.0.1:{tport}",
                     "h1auth": f"http://127.0.0.1:{port}"}
        return None


class Tinyproxy(System):
    name = "tinyproxy"
    protos = ("h1",)
    note = "tinyproxy 1.11, one thread per client"

    def available(self):
        return None if which("tinyproxy") else "tinyproxy not installed"

    def launch(self):
        port = free_port()
        conf = os.path.join(self.dir, "tinyproxy.conf")
        fill(os.path.join(self.env.peers, "tinyproxy.conf"), conf, PORT=port, DIR=self.dir)
        p = PROCS.start(["tinyproxy", "-d", "-c", conf], self.log("tinyproxy"), cpu=PROXY_CPU)
        self.procs.append(p)
        err = wait_port(port, 10, [p])
        if err:
            return f"{err}: {tail(self.log('tinyproxy'))}"
        self.urls = {"h1": f"http://127.0.0.1:{port}"}
        return None


class Haproxy(System):
    name = "haproxy+squid"
    protos = ("h1", "h1tls", "h2")
    note = "HAProxy 2.6 (1 thread) in front of its own Squid; CPU and PSS are both processes'"

    def available(self):
        if not which("haproxy"):
            return "haproxy not installed"
        return None if which("squid") else "squid not installed (needed behind haproxy)"

    def launch(self):
        sport, err = self.squid("squid")
        if err:
            return err
        port, tport = free_port(), free_port()
        conf = os.path.join(self.dir, "haproxy.cfg")
        fill(os.path.join(self.env.peers, "haproxy.cfg"), conf, PORT=port, TLS_PORT=tport,
             SQUID_PORT=sport, DIR=self.dir, CERTS=self.env.pcerts)
        p = PROCS.start(["haproxy", "-db", "-f", conf], self.log("haproxy"), cpu=PROXY_CPU)
        self.procs.append(p)
        err = wait_port(port, 10, [p]) or wait_port(tport, 5, [p])
        if err:
            return f"haproxy: {err}: {tail(self.log('haproxy'))}"
        self.urls = {"h1": f"http://127.0.0.1:{port}", "h1tls": f"https://127.0.0.1:{tport}",
                     "h2": f"h2://127.0.0.1:{tport}"}
        self.healthz = f"https://127.0.0.1:{tport}/healthz"
        return None


class Nghttpx(System):
    name = "nghttpx+squid"
    protos = ("h1", "h1tls", "h2")
    note = "nghttpx 1.52 --http2-proxy (1 worker) in front of its own Squid; both count"

    def available(self):
        if not which("nghttpx"):
            return "nghttpx not installed (nghttp2-proxy)"
        return None if which("squid") else "squid not installed (needed behind nghttpx)"

    def launch(self):
        sport, err = self.squid("squid")
        if err:
            return err
        port, tport = free_port(), free_port()
        conf = os.path.join(self.dir, "nghttpx.conf")
        fill(os.path.join(self.env.peers, "nghttpx.conf"), conf, PORT=port, TLS_PORT=tport,
             SQUID_PORT=sport, DIR=self.dir, CERTS=self.env.pcerts)
        p = PROCS.start(["nghttpx", f"--conf={conf}"], self.log("nghttpx"), cpu=PROXY_CPU)
        self.procs.append(p)
        err = wait_port(port, 10, [p]) or wait_port(tport, 5, [p])
        if err:
            return (f"nghttpx: {err}: {tail(self.log('nghttpx'))} "
                    f"{tail(os.path.join(self.dir, 'nghttpx.err'))}")
        self.urls = {"h1": f"http://127.0.0.1:{port}", "h1tls": f"https://127.0.0.1:{tport}",
                     "h2": f"h2://127.0.0.1:{tport}"}
        return None


class Apache(System):
    name = "apache2"
    protos = ("h1", "h1tls", "h2")
    note = ("Apache 2.4 mpm_event, 1 process x 64 threads; mod_proxy_connect holds a worker thread "
            "per tunnel and mod_http2 activates only a few CONNECT streams per connection")
    max_tunnels = 60

    def available(self):
        return None if which("apache2") else "apache2 not installed"

    def launch(self):
        port, tport = free_port(), free_port()
        conf = os.path.join(self.dir, "apache2.conf")
        fill(os.path.join(self.env.peers, "apache2.conf"), conf, PORT=port, TLS_PORT=tport,
             DIR=self.dir, CERTS=self.env.pcerts)
        p = PROCS.start(["apache2", "-f", conf, "-DFOREGROUND"], self.log("apache2"),
                        cpu=PROXY_CPU)
        self.procs.append(p)
        err = wait_port(port, 10, [p]) or wait_port(tport, 5, [p])
        if err:
            return f"{err}: {tail(self.log('apache2'))} {tail(os.path.join(self.dir, 'error.log'))}"
        self.urls = {"h1": f"http://127.0.0.1:{port}", "h1tls": f"https://127.0.0.1:{tport}",
                     "h2": f"h2://127.0.0.1:{tport}"}
        return None


class Trafficserver(System):
    """Apache Traffic Server 9.2 (Debian) as a forward proxy: its own runroot (traffic_layout init)
    with a copy of /etc/trafficserver, cache off, one exec thread, on cleartext HTTP/1.1."""
    name = "trafficserver"
    protos = ("h1",)
    note = ("Apache Traffic Server 9.2, forward proxy (remap not required), 1 exec thread, "
            "HTTP cache off, Via off")

    def available(self):
        if not which("traffic_server") or not which("traffic_layout"):
            return "trafficserver not installed"
        return None

    def launch(self):
        port = free_port()
        d = self.dir
        rr = os.path.join(d, "rr")
        subprocess.run(["traffic_layout", "init", "--path", rr], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=120)
        etc = os.path.join(d, "etc")
        shutil.copytree("/etc/trafficserver", etc)
        ours = {"proxy.config.http.server_ports": f"STRING {port}",
                "proxy.config.url_remap.remap_required": "INT 0",
                "proxy.config.reverse_proxy.enabled": "INT 0",
                "proxy.config.http.cache.http": "INT 0",
                "proxy.config.exec_thread.autoconfig.enabled": "INT 0",
                "proxy.config.exec_thread.limit": "INT 1",
                "proxy.config.accept_threads": "INT 0",
                "proxy.config.task_threads": "INT 1",
                "proxy.config.http.insert_request_via_str": "INT 0",
                "proxy.config.http.insert_response_via_str": "INT 0",
                "proxy.config.http.connect_ports": "STRING 1-65535",
                "proxy.config.log.logging_enabled": "INT 0"}
        rec = os.path.join(etc, "records.config")
        lines = [ln for ln in open(rec) if not any(f" {k} " in ln for k in ours)]
        lines += [f"CONFIG {k} {v}\n" for k, v in ours.items()]
        with open(rec, "w") as f:
            f.writelines(lines)
        dirs = {"sysconfdir": etc}
        for k in ("runtimedir", "logdir", "cachedir", "datadir"):
            dirs[k] = os.path.join(d, k)
            os.makedirs(dirs[k], exist_ok=True)
        y = os.path.join(rr, "runroot.yaml")
        text = open(y).read()
        for k, v in dirs.items():
            text = re.sub(rf"(?m)^{k}: .*$", f"{k}: {v}", text)
        with open(y, "w") as f:
            f.write(text)
        subprocess.run(["chown", "-R", "trafficserver:"] + list(dirs.values()), check=False)
        p = PROCS.start(["traffic_server", f"--run-root={y}"], self.log("trafficserver"), cpu=PROXY_CPU)
        self.procs.append(p)
        err = wait_port(port, 20, [p])
        if err:
            return f"{err}: {tail(self.log('trafficserver'))}"
        self.urls = {"h1": f"http://127.0.0.1:{port}"}
        return None


SYSTEMS = [H2tunnel, H2tunnelMem, Squid, Tinyproxy, Haproxy, Nghttpx, Apache, Trafficserver]

# ------------------------------------------------------------------------------------------------
# workloads


def prof(quick):
    if quick:
        return dict(rate_d="1s", bulk=128 * MiB, bulk16=8 * MiB, rr_d="1s", idle=[1000],
                    idle_hold=0.5, h2load_n=200000, reps=1, idle_tls=False, storm_d="6s",
                    fwd_n=20000, stalled=500)
    return dict(rate_d="3s", bulk=512 * MiB, bulk16=32 * MiB, rr_d="2s", idle=[1000, 5000],
                idle_hold=1.0, h2load_n=500000, reps=3, idle_tls=True, storm_d="8s",
                fwd_n=30000, stalled=2000)


class Row:
    """One table line: a workload, the metric shown, and the target from the issue."""

    def __init__(self, key, label, proto, run, metric, unit, better, target=None, anchor=None,
                 fmt="{:.0f}"):
        self.key, self.label, self.proto, self.run = key, label, proto, run
        self.metric, self.unit, self.better = metric, unit, better
        self.target, self.anchor, self.fmt = target, anchor, fmt


def make_rows(P):
    """Runs ("run" keys) are shared between rows: one rate run gives CPU per tunnel and tunnels/s."""
    runs = {
        # h1 rate: the client closes first (Squid and nghttpx tear a TLS connection down in a
        # way the load tool counts as an error when the origin closes first); h2 rate: the origin
        # closes first (nghttpx does not forward a client's END_STREAM).
        "rate_h1": dict(proto="h1", mode="rate", args=["-c", "32", "-d", P["rate_d"]],
                        target="echo"),
        "rate_h1tls": dict(proto="h1tls", mode="rate", args=["-c", "32", "-d", P["rate_d"]],
                           target="echo"),
        "rate_h2": dict(proto="h2", mode="rate", args=["-c", "4", "-m", "8", "-d", P["rate_d"]],
                        target="echo1"),
        "bulk_h1": dict(proto="h1", mode="bulk", args=["-c", "1", "-n", "1", "--size",
                                                       str(P["bulk"]), "--direction", "down"],
                        target="source"),
        "bulk_h1_up": dict(proto="h1", mode="bulk", args=["-c", "1", "-n", "1", "--size",
                                                          str(P["bulk"]), "--direction", "up"],
                           target="sink"),
        "bulk_h2_down": dict(proto="h2", mode="bulk", args=["-c", "1", "-m", "1", "-n", "1",
                                                            "--size", str(P["bulk"]),
                                                            "--direction", "down"],
                             target="source"),
        "bulk_h2_up": dict(proto="h2", mode="bulk", args=["-c", "1", "-m", "1", "-n", "1",
                                                          "--size", str(P["bulk"]),
                                                          "--direction", "up"],
                           target="sink"),
        "bulk_h2_16": dict(proto="h2", mode="bulk", args=["-c", "1", "-m", "16", "-n", "16",
                                                          "--size", str(P["bulk16"]),
                                                          "--direction", "down"],
                           target="source"),
        "rr_h2": dict(proto="h2", mode="rr", args=["-c", "1", "-m", "1", "--msg", "64", "-d",
                                                   P["rr_d"], "-n", "1000000"], target="echo"),
        "rr_h1": dict(proto="h1", mode="rr", args=["-c", "1", "--msg", "64", "-d", P["rr_d"],
                                                   "-n", "1000000"], target="echo"),
        # The same rate runs with Basic credentials: the first tunnel pays for bcrypt, the rest
        # are admitted from the cache (warm).
        "rate_h1_auth": dict(proto="h1auth", mode="rate", args=["-c", "32", "-d", P["rate_d"]],
                             target="echo"),
        "rate_h2_auth": dict(proto="h2auth", mode="rate",
                             args=["-c", "4", "-m", "8", "-d", P["rate_d"]], target="echo1"),
        # A round trip inside one running tunnel while STORM_USERS new users authenticate at once
        # (cold cache, bcrypt cost 10 each): the loop must not block on a hash.
        "rr_h2_auth_storm": dict(proto="h2auth", mode="rr", storm=STORM_USERS,
                                 args=["-c", "1", "-m", "1", "--msg", "64", "-d", P["storm_d"],
                                       "-n", "1000000"], target="echo"),
        # The same over h1, so that Squid (basic_ncsa_auth) has a column beside it.
        "rr_h1_auth_storm": dict(proto="h1auth", mode="rr", storm=STORM_USERS,
                                 args=["-c", "1", "--msg", "64", "-d", P["storm_d"], "-n", "1000000"],
                                 target="echo"),
    }
    for n in P["idle"]:
        runs[f"idle_h1_{n}"] = dict(proto="h1", mode="idle", count=n, target="echo",
                                    args=["-c", str(n)])
        runs[f"idle_h2_{n}"] = dict(proto="h2", mode="idle", count=n, target="echo",
                                    args=["-c", str(max(1, n // 100)), "-m", "100"])
    if P["idle_tls"]:
        n = P["idle"][-1]
        runs[f"idle_h1tls_{n}"] = dict(proto="h1tls", mode="idle", count=n, target="echo",
                                       args=["-c", str(n)])
    runs["h2load"] = dict(proto="h2", mode="h2load", target=None, args=[])
    # Forwarding (issue 11): small GETs (100 B from an HTTP origin) through each proxy as a
    # forward proxy. h1: ab -k (keep-alive, absolute-form through -X); h2: h2load with :scheme
    # http and :authority the origin on streams to the proxy (what curl --proxy-http2 sends).
    runs["fwd_h1"] = dict(proto="h1", mode="fwd_ab", target="http", args=[])
    runs["fwd_h2"] = dict(proto="h2", mode="fwd_h2load", target="http", args=[])
    # The memory budget (issue 12 item 4): one fast tunnel alone under --memory-limit 64m, and
    # many stalled tunnels (origin pushing, client never reading) with and without the budget.
    runs["bulk_h2_down_mem"] = dict(runs["bulk_h2_down"], proto="h2mem")
    runs["bulk_h2_up_mem"] = dict(runs["bulk_h2_up"], proto="h2mem")
    runs["stalled_h1"] = dict(proto="h1stall", mode="stalled", count=P["stalled"], target=None, args=[])

    L, H = "lower", "higher"
    rows = [
        Row("rate_h1.cpu", "h1 rate: proxy CPU per tunnel", "h1", "rate_h1", "cpu_us_per_tunnel",
            "µs", L, ("<=", 0.5), "≤ 130"),
        Row("rate_h1.tps", "h1 rate: tunnels/s", "h1", "rate_h1", "tunnels_per_s", "/s", H),
        Row("rate_h1tls.cpu", "h1 over TLS rate: proxy CPU per tunnel", "h1tls", "rate_h1tls",
            "cpu_us_per_tunnel", "µs", L, ("<=", 0.5), "≤ 350"),
        Row("rate_h1tls.tps", "h1 over TLS rate: tunnels/s", "h1tls", "rate_h1tls",
            "tunnels_per_s", "/s", H),
        Row("rate_h2.cpu", "h2 rate (4 conns × 8 streams): proxy CPU per tunnel", "h2", "rate_h2",
            "cpu_us_per_tunnel", "µs", L, ("<=", 0.5), "≤ 100"),
        Row("rate_h2.tps", "h2 rate: tunnels/s", "h2", "rate_h2", "tunnels_per_s", "/s", H),
        Row("bulk_h1.cpu", "h1 bulk, 1 tunnel down: proxy CPU-s per GB", "h1", "bulk_h1",
            "cpu_s_per_gb", "s/GB", L, ("<=", 0.5), "≤ 0.4", "{:.2f}"),
        Row("bulk_h1.mbs", "h1 bulk, 1 tunnel down: MB/s", "h1", "bulk_h1", "mb_per_s", "MB/s", H),
        Row("bulk_h1_up.cpu", "h1 bulk, 1 tunnel up: proxy CPU-s per GB", "h1", "bulk_h1_up",
            "cpu_s_per_gb", "s/GB", L, ("<=", 0.5), "≤ 0.4", "{:.2f}"),
        Row("bulk_h1_up.sys", "h1 bulk, 1 tunnel up: of which kernel (stime)", "h1", "bulk_h1_up",
            "sys_s_per_gb", "s/GB", L, None, None, "{:.2f}"),
        Row("bulk_h1_up.mbs", "h1 bulk, 1 tunnel up: MB/s", "h1", "bulk_h1_up", "mb_per_s",
            "MB/s", H),
        Row("bulk_h2_down.cpu", "h2 bulk, 1 tunnel down: proxy CPU-s per GB", "h2",
            "bulk_h2_down", "cpu_s_per_gb", "s/GB", L, ("<=", 0.5), "≤ 0.8", "{:.2f}"),
        Row("bulk_h2_down.sys", "h2 bulk, 1 tunnel down: of which kernel (stime)", "h2",
            "bulk_h2_down", "sys_s_per_gb", "s/GB", L, None, None, "{:.2f}"),
        Row("bulk_h2_down.mbs", "h2 bulk, 1 tunnel down: MB/s", "h2", "bulk_h2_down", "mb_per_s",
            "MB/s", H, (">=", 2.0), "≥ 1000"),
        Row("bulk_h2_up.cpu", "h2 bulk, 1 tunnel up: proxy CPU-s per GB", "h2", "bulk_h2_up",
            "cpu_s_per_gb", "s/GB", L, ("<=", 0.5), "≤ 0.9", "{:.2f}"),
        Row("bulk_h2_up.sys", "h2 bulk, 1 tunnel up: of which kernel (stime)", "h2", "bulk_h2_up",
            "sys_s_per_gb", "s/GB", L, None, None, "{:.2f}"),
        Row("bulk_h2_up.mbs", "h2 bulk, 1 tunnel up: MB/s", "h2", "bulk_h2_up", "mb_per_s", "MB/s",
            H, (">=", 2.0), "≥ 1000"),
        Row("bulk_h2_16.cpu", "h2 bulk, 16 tunnels on 1 conn: proxy CPU-s per GB", "h2",
            "bulk_h2_16", "cpu_s_per_gb", "s/GB", L, ("<=", 0.5), None, "{:.2f}"),
        Row("bulk_h2_16.mbs", "h2 bulk, 16 tunnels on 1 conn: MB/s (sum)", "h2", "bulk_h2_16",
            "mb_per_s", "MB/s", H),
        Row("rr_h2.p50", "h2 round trip in a tunnel (64 B): p50", "h2", "rr_h2", "rtt_p50_us",
            "µs", L, ("<=", 1.0), "≤ 60", "{:.1f}"),
        Row("rr_h2.cpu", "h2 round trip in a tunnel (64 B): proxy CPU per round trip", "h2",
            "rr_h2", "cpu_us_per_rt", "µs", L, ("<=", 1.0), "≤ 30", "{:.1f}"),
        Row("rr_h2.p99", "h2 round trip in a tunnel: p99", "h2", "rr_h2", "rtt_p99_us", "µs", L,
            None, None, "{:.1f}"),
        Row("rr_h1.p50", "h1 round trip in a tunnel (64 B): p50", "h1", "rr_h1", "rtt_p50_us",
            "µs", L, ("<=", 1.0), None, "{:.1f}"),
        Row("rr_h1.cpu", "h1 round trip in a tunnel (64 B): proxy CPU per round trip", "h1",
            "rr_h1", "cpu_us_per_rt", "µs", L, ("<=", 1.0), "≤ 30", "{:.1f}"),
        Row("rr_h1.p99", "h1 round trip in a tunnel: p99", "h1", "rr_h1", "rtt_p99_us", "µs", L,
            None, None, "{:.1f}"),
    ]
    for n in P["idle"]:
        rows.append(Row(f"idle_h1_{n}", f"h1 idle, {n:,} tunnels: PSS per tunnel", "h1",
                        f"idle_h1_{n}", "kib_per_tunnel", "KiB", L, ("<=", 0.25),
                        "≤ 5" if n == 5000 else None, "{:.1f}"))
    for n in P["idle"]:
        rows.append(Row(f"idle_h2_{n}", f"h2 idle, {n:,} tunnels (100/conn): PSS per tunnel",
                        "h2", f"idle_h2_{n}", "kib_per_tunnel", "KiB", L, ("<=", 0.25),
                        "≤ 6" if n == 5000 else None, "{:.1f}"))
    if P["idle_tls"]:
        n = P["idle"][-1]
        rows.append(Row(f"idle_h1tls_{n}", f"h1 over TLS idle, {n:,} tunnels: PSS per tunnel",
                        "h1tls", f"idle_h1tls_{n}", "kib_per_tunnel", "KiB", L, ("<=", 0.25),
                        "≤ 7" if n == 5000 else None, "{:.1f}"))
    rows += [
        Row("rate_h1_auth.cpu", "h1 rate with Basic auth (warm cache): proxy CPU per tunnel",
            "h1auth", "rate_h1_auth", "cpu_us_per_tunnel", "µs", L, None, "≤ +10 % of h1 rate"),
        Row("rate_h2_auth.cpu", "h2 rate with Basic auth (warm cache): proxy CPU per tunnel",
            "h2auth", "rate_h2_auth", "cpu_us_per_tunnel", "µs", L, None, "≤ +10 % of h2 rate"),
        Row("rr_h2_auth_storm.p99", f"h2 round trip while {STORM_USERS} users authenticate "
            "(cold, bcrypt 10): p99", "h2auth", "rr_h2_auth_storm", "rtt_p99_us", "µs", L, None,
            "< 5000", "{:.1f}"),
        Row("rr_h2_auth_storm.max", "… the same: slowest round trip", "h2auth", "rr_h2_auth_storm",
            "rtt_max_us", "µs", L, None, None, "{:.1f}"),
        Row("rr_h2_auth_storm.auth", f"… {STORM_USERS} users admitted: seconds to the last",
            "h2auth", "rr_h2_auth_storm", "storm_s", "s", L, None, None, "{:.2f}"),
        Row("rr_h1_auth_storm.p99", f"h1 round trip while {STORM_USERS} users authenticate "
            "(cold, bcrypt 10): p99", "h1auth", "rr_h1_auth_storm", "rtt_p99_us", "µs", L, None,
            "< 5000", "{:.1f}"),
        Row("rr_h1_auth_storm.max", "… the same: slowest round trip", "h1auth", "rr_h1_auth_storm",
            "rtt_max_us", "µs", L, None, None, "{:.1f}"),
        Row("rr_h1_auth_storm.auth", f"… {STORM_USERS} users admitted: seconds to the last",
            "h1auth", "rr_h1_auth_storm", "storm_s", "s", L, None, None, "{:.2f}"),
    ]
    rows += [
        Row("bulk_h2_down_mem.mbs", "h2 bulk, 1 tunnel down, --memory-limit 64m: MB/s", "h2mem",
            "bulk_h2_down_mem", "mb_per_s", "MB/s", H),
        Row("bulk_h2_up_mem.mbs", "h2 bulk, 1 tunnel up, --memory-limit 64m: MB/s", "h2mem",
            "bulk_h2_up_mem", "mb_per_s", "MB/s", H),
        Row("stalled_h1.pss", f"h1 stalled, {P['stalled']:,} tunnels (origin pushing, client not "
            "reading): PSS growth", "h1stall", "stalled_h1", "pss_growth_mib", "MiB", L, None, None,
            "{:.1f}"),
        Row("stalled_h1.ok", "… the same: tunnels admitted (the rest 429)", "h1stall", "stalled_h1",
            "admitted", "", H),
        Row("stalled_h1.peak", "… the same: buffers held at the peak (/metrics)", "h1stall",
            "stalled_h1", "buffered_peak_mib", "MiB", L, None, None, "{:.1f}"),
    ]
    rows.append(Row("h2load.rps", "h2load GET /healthz over h2: req/s", "h2", "h2load", "req_per_s",
                    "/s", H))
    rows.append(Row("h2load.cpu", "h2load GET /healthz: proxy CPU per request", "h2", "h2load",
                    "cpu_us_per_req", "µs", L, None, None, "{:.1f}"))
    rows += [
        Row("fwd_h1.cpu", "forward h1 keep-alive GET 100 B (ab -k -c 32): proxy CPU per request",
            "h1", "fwd_h1", "cpu_us_per_req", "µs", L, ("<=", 1.0), None, "{:.1f}"),
        Row("fwd_h1.rps", "forward h1 keep-alive GET 100 B: req/s", "h1", "fwd_h1", "req_per_s",
            "/s", H),
        Row("fwd_h2.cpu", "forward h2 GET 100 B (h2load -c 4 -m 32, :scheme http): proxy CPU per "
            "request", "h2", "fwd_h2", "cpu_us_per_req", "µs", L, ("<=", 1.0), None, "{:.1f}"),
        Row("fwd_h2.rps", "forward h2 GET 100 B: req/s", "h2", "fwd_h2", "req_per_s", "/s", H),
    ]
    return runs, rows


class Env:
    pass


def jget(d, *names, default=None):
    """First of |names| found in the tool's JSON, searching nested objects ("a.b" paths too)."""
    for n in names:
        cur, ok = d, True
        for part in n.split("."):
            if isinstance(cur, dict) and part in cur:
                cur = cur[part]
            else:
                ok = False
                break
        if ok and cur is not None:
            return cur
    return default


def parse_tool_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def load_cmd(env, sysm, run, extra=()):
    proto = run["proto"]
    cmd = [env.load, "--proxy", sysm.urls[proto], "--mode", run["mode"], "--json",
           "--timeout", "10s"]
    if run.get("target"):
        cmd += ["--target", f"127.0.0.1:{env.origins[run['target']]}"]
    if proto in ("h1tls", "h2", "h2auth", "h2mem"):
        cmd += ["--cacert", sysm.cacert]
    if proto.endswith("auth"):
        cmd += ["--proxy-user", f"{BENCH_USER}:{BENCH_PASS}"]
    return cmd + list(run["args"]) + list(extra)


def run_tool(env, cmd, timeout, log):
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
    p = PROCS.start(cmd, log + ".out", cpu=LOAD_CPU, env=env.client_env)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        PROCS.stop(p)
        return None, f"timed out after {timeout:.0f}s"
    PROCS.stop(p)
    with open(log + ".out", errors="replace") as f:
        out = f.read()
    os.unlink(log + ".out")
    with open(log, "a") as f:
        f.write(out + f"[exit {p.returncode}]\n")
    return out, p.returncode


def secs(s):
    m = re.fullmatch(r"([\d.]+)(ms|s|m)?", s)
    v = float(m.group(1))
    return v / 1000 if m.group(2) == "ms" else v * 60 if m.group(2) == "m" else v


def measure(env, sysm, key, run):
    """One repetition of |run| against |sysm|: a dict of metrics, or {"error": ...}."""
    log = os.path.join(env.tmp, "runs.log")
    if run["mode"] == "h2load":
        return measure_h2load(env, sysm, log)
    if run["mode"] in ("fwd_ab", "fwd_h2load"):
        return measure_fwd(env, sysm, run, log)
    if not env.load:
        return {"error": "n/a (tool)"}
    if run["mode"] == "idle":
        return measure_idle(env, sysm, run, log)
    if run["mode"] == "stalled":
        return measure_stalled(env, sysm, run, log)
    if run.get("storm"):
        return measure_storm(env, sysm, run, log)
    dur = 0.0
    args = run["args"]
    if "-d" in args:
        dur = secs(args[args.index("-d") + 1])
    timeout = dur + 60
    if run["proto"].endswith("auth"):
        # Warm the cache (one bcrypt check) outside the measured run.
        warm = dict(run, args=["-c", "1", "-n", "1"])
        run_tool(env, load_cmd(env, sysm, warm), 60, log)
    pids = sysm.pids()
    (c0, k0), t0 = cpu_times(pids), time.monotonic()
    out, rc = run_tool(env, load_cmd(env, sysm, run), timeout, log)
    wall = time.monotonic() - t0
    c1, k1 = cpu_times(sysm.pids())
    if out is None:
        return {"error": rc}
    j = parse_tool_json(out)
    if j is None:
        return {"error": f"no JSON from the load tool (exit {rc}): {out.strip()[-200:]}"}
    if rc not in (0, None) and rc != 0:
        err = jget(j, "first_error", "error", default="")
        return {"error": f"exit {rc}: {err}"[:200]}
    cpu = c1 - c0
    elapsed = float(jget(j, "elapsed_s", "duration_s", "elapsed", default=0) or 0)
    if not elapsed:
        ems = jget(j, "elapsed_ms", "duration_ms")
        elapsed = float(ems) / 1000 if ems else wall
    r = {"cpu_s": cpu, "elapsed_s": elapsed, "wall_s": wall,
         "client_busy": float(jget(j, "client_cpu_s", default=0) or 0) / max(elapsed, 1e-3)}
    mode = run["mode"]
    if mode == "rate":
        n = int(jget(j, "tunnels_ok", "tunnels", "ok", default=0))
        if n <= 0:
            return {"error": "no tunnel completed"}
        r["tunnels"] = n
        r["tunnels_per_s"] = n / elapsed
        r["cpu_us_per_tunnel"] = cpu * 1e6 / n
    elif mode == "bulk":
        b = int(jget(j, "bytes_down", default=0)) + int(jget(j, "bytes_up", default=0))
        if b <= 0:
            return {"error": "no bytes moved"}
        r["bytes"] = b
        r["mb_per_s"] = b / elapsed / 1e6
        r["cpu_s_per_gb"] = cpu / (b / 1e9)
        r["sys_s_per_gb"] = (k1 - k0) / (b / 1e9)
    elif mode == "rr":
        p50 = jget(j, "rtt.p50_us", "rtt_p50_us", "rtt.p50")
        p99 = jget(j, "rtt.p99_us", "rtt_p99_us", "rtt.p99")
        if p50 is None:
            return {"error": "no round-trip percentiles in the JSON"}
        r["rtt_p50_us"], r["rtt_p99_us"] = float(p50), float(p99)
        r["round_trips"] = jget(j, "rr", "round_trips", default=0)
        if int(r["round_trips"] or 0) > 0:
            r["cpu_us_per_rt"] = cpu * 1e6 / int(r["round_trips"])
    return r


def storm(url, target, n):
    """|n| h1 CONNECTs at once, each with its own user's credentials (a cold cache: n checks).
    Returns (seconds until the last one was answered 200, failures)."""
    import base64
    import socket
    import threading
    host, port = url.split("//")[1].rsplit(":", 1)
    gate = threading.Barrier(n + 1)
    done, bad = [], []

    def one(i):
        cred = base64.b64encode(f"u{i}:{BENCH_PASS}".encode()).decode()
        req = (f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
               f"Proxy-Authorization: Basic {cred}\r\n\r\n").encode()
        try:
            s = socket.create_connection((host, int(port)), timeout=60)
            gate.wait()
            s.sendall(req)
            head = s.recv(4096)
            (done if head.startswith(b"HTTP/1.1 200") else bad).append(time.monotonic())
            s.close()
        except Exception:  # noqa: BLE001 -- counted
            bad.append(time.monotonic())

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    gate.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join(120)
    last = max(done) if done else t0
    return last - t0, len(bad)


def measure_storm(env, sysm, run, log):
    """rr inside one running h2 tunnel (its own credentials, checked once) while |storm| new
    users authenticate at once over h1: the round trips' p99 shows whether the loop waited."""
    dur = secs(run["args"][run["args"].index("-d") + 1])
    sysm.restart()  # a cold cache: every storm user costs a bcrypt check
    result = {}

    def go():
        result["out"] = run_tool(env, load_cmd(env, sysm, run), dur + 60, log)

    import threading
    t = threading.Thread(target=go, daemon=True)
    t.start()
    time.sleep(min(2.0, dur / 4))  # the rr tunnel is up and busy (its own check long done)
    storm_s, failures = storm(sysm.urls["h1auth"], f"127.0.0.1:{env.origins['echo']}", run["storm"])
    t.join(dur + 90)
    out, rc = result.get("out", (None, "no result"))
    if out is None:
        return {"error": rc}
    j = parse_tool_json(out)
    if j is None:
        return {"error": f"no JSON from the load tool (exit {rc})"}
    p99 = jget(j, "rtt.p99_us", "rtt_p99_us")
    if p99 is None:
        return {"error": "no round-trip percentiles in the JSON"}
    r = {"rtt_p99_us": float(p99), "rtt_max_us": float(jget(j, "rtt.max_us", "rtt_max_us", default=0)),
         "storm_s": storm_s, "client_busy": 0.0}
    if failures:
        r["error"] = f"{failures} of {run['storm']} storm users not admitted"
    return r


def measure_idle(env, sysm, run, log):
    """Fresh proxy, a few warm-up tunnels, PSS, then open |count| tunnels and hold them: PSS
    again once the origin sees them all (or the hold ends), divided by the count."""
    n = run["count"]
    if isinstance(sysm, Apache):
        return {"error": f"n/a (thread per tunnel, {Apache.max_tunnels} configured)"}
    # The previous idle run's tunnels (through another system) may still be closing at the
    # origin; counting from a baseline that then shrinks would never reach |n|.
    port = env.origins["echo"]
    drain = time.monotonic() + 15
    while established(port) > 0 and time.monotonic() < drain:
        time.sleep(0.1)
    if not sysm.restart():
        return {"error": f"restart failed: {sysm.error}"}
    warm = dict(run, mode="rate", args=(["-c", "2", "-m", "2"] if run["proto"] == "h2"
                                        else ["-c", "2"]) + ["-n", "20", "-d", "5s"])
    run_tool(env, load_cmd(env, sysm, warm), 30, log)
    time.sleep(0.3)
    before = pss_kib(sysm.pids())
    hold = env.P["idle_hold"]
    # The tool would hold them for -d and then do one round trip each; it is stopped as soon as
    # PSS has been sampled, so -d only bounds the run.
    cmd = load_cmd(env, sysm, run, ["-d", "60s"])
    with open(log, "a") as f:
        f.write("$ " + " ".join(cmd) + "\n")
    p = PROCS.start(cmd, log + ".idle", cpu=LOAD_CPU, env=env.client_env)
    base = max(0, established(port))
    end = time.monotonic() + 40
    best, at_full, samples = 0, None, []
    while time.monotonic() < end and p.poll() is None:
        e = established(port) - base
        best = max(best, e)
        if e >= n:
            if at_full is None:
                at_full = time.monotonic()
            samples.append(pss_kib(sysm.pids()))
            if time.monotonic() - at_full >= hold:
                break
        time.sleep(0.1)
    PROCS.stop(p)
    with open(log + ".idle", errors="replace") as f:
        out = f.read()
    os.unlink(log + ".idle")
    with open(log, "a") as f:
        f.write(out + f"[exit {p.returncode}] before={before} samples={samples}\n")
    if not samples:
        j = parse_tool_json(out)
        if j:
            why = (f"tool: {jget(j, 'tunnels_open_max', default='?')} open at most, "
                   f"{jget(j, 'errors', default='?')} errors {jget(j, 'first_error', default='')}")
        else:
            why = out.strip()[-160:]
        return {"error": f"origin saw {best} of {n} tunnels; {why}"[:200]}
    during = max(samples)
    return {"pss_before_kib": before, "pss_during_kib": during,
            "kib_per_tunnel": (during - before) / n}


class PushOrigin:
    """Accepts any number of connections and writes to each as fast as it drains, never reading:
    an origin pushing a download. One thread, one selector."""

    def __init__(self):
        import selectors
        import threading
        self.sel_mod = selectors
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(4096)
        self.lsock.setblocking(False)
        self.port = self.lsock.getsockname()[1]
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.lsock, selectors.EVENT_READ)
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        S = self.sel_mod
        block = b"\x5a" * 65536
        while not self.stopping:
            for key, ev in self.sel.select(0.2):
                s = key.fileobj
                if s is self.lsock:
                    try:
                        c, _ = self.lsock.accept()
                    except OSError:
                        continue
                    c.setblocking(False)
                    c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
                    self.sel.register(c, S.EVENT_READ | S.EVENT_WRITE)
                    continue
                try:
                    if ev & S.EVENT_READ and not s.recv(65536):
                        raise OSError("closed")
                    if ev & S.EVENT_WRITE:
                        s.send(block)
                except BlockingIOError:
                    pass
                except OSError:
                    self.sel.unregister(s)
                    s.close()

    def close(self):
        self.stopping = True
        self.thread.join()
        for key in list(self.sel.get_map().values()):
            key.fileobj.close()
        self.sel.close()


def budget_metrics(url):
    """The memory budget's gauges from h2tunnel's /metrics (its admin listener), in bytes."""
    host, port = url.split("//")[1].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        data = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            data += b
    out = {}
    for ln in data.decode(errors="replace").splitlines():
        if ln.startswith("h2tunnel_memory_"):
            k, _, v = ln.rpartition(" ")
            out[k[len("h2tunnel_memory_"):]] = float(v)
    return out


def measure_stalled(env, sysm, run, log):
    """Fresh proxy; |count| h1 tunnels to an origin pushing as fast as it can, whose clients never
    read (a 4 KiB receive buffer): the proxy buffers what it allows each one. PSS growth once it
    settles, how many were admitted (the rest get 429), and the budget's buffered peak."""
    n = run["count"]
    if not sysm.restart():
        return {"error": f"restart failed: {sysm.error}"}
    url = sysm.urls["h1stall"]
    host, port = url.split("//")[1].rsplit(":", 1)
    origin = PushOrigin()
    socks = []
    ok = refused = 0
    try:
        time.sleep(0.3)
        before = pss_kib(sysm.pids())
        head = f"CONNECT 127.0.0.1:{origin.port} HTTP/1.1\r\nHost: 127.0.0.1:{origin.port}\r\n\r\n".encode()
        for _ in range(n):
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.settimeout(20)
            s.connect((host, int(port)))
            s.sendall(head)
            resp = b""
            while b"\r\n\r\n" not in resp:
                b = s.recv(4096)
                if not b:
                    break
                resp += b
            if resp.startswith(b"HTTP/1.1 200"):
                ok += 1
                socks.append(s)
            else:
                refused += 1
                s.close()
        # Settled: PSS stops moving (every admitted tunnel stalled at what it may hold).
        last, stable, end = 0, 0, time.monotonic() + 60
        while stable < 3 and time.monotonic() < end:
            time.sleep(0.5)
            cur = pss_kib(sysm.pids())
            stable = stable + 1 if abs(cur - last) < max(1024, cur // 100) else 0
            last = cur
        during = pss_kib(sysm.pids())
        m = budget_metrics(sysm.urls["admin"])
    finally:
        for s in socks:
            s.close()
        origin.close()
    with open(log, "a") as f:
        f.write(f"stalled {n}: admitted {ok}, refused {refused}, PSS {before} -> {during} KiB, {m}\n")
    return {"pss_growth_mib": (during - before) / 1024.0, "admitted": float(ok), "refused": float(refused),
            "buffered_peak_mib": m.get("buffered_peak_bytes", 0.0) / MiB, "client_busy": 0.0}


def measure_h2load(env, sysm, log):
    if not sysm.healthz:
        return {"error": "n/a (no local endpoint)"}
    if not shutil.which("h2load"):
        return {"error": "h2load not installed"}
    n = env.P["h2load_n"]
    cmd = ["h2load", "-n", str(n), "-c", "4", "-m", "32", "-t", "1", sysm.healthz]
    pids = sysm.pids()
    c0 = cpu_seconds(pids)
    out, rc = run_tool(env, cmd, 120, log)
    c1 = cpu_seconds(sysm.pids())
    if out is None:
        return {"error": rc}
    m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    ok = re.search(r"(\d+) succeeded", out)
    st = re.search(r"status codes: (\d+) 2xx", out)
    if not m or not ok or int(ok.group(1)) == 0 or not st or int(st.group(1)) == 0:
        return {"error": f"h2load failed: {out.strip()[-160:]}"}
    done = int(st.group(1))
    return {"req_per_s": float(m.group(1)), "cpu_us_per_req": (c1 - c0) * 1e6 / done,
            "cpu_s": c1 - c0}


def measure_fwd(env, sysm, run, log):
    """Forwarded small GETs: requests/s and proxy CPU per request (issue 11)."""
    if "http" not in env.origins:
        return {"error": "n/a (no HTTP origin: haproxy missing)"}
    origin = f"127.0.0.1:{env.origins['http']}"
    n = env.P["fwd_n"]
    url = sysm.urls.get(run["proto"], "")
    if run["mode"] == "fwd_ab":
        if not shutil.which("ab"):
            return {"error": "ab not installed (apache2-utils)"}
        hostport = url.split("//", 1)[1]
        cmd = ["ab", "-q", "-k", "-c", "32", "-n", str(n), "-s", "10", "-X", hostport,
               f"http://{origin}/small"]
    else:
        if not shutil.which("h2load"):
            return {"error": "h2load not installed"}
        hostport = url.split("//", 1)[1]
        cmd = ["h2load", "-n", str(n), "-c", "4", "-m", "32", "-t", "1", "-H", ":scheme: http",
               "-H", f":authority: {origin}", f"https://{hostport}/small"]
    pids = sysm.pids()
    c0 = cpu_seconds(pids)
    out, rc = run_tool(env, cmd, 180, log)
    c1 = cpu_seconds(sysm.pids())
    if out is None:
        return {"error": rc}
    if run["mode"] == "fwd_ab":
        m = re.search(r"Requests per second:\s+([\d.]+)", out)
        done = re.search(r"Complete requests:\s+(\d+)", out)
        failed = re.search(r"Failed requests:\s+(\d+)", out)
        non2xx = re.search(r"Non-2xx responses:\s+(\d+)", out)
        if not m or not done or int(done.group(1)) == 0 or (failed and int(failed.group(1)) > 0) or non2xx:
            return {"error": "ab failed: " + " ".join(out.split())[-120:]}
        ok = int(done.group(1))
    else:
        m = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
        st = re.search(r"status codes: (\d+) 2xx", out)
        if not m or not st or int(st.group(1)) < n:
            # (one line: it goes into a table cell) e.g. HAProxy and Apache answer a request for
            # another authority on their h2 front end themselves
            got = st.group(1) if st else "0"
            return {"error": f"n/a ({got} of {n} answered 2xx: no forwarding on its h2 front end)"}
        ok = int(st.group(1))
    return {"req_per_s": float(m.group(1)), "cpu_us_per_req": (c1 - c0) * 1e6 / ok, "cpu_s": c1 - c0}


def start_http_origin(env):
    """A fast HTTP/1.1 origin for the forward rows: HAProxy (1 thread, on the load CPU) answering
    every request with 100 bytes from memory (http-request return), keep-alive."""
    if not which("haproxy"):
        return None
    port = free_port()
    conf = os.path.join(env.tmp, "origin-http.cfg")
    with open(conf, "w") as f:
        f.write("global\n  nbthread 1\n  maxconn 4000\ndefaults\n  mode http\n  timeout client 60s\n"
                "  timeout server 60s\n  timeout connect 5s\n  timeout http-keep-alive 60s\n"
                f"frontend origin\n  bind 127.0.0.1:{port}\n"
                f"  http-request return status 200 content-type text/plain string {'x' * 100}\n")
    p = PROCS.start(["haproxy", "-db", "-f", conf], os.path.join(env.tmp, "origin-http.log"), cpu=LOAD_CPU)
    err = wait_port(port, 10, [p])
    if err:
        say(f"bench/compare: HTTP origin: {err}: {tail(os.path.join(env.tmp, 'origin-http.log'))}")
        return None
    return port


# ------------------------------------------------------------------------------------------------
# limits of the machine


def openssl_speed(cipher):
    try:
        out = subprocess.run(["taskset", "-c", PROXY_CPU, "openssl", "speed", "-seconds", "2",
                              "-bytes", "16384", "-evp", cipher], capture_output=True, text=True,
                             timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, str(e)
    for line in out.splitlines():
        if line.lower().startswith(cipher.lower()) or line.upper().startswith(cipher.upper()):
            v = line.split()[-1]
            if v.endswith("k"):
                return float(v[:-1]) * 1000 / 1e6, None  # kB/s -> MB/s
    return None, out[-200:]


def direct_limits(env):
    """One loopback TCP stream with no proxy (receiver on CPU 0, sender on CPU 1) and a direct
    64-byte echo round trip against the load tool's echo origin, both with small Python clients."""
    res = {}
    size = env.P["bulk"]
    port = free_port()
    code_rx = ("import socket,sys,time\n"
               "s=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
               f"s.bind(('127.0.0.1',{port}));s.listen(1);print('ready',flush=True);c,_=s.accept()\n"
               "b=bytearray(1<<20);m=memoryview(b);n=0\n"
               "while True:\n"
               " k=c.recv_into(m)\n"
               " if not k: break\n"
               " n+=k\n"
               "print(n)\n")
    code_tx = ("import socket,time\n"
               f"c=socket.create_connection(('127.0.0.1',{port}))\n"
               f"b=bytes(1<<20);left={size};t=time.monotonic()\n"
               "while left>0:\n"
               " k=c.send(b[:min(left,len(b))]);left-=k\n"
               "c.shutdown(socket.SHUT_WR);c.recv(1);dt=time.monotonic()-t\n"
               f"print({size}/dt/1e6)\n")
    rx = subprocess.Popen(["taskset", "-c", PROXY_CPU, sys.executable, "-c", code_rx],
                          stdout=subprocess.PIPE, text=True, start_new_session=True)
    PROCS.live.append(rx)
    try:
        rx.stdout.readline()  # "ready": listening (a probe connection would eat the accept)
        tx = subprocess.run(["taskset", "-c", LOAD_CPU, sys.executable, "-c", code_tx],
                            capture_output=True, text=True, timeout=60)
        res["tcp_mb_per_s"] = float(tx.stdout.strip())
    except Exception as e:
        res["tcp_error"] = str(e)
    PROCS.stop(rx)
    if env.load:
        code_rr = ("import socket,time,statistics\n"
                   f"c=socket.create_connection(('127.0.0.1',{env.origins['echo']}))\n"
                   "c.setsockopt(socket.IPPROTO_TCP,socket.TCP_NODELAY,1)\n"
                   "m=b'x'*64;ts=[]\n"
                   "end=time.monotonic()+1.5\n"
                   "while time.monotonic()<end and len(ts)<200000:\n"
                   " t=time.perf_counter_ns();c.sendall(m);g=0\n"
                   " while g<64: g+=len(c.recv(64-g))\n"
                   " ts.append(time.perf_counter_ns()-t)\n"
                   "ts.sort();print(ts[len(ts)//2]/1000, ts[int(len(ts)*0.99)]/1000)\n")
        try:
            out = subprocess.run(["taskset", "-c", PROXY_CPU, sys.executable, "-c", code_rr],
                                 capture_output=True, text=True, timeout=30).stdout.split()
            res["rr_p50_us"], res["rr_p99_us"] = float(out[0]), float(out[1])
        except Exception as e:
            res["rr_error"] = str(e)
    return res


# ------------------------------------------------------------------------------------------------
# report


def median(vals):
    return statistics.median(vals) if vals else None


def cell(row, results, sysm):
    if sysm.error:
        return None, f"down: {sysm.error}"[:60]
    if row.proto not in sysm.protos:
        return None, "–"
    reps = results.get((row.run, sysm.name), [])
    vals = [r[row.metric] for r in reps if row.metric in r]
    if not vals:
        errs = [r.get("error", "?") for r in reps]
        return None, (errs[0] if errs else "not run")[:60]
    v = median(vals)
    s = row.fmt.format(v)
    busy = median([r["client_busy"] for r in reps if "client_busy" in r])
    if row.unit in ("/s", "MB/s") and busy is not None and busy >= 0.9:
        s += " ‡"  # the load tool used ≥ 90 % of its core: a client-side limit
    if len(vals) < len(reps):
        s += f" ({len(vals)}/{len(reps)} ok)"
    return v, s


def build_table(env, rows, results, systems):
    head = (["workload", "unit"] + [s.name for s in systems] +
            ["h2tunnel / best peer", "target (issue)", "met?", "anchor target"])
    lines = []
    verdicts = []
    for row in rows:
        vals = {}
        cells = []
        for s in systems:
            v, txt = cell(row, results, s)
            vals[s.name] = v
            cells.append(txt)
        mine = vals.get("h2tunnel")
        peers = [(v, n) for n, v in vals.items() if n != "h2tunnel" and v is not None]
        ratio_s, met = "–", ""
        if mine is not None and peers:
            best, bname = (min(peers) if row.better == "lower" else max(peers))
            if best > 0:
                ratio = mine / best
                ratio_s = f"{ratio:.2f}× ({bname})"
                if row.target:
                    op, t = row.target
                    ok = ratio <= t if op == "<=" else ratio >= t
                    met = "met" if ok else "NOT met"
                    verdicts.append((row.label, ok))
        elif row.target and mine is not None:
            met = "no peer figure"
        tgt = f"{row.target[0].replace('<=', '≤').replace('>=', '≥')} {row.target[1]}×" \
            if row.target else ""
        lines.append([row.label, row.unit] + cells + [ratio_s, tgt, met, row.anchor or ""])
    return head, lines, verdicts


def md_table(head, lines):
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for l in lines:
        out.append("| " + " | ".join(x.replace("|", "\\|") for x in l) + " |")
    return "\n".join(out)


def text_table(head, lines):
    w = [max(len(str(x)) for x in col) for col in zip(head, *lines)]
    fmt = lambda r: "  ".join(str(x).ljust(w[i]) for i, x in enumerate(r))
    return "\n".join([fmt(head), "  ".join("-" * x for x in w)] + [fmt(l) for l in lines])


def machine():
    model = "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(open("/proc/meminfo").readline().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    deb = ""
    try:
        deb = open("/etc/debian_version").read().strip()
    except OSError:
        pass
    return (f"{os.cpu_count()} CPUs ({model}), {mem} RAM, Debian {deb}, "
            f"kernel {platform.release()}")


def versions():
    v = {}
    cmds = {"squid": ["squid", "-v"], "tinyproxy": ["tinyproxy", "-v"],
            "haproxy": ["haproxy", "-v"], "nghttpx": ["nghttpx", "--version"],
            "apache2": ["apache2", "-v"], "trafficserver": ["traffic_server", "--version"],
            "openssl": ["openssl", "version"]}
    for k, c in cmds.items():
        try:
            out = subprocess.run(c, capture_output=True, text=True, timeout=10)
            first = (out.stdout or out.stderr).strip().splitlines()[0]
            v[k] = first
        except Exception:
            v[k] = "not installed"
    return v


# ------------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(prog="bench/compare",
                                 description="h2tunnel vs peers, CONNECT workloads on loopback")
    ap.add_argument("--root", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap.add_argument("--quick", action="store_true", help="one repetition, short runs (~2 min)")
    ap.add_argument("--reps", type=int, help="repetitions per row (default 3, quick 1)")
    ap.add_argument("--no-apache", action="store_true",
                    help="leave out Apache httpd (the optional peer)")
    ap.add_argument("--only", help="comma-separated systems, e.g. h2tunnel,squid")
    ap.add_argument("--rows", help="comma-separated run keys (e.g. rate_h1,bulk_h2_down)")
    ap.add_argument("--out", help="markdown output (default build-rel/bench-compare.md)")
    ap.add_argument("--load", help="h2tunnel-load binary (default build-rel/load/h2tunnel-load)")
    ap.add_argument("--h2tunnel", help="h2tunnel binary (default build-rel/h2tunnel)")
    ap.add_argument("--keep-tmp", action="store_true", help="keep the temporary directory")
    ap.add_argument("--no-install", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--no-build", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()

    if (os.cpu_count() or 1) < 2:
        print("bench/compare: needs 2 CPUs (proxy on CPU 0, load on CPU 1)", file=sys.stderr)
        return 2

    def on_signal(sig, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_signal)  # also when started with SIGINT ignored (bash &)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > 1 << 20:
        hard = 1 << 20
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    env = Env()
    env.P = prof(a.quick)
    if a.reps:
        env.P["reps"] = a.reps
    if hard < 2 * max(env.P["idle"]) + 1000:
        print(f"bench/compare: RLIMIT_NOFILE hard limit {hard} is too low for "
              f"{max(env.P['idle'])} idle tunnels", file=sys.stderr)
    env.nofile = hard
    env.root = a.root
    env.peers = os.path.join(a.root, "bench", "peers")
    env.h2tunnel = a.h2tunnel or os.path.join(a.root, "build-rel", "h2tunnel")
    load = a.load or os.path.join(a.root, "build-rel", "load", "h2tunnel-load")
    env.load = load if os.access(load, os.X_OK) else None
    out_md = a.out or os.path.join(a.root, "build-rel", "bench-compare.md")
    env.tmp = tempfile.mkdtemp(prefix="h2tunnel-bench.")
    os.chmod(env.tmp, 0o755)
    started = datetime.datetime.now(datetime.timezone.utc)
    t_start = time.monotonic()
    try:
        return run_all(env, a, out_md, started, t_start)
    except KeyboardInterrupt:
        print("\nbench/compare: interrupted, stopping everything it started", file=sys.stderr)
        return 130
    finally:
        PROCS.stop_all()
        if not a.keep_tmp:
            shutil.rmtree(env.tmp, ignore_errors=True)
        else:
            print(f"bench/compare: kept {env.tmp}", file=sys.stderr)


def say(msg):
    print(msg, file=sys.stderr, flush=True)


def run_all(env, a, out_md, started, t_start):
    P = env.P
    # certificates for the peers' TLS front ends (h2tunnel makes its own in its state dir)
    env.pcerts = os.path.join(env.tmp, "certs")
    subprocess.run(["bash", os.path.join(env.root, "certs", "mkcerts.sh"), env.pcerts],
                   check=True, stdout=subprocess.DEVNULL)
    os.chmod(env.pcerts, 0o755)
    for f in os.listdir(env.pcerts):
        os.chmod(os.path.join(env.pcerts, f), 0o644)  # throwaway; squid/apache children read them
    with open(os.path.join(env.pcerts, "server.pem"), "w") as f:  # haproxy: cert + key in one
        f.write(open(os.path.join(env.pcerts, "cert.pem")).read())
        f.write(open(os.path.join(env.pcerts, "key.pem")).read())
    env.cacert = os.path.join(env.pcerts, "ca.pem")
    # Clients offer only TLS 1.3 AES-128-GCM, so every front end negotiates the same cipher.
    cnf = os.path.join(env.tmp, "openssl-client.cnf")
    with open(cnf, "w") as f:
        f.write("openssl_conf = init\n[init]\nssl_conf = ssl\n[ssl]\nsystem_default = sd\n"
                "[sd]\nCiphersuites = TLS_AES_128_GCM_SHA256\n")
    env.client_env = dict(os.environ, OPENSSL_CONF=cnf)

    say(f"bench/compare: {machine()}; reps {P['reps']}; tmp {env.tmp}")
    env.load_start = open("/proc/loadavg").read().split()[:3]
    if not env.load:
        say("bench/compare: h2tunnel-load not found: tunnel rows will say n/a (tool)")

    # origins, on the load CPU
    env.origins = {}
    if env.load:
        # The rate and bulk origins close first ("one echo round trip, origin closes, close" as in
        # anchors.md): nghttpx does not forward a client's END_STREAM as FIN, so a tunnel whose
        # origin waits for the client's FIN would never end through it.
        origins = {"echo": ["echo"], "echo1": ["echo", "--close-first", "--msg", "64"],
                   "source": ["source", "--close-first"], "sink": ["sink", "--close-first"]}
        for kind, args in origins.items():
            port = free_port()
            p = PROCS.start([env.load, "--origin"] + args + ["--listen", f"127.0.0.1:{port}"],
                            os.path.join(env.tmp, f"origin-{kind}.log"), cpu=LOAD_CPU)
            err = wait_port(port, 10, [p])
            if err:
                say(f"bench/compare: origin {kind}: {err}: "
                    f"{tail(os.path.join(env.tmp, f'origin-{kind}.log'))}")
                env.load = None
                break
            env.origins[kind] = port

    port = start_http_origin(env)
    if port:
        env.origins["http"] = port

    classes = [c for c in SYSTEMS if c is not Apache or not a.no_apache]
    if a.only:
        want = set(a.only.split(","))
        classes = [c for c in classes if c.name in want or c.name.startswith("h2tunnel")]
    systems = [c(env) for c in classes]
    for s in systems:
        ok = s.start()
        say(f"  {s.name:15s} {'up ' + str(s.urls) if ok else 'DOWN: ' + s.error}")

    runs, rows = make_rows(P)
    order = list(runs)
    if a.rows:
        keep = a.rows.split(",")
        order = [k for k in order if k in keep]
        rows = [r for r in rows if r.run in keep]

    limits = {}
    for c in ("aes-128-gcm", "chacha20-poly1305"):
        v, err = openssl_speed(c)
        limits[c] = v if v is not None else err
    limits.update(direct_limits(env))
    say(f"  limits: {limits}")

    results = {}
    for rep in range(P["reps"]):
        for key in order:
            run = runs[key]
            for s in systems:
                if run["proto"] not in s.protos:
                    continue
                if s.error and not s.restart():
                    results.setdefault((key, s.name), []).append({"error": f"down: {s.error}"})
                    continue
                if not s.alive() and not s.restart():
                    results.setdefault((key, s.name), []).append({"error": f"died: {s.error}"})
                    continue
                t = time.monotonic()
                r = measure(env, s, key, run)
                results.setdefault((key, s.name), []).append(r)
                brief = r.get("error") or ", ".join(
                    f"{k}={v:.4g}" for k, v in r.items() if isinstance(v, float))
                say(f"  [{rep + 1}/{P['reps']} {time.monotonic() - t_start:5.0f}s] {key:16s} "
                    f"{s.name:14s} {brief} ({time.monotonic() - t:.1f}s)")

    head, lines, verdicts = build_table(env, rows, results, systems)
    elapsed = time.monotonic() - t_start
    vers = versions()
    tls_leg = {k: (1000.0 / v if isinstance(v, float) and v else None)
               for k, v in limits.items() if k in ("aes-128-gcm", "chacha20-poly1305")}

    def lim(k, fmt):
        v = limits.get(k)
        return fmt.format(v) if isinstance(v, float) else f"n/a ({v})" if v else "n/a"

    md = []
    md.append(f"Run {started.strftime('%Y-%m-%d %H:%M UTC')} on {machine()}; "
              f"{'quick' if a.quick else 'full'} profile, median of {P['reps']} "
              f"repetition(s), {elapsed / 60:.1f} min. Proxy pinned to CPU {PROXY_CPU}, load "
              f"tool and origins to CPU {LOAD_CPU}; TLS 1.3 TLS_AES_128_GCM_SHA256, ECDSA P-256. "
              f"Load average at start {' '.join(env.load_start)}, at end "
              f"{' '.join(open('/proc/loadavg').read().split()[:3])} (other work on the machine "
              f"shows up here and in rates and tail latencies more than in CPU per unit of work).")
    md.append("")
    md.append(md_table(head, lines))
    md.append("")
    met = sum(1 for _, ok in verdicts if ok)
    md.append(f"Targets met: {met} of {len(verdicts)} rows that have a target and a peer figure. "
              "‡ = the load tool used ≥ 90 % of its core in that run (median), so the rate or "
              "throughput is at least partly the client's limit; CPU per unit of work is not "
              "affected.")
    md.append("")
    md.append("Limits of this machine (same pinning):")
    md.append("")
    md.append(f"- `openssl speed -evp aes-128-gcm`, 16 KiB blocks, one core: "
              f"{lim('aes-128-gcm', '{:,.0f} MB/s')}"
              + (f" (≈ {tls_leg['aes-128-gcm']:.2f} CPU-s per GB for one TLS leg)"
                 if tls_leg.get('aes-128-gcm') else ""))
    md.append(f"- `openssl speed -evp chacha20-poly1305`, 16 KiB blocks, one core: "
              f"{lim('chacha20-poly1305', '{:,.0f} MB/s')}")
    md.append(f"- one loopback TCP stream, no proxy (Python sender on CPU 1, receiver on CPU 0): "
              f"{lim('tcp_mb_per_s', '{:,.0f} MB/s')}")
    md.append(f"- direct 64-byte echo round trip to the echo origin, no proxy (Python client): "
              f"p50 {lim('rr_p50_us', '{:.1f} µs')}, p99 {lim('rr_p99_us', '{:.1f} µs')}")
    md.append("")
    md.append("Systems:")
    md.append("")
    for s in systems:
        state = f"DOWN: {s.error}" if s.error else "ran"
        md.append(f"- {s.name}: {s.note or 'Release build, --workers 1'} — {state}")
    md.append("")
    md.append("Versions: " + "; ".join(f"{k}: {v}" for k, v in vers.items()))
    text = "\n".join(md) + "\n"

    os.makedirs(os.path.dirname(os.path.abspath(out_md)), exist_ok=True)
    with open(out_md, "w") as f:
        f.write(text)
    raw = os.path.splitext(out_md)[0] + ".json"
    with open(raw, "w") as f:
        json.dump({"started": started.isoformat(), "machine": machine(), "profile": P,
                   "limits": limits, "versions": vers,
                   "results": {f"{k}|{n}": v for (k, n), v in results.items()}}, f, indent=1)

    print()
    print(text.split("\n\n")[0])
    print()
    print(text_table(head, lines))
    print()
    print("\n\n".join(text.split("\n\n")[2:]))
    say(f"bench/compare: markdown in {out_md}, raw figures in {raw}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
