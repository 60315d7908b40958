#!/usr/bin/env python3
"""Resident memory of a server whose tenants each run a big plugin (the bench's Python
and JavaScript plugins, bench/plugins/): 1, 10 and 20 tenants on one listener that routes
by recipient domain, each tenant with a plugin of its own. Two cases:

- `same`: every tenant's plugin is the same file (a site that gives each tenant the same
  filter with its own settings);
- `distinct`: every tenant's plugin is a different file (here the same component with a
  custom section naming the tenant appended, so that no two files are alike and nothing
  can be shared by content).

For each, the server's resident memory after loading (every plugin compiled into the
cache beforehand with `wasmtpd --compile`, as a deployment does), after every tenant has
received messages at 4 sessions at once, and its peak; then the cost of each tenant over
the first. wasmtpd runs with its default configuration but for the tenants; unpinned.
The instances column says where instances come from: with the default 1,024
connections, 7 tenants or more on a routing listener need more instances than the pool
holds, so they are made on demand (see the README).

    bench/run tenants-memory     # builds everything (bench/setup-languages) and runs this
"""

import argparse
import subprocess
import sys
import threading
from pathlib import Path

from benchlib import ROOT, WASMTPD, free_port, work_dir
from smtp_bench import Server

BENCH_PLUGINS = ROOT / "target" / "plugins" / "bench"
CACHE = ROOT / "target" / "bench" / "tenants-memory-cache"


def custom_section(name, payload):
    """A WebAssembly custom section (id 0): LEB128 size, the name, the payload."""
    def leb(n):
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)
    body = leb(len(name)) + name + payload
    return b"\x00" + leb(len(body)) + body


def plugin_files(plugin, tenants, distinct, work):
    source = BENCH_PLUGINS / plugin
    if not distinct:
        return [source] * tenants
    files = []
    for i in range(tenants):
        path = work / f"t{i}-{plugin}"
        path.write_bytes(source.read_bytes() + custom_section(b"bench-tenant", str(i).encode()))
        files.append(path)
    return files


def config(port, files):
    text = f'[[listener]]\naddress = "127.0.0.1:{port}"\nroute_by_domain = true\n'
    for i, file in enumerate(files):
        text += (f'[[tenant]]\nname = "t{i}"\ndomains = ["t{i}.example"]\nplugins = ["p{i}"]\n'
                 f'[plugin.p{i}]\nsource = "{file}"\nmemory_mib = 128\n')
    return text


def status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field}")


def send(port, tenant, messages, sessions):
    argv = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", "1024",
            "-f", "a@example.org", "-t", f"b@t{tenant}.example", f"127.0.0.1:{port}"]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        sys.exit(f"smtp-source to tenant {tenant} failed: {result.stderr or result.stdout}")


def measure(plugin, tenants, distinct, messages, work):
    files = plugin_files(plugin, tenants, distinct, work)
    subprocess.run([str(WASMTPD), "--cache-dir", str(CACHE), "--compile", *sorted(set(map(str, files)))],
                   check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    path = work / "wasmtpd.toml"
    path.write_text(config(port, files))
    argv = [str(WASMTPD), "--config", str(path), "--cache-dir", str(CACHE), "--hostname", "bench.test"]
    log = work / "wasmtpd.log"
    server = Server(f"{tenants} tenants", argv, port, None, seconds=600, stderr=log)
    allocator = "on demand" if "made on demand" in log.read_text() else "pool"
    try:
        loaded = status(server.proc.pid, "VmRSS")
        # Every tenant at once, 4 sessions each, as busy tenants would be.
        threads = [threading.Thread(target=send, args=(port, i, messages, 4)) for i in range(tenants)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return loaded, status(server.proc.pid, "VmRSS"), status(server.proc.pid, "VmHWM"), allocator
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tenants", default="1,10,20", help="tenant counts (default 1,10,20)")
    parser.add_argument("--plugins", default="js_accept.wasm,python_accept.wasm")
    parser.add_argument("--messages", type=int, default=100, help="messages each tenant receives (default 100)")
    args = parser.parse_args()
    work = work_dir("wasmtpd-tenants-memory-")
    counts = [int(n) for n in args.tenants.split(",")]
    print(f"resident MiB; each tenant receives {args.messages} messages at 4 sessions, all tenants at once; unpinned")
    print(f"{'plugin':>20} {'files':>8} {'tenants':>7} {'instances':>10} {'loaded':>7} {'after mail':>10} {'peak':>6}"
          f" {'MiB a tenant more: loaded':>26} {'after mail':>10}")
    for plugin in args.plugins.split(","):
        for distinct in (False, True):
            first = None
            for tenants in counts:
                loaded, after, peak, allocator = measure(plugin, tenants, distinct, args.messages, work)
                first = first or (tenants, loaded, after)
                more = ""
                if tenants > first[0]:
                    n = tenants - first[0]
                    more = f"{(loaded - first[1]) / n:>26.1f} {(after - first[2]) / n:>10.1f}"
                kind = "distinct" if distinct else "same"
                print(f"{plugin:>20} {kind:>8} {tenants:>7} {allocator:>10} {loaded:>7.1f} {after:>10.1f} {peak:>6.1f} {more}",
                      flush=True)


if __name__ == "__main__":
    main()
