"""bench/run --profile perf|callgrind: perf stat per request, perf record
of aadgate (signed-in, public route or sign-ins) and callgrind with a
summary of instructions per request."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile

from .load import run_wrk
from .procs import group_cpu_seconds, group_pids, wait_http
from .signin import Browser, mass_sign_in
from .testbed import BIN, CORE_SERVER, RESULTS, SESSION_COOKIE, log


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
