#!/usr/bin/env python3
"""Tenant isolation, measured: tenant B's throughput (sink plugin) alone, and while
tenant A's plugin, under load from 20 clients, computes 15 million loop turns a message
(about 9 ms on the 2-core machine; legitimate work: its CPU share is what holds it back), loops for its whole budget, allocates 1 GiB
or traps on every call. Prints msg/s and the ratio (the target is at least 0.8), and for
`compute`, A's own rate and the CPU the server used.

    bench/run tenants         # builds wasmtpd (release) first
"""

import argparse
import statistics
import urllib.request
import subprocess
import sys
import time
from pathlib import Path

from benchlib import PLUGINS, WASMTPD, free_port, wait_greeting, work_dir

MISBEHAVE = PLUGINS / "misbehave.wasm"


def smtp_source(port, messages, sessions, keep_going=False):
    argv = ["smtp-source", "-d", "-s", str(sessions), "-m", str(messages), "-l", "1024",
            "-f", "a@example.org", "-t", "b@example.com", f"127.0.0.1:{port}"]
    if keep_going:
        argv.insert(1, "-A")
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# Messages a measurement of B sends: about a second of B's work, so that a run is not
# decided by a few milliseconds of the machine's noise.
B_MESSAGES = 20000
# Measurements of B per figure (the median is printed).
REPEAT = 5


def rate(port):
    start = time.perf_counter()
    proc = smtp_source(port, B_MESSAGES, 10)
    if proc.wait(600) != 0:
        sys.exit("smtp-source against B failed: B did not answer 250 to everything")
    return B_MESSAGES / (time.perf_counter() - start)


def accepted(metrics, tenant):
    """Messages the tenant has accepted so far, from the metrics endpoint."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10) as response:
        text = response.read().decode()
    needle = f'wasmtpd_messages_total{{tenant="{tenant}",outcome="accepted"}} '
    return int(next(l for l in text.splitlines() if l.startswith(needle)).split()[-1])


def handled(metrics, tenant):
    """Messages the tenant has answered so far, whatever the outcome."""
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics}/metrics", timeout=10) as response:
        text = response.read().decode()
    prefix = f'wasmtpd_messages_total{{tenant="{tenant}",'
    return sum(int(l.split()[-1]) for l in text.splitlines() if l.startswith(prefix))


def settle(metrics, tenant="a", quiet=0.5, most=30):
    """Waits until the tenant's sessions left over from a killed load have ended: its
    count of answered messages has not moved for `quiet` seconds."""
    last, since, deadline = handled(metrics, tenant), time.monotonic(), time.monotonic() + most
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now = handled(metrics, tenant)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return


def a_rate_alone(port, metrics, seconds=5):
    """Tenant A's messages a second under its 20 clients, with B idle."""
    load = smtp_source(port, 100000, 20, keep_going=True)
    try:
        time.sleep(1)
        before, started = accepted(metrics, "a"), time.perf_counter()
        time.sleep(seconds)
        return (accepted(metrics, "a") - before) / (time.perf_counter() - started)
    finally:
        load.kill()
        load.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-ms", type=int, help="tenant A's max_cpu_ms_per_second (default: the server's)")
    parser.add_argument("--modes", default="compute,loop,alloc,trap")
    args = parser.parse_args()
    work = work_dir("wasmtpd-tenants-bench-")
    a, b, metrics = free_port(), free_port(), free_port()
    cap = "the default" if args.cpu_ms is None else f"{args.cpu_ms} ms/s"
    print(f"tenant B (sink), smtp-source 10 sessions 1 KiB; {REPEAT} turns of B alone then beside A, "
          f"medians (the ratio's range); A's CPU share: {cap}")
    print(f"{'A misbehaves by':>16} {'B alone msg/s':>14} {'B with A msg/s':>15} {'ratio':>6} {'(range)':>11} {'A msg/s':>8}")
    for mode in args.modes.split(","):
        config = work / "wasmtpd.toml"
        share = "" if args.cpu_ms is None else f"max_cpu_ms_per_second = {args.cpu_ms}\n"
        config.write_text(
            f'metrics = "127.0.0.1:{metrics}"\n'
            f'[[tenant]]\nname = "a"\nplugins = ["bad"]\n{share}'
            f'[[tenant]]\nname = "b"\nplugins = ["sink"]\n'
            f'[[listener]]\naddress = "127.0.0.1:{a}"\ntenant = "a"\n'
            f'[[listener]]\naddress = "127.0.0.1:{b}"\ntenant = "b"\n'
            f'[plugin.bad]\nsource = "{MISBEHAVE}"\ntime_budget_ms = 1000\nmemory_mib = 64\n'
            f'[plugin.bad.settings]\nmode = "{mode}"\n')
        server = subprocess.Popen([str(WASMTPD), "--config", str(config)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_greeting(a)
            wait_greeting(b)
            if mode == "compute":
                a_alone = a_rate_alone(a, metrics)
                settle(metrics)
            # Alone and beside A in turns, a ratio each turn: the machine's speed drifts
            # between minutes more than A's effect on B.
            alone, loaded, ratios, a_rates = [], [], [], []
            for _ in range(REPEAT):
                alone.append(rate(b))
                hostile = smtp_source(a, 100000, 20, keep_going=True)
                time.sleep(1)
                try:
                    a_before, started = accepted(metrics, "a"), time.perf_counter()
                    loaded.append(rate(b))
                    a_rates.append((accepted(metrics, "a") - a_before) / (time.perf_counter() - started))
                finally:
                    hostile.kill()
                    hostile.wait()
                ratios.append(loaded[-1] / alone[-1])
                # A's sessions still in their calls end before B is measured alone again.
                settle(metrics)
            alone, loaded = statistics.median(alone), statistics.median(loaded)
            ratio, a_rate = statistics.median(ratios), statistics.median(a_rates)
            a_note = f" (alone {a_alone:.1f})" if mode == "compute" else ""
            spread = f" ({min(ratios):.2f}-{max(ratios):.2f})"
            print(f"{mode:>16} {alone:>14.0f} {loaded:>15.0f} {ratio:>6.2f}{spread} {a_rate:>8.1f}{a_note}",
                  flush=True)
        finally:
            # Sessions of A still waiting for their plugin turn would hold up a graceful stop.
            server.kill()
            server.wait(10)


if __name__ == "__main__":
    main()
