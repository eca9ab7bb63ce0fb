"""Benchmark of edged's HTTP API end to end: a real `edged run`, workflow starts over HTTP.

Starts `edged run` as a child process (fresh journal in a temporary
directory, synchronous=FULL as always) with one definition, `bench_one`: a
single SIMPLE task bound to an in-process async no-op handler.  This process
is the load generator: raw HTTP/1.1 over keep-alive Trio sockets (an HTTP
client library would cost more CPU than the server under test) plus one
Server-Sent Events connection to `/api/events?name=bench_one` that tells when
each execution COMPLETED.  Three phases:

1. **warm-up**: `--warmup` starts, not measured.
2. **latency**: open loop at `--rate` starts/s for `--latency-starts` starts
   (a start is sent on schedule whether or not earlier ones answered).
   Start-to-completion = from just before the POST is written to the moment
   the COMPLETED event arrives on the stream; also the POST's own round trip.
3. **throughput**: `--clients` concurrent keep-alive clients, each sending the
   next `POST /api/workflow` as soon as the previous answered, for
   `--seconds`; then waits (bounded) until every execution started completed.
   Reports starts/s in the window, and completions/s over window + drain
   (completions counted from the daemon's /metrics; the SSE subscriber of
   phase 2 is closed first, so its CPU is not charged to this phase).

Daemon CPU time per start comes from /proc (user + system, all threads) over
each phase.  Load generator and daemon share the machine: quote the CPU figure
beside the throughput, and the machine it ran on.

    .venv/bin/python benchmarks/http_api.py [--rate 100] [--clients 8] [--seconds 5]

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
from bench_http import (
    Connection,
    cpu_seconds,
    free_port,
    machine_info,
    main_thread_cpu_seconds,
    percentile,
    rss_mb,
    running_edged,
)

WORKFLOW = {
    "name": "bench_one",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [
        {
            "name": "bench_noop",
            "taskReferenceName": "noop",
            "type": "SIMPLE",
            "inputParameters": {"n": "${workflow.input.n}"},
        }
    ],
}
HANDLERS = """
from edged.handlers import task


@task("bench_noop")
async def noop(ctx):
    return {"n": ctx.input.get("n")}
"""


def _ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50": round(percentile(values, 0.50) * 1000, 2),
        "p90": round(percentile(values, 0.90) * 1000, 2),
        "p99": round(percentile(values, 0.99) * 1000, 2),
        "max": round(max(values) * 1000, 2),
    }


class Completions:
    """Reads the SSE stream; records when each execution's COMPLETED event arrives."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self.failed: dict[str, str] = {}
        self.changed = trio.Event()

    async def run(self, port: int, task_status: trio.TaskStatus[None]) -> None:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(
            b"GET /api/events?name=bench_one HTTP/1.1\r\nHost: bench\r\n"
            b"Accept: text/event-stream\r\n\r\n"
        )
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            buffer += await stream.receive_some(65536)
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"stream refused: {head[:200]!r}")
        task_status.started()
        # chunked transfer framing is stripped loosely: only `data:` lines matter
        while True:
            chunk = await stream.receive_some(65536)
            if not chunk:
                raise ConnectionError("event stream ended")
            now = time.perf_counter()
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if not line.startswith(b"data:"):
                    continue
                doc = json.loads(line[5:])
                if doc.get("kind") != "WorkflowStatusChanged":
                    continue
                status = (doc.get("data") or {}).get("status")
                if status == "COMPLETED":
                    self.at[doc["workflowId"]] = now
                elif status in ("FAILED", "TERMINATED", "TIMED_OUT"):
                    self.failed[doc["workflowId"]] = status
            self.changed.set()
            self.changed = trio.Event()

    async def wait_for(self, ids: list[str], timeout_s: float) -> int:
        """Wait until every id completed (or failed); returns how many are still missing."""
        with trio.move_on_after(timeout_s):
            while any(i not in self.at and i not in self.failed for i in ids):
                await self.changed.wait()
        return sum(1 for i in ids if i not in self.at and i not in self.failed)


def _body(n: int) -> bytes:
    return json.dumps({"name": "bench_one", "input": {"n": n}}).encode()


