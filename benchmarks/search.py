"""Benchmark of the search API's journal side: how long a search takes as the journal grows.

Theory of operation
-------------------
A real journal file is filled with N executions shaped like the engine's
(a pinned definition, a small input and output; names from a small set,
statuses mixed, created_ms increasing) and then each query below runs
`--repeat` times through `Journal.search_executions` (a read connection in
a worker thread, exactly as ``GET /api/workflow/search`` does).  For each
query the median wall time and the process CPU time per search are printed,
with the totalHits it found, as ONE JSON object.

- ``newest_100``: no filter, the default sort (startTime DESC), 100 rows;
- ``name_status``: ``workflowType = x AND status IN (FAILED, TERMINATED)``;
- ``time_window``: ``startTime > t AND startTime < t'`` over 10% of rows;
- ``deep_page``: start = N/2 (what OFFSET costs);
- ``free_text_hit`` / ``free_text_miss``: a term in one execution's input /
  in none, so the scan reads ``min(N, FREE_TEXT_SCAN_ROWS)`` rows.

    .venv/bin/python benchmarks/search.py [--sizes 10000,100000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from edged.journal import Batch, ExecutionRow, Journal, open_journal
from edged.journal.search import FREE_TEXT_SCAN_ROWS, Condition, ExecutionQuery

NAMES = ["freezer_alarm", "door_watch", "camera_snap", "ota_check", "daily_report"]
STATUSES = ["COMPLETED"] * 6 + ["FAILED", "TERMINATED", "RUNNING", "PAUSED"]
DEFINITION = {
    "name": "freezer_alarm",
    "version": 1,
    "tasks": [
        {"name": f"step_{i}", "taskReferenceName": f"s{i}", "type": "SIMPLE"} for i in range(10)
    ],
}


def _row(i: int) -> ExecutionRow:
    status = STATUSES[i % len(STATUSES)]
    ended = status not in ("RUNNING", "PAUSED")
    return ExecutionRow(
        workflow_id=f"{i:08d}-0000-4000-8000-000000000000",
        name=NAMES[i % len(NAMES)],
        version=1,
        status=status,
        parent_id=None,
        correlation_id=f"device-{i % 97}",
        idempotency_key=None,
        created_ms=1_700_000_000_000 + i * 1000,
        updated_ms=1_700_000_000_000 + i * 1000 + 500,
        ended_ms=1_700_000_000_000 + i * 1000 + 900 if ended else None,
        doc={
            "definition": DEFINITION,
            "input": {"celsius": -12.5 - i % 7, "door": "open" if i % 3 else "closed"},
            "output": {"ticket": f"T-{i}"} if ended else {},
            "priority": 0,
            "reason": None,
        },
    )


async def _fill(journal: Journal, n: int) -> None:
    batch = 2000
    for start in range(0, n, batch):
        await journal.commit(
            Batch(executions=[_row(i) for i in range(start, min(n, start + batch))])
        )


def _queries(n: int) -> dict[str, ExecutionQuery]:
    t0 = 1_700_000_000_000 + (n // 2) * 1000
    return {
        "newest_100": ExecutionQuery(),
        "name_status": ExecutionQuery(
            conditions=(
                Condition("workflowType", "=", ("door_watch",)),
                Condition("status", "IN", ("FAILED", "TERMINATED")),
            )
        ),
        "time_window": ExecutionQuery(
            conditions=(
                Condition("startTime", ">", (t0,)),
                Condition("startTime", "<", (t0 + (n // 10) * 1000,)),
            )
        ),
        "deep_page": ExecutionQuery(start=n // 2, size=100),
        "free_text_hit": ExecutionQuery(free_text=(f"T-{n - 7}",)),
        "free_text_miss": ExecutionQuery(free_text=("no-such-ticket",)),
    }


async def _measure(journal: Journal, query: ExecutionQuery, repeat: int) -> dict[str, Any]:
    walls, cpus, hits = [], [], 0
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        page = await journal.search_executions(query)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        hits = page.total_hits
    return {
        "median_ms": round(statistics.median(walls) * 1000, 2),
        "cpu_ms": round(statistics.median(cpus) * 1000, 2),
        "total_hits": hits,
    }


async def run(sizes: list[int], repeat: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "machine": f"{platform.machine()} {platform.python_version()} (shared; figures are noisy)",
        "free_text_scan_rows": FREE_TEXT_SCAN_ROWS,
    }
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            async with open_journal(Path(tmp) / "j.db") as journal:
                await _fill(journal, n)
                out[str(n)] = {
                    name: await _measure(journal, query, repeat)
                    for name, query in _queries(n).items()
                }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    print(json.dumps(trio.run(run, sizes, args.repeat), indent=1))


if __name__ == "__main__":
    main()
