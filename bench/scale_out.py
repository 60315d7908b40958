#!/usr/bin/env python3
"""Several wasmtpd nodes behind HAProxy, simulated on this machine (issue 21).

Starts Debian's redis-server, three wasmtpd nodes and HAProxy on loopback ports. HAProxy
listens on one port and sends each connection to a node with the PROXY protocol v2,
taking a node out when its /readyz stops answering 200. The nodes count the per-address
connection rate together in Redis (`limits.rates_redis`), and each runs the chain
`policy` (a plugin file in one plugin directory the three share) then debug-printer
(each node's output goes to a file, so that every accepted message can be found).

It measures, in one run:
1. throughput: smtp-source through HAProxy to the three nodes, next to smtp-source to
   one node alone (median of --repeat runs, taking turns);
2. the per-address limit across the nodes: a client (whose address HAProxy rewrites to
   192.0.2.77; loopback is exempt from per-address limits) opens connections back to
   back, round robin over the nodes; how many were let in, against the limit;
3. a plugin changed on all nodes: `policy.wasm` in the shared directory is replaced
   (sink, which takes everything, by filter, which refuses one sender); how long each
   node takes to serve the new version;
4. nodes going away under load: a Python client sends --messages messages at 10
   sessions through HAProxy, each on a new connection; a third of the way in one node
   gets SIGTERM (then SIGKILL a second later if it is still there), two thirds of the
   way in another gets SIGKILL. Every message's outcome is counted (250, 4xx, 5xx, or
   the connection lost before a reply: the client retries those as it does 4xx), and
   every 250 is looked for in the nodes' output: a message answered 250 and found
   nowhere is lost;
5. the limit again with each node counting alone (no rates_redis), for comparison.

Everything runs in the default configuration but for what is named in the node file
(the PROXY listener, the rate limit, rates_redis, the plugin chain). Nothing is pinned.

    bench/run scale-out               # builds wasmtpd (release), installs what is missing
    bench/scale_out.py --help
"""

import argparse
import collections
import os
import shutil
import signal
import smtplib
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from benchlib import PLUGINS, WASMTPD, free_port, stop, wait_greeting

REMOTE = "192.0.2.77"
# The loopback address the limit phase's client connects from; HAProxy names it REMOTE.
CLIENT = "127.0.0.5"


def wait_until(check, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    sys.exit(f"timed out waiting for {what}")


def http_status(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


class Node:
    def __init__(self, n, work, plugin_dir, redis_port, limit, shared):
        self.name = f"node{n}"
        self.proxy_port, self.plain_port, self.metrics_port = free_port(), free_port(), free_port()
        rates = f'rates_redis = "redis://127.0.0.1:{redis_port}/0"\n' if shared else ""
        config = work / f"{self.name}.toml"
        config.write_text(
            f'hostname = "{self.name}"\n'
            f'metrics = "127.0.0.1:{self.metrics_port}"\n'
            f'cache_dir = "{work}/cache"\n'
            f'spool_dir = "{work}/spool-{self.name}"\n'
            "[[listener]]\n"
            f'address = "127.0.0.1:{self.proxy_port}"\n'
            'plugins = ["policy", "debug-printer"]\n'
            "[listener.proxy_protocol]\n"
            'trusted = ["127.0.0.1"]\n'
            "[[listener]]\n"
            f'address = "127.0.0.1:{self.plain_port}"\n'
            'plugins = ["policy", "debug-printer"]\n'
            "[limits]\n"
            f"connections_per_ip_per_minute = {limit}\n"
            f"{rates}"
            "shutdown_grace_secs = 5\n"
            "[plugin.policy]\n"
            f'source = "{plugin_dir}/policy.wasm"\n'
            "[plugin.policy.settings]\n"
            'blocked_senders = "probe@blocked.example"\n'
        )
        self.output = work / f"{self.name}-{'shared' if shared else 'alone'}.out"
        self.log = work / f"{self.name}-{'shared' if shared else 'alone'}.log"
        with open(self.output, "w") as out, open(self.log, "w") as log:
            self.proc = subprocess.Popen([str(WASMTPD), "--config", str(config)], stdout=out, stderr=log)
        wait_greeting(self.plain_port, self.proc, self.name)
        wait_until(lambda: http_status(self.metrics_port, "/readyz") == 200, 30, f"{self.name} ready")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        stop(self.proc)


def start_redis(work):
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work,
    )
    wait_until(lambda: _answers(port), 10, "redis-server")
    return proc, port


def _answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def start_haproxy(work, nodes):
    port = free_port()
    servers = "\n".join(
        f"    server {n.name} 127.0.0.1:{n.proxy_port} check port {n.metrics_port}" for n in nodes
    )
    cfg = work / "haproxy.cfg"
    cfg.write_text(
        "defaults\n"
        "    mode tcp\n"
        "    timeout connect 5s\n"
        "    timeout client 6m\n"
        "    timeout server 6m\n"
        "    retries 3\n"
        "    option redispatch\n"
        "frontend smtp\n"
        f"    bind 127.0.0.1:{port}\n"
        # A client address that is not loopback, which the per-address limits count.
        f"    tcp-request connection set-src ipv4({REMOTE}) if {{ src {CLIENT} }}\n"
        "    default_backend wasmtpd\n"
        "backend wasmtpd\n"
        "    balance roundrobin\n"
        "    option httpchk GET /readyz\n"
        "    http-check expect status 200\n"
        "    default-server send-proxy-v2 inter 500 fall 1 rise 2\n"
        f"{servers}\n"
    )
    log = open(work / "haproxy.log", "w")
    proc = subprocess.Popen(["/usr/sbin/haproxy", "-db", "-f", str(cfg)], stdout=log, stderr=log)
    wait_greeting(port, proc, "haproxy")
    time.sleep(1.5)  # its checks see every node up (rise 2, every 500 ms)
    return proc, port


def smtp_source(port, sessions, messages, size=1024):
    argv = [
        "smtp-source", "-s", str(sessions), "-m", str(messages), "-l", str(size),
        "-f", "sender@example.org", "-t", "rcpt@example.com", "-M", "client.test",
        f"127.0.0.1:{port}",
    ]
    start = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"smtp-source failed on port {port}: {result.stderr or result.stdout}")
    return messages / elapsed


