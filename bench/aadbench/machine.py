"""The machine as a whole: how busy it is, CPU used by processes other than
ours during a measurement, and the hardware and software versions reported
with the results."""

from __future__ import annotations

import os
import platform
import subprocess
import time

from .procs import CLK_TCK, OUR_PGIDS, group_cpu_seconds
from .testbed import BIN, ROOT


def cpu_snapshot():
    """(user+nice+system seconds of the whole machine, CPU seconds of our
    processes: the children we started, wrk and this script)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    machine = (v[0] + v[1] + v[2]) / CLK_TCK
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
