"""What the HTTP benchmarks share: a real `edged run` child, a keep-alive client, /proc readings.

`running_edged` starts ``python -m edged.cli run`` (or the same under cProfile, counting
thread CPU time) on a free loopback port and waits, bounded, until ``ready_path``
answers 200; a child that exits first or a timeout ends the benchmark with the tail of
its log; on the way out the child gets SIGTERM (SIGKILL after 30 s).  `Connection` is one keep-alive HTTP/1.1 connection that reads only
Content-Length responses (all the daemon's JSON answers): cheap enough that the load
generator does not hide the daemon's costs.  CPU and RSS figures come from /proc, so
they are the child's own, whatever else runs on the machine.
"""

from __future__ import annotations

import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import trio

REPO = Path(__file__).resolve().parent.parent

# Thread CPU time, not wall time: on a shared machine wall-clock profiles mostly
# measure waiting for a core (and for the GIL), not the code.
_PROFILED = """
import cProfile, sys, time
from edged.cli import main
profile = cProfile.Profile(time.thread_time)
sys.argv = ["edged", *sys.argv[1:]]
profile.enable()
try:
    main()
finally:
    profile.disable()
    profile.dump_stats({path!r})
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _stat_cpu_seconds(stat_path: str) -> float:
    fields = Path(stat_path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the whole process (every thread)."""
    return _stat_cpu_seconds(f"/proc/{pid}/stat")


def main_thread_cpu_seconds(pid: int) -> float:
    """The Trio loop's thread alone (its tid is the pid); the rest is journal/worker threads."""
    return _stat_cpu_seconds(f"/proc/{pid}/task/{pid}/stat")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def machine_info() -> dict[str, Any]:
    load1, load5, _ = os.getloadavg()
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_1m_5m": [round(load1, 2), round(load5, 2)],
        "shared": "other work may be running; see benchmarks/README.md",
    }


@contextmanager
def running_edged(
    work: Path,
    port: int,
    *,
    profile: str | None = None,
    ready_path: str = "/health",
    timeout_s: float = 20.0,
) -> Iterator[subprocess.Popen[bytes]]:
    """`edged run` with `work`/edged.yaml, `work`/data and `work`/defs, ready; stopped after."""
    daemon = _launch(work, port, profile, ready_path, timeout_s)
    try:
        yield daemon
    finally:
        if daemon.poll() is None:
            os.kill(daemon.pid, signal.SIGTERM)
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.kill(daemon.pid, signal.SIGKILL)
                daemon.wait()


def _launch(
    work: Path, port: int, profile: str | None, ready_path: str, timeout_s: float
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable]
    if profile:  # CPU (not wall) profile of the daemon's main thread, written at exit
        cmd += ["-c", _PROFILED.format(path=str(Path(profile).resolve())), "run"]
    else:
        cmd += ["-m", "edged.cli", "run"]
    cmd += ["--config", str(work / "edged.yaml")]
    cmd += ["--data-dir", str(work / "data"), "--listen", f"127.0.0.1:{port}"]
    cmd += ["--defs", str(work / "defs")]
    log = open(work / "daemon.log", "wb")  # noqa: SIM115 - the child owns it
    daemon = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    log.close()
    request = f"GET {ready_path} HTTP/1.1\r\nHost: b\r\n\r\n".encode()
    deadline = time.monotonic() + timeout_s
    while True:
        if daemon.poll() is not None:
            raise SystemExit((work / "daemon.log").read_text()[-2000:])
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(request)
                if s.recv(100).startswith(b"HTTP/1.1 200"):
                    return daemon
        except OSError:
            pass
        if time.monotonic() > deadline:
            daemon.kill()
            daemon.wait()
            raise SystemExit(f"edged did not become ready in {timeout_s:g} s")
        time.sleep(0.05)


class Connection:
    """One keep-alive HTTP/1.1 connection; responses with Content-Length only."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buffer = b""

    @classmethod
    async def open(cls, port: int) -> Connection:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(stream)

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Length: {len(body)}\r\n"
        if body:
            head += "Content-Type: application/json\r\n"
        await self.stream.send_all(head.encode() + b"\r\n" + body)
        return await self.read_response()

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        return await self.request("POST", path, body)

    async def read_response(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += await self._receive()
        raw_head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lines = raw_head.split(b"\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(rest) < length:
            rest += await self._receive()
        self.buffer = rest[length:]
        return int(lines[0].split()[1]), rest[:length]

    async def _receive(self) -> bytes:
        chunk = await self.stream.receive_some(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        return bytes(chunk)
