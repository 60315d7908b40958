#!/usr/bin/env python3
"""Throughput and memory of wasmtpd beside postfix's smtp-sink, under smtp-source load.

Prints messages per second at 1, 10 and 100 parallel sessions with 1 KiB and 100 KiB
messages, a new connection for each message (as most senders do; --reuse-connections sends
them all over one connection a session), for each server, wasmtpd's ratio to smtp-sink and
the CPU each server spent a message; then each server's resident memory idle and with 1,000
open connections. Every figure is the median of --repeat runs, with the servers taking turns
so that a noisy neighbour hurts both alike.

wasmtpd runs as a user runs it: its default configuration (no --config) and no
environment variable. Each table is measured twice (--placement):
- unpinned: every process may use every core, as on a machine nobody tuned;
- pinned: both servers on the same one core and smtp-source on the others. smtp-sink is
  one thread, so this gives both the same machine, and the load generator no longer
  competes with the server it measures.

    bench/run                  # builds wasmtpd (release) and runs everything
    bench/smtp_bench.py --help

Needs smtp-source and smtp-sink (Debian package postfix; bench/run installs it).
"""

import argparse
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
from benchlib import WASMTPD, free_port, smtp_sink_argv, stop, wait_greeting, wasmtpd_argv



def cpu_split(pin):
    """(server cores, load generator cores), or (None, None) to let the kernel choose."""
    cores = sorted(os.sched_getaffinity(0))
    if not pin or len(cores) < 2:
        return None, None
    return {cores[-1]}, set(cores[:-1])


class Server:
    def __init__(self, name, argv, port, cpus, seconds=30, stdout=None, stderr=None):
        self.name, self.port = name, port
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        out = open(stdout, "wb") if stdout else subprocess.DEVNULL
        err = open(stderr, "wb") if stderr else subprocess.DEVNULL
        self.proc = subprocess.Popen(argv, stdout=out, stderr=err, preexec_fn=pin)
        wait_greeting(port, self.proc, name, seconds)

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self):
        """User plus system CPU time the server has used, all threads."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        stop(self.proc)


def start_servers(binary, wasmtpd_args, cpus, stdout=None):
    servers = []
    port = free_port()
    servers.append(Server("smtp-sink", smtp_sink_argv(port), port, cpus))
    port = free_port()
    argv = wasmtpd_argv(binary, port, *wasmtpd_args)
    servers.append(Server("wasmtpd", argv, port, cpus, stdout=stdout))
    return servers


def load(port, sessions, size, messages, cpus, reuse):
    """Messages per second for one smtp-source run: a connection a message, or with
    `reuse` one a session (-d)."""
    argv = [
        "smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size),
        "-f", "sender@example.org", "-t", "rcpt@example.com", "-M", "client.test",
        f"127.0.0.1:{port}",
    ]
    if reuse:
        argv.insert(1, "-d")
    start = time.perf_counter()
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600, preexec_fn=pin)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"smtp-source failed on port {port}: {result.stderr or result.stdout}")
    return messages / elapsed


def warm(port):
    """One message from smtp-source's sender to its recipient; a refusal is expected."""
    import smtplib
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
            client.sendmail("sender@example.org", ["rcpt@example.com"], "Subject: warm\r\n\r\nwarm\r\n")
    except smtplib.SMTPException:
        pass


