"""How often the engine's owner task runs for one op and for a lingering ack: every run is
a scheduler pass on an idle daemon (an epoll_wait and Trio's bookkeeping), which is most
of what a message costs at low rates. A real engine on a real journal file; a Trio
instrument counts the owner's steps."""

from __future__ import annotations

import uuid
from pathlib import Path

import trio
from test_engine_acks import HoldingSink, definitions

from edged.config import Config
from edged.daemon import build_engine
from edged.handlers import HandlerRegistry
from edged.journal import open_journal
from edged.runtime.engine import Op, new_workflow
from edged.runtime.registry import DefinitionRegistry
from tests.task_steps import counting_steps


async def test_an_op_costs_the_owner_two_steps_and_an_ack_none(tmp_path: Path) -> None:
    emit, noop = definitions()
    registry = DefinitionRegistry()
    registry.put_workflow(emit)
    registry.put_workflow(noop)
    with counting_steps("Engine.run") as counter:
        async with open_journal(tmp_path / "journal.db") as journal:
            engine = build_engine(
                journal, registry, Config(data_dir=tmp_path), handler_registry=HandlerRegistry()
            )
            engine.settings.ack_linger_s = 0.5
            sink = HoldingSink()
            engine.sinks["hold"] = sink
            async with trio.open_nursery() as nursery:
                await nursery.start(engine.run)
                with trio.fail_after(10):
                    for definition in (noop, noop, emit):  # warm: first-use work aside
                        wid = str(uuid.uuid4())
                        await engine.submit(
                            Op(wid, create=new_workflow(definition, workflow_id=wid, input={}))
                        )
                    await sink.arrived.wait()
                    await trio.testing.wait_all_tasks_blocked()
                    # one op: a step to decide and queue its commit, one to settle it
                    counter.steps = 0
                    wid = str(uuid.uuid4())
                    await engine.submit(
                        Op(wid, create=new_workflow(noop, workflow_id=wid, input={}))
                    )
                    await trio.testing.wait_all_tasks_blocked()
                    assert counter.steps == 2
                    # an ack while the owner sleeps: its sleep now ends with the linger,
                    # nothing runs until then
                    batches = engine.stats.batches
                    counter.steps = 0
                    engine.post(Op(wid, ack=sink.held[0][1]))
                    await trio.testing.wait_all_tasks_blocked()
                    assert counter.steps == 0
                    assert engine.busy()
                    while engine.busy():  # noqa: ASYNC110 - bounded by fail_after above
                        await trio.sleep(0.02)
                    assert engine.stats.batches == batches + 1
                    assert await journal.load_outbox() == []
                nursery.cancel_scope.cancel()
