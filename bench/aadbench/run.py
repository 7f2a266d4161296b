"""One benchmark run: start the upstream, the dev IdP and the proxies, time
aadgate's start-up, measure every contestant in rounds, sweep concurrency,
then sign in many sessions into a fresh aadgate and measure memory, store
and restart. Returns the results dict that main() reports and saves."""

from __future__ import annotations

import datetime as _dt
import os
import secrets
import shutil
import socket
import time

from .active import active_curve, revalidation_point, wait_until_old
from .configs import aadgate_conf, apache_conf, idp_conf, nginx_proxy_conf, nginx_upstream_conf
from .load import Contestant, err_detail, measure, median_result, probe
from .machine import versions
from .procs import free_port, group_cpu_seconds, raw_get, rss_kib, wait_http
from .profile import profile
from .report import fmt_ms
from .signin import Browser, mass_sign_in
from .testbed import (BIN, CLIENT_SECRET, CORE_CLIENT, CORE_SERVER, MOD_OIDC_COOKIE, SESSION_COOKIE,
                      TENANT, CLIENT_ID, BenchError, log)


def redis_command(port, *words):
    """One command to Redis over a plain socket (RESP); the reply's text."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        parts = [f"${len(w)}\r\n{w}\r\n" for w in words]
        sock.sendall(f"*{len(words)}\r\n{''.join(parts)}".encode())
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
            if data.startswith(b"$"):
                size = int(data[1:data.index(b"\r\n")])
                if len(data) >= data.index(b"\r\n") + 2 + size + 2:
                    break
            elif data.endswith(b"\r\n"):
                break
        return data.decode(errors="replace")


def wait_redis(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if "PONG" in redis_command(port, "PING"):
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise BenchError(f"redis-server did not start on :{port}")


def redis_command_calls(port):
    """Commands Redis has executed (INFO commandstats), not counting INFO."""
    total = 0
    for line in redis_command(port, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_") and not line.startswith("cmdstat_info:"):
            total += int(line.split("calls=")[1].split(",")[0])
    return total


def redis_memory(port):
    info = redis_command(port, "INFO", "memory")
    used = next(int(l.split(":")[1]) for l in info.splitlines() if l.startswith("used_memory:"))
    keys = redis_command(port, "EVAL", "return #redis.call('KEYS', ARGV[1])", "0", "aadgate:r:*")
    return {"used_memory": used, "sessions": int(keys.strip().lstrip(":") or 0)}


def run(args, procs, tmp, quick, seconds, warmup, rounds, n_sessions, sweep_conns, sweep_keys):
    up_port, up_status, idp_port = free_port(), free_port(), free_port()
    ag_port, ngx_port, ap_port = free_port(), free_port(), free_port()
    # The same aadgate with its sessions in Redis (the scale-out store).
    agr_port, redis_port = free_port(), free_port()
    # The same aadgate sending only its own header family (identity_headers).
    agl_port = free_port()
    # A second replica of the Redis one, and nginx balancing over both.
    agr2_port, lb_port = free_port(), free_port()
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
                                          f"http://127.0.0.1:{agr_port}/auth/callback",
                                          f"http://127.0.0.1:{agl_port}/auth/callback",
                                          f"http://127.0.0.1:{ap_port}/redirect_uri"]))
    ag_cfg = write("aadgate.toml", aadgate_conf(ag_port, up_port, idp_port, store))
    if args.store == "memory":
        with open(ag_cfg) as f:
            text = f.read().replace(f'store = "file:{store}"', 'store = "memory"')
        with open(ag_cfg, "w") as f:
            f.write(text)

    agr_cfg = write("aadgate-redis.toml", aadgate_conf(agr_port, up_port, idp_port, store).replace(
        f'store = "file:{store}"', f'store = "redis://127.0.0.1:{redis_port}"'))

    agr2_cfg = write("aadgate-redis-2.toml", open(agr_cfg).read().replace(
        f'listen = "127.0.0.1:{agr_port}"', f'listen = "127.0.0.1:{agr2_port}"'))
    lb_cfg = write("nginx-balancer.conf", nginx_proxy_conf(tmp, lb_port, [agr_port, agr2_port], "nginx-balancer",
                                                                  host=f"127.0.0.1:{agr_port}"))

    agl_cfg = write("aadgate-lean.toml", 'identity_headers = ["aadgate"]\n' + aadgate_conf(
        agl_port, up_port, idp_port, store + "-lean"))

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
    # Redis serves from the client core, as a store on another machine would
    # not take the proxy's CPU; its work per request is counted below.
    redis = procs.start("redis", ["redis-server", "--bind", "127.0.0.1", "--port", str(redis_port),
                                  "--save", "", "--appendonly", "no", "--dir", tmp], CORE_CLIENT)
    wait_redis(redis_port)
    # --trace: the active-users curve's processes serve their metrics, read
    # once a second (aadbench/trace.py); off otherwise, as in production
    # without metrics_listen.
    trace_file = free_port() if args.trace else None
    trace_redis = free_port() if args.trace else None
    agr = procs.start("aadgate-redis", [BIN, "proxy", "--config", agr_cfg], CORE_SERVER,
                      env=dict(ag_env, AADGATE_METRICS_LISTEN=f"127.0.0.1:{trace_redis}") if trace_redis else ag_env)
    agr2 = procs.start("aadgate-redis-2", [BIN, "proxy", "--config", agr2_cfg], CORE_SERVER, env=ag_env)
    lb = procs.start("nginx-balancer", ["nginx", "-p", tmp, "-c", lb_cfg, "-g", "daemon off;"], CORE_SERVER)
    agl = procs.start("aadgate-lean", [BIN, "proxy", "--config", agl_cfg], CORE_SERVER, env=ag_env)
    ngx = procs.start("nginx-proxy", ["nginx", "-p", tmp, "-c", ngx_cfg, "-g", "daemon off;"], CORE_SERVER)
    apache = procs.start("apache", ["/usr/sbin/apache2", "-f", ap_cfg, "-DFOREGROUND"], CORE_SERVER)
    wait_http(ag_port, "/healthz", proc=ag, name="aadgate", procs=procs)
    wait_http(agr_port, "/readyz", proc=agr, name="aadgate-redis", procs=procs)
    wait_http(agr2_port, "/readyz", proc=agr2, name="aadgate-redis-2", procs=procs)
    wait_http(lb_port, "/healthz", proc=lb, name="nginx-balancer", procs=procs)
    wait_http(agl_port, "/healthz", proc=agl, name="aadgate-lean", procs=procs)
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

    def agr_signin():
        b = Browser(idp_port)
        c = b.sign_in(agr_port, "/auth/login?rd=/", SESSION_COOKIE)
        b.close()
        return ["Accept: text/html", f"Cookie: {SESSION_COOKIE}={c}"]

    def agl_signin():
        b = Browser(idp_port)
        c = b.sign_in(agl_port, "/auth/login?rd=/", SESSION_COOKIE)
        b.close()
        return ["Accept: text/html", f"Cookie: {SESSION_COOKIE}={c}"]

    def ap_signin():
        b = Browser(idp_port)
        c = b.sign_in(ap_port, "/", MOD_OIDC_COOKIE)
        b.close()
        return ["Accept: text/html", f"Cookie: {MOD_OIDC_COOKIE}={c}"]

    def app_token():
        # The dev IdP's built-in client application (application role
        # App.Read): a client-credentials token for the app's API, as a
        # script or service would present it.
        import json
        import urllib.parse
        import urllib.request
        form = urllib.parse.urlencode({
            "grant_type": "client_credentials",
            "client_id": "6d0b3f2e-8a4c-4f17-9e25-c1a7d3b9e048",
            "client_secret": "dev-client-secret-change-me",
            "scope": f"api://{CLIENT_ID}/.default",
        }).encode()
        url = f"http://127.0.0.1:{idp_port}/{TENANT}/oauth2/v2.0/token"
        with urllib.request.urlopen(url, data=form, timeout=10) as resp:
            token = json.loads(resp.read())["access_token"]
        return ["Accept: application/json", f"Authorization: Bearer {token}"]

    html = ["Accept: text/html"]
    contestants = [
        Contestant("direct", "direct (no proxy)", up_port, "/", html, 200, True, None),
        Contestant("nginx", "nginx proxy_pass", ngx_port, "/", html, 200, True, ngx.pid),
        Contestant("public", "aadgate public route", ag_port, "/public/", html, 200, True, ag.pid),
        Contestant("signed", "aadgate signed-in", ag_port, "/", ag_signin(), 200, True, ag.pid, ag_signin),
        Contestant("bearer", "aadgate bearer token (API)", ag_port, "/api/", app_token(), 200, True, ag.pid,
                   app_token),
        Contestant("lean", "aadgate signed-in, own headers only", agl_port, "/", agl_signin(), 200, True,
                   agl.pid, agl_signin),
        Contestant("redis", "aadgate signed-in, Redis store", agr_port, "/", agr_signin(), 200, True, agr.pid, agr_signin),
        Contestant("replicas", "2 aadgate replicas (Redis) behind nginx", lb_port, "/", agr_signin(), 200, True, None,
                   agr_signin),
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
    redis_calls = redis_requests = 0
    for rnd in range(rounds):
        order = contestants if rnd % 2 == 0 else list(reversed(contestants))
        for c in order:
            before = redis_command_calls(redis_port) if c.key == "redis" else 0
            r = measure(c, 64, seconds, warmup, up_status, up.pid)
            if c.key == "redis":
                # Warm-up requests count on both sides of the ratio.
                redis_calls += redis_command_calls(redis_port) - before
                redis_requests += r["requests"] + r.get("warmup_requests", 0)
            runs[c.key].append(r)
            log(f"  round {rnd + 1}: {c.label:28s} {r['rps']:>9,.0f} req/s  p50 {fmt_ms(r['p50_us'])}  "
                f"p99 {fmt_ms(r['p99_us'])}  p99.9 {fmt_ms(r['p999_us'])} ms  errors {err_detail(r)}")
    res["main"] = {}
    for c in contestants:
        m = median_result(runs[c.key])
        m["label"] = c.label
        res["main"][c.key] = m
    res["redis"] = {"commands": redis_calls, "requests": redis_requests,
                    "commands_per_request": redis_calls / max(1, redis_requests),
                    "memory": redis_memory(redis_port)}
    log(f"Redis: {redis_calls:,} commands for {redis_requests:,} signed-in requests "
        f"({res['redis']['commands_per_request']:.5f} per request); "
        f"{res['redis']['memory']['used_memory']:,} B used for {res['redis']['memory']['sessions']} session(s)")

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
        ag = procs.start("aadgate-sessions", [BIN, "proxy", "--config", ag_cfg], CORE_SERVER,
                         env=dict(ag_env, AADGATE_METRICS_LISTEN=f"127.0.0.1:{trace_file}") if trace_file else ag_env)
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
        ok_n, err_n, secs, cookies, first_error = mass_sign_in(
            idp_port, ag_port, n_sessions, args.signin_workers, keep=n_sessions,
            on_progress=lambda done: curve.append((done, rss_kib(ag.pid)["VmRSS"], group_cpu_seconds(ag.pid),
                                                   group_cpu_seconds(idp.pid), time.time() - t_curve)))
        file_signed_in_at = time.time()
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

        points = args.active or ([1, 1_000] if quick else [1, 1_000, 10_000, 50_000, 100_000])
        # The active-users curve, the store's size, and a restart with a
        # cache smaller than the working set: all before the sessions are
        # older than session.revalidate_secs (900 s), past which every
        # session's next request redeems its refresh token (and the dev IdP
        # keeps only its newest 10,000).
        log(f"active users: {', '.join(f'{n:,}' for n in points if n <= len(cookies))} sessions in use at once")
        wait_until_old(file_signed_in_at)
        res["active"] = {"file": active_curve("aadgate signed-in", ag_port, ag.pid, cookies, points, tmp,
                                              seconds, warmup, up_status, up.pid, rounds=rounds,
                                              trace_port=trace_file)}
        last = max(res["active"]["file"])
        res["memory"]["rss_in_use_kib"] = res["active"]["file"][last]["rss_kib"]
        res["memory"]["sessions_in_use"] = last
        procs.stop(ag)
        if args.store != "memory":
            file_store_restart(res, procs, tmp, store, ok_n, cookies, ag_cfg, ag_env, ag_port, quick,
                               seconds, warmup, up_status, up, idp_port, up_port)

        # The same sign-ins into the Redis store: their rate, Redis's memory
        # per session, and the same curve.
        mem0 = redis_memory(redis_port)
        cpu_agr0 = group_cpu_seconds(agr.pid)
        ok_r, err_r, secs_r, cookies_r, first_error_r = mass_sign_in(
            idp_port, agr_port, n_sessions, args.signin_workers, keep=n_sessions)
        redis_signed_in_at = time.time()
        if first_error_r:
            log(f"  first sign-in error (Redis store): {first_error_r}")
        mem1 = redis_memory(redis_port)
        res["redis"]["signin"] = {"ok": ok_r, "errors": err_r, "seconds": secs_r, "rate": ok_r / secs_r,
                                  "aadgate_cpu_ms": (group_cpu_seconds(agr.pid) - cpu_agr0) * 1000 / max(1, ok_r)}
        res["redis"]["bytes_per_session"] = (mem1["used_memory"] - mem0["used_memory"]) / max(1, ok_r)
        res["redis"]["sessions_after_signins"] = mem1["sessions"]
        log(f"  Redis store: {ok_r:,} sign-ins in {secs_r:.1f} s = {ok_r / secs_r:,.0f}/s, {err_r} errors, "
            f"aadgate CPU {res['redis']['signin']['aadgate_cpu_ms']:.2f} ms per sign-in; "
            f"{res['redis']['bytes_per_session']:,.0f} B of Redis memory per session")
        wait_until_old(redis_signed_in_at)
        before = redis_command_calls(redis_port)
        res["active"]["redis"] = active_curve("aadgate signed-in, Redis", agr_port, agr.pid, cookies_r, points, tmp,
                                              seconds, warmup, up_status, up.pid, rounds=rounds,
                                              trace_port=trace_redis)
        calls = redis_command_calls(redis_port) - before
        done = sum(r["requests"] + r.get("warmup_requests", 0) for r in res["active"]["redis"].values())
        res["active"]["redis_commands_per_request"] = calls / max(1, done)
        log(f"  Redis: {calls:,} commands for {done:,} requests along the curve")
    return res


def file_store_restart(res, procs, tmp, store, ok_n, cookies, ag_cfg, ag_env, ag_port, quick,
                       seconds, warmup, up_status, up, idp_port, up_port):
    """The file store's size and start-up with the sessions, then a restart
    with a cache smaller than the working set: its point of the curve."""
    size = os.path.getsize(os.path.join(store, "sessions.redb"))
    res["memory"]["store_bytes"] = size
    res["memory"]["store_bytes_per_session"] = size / max(1, ok_n)
    log(f"  store {size / 2**20:.1f} MiB = {size / max(1, ok_n):,.0f} B/session")
    res["startup"]["populated"] = measure_startup(tmp, procs, 3, up_port, idp_port, ag_env, store_dir=store)
    log("  start-up on the populated store: " + ", ".join(f"{x:.1f}" for x in res["startup"]["populated"]) + " ms")
    # Restarted with a cache budget smaller than the working set: every
    # request of the round-robin is a cache miss (the least recently
    # used session is always the next one), so this is the miss's cost.
    small_mib, working_set = (1, 1_000) if quick else (16, 50_000)
    ag = procs.start("aadgate-restarted", [BIN, "proxy", "--config", ag_cfg], CORE_SERVER,
                     env=dict(ag_env, AADGATE_SESSION_CACHE_MIB=str(small_mib)))
    wait_http(ag_port, "/healthz", proc=ag, name="aadgate-restarted", procs=procs)
    time.sleep(0.5)
    res["memory"]["rss_restart_kib"] = rss_kib(ag.pid)["VmRSS"]
    if cookies:
        st, _, _, _ = raw_get(ag_port, "/", [f"Cookie: {SESSION_COOKIE}={cookies[0]}"])
        res["memory"]["session_survives_restart"] = st == 200
        log(f"  a session from before the restart answers {st}")
    log(f"active users past the cache: {working_set:,} sessions with session.cache_mib = {small_mib}")
    res["active"]["file_small_cache"] = active_curve(f"aadgate signed-in, {small_mib} MiB cache", ag_port, ag.pid,
                                              cookies, [working_set], tmp, seconds, warmup, up_status, up.pid)
    res["active"]["small_cache_mib"] = small_mib
    procs.stop(ag)
    # Revalidation (roles re-derived from the provider every
    # session.revalidate_secs) at the rate 50,000 active users cause: it is
    # work real traffic pays for that the curve, run within 900 s of the
    # sign-ins, never meets.
    every = 18
    metrics_port = free_port()
    ag = procs.start("aadgate-revalidating", [BIN, "proxy", "--config", ag_cfg], CORE_SERVER,
                     env=dict(ag_env, AADGATE_SESSION_REVALIDATE_SECS=str(every),
                              AADGATE_METRICS_LISTEN=f"127.0.0.1:{metrics_port}"))
    wait_http(ag_port, "/healthz", proc=ag, name="aadgate-revalidating", procs=procs)
    log(f"revalidation at the rate of 50,000 active users: session.revalidate_secs = {every}")
    res["active"]["file_revalidating"] = revalidation_point(
        "aadgate signed-in", ag_port, ag.pid, metrics_port, cookies, tmp, seconds, warmup, up_status, up.pid, every)
    procs.stop(ag)


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
