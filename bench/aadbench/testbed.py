"""The fixed facts of the test bed, shared by every module: where things are,
the binary under test, which core runs what, the dev IdP's client, the
upstream's answer and the session cookie names; plus log() and BenchError."""

from __future__ import annotations

import os
import time

BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(BENCH)
# AADGATE_BENCH_BIN: another build to measure (A/B comparisons of two commits).
BIN = os.environ.get("AADGATE_BENCH_BIN") or os.path.join(ROOT, "target", "release", "aadgate")
LUA = os.path.join(BENCH, "wrk", "report.lua")
ROTATE_LUA = os.path.join(BENCH, "wrk", "rotate.lua")
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
