#!/usr/bin/env python3
"""Throughput and memory of wasmtpd beside postfix's smtp-sink, under smtp-source load.

Prints messages per second at 1, 10 and 100 parallel sessions with 1 KiB and 100 KiB
messages, for each server, and wasmtpd's ratio to smtp-sink; then each server's resident
memory idle and with 1,000 open connections. Every figure is the median of --repeat runs,
with the servers taking turns so that a noisy neighbour hurts both alike.

By default both servers run on the same one core and smtp-source on the others (--pin):
smtp-sink is one thread, so this gives both the same machine, and the load generator no
longer competes with the server it measures. --no-pin lets every process use every core
(wasmtpd then runs a worker thread a core, which share them with smtp-source; see README).

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
from benchlib import ROOT, WASMTPD, free_port, wait_greeting



def cpu_split(pin):
    """(server cores, load generator cores), or (None, None) to let the kernel choose."""
    cores = sorted(os.sched_getaffinity(0))
    if not pin or len(cores) < 2:
        return None, None
    return {cores[-1]}, set(cores[:-1])


class Server:
    def __init__(self, name, argv, port, cpus):
        self.name, self.port = name, port
        pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=pin)
        wait_greeting(port, self.proc, name)

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
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_servers(binary, wasmtpd_args, cpus):
    servers = []
    port = free_port()
    servers.append(Server("smtp-sink", ["smtp-sink", "-u", "nobody", f"127.0.0.1:{port}", "1024"], port, cpus))
    port = free_port()
    argv = [str(binary), "--listen", f"127.0.0.1:{port}", "--hostname", "bench.test", *wasmtpd_args]
    servers.append(Server("wasmtpd", argv, port, cpus))
    return servers


def load(port, sessions, size, messages, cpus):
    """Messages per second for one smtp-source run (one connection per session, -d)."""
    argv = [
        "smtp-source", "-d", "-s", str(sessions), "-m", str(messages), "-l", str(size),
        "-f", "sender@example.org", "-t", "rcpt@example.com", "-M", "client.test",
        f"127.0.0.1:{port}",
    ]
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


def open_idle_connections(port, count):
    """Opens `count` connections, each greeted and EHLO'd as a real idle client would be.
    Returns the sockets that got that far (a server may refuse or ignore some)."""
    conns = []
    for _ in range(count):
        try:
            conns.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            break
    ready = []
    for s in conns:
        try:
            if not s.recv(512).startswith(b"220"):
                continue
            s.sendall(b"EHLO idle.test\r\n")
            got = b""
            while b"250 " not in got:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            if b"250 " in got:
                ready.append(s)
        except OSError:
            pass
    return conns, len(ready)


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
    parser.add_argument("--config", default=str(ROOT / "bench" / "bench.toml"),
                        help="wasmtpd's configuration (default bench/bench.toml)")
    parser.add_argument("--warm", action="store_true",
                        help="send one message first (a filter that defers a first attempt, "
                             "such as greylisting, learns smtp-source's sender and recipient)")
    parser.add_argument("--pin", action=argparse.BooleanOptionalAction, default=True,
                        help="servers share one core, smtp-source gets the rest (default: on)")
    args = parser.parse_args()

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the children inherit it
    plugins = args.plugin or ["sink"]
    wasmtpd_args = [a for p in plugins for a in ("--plugin", p)]
    wasmtpd_args += ["--config", args.config]
    server_cpus, load_cpus = cpu_split(args.pin)
    servers = start_servers(args.wasmtpd, wasmtpd_args, server_cpus)
    if args.warm:
        for server in servers:
            warm(server.port)
    started = {s.name: s.rss_kib() / 1024 for s in servers}
    try:
        cores = f"servers on cores {sorted(server_cpus)}, smtp-source on {sorted(load_cpus)}" if server_cpus else "not pinned"
        print(f"wasmtpd --plugin {' --plugin '.join(plugins)}  vs  smtp-sink; median of {args.repeat} runs; {cores}")
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
                        rates[server.name].append(load(server.port, sessions, size, messages, load_cpus))
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
    except BaseException:
        for server in servers:
            server.stop()
        raise
    for server in servers:
        server.stop()


if __name__ == "__main__":
    main()
