"""Our child processes: starting them pinned to a core in their own process
group, stopping them, their RSS and CPU time (per process group), free
loopback ports, and waiting until a server answers HTTP."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

from .testbed import BenchError

# Process groups of the children we started (their CPU is ours, not foreign).
OUR_PGIDS: set[int] = set()


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


CLK_TCK = os.sysconf("SC_CLK_TCK")


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
    return user / CLK_TCK, system / CLK_TCK


def group_cpu_seconds(pgid: int) -> float:
    u, s = group_cpu_split(pgid)
    return u + s


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
