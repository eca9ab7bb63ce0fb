"""Micro-benchmark of edged's HTTP server: GET /health over keep-alive.

Runs the real server (h11 + Trio, Conductor routes, router, JSON encoding) in a
child process and a load generator in this one: N concurrent clients, each on
one keep-alive connection, each sending the next request as soon as the
previous answer is in.  Prints one JSON object: requests/s, latency
percentiles, and the server's CPU time per request (from /proc), which is the
figure that carries over to a Pi better than requests/s.

    .venv/bin/python benchmarks/http_server.py [--clients 8] [--seconds 5]

Server and load generator share the machine: quote the CPU figure beside the
throughput, and the machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, cast

import trio

REQUEST = b"GET /health HTTP/1.1\r\nHost: bench\r\n\r\n"


class _HealthOnlyEngine:
    async def health(self) -> dict[str, Any]:
        return {"healthy": True}


async def _serve(port_file: Path) -> None:
    from edged.api.conductor import conductor_routes
    from edged.api.engine_api import EngineAPI
    from edged.api.http import App, serve_http

    app = App(conductor_routes(cast(EngineAPI, _HealthOnlyEngine())))
    async with trio.open_nursery() as nursery:
        _, port = await nursery.start(serve_http, app, "127.0.0.1", 0)
        # Tiny and once, before any load: blocking here costs nothing measured.
        port_file.write_text(str(port))  # noqa: ASYNC240


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _client(port: int, stop_at: float, latencies_s: list[float]) -> None:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        # Learn the (fixed) response size from the first answer.
        await stream.send_all(REQUEST)
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            buffer += await stream.receive_some(65536)
        head, _, _ = buffer.partition(b"\r\n\r\n")
        length = next(
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length")
        )
        size = len(head) + 4 + length
        pending = len(buffer) - size
        while trio.current_time() < stop_at:
            sent_at = time.perf_counter()
            await stream.send_all(REQUEST)
            while pending < size:
                pending += len(await stream.receive_some(65536))
            pending -= size
            latencies_s.append(time.perf_counter() - sent_at)


async def _load(port: int, clients: int, seconds: float) -> list[float]:
    latencies_s: list[float] = []
    stop_at = trio.current_time() + seconds
    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(_client, port, stop_at, latencies_s)
    return latencies_s


def _percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(fraction * len(sorted_values)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        trio.run(_serve, args.serve)
        return

    port_file = Path(f"/tmp/edged-bench-http-{os.getpid()}.port")
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(repo)}
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)], env=env)
    try:
        deadline = time.monotonic() + 10
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("server did not start")
            time.sleep(0.01)
        port = int(port_file.read_text())
        idle_rss_mb = _rss_mb(server.pid)
        cpu_before_s = _cpu_seconds(server.pid)
        latencies_s = trio.run(_load, port, args.clients, args.seconds)
        server_cpu_s = _cpu_seconds(server.pid) - cpu_before_s
        loaded_rss_mb = _rss_mb(server.pid)
    finally:
        server.terminate()
        server.wait()
        port_file.unlink(missing_ok=True)

    latencies_s.sort()
    count = len(latencies_s)
    print(
        json.dumps(
            {
                "benchmark": "http_server GET /health keep-alive",
                "clients": args.clients,
                "seconds": args.seconds,
                "requests": count,
                "requests_per_s": round(count / args.seconds),
                "latency_ms": {
                    "p50": round(_percentile(latencies_s, 0.50) * 1000, 3),
                    "p99": round(_percentile(latencies_s, 0.99) * 1000, 3),
                    "max": round(latencies_s[-1] * 1000, 3),
                },
                "server_cpu_us_per_request": round(server_cpu_s / count * 1e6, 1),
                "server_rss_mb": {
                    "idle": round(idle_rss_mb, 1),
                    "after_load": round(loaded_rss_mb, 1),
                },
                "machine": {
                    "platform": platform.platform(),
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
