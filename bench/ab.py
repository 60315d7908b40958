#!/usr/bin/env python3
"""A/B of SMTP servers under the same smtp-source load, in alternating turns.

The machine this project is measured on drifts: a server's rate moves by half within
minutes. A comparison of two runs minutes apart then says more about the machine than
about the change. Here every server is started once, and each turn sends --messages to
each of them in a shuffled order; what is printed is each server's median over the turns,
and the median of its per-turn ratio to the first server (the ratio is taken within a
turn, so a slow phase of the machine hurts both sides of it).

CPU is the server's run time from /proc/PID/task/*/schedstat (all its threads that live
through the turn: wasmtpd's and smtp-sink's do, in
nanoseconds as the scheduler counts them; /proc's user and system times are sampled at
the tick and split at random between threads that wake on timers). The client's CPU is
smtp-source's user and system time a message: at 10 sessions and more on 2 cores it keeps
its core 90% busy or more, so the rate is close to the inverse of it, and part of it is the
cost of waking a server that sleeps between commands.

    bench/ab.py --wasmtpd target/release/wasmtpd --wasmtpd /tmp/wasmtpd-before --smtp-sink
    bench/ab.py --server 'name=CMD ... {port} ...' ...     # any server; {port} is replaced
    bench/ab.py --wasmtpd target/release/wasmtpd --smtp-sink --tokio-floor

--tokio-floor builds and adds bench/peers/tokio-floor, the least an SMTP sink on tokio can
do, twice: with its accept loop on the main thread, and on the worker as wasmtpd has it.

wasmtpd runs with its default configuration and the sink plugin (--plugin to change it).
"""

import argparse
import os
import random
import resource
import shlex
import statistics
import subprocess
import sys

from benchlib import ROOT, free_port, smtp_sink_argv, stop, wait_greeting, wasmtpd_argv
from smtp_bench import load


def run_time_ns(pid):
    """The run time of every thread of `pid` so far."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except FileNotFoundError:
            pass  # a thread that ended meanwhile
    return total


def build_tokio_floor():
    """Builds bench/peers/tokio-floor (release, without the server's profile) and returns
    the binary's path."""
    target = ROOT / "target" / "tokio-floor"
    crate = ROOT / "bench" / "peers" / "tokio-floor"
    # From the crate's directory: cargo and rustup read their configuration and the pinned
    # toolchain from the working directory, not from --manifest-path.
    subprocess.run(["cargo", "build", "--release", "--locked", "--quiet", "--target-dir", str(target)],
                   check=True, cwd=crate, env={**os.environ, "RUSTC_WRAPPER": ""})
    return str(target / "release" / "tokio-floor")


def children_cpu_s():
    """User and system time of this process's waited-for children so far (smtp-source)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wasmtpd", action="append", default=[], metavar="BINARY",
                        help="a wasmtpd binary to measure (repeatable)")
    parser.add_argument("--smtp-sink", action="store_true", help="measure postfix's smtp-sink too")
    parser.add_argument("--tokio-floor", action="store_true",
                        help="measure bench/peers/tokio-floor too (built here), both shapes")
    parser.add_argument("--server", action="append", default=[], metavar="NAME=COMMAND",
                        help="any server; {port} in COMMAND is its port (repeatable)")
    parser.add_argument("--plugin", action="append", default=[], help="wasmtpd's plugin chain (default: sink)")
    parser.add_argument("--sessions", type=int, default=1, help="parallel sessions (default 1)")
    parser.add_argument("--size", type=int, default=1024, help="message payload octets (default 1024)")
    parser.add_argument("--messages", type=int, default=5000, help="messages a server a turn (default 5,000)")
    parser.add_argument("--turns", type=int, default=7, help="turns (default 7)")
    args = parser.parse_args()

    plugins = [a for p in (args.plugin or ["sink"]) for a in ("--plugin", p)]
    specs = []
    for i, binary in enumerate(args.wasmtpd):
        name = os.path.basename(binary) if args.wasmtpd.count(binary) == 1 else f"{binary}#{i}"
        specs.append((name, wasmtpd_argv(binary, "{port}", *plugins)))
    if args.smtp_sink:
        specs.append(("smtp-sink", smtp_sink_argv("{port}")))
    if args.tokio_floor:
        floor = build_tokio_floor()
        specs.append(("tokio-floor", [floor, "{port}"]))
        specs.append(("tokio-floor/worker-accept", [floor, "{port}", "--accept-on-worker"]))
    for spec in args.server:
        name, _, command = spec.partition("=")
        specs.append((name, shlex.split(command)))
    if len(specs) < 2:
        sys.exit("give at least two servers to compare")
    if len({name for name, _ in specs}) != len(specs):
        sys.exit("two servers have the same name")

    servers = []
    try:
        for name, argv in specs:
            port = free_port()
            proc = subprocess.Popen([a.replace("{port}", str(port)) for a in argv],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            servers.append((name, port, proc))
            wait_greeting(port, proc, name)
            load(port, args.sessions, args.size, min(args.messages, 500), None, False)  # warm up
        names = [name for name, _, _ in servers]
        rates = {name: [] for name in names}
        cpus = {name: [] for name in names}
        client_cpus = {name: [] for name in names}
        ratios = {name: [] for name in names}
        cpu_ratios = {name: [] for name in names}
        print(f"{args.sessions} session(s), {args.size} octets, a connection a message, "
              f"{args.messages} messages a server a turn, {args.turns} turns in shuffled order")
        for turn in range(args.turns):
            order = servers[:]
            random.shuffle(order)
            turn_rate, turn_cpu = {}, {}
            for name, port, proc in order:
                before, client_before = run_time_ns(proc.pid), children_cpu_s()
                turn_rate[name] = load(port, args.sessions, args.size, args.messages, None, False)
                cpu = (run_time_ns(proc.pid) - before) / 1e3 / args.messages
                client_cpus[name].append((children_cpu_s() - client_before) * 1e6 / args.messages)
                rates[name].append(turn_rate[name])
                cpus[name].append(cpu)
                turn_cpu[name] = cpu
            for name in names:
                ratios[name].append(turn_rate[name] / turn_rate[names[0]])
                cpu_ratios[name].append(turn_cpu[name] / turn_cpu[names[0]])
            print(f"turn {turn + 1}: " + ", ".join(
                f"{name} {rates[name][-1]:,.0f} msg/s {cpus[name][-1]:.0f} µs" for name in names), flush=True)
        print()
        print(f"{'server':>24} {'msg/s':>8} {'CPU µs/msg':>11} {'client µs/msg':>14}   against {names[0]} "
              "in the same turn: rate, CPU (range)")
        for name in names:
            r, c = ratios[name], cpu_ratios[name]
            print(f"{name:>24} {statistics.median(rates[name]):>8,.0f} {statistics.median(cpus[name]):>11.1f} "
                  f"{statistics.median(client_cpus[name]):>14.1f}   "
                  f"{statistics.median(r):.3f} ({min(r):.2f}-{max(r):.2f}), "
                  f"{statistics.median(c):.3f} ({min(c):.2f}-{max(c):.2f})")
        print("(medians over the turns)")
    finally:
        for _, _, proc in servers:
            stop(proc)


if __name__ == "__main__":
    main()
