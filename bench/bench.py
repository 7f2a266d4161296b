#!/usr/bin/env python3
"""aadgate benchmark: aadgate against no proxy, nginx and Apache mod_auth_openidc.

Started by `bench/run` (which installs the Debian packages and builds aadgate
when needed). Python standard library only. Everything runs on loopback, from
a temporary directory, as child processes that are stopped at the end (also on
failure and Ctrl-C); no system service is touched.

Pinning (2 cores): the client side -- wrk, this script, the scripted sign-ins
and the dev IdP -- runs on core 0; the server side -- the proxy under test and
the upstream it forwards to -- runs on core 1. Every contestant gets exactly
the same placement, so the server side always has one core to share between
the proxy and the app, as a small VM running both would.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import http.client
import json
import multiprocessing as mp
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
# AADGATE_BENCH_BIN: another build to measure (A/B comparisons of two commits).
BIN = os.environ.get("AADGATE_BENCH_BIN") or os.path.join(ROOT, "target", "release", "aadgate")
LUA = os.path.join(BENCH, "wrk", "report.lua")
DOC = os.path.join(ROOT, "docs", "benchmarks.md")
SVG = os.path.join(ROOT, "docs", "benchmarks.svg")
RESULTS = os.path.join(BENCH, "results")

# Dev IdP built-in defaults (crates/dev-idp/src/config.rs).
TENANT = "7e1d5a2c-4b9f-4e63-a8d0-3c5f9b2e1a47"
CLIENT_ID = "2b8f6e14-9c3d-4a7e-b5f1-0d6c8e4a9b23"
CLIENT_SECRET = "dev-secret-change-me"

CORE_CLIENT = 0
CORE_SERVER = 1

# The upstream's answer: exactly 1,024 bytes of HTML (no quotes, `$`, `;` or
# braces, so it can sit in an nginx `return` string as it is).
_HEAD = "<!doctype html><html><head><title>bench upstream</title></head><body><h1>Upstream</h1><p>"
_TAIL = "</p></body></html>"
_WORDS = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
UPSTREAM_BODY = (_HEAD + (_WORDS * 20)[: 1024 - len(_HEAD) - len(_TAIL)] + _TAIL)
assert len(UPSTREAM_BODY) == 1024

SESSION_COOKIE = "aadgate"
MOD_OIDC_COOKIE = "mod_auth_openidc_session"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class BenchError(Exception):
    pass


# --------------------------------------------------------------------------
# processes


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pin(core: int):
    def f():
        os.sched_setaffinity(0, {core})

    return f


class Procs:
    """Child processes, each in its own session (so Ctrl-C reaches only us and
    we stop them in order), stopped with SIGTERM then SIGKILL."""

    def __init__(self, tmp: str):
        self.tmp = tmp
        self.procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name, argv, core, env=None, pin_with_taskset=True):
        logf = open(os.path.join(self.tmp, f"{name}.log"), "ab")
        full_env = dict(os.environ)
        full_env.update(env or {})
        if pin_with_taskset:
            argv = ["taskset", "-c", str(core)] + list(argv)
            pre = None
        else:
            pre = _pin(core)
        p = subprocess.Popen(
            argv,
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=full_env,
            start_new_session=True,
            preexec_fn=pre,
            cwd=self.tmp,
        )
        logf.close()
        self.procs.append((name, p))
        OUR_PGIDS.add(p.pid)
        return p

    def stop(self, p: subprocess.Popen, timeout=10.0):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait(5)
        # Stray group members (nginx workers, Apache children).
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.procs = [(n, q) for (n, q) in self.procs if q is not p]
        OUR_PGIDS.discard(p.pid)

    def stop_all(self):
        for _, p in reversed(list(self.procs)):
            self.stop(p)

    def log_tail(self, name, n=30):
        path = os.path.join(self.tmp, f"{name}.log")
        try:
            with open(path, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
            return "\n".join(lines[-n:])
        except OSError:
            return ""


def rss_kib(pid: int) -> dict:
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:", "RssAnon:", "RssFile:", "Threads:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0])
    return out


_CLK = os.sysconf("SC_CLK_TCK")


def group_pids(pgid: int) -> list[int]:
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read()
            except OSError:
                continue
            if int(st[st.rfind(")") + 2:].split()[2]) == pgid:
                out.append(int(d))
    return out


def group_cpu_split(pgid: int) -> tuple[float, float]:
    """(utime, stime) in seconds of every live process in a process group (all threads)."""
    user = system = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                s = f.read()
        except OSError:
            continue
        rest = s[s.rfind(")") + 2:].split()
        # fields after the command: state(0) ppid(1) pgrp(2) ... utime(11) stime(12)
        if int(rest[2]) == pgid:
            user += int(rest[11])
            system += int(rest[12])
    return user / _CLK, system / _CLK


def group_cpu_seconds(pgid: int) -> float:
    u, s = group_cpu_split(pgid)
    return u + s


OUR_PGIDS: set[int] = set()


def _cpu_snapshot():
    """(user+nice+system seconds of the whole machine, CPU seconds of our
    processes: the children we started, wrk and this script)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    machine = (v[0] + v[1] + v[2]) / _CLK
    t = os.times()
    ours = t.user + t.system + t.children_user + t.children_system
    ours += sum(group_cpu_seconds(g) for g in list(OUR_PGIDS))
    return machine, ours


def foreign_cpu(before, after, seconds) -> float:
    """Cores' worth of CPU used by other processes between two snapshots."""
    return max(0.0, (after[0] - before[0]) - (after[1] - before[1])) / max(1e-9, seconds)


def busy_fraction(seconds=2.0) -> float:
    def read():
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        idle = v[3] + v[4]
        return sum(v), idle

    t0, i0 = read()
    time.sleep(seconds)
    t1, i1 = read()
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def top_cpu(n=5) -> str:
    try:
        out = subprocess.run(
            ["ps", "-eo", "pid,pcpu,etime,comm", "--sort=-pcpu"],
            capture_output=True, text=True, timeout=5,
        ).stdout.splitlines()
        return "\n".join(out[: n + 1])
    except Exception:  # noqa: BLE001
        return ""


# --------------------------------------------------------------------------
# raw HTTP (for probes: exactly the bytes wrk sends)


