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
import json
import os
import shutil
import signal
import sys
import tempfile
import time

# The work is done in bench/aadbench/, one module per concern (see its __init__.py).
from aadbench.machine import busy_fraction, top_cpu
from aadbench.procs import Procs
from aadbench.report import report, write_docs
from aadbench.run import run
from aadbench.testbed import BIN, CORE_CLIENT, DOC, RESULTS, ROOT, SVG, BenchError, log


def main():
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short runs, < 1 minute, no docs written")
    ap.add_argument("--seconds", type=int, help="measured seconds per run")
    ap.add_argument("--rounds", type=int, help="rounds over all contestants (medians reported)")
    ap.add_argument("--sessions", type=int, help="live sessions to create for the memory measurement")
    ap.add_argument("--active", metavar="N,N,...",
                    type=lambda v: [int(x.replace("_", "")) for x in v.split(",")],
                    help="sessions in use at each point of the active-users curve "
                         "(default 1,1000; full run 1,1000,10000,50000,100000; needs --sessions >= the largest)")
    ap.add_argument("--trace", action="store_true",
                    help="a per-second trace of the proxy along the active-users curve (its metrics, CPU, "
                         "disk writes), in the log and the results; turns on metrics_listen for those processes")
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
    experiment = (bool(args.preload) or args.store != "file" or args.sessions is not None
                  or args.active is not None or args.trace)
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


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(1)
