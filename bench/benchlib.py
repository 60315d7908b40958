"""What the benchmark scripts share: the repository's paths, free ports, waiting for a
server to greet, stopping one."""

import atexit
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WASMTPD = ROOT / "target" / "release" / "wasmtpd"
PLUGINS = ROOT / "target" / "plugins" / "wasm32-wasip2" / "release"


def stop(proc, seconds=10):
    """SIGTERM, and SIGKILL if it has not exited within `seconds`."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def work_dir(prefix):
    """A fresh directory for a run's files, removed when the script exits normally, through
    sys.exit, an exception or Ctrl-C; a SIGTERM, SIGHUP or SIGKILL leaves it. tenants_memory
    alone writes 600 MB of copies."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, work, ignore_errors=True)
    return work


def wasmtpd_argv(binary, port, *args):
    """The command line of a benchmarked wasmtpd on 127.0.0.1:`port` (a number, or a
    "{port}" placeholder), its default configuration, and `args`."""
    return [str(binary), "--listen", f"127.0.0.1:{port}", "--hostname", "bench.test", *args]


def smtp_sink_argv(port):
    """postfix's smtp-sink on 127.0.0.1:`port` (a number, or a "{port}" placeholder), the
    server the benchmarks compare with: as nobody, a listen backlog of 1,024."""
    return ["smtp-sink", "-u", "nobody", f"127.0.0.1:{port}", "1024"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_greeting(port, proc=None, name="server", seconds=30):
    """Waits until the server on `port` sends its greeting; exits if `proc` dies first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"{name} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.recv(512)
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{name} is not listening on {port}")
