"""Benchmark: what live SSE subscribers cost the engine, and that a stalled one costs nothing.

Starts `edged run` as a child process (fresh journal, synchronous=FULL) with
one definition, `bench_five`: five SIMPLE tasks bound to an in-process async
no-op handler, so each execution journals 12 history events.  This process
drives it over raw keep-alive HTTP/1.1 sockets (Trio) and runs phases that
differ only in who is watching:

- ``none``: no stream open;
- ``fast``: `--subscribers` clients on ``GET /api/events`` reading as fast as
  they can (each must receive every event of the phase: ``lost`` counts gaps);
- ``fast+stalled``: the same plus `--stalled` clients that connect with a 2 KiB
  receive buffer and never read; each must end up cut off (``cutoff`` event).

Each phase starts `--starts` executions from `--clients` concurrent clients
(closed loop) and waits until none is RUNNING (polling the search API every
20 ms; the same in every phase).  Reported per phase: wall time, completed
executions/s, daemon CPU (user+system, all threads, from /proc) per execution
and per delivered event, and the subscribers' figures.  Phases run in
interleaved rounds (`--rounds`) because the machine is shared: compare within
a round.  Load generator, subscribers and daemon share the same cores.

    .venv/bin/python benchmarks/streams.py [--starts 600] [--subscribers 8] [--stalled 4]

Prints one JSON object.  Every wait is bounded (`--timeout`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import trio
from bench_http import Connection, cpu_seconds, free_port, running_edged

EVENTS_PER_EXECUTION = 12
WORKFLOW = {
    "name": "bench_five",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [
        {"name": "bench_noop", "taskReferenceName": f"t{i}", "type": "SIMPLE"} for i in range(5)
    ],
}
HANDLERS = """
from edged.handlers import task


@task("bench_noop")
async def noop(ctx):
    return {}
"""
_RUNNING_QUERY = "/api/workflow/search?size=1&query=workflowType%20IN%20(bench_five)%20AND%20status%20IN%20(RUNNING)"


class Subscriber:
    """Reads `GET /api/events` as fast as it can and counts events (ids must rise by 1)."""

    def __init__(self) -> None:
        self.events = 0
        self.lost = 0
        self.last_id: int | None = None
        self.cut_off = False

    async def run(self, port: int, task_status: trio.TaskStatus[None]) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(b"GET /api/events HTTP/1.1\r\nHost: bench\r\n\r\n")
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            buffer += await stream.receive_some(65536)
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"stream refused: {head[:200]!r}")
        task_status.started()
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if line.startswith(b"id: "):
                    event_id = int(line[4:])
                    if self.last_id is not None and event_id != self.last_id + 1:
                        self.lost += event_id - self.last_id - 1
                    self.last_id = event_id
                    self.events += 1
                elif line == b"event: cutoff":
                    self.cut_off = True


def stalled_client(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    sock.connect(("127.0.0.1", port))
    sock.sendall(b"GET /api/events HTTP/1.1\r\nHost: bench\r\n\r\n")
    return sock


def read_for_cutoff(sock: socket.socket, timeout_s: float) -> bool:
    sock.settimeout(timeout_s)
    data = b""
    try:
        while not data.endswith(b"\r\n0\r\n\r\n"):
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
    except TimeoutError:
        pass
    finally:
        sock.close()
    return b"event: cutoff" in data


async def run_phase(
    pid: int, port: int, args: argparse.Namespace, subscribers: int, stalled: int
) -> dict[str, Any]:
    body = json.dumps({"name": "bench_five", "input": {}}).encode()
    subs = [Subscriber() for _ in range(subscribers)]
    stalled_socks: list[socket.socket] = []
    await trio.sleep(2.5)  # the previous phase's streams are noticed closed
    with trio.fail_after(args.timeout):
        async with trio.open_nursery() as nursery:
            for sub in subs:
                await nursery.start(sub.run, port)
            stalled_socks = [stalled_client(port) for _ in range(stalled)]
            await trio.sleep(0.2)  # let the stalled requests be read and subscribed
            cpu0, t0 = cpu_seconds(pid), time.perf_counter()
            remaining = [args.starts]

            async def client() -> None:
                conn = await Connection.open(port)
                while remaining[0] > 0:
                    remaining[0] -= 1
                    status, reply = await conn.request("POST", "/api/workflow", body)
                    if status != 200:
                        raise RuntimeError(f"start failed: {status} {reply[:200]!r}")

            async with trio.open_nursery() as clients:
                for _ in range(args.clients):
                    clients.start_soon(client)
            poller = await Connection.open(port)
            while True:
                status, reply = await poller.request("GET", _RUNNING_QUERY)
                if status == 200 and json.loads(reply)["totalHits"] == 0:
                    break
                await trio.sleep(0.02)
            wall_s, cpu_s = time.perf_counter() - t0, cpu_seconds(pid) - cpu0
            expected = args.starts * EVENTS_PER_EXECUTION
            while any(s.events < expected for s in subs):  # noqa: ASYNC110 - counters of N tasks
                await trio.sleep(0.02)
            nursery.cancel_scope.cancel()
    cut_off = sum(
        [await trio.to_thread.run_sync(read_for_cutoff, sock, 5.0) for sock in stalled_socks]
    )
    executions = args.starts
    delivered = sum(s.events for s in subs)
    return {
        "subscribers": subscribers,
        "stalled": stalled,
        "wall_s": round(wall_s, 3),
        "executions_per_s": round(executions / wall_s, 1),
        "daemon_cpu_us_per_execution": round(cpu_s / executions * 1e6),
        "daemon_cpu_us_per_delivered_event": round(cpu_s / delivered * 1e6, 1)
        if delivered
        else None,
        "events_per_subscriber": sorted({s.events for s in subs}),
        "lost": sum(s.lost for s in subs),
        "stalled_cut_off": cut_off,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--starts", type=int, default=600)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--subscribers", type=int, default=8)
    parser.add_argument("--stalled", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="edged-bench-streams-") as tmp:
        root = Path(tmp)
        (root / "defs").mkdir()
        (root / "defs" / "bench_five.json").write_text(json.dumps(WORKFLOW))
        (root / "bench_stream_handlers.py").write_text(HANDLERS)
        (root / "edged.yaml").write_text(
            json.dumps(
                {
                    "python": {"paths": [str(root)], "modules": ["bench_stream_handlers"]},
                    "log_level": "WARNING",
                    # closed streams linger until a write fails (keep-alive 1 s):
                    # room for two phases' worth, and a pause between phases
                    "streams": {
                        "max_clients": 2 * (args.subscribers + args.stalled) + 2,
                        "keepalive_s": 1,
                    },
                }
            )
        )
        port = free_port()
        with running_edged(root, port) as proc:
            plan = [("none", 0, 0), ("fast", args.subscribers, 0)]
            plan.append(("fast+stalled", args.subscribers, args.stalled))
            rounds = []
            trio.run(run_phase, proc.pid, port, args, 0, 0)  # warm-up
            for _ in range(args.rounds):
                rounds.append(
                    {name: trio.run(run_phase, proc.pid, port, args, s, st) for name, s, st in plan}
                )
    print(
        json.dumps(
            {
                "benchmark": "streams",
                "workload": f"{args.starts} executions of 5 no-op SIMPLE tasks "
                f"({EVENTS_PER_EXECUTION} events each), {args.clients} closed-loop HTTP clients",
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "load_avg_1m": round(os.getloadavg()[0], 2),
                    "shared": True,
                },
                "rounds": rounds,
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