async def _start(conn: Connection, n: int) -> tuple[str, float, float]:
    sent = time.perf_counter()
    status, body = await conn.post("/api/workflow", _body(n))
    answered = time.perf_counter()
    if status != 200:
        raise RuntimeError(f"start refused: {status} {body[:200]!r}")
    return body.decode().strip().strip('"'), sent, answered


async def _latency_phase(
    port: int, completions: Completions, rate: float, count: int, timeout_s: float
) -> dict[str, Any]:
    idle: list[Connection] = [await Connection.open(port) for _ in range(4)]
    sent_at: dict[str, float] = {}
    round_trips: list[float] = []
    lateness: list[float] = []
    connections = len(idle)

    async def one(n: int) -> None:
        nonlocal connections
        if idle:
            conn = idle.pop()
        else:
            conn = await Connection.open(port)
            connections += 1
        wid, sent, answered = await _start(conn, n)
        idle.append(conn)
        sent_at[wid] = sent
        round_trips.append(answered - sent)

    period = 1.0 / rate
    with trio.fail_after(timeout_s):
        async with trio.open_nursery() as nursery:
            t0 = trio.current_time()
            for n in range(count):
                due = t0 + n * period
                await trio.sleep_until(due)
                lateness.append(trio.current_time() - due)
                nursery.start_soon(one, n)
        missing = await completions.wait_for(list(sent_at), timeout_s)
    for conn in idle:
        await conn.stream.aclose()
    latencies = [completions.at[w] - s for w, s in sent_at.items() if w in completions.at]
    return {
        "rate_per_s": rate,
        "starts": count,
        "completed": len(latencies),
        "not_completed": missing,
        "failed": sum(1 for w in sent_at if w in completions.failed),
        "start_to_completion_ms": _ms(latencies),
        "start_request_ms": _ms(round_trips),
        "schedule_lateness_ms_p99": round(percentile(lateness, 0.99) * 1000, 2),
        "connections": connections,
    }


async def _metrics(port: int) -> dict[str, float]:
    """The daemon's /metrics as {sample with labels: value}."""
    conn = await Connection.open(port)
    try:
        await conn.stream.send_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
        status, body = await conn.read_response()
    finally:
        await conn.stream.aclose()
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    samples: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            samples[key] = float(value)
    return samples


async def _completed_count(port: int) -> int:
    """Executions COMPLETED so far, from the daemon's own /metrics."""
    samples = await _metrics(port)
    return int(samples.get('edged_executions_finished_total{status="COMPLETED"}', 0))


async def _journal_figures(port: int) -> dict[str, Any]:
    """Journal commits over the whole run, and how many were slow (disk stalls show here)."""
    samples = await _metrics(port)
    commits = samples.get("edged_journal_commit_seconds_count", 0)
    total_s = samples.get("edged_journal_commit_seconds_sum", 0)

    def above(bound: str) -> int:
        return int(commits - samples.get(f'edged_journal_commit_seconds_bucket{{le="{bound}"}}', 0))

    groups = samples.get("edged_journal_commit_group_batches_count", 0)
    return {
        "commits": int(commits),
        "mean_commit_ms": round(total_s / commits * 1000, 2) if commits else None,
        "commits_over_10ms": above("0.01"),
        "commits_over_100ms": above("0.1"),
        "commits_over_1s": above("1"),
        "engine_batches_per_commit": round(
            samples.get("edged_journal_commit_group_batches_sum", 0) / groups, 2
        )
        if groups
        else None,
    }


