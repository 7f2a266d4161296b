"""Load: wrk runs, the contestants (a URL with its headers and expected
answer), probing them, one measured run with its error and CPU accounting,
and the median over rounds."""

from __future__ import annotations

import json
import re
import statistics
import subprocess

from .machine import cpu_snapshot, foreign_cpu, top_cpu
from .procs import group_cpu_seconds, group_cpu_split, raw_get
from .testbed import CORE_CLIENT, LUA, ROTATE_LUA, SESSION_COOKIE, UPSTREAM_BODY, BenchError, log


def run_wrk(port, path, headers, conns, seconds, timeout_s=10, script=LUA, script_args=()):
    cmd = [
        "taskset", "-c", str(CORE_CLIENT),
        "wrk", "-t1", f"-c{conns}", f"-d{seconds}s", f"--timeout={timeout_s}s",
        "-s", script,
    ]
    for h in headers:
        cmd += ["-H", h]
    cmd.append(f"http://127.0.0.1:{port}{path}")
    if script_args:
        cmd += ["--", *script_args]
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


class Contestant:
    def __init__(self, key, label, port, path, headers, expect, proxied, pgid, signin=None, rotate=None):
        self.key = key
        self.label = label
        self.port = port
        self.path = path
        self.headers = headers
        self.expect = expect  # expected status
        self.proxied = proxied  # every answer must have come from the upstream
        self.pgid = pgid  # the process group whose CPU is "the proxy" (None: upstream only)
        self.signin = signin  # callable re-signing in (returns the header list)
        self.rotate = rotate  # a file of session cookies to use round-robin (bench/wrk/rotate.lua)
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
    script = {"script": ROTATE_LUA, "script_args": (c.rotate, SESSION_COOKIE)} if c.rotate else {}
    warm = run_wrk(c.port, c.path, c.headers, conns, warmup, **script) if warmup > 0 else None
    before = upstream_count(status_port)
    snap0 = cpu_snapshot()
    cpu0 = group_cpu_split(c.pgid) if c.pgid else (0.0, 0.0)
    up0 = group_cpu_seconds(up_pgid)
    r = run_wrk(c.port, c.path, c.headers, conns, seconds, **script)
    r["warmup_requests"] = warm["requests"] if warm else 0
    cpu1 = group_cpu_split(c.pgid) if c.pgid else (0.0, 0.0)
    up1 = group_cpu_seconds(up_pgid)
    snap1 = cpu_snapshot()
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
