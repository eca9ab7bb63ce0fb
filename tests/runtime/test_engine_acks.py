"""Lingering outbox acknowledgements: an op that only acknowledges a delivered outbox row
rides on the next batch instead of costing a commit of its own, and is committed on its
own once `ack_linger_s` has passed. A real engine on a real journal file."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import trio

from edged.config import Config
from edged.core.commands import PublishEvent
from edged.daemon import build_engine
from edged.handlers import HandlerRegistry
from edged.journal import Journal, open_journal
from edged.runtime.engine import Engine, Op, new_workflow
from edged.runtime.registry import DefinitionRegistry


class HoldingSink:
    """A delivering sink (like MQTT's): keeps each command until the test acknowledges it."""

    def __init__(self) -> None:
        self.held: list[tuple[PublishEvent, int | None]] = []
        self.arrived = trio.Event()

    def accept(self, command: PublishEvent, outbox_id: int | None) -> None:
        self.held.append((command, outbox_id))
        self.arrived.set()

    def __call__(self, command: PublishEvent) -> list[Op]:
        raise AssertionError("a delivering sink is given the command with accept()")


def definitions() -> tuple[dict[str, Any], dict[str, Any]]:
    emit = DefinitionRegistry.check_workflow(
        {
            "name": "emit",
            "version": 1,
            "tasks": [{"name": "e", "taskReferenceName": "e", "type": "EVENT", "sink": "hold:out"}],
        }
    )
    noop = DefinitionRegistry.check_workflow(
        {
            "name": "noop",
            "version": 1,
            "tasks": [{"name": "n", "taskReferenceName": "n", "type": "NOOP"}],
        }
    )
    return emit, noop


@asynccontextmanager
async def running_engine(
    tmp_path: Path, **settings: Any
) -> AsyncIterator[tuple[Engine, Journal, HoldingSink]]:
    """A running engine on a journal file with `definitions()` registered, its "hold" sink a
    HoldingSink and `settings` (EngineSettings fields) applied; stopped after the block."""
    registry = DefinitionRegistry()
    for definition in definitions():
        registry.put_workflow(definition)
    async with open_journal(tmp_path / "journal.db") as journal:
        engine = build_engine(
            journal, registry, Config(data_dir=tmp_path), handler_registry=HandlerRegistry()
        )
        for name, value in settings.items():
            setattr(engine.settings, name, value)
        sink = HoldingSink()
        engine.sinks["hold"] = sink
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            yield engine, journal, sink
            nursery.cancel_scope.cancel()


async def start(engine: Engine, definition: dict[str, Any]) -> str:
    wid = str(uuid.uuid4())
    await engine.submit(Op(wid, create=new_workflow(definition, workflow_id=wid, input={})))
    return wid


async def test_an_ack_rides_on_the_next_batch_or_commits_after_the_linger(
    tmp_path: Path,
) -> None:
    emit, noop = definitions()
    async with running_engine(tmp_path, ack_linger_s=0.3) as (engine, journal, sink):
        with trio.fail_after(10):
            first = await start(engine, emit)
            await sink.arrived.wait()
            assert len(await journal.load_outbox()) == 1
            # delivered: the acknowledgement lingers, nothing is committed for it alone
            batches = engine.stats.batches
            engine.post(Op(first, ack=sink.held[0][1]))
            await trio.sleep(0.1)
            assert engine.stats.batches == batches
            assert len(await journal.load_outbox()) == 1
            assert engine.busy()  # a shutdown waits for it
            # the next batch carries it: one commit for the start and the ack
            await start(engine, noop)
            assert engine.stats.batches == batches + 1
            assert await journal.load_outbox() == []
            # alone, it commits once the linger is over
            sink.arrived = trio.Event()
            await start(engine, emit)
            await sink.arrived.wait()
            batches = engine.stats.batches
            began = trio.current_time()
            engine.post(Op(first, ack=sink.held[1][1]))
            while await journal.load_outbox():  # noqa: ASYNC110 - polls the journal file
                await trio.sleep(0.02)
            waited = trio.current_time() - began
            assert 0.25 <= waited < 2.0
            # the journal file shows the commit before the owner has settled it
            while engine.busy():  # noqa: ASYNC110 - bounded by fail_after above
                await trio.sleep(0.01)
            assert engine.stats.batches == batches + 1


async def test_a_full_linger_commits_at_once(tmp_path: Path) -> None:
    emit, _ = definitions()
    limits = {"ack_linger_s": 60.0, "ack_linger_max": 3}
    async with running_engine(tmp_path, **limits) as (engine, journal, sink):
        with trio.fail_after(10):
            ids = [await start(engine, emit) for _ in range(3)]
            while len(sink.held) < 3:
                await sink.arrived.wait()
                sink.arrived = trio.Event()
            for wid, (_, outbox_id) in zip(ids, sink.held, strict=True):
                engine.post(Op(wid, ack=outbox_id))
            while await journal.load_outbox():  # noqa: ASYNC110 - polls the journal file
                await trio.sleep(0.02)
