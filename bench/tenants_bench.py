#!/usr/bin/env python3
"""Tenant isolation, measured: tenant B's throughput (sink plugin) alone, and while
tenant A's plugin misbehaves under load (loops for its whole budget, allocates 1 GiB,
traps on every call). Prints msg/s and the ratio; the target is at least 0.8.

    bench/run tenants         # builds wasmtpd (release) first
"""

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import PLUGINS, WASMTPD, free_port, wait_greeting

MISBEHAVE = PLUGINS / "misbehave.wasm"


def smtp_source(port, messages, sessions, keep_going=False):
    argv = ["smtp-source", "-d", "-s", str(sessions), "-m", str(messages), "-l", "1024",
            "-f", "a@example.org", "-t", "b@example.com", f"127.0.0.1:{port}"]
    if keep_going:
        argv.insert(1, "-A")
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def rate(port):
    start = time.perf_counter()
    proc = smtp_source(port, 5000, 10)
    if proc.wait(600) != 0:
        sys.exit("smtp-source against B failed: B did not answer 250 to everything")
    return 5000 / (time.perf_counter() - start)


def main():
    work = Path(tempfile.mkdtemp(prefix="wasmtpd-tenants-bench-"))
    a, b = free_port(), free_port()
    print("tenant B (sink), smtp-source 10 sessions 1 KiB; median of 3")
    print(f"{'A misbehaves by':>16} {'B alone msg/s':>14} {'B with A msg/s':>15} {'ratio':>6}")
    for mode in ["loop", "alloc", "trap"]:
        config = work / "wasmtpd.toml"
        config.write_text(
            f'[limits]\nmax_connections_per_ip = 1000\n'
            f'[[listener]]\naddress = "127.0.0.1:{a}"\ntenant = "a"\nplugins = ["bad"]\n'
            f'[[listener]]\naddress = "127.0.0.1:{b}"\ntenant = "b"\nplugins = ["sink"]\n'
            f'[plugin.bad]\nsource = "{MISBEHAVE}"\ntime_budget_ms = 1000\nmemory_mib = 64\n'
            f'[plugin.bad.settings]\nmode = "{mode}"\n')
        server = subprocess.Popen([str(WASMTPD), "--config", str(config)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_greeting(a)
            wait_greeting(b)
            alone = statistics.median(rate(b) for _ in range(3))
            hostile = smtp_source(a, 100000, 20, keep_going=True)
            time.sleep(1)
            try:
                loaded = statistics.median(rate(b) for _ in range(3))
            finally:
                hostile.kill()
                hostile.wait()
            print(f"{mode:>16} {alone:>14.0f} {loaded:>15.0f} {loaded / alone:>6.2f}", flush=True)
        finally:
            # Sessions of A still waiting for their plugin turn would hold up a graceful stop.
            server.kill()
            server.wait(10)


if __name__ == "__main__":
    main()
