"""Reads shown to clients (GET /api/workflow/{id}) answer with what is durable: a change
the owner has decided but the journal has not committed yet stays out of them until the
commit lands, and a change whose commit fails never shows. A real engine on a real
journal file; the writer thread is held (or fails) at its `before_commit` fault point."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any

import trio

from edged.config import Config
from edged.core import events as ev
from edged.daemon import build_engine
from edged.handlers import HandlerRegistry
from edged.journal import open_journal
from edged.runtime.engine import Engine, Op, new_workflow
from edged.runtime.registry import DefinitionRegistry
from edged.runtime.service import EngineService
from edged.runtime.timers import now_ms

WAITING = DefinitionRegistry.check_workflow(
    {
        "name": "waiting",
        "version": 1,
        "tasks": [{"name": "w", "taskReferenceName": "w", "type": "WAIT"}],
    }
)


class Writer:
    """The journal writer's `before_commit` hook: passes, holds the commit, or fails it."""

    def __init__(self) -> None:
        self.mode = "pass"
        self.holding = threading.Event()
        self.release = threading.Event()

    def before_commit(self) -> None:
        if self.mode == "hold":
            self.holding.set()
            self.release.wait(10)
        if self.mode == "fail":  # (set while held: the held commit fails)
            raise OSError("injected I/O error")


async def started(engine: Engine) -> str:
    wid = str(uuid.uuid4())
    await engine.submit(Op(wid, create=new_workflow(WAITING, workflow_id=wid, input={})))
    return wid


async def with_engine(tmp_path: Path, writer: Writer, body: Any) -> None:
    registry = DefinitionRegistry()
    registry.put_workflow(WAITING)
    faults = {"before_commit": writer.before_commit}
    async with open_journal(tmp_path / "journal.db", fault_points=faults) as journal:
        engine = build_engine(
            journal, registry, Config(data_dir=tmp_path), handler_registry=HandlerRegistry()
        )
        engine.settings.retry_pause_s = 30.0  # the failed op stays undone for the test
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            with trio.fail_after(10):
                await body(engine)
            nursery.cancel_scope.cancel()


async def read_across_the_commit(engine: Engine, writer: Writer, then: str) -> tuple[str, str]:
    """Decide a change (terminate a waiting execution) with its commit held, read it the way
    GET /api/workflow/{id} does, then let the commit `then` ("pass" or "fail"): the
    execution's id and the status the read answered with, which it cannot have before."""
    wid = await started(engine)
    writer.mode = "hold"
    engine.post(Op(wid, ev.TerminateRequested(at_ms=now_ms(), reason="stop")))
    await trio.to_thread.run_sync(writer.holding.wait, 10)
    # decided (the engine's own view has it), not durable
    assert (await engine.workflow(wid)).status.value == "TERMINATED"
    seen: list[str] = []

    async def read() -> None:
        doc = await EngineService(engine).get_workflow(wid, include_tasks=True)
        seen.append(doc["status"])

    async with trio.open_nursery() as readers:
        readers.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        assert seen == []  # the commit is held: the read cannot have an answer yet
        writer.mode = then
        writer.release.set()
    return wid, seen[0]


async def test_a_read_waits_for_the_commit_of_a_decided_change(tmp_path: Path) -> None:
    writer = Writer()

    async def body(engine: Engine) -> None:
        _, status = await read_across_the_commit(engine, writer, "pass")
        assert status == "TERMINATED"

    await with_engine(tmp_path, writer, body)


async def test_a_read_never_shows_a_change_whose_commit_failed(tmp_path: Path) -> None:
    writer = Writer()

    async def body(engine: Engine) -> None:
        wid, status = await read_across_the_commit(engine, writer, "fail")
        # answered before the 30 s retry pause, with the journal's state
        assert status == "RUNNING"
        assert (await engine.workflow(wid)).status.value == "RUNNING"
        assert engine.stats.commit_failures == 1

    await with_engine(tmp_path, writer, body)


async def test_a_read_of_a_quiet_execution_does_not_wait(tmp_path: Path) -> None:
    writer = Writer()

    async def body(engine: Engine) -> None:
        wid = await started(engine)
        await trio.testing.wait_all_tasks_blocked()
        writer.mode = "hold"  # a commit now would hold: a read that waited would hang
        wf = await engine.committed_workflow(wid)
        assert wf is await engine.workflow(wid)
        writer.mode = "pass"

    await with_engine(tmp_path, writer, body)
