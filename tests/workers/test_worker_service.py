"""WorkerService in-process, on a real engine and journal: what HTTP timing cannot pin down.

A poll whose caller is cancelled while the poll is being journaled (the
client left mid-poll) must put the tasks it took back at the head of their
queue, so the next poll hands them out (journaled again: pollCount 2).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from edged.config import Config
from edged.daemon import build_engine
from edged.journal import open_journal
from edged.runtime.engine import Engine
from edged.runtime.registry import DefinitionRegistry
from edged.runtime.service import EngineService
from edged.runtime.worker_service import WorkerService

WORKFLOW = {
    "name": "svc",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [{"name": "svc_t", "taskReferenceName": "t", "type": "SIMPLE"}],
}


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[Engine]:
    registry = DefinitionRegistry()
    registry.put_workflow(registry.check_workflow(WORKFLOW))
    async with open_journal(tmp_path / "journal.db") as journal:
        eng = build_engine(journal, registry, Config(data_dir=tmp_path), bindings={})
        async with trio.open_nursery() as nursery:
            with trio.fail_after(10):
                await nursery.start(eng.run)
            yield eng
            nursery.cancel_scope.cancel()


async def start(engine: Engine) -> str:
    request = {
        "name": "svc",
        "version": None,
        "correlationId": None,
        "input": {},
        "taskToDomain": {},
        "workflowDef": None,
        "priority": 0,
        "idempotencyKey": None,
        "idempotencyStrategy": None,
    }
    return await EngineService(engine).start_workflow(request)


async def test_a_poll_cancelled_while_journaled_requeues_its_tasks(engine: Engine) -> None:
    workers = WorkerService(engine)
    with trio.fail_after(10):
        wid = await start(engine)
        with trio.CancelScope() as scope:
            scope.cancel()  # cancelled from the start: the journaling is shielded, the answer not
            await workers.poll("svc_t", worker_id="gone", domain=None, count=1, timeout_ms=0)
        assert scope.cancelled_caught
        assert workers.queues.size("svc_t") == 1
        (again,) = await workers.poll("svc_t", worker_id="next", domain=None, count=1, timeout_ms=0)
    assert again["workflowInstanceId"] == wid
    assert again["pollCount"] == 2 and again["workerId"] == "next"
    assert engine.dispatcher.polled_count() == 1  # the first hand-out's slot was freed
