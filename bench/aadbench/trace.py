"""bench/run --trace: a per-second trace of the proxy during each point of
the active-users curve, to see *when* in a point the time goes (a write-back,
a sweep, the cache at its budget) rather than only the point's p99.

Every second it scrapes aadgate's own metrics (`metrics_listen`, enabled for
the traced process only) and reads the process's CPU and disk counters from
/proc. A row: requests answered, the share of them slower than 5 and 10 ms
(aadgate's own view, from arrival to response headers: the bucket bounds of
`aadgate_request_duration_seconds`), session-store operations and the time
they took, the cache's bytes, CPU seconds and bytes written to disk."""

from __future__ import annotations

import re
import threading
import time
import urllib.request

from .procs import group_cpu_split, group_pids

_LINE = re.compile(r'^([a-z_]+)(?:\{([^}]*)\})? ([0-9.eE+-]+)$')


def scrape(port: int) -> dict:
    """Metric samples by (name, sorted label pairs)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m:
            continue
        labels = tuple(sorted(tuple(kv.split("=", 1)) for kv in m.group(2).split(","))) if m.group(2) else ()
        out[(m.group(1), tuple((k, v.strip('"')) for k, v in labels))] = float(m.group(3))
    return out


def _sum(s: dict, name: str, **want) -> float:
    return sum(v for (n, labels), v in s.items()
               if n == name and all(dict(labels).get(k) == w for k, w in want.items()))


def disk_written(pgid: int) -> int:
    total = 0
    for pid in group_pids(pgid):
        try:
            with open(f"/proc/{pid}/io") as f:
                for line in f:
                    if line.startswith("write_bytes:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


OPS = ("get", "touch", "settle", "purge", "put", "delete")


def _row(a: dict, b: dict) -> dict:
    sa, sb = a["metrics"], b["metrics"]

    def d(name, **want):
        return _sum(sb, name, **want) - _sum(sa, name, **want)

    req = "aadgate_request_duration_seconds"
    n = d(req + "_count", kind="forwarded")
    over = {ms: n - d(req + "_bucket", kind="forwarded", le=le) for ms, le in ((5, "0.005"), (10, "0.01"))}
    op = "aadgate_session_store_operation_duration_seconds"
    row = {"t": round(b["t"], 3), "secs": b["t"] - a["t"], "requests": n,
           "over_5ms": over[5], "over_10ms": over[10],
           "cache_bytes": _sum(sb, "aadgate_session_cache_bytes"),
           "cpu_user": b["cpu"][0] - a["cpu"][0], "cpu_sys": b["cpu"][1] - a["cpu"][1],
           "disk_written": b["disk"] - a["disk"]}
    for o in OPS:
        row[f"{o}_n"] = d(op + "_count", op=o)
        row[f"{o}_ms"] = d(op + "_sum", op=o) * 1000
    return row


class Tracer:
    """Samples once a second from start() to stop(); rows() are the deltas."""

    def __init__(self, metrics_port: int, pgid: int):
        self.port, self.pgid = metrics_port, pgid
        self.samples: list[dict] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self):
        try:
            m = scrape(self.port)
        except OSError:
            return
        self.samples.append({"t": time.time(), "metrics": m, "cpu": group_cpu_split(self.pgid),
                             "disk": disk_written(self.pgid)})

    def _run(self):
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(1.0)

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> list[dict]:
        self._stop.set()
        self._thread.join()
        self._sample()
        return [_row(a, b) for a, b in zip(self.samples, self.samples[1:])]


def format_rows(rows: list[dict], t0: float) -> str:
    head = (f"{'t s':>6} {'req/s':>7} {'>5ms':>6} {'>10ms':>6} {'cpu%':>5} {'disk MB':>8} "
            f"{'get n/ms':>12} {'touch n/ms':>12} {'settle ms':>9} {'purge ms':>8} {'cache MiB':>9}")
    lines = [head]
    for r in rows:
        s = max(1e-9, r["secs"])
        lines.append(
            f"{r['t'] - t0:6.1f} {r['requests'] / s:7.0f} {r['over_5ms'] / s:6.0f} {r['over_10ms'] / s:6.0f} "
            f"{(r['cpu_user'] + r['cpu_sys']) * 100 / s:5.0f} {r['disk_written'] / 1e6:8.1f} "
            f"{r['get_n']:6.0f}/{r['get_ms']:5.0f} {r['touch_n']:6.0f}/{r['touch_ms']:5.0f} "
            f"{r['settle_ms']:9.1f} {r['purge_ms']:8.1f} {r['cache_bytes'] / 2**20:9.1f}")
    return "\n".join(lines)
