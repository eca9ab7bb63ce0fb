"""How often the engine's owner task runs for one op and for a lingering ack: every run is
a scheduler pass on an idle daemon (an epoll_wait and Trio's bookkeeping), which is most
of what a message costs at low rates. A real engine on a real journal file; a Trio
instrument counts the owner's steps."""

from __future__ import annotations

from pathlib import Path

import trio
from test_engine_acks import definitions, running_engine, start

from edged.runtime.engine import Op
from tests.task_steps import counting_steps


async def test_an_op_costs_the_owner_two_steps_and_an_ack_none(tmp_path: Path) -> None:
    emit, noop = definitions()
    with counting_steps("Engine.run") as counter:
        async with running_engine(tmp_path, ack_linger_s=0.5) as (engine, journal, sink):
            with trio.fail_after(10):
                for definition in (noop, noop, emit):  # warm: first-use work aside
                    await start(engine, definition)
                await sink.arrived.wait()
                await trio.testing.wait_all_tasks_blocked()
                # one op: a step to decide and queue its commit, one to settle it
                counter.steps = 0
                wid = await start(engine, noop)
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
