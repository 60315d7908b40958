#!/usr/bin/env python3
"""Peak memory under a burst of big messages: N sessions at once, each sending one message
of M MiB (smtp-source), to wasmtpd with a given chain, and postfix's smtp-sink beside it.

Prints, for each server, its peak resident memory (VmHWM), how many messages got 250 and
how many were deferred (4xx), and the wall time. The default is the issue's case: 200
sessions, 20 MiB each, the sink plugin, the default configuration otherwise.

    bench/big_messages.py                         # sink plugin
    bench/big_messages.py --plugin debug-printer  # the default server (output to a file)
    bench/big_messages.py --sessions 50 --mib 20

Needs smtp-source and smtp-sink (Debian package postfix; bench/run installs it) and a
release build (cargo build --release).
"""

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchlib import WASMTPD, free_port, smtp_sink_argv, wait_greeting


def peak_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


def run_load(port, sessions, mib):
    """smtp-source: one message a session, all at once. (accepted, deferred, refused, seconds)"""
    started = time.monotonic()
    out = subprocess.run(
        ["smtp-source", "-s", str(sessions), "-m", str(sessions), "-l", str(mib << 20),
         "-f", "sender@example.org", "-t", "rcpt@example.com", f"127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=1800,
    )
    seconds = time.monotonic() - started
    errors = out.stderr.splitlines()
    deferred = sum(1 for line in errors if re.search(r": 4\d\d[ -]", line))
    refused = sum(1 for line in errors if re.search(r": 5\d\d[ -]", line))
    other = [line for line in errors if not re.search(r": [45]\d\d[ -]", line)]
    if other:
        print("  smtp-source said:", *other[:5], sep="\n    ")
    return sessions - deferred - refused, deferred, refused, seconds


def measure(name, argv, port, args, cwd=None):
    with tempfile.TemporaryFile() as output:
        proc = subprocess.Popen(argv, stdout=output, stderr=subprocess.DEVNULL, cwd=cwd)
        try:
            wait_greeting(port, proc, name)
            accepted, deferred, refused, seconds = run_load(port, args.sessions, args.mib)
            peak = peak_kib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        printed = output.seek(0, 2)
    print(f"{name:>28}: peak {peak / 1024:8.1f} MiB  accepted {accepted:4}  deferred {deferred:4}  "
          f"refused {refused:4}  {seconds:6.1f} s  output {printed / 2**20:8.1f} MiB")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=200)
    parser.add_argument("--mib", type=int, default=20)
    parser.add_argument("--plugin", default="sink")
    parser.add_argument("--config", help="a configuration file for wasmtpd (its listener is replaced)")
    parser.add_argument("--no-sink", action="store_true", help="skip postfix's smtp-sink")
    parser.add_argument("--wasmtpd", type=Path, default=WASMTPD, metavar="BINARY",
                        help="the wasmtpd binary (default: the release build)")
    args = parser.parse_args()
    if not args.wasmtpd.exists():
        sys.exit(f"no {args.wasmtpd}: cargo build --release first")
    print(f"{args.sessions} sessions at once, one {args.mib} MiB message each")
    port = free_port()
    argv = [str(args.wasmtpd), "--listen", f"127.0.0.1:{port}", "--plugin", args.plugin]
    if args.config:
        argv += ["--config", str(Path(args.config).resolve())]
    measure(f"wasmtpd ({args.plugin})", argv, port, args)
    if not args.no_sink:
        port = free_port()
        with tempfile.TemporaryDirectory() as spool:
            measure("smtp-sink", smtp_sink_argv(port), port, args, cwd=spool)


if __name__ == "__main__":
    main()
