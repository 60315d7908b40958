#!/usr/bin/env python3
"""Hot reload, measured: how long from writing a new plugin file to the first session the
new version serves, and smtp-source throughput while the plugin is swapped every 100 ms
compared to without swaps.

    bench/run reload          # builds wasmtpd (release) first
    bench/reload_bench.py     # once target/release/wasmtpd exists

Version A is the sink plugin (`250 2.0.0 OK`), version B the test plugin in count mode
(`250 2.0.0 message N of this session`); both are components built from plugins/.
"""

import re
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from benchlib import PLUGINS, WASMTPD, free_port, work_dir

VERSIONS = {"A": PLUGINS / "sink.wasm", "B": PLUGINS / "misbehave.wasm"}


def reply(sock):
    data = b""
    while True:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
        lines = data.split(b"\r\n")
        for line in lines[:-1]:
            if len(line) >= 4 and line[3:4] == b" ":
                return line.decode()


def served_by(port):
    """Sends one message in a new session; returns 'A' or 'B' by the reply."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        reply(s)
        for command in [b"EHLO bench.test", b"MAIL FROM:<a@example.org>", b"RCPT TO:<b@example.com>", b"DATA"]:
            s.sendall(command + b"\r\n")
            reply(s)
        s.sendall(b"Subject: reload\r\n\r\nbody\r\n.\r\n")
        answer = reply(s)
        s.sendall(b"QUIT\r\n")
    if answer == "250 2.0.0 OK":
        return "A"
    if answer.startswith("250 2.0.0 message "):
        return "B"
    sys.exit(f"unexpected reply {answer!r}")


def smtp_source(port, messages=5000, sessions=10):
    argv = ["smtp-source", "-d", "-s", str(sessions), "-m", str(messages), "-l", "1024",
            "-f", "a@example.org", "-t", "b@example.com", f"127.0.0.1:{port}"]
    start = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, timeout=600)
    return messages / (time.perf_counter() - start)


def main():
    work = work_dir("wasmtpd-reload-bench-")
    plugin = work / "p.wasm"
    shutil.copy(VERSIONS["A"], plugin)
    config = work / "wasmtpd.toml"
    config.write_text('[plugin.p]\nsource = "p.wasm"\n[plugin.p.settings]\nmode = "count"\n'
                      "[limits]\nmax_connections_per_ip = 1000\n")
    # A fresh compiled-code cache, so that the first load of each version is a real compile.
    port = free_port()
    log = open(work / "wasmtpd.log", "w+")
    proc = subprocess.Popen(
        [str(WASMTPD), "--config", str(config), "--plugin", "p", "--listen", f"127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL, stderr=log, env={"XDG_CACHE_HOME": str(work / "cache"), "PATH": "/usr/bin:/bin"})
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                served_by(port)
                break
            except OSError:
                if time.monotonic() > deadline:
                    sys.exit("wasmtpd did not start")
                time.sleep(0.05)

        print("write to first session on the new version (ms); the server's own reload time (ms)")
        print(f"{'swap':>6} {'to':>3} {'first time':>11} {'write->served':>14} {'reload':>8}")
        current, seen = "A", {"A"}
        figures = {True: [], False: []}
        for n in range(12):
            target = "B" if current == "A" else "A"
            first = target not in seen
            reloads = len(re.findall(r"reloaded \(", (work / "wasmtpd.log").read_text()))
            start = time.perf_counter()
            shutil.copy(VERSIONS[target], plugin)
            while served_by(port) != target:
                if time.perf_counter() - start > 10:
                    sys.exit("the new version never served")
            elapsed = (time.perf_counter() - start) * 1000
            text = (work / "wasmtpd.log").read_text()
            took = re.findall(r"reloaded \([^)]*\) in (\d+) ms", text)
            took = took[-1] if len(took) > reloads else "?"
            print(f"{n + 1:>6} {target:>3} {'yes' if first else 'no':>11} {elapsed:>14.0f} {took:>8}", flush=True)
            figures[first].append(elapsed)
            seen.add(target)
            current = target
        warm = figures[False]
        print(f"median write->served with the version cached: {statistics.median(warm):.0f} ms "
              f"(debounce 100 ms included)")

        # For throughput, two versions that cost the same: A, and A with a custom section
        # appended (other bytes, another version, the same code).
        sink = VERSIONS["A"].read_bytes()
        name = b"wasmtpd-bench"
        payload = bytes([len(name)]) + name + b"x" * 16
        twins = [sink, sink + b"\x00" + bytes([len(payload)]) + payload]
        plugin.write_bytes(twins[0])
        while served_by(port) != "A":
            time.sleep(0.05)
        without = statistics.median(smtp_source(port) for _ in range(3))
        stop = threading.Event()

        def swapper():
            n = 0
            while not stop.is_set():
                n += 1
                plugin.write_bytes(twins[n % 2])
                time.sleep(0.1)

        rates = []
        for _ in range(3):
            stop.clear()
            thread = threading.Thread(target=swapper)
            thread.start()
            rates.append(smtp_source(port))
            stop.set()
            thread.join()
        during = statistics.median(rates)
        text = (work / "wasmtpd.log").read_text()
        print(f"smtp-source, 10 sessions, 1 KiB: {without:.0f} msg/s without swaps, {during:.0f} msg/s "
              f"swapping every 100 ms ({during / without:.2f}x); {len(re.findall('reloaded', text))} reloads, "
              f"{len(re.findall('reload refused', text))} refused (read while half written)")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
