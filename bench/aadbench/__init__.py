"""The aadgate benchmark, by concern; bench/bench.py (the CLI) drives it.

testbed   paths, the binary under test, cores, dev IdP client, log, BenchError
procs     child processes: start pinned, stop, RSS/CPU per group, ports, wait_http
machine   the host: idle check, foreign CPU, versions
configs   nginx, Apache + mod_auth_openidc, dev IdP and aadgate configurations
signin    scripted Browser and mass_sign_in (worker processes)
load      wrk, Contestant, probe, measure, median_result
trace     --trace: the proxy's metrics, CPU and disk writes, once a second
active    the active-users curve: N sessions in use at once (wrk/rotate.lua), in rounds
report    tables, ratios, targets, printed summary, SVG chart, docs/benchmarks.md
profile   --profile perf|callgrind
run       one whole benchmark run, returning the results dict

Imports go down this list only (testbed imports nothing of ours).
"""
