"""Journal benchmark: durable transitions per second and recovery load time.

Run: PYTHONPATH=. .venv/bin/python tests/journal/bench_journal.py
Prints (1) transitions/s for 100 Trio tasks each committing, in a loop, one
execution + one task + two history events (synchronous=FULL), with the CPU
per transition and the group sizes seen; (2) load_unfinished for 10,000
executions x 10 tasks.  Not collected by pytest (no test_ prefix).
"""

import os
import tempfile
import time

import trio

from edged.journal import Batch, ExecutionRow, HistoryEvent, TaskRow, open_journal


async def throughput(path, tasks=100, seconds=3.0):
    async with open_journal(path) as j:
        count = 0
        stop_at = time.perf_counter() + seconds

        async def worker(w):
            nonlocal count
            i = 0
            while time.perf_counter() < stop_at:
                wf = f"wf-{w}-{i}"
                b = Batch(
                    executions=[
                        ExecutionRow(
                            wf,
                            "freezer",
                            1,
                            "RUNNING",
                            None,
                            "c",
                            None,
                            i,
                            i,
                            None,
                            {"input": {"t": -12.5, "door": "open"}},
                        )
                    ],
                    tasks=[
                        TaskRow(
                            f"{wf}-t0",
                            wf,
                            0,
                            "SCHEDULED",
                            {"taskType": "SIMPLE", "input": {"x": i}},
                        )
                    ],
                    history=[
                        HistoryEvent(wf, i, "WorkflowStarted", {"input": {"t": -12.5}}),
                        HistoryEvent(wf, i, "TaskScheduled", {"ref": "t0"}),
                    ],
                )
                await j.commit(b)
                count += 1
                i += 1

        t0 = time.perf_counter()
        c0 = time.process_time()
        async with trio.open_nursery() as n:
            for w in range(tasks):
                n.start_soon(worker, w)
        el = time.perf_counter() - t0
        cpu = time.process_time() - c0
        s = j.statistics()
        print(
            f"{count / el:,.0f} transitions/s  ({count} in {el:.2f}s, cpu {cpu / count * 1e6:.0f} us/transition) commits={s.commits} avg_commit_ms={s.avg_commit_ms:.2f} hist={s.commit_size_histogram}"
        )


async def load(path, n=10_000, k=10):
    async with open_journal(path) as j:
        for start in range(0, n, 500):
            b = Batch()
            for i in range(start, start + 500):
                wf = f"u-{i}"
                b.executions.append(
                    ExecutionRow(
                        wf,
                        "freezer",
                        1,
                        "RUNNING",
                        None,
                        None,
                        None,
                        i,
                        i,
                        None,
                        {"input": {"t": -12.5, "door": "open"}, "vars": {}},
                    )
                )
                b.tasks += [
                    TaskRow(
                        f"{wf}-{s}",
                        wf,
                        s,
                        "COMPLETED",
                        {"taskType": "SIMPLE", "output": {"ok": True, "v": s}},
                    )
                    for s in range(k)
                ]
            await j.commit(b)
        for _ in range(3):
            t0 = time.perf_counter()
            got = await j.load_unfinished()
            el = time.perf_counter() - t0
            print(f"load_unfinished {len(got)} executions x {k} tasks: {el * 1000:.0f} ms")


d = tempfile.mkdtemp()
trio.run(throughput, os.path.join(d, "t.db"))
trio.run(load, os.path.join(d, "l.db"))
