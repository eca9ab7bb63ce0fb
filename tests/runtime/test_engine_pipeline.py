"""The owner loop pipelines commits: batch N+1 is decided while N commits.

A failed commit must undo N and everything decided on top of it, retry the
internal ops, and leave no trace of the doomed batches: every workflow still
ends with the right output and every task's handler runs exactly once
(dispatch happens only after the batch that scheduled the task is durable).
"""

from __future__ import annotations

import collections
import time
import uuid
from pathlib import Path
from typing import Any

import trio
import trio.lowlevel

from edged.config import Config
from edged.daemon import build_engine
from edged.errors import JournalError
from edged.handlers import HandlerRegistry, TaskContext
from edged.journal import open_journal
from edged.runtime.engine import Op, new_workflow
from edged.runtime.registry import DefinitionRegistry

TASKS = 5


def chain() -> dict[str, Any]:
    tasks = [
        {
            "name": "inc",
            "taskReferenceName": f"t{i}",
            "type": "SIMPLE",
            "inputParameters": {
                "n": "${workflow.input.n}" if i == 0 else f"${{t{i - 1}.output.n}}"
            },
        }
        for i in range(TASKS)
    ]
    return DefinitionRegistry.check_workflow(
        {"name": "chain", "version": 1, "tasks": tasks, "outputParameters": {"n": "${t4.output.n}"}}
    )


async def run_workload(path: Path, fail_every: int | None) -> dict[str, Any]:
    invocations: collections.Counter[str] = collections.Counter()
    transactions = 0

    def before_commit() -> None:
        nonlocal transactions
        transactions += 1
        if fail_every and transactions % fail_every == 0 and transactions < 200:
            # Fail slowly (this runs on the writer thread): the owner loop meanwhile decides
            # more batches on top of the doomed one, which the failure must undo too.
            time.sleep(0.02)
            raise OSError("injected I/O error")

    async def inc(ctx: TaskContext) -> dict[str, Any]:
        invocations[ctx.task_id] += 1
        await trio.lowlevel.checkpoint()
        return {"n": ctx.input["n"] + 1}

    handlers = HandlerRegistry()
    handlers.register("inc", inc)
    registry = DefinitionRegistry()
    definition = chain()
    registry.put_workflow(definition)
    async with open_journal(path, fault_points={"before_commit": before_commit}) as journal:
        engine = build_engine(
            journal, registry, Config(data_dir=path.parent), handler_registry=handlers
        )
        engine.settings.max_batch = 4  # small batches: several in flight at once
        engine.settings.retry_pause_s = 0.01
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            ids = [str(uuid.uuid4()) for _ in range(60)]
            ended: dict[str, Any] = {}

            async def run_one(n: int, wid: str) -> None:
                wf = new_workflow(definition, workflow_id=wid, input={"n": n * 100})
                while True:  # an injected failure refuses the start: the caller retries
                    try:
                        await engine.submit(Op(wid, create=wf))
                        break
                    except JournalError:
                        wf = new_workflow(definition, workflow_id=wid, input={"n": n * 100})
                ended[wid] = await engine.wait_for_end(wid)

            with trio.fail_after(20):
                async with trio.open_nursery() as starters:
                    for n, wid in enumerate(ids):
                        starters.start_soon(run_one, n, wid)
            nursery.cancel_scope.cancel()
        stored = [await journal.load_execution(wid) for wid in ids]
    return {
        "ended": [ended[wid] for wid in ids],
        "stored": stored,
        "invocations": invocations,
        "stats": engine.stats,
    }


async def test_pipelined_commits_complete_every_workflow(tmp_path: Path) -> None:
    out = await run_workload(tmp_path / "j.db", fail_every=None)
    assert out["stats"].pipelined > 0, "the workload never had two batches in flight"
    assert [wf.output for wf in out["ended"]] == [{"n": n * 100 + TASKS} for n in range(60)]
    assert set(out["invocations"].values()) == {1}
    assert len(out["invocations"]) == 60 * TASKS


async def test_a_failed_commit_undoes_the_batches_decided_on_top_of_it(tmp_path: Path) -> None:
    out = await run_workload(tmp_path / "j.db", fail_every=7)
    stats = out["stats"]
    assert stats.commit_failures > 0 and stats.pipelined > 0
    assert stats.undone > stats.commit_failures, "no failure had later batches on top of it"
    for n, wf in enumerate(out["ended"]):
        assert wf.status.value == "COMPLETED", wf.reason
        assert wf.output == {"n": n * 100 + TASKS}
    # the journal agrees with memory, and no task ran twice or was lost
    for row in out["stored"]:
        assert row is not None and row[0].status == "COMPLETED"
        assert len(row[1]) == TASKS and all(t.status == "COMPLETED" for t in row[1])
    assert len(out["invocations"]) == 60 * TASKS
    assert set(out["invocations"].values()) == {1}
