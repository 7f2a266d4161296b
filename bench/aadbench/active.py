"""The active-users curve: signed-in throughput while N distinct sessions
are in use at once (each request carries the next of N session cookies,
round-robin), with sessions older than every write-back interval, so the
idle-clock write-backs real traffic causes happen during the measurement,
on the proxy's own core."""

from __future__ import annotations

import math
import os
import time

from .load import Contestant, err_detail, measure, median_result, run_wrk
from .procs import raw_get, rss_kib
from .trace import Tracer, format_rows, scrape
from .testbed import ROTATE_LUA, SESSION_COOKIE, BenchError, log

# A session's idle clock is written back at most once a minute
# (crates/core/src/session/mod.rs TOUCH_INTERVAL); older sessions have one
# due at their first use in the measurement.
WRITE_BACK_DUE_S = 61.0


def wait_until_old(created_at: float) -> None:
    """Waits until sessions created by `created_at` have a write-back due."""
    left = created_at + WRITE_BACK_DUE_S - time.time()
    if left > 0:
        log(f"  waiting {left:.0f} s for the newest sessions to be older than a write-back interval")
        time.sleep(left)


def active_curve(name, port, pgid, cookies, points, tmp, seconds, warmup, up_status, up_pid,
                 rounds=1, trace_port=None):
    """Measures each point (number of sessions in use) that `cookies` can
    fill, `rounds` times over, alternating the points (1,000, 50,000,
    1,000, 50,000, ...) so that a machine busy for a while slows every point
    alike; returns {n: median result}, each with the proxy's RSS after its
    last round (and, with `trace_port`, the proxy's metrics address, a
    per-second trace of each round)."""
    points = [n for n in points if n <= len(cookies)]
    runs = {n: [] for n in points}
    rate = 5_000.0  # requests/s assumed before the first point is measured
    for rnd in range(rounds):
        for n in points:
            r = _point(name, port, pgid, cookies, n, tmp, seconds, warmup, up_status, up_pid, rate, trace_port)
            rate = r["rps"]
            runs[n].append(r)
            log(f"  {name + f', {n:,} active':36s} {r['rps']:>9,.0f} req/s  p50 {r['p50_us'] / 1000:.2f}  "
                f"p99 {r['p99_us'] / 1000:.2f} ms  RSS {r['rss_kib'] / 1024:.1f} MiB  errors {err_detail(r)}"
                + (f"  (round {rnd + 1} of {rounds})" if rounds > 1 else ""))
            if trace_port:
                log(f"  trace (t from the point's start; the warm-up and measured run began at "
                    f"{r['trace_marks']['measure'] - r['trace_marks']['start']:.1f} s):\n"
                    + format_rows(r["trace"], r["trace_marks"]["start"]))
    out = {}
    for n, rs in runs.items():
        m = median_result(rs)
        m.update(sessions=n, rss_kib=rs[-1]["rss_kib"],
                 prewarm_requests=[r["prewarm_requests"] for r in rs],
                 p99_rounds=[r["p99_us"] for r in rs])
        if trace_port:
            m["trace"] = [{"marks": r["trace_marks"], "rows": r["trace"]} for r in rs]
        out[n] = m
    return out


