"""Engine.try_submit: an external op queued without a task, its reply given to a callback."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import trio

from edged.config import Config
from edged.daemon import build_engine
from edged.handlers import HandlerRegistry
from edged.journal import open_journal
from edged.runtime.engine import Op, Reply, new_workflow
from edged.runtime.registry import DefinitionRegistry


def definition() -> dict[str, Any]:
    return DefinitionRegistry.check_workflow(
        {
            "name": "noop",
            "version": 1,
            "tasks": [{"name": "n", "taskReferenceName": "n", "type": "NOOP"}],
            "outputParameters": {"x": "${workflow.input.x}"},
        }
    )


async def test_try_submit_calls_back_once_durable_and_refuses_when_full(tmp_path: Path) -> None:
    registry = DefinitionRegistry()
    wf_def = definition()
    registry.put_workflow(wf_def)
    path = tmp_path / "journal.db"
    async with open_journal(path) as journal:
        engine = build_engine(
            journal, registry, Config(data_dir=tmp_path), handler_registry=HandlerRegistry()
        )
        engine.settings.max_external_ops = 3
        engine._slots = trio.Semaphore(3)  # the bound is read at construction
        outcomes: list[tuple[Any, BaseException | None]] = []
        three = trio.Event()

        def record(value: Any, error: BaseException | None) -> None:
            outcomes.append((value, error))
            if len(outcomes) == 3:
                three.set()

        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)
            ids = [str(uuid.uuid4()) for _ in range(4)]
            accepted = []
            for i, wid in enumerate(ids):
                op = Op(
                    wid,
                    create=new_workflow(wf_def, workflow_id=wid, input={"x": i}),
                    reply=Reply(record),
                )
                accepted.append(engine.try_submit(op))
            # no checkpoint between the calls: the owner has taken nothing yet
            assert accepted == [True, True, True, False]
            with trio.fail_after(10):
                await three.wait()
            assert outcomes == [(wid, None) for wid in ids[:3]]
            # the callbacks ran after the commit: the executions are in the journal
            for i, wid in enumerate(ids[:3]):
                wf = await engine.workflow(wid)
                assert wf.status.value == "COMPLETED"
                assert wf.output == {"x": i}
            # room again once the owner took the ops
            extra = str(uuid.uuid4())
            done = trio.Event()
            op = Op(
                extra,
                create=new_workflow(wf_def, workflow_id=extra, input={"x": 9}),
                reply=Reply(lambda value, error: done.set()),
            )
            assert engine.try_submit(op)
            with trio.fail_after(10):
                await done.wait()
            nursery.cancel_scope.cancel()


async def test_a_raising_callback_does_not_stop_the_owner(tmp_path: Path) -> None:
    registry = DefinitionRegistry()
    wf_def = definition()
    registry.put_workflow(wf_def)
    async with open_journal(tmp_path / "journal.db") as journal:
        engine = build_engine(
            journal, registry, Config(data_dir=tmp_path), handler_registry=HandlerRegistry()
        )
        async with trio.open_nursery() as nursery:
            await nursery.start(engine.run)

            def boom(value: Any, error: BaseException | None) -> None:
                raise RuntimeError("caller bug")

            first = str(uuid.uuid4())
            assert engine.try_submit(
                Op(
                    first,
                    create=new_workflow(wf_def, workflow_id=first, input={}),
                    reply=Reply(boom),
                )
            )
            second = str(uuid.uuid4())
            with trio.fail_after(10):
                assert (
                    await engine.submit(
                        Op(second, create=new_workflow(wf_def, workflow_id=second, input={}))
                    )
                    == second
                )
            assert (await engine.workflow(first)).status.value == "COMPLETED"
            nursery.cancel_scope.cancel()
