#!/usr/bin/env python3
"""The work bench/pgo profiles the server at: an instrumented wasmtpd (the binary given)
with its default configuration, under smtp-source's load, a connection a message, 1 KiB:
the sink plugin at 1, 10 and 100 sessions, and the debug printer (the README's server)
at 10. Each server is stopped gracefully (SIGTERM), so that it exits and writes its counts.

The profile is of serving, whatever the machine's compiled-component cache holds: the
plugins are compiled first into a cache of the run's own, by a start whose counts go to
a directory that is thrown away (LLVM_PROFILE_FILE).

    bench/pgo_train.py target/pgo-generate/release/wasmtpd
"""

import os
import subprocess
import sys

from benchlib import free_port, stop, wait_greeting, wasmtpd_argv, work_dir
from smtp_bench import load

WORK = [
    ("sink", [(1, 3000), (10, 5000), (100, 3000)]),
    ("debug-printer", [(10, 2000)]),
]


def serve(binary, plugin, cache, runs, env=None):
    """Starts the server with `plugin`, sends it `runs` (sessions, messages), stops it."""
    port = free_port()
    argv = wasmtpd_argv(binary, port, "--cache-dir", str(cache), "--plugin", plugin)
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_greeting(port, proc, plugin, seconds=120)
        for sessions, messages in runs:
            rate = load(port, sessions, 1024, messages, None, False)
            print(f"{plugin}: {sessions} session(s), {messages} messages, {rate:,.0f} msg/s", flush=True)
    finally:
        stop(proc, seconds=60)
    if proc.returncode != 0:
        sys.exit(f"the {plugin} server exited with {proc.returncode}: its counts may be missing")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    work = work_dir("wasmtpd-pgo-")
    cache = work / "cache"
    compiling = dict(os.environ, LLVM_PROFILE_FILE=str(work / "compiling" / "%p.profraw"))
    for plugin, _ in WORK:
        serve(binary, plugin, cache, [], env=compiling)
    for plugin, runs in WORK:
        serve(binary, plugin, cache, runs)


if __name__ == "__main__":
    main()
