#!/usr/bin/env python3
"""Plugins in Python and JavaScript against servers written in those languages: a wasmtpd
plugin in Python (componentize-py) against aiosmtpd, one in JavaScript (componentize-js)
against Haraka, every handler accepting every message (bench/plugins/, bench/peers/).
Each wasmtpd plugin runs twice: as it is, stateless (the WIT's `stateless`: instances
shared between sessions), and with `per_session = true`, which makes it ask for an
instance a session (a fresh CPython or JavaScript engine for each).

Prints, for 1 and 10 parallel sessions (smtp-source, a connection a message, 1 KiB, the
median of --repeat runs with the servers taking turns), messages a second, the ratio to
the peer and the CPU each server spent a message; then each server's resident memory.
wasmtpd runs with its default configuration but for the plugin table; nothing is pinned.

    bench/run languages        # builds everything (bench/setup-languages) and runs this
"""

import argparse
import resource
import statistics
from pathlib import Path

from benchlib import ROOT, WASMTPD, free_port, work_dir
from smtp_bench import Server, load

BENCH_PLUGINS = ROOT / "target" / "plugins" / "bench"
WORK = ROOT / "target" / "bench"


def wasmtpd(name, plugin, per_session, port, work):
    config = work / f"{name}.toml"
    config.write_text(
        f'[plugin.accept]\nsource = "{BENCH_PLUGINS / plugin}"\n'
        f'[plugin.accept.settings]\nper_session = "{str(per_session).lower()}"\n')
    argv = [str(WASMTPD), "--config", str(config), "--listen", f"127.0.0.1:{port}",
            "--hostname", "bench.test", "--plugin", "accept"]
    # A first start compiles the component (tens of seconds without the cache).
    return Server(name, argv, port, None, seconds=300)


def aiosmtpd(port):
    argv = [str(WORK / "venv" / "bin" / "python"), str(ROOT / "bench" / "peers" / "aiosmtpd_accept.py"), str(port)]
    return Server("aiosmtpd", argv, port, None)


def haraka(port):
    site = WORK / "haraka-site"
    (site / "config" / "smtp.ini").write_text(f"listen=127.0.0.1:{port}\n")
    argv = [str(WORK / "haraka" / "node_modules" / ".bin" / "haraka"), "-c", str(site)]
    return Server("Haraka", argv, port, None)


def measure(servers, sessions, messages, repeat):
    """{name: (median msg/s, median CPU µs a message)}, the servers taking turns."""
    rates = {s.name: [] for s in servers}
    cpu = {s.name: [] for s in servers}
    for _ in range(repeat):
        for server in servers:
            before = server.cpu_seconds()
            rates[server.name].append(load(server.port, sessions, 1024, messages, None, False))
            cpu[server.name].append((server.cpu_seconds() - before) * 1e6 / messages)
    return {n: (statistics.median(rates[n]), statistics.median(cpu[n])) for n in rates}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", default="1,10", help="parallel sessions (default 1,10)")
    parser.add_argument("--messages", type=int, default=2000, help="messages a run (default 2000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs a point; the median is printed")
    parser.add_argument("--languages", default="python,js", help="python, js or both (default)")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = work_dir("wasmtpd-languages-")

    sets = {
        "python": ("aiosmtpd", aiosmtpd, "python_accept.wasm"),
        "js": ("Haraka", haraka, "js_accept.wasm"),
    }
    print(f"a connection a message, 1 KiB, {args.messages} messages a run, median of {args.repeat}; unpinned")
    print(f"{'plugin':>7} {'sessions':>8} {'peer':>9} {'peer msg/s':>10} {'stateless msg/s':>15} {'ratio':>6}"
          f" {'per-session msg/s':>18} {'ratio':>6} {'CPU µs/msg: peer':>17} {'stateless':>10} {'per-session':>11}")
    memory = []
    for language in args.languages.split(","):
        peer_name, start_peer, plugin = sets[language]
        servers = []
        try:
            servers.append(start_peer(free_port()))
            servers.append(wasmtpd(f"wasmtpd {language} stateless", plugin, False, free_port(), work))
            servers.append(wasmtpd(f"wasmtpd {language} per-session", plugin, True, free_port(), work))
            for sessions in [int(s) for s in args.sessions.split(",")]:
                got = measure(servers, sessions, args.messages, args.repeat)
                (peer, peer_cpu), (shared, shared_cpu), (fresh, fresh_cpu) = (got[s.name] for s in servers)
                print(f"{language:>7} {sessions:>8} {peer_name:>9} {peer:>10.0f} {shared:>15.0f} {shared / peer:>6.2f}"
                      f" {fresh:>18.0f} {fresh / peer:>6.2f} {peer_cpu:>17.0f} {shared_cpu:>10.0f} {fresh_cpu:>11.0f}",
                      flush=True)
            memory += [(s.name, s.rss_kib() / 1024) for s in servers]
        finally:
            for server in servers:
                server.stop()
    print()
    print(f"{'server':>28} {'RSS after load MiB':>19}")
    for name, rss in memory:
        print(f"{name:>28} {rss:>19.1f}")


if __name__ == "__main__":
    main()