async def _throughput_phase(
    port: int, already_completed: int, clients: int, seconds: float, timeout_s: float
) -> dict[str, Any]:
    started: list[str] = []
    round_trips: list[float] = []

    async def client(stop_at: float) -> None:
        conn = await Connection.open(port)
        n = 0
        while trio.current_time() < stop_at:
            wid, sent, answered = await _start(conn, n)
            started.append(wid)
            round_trips.append(answered - sent)
            n += 1
        await conn.stream.aclose()

    with trio.fail_after(seconds + timeout_s):
        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            stop_at = trio.current_time() + seconds
            for _ in range(clients):
                nursery.start_soon(client, stop_at)
        window_s = time.perf_counter() - t0
        # sustained means the engine kept up: wait for every one to complete
        with trio.move_on_after(timeout_s):
            while await _completed_count(port) < already_completed + len(started):  # noqa: ASYNC110 - polls another process
                await trio.sleep(0.02)
        completed = await _completed_count(port) - already_completed
        drained_s = time.perf_counter() - t0
    return {
        "clients": clients,
        "window_s": round(window_s, 2),
        "starts": len(started),
        "starts_per_s": round(len(started) / window_s),
        "completions_per_s_incl_drain": round(completed / drained_s),
        "drain_after_window_s": round(drained_s - window_s, 2),
        "not_completed": len(started) - completed,
        "start_request_ms": _ms(round_trips),
    }


async def _bench(pid: int, port: int, args: argparse.Namespace) -> dict[str, Any]:
    completions = Completions()
    async with trio.open_nursery() as nursery:
        await nursery.start(completions.run, port)
        conn = await Connection.open(port)
        warm: list[str] = []
        with trio.fail_after(args.timeout):
            for n in range(args.warmup):
                warm.append((await _start(conn, n))[0])
            await completions.wait_for(warm, args.timeout)
        await conn.stream.aclose()

        cpu0, loop0 = cpu_seconds(pid), main_thread_cpu_seconds(pid)
        latency = await _latency_phase(
            port, completions, args.rate, args.latency_starts, args.timeout
        )
        latency["daemon_cpu_us_per_start"] = round(
            (cpu_seconds(pid) - cpu0) / args.latency_starts * 1e6
        )
        latency["daemon_loop_thread_cpu_us_per_start"] = round(
            (main_thread_cpu_seconds(pid) - loop0) / args.latency_starts * 1e6
        )
        # the stream's subscriber costs the daemon CPU too: gone for the throughput phase
        nursery.cancel_scope.cancel()
    await trio.sleep(0.2)
    done_before = await _completed_count(port)
    cpu0, loop0 = cpu_seconds(pid), main_thread_cpu_seconds(pid)
    own0 = time.process_time()
    throughput = await _throughput_phase(
        port, done_before, args.clients, args.seconds, args.timeout
    )
    starts = max(1, throughput["starts"])
    throughput["load_generator_cpu_us_per_start"] = round(
        (time.process_time() - own0) / starts * 1e6
    )
    throughput["daemon_cpu_us_per_start"] = round((cpu_seconds(pid) - cpu0) / starts * 1e6)
    throughput["daemon_loop_thread_cpu_us_per_start"] = round(
        (main_thread_cpu_seconds(pid) - loop0) / starts * 1e6
    )
    return {
        "latency_open_loop": latency,
        "throughput_closed_loop": throughput,
        "journal_whole_run": await _journal_figures(port),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=100.0, help="open-loop starts/s")
    parser.add_argument("--latency-starts", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=60.0, help="bound on every wait, s")
    parser.add_argument("--profile", help="write a cProfile of the daemon to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="edged-bench-http-") as tmp:
        work = Path(tmp)
        (work / "bench_handlers.py").write_text(HANDLERS)
        (work / "defs").mkdir()
        (work / "defs" / "bench_one.json").write_text(json.dumps(WORKFLOW))
        (work / "edged.yaml").write_text(
            json.dumps(
                {
                    "python": {"paths": [str(work)], "modules": ["bench_handlers"]},
                    "log_level": "WARNING",
                    "api": {"max_connections": 256},
                }
            )
        )
        port = free_port()
        with running_edged(work, port, profile=args.profile, ready_path="/health/ready") as daemon:
            idle_rss = rss_mb(daemon.pid)
            result = trio.run(_bench, daemon.pid, port, args)
            loaded_rss = rss_mb(daemon.pid)

    out = {
        "benchmark": "http_api: one-task workflows started over HTTP, real edged run",
        **result,
        "daemon_rss_mb": {"idle": round(idle_rss, 1), "after_load": round(loaded_rss, 1)},
        "targets": {
            "starts_per_s": ">= 400",
            "p99_start_to_completion_ms_at_100_per_s": "< 20",
        },
        "machine": machine_info(),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
