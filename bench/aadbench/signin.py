"""Scripted sign-ins through the dev IdP: a Browser that follows the
redirects and keeps cookies, and mass_sign_in() running many of them in a
pool of worker processes on the client core."""

from __future__ import annotations

import http.client
import multiprocessing as mp
import os
import re
import signal
import time
import urllib.parse

from .testbed import CORE_CLIENT, SESSION_COOKIE, BenchError, log


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
    (idp_port, port, n, start_at, keep) = args
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
            if len(sample) < keep:
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


def mass_sign_in(idp_port, port, total, workers, progress_every=10.0, on_progress=None, keep=3):
    """`total` complete sign-ins through aadgate's public flow and the dev IdP,
    `workers` browsers at a time. Returns (ok, errors, seconds, cookies (up
    to `keep` per worker), first error)."""
    ctx = mp.get_context("fork")
    counter = ctx.Value("l", 0)
    per = [total // workers + (1 if i < total % workers else 0) for i in range(workers)]
    start_at = time.time() + 0.3
    with ctx.Pool(workers, initializer=_init_worker, initargs=(counter,)) as pool:
        res = pool.map_async(
            _signin_worker, [(idp_port, port, n, start_at, keep) for n in per], chunksize=1
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
