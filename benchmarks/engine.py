"""Benchmark of the engine's hot path: durable task completions per second.

Theory of operation
-------------------
The workload is the one the issue names: workflows of 10 sequential SIMPLE
tasks, each bound to an in-process no-op handler, each task wired to the
previous task's output.  The engine commits every result (synchronous=FULL)
before it carries out the next `DispatchTask`, so every completion below is
durable before the workflow moves on.  Everything runs in this process: the
real engine (owner loop, decider, dispatcher) on a real journal file.

Four measurements, printed as ONE JSON object:

- `task_completions_per_s`: closed loop, C workflows in flight (C in
  `--concurrency`), each client starting the next workflow as soon as its
  last one ended; the headline is the best of the async runs.  CPU µs per
  completion is process CPU (engine + journal writer thread) / completions.
- `p99_latency_ms`: open loop, workflows started on a fixed schedule so that
  tasks complete at `--paced-rate` per second; latency is from the dispatch
  of a task to the dispatch of the next task of the same workflow (result
  report, decide, group commit, next dispatch).
- `recovery_s_10k`: 10,000 workflows left waiting on an unbound task, the
  journal closed, then the time to open the journal (integrity check
  included, as the daemon does) and bring the engine up (`recover()`).
- `idle_rss_mb`: VmRSS of a real `edged run` subprocess one second after it
  answers GET /health.

    .venv/bin/python benchmarks/engine.py [--seconds 2] [--with-dbos]

`--with-dbos` also runs ../shared/peers/dbos/run.sh (it installs DBOS
into a throwaway venv the first time: a download, hence not the default)
and reports edged's throughput over DBOS's best steps/s.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio
from bench_http import percentile

from edged.config import Config
from edged.daemon import build_engine, tune_gc
from edged.handlers import HandlerRegistry, TaskContext
from edged.journal import open_journal
from edged.runtime.engine import Engine, EngineSettings, Op, new_workflow
from edged.runtime.registry import DefinitionRegistry

ROOT = Path(__file__).resolve().parent.parent
DBOS_SCRIPT = Path(__file__).resolve().parents[1].parent / "shared" / "peers" / "dbos" / "run.sh"
TASKS_PER_WORKFLOW = 10
# EngineSettings fields set by --max-batch / --max-inflight (to explore the pipelining knobs)
ENGINE_OVERRIDES: dict[str, int] = {}


def chain_definition(name: str, task_name: str, length: int = TASKS_PER_WORKFLOW) -> dict[str, Any]:
    """`length` SIMPLE tasks in a row, each fed from the previous one's output."""
    tasks = []
    for i in range(length):
        source = "${workflow.input.n}" if i == 0 else f"${{t{i - 1}.output.n}}"
        tasks.append(
            {
                "name": task_name,
                "taskReferenceName": f"t{i}",
                "type": "SIMPLE",
                "inputParameters": {"n": source},
            }
        )
    return DefinitionRegistry.check_workflow(
        {
            "name": name,
            "version": 1,
            "schemaVersion": 2,
            "tasks": tasks,
            "outputParameters": {"n": "${t9.output.n}"},
        }
    )


async def _noop_async(ctx: TaskContext) -> dict[str, Any]:
    return {"n": ctx.input.get("n", 0)}


def _noop_sync(ctx: TaskContext) -> dict[str, Any]:
    return {"n": ctx.input.get("n", 0)}


class Probe:
    """Wraps the dispatcher's `submit` to time dispatch-to-next-dispatch per workflow."""

    def __init__(self, engine: Engine) -> None:
        self.last_s: dict[str, float] = {}
        self.gaps_ms: list[float] = []
        self.recording = False
        inner = engine.dispatcher.submit

        def submit(cmd: Any) -> None:
            now = time.perf_counter()
            if self.recording:
                before = self.last_s.get(cmd.workflow_id)
                if before is not None:
                    self.gaps_ms.append((now - before) * 1000)
                self.last_s[cmd.workflow_id] = now
            inner(cmd)

        engine.dispatcher.submit = submit  # type: ignore[method-assign]


