"""Benchmark of the Conductor worker protocol: poll-to-update round trips over HTTP.

Starts `edged run` as a child process (fresh journal, synchronous=FULL as
always) with one definition, `bench_ext`: a single SIMPLE task that no
in-process handler serves, so every task waits for an external worker.  This
process plays the workers, with raw HTTP/1.1 on keep-alive Trio sockets (an
HTTP client library would cost more CPU than the server under test):

1. **prefill**: `--prefill` executions are started over HTTP (8 connections),
   so the queue never runs dry while measuring.
2. **round trips**: `--workers` concurrent workers, each doing what the
   conductor-python SDK does: `GET /api/tasks/poll/batch/bench_ext_t?count=1`
   and then `POST /api/tasks/update-v2` with COMPLETED, which answers with the
   next task, again and again (a 204 sends the worker back to batch poll).
   A round trip = one task handed out (journaled IN_PROGRESS) and its result
   journaled (which also completes its one-task workflow).  Runs for
   `--seconds` or until the queue is empty.

Reports round trips/s, the update-v2 round-trip latency (p50/p99) and daemon
CPU time per round trip from /proc (user + system, all threads).  The load
generator shares the machine with the daemon (and, on the development
machine, with other people's work): quote the CPU figure beside throughput.

    .venv/bin/python benchmarks/worker_protocol.py [--workers 4] [--seconds 5]

Prints one JSON object.  Every wait is bounded (`--timeout`).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import trio
from bench_http import Connection, cpu_seconds, free_port, machine_info, percentile, running_edged

TASK = "bench_ext_t"
WORKFLOW = {
    "name": "bench_ext",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [
        {
            "name": TASK,
            "taskReferenceName": "t",
            "type": "SIMPLE",
            "inputParameters": {"n": "${workflow.input.n}"},
        }
    ],
}
TASKDEFS = [{"name": TASK, "retryCount": 0, "responseTimeoutSeconds": 600}]


async def _prefill(port: int, count: int) -> float:
    began = time.perf_counter()
    numbers = iter(range(count))

    async def client() -> None:
        conn = await Connection.open(port)
        for n in numbers:
            body = json.dumps({"name": "bench_ext", "input": {"n": n}}).encode()
            status, text = await conn.request("POST", "/api/workflow", body)
            if status != 200:
                raise SystemExit(f"start failed: {status} {text[:200]!r}")

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(client)
    return count / (time.perf_counter() - began)


async def _round_trips(port: int, pid: int, args: argparse.Namespace) -> dict[str, Any]:
    done = 0
    latencies: list[float] = []
    batch_polls = 0
    empty_polls = 0
    stop_at = time.perf_counter() + args.seconds

    async def worker(wid: int) -> None:
        nonlocal done, batch_polls, empty_polls
        conn = await Connection.open(port)
        poll_path = f"/api/tasks/poll/batch/{TASK}?count=1&timeout=100&workerid=bench{wid}"
        task: dict[str, Any] | None = None
        while time.perf_counter() < stop_at:
            if task is None:
                batch_polls += 1
                status, body = await conn.request("GET", poll_path)
                got = json.loads(body) if status == 200 else []
                if not got:
                    empty_polls += 1
                    if empty_polls > 3 * args.workers:
                        return  # the queue ran dry
                    continue
                task = got[0]
            assert task is not None
            result = {
                "workflowInstanceId": task["workflowInstanceId"],
                "taskId": task["taskId"],
                "status": "COMPLETED",
                "outputData": {"doubled": 2 * task["inputData"]["n"]},
                "workerId": f"bench{wid}",
            }
            sent = time.perf_counter()
            status, body = await conn.request(
                "POST", "/api/tasks/update-v2", json.dumps(result).encode()
            )
            latencies.append(time.perf_counter() - sent)
            if status not in (200, 204):
                raise SystemExit(f"update-v2 failed: {status} {body[:200]!r}")
            done += 1
            task = json.loads(body) if status == 200 else None

    cpu0 = cpu_seconds(pid)
    began = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for wid in range(args.workers):
            nursery.start_soon(worker, wid)
    elapsed = time.perf_counter() - began
    cpu = cpu_seconds(pid) - cpu0
    return {
        "round_trips": done,
        "seconds": round(elapsed, 2),
        "round_trips_per_s": round(done / elapsed, 1),
        "daemon_cpu_us_per_round_trip": round(cpu / max(1, done) * 1e6),
        "update_v2_latency_ms": {
            "p50": round(percentile(latencies, 0.5) * 1000, 2),
            "p99": round(percentile(latencies, 0.99) * 1000, 2),
        }
        if latencies
        else {},
        "batch_polls": batch_polls,
        "empty_polls": empty_polls,
    }


async def _bench(pid: int, port: int, args: argparse.Namespace) -> dict[str, Any]:
    with trio.fail_after(args.timeout):
        starts_per_s = await _prefill(port, args.prefill)
    with trio.fail_after(args.timeout + args.seconds):
        result = await _round_trips(port, pid, args)
    return {"prefill_starts_per_s": round(starts_per_s, 1), **result}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--prefill", type=int, default=8000)
    parser.add_argument("--timeout", type=float, default=120.0, help="bound on every wait, s")
    parser.add_argument("--profile", help="write a cProfile of the daemon to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="edged-bench-workers-") as tmp:
        work = Path(tmp)
        (work / "defs").mkdir()
        (work / "defs" / "bench_ext.json").write_text(json.dumps(WORKFLOW))
        (work / "defs" / "taskdefs.json").write_text(json.dumps(TASKDEFS))
        (work / "edged.yaml").write_text(json.dumps({"log_level": "WARNING"}))
        port = free_port()
        with running_edged(work, port, profile=args.profile) as daemon:
            result = trio.run(_bench, daemon.pid, port, args)

    out = {
        "benchmark": "worker_protocol: batch poll + update-v2 round trips over HTTP, real edged run",
        "workers": args.workers,
        **result,
        "machine": machine_info(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
