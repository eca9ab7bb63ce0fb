"""The engine's per-execution bookkeeping: replies, outbox bodies, history hand-off, ids."""

from __future__ import annotations

import dataclasses
import os
import uuid
from typing import Any

import pytest
import trio

from edged import ids
from edged.core.commands import PublishEvent, StartWorkflow
from edged.core.model import Workflow, WorkflowStatus
from edged.handlers import HandlerRegistry
from edged.journal import HistoryEvent
from edged.runtime.dispatch import Dispatcher
from edged.runtime.engine import Engine, Reply, new_workflow
from edged.runtime.registry import DefinitionRegistry
from edged.runtime.rows import _command_body


async def test_a_reply_set_before_or_after_the_wait_answers_it() -> None:
    early = Reply()
    early.set("v")
    with trio.fail_after(1):
        assert await early.wait() == "v"
    late = Reply()
    with trio.fail_after(1):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_set_soon, late)
            with pytest.raises(KeyError):
                await late.wait()


async def _set_soon(reply: Reply) -> None:
    await trio.lowlevel.checkpoint()
    reply.set(None, KeyError("k"))


def test_a_callback_reply_is_told_once() -> None:
    seen: list[Any] = []
    reply = Reply(lambda value, error: seen.append((value, error)))
    reply.set(1)
    reply.set(2)
    assert seen == [(1, None)] and reply.value == 2


@pytest.mark.parametrize(
    "command",
    [
        PublishEvent(sink="s", payload={"a": 1}, workflow_id="w", task_id="t"),
        StartWorkflow(workflow_id="c", name="n", version=None, input={}),
    ],
)
def test_command_bodies_name_every_field(command: Any) -> None:
    for _ in range(2):  # field names cached per class
        assert _command_body(command) == {
            f.name: getattr(command, f.name) for f in dataclasses.fields(command)
        }


async def test_listeners_get_each_executions_rows_in_one_call_in_order() -> None:
    engine = Engine(
        None,  # type: ignore[arg-type]  # _notify touches no journal
        DefinitionRegistry(),
        lambda report: Dispatcher(report, registry=HandlerRegistry()),
    )
    calls: list[tuple[str, list[tuple[int, str]]]] = []
    engine.listeners.append(
        lambda wf, rows: calls.append((wf.workflow_id, [(i, e.kind) for i, e in rows]))
    )
    for wid in ("w1", "w2"):
        engine.live[wid] = new_workflow({"name": "d"}, workflow_id=wid, input={})
    history = [HistoryEvent(w, 1, k, {}) for w, k in [("w1", "A"), ("w2", "B"), ("w1", "C")]]
    engine._notify(history, [("w1", 0, 1), ("w2", 1, 2), ("w1", 2, 3)], [10, 11, 12])
    assert calls == [("w1", [(10, "A"), (12, "C")]), ("w2", [(11, "B")])]
    with pytest.raises(ValueError):
        engine._notify(history, [("w1", 0, 3)], [1])


def test_execution_ids_stay_unique_and_version_7_across_refills() -> None:
    made = [ids.new_execution_id() for _ in range(3 * ids._BATCH + 7)]
    assert len(set(made)) == len(made)
    assert all(uuid.UUID(i).version == 7 and uuid.UUID(i).variant == uuid.RFC_4122 for i in made)


def test_a_forked_child_draws_fresh_random_bits() -> None:
    ids.new_execution_id()  # the parent holds a pool
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its pool must be empty, so its ids are its own
        os.write(write, b"1" if next(ids._tails, None) is None else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1"
    os.close(read)
    os.close(write)


@pytest.mark.parametrize(
    "extra",
    [
        {},
        {
            "correlation_id": "c",
            "parent_id": "p",
            "parent_task_id": "pt",
            "task_to_domain": {"a": "b"},
            "priority": 3,
            "idempotency_key": "k",
        },
        {"task_to_domain": {}},
    ],
)
@pytest.mark.parametrize(
    "definition",
    [{"name": "d"}, {"name": "d", "variables": {"v": 1}, "inputTemplate": {"t": 1, "n": 0}}],
)
def test_a_new_workflow_has_every_field_a_keyword_construction_gives(
    definition: dict[str, Any], extra: dict[str, Any]
) -> None:
    wf = new_workflow(definition, workflow_id="w", input={"n": 2}, **extra)
    assert wf == Workflow(
        workflow_id="w",
        definition=definition,
        status=WorkflowStatus.RUNNING,
        input={**definition.get("inputTemplate", {}), "n": 2},
        created_ms=wf.created_ms,
        updated_ms=wf.created_ms,
        variables=dict(definition.get("variables", {})),
        correlation_id=extra.get("correlation_id"),
        priority=extra.get("priority", 0),
        parent_id=extra.get("parent_id"),
        parent_task_id=extra.get("parent_task_id"),
        task_to_domain=dict(extra.get("task_to_domain", {})),
        idempotency_key=extra.get("idempotency_key"),
    )
    if "variables" in definition:
        assert wf.variables is not definition["variables"]