def throughput(args, haproxy_port, node):
    # Warm: every node's instances, HAProxy's connections, the page cache.
    smtp_source(haproxy_port, args.sessions, 600)
    smtp_source(node.plain_port, args.sessions, 200)
    through, alone = [], []
    for _ in range(args.repeat):
        through.append(smtp_source(haproxy_port, args.sessions, args.throughput_messages))
        alone.append(smtp_source(node.plain_port, args.sessions, args.throughput_messages))
    t, a = statistics.median(through), statistics.median(alone)
    print(f"throughput, {args.sessions} sessions, 1 KiB, a connection a message (median of {args.repeat}):")
    print(f"  through HAProxy to 3 nodes  {t:8.0f} msg/s  (runs: {', '.join(f'{x:.0f}' for x in through)})")
    print(f"  one node alone              {a:8.0f} msg/s  (runs: {', '.join(f'{x:.0f}' for x in alone)})")
    print(f"  ratio                       {t / a:8.2f}")


def within_one_window(seconds_needed=20):
    """Waits, if need be, so that the next seconds fall in one clock minute (a window)."""
    left = 60 - time.time() % 60
    if left < seconds_needed:
        time.sleep(left + 0.1)


def limit_holds(haproxy_port, attempts, limit, label):
    within_one_window()
    let_in = refused = other = 0
    for _ in range(attempts):
        try:
            with socket.create_connection(("127.0.0.1", haproxy_port), timeout=5, source_address=(CLIENT, 0)) as s:
                greeting = s.recv(512).decode(errors="replace")
                if greeting.startswith("220"):
                    let_in += 1
                    s.sendall(b"QUIT\r\n")
                    s.recv(512)
                elif greeting.startswith("421"):
                    refused += 1
                else:
                    other += 1
        except OSError:
            other += 1
    print(
        f"  {label}: {attempts} connections back to back from {REMOTE}, round robin over 3 nodes, "
        f"limit {limit}/min: {let_in} let in, {refused} refused 421, {other} other"
    )
    return let_in