def open_idle_connections(port, count, seconds=10):
    """Opens `count` connections, each greeted and EHLO'd as a real idle client would be.
    Returns the sockets and how many got that far (a server may refuse or ignore some);
    all of it within `seconds`, however many the server leaves unanswered."""
    deadline = time.monotonic() + seconds
    conns = []
    for _ in range(count):
        try:
            conns.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            break
    ready = 0
    for s in conns:
        try:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            if not s.recv(512).startswith(b"220"):
                continue
            s.sendall(b"EHLO idle.test\r\n")
            got = b""
            while b"250 " not in got:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            if b"250 " in got:
                ready += 1
        except OSError:
            pass
    return conns, ready


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="1,10,100", help="parallel sessions (default 1,10,100)")
    parser.add_argument("--sizes", default="1024,102400", help="message payload octets (default 1024,102400)")
    parser.add_argument("--octets", type=int, default=60_000_000, help="octets sent a run, at most (default 60 MB)")
    parser.add_argument("--max-messages", type=int, default=10_000, help="messages a run, at most")
    parser.add_argument("--repeat", type=int, default=3, help="runs a point; the median is printed")
    parser.add_argument("--connections", type=int, default=1000, help="idle connections for the memory figure")
    parser.add_argument("--plugin", action="append", default=[], help="wasmtpd plugin chain (default: sink)")
    # One build a run: servers started side by side disturb each other's figures (each
    # idle wasmtpd's epoch thread ticks every millisecond).
    parser.add_argument("--wasmtpd", default=WASMTPD, metavar="BINARY",
                        help="the wasmtpd binary to measure (default target/release/wasmtpd)")
    parser.add_argument("--config", help="a wasmtpd configuration (default: none, the defaults)")
    parser.add_argument("--warm", action="store_true",
                        help="send one message first (a filter that defers a first attempt, "
                             "such as greylisting, learns smtp-source's sender and recipient)")
    parser.add_argument("--placement", default="unpinned,pinned",
                        help="unpinned, pinned or both (default unpinned,pinned; see above)")
    parser.add_argument("--stdout", metavar="FILE",
                        help="wasmtpd's standard output goes to FILE (what debug-printer prints); default nowhere")
    parser.add_argument("--reuse-connections", action="store_true",
                        help="send a session's messages over one connection (smtp-source -d)")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the children inherit it
    plugins = args.plugin or ["sink"]
    wasmtpd_args = [a for p in plugins for a in ("--plugin", p)]
    if args.config:
        wasmtpd_args += ["--config", args.config]
    for placement in args.placement.split(","):
        if placement not in ("unpinned", "pinned"):
            sys.exit(f"--placement: {placement!r} is neither unpinned nor pinned")
        measure(args, plugins, wasmtpd_args, placement == "pinned")
        print()


def measure(args, plugins, wasmtpd_args, pin):
    """One table of rates and CPU, then the memory figures, for one placement."""
    server_cpus, load_cpus = cpu_split(pin)
    servers = start_servers(args.wasmtpd, wasmtpd_args, server_cpus, args.stdout)
    if args.warm:
        for server in servers:
            warm(server.port)
    started = {s.name: s.rss_kib() / 1024 for s in servers}
    try:
        cores = (f"pinned: servers on cores {sorted(server_cpus)}, smtp-source on {sorted(load_cpus)}"
                 if server_cpus else "unpinned")
        per = "one connection a session" if args.reuse_connections else "a connection a message"
        print(f"wasmtpd --plugin {' --plugin '.join(plugins)}"
              f"{' --config ' + args.config if args.config else ''}  vs  smtp-sink; {per};"
              f" median of {args.repeat} runs; {cores}")
        print(f"{'sessions':>8} {'size':>8} {'messages':>8} {'smtp-sink msg/s':>16} {'wasmtpd msg/s':>14} {'ratio':>6}"
              f" {'smtp-sink CPU µs/msg':>21} {'wasmtpd CPU µs/msg':>19}")
        for size in [int(s) for s in args.sizes.split(",")]:
            messages = min(args.max_messages, max(200, args.octets // size))
            for sessions in [int(s) for s in args.sessions.split(",")]:
                rates = {s.name: [] for s in servers}
                cpu = {s.name: [] for s in servers}
                for _ in range(args.repeat):
                    for server in servers:
                        before = server.cpu_seconds()
                        rates[server.name].append(
                            load(server.port, sessions, size, messages, load_cpus, args.reuse_connections))
                        cpu[server.name].append((server.cpu_seconds() - before) * 1e6 / messages)
                a = statistics.median(rates["smtp-sink"])
                b = statistics.median(rates["wasmtpd"])
                ca = statistics.median(cpu["smtp-sink"])
                cb = statistics.median(cpu["wasmtpd"])
                print(f"{sessions:>8} {size:>8} {messages:>8} {a:>16.0f} {b:>14.0f} {b / a:>6.2f}"
                      f" {ca:>21.1f} {cb:>19.1f}", flush=True)

        print()
        print(f"{'server':>10} {'RSS started MiB':>16} {'after load MiB':>15} {f'with {args.connections} connections MiB':>30}")
        for server in servers:
            idle = server.rss_kib() / 1024
            conns, ready = open_idle_connections(server.port, args.connections)
            time.sleep(0.5)
            busy = server.rss_kib() / 1024
            for s in conns:
                s.close()
            note = "" if ready == args.connections else f"  (only {ready} of {args.connections} were served)"
            print(f"{server.name:>10} {started[server.name]:>16.1f} {idle:>15.1f} {busy:>30.1f}{note}", flush=True)
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