def _point(name, port, pgid, cookies, n, tmp, seconds, warmup, up_status, up_pid, rate, trace_port):
    """One measured run with `n` sessions in use; `rate` (the last run's
    requests/s) sizes the pre-warming."""
    path = os.path.join(tmp, f"cookies-{name.replace(' ', '-')}-{n}.txt")
    with open(path, "w") as f:
        f.write("\n".join(cookies[:n]) + "\n")
    c = Contestant(f"active-{n}", f"{name}, {n:,} active", port, "/",
                   ["Accept: text/html", f"Cookie: {SESSION_COOKIE}={cookies[0]}"],
                   200, True, pgid, rotate=path)
    tracer = Tracer(trace_port, pgid).start() if trace_port else None
    t0 = time.time()
    # Before the measured run, every session is used at least once (its
    # one-off work done: identity headers built, a read from the store),
    # at the rate the previous point ran at.
    pre, goal = 0, n
    while pre < goal:
        w = run_wrk(port, "/", c.headers, 64, max(1, math.ceil(1.2 * (goal - pre) / rate)),
                    script=ROTATE_LUA, script_args=(path, SESSION_COOKIE))
        pre += w["requests"]
        rate = max(500.0, w["rps"])
    t_measure = time.time()
    r = measure(c, 64, seconds, warmup, up_status, up_pid)
    if tracer:
        r["trace"] = tracer.stop()
        r["trace_marks"] = {"start": t0, "measure": t_measure, "end": time.time()}
    r["prewarm_requests"] = pre
    r["rss_kib"] = rss_kib(pgid)["VmRSS"]
    r["sessions"] = n
    return r


# Each session's roles are re-derived from the provider (a refresh-token
# redemption) every session.revalidate_secs, 900 s by default: with 50,000
# users active, about 56 a second.
REVALIDATIONS_PER_S = 50_000 / 900


def revalidation_point(name, port, pgid, metrics_port, cookies, tmp, seconds, warmup, up_status, up_pid,
                       every_s):
    """Signed-in throughput while sessions are revalidated at the rate
    50,000 active users cause, on a proxy started with
    `session.revalidate_secs = every_s`: every_s × 56 sessions in use
    (the newest, whose refresh tokens the dev IdP still keeps). Each is
    first used once, evenly over `every_s` seconds (it is revalidated
    then: its sign-in is older than that), so in the measured run they fall
    due evenly, ~56 a second, as with real users, not in one burst."""
    n = round(every_s * REVALIDATIONS_PER_S)
    chosen = cookies[-n:]
    gap = every_s / len(chosen)
    t0 = time.time()
    refused = 0
    for i, cookie in enumerate(chosen):
        left = t0 + i * gap - time.time()
        if left > 0:
            time.sleep(left)
        status, _, _, _ = raw_get(port, "/", ["Accept: text/html", f"Cookie: {SESSION_COOKIE}={cookie}"])
        refused += status != 200
    if refused:
        raise BenchError(f"{refused} of {len(chosen)} sessions were refused at their revalidation")
    path = os.path.join(tmp, "cookies-revalidating.txt")
    with open(path, "w") as f:
        f.write("\n".join(chosen) + "\n")
    c = Contestant("active-revalidating", f"{name}, {len(chosen):,} active, revalidating", port, "/",
                   ["Accept: text/html", f"Cookie: {SESSION_COOKIE}={chosen[0]}"],
                   200, True, pgid, rotate=path)
    before = _revalidations(metrics_port)
    r = measure(c, 64, seconds, warmup, up_status, up_pid)
    after = _revalidations(metrics_port)
    secs = warmup + r["duration_us"] / 1e6
    r.update(sessions=len(chosen), revalidate_secs=every_s, rss_kib=rss_kib(pgid)["VmRSS"],
             revalidations_per_s=sum(after.values()) - sum(before.values()),
             revalidation_results={k: after.get(k, 0) - before.get(k, 0) for k in after})
    r["revalidations_per_s"] /= secs
    log(f"  {c.label:36s} {r['rps']:>9,.0f} req/s  p50 {r['p50_us'] / 1000:.2f}  p99 {r['p99_us'] / 1000:.2f} ms  "
        f"{r['revalidations_per_s']:.1f} revalidations/s {r['revalidation_results']}  errors {err_detail(r)}")
    return r


def _revalidations(metrics_port) -> dict:
    """aadgate_revalidations_total by result."""
    return {dict(labels).get("result"): v for (name, labels), v in scrape(metrics_port).items()
            if name == "aadgate_revalidations_total"}