def raw_get(port, path, headers=(), timeout=10.0):
    req = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    for h in headers:
        req += h + "\r\n"
    req += "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                raise BenchError(f"connection closed by 127.0.0.1:{port}{path}")
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs.setdefault(k.strip().lower(), []).append(v.strip())
        if "content-length" in hdrs:
            n = int(hdrs["content-length"][0])
            while len(body) < n:
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
        elif "chunked" in ",".join(hdrs.get("transfer-encoding", [])):
            while not body.endswith(b"0\r\n\r\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                body += chunk
        return status, hdrs, body, len(head) + 4 + len(body)


def wait_http(port, path="/", timeout=30.0, proc=None, name="", procs=None):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            tail = procs.log_tail(name) if procs else ""
            raise BenchError(f"{name} exited with {proc.returncode}:\n{tail}")
        try:
            return raw_get(port, path, timeout=2)
        except (OSError, BenchError) as e:
            last = e
            time.sleep(0.02)
    raise BenchError(f"{name or port} did not answer {path} within {timeout}s ({last})")


# --------------------------------------------------------------------------
# a scripted browser: follows redirects across hosts, keeps cookies per
# host:port, and picks the dev IdP user with login_hint.


class Browser:
    def __init__(self, idp_port: int, user="reader"):
        self.idp_port = idp_port
        self.user = user
        self.conns: dict[int, http.client.HTTPConnection] = {}
        self.jar: dict[int, dict[str, str]] = {}

    def _conn(self, port):
        c = self.conns.get(port)
        if c is None:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            self.conns[port] = c
        return c

    def get(self, port, path, extra=None):
        headers = {"Accept": "text/html", "Sec-Fetch-Mode": "navigate"}
        jar = self.jar.get(port)
        if jar:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        headers.update(extra or {})
        for attempt in range(2):
            c = self._conn(port)
            try:
                c.request("GET", path, headers=headers)
                r = c.getresponse()
                body = r.read()
                break
            except (http.client.HTTPException, OSError):
                c.close()
                self.conns.pop(port, None)
                if attempt:
                    raise
        for sc in r.headers.get_all("Set-Cookie") or []:
            pair = sc.split(";", 1)[0]
            k, _, v = pair.partition("=")
            k = k.strip()
            max_age_0 = re.search(r"(?i)max-age=0\b", sc) is not None
            if max_age_0 or v == "":
                self.jar.setdefault(port, {}).pop(k, None)
            else:
                self.jar.setdefault(port, {})[k] = v
        if r.getheader("Connection", "").lower() == "close":
            c.close()
            self.conns.pop(port, None)
        return r.status, r.headers, body

    def sign_in(self, port, start_path, want_cookie):
        """Follows the flow from `start_path` until `want_cookie` is set on port."""
        cur_port, cur_path = port, start_path
        for _ in range(12):
            status, headers, body = self.get(cur_port, cur_path)
            if want_cookie in self.jar.get(port, {}):
                return self.jar[port][want_cookie]
            if status not in (301, 302, 303, 307):
                raise BenchError(
                    f"sign-in stopped at {cur_port}{cur_path[:80]} with {status}: {body[:300]!r}"
                )
            loc = headers.get("Location")
            u = urllib.parse.urlsplit(urllib.parse.urljoin(f"http://127.0.0.1:{cur_port}{cur_path}", loc))
            cur_port = u.port or 80
            cur_path = u.path + (("?" + u.query) if u.query else "")
            if cur_port == self.idp_port and u.path.endswith("/oauth2/v2.0/authorize"):
                cur_path += "&login_hint=" + self.user
        raise BenchError("sign-in: too many redirects")

    def close(self):
        for c in self.conns.values():
            c.close()
        self.conns.clear()


_COUNTER = None


def _init_worker(counter):
    global _COUNTER
    _COUNTER = counter
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops the pool


def _signin_worker(args):
    (idp_port, port, n, start_at) = args
    counter = _COUNTER
    os.sched_setaffinity(0, {CORE_CLIENT})
    while time.time() < start_at:
        time.sleep(0.001)
    ok = errors = 0
    sample = []
    first_error = None
    b = Browser(idp_port)
    for i in range(n):
        b.jar.clear()
        try:
            cookie = b.sign_in(port, "/auth/login?rd=/", SESSION_COOKIE)
            ok += 1
            if len(sample) < 3:
                sample.append(cookie)
        except Exception as e:  # noqa: BLE001
            errors += 1
            if first_error is None:
                first_error = repr(e)
            b.close()
        if i % 25 == 24:
            with counter.get_lock():
                counter.value += 25
    b.close()
    return ok, errors, sample, first_error


def mass_sign_in(idp_port, port, total, workers, progress_every=10.0, on_progress=None):
    """`total` complete sign-ins through aadgate's public flow and the dev IdP,
    `workers` browsers at a time. Returns (ok, errors, seconds, sample cookies)."""
    ctx = mp.get_context("fork")
    counter = ctx.Value("l", 0)
    per = [total // workers + (1 if i < total % workers else 0) for i in range(workers)]
    start_at = time.time() + 0.3
    with ctx.Pool(workers, initializer=_init_worker, initargs=(counter,)) as pool:
        res = pool.map_async(
            _signin_worker, [(idp_port, port, n, start_at) for n in per], chunksize=1
        )
        last = time.time()
        while not res.ready():
            res.wait(0.5)
            if time.time() - last >= progress_every:
                last = time.time()
                done = counter.value
                rate = done / max(1e-9, time.time() - start_at)
                log(f"  sign-ins: {done:,}/{total:,} ({rate:,.0f}/s)")
                if on_progress:
                    on_progress(done)
        results = res.get()
    secs = time.time() - start_at
    ok = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    sample = [c for r in results for c in r[2]]
    first_error = next((r[3] for r in results if r[3]), None)
    return ok, errors, secs, sample, first_error


# --------------------------------------------------------------------------
# configurations


def nginx_upstream_conf(tmp, port, status_port):
    body = UPSTREAM_BODY
    return f"""
worker_processes 1;
pid {tmp}/upstream.pid;
error_log {tmp}/upstream-error.log warn;
user root root;
events {{ worker_connections 8192; }}
worker_rlimit_nofile 20000;
http {{
    access_log off;
    client_body_temp_path {tmp}/up-body; proxy_temp_path {tmp}/up-proxy;
    fastcgi_temp_path {tmp}/up-fcgi; uwsgi_temp_path {tmp}/up-uwsgi; scgi_temp_path {tmp}/up-scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server_tokens off;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            default_type text/html;
            return 200 "{body}";
        }}
    }}
    server {{
        listen 127.0.0.1:{status_port};
        location / {{ stub_status; }}
    }}
}}
"""


def nginx_proxy_conf(tmp, port, upstream_port):
    return f"""
worker_processes 1;
pid {tmp}/nginx-proxy.pid;
error_log {tmp}/nginx-proxy-error.log warn;
user root root;
events {{ worker_connections 8192; }}
worker_rlimit_nofile 20000;
http {{
    access_log off;
    client_body_temp_path {tmp}/px-body; proxy_temp_path {tmp}/px-proxy;
    fastcgi_temp_path {tmp}/px-fcgi; uwsgi_temp_path {tmp}/px-uwsgi; scgi_temp_path {tmp}/px-scgi;
    keepalive_requests 100000000;
    keepalive_timeout 300s;
    server_tokens off;
    upstream app {{
        server 127.0.0.1:{upstream_port};
        keepalive 256;                 # same idle pool as aadgate's (pool_max_idle_per_host 256)
        keepalive_requests 100000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $host;
        }}
    }}
}}
"""


def apache_conf(tmp, port, upstream_port, idp_port):
    mods = "/usr/lib/apache2/modules"
    load = "\n".join(
        f"LoadModule {n}_module {mods}/mod_{f}.so"
        for n, f in [
            ("mpm_event", "mpm_event"),
            ("authn_core", "authn_core"),
            ("authz_core", "authz_core"),
            ("authz_user", "authz_user"),
            ("proxy", "proxy"),
            ("proxy_http", "proxy_http"),
            ("auth_openidc", "auth_openidc"),
        ]
    )
    return f"""
ServerRoot {tmp}
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile {tmp}/apache.pid
DefaultRuntimeDir {tmp}/apache-run
Mutex file:{tmp}/apache-run default
ErrorLog {tmp}/apache-error.log
LogLevel warn
User www-data
Group www-data
{load}

# Debian's event MPM, with threads enough for every benchmark connection.
# With Debian's defaults (2-6 children x 25 threads) a child whose workers are
# all busy closes its idle keep-alive connections (event MPM behaviour), and
# wrk counts each as a read error; browsers would retry, but it would be
# counted against Apache here. So: 2 children x 600 threads, never retired.
ServerLimit             2
StartServers            2
ThreadLimit             600
ThreadsPerChild         600
MinSpareThreads         25
MaxSpareThreads         1200
MaxRequestWorkers       1200
MaxConnectionsPerChild  0
# keep-alive connections are not closed after 100 requests (nginx and aadgate
# do not close them either)
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 300
Timeout 60

OIDCProviderMetadataURL http://127.0.0.1:{idp_port}/{TENANT}/v2.0/.well-known/openid-configuration
OIDCClientID {CLIENT_ID}
OIDCClientSecret {CLIENT_SECRET}
OIDCRedirectURI http://127.0.0.1:{port}/redirect_uri
OIDCCryptoPassphrase {secrets.token_hex(16)}
OIDCScope "openid profile email"
OIDCPKCEMethod S256
# default session type (server-cache) and default cache (shm)

<Location />
    AuthType openid-connect
    Require valid-user
</Location>
ProxyPass /redirect_uri !
ProxyPass / http://127.0.0.1:{upstream_port}/
"""


def idp_conf(redirect_uris):
    uris = ", ".join(f'"{u}"' for u in redirect_uris)
    return f'redirect_uris = [{uris}]\n'


def aadgate_conf(port, upstream_port, idp_port, store_dir):
    return f"""
listen = "127.0.0.1:{port}"
public_url = "http://127.0.0.1:{port}"
upstream = "http://127.0.0.1:{upstream_port}"

[oidc]
tenant = "{TENANT}"
issuer = "http://127.0.0.1:{idp_port}/{TENANT}/v2.0"
client_id = "{CLIENT_ID}"

[session]
store = "file:{store_dir}"

[authz]
roles = ["App.Read", "App.Write", "App.Admin"]

[[route]]
path = "/public"
public = true
"""


# --------------------------------------------------------------------------
# wrk


def run_wrk(port, path, headers, conns, seconds, timeout_s=10):
    cmd = [
        "taskset", "-c", str(CORE_CLIENT),
        "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", f"--timeout={timeout_s}s",
        "-s", LUA,
    ]
    for h in headers:
        cmd += ["-H", h]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    m = re.search(r"^BENCHJSON (\{.*\})$", out.stdout, re.M)
    if not m:
        raise BenchError(f"wrk failed: {out.stdout}\n{out.stderr}")
    r = json.loads(m.group(1))
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


def upstream_count(status_port) -> int:
    _, _, body, _ = raw_get(status_port, "/")
    # "Active connections: N \nserver accepts handled requests\n A B C \n..."
    nums = body.decode().splitlines()[2].split()
    return int(nums[2])


# --------------------------------------------------------------------------
# the run


class Contestant:
    def __init__(self, key, label, port, path, headers, expect, proxied, pgid, signin=None):
        self.key = key
        self.label = label
        self.port = port
        self.path = path
        self.headers = headers
        self.expect = expect  # expected status
        self.proxied = proxied  # every answer must have come from the upstream
        self.pgid = pgid  # the process group whose CPU is "the proxy" (None: upstream only)
        self.signin = signin  # callable re-signing in (returns the header list)
        self.expected_bytes = None


def probe(c: Contestant):
    # Twice: a first answer may carry a one-off header (mod_auth_openidc
    # refreshes its session cookie), the second is the steady-state one.
    raw_get(c.port, c.path, c.headers)
    status, hdrs, body, total = raw_get(c.port, c.path, c.headers)
    if status != c.expect:
        return False, f"{c.label}: expected {c.expect}, got {status}: {body[:200]!r}"
    if c.proxied and body != UPSTREAM_BODY.encode():
        return False, f"{c.label}: body is not the upstream's ({len(body)} bytes)"
    c.expected_bytes = total
    return True, ""


def measure(c: Contestant, conns, seconds, warmup, status_port, up_pgid):
    ok, why = probe(c)
    if not ok and c.signin is not None:
        c.headers = c.signin()
        ok, why = probe(c)
    if not ok:
        raise BenchError(why)
    if warmup > 0:
        run_wrk(c.port, c.path, c.headers, conns, warmup)
    before = upstream_count(status_port)
    snap0 = _cpu_snapshot()
    cpu0 = group_cpu_split(c.pgid) if c.pgid else (0.0, 0.0)
    up0 = group_cpu_seconds(up_pgid)
    r = run_wrk(c.port, c.path, c.headers, conns, seconds)
    cpu1 = group_cpu_split(c.pgid) if c.pgid else (0.0, 0.0)
    up1 = group_cpu_seconds(up_pgid)
    snap1 = _cpu_snapshot()
    hits = upstream_count(status_port) - before - 1  # minus this status request
    socket_errors = r["connect"] + r["read"] + r["write"] + r["timeout"]
    if c.expect >= 400:
        bad_status = r["requests"] - r["status"]
    else:
        bad_status = r["status"]
    if c.proxied:
        # In-flight requests at the end reached the upstream but are not counted by wrk.
        missing = max(0, r["requests"] - hits)
        leaked = 0
    else:
        missing = 0
        # A rejection must never reach the app (ignore a handful of in-flight warm-up tails).
        leaked = hits if c.key.startswith("reject") else 0
    avg = r["bytes"] / max(1, r["requests"])
    size_ok = abs(avg - c.expected_bytes) <= 0.02 * c.expected_bytes
    r.update(
        conns=conns,
        errors=socket_errors + bad_status + missing + leaked,
        socket_errors=socket_errors,
        bad_status=bad_status,
        missing_upstream=missing,
        leaked_to_upstream=leaked,
        avg_bytes=avg,
        expected_bytes=c.expected_bytes,
        size_ok=size_ok,
        proxy_cpu_us_per_req=(sum(cpu1) - sum(cpu0)) * 1e6 / max(1, r["requests"]),
        proxy_user_us_per_req=(cpu1[0] - cpu0[0]) * 1e6 / max(1, r["requests"]),
        proxy_sys_us_per_req=(cpu1[1] - cpu0[1]) * 1e6 / max(1, r["requests"]),
        upstream_cpu_us_per_req=(up1 - up0) * 1e6 / max(1, r["requests"]),
        foreign_cpu=foreign_cpu(snap0, snap1, r["duration_us"] / 1e6),
    )
    if r["foreign_cpu"] > 0.05:
        log(f"  warning: other processes used {r['foreign_cpu']:.0%} of a core during {c.label}: "
            f"this measurement is noisy\n{top_cpu(4)}")
    if not size_ok:
        log(f"  warning: {c.label}: average response {avg:.0f} B, probe {c.expected_bytes} B")
    return r


def err_detail(r):
    if not r["errors"]:
        return "0"
    return (f"{r['errors']} (socket {r['socket_errors']}, status {r['bad_status']}, "
            f"not from upstream {r['missing_upstream']}, leaked {r['leaked_to_upstream']})")


def median_result(runs):
    """Median of each metric over rounds (errors: the sum)."""
    out = dict(runs[0])
    for k in ("rps", "p50_us", "p90_us", "p99_us", "p999_us", "mean_us", "proxy_cpu_us_per_req",
              "proxy_user_us_per_req", "proxy_sys_us_per_req", "upstream_cpu_us_per_req"):
        out[k] = statistics.median(r[k] for r in runs)
    for k in ("errors", "socket_errors", "bad_status", "missing_upstream",
              "leaked_to_upstream", "requests"):
        out[k] = sum(r[k] for r in runs)
    out["max_us"] = max(r["max_us"] for r in runs)
    out["foreign_cpu"] = max(r["foreign_cpu"] for r in runs)
    out["rps_rounds"] = [r["rps"] for r in runs]
    return out


def measure_startup(tmp, procs, n, upstream_port, idp_port, env, store_dir=None):
    """Wall time from exec to the first answered /healthz, n times."""
    times = []
    for i in range(n):
        port = free_port()
        sd = store_dir or os.path.join(tmp, f"startup-store-{i}")
        cfg = os.path.join(tmp, f"startup-{i}.toml")
        with open(cfg, "w") as f:
            f.write(aadgate_conf(port, upstream_port, idp_port, sd))
        req = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
        t0 = time.perf_counter()
        p = procs.start(f"startup-{i}", [BIN, "proxy", "--config", cfg], CORE_SERVER,
                        env=env, pin_with_taskset=False)
        t1 = None
        deadline = t0 + 30
        while time.perf_counter() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(req)
                    data = s.recv(4096)
                    if data.startswith(b"HTTP/1.1 200"):
                        t1 = time.perf_counter()
                        break
            except OSError:
                pass
            if p.poll() is not None:
                raise BenchError(f"aadgate exited during start-up:\n{procs.log_tail(f'startup-{i}')}")
            time.sleep(0.0005)
        if t1 is None:
            raise BenchError("aadgate did not answer /healthz within 30 s")
        times.append((t1 - t0) * 1000)
        procs.stop(p)
    return times


def versions():
    def sh(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
            return (r.stdout + r.stderr).strip()
        except Exception:  # noqa: BLE001
            return "?"

    def dpkg(pkg):
        return sh(["dpkg-query", "-W", "-f=${Version}", pkg])

    info = {}
    with open("/proc/cpuinfo") as f:
        for line in f:
            k, _, v = line.partition(":")
            info.setdefault(k.strip(), v.strip())
    cpu = (f"{info.get('model name', '?')} (family {info.get('cpu family', '?')}, model {info.get('model', '?')}, "
           f"stepping {info.get('stepping', '?')})")
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    commit = sh(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"])
    dirty = sh(["git", "-C", ROOT, "status", "--porcelain", "--", "crates", "Cargo.toml", "Cargo.lock"])
    hyp = sh(["sh", "-c", "lscpu | sed -n 's/^Hypervisor vendor: *//p'"])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "hypervisor": hyp or "none",
        "memory_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "os": sh(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]) + " (" + sh(["cat", "/etc/debian_version"]) + ")",
        "aadgate": sh([BIN, "--version"]) + f" (git {commit}{' + uncommitted changes' if dirty else ''})",
        "rustc": sh(["rustc", "--version"]),
        "wrk": (sh(["wrk", "-v"]).splitlines() or ["?"])[0],
        "nginx": sh(["nginx", "-v"]).replace("nginx version: ", "") + f" (Debian {dpkg('nginx')})",
        "apache2": dpkg("apache2"),
        "mod_auth_openidc": dpkg("libapache2-mod-auth-openidc"),
        "python": platform.python_version(),
    }


# --------------------------------------------------------------------------
# output


def fmt_ms(us):
    return f"{us / 1000:.2f}"


ROW_ORDER = ["direct", "nginx", "public", "signed", "modoidc", "reject302", "reject401"]


def table_rows(main):
    rows = []
    for k in ROW_ORDER:
        r = main.get(k)
        if not r:
            continue
        rows.append([
            r["label"], f"{r['rps']:,.0f}", fmt_ms(r["p50_us"]), fmt_ms(r["p99_us"]),
            fmt_ms(r["p999_us"]), str(r["errors"]),
            (f"{r['proxy_cpu_us_per_req']:.1f} ({r['proxy_user_us_per_req']:.0f} + {r['proxy_sys_us_per_req']:.0f})"
             if r["proxy_cpu_us_per_req"] else "-"),
            f"{r['upstream_cpu_us_per_req']:.1f}" if r["upstream_cpu_us_per_req"] > 0.5 else "-",
        ])
    return rows


MAIN_HEAD = ["contestant", "requests/s", "p50 ms", "p99 ms", "p99.9 ms", "errors",
             "proxy CPU µs/req (user + sys)", "upstream CPU µs/req"]


def text_table(head, rows):
    w = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = lambda cells: "  ".join(  # noqa: E731
        str(c).ljust(w[i]) if i == 0 else str(c).rjust(w[i]) for i, c in enumerate(cells))
    return "\n".join([line(head), "  ".join("-" * x for x in w)] + [line(r) for r in rows])


def md_table(head, rows):
    out = ["| " + " | ".join(head) + " |",
           "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def ratios(main):
    s = main.get("signed")
    out = {}
    if not s:
        return out
    for k, name in (("nginx", "nginx"), ("modoidc", "mod_auth_openidc"), ("direct", "direct")):
        if main.get(k):
            out[f"aadgate signed-in / {name}"] = s["rps"] / main[k]["rps"]
    if main.get("nginx"):
        out["p99 aadgate signed-in - nginx (ms)"] = (s["p99_us"] - main["nginx"]["p99_us"]) / 1000
    return out


def targets(main, mem):
    r = ratios(main)
    t = []
    if "aadgate signed-in / nginx" in r:
        v = r["aadgate signed-in / nginx"]
        t.append(("aadgate signed-in ≥ 0.9 × nginx plain proxy", v >= 0.9, f"{v:.2f} ×"))
    if "aadgate signed-in / mod_auth_openidc" in r:
        v = r["aadgate signed-in / mod_auth_openidc"]
        t.append(("aadgate signed-in ≥ 2 × mod_auth_openidc", v >= 2.0, f"{v:.2f} ×"))
    if "p99 aadgate signed-in - nginx (ms)" in r:
        v = r["p99 aadgate signed-in - nginx (ms)"]
        t.append(("p99 at 64 connections within 1 ms of nginx", v <= 1.0, f"{v:+.2f} ms"))
    errs = sum(x["errors"] for x in main.values())
    t.append(("zero errors", errs == 0, f"{errs} errors"))
    if mem.get("rss_sessions_kib") is not None:
        n = mem["sessions"]
        rss = mem["rss_sessions_kib"] / 1024
        # 64 MB read strictly: 64,000,000 bytes = 61.0 MiB.
        limit_mib = 64e6 / 2**20
        if n >= 100_000:
            t.append((f"RSS < 64 MB with {n:,} sessions", rss < limit_mib,
                      f"{rss:.1f} MiB = {rss * 2**20 / 1e6:.1f} MB"))
        else:
            # Not extrapolated: with a file store the session cache is
            # bounded, so memory does not grow linearly with sessions.
            t.append(("RSS < 64 MB with 100,000 sessions", None,
                      f"not measured in this run ({rss:.1f} MiB with {n:,} sessions; "
                      "`bench/run` measures 100,000)"))
    return t


def svg_chart(main, sweep):
    """Two panels: requests/s per contestant at 64 connections, and the
    concurrency sweep. Plain SVG, no dependencies."""
    W = 860
    keys = [k for k in ROW_ORDER if k in main]
    bar_h, gap, left = 26, 10, 300
    h1 = 50 + len(keys) * (bar_h + gap)
    colors = {"direct": "#9e9e9e", "nginx": "#4caf50", "public": "#90caf9", "signed": "#1565c0",
              "modoidc": "#ef6c00", "reject302": "#b0bec5", "reject401": "#b0bec5"}
    vmax = max(main[k]["rps"] for k in keys) * 1.12
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="HEIGHT" font-family="sans-serif" font-size="13">',
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="10" y="24" font-size="16" font-weight="bold">requests/s at 64 connections (higher is better)</text>']
    y = 44
    for k in keys:
        r = main[k]
        wbar = (W - left - 110) * r["rps"] / vmax
        out.append(f'<text x="{left - 8}" y="{y + bar_h * 0.68:.0f}" text-anchor="end">{_esc(r["label"])}</text>')
        out.append(f'<rect x="{left}" y="{y}" width="{wbar:.1f}" height="{bar_h}" fill="{colors.get(k, "#607d8b")}"/>')
        out.append(f'<text x="{left + wbar + 6:.1f}" y="{y + bar_h * 0.68:.0f}">{r["rps"]:,.0f}  (p99 {fmt_ms(r["p99_us"])} ms)</text>')
        y += bar_h + gap
    height = h1
    if sweep:
        conns = sorted({c for s in sweep.values() for c in s})
        skeys = [k for k in ROW_ORDER if k in sweep]
        y = h1 + 20
        out.append(f'<text x="10" y="{y}" font-size="16" font-weight="bold">requests/s by concurrent connections</text>')
        y += 18
        gh = len(skeys) * 18 + 14
        smax = max(v["rps"] for s in sweep.values() for v in s.values()) * 1.15
        for c in conns:
            out.append(f'<text x="{left - 8}" y="{y + gh / 2:.0f}" text-anchor="end">{c} connection{"s" if c != 1 else ""}</text>')
            yy = y
            for k in skeys:
                v = sweep[k].get(c)
                if v:
                    wbar = (W - left - 190) * v["rps"] / smax
                    out.append(f'<rect x="{left}" y="{yy}" width="{wbar:.1f}" height="15" fill="{colors.get(k, "#607d8b")}"/>')
                    out.append(f'<text x="{left + wbar + 6:.1f}" y="{yy + 12}" font-size="12">{_esc(main.get(k, {}).get("label", k))}: {v["rps"]:,.0f}</text>')
                yy += 18
            y += gh
        height = y + 10
    out.append("</svg>")
    return "\n".join(out).replace("HEIGHT", str(int(height)))


def _esc(s):
    return str(s).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


BEGIN = "<!-- bench/run: generated from here -->"
END = "<!-- bench/run: generated up to here -->"


def write_docs(res, cmdline):
    v = res["env"]
    main = res["main"]
    mem = res["memory"]
    lines = [BEGIN, ""]
    lines.append(f"Generated by `{cmdline}` on {res['date']} ({res['mode']} run, "
                 f"{res['settings']['rounds']} round(s) of {res['settings']['seconds']} s per contestant, "
                 f"medians shown).")
    st_ = res["settings"]
    lines += ["", "### Method", "",
              f"- Command: `{cmdline}` as root on this machine, after `cargo build --release -p aadgate-cli`; "
              "a full run first waits for the machine to be idle (< 10 % CPU); every run checks that no other "
              f"process used more than 5 % of a core (largest seen: {max(x.get('foreign_cpu', 0) for x in main.values()):.1%}).",
              "- Pinning (`taskset -c`, the same for every contestant): **core 0** = `wrk -t1`, bench.py, the scripted "
              "sign-ins and the dev IdP; **core 1** = the proxy under test **and** the upstream. Core 1 is the "
              "bottleneck in every proxied row, so requests/s ≈ 10⁶ / (proxy CPU µs/req + upstream CPU µs/req).",
              f"- Load: `taskset -c 0 wrk -t1 -c64 -d{st_['seconds']}s --timeout=10s -s bench/wrk/report.lua "
              "-H 'Accept: text/html' [-H 'Cookie: …'] http://127.0.0.1:<port>/<path>` (closed loop, keep-alive), "
              f"after a {st_['warmup']} s warm-up; {st_['rounds']} round(s) over all contestants, order reversed every "
              "other round; the table shows medians.",
              "- Upstream: nginx, 1 worker, `return 200` with a 1,024-byte HTML body. nginx proxy: 1 worker, "
              "`proxy_pass` with an HTTP/1.1 keep-alive pool of 256 (aadgate's idle pool size). aadgate: "
              "`aadgate proxy`, dev IdP as `[oidc] tenant`/`issuer`, `store = \"file:…\"` (redb), roles "
              "`App.Read/Write/Admin`, `[[route]] path=\"/public\" public=true`; the signed-in cookie comes from a "
              "scripted sign-in (`/auth/login` → dev IdP `authorize&login_hint=reader` → `/auth/callback`). Apache "
              "2.4 event MPM (2 × 600 threads, so that busy children never close keep-alive connections) + "
              "mod_auth_openidc (defaults: server-cache session in `shm`, claims passed as headers; "
              "`OIDCProviderMetadataURL` = the dev IdP's discovery over http, `OIDCPKCEMethod S256`, "
              "`OIDCScope \"openid profile email\"`) + `mod_proxy_http` to the same upstream, signed in the same "
              "scripted way.",
              "- Errors = wrk socket errors + unexpected statuses + requests the upstream did not see (its "
              "`stub_status` counter; for rejections: any request that reached it).",
              "- CPU µs/req: utime + stime of the process group from `/proc/<pid>/stat` over the run, divided by "
              "the requests.",
              "- Sign-ins: scripted browsers (Python, 8 processes on core 0) doing the full flow through the dev IdP; "
              "every session is a real one in aadgate's store. Memory: `VmRSS` from `/proc/<pid>/status`, the "
              "sessions created in a fresh aadgate. Store: size of `sessions.redb`. Start-up: exec to the first "
              "answered `GET /healthz` (includes fetching the dev IdP's discovery document).",
              ]
    lines += ["", "### Results at 64 connections", "", md_table(MAIN_HEAD, table_rows(main)), ""]
    lines.append("Ratios (requests/s):")
    lines.append("")
    for k, val in ratios(main).items():
        lines.append(f"- **{k}**: {val:+.2f}" if "ms" in k else f"- **{k}**: {val:.2f}")
    lines += ["", "Targets:", ""]
    for name, ok, val in targets(main, mem):
        verdict = "– not measured" if ok is None else ("✅ met" if ok else "❌ not met")
        lines.append(f"- {verdict} — {name}: {val}")
    lines += ["", "![requests/s per contestant and by concurrency](benchmarks.svg)", ""]

    if res.get("sweep"):
        conns = sorted({c for s in res["sweep"].values() for c in s})
        head = ["contestant"] + [f"{c} conn req/s (p99 ms)" for c in conns]
        rows = []
        for k in ROW_ORDER:
            if k in res["sweep"]:
                rows.append([main[k]["label"]] + [
                    f"{res['sweep'][k][c]['rps']:,.0f} ({fmt_ms(res['sweep'][k][c]['p99_us'])})"
                    + ("" if res["sweep"][k][c]["errors"] == 0 else f" ⚠ {res['sweep'][k][c]['errors']} errors")
                    if c in res["sweep"][k] else "-" for c in conns])
        lines += ["### Concurrency", "", md_table(head, rows), ""]
    s = res.get("signin", {})
    lines += ["### Sign-in, memory, store, start-up", ""]
    items = []
    if s:
        items.append(("sign-in flows completed per second (end to end, "
                      f"{s['workers']} scripted browsers, {s['ok']:,} sign-ins)",
                      f"{s['rate']:,.0f} /s ({s['errors']} errors)"))
        items.append(("CPU per sign-in: aadgate / dev IdP",
                      f"{s['aadgate_cpu_ms']:.2f} ms / {s['idp_cpu_ms']:.2f} ms"))
        if s.get("first_window"):
            fw, lw = s["first_window"], s["last_window"]
            items.append(("… in the first 10 s / the last 10 s of the sign-ins (aadgate, dev IdP, rate)",
                          f"{fw['aadgate_cpu_ms']:.2f} ms, {fw['idp_cpu_ms']:.2f} ms, {fw['rate']:,.0f}/s → "
                          f"{lw['aadgate_cpu_ms']:.2f} ms, {lw['idp_cpu_ms']:.2f} ms, {lw['rate']:,.0f}/s"))
    if mem:
        items.append(("aadgate RSS idle (after start-up)", f"{mem['rss_idle_kib'] / 1024:.1f} MiB"))
        items.append(("aadgate RSS after the 64-connection runs", f"{mem['rss_after_main_kib'] / 1024:.1f} MiB"))
        items.append(("aadgate RSS after the 1,024-connection runs", f"{mem['rss_after_load_kib'] / 1024:.1f} MiB"
                      + (f" ({mem['rss_after_load_idle_kib'] / 1024:.1f} MiB after 10 s idle)"
                         if mem.get("rss_after_load_idle_kib") else "")))
        if mem.get("rss_sessions_kib") is not None:
            items.append((f"aadgate RSS with {mem['sessions']:,} live sessions (fresh instance: "
                          f"{mem['rss_before_sessions_kib'] / 1024:.1f} MiB before the sign-ins)",
                          f"{mem['rss_sessions_kib'] / 1024:.1f} MiB "
                          f"({mem['kib_per_session'] * 1024:,.0f} B per session)"))
        if mem.get("rss_restart_kib") is not None:
            items.append(("aadgate RSS after a restart on that store (idle)",
                          f"{mem['rss_restart_kib'] / 1024:.1f} MiB"))
        if mem.get("store_bytes") is not None:
            items.append((f"session store on disk with {mem['sessions']:,} sessions",
                          f"{mem['store_bytes'] / 2**20:.1f} MiB ({mem['store_bytes_per_session']:,.0f} B per session)"))
        if mem.get("signed_with_sessions"):
            x = mem["signed_with_sessions"]
            items.append((f"aadgate signed-in with {mem['sessions']:,} sessions in the store",
                          f"{x['rps']:,.0f} req/s, p99 {fmt_ms(x['p99_us'])} ms, {x['errors']} errors"))
    st = res.get("startup", {})
    if st.get("empty"):
        items.append(("start-up, exec to first /healthz answer (empty store)",
                      f"median {statistics.median(st['empty']):.1f} ms (of {len(st['empty'])}: "
                      + ", ".join(f"{x:.1f}" for x in st["empty"]) + ")"))
    if st.get("populated"):
        items.append((f"start-up with {mem.get('sessions', 0):,} sessions in the store",
                      f"{statistics.median(st['populated']):.1f} ms"))
    lines += [md_table(["measurement", "value"], [list(x) for x in items]), ""]
    lines += ["### Environment", "", md_table(["", ""], [[k, f"`{val}`"] for k, val in v.items()]), ""]
    lines += ["### Raw numbers", "", "Per-round requests/s (64 connections):", ""]
    for k in ROW_ORDER:
        if k in main:
            lines.append(f"- {main[k]['label']}: " + ", ".join(f"{x:,.0f}" for x in main[k]["rps_rounds"]))
    lines += ["", f"All numbers: `bench/results/{res['mode']}.json`.", "", END]
    generated = "\n".join(lines)

    if os.path.exists(DOC):
        with open(DOC) as f:
            text = f.read()
        if BEGIN in text and END in text:
            pre = text[: text.index(BEGIN)]
            post = text[text.index(END) + len(END):]
            text = pre + generated + post
        else:
            text = text.rstrip() + "\n\n" + generated + "\n"
    else:
        text = DOC_PREAMBLE + generated + "\n"
    with open(DOC, "w") as f:
        f.write(text)
    with open(SVG, "w") as f:
        f.write(svg_chart(main, res.get("sweep", {})))


DOC_PREAMBLE = """# Benchmarks

`bench/run` measures aadgate against no proxy, a plain nginx proxy and Apache
with mod_auth_openidc. Everything below the marker is regenerated by
`bench/run`; text above it and after the end marker is kept.

"""


# --------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs, < 1 minute, no docs written")
    ap.add_argument("--seconds", type=int, help="measured seconds per run")
    ap.add_argument("--rounds", type=int, help="rounds over all contestants (medians reported)")
    ap.add_argument("--sessions", type=int, help="live sessions to create for the memory measurement")
    ap.add_argument("--signin-workers", type=int, default=8)
    ap.add_argument("--preload", metavar="LIB",
                    help="LD_PRELOAD for aadgate (experiments: another malloc, e.g. "
                         "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2)")
    ap.add_argument("--store", choices=["file", "memory"], default="file",
                    help="aadgate's session store (the benchmark uses file; memory is for comparison)")
    ap.add_argument("--docs", dest="docs", action="store_true", default=None, help="write docs/benchmarks.md")
    ap.add_argument("--no-docs", dest="docs", action="store_false")
    ap.add_argument("--no-wait", action="store_true", help="do not wait for the machine to be quiet")
    ap.add_argument("--keep-tmp", action="store_true")
    ap.add_argument("--profile", choices=["perf", "callgrind"], help="profile aadgate signed-in instead of benchmarking")
    ap.add_argument("--profile-seconds", type=int, default=20)
    ap.add_argument("--profile-route", choices=["signed", "public", "signin"], default="signed",
                    help="what callgrind/perf record measure: a signed-in request, the public route, "
                         "or (perf only) sign-ins after --sessions earlier ones")
    args = ap.parse_args()

    quick = args.quick
    seconds = args.seconds or (2 if quick else 10)  # wrk takes whole seconds
    warmup = 1 if quick else 2
    rounds = args.rounds or (1 if quick else 3)
    n_sessions = args.sessions if args.sessions is not None else (1_000 if quick else 100_000)
    experiment = bool(args.preload) or args.store != "file" or args.sessions is not None
    write = args.docs if args.docs is not None else (not quick and not args.profile and not experiment)
    sweep_conns = [1, 1024]
    sweep_keys = ["nginx", "signed"] if quick else ["direct", "nginx", "signed", "modoidc"]

    if os.cpu_count() < 2:
        raise BenchError("needs 2 cores (client on core 0, server side on core 1)")
    os.sched_setaffinity(0, {CORE_CLIENT})
    if not os.access(BIN, os.X_OK):
        raise BenchError(f"{BIN} missing: cargo build --release -p aadgate-cli")

    # A quiet machine: wait for other work (builds, fuzzers) to end.
    if not args.no_wait:
        waited = 0
        while True:
            busy = busy_fraction(2.0)
            if busy < 0.10:
                break
            if quick and waited == 0:
                log(f"warning: the machine is {busy:.0%} busy; numbers will be noisy")
                break
            if waited >= 1800:
                log(f"warning: still {busy:.0%} busy after 30 minutes; measuring anyway")
                break
            log(f"machine is {busy:.0%} busy, waiting for it to be quiet (--no-wait to skip):\n{top_cpu()}")
            time.sleep(30)
            waited += 30

    t_start = time.time()
    tmp = tempfile.mkdtemp(prefix="aadgate-bench-")
    os.chmod(tmp, 0o755)
    os.makedirs(os.path.join(tmp, "apache-run"), mode=0o777, exist_ok=True)
    os.chmod(os.path.join(tmp, "apache-run"), 0o777)
    procs = Procs(tmp)

    def on_term(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    signal.signal(signal.SIGINT, on_term)  # also when started with SIGINT ignored (background job)

    ok = False
    try:
        res = run(args, procs, tmp, quick, seconds, warmup, rounds, n_sessions, sweep_conns, sweep_keys)
        if res is None:  # profile mode
            ok = True
            return 0
        res["total_seconds"] = time.time() - t_start
        report(res)
        os.makedirs(RESULTS, exist_ok=True)
        with open(os.path.join(RESULTS, f"{res['mode']}.json"), "w") as f:
            json.dump(res, f, indent=1)
        if write:
            write_docs(res, "bench/run" + (" --quick" if quick else ""))
            log(f"wrote {os.path.relpath(DOC, ROOT)} and {os.path.relpath(SVG, ROOT)}")
        log(f"done in {res['total_seconds']:.0f} s")
        ok = True
        return 0
    except KeyboardInterrupt:
        log("interrupted; stopping everything")
        return 130
    finally:
        procs.stop_all()
        if ok and not args.keep_tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"logs kept in {tmp}")


def run(args, procs, tmp, quick, seconds, warmup, rounds, n_sessions, sweep_conns, sweep_keys):
    up_port, up_status, idp_port = free_port(), free_port(), free_port()
    ag_port, ngx_port, ap_port = free_port(), free_port(), free_port()
    session_secret = secrets.token_hex(32)
    # Every scripted sign-in comes from 127.0.0.1: lift the per-client sign-in
    # rate (an environment key, which builds without [limits] ignore).
    ag_env = {"AADGATE_OIDC_CLIENT_SECRET": CLIENT_SECRET, "AADGATE_SESSION_SECRET": session_secret,
              "AADGATE_LIMITS_SIGNIN_PER_MINUTE": "0"}
    if args.preload:
        ag_env["LD_PRELOAD"] = args.preload
    store = os.path.join(tmp, "sessions")

    def write(name, text):
        p = os.path.join(tmp, name)
        with open(p, "w") as f:
            f.write(text)
        return p

    up_cfg = write("upstream.conf", nginx_upstream_conf(tmp, up_port, up_status))
    ngx_cfg = write("nginx-proxy.conf", nginx_proxy_conf(tmp, ngx_port, up_port))
    ap_cfg = write("apache.conf", apache_conf(tmp, ap_port, up_port, idp_port))
    idp_cfg = write("idp.toml", idp_conf([f"http://127.0.0.1:{ag_port}/auth/callback",
                                          f"http://127.0.0.1:{ap_port}/redirect_uri"]))
    ag_cfg = write("aadgate.toml", aadgate_conf(ag_port, up_port, idp_port, store))
    if args.store == "memory":
        with open(ag_cfg) as f:
            text = f.read().replace(f'store = "file:{store}"', 'store = "memory"')
        with open(ag_cfg, "w") as f:
            f.write(text)

    log(f"temp dir {tmp}; upstream :{up_port}, dev IdP :{idp_port}, aadgate :{ag_port}, "
        f"nginx :{ngx_port}, apache :{ap_port}")
    up = procs.start("upstream", ["nginx", "-p", tmp, "-c", up_cfg, "-g", "daemon off;"], CORE_SERVER)
    idp = procs.start("dev-idp", [BIN, "dev-idp", "--listen", f"127.0.0.1:{idp_port}", "--config", idp_cfg], CORE_CLIENT)
    wait_http(up_port, proc=up, name="upstream", procs=procs)
    wait_http(idp_port, f"/{TENANT}/v2.0/.well-known/openid-configuration", proc=idp, name="dev-idp", procs=procs)

    res = {"mode": "quick" if quick else "full",
           "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
           "env": versions(),
           "settings": {"seconds": seconds, "warmup": warmup, "rounds": rounds, "conns": 64,
                        "wrk": "wrk -t1 -c<conns> -d<seconds>s --timeout=10s (on core 0)",
                        "pinning": {"core 0": "wrk, bench.py, scripted sign-ins, dev IdP",
                                    "core 1": "proxy under test + upstream nginx"}},
           "startup": {}, "memory": {}, "signin": {}}

    # Start-up time (fresh store each time), before anything else is loaded.
    n_start = 3 if quick else 7
    res["startup"]["empty"] = measure_startup(tmp, procs, n_start, up_port, idp_port, ag_env)
    log("start-up (exec to /healthz): " + ", ".join(f"{x:.1f}" for x in res["startup"]["empty"]) + " ms")

    ag = procs.start("aadgate", [BIN, "proxy", "--config", ag_cfg], CORE_SERVER, env=ag_env)
    ngx = procs.start("nginx-proxy", ["nginx", "-p", tmp, "-c", ngx_cfg, "-g", "daemon off;"], CORE_SERVER)
    apache = procs.start("apache", ["/usr/sbin/apache2", "-f", ap_cfg, "-DFOREGROUND"], CORE_SERVER)
    wait_http(ag_port, "/healthz", proc=ag, name="aadgate", procs=procs)
    wait_http(ngx_port, "/", proc=ngx, name="nginx-proxy", procs=procs)
    wait_http(ap_port, "/", proc=apache, name="apache", procs=procs)
    time.sleep(0.5)
    res["memory"]["rss_idle_kib"] = rss_kib(ag.pid)["VmRSS"]

    if args.profile:
        profile(args, procs, tmp, ag, ag_port, ag_cfg, ag_env, idp_port, ngx, ngx_port, up)
        return None

    def ag_signin():
        b = Browser(idp_port)
        c = b.sign_in(ag_port, "/auth/login?rd=/", SESSION_COOKIE)
        b.close()
        return ["Accept: text/html", f"Cookie: {SESSION_COOKIE}={c}"]

    def ap_signin():
        b = Browser(idp_port)
        c = b.sign_in(ap_port, "/", MOD_OIDC_COOKIE)
        b.close()
        return ["Accept: text/html", f"Cookie: {MOD_OIDC_COOKIE}={c}"]

    html = ["Accept: text/html"]
    contestants = [
        Contestant("direct", "direct (no proxy)", up_port, "/", html, 200, True, None),
        Contestant("nginx", "nginx proxy_pass", ngx_port, "/", html, 200, True, ngx.pid),
        Contestant("public", "aadgate public route", ag_port, "/public/", html, 200, True, ag.pid),
        Contestant("signed", "aadgate signed-in", ag_port, "/", ag_signin(), 200, True, ag.pid, ag_signin),
        Contestant("modoidc", "mod_auth_openidc signed-in", ap_port, "/", ap_signin(), 200, True, apache.pid, ap_signin),
        Contestant("reject302", "aadgate rejection (302)", ag_port, "/", html, 302, False, ag.pid),
        Contestant("reject401", "aadgate rejection (401)", ag_port, "/", ["Accept: application/json"], 401, False, ag.pid),
    ]
    by_key = {c.key: c for c in contestants}
    for c in contestants:
        ok, why = probe(c)
        if not ok:
            raise BenchError(why)
    log("all contestants answer as expected; measuring at 64 connections, "
        f"{rounds} round(s) x {seconds:g} s (+{warmup:g} s warm-up)")

    runs = {c.key: [] for c in contestants}
    for rnd in range(rounds):
        order = contestants if rnd % 2 == 0 else list(reversed(contestants))
        for c in order:
            r = measure(c, 64, seconds, warmup, up_status, up.pid)
            runs[c.key].append(r)
            log(f"  round {rnd + 1}: {c.label:28s} {r['rps']:>9,.0f} req/s  p50 {fmt_ms(r['p50_us'])}  "
                f"p99 {fmt_ms(r['p99_us'])}  p99.9 {fmt_ms(r['p999_us'])} ms  errors {err_detail(r)}")
    res["main"] = {}
    for c in contestants:
        m = median_result(runs[c.key])
        m["label"] = c.label
        res["main"][c.key] = m

    res["memory"]["rss_after_main_kib"] = rss_kib(ag.pid)["VmRSS"]
    log(f"concurrency sweep: {sweep_conns} connections for {', '.join(sweep_keys)}")
    res["sweep"] = {k: {64: res["main"][k]} for k in sweep_keys}
    sweep_seconds = seconds if not quick else 2
    for conns in sweep_conns:
        for k in sweep_keys:
            r = measure(by_key[k], conns, sweep_seconds, warmup, up_status, up.pid)
            res["sweep"][k][conns] = r
            log(f"  {conns:5d} conns: {by_key[k].label:28s} {r['rps']:>9,.0f} req/s  p99 {fmt_ms(r['p99_us'])} ms  errors {err_detail(r)}")

    res["memory"]["rss_after_load_kib"] = rss_kib(ag.pid)["VmRSS"]
    log(f"aadgate RSS: idle {res['memory']['rss_idle_kib'] / 1024:.1f} MiB, after 64 connections "
        f"{res['memory']['rss_after_main_kib'] / 1024:.1f} MiB, after 1,024 connections "
        f"{res['memory']['rss_after_load_kib'] / 1024:.1f} MiB")

    # Sign-ins at scale: real sessions, through the public flow and the dev IdP,
    # into a fresh aadgate (so the load runs' buffers do not hide or inflate
    # the sessions' memory).
    if n_sessions > 0:
        time.sleep(1 if quick else 10)
        res["memory"]["rss_after_load_idle_kib"] = rss_kib(ag.pid)["VmRSS"]
        procs.stop(ag)
        shutil.rmtree(store, ignore_errors=True)
        ag = procs.start("aadgate-sessions", [BIN, "proxy", "--config", ag_cfg], CORE_SERVER, env=ag_env)
        wait_http(ag_port, "/healthz", proc=ag, name="aadgate-sessions", procs=procs)
        time.sleep(0.5)
        by_key["signed"].pgid = ag.pid
        log(f"creating {n_sessions:,} sessions through the sign-in flow in a fresh aadgate "
            f"({args.signin_workers} scripted browsers)")
        rss0 = rss_kib(ag.pid)["VmRSS"]
        cpu_ag0, cpu_idp0 = group_cpu_seconds(ag.pid), group_cpu_seconds(idp.pid)
        # (sign-ins done, aadgate RSS KiB, aadgate CPU s, dev IdP CPU s, wall s)
        t_curve = time.time()
        curve = [(0, rss0, cpu_ag0, cpu_idp0, 0.0)]
        ok_n, err_n, secs, sample, first_error = mass_sign_in(
            idp_port, ag_port, n_sessions, args.signin_workers,
            on_progress=lambda done: curve.append((done, rss_kib(ag.pid)["VmRSS"], group_cpu_seconds(ag.pid),
                                                   group_cpu_seconds(idp.pid), time.time() - t_curve)))
        cpu_ag1, cpu_idp1 = group_cpu_seconds(ag.pid), group_cpu_seconds(idp.pid)
        if first_error:
            log(f"  first sign-in error: {first_error}")
        res["signin"] = {"ok": ok_n, "errors": err_n, "seconds": secs, "rate": ok_n / secs,
                         "workers": args.signin_workers,
                         "aadgate_cpu_ms": (cpu_ag1 - cpu_ag0) * 1000 / max(1, ok_n),
                         "idp_cpu_ms": (cpu_idp1 - cpu_idp0) * 1000 / max(1, ok_n)}
        log(f"  {ok_n:,} sign-ins in {secs:.1f} s = {ok_n / secs:,.0f}/s, {err_n} errors; "
            f"CPU per sign-in: aadgate {res['signin']['aadgate_cpu_ms']:.2f} ms, IdP {res['signin']['idp_cpu_ms']:.2f} ms")
        time.sleep(2)
        st = rss_kib(ag.pid)
        curve.append((ok_n, st["VmRSS"], group_cpu_seconds(ag.pid), group_cpu_seconds(idp.pid), time.time() - t_curve))
        # CPU per sign-in at the start and at the end of the run (does a sign-in get dearer as sessions pile up?)
        if len(curve) >= 4:
            def per(a, b):
                n = max(1, b[0] - a[0])
                return ((b[2] - a[2]) * 1000 / n, (b[3] - a[3]) * 1000 / n, n / max(1e-9, b[4] - a[4]))
            first, last = per(curve[0], curve[1]), per(curve[-3], curve[-2])
            res["signin"]["first_window"] = {"aadgate_cpu_ms": first[0], "idp_cpu_ms": first[1], "rate": first[2]}
            res["signin"]["last_window"] = {"aadgate_cpu_ms": last[0], "idp_cpu_ms": last[1], "rate": last[2]}
            log(f"  CPU per sign-in, first {curve[1][0]:,}: aadgate {first[0]:.2f} ms, IdP {first[1]:.2f} ms, {first[2]:,.0f}/s; "
                f"last window before {curve[-2][0]:,}: aadgate {last[0]:.2f} ms, IdP {last[1]:.2f} ms, {last[2]:,.0f}/s")
        res["memory"].update(sessions=ok_n, rss_before_sessions_kib=rss0, rss_curve_kib=curve,
                             rss_sessions_kib=st["VmRSS"], hwm_sessions_kib=st["VmHWM"],
                             kib_per_session=(st["VmRSS"] - rss0) / max(1, ok_n))
        log(f"  aadgate RSS {rss0 / 1024:.1f} MiB (fresh) -> {st['VmRSS'] / 1024:.1f} MiB with {ok_n:,} sessions")
        # Signed-in throughput with the store full.
        c = by_key["signed"]
        r = measure(c, 64, seconds, warmup, up_status, up.pid)
        res["memory"]["signed_with_sessions"] = r
        res["memory"]["rss_sessions_after_load_kib"] = rss_kib(ag.pid)["VmRSS"]
        log(f"  aadgate signed-in with the sessions: {r['rps']:,.0f} req/s p99 {fmt_ms(r['p99_us'])} ms errors {r['errors']}")

        # Store size, then a restart on the populated store.
        procs.stop(ag)
        if args.store == "memory":
            return res
        size = os.path.getsize(os.path.join(store, "sessions.redb"))
        res["memory"]["store_bytes"] = size
        res["memory"]["store_bytes_per_session"] = size / max(1, ok_n)
        log(f"  store {size / 2**20:.1f} MiB = {size / max(1, ok_n):,.0f} B/session")
        res["startup"]["populated"] = measure_startup(tmp, procs, 3, up_port, idp_port, ag_env, store_dir=store)
        log("  start-up on the populated store: " + ", ".join(f"{x:.1f}" for x in res["startup"]["populated"]) + " ms")
        ag = procs.start("aadgate-restarted", [BIN, "proxy", "--config", ag_cfg], CORE_SERVER, env=ag_env)
        wait_http(ag_port, "/healthz", proc=ag, name="aadgate-restarted", procs=procs)
        time.sleep(0.5)
        res["memory"]["rss_restart_kib"] = rss_kib(ag.pid)["VmRSS"]
        if sample:
            st, _, _, _ = raw_get(ag_port, "/", [f"Cookie: {SESSION_COOKIE}={sample[0]}"])
            res["memory"]["session_survives_restart"] = st == 200
            log(f"  a session from before the restart answers {st}")
    return res


def report(res):
    main = res["main"]
    print()
    print(f"aadgate benchmark ({res['mode']}): 64 connections, wrk -t1 on core 0, proxy + upstream on core 1; "
          f"median of {res['settings']['rounds']} x {res['settings']['seconds']:g} s")
    print()
    print(text_table(MAIN_HEAD, table_rows(main)))
    print()
    for k, v in ratios(main).items():
        print(f"  {k:40s} {v:+.2f}" if "ms" in k else f"  {k:40s} {v:.2f}")
    if res.get("sweep"):
        print()
        conns = sorted({c for s in res["sweep"].values() for c in s})
        head = ["requests/s by connections"] + [str(c) for c in conns]
        rows = [[main[k]["label"]] + [f"{res['sweep'][k][c]['rps']:,.0f}" if c in res["sweep"][k] else "-" for c in conns]
                for k in ROW_ORDER if k in res["sweep"]]
        print(text_table(head, rows))
    s, m = res.get("signin"), res["memory"]
    print()
    if s:
        print(f"  sign-ins/s (end to end)                  {s['rate']:,.0f}  ({s['ok']:,} ok, {s['errors']} errors)")
    print(f"  RSS idle                                 {m['rss_idle_kib'] / 1024:.1f} MiB")
    if m.get("rss_before_sessions_kib"):
        print(f"  RSS fresh instance before sign-ins       {m['rss_before_sessions_kib'] / 1024:.1f} MiB")
    print(f"  RSS after 64 / 1,024 connections         {m['rss_after_main_kib'] / 1024:.1f} / {m['rss_after_load_kib'] / 1024:.1f} MiB")
    if m.get("rss_sessions_kib"):
        label = f"RSS with {m['sessions']:,} sessions"
        print(f"  {label:40s} {m['rss_sessions_kib'] / 1024:.1f} MiB ({m['kib_per_session'] * 1024:,.0f} B/session)")
        if m.get("store_bytes"):
            print(f"  store on disk                            {m['store_bytes'] / 2**20:.1f} MiB "
                  f"({m['store_bytes_per_session']:,.0f} B/session)")
    st = res["startup"]
    print(f"  start-up (exec to /healthz)              {statistics.median(st['empty']):.1f} ms"
          + (f" (populated store {statistics.median(st['populated']):.1f} ms)" if st.get("populated") else ""))
    print()
    for name, ok, val in targets(main, m):
        verdict = "not measured" if ok is None else ("met" if ok else "NOT MET")
        print(f"  [{verdict}] {name}: {val}")
    print()


# --------------------------------------------------------------------------
# profiling (bench/run --profile perf|callgrind)


def perf_stat(pgid, port, path, headers, secs, up_pgid=None):
    """Context switches and system calls per request of a process group (and
    of the upstream) under wrk -c64."""
    groups = {"proxy": pgid}
    if up_pgid:
        groups["upstream"] = up_pgid
    stats = {}
    for name, g in groups.items():
        pids = ",".join(str(p) for p in group_pids(g))
        out = os.path.join(tempfile.gettempdir(), f"perf-stat-{g}.txt")
        stats[name] = (out, subprocess.Popen(
            ["perf", "stat", "-x,", "-o", out, "-e", "context-switches,raw_syscalls:sys_enter,task-clock",
             "-p", pids, "--", "sleep", str(secs)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    r = run_wrk(port, path, headers, 64, secs)
    n = max(1, r["requests"])
    res = {"rps": r["rps"]}
    for name, (out, st) in stats.items():
        st.wait()
        vals = {}
        with open(out) as f:
            for line in f:
                parts = line.strip().split(",")
                if len(parts) > 3 and parts[0].replace(".", "").isdigit():
                    vals[parts[2]] = float(parts[0])
        os.unlink(out)
        res[name] = {"context_switches_per_req": vals.get("context-switches", 0) / n,
                     "syscalls_per_req": vals.get("raw_syscalls:sys_enter", 0) / n,
                     "cpu_us_per_req": vals.get("task-clock", 0) * 1000 / n}
    return res


def profile(args, procs, tmp, ag, ag_port, ag_cfg, ag_env, idp_port, ngx, ngx_port, up):
    b = Browser(idp_port)
    cookie = b.sign_in(ag_port, "/auth/login?rd=/", SESSION_COOKIE)
    b.close()
    headers = ["Accept: text/html", f"Cookie: {SESSION_COOKIE}={cookie}"]
    secs = args.profile_seconds
    outdir = os.path.join(RESULTS, "profile")
    ppath = "/" if args.profile_route == "signed" else "/public/"
    if args.profile_route == "public":
        headers = ["Accept: text/html"]  # as in the benchmark: an anonymous visitor
    os.makedirs(outdir, exist_ok=True)
    if args.profile == "perf" and args.profile_route == "signin":
        pre = args.sessions or 0
        if pre:
            log(f"  {pre:,} sign-ins first (not recorded)")
            mass_sign_in(idp_port, ag_port, pre, args.signin_workers)
        data = os.path.join(tmp, "perf.data")
        cpu0 = group_cpu_seconds(ag.pid)
        rec = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "4999", "-g",
                                "-p", str(ag.pid), "-o", data, "--", "sleep", str(secs)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        ok_n, _, took, _, _ = mass_sign_in(idp_port, ag_port, int(330 * secs), args.signin_workers)
        rec.wait()
        cpu = (group_cpu_seconds(ag.pid) - cpu0) * 1000 / max(1, ok_n)
        log(f"perf: {ok_n:,} sign-ins at {ok_n / took:,.0f}/s after {pre:,}; aadgate CPU {cpu:.2f} ms per sign-in")
        out = subprocess.run(["perf", "report", "-i", data, "--stdio", "-g", "none", "--no-children", "-q",
                              "--sort", "dso,symbol", "--percent-limit", "0.3"],
                             capture_output=True, text=True).stdout
        out = "\n".join(line.rstrip()[:220] for line in out.splitlines() if line.strip())
        name = f"perf-self-signin-after-{pre}.txt"
        with open(os.path.join(outdir, name), "w") as f:
            f.write(f"# perf record -e cpu-clock -p <aadgate> during scripted sign-ins after {pre:,} earlier ones: "
                    f"{ok_n / took:,.0f}/s, aadgate CPU {cpu:.2f} ms per sign-in\n{out}\n")
        log(f"wrote {outdir}/{name}")
        return
    if args.profile == "perf":
        lines = []
        for label, pgid, port, path, hdrs in (
            ("nginx proxy_pass", ngx.pid, ngx_port, "/", ["Accept: text/html"]),
            ("aadgate public route", ag.pid, ag_port, "/public/", ["Accept: text/html"]),
            ("aadgate signed-in", ag.pid, ag_port, "/", headers),
            ("aadgate rejection (302)", ag.pid, ag_port, "/", ["Accept: text/html"]),
        ):
            run_wrk(port, path, hdrs, 64, 1)
            x = perf_stat(pgid, port, path, hdrs, max(3, secs // 2), up_pgid=up.pid)
            p, u = x["proxy"], x["upstream"]
            lines.append(f"{label:26s} {x['rps']:>9,.0f} req/s | proxy: {p['cpu_us_per_req']:5.1f} µs CPU/req "
                         f"{p['syscalls_per_req']:5.2f} syscalls/req {p['context_switches_per_req']:5.2f} cs/req | "
                         f"upstream: {u['cpu_us_per_req']:5.1f} µs CPU/req {u['syscalls_per_req']:5.2f} syscalls/req "
                         f"{u['context_switches_per_req']:5.2f} cs/req")
            log("  " + lines[-1])
        with open(os.path.join(outdir, "perf-stat.txt"), "w") as f:
            f.write("# perf stat -e context-switches,raw_syscalls:sys_enter,task-clock -p <proxy pids> / <upstream pids>, "
                    "wrk -t1 -c64 (cs = context switches)\n")
            f.write("\n".join(lines) + "\n")
        run_wrk(ag_port, ppath, headers, 64, 2)
        data = os.path.join(tmp, "perf.data")
        rec = subprocess.Popen(["perf", "record", "-e", "cpu-clock", "-F", "4999", "-g",
                                "-p", str(ag.pid), "-o", data, "--", "sleep", str(secs)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        r = run_wrk(ag_port, ppath, headers, 64, secs)
        rec.wait()
        log(f"perf: {r['rps']:,.0f} req/s during the recording")
        for name, extra in ((f"perf-self-{args.profile_route}.txt", ["--sort", "dso,symbol", "--percent-limit", "0.2"]),
                            (f"perf-dso-{args.profile_route}.txt", ["--sort", "comm,dso"])):
            out = subprocess.run(["perf", "report", "-i", data, "--stdio", "-g", "none",
                                  "--no-children", "-q"] + extra,
                                 capture_output=True, text=True).stdout
            out = "\n".join(line.rstrip()[:220] for line in out.splitlines() if line.strip())
            with open(os.path.join(outdir, name), "w") as f:
                f.write(f"# perf record -e cpu-clock -F 4999 -p <aadgate> during wrk -c64 {args.profile_route}, "
                        f"{r['rps']:,.0f} req/s\n{out}\n")
        log(f"wrote {outdir}/perf-self-{args.profile_route}.txt and perf-dso-{args.profile_route}.txt")
    else:
        procs.stop(ag)
        cg = os.path.join(outdir, f"callgrind-{args.profile_route}.out")
        ag2 = procs.start("aadgate-callgrind",
                          ["valgrind", "--tool=callgrind", f"--callgrind-out-file={cg}",
                           BIN, "proxy", "--config", ag_cfg], CORE_SERVER, env=ag_env)
        wait_http(ag_port, "/healthz", timeout=120, proc=ag2, name="aadgate-callgrind", procs=procs)
        b = Browser(idp_port)
        cookie = b.sign_in(ag_port, "/auth/login?rd=/", SESSION_COOKIE)
        b.close()
        if args.profile_route == "signed":
            headers = ["Accept: text/html", f"Cookie: {SESSION_COOKIE}={cookie}"]
        subprocess.run(["callgrind_control", "-z", str(ag2.pid)], capture_output=True)
        r = run_wrk(ag_port, ppath, headers, 64, secs, timeout_s=30)
        subprocess.run(["callgrind_control", "-d", str(ag2.pid)], capture_output=True)
        log(f"callgrind: {r['requests']:,} requests measured")
        procs.stop(ag2, timeout=60)
        with open(os.path.join(outdir, f"callgrind-{args.profile_route}.requests"), "w") as f:
            f.write(f"{r['requests']}\n")
        dumps = sorted(f for f in os.listdir(outdir) if f.startswith(os.path.basename(cg) + "."))
        if dumps:
            summary = callgrind_summary(os.path.join(outdir, dumps[-1]), r["requests"])
            path = os.path.join(outdir, f"callgrind-{args.profile_route}-summary.txt")
            with open(path, "w") as f:
                f.write(summary)
            log(f"wrote {path}")
        log(f"wrote {cg}* (callgrind_annotate --inclusive=yes)")


def callgrind_summary(path, requests):
    """Instructions per request: the functions of aadgate's own crates
    (inclusive) and the top functions overall (self)."""
    def rows(inclusive):
        out = subprocess.run(["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}",
                              "--threshold=100", "--auto=no", path],
                             capture_output=True, text=True).stdout
        res = []
        for line in out.splitlines():
            m = re.match(r"^\s*([\d,]+) \(\s*([\d.]+)%\)\s+(.*?)(?: \[.*\])?$", line)
            if m:
                fn = m.group(3).split(":", 1)[-1] if m.group(3).startswith(("???:", "./")) else m.group(3)
                res.append((int(m.group(1).replace(",", "")), float(m.group(2)), fn))
        return res

    inc, slf = rows(True), rows(False)
    total = inc[0][0] if inc else 0
    lines = [f"# callgrind (Ir = instructions executed in user space), {requests:,} requests, "
             f"{total / max(1, requests):,.0f} instructions per request", "",
             "## aadgate's own functions, inclusive (with everything they call)", ""]
    own = [r for r in inc if re.search(r"aadgate", r[2]) and "{{closure}}" not in r[2][:0]]
    seen = set()
    for n, pct, fn in own:
        if fn in seen:
            continue
        seen.add(fn)
        lines.append(f"{n / max(1, requests):>10,.0f} instr/req {pct:6.2f}%  {fn[:150]}")
        if len(seen) >= 40:
            break
    lines += ["", "## top functions by self cost", ""]
    for n, pct, fn in [r for r in slf if r[1] < 99][:40]:
        lines.append(f"{n / max(1, requests):>10,.0f} instr/req {pct:6.2f}%  {fn[:150]}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(1)