def probe_blocked(port):
    """The reply to MAIL FROM the sender the new plugin version refuses."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as c:
            c.ehlo("probe.test")
            code, _ = c.mail("probe@blocked.example")
            return code
    except (OSError, smtplib.SMTPException):
        return None


def plugin_change(plugin_dir, nodes):
    for node in nodes:
        assert probe_blocked(node.plain_port) == 250, f"{node.name} refuses before the change"
    staged = plugin_dir / ".policy.wasm.new"
    shutil.copyfile(PLUGINS / "filter.wasm", staged)
    served = {}

    def watch(node):
        while time.monotonic() - started < 10:
            if probe_blocked(node.plain_port) == 550:
                served[node.name] = time.monotonic() - started
                return
            time.sleep(0.01)

    started = time.monotonic()
    os.rename(staged, plugin_dir / "policy.wasm")
    threads = [threading.Thread(target=watch, args=(n,)) for n in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    times = ", ".join(f"{n.name} {served[n.name] * 1000:.0f} ms" if n.name in served else f"{n.name} not within 10 s"
                      for n in nodes)
    print(f"plugin changed in the shared directory (sink -> filter), serving the new version: {times}")
    # Back to the version that takes everything, for the load below.
    shutil.copyfile(PLUGINS / "sink.wasm", staged)
    os.rename(staged, plugin_dir / "policy.wasm")
    wait_until(lambda: all(probe_blocked(n.plain_port) == 250 for n in nodes), 10, "sink back on every node")


def send_one(port, n):
    """One message on a new connection: its outcome."""
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as c:
            c.sendmail("sender@example.org", ["rcpt@example.com"], f"Subject: scale-out {n}\r\n\r\nmessage {n}\r\n")
            return "250"
    except smtplib.SMTPRecipientsRefused as e:
        code = next(iter(e.recipients.values()))[0]
        return f"{code // 100}xx"
    except smtplib.SMTPResponseException as e:
        return f"{e.smtp_code // 100}xx"
    except (OSError, smtplib.SMTPException):
        return "lost connection"


def nodes_going_away(args, haproxy_port, nodes):
    total = args.messages
    outcomes = {}
    counter = iter(range(total))
    lock = threading.Lock()

    def worker():
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                return
            outcomes[n] = send_one(haproxy_port, n)

    threads = [threading.Thread(target=worker) for _ in range(args.sessions)]
    started = time.monotonic()
    for t in threads:
        t.start()
    events = []
    wait_until(lambda: len(outcomes) >= total // 3, 600, "a third of the messages")
    nodes[1].proc.send_signal(signal.SIGTERM)
    events.append(f"{nodes[1].name} SIGTERM at message {len(outcomes)}")
    time.sleep(1)
    if nodes[1].alive():
        nodes[1].proc.kill()
        events.append(f"{nodes[1].name} SIGKILL a second later")
    else:
        events.append(f"{nodes[1].name} had exited (code {nodes[1].proc.returncode}) within a second")
    wait_until(lambda: len(outcomes) >= 2 * total // 3, 600, "two thirds of the messages")
    nodes[2].proc.kill()
    events.append(f"{nodes[2].name} SIGKILL at message {len(outcomes)}")
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    printed = collections.Counter()
    for node in nodes:
        for line in node.output.read_text(errors="replace").splitlines():
            if line.startswith("Subject: scale-out "):
                printed[int(line.split()[-1])] += 1
    counts = collections.Counter(outcomes.values())
    accepted = [n for n, o in outcomes.items() if o == "250"]
    lost = [n for n in accepted if printed[n] == 0]
    extra = [n for n, o in outcomes.items() if o != "250" and printed[n] > 0]
    print(f"nodes going away under load: {total} messages at {args.sessions} sessions through HAProxy in {elapsed:.1f} s")
    print(f"  {'; '.join(events)}")
    for outcome in ["250", "4xx", "5xx", "lost connection"]:
        print(f"  {outcome:16} {counts.get(outcome, 0):6}")
    print(f"  answered 250 and found in no node's output (lost): {len(lost)}")
    print(f"  not answered 250 but handled by a node (the client's retry makes a duplicate): {len(extra)}")
    print(f"  handled twice: {sum(1 for c in printed.values() if c > 1)}")
    return len(lost)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--throughput-messages", type=int, default=3000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--limit", type=int, default=30, help="connections a minute per address")
    parser.add_argument("--messages", type=int, default=6000, help="messages in the nodes-going-away phase")
    args = parser.parse_args()
    for tool in ["redis-server", "smtp-source", "/usr/sbin/haproxy"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing (bench/run scale-out installs it)")

    work = Path(tempfile.mkdtemp(prefix="wasmtpd-scale-out-"))
    plugin_dir = work / "plugins"
    plugin_dir.mkdir()
    shutil.copyfile(PLUGINS / "sink.wasm", plugin_dir / "policy.wasm")
    redis, redis_port = start_redis(work)
    nodes, haproxy = [], None
    lost = 0
    try:
        nodes = [Node(n, work, plugin_dir, redis_port, args.limit, shared=True) for n in (1, 2, 3)]
        haproxy, haproxy_port = start_haproxy(work, nodes)
        print(f"HAProxy {subprocess.run(['/usr/sbin/haproxy', '-v'], capture_output=True, text=True).stdout.split()[2]}, "
              f"3 wasmtpd nodes, redis-server, on {os.cpu_count()} cores; work files in {work}")
        throughput(args, haproxy_port, nodes[0])
        print("per-address connection rate:")
        limit_holds(haproxy_port, 4 * args.limit, args.limit, "counted together in Redis")
        plugin_change(plugin_dir, nodes)
        lost = nodes_going_away(args, haproxy_port, nodes)
        for node in nodes:
            node.stop()
        haproxy.terminate()
        haproxy.wait()
        nodes = [Node(n, work, plugin_dir, redis_port, args.limit, shared=False) for n in (1, 2, 3)]
        haproxy, haproxy_port = start_haproxy(work, nodes)
        print("per-address connection rate, again:")
        limit_holds(haproxy_port, 4 * args.limit, args.limit, "each node counting alone")
    finally:
        for node in nodes:
            node.stop()
        if haproxy:
            haproxy.terminate()
            haproxy.wait()
        redis.terminate()
        redis.wait()
    if lost:
        # The nodes' logs and spools stay for a look at what was lost.
        sys.exit(f"{lost} messages answered 250 were lost; the nodes' files are in {work}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