@asynccontextmanager
async def running_engine(data_dir: Path, registry: DefinitionRegistry) -> AsyncIterator[Engine]:
    handlers = HandlerRegistry()
    handlers.register("noop_async", _noop_async)
    handlers.register("noop_sync", _noop_sync)
    cfg = Config(data_dir=data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - once, before anything is measured
    async with open_journal(cfg.journal_path) as journal:
        engine = build_engine(journal, registry, cfg, handler_registry=handlers)
        for name, value in ENGINE_OVERRIDES.items():
            setattr(engine.settings, name, value)
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            tune_gc()  # as `edged run` does once recovered
            yield engine
            nursery.cancel_scope.cancel()


async def run_one(engine: Engine, definition: dict[str, Any], n: int = 1) -> None:
    wf = new_workflow(definition, workflow_id=str(uuid.uuid4()), input={"n": n})
    await engine.submit(Op(wf.workflow_id, create=wf))
    done = await engine.wait_for_end(wf.workflow_id)
    if done.status.value != "COMPLETED":
        raise RuntimeError(f"benchmark workflow ended {done.status.value}: {done.reason}")


async def closed_loop(
    engine: Engine, definition: dict[str, Any], concurrency: int, seconds: float
) -> dict[str, Any]:
    finished = 0
    stop_at = time.perf_counter() + seconds
    journal_before = engine.journal.statistics()
    batches_before, ops_before = engine.stats.batches, engine.stats.ops
    completed_before = engine.dispatcher.stats["completed"]

    async def client() -> None:
        nonlocal finished
        while time.perf_counter() < stop_at:
            await run_one(engine, definition)
            finished += 1

    cpu0, wall0 = time.process_time(), time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(concurrency):
            nursery.start_soon(client)
    cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    # Counted per task, not per workflow: at 500 in flight a 2 s run ends only ~2 workflows per client.
    completions = engine.dispatcher.stats["completed"] - completed_before
    journal_after = engine.journal.statistics()
    commits = journal_after.commits - journal_before.commits
    batches = engine.stats.batches - batches_before
    return {
        "concurrency": concurrency,
        "workflows": finished,
        "task_completions_per_s": round(completions / wall_s),
        "cpu_us_per_completion": round(cpu_s / completions * 1e6, 1),
        "engine_batches": batches,
        "ops_per_engine_batch": round((engine.stats.ops - ops_before) / max(1, batches), 2),
        "journal_commits": commits,
        "batches_per_journal_commit": round(
            (journal_after.batches_committed - journal_before.batches_committed) / max(1, commits),
            2,
        ),
        "avg_commit_ms": round(journal_after.avg_commit_ms, 3),
    }


async def paced(
    engine: Engine, definition: dict[str, Any], rate_per_s: float, seconds: float
) -> dict[str, Any]:
    probe = Probe(engine)
    probe.recording = True
    interval_s = TASKS_PER_WORKFLOW / rate_per_s  # one workflow = TASKS_PER_WORKFLOW completions
    count = int(seconds / interval_s)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        for i in range(count):
            await trio.sleep_until(start + i * interval_s)
            nursery.start_soon(run_one, engine, definition)
    cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    gaps = probe.gaps_ms
    return {
        "rate_per_s": rate_per_s,
        "samples": len(gaps),
        "achieved_completions_per_s": round(count * TASKS_PER_WORKFLOW / wall_s),
        "cpu_us_per_completion": round(cpu_s / (count * TASKS_PER_WORKFLOW) * 1e6, 1),
        "p50_ms": round(percentile(gaps, 0.50), 3),
        "p90_ms": round(percentile(gaps, 0.90), 3),
        "p99_ms": round(percentile(gaps, 0.99), 3),
        "max_ms": round(max(gaps), 3),
    }


async def throughput_and_latency(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    registry = DefinitionRegistry()
    chain_async = chain_definition("chain_async", "noop_async")
    chain_sync = chain_definition("chain_sync", "noop_sync")
    registry.put_workflow(chain_async)
    registry.put_workflow(chain_sync)
    runs: list[dict[str, Any]] = []
    async with running_engine(tmp / "throughput", registry) as engine:
        await closed_loop(engine, chain_async, 10, 0.3)  # warm-up: imports, caches, WAL file
        for concurrency in args.concurrency:
            runs.append(
                {
                    "handler": "async",
                    **await closed_loop(engine, chain_async, concurrency, args.seconds),
                }
            )
        for concurrency in args.sync_concurrency:
            runs.append(
                {
                    "handler": "sync",
                    **await closed_loop(engine, chain_sync, concurrency, args.seconds),
                }
            )
        histogram = engine.journal.statistics().commit_size_histogram
    async with running_engine(tmp / "latency", registry) as engine:
        await closed_loop(engine, chain_async, 10, 0.3)
        latency = await paced(engine, chain_async, args.paced_rate, args.paced_seconds)
    best = max(
        (r for r in runs if r["handler"] == "async"), key=lambda r: r["task_completions_per_s"]
    )
    return {
        "task_completions_per_s": best["task_completions_per_s"],
        "cpu_us_per_completion": best["cpu_us_per_completion"],
        "p99_latency_ms": latency["p99_ms"],
        "runs": runs,
        "paced": latency,
        "commit_size_histogram": {str(k): v for k, v in sorted(histogram.items())},
    }


async def recovery(count: int, tmp: Path) -> dict[str, Any]:
    registry = DefinitionRegistry()
    stuck = DefinitionRegistry.check_workflow(
        {
            "name": "stuck",
            "version": 1,
            "schemaVersion": 2,
            "tasks": [{"name": "nobody_polls_this", "taskReferenceName": "a", "type": "SIMPLE"}],
        }
    )
    registry.put_workflow(stuck)
    data_dir = tmp / "recovery"
    started = time.perf_counter()
    async with running_engine(data_dir, registry) as engine:

        async def start(ids: list[str]) -> None:
            for wid in ids:
                await engine.submit(
                    Op(wid, create=new_workflow(stuck, workflow_id=wid, input={"i": 1}))
                )

        ids = [str(uuid.uuid4()) for _ in range(count)]
        async with trio.open_nursery() as nursery:
            for k in range(200):
                nursery.start_soon(start, ids[k::200])
    create_s = time.perf_counter() - started
    size_mb = sum(p.stat().st_size for p in data_dir.iterdir()) / 1e6
    t0 = time.perf_counter()
    async with running_engine(data_dir, registry) as engine:
        ready_s = time.perf_counter() - t0
        recovered = len(engine.live)
        waiting = sum(len(q) for q in engine.dispatcher.pending.values())
    if recovered != count or waiting != count:
        raise RuntimeError(
            f"recovered {recovered} executions, {waiting} waiting tasks; expected {count}"
        )
    return {
        "recovery_s_10k" if count == 10_000 else "recovery_s": round(ready_s, 3),
        "recovered_executions": recovered,
        "journal_mb": round(size_mb, 1),
        "create_s": round(create_s, 2),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def idle_rss(tmp: Path) -> dict[str, Any]:
    defs = tmp / "defs"
    defs.mkdir()
    (defs / "chain.json").write_text(json.dumps(chain_definition("chain", "noop_async")))
    port = _free_port()
    edged = Path(sys.executable).parent / "edged"
    cmd = [
        str(edged),
        "run",
        "--data-dir",
        str(tmp / "daemon"),
        "--listen",
        f"127.0.0.1:{port}",
        "--defs",
        str(defs),
    ]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ready_s = None
        while time.perf_counter() - t0 < 20:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"edged run exited {proc.returncode}: {proc.stderr.read().decode() if proc.stderr else ''}"
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                    sock.sendall(
                        b"GET /health HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n"
                    )
                    if sock.recv(64).startswith(b"HTTP/1.1 200"):
                        ready_s = time.perf_counter() - t0
                        break
            except OSError:
                time.sleep(0.02)
        if ready_s is None:
            raise RuntimeError("edged run did not answer /health within 20 s")
        time.sleep(1.0)
        return {"idle_rss_mb": round(_rss_mb(proc.pid), 1), "daemon_ready_s": round(ready_s, 2)}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def with_dbos(edged_per_s: float) -> dict[str, Any]:
    out = subprocess.run(
        ["bash", str(DBOS_SCRIPT)], capture_output=True, text=True, check=True, timeout=900
    )
    runs = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    best = max(r["steps_per_s"] for r in runs)
    return {
        "dbos_runs": runs,
        "dbos_best_steps_per_s": best,
        "edged_over_dbos": round(edged_per_s / best, 1),
    }


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "sqlite": __import__("sqlite3").sqlite_version,
        "kernel": platform.release(),
        # Other work on the machine moves every figure here: quote it with them.
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=2.0, help="length of each closed-loop run")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10, 100, 500])
    parser.add_argument("--sync-concurrency", type=int, nargs="*", default=[100])
    parser.add_argument(
        "--paced-rate", type=float, default=500.0, help="task completions/s for the latency run"
    )
    parser.add_argument("--paced-seconds", type=float, default=5.0)
    parser.add_argument("--recovery-count", type=int, default=10_000)
    parser.add_argument("--skip", nargs="*", default=[], choices=["throughput", "recovery", "rss"])
    parser.add_argument(
        "--with-dbos", action="store_true", help="also run the DBOS peer (downloads DBOS once)"
    )
    parser.add_argument("--max-batch", type=int, help="ops per engine batch (EngineSettings)")
    parser.add_argument("--max-inflight", type=int, help="batches committing at once")
    parser.add_argument("--switch-interval", type=float, help="sys.setswitchinterval (s)")
    args = parser.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    if args.max_batch:
        ENGINE_OVERRIDES["max_batch"] = args.max_batch
    if args.max_inflight:
        ENGINE_OVERRIDES["max_inflight"] = args.max_inflight
    result: dict[str, Any] = {
        "benchmark": "edged engine",
        "tasks_per_workflow": TASKS_PER_WORKFLOW,
        "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
        "switch_interval_s": sys.getswitchinterval(),
        "engine_settings": {
            "max_batch": ENGINE_OVERRIDES.get("max_batch", EngineSettings().max_batch),
            "max_inflight": ENGINE_OVERRIDES.get("max_inflight", EngineSettings().max_inflight),
        },
    }
    tmp = Path(tempfile.mkdtemp(prefix="edged-bench-", dir=os.environ.get("EDGED_BENCH_DIR")))
    wall0 = time.perf_counter()
    try:
        if "throughput" not in args.skip:
            result.update(trio.run(throughput_and_latency, args, tmp))
        if "recovery" not in args.skip:
            result.update(trio.run(recovery, args.recovery_count, tmp))
        if "rss" not in args.skip:
            result.update(idle_rss(tmp))
        if args.with_dbos and "task_completions_per_s" in result:
            result.update(with_dbos(result["task_completions_per_s"]))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result["machine"] = machine()
    result["bench_wall_s"] = round(time.perf_counter() - wall0, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
