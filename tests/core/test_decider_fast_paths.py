"""The decider's caches and fast paths answer exactly what the slow paths do."""

from __future__ import annotations

from typing import Any

import pytest

from edged.core.decider import ROOT_SCOPE, Decider, Scope, Transition, _TaskIds, derive_id
from edged.core.events import WorkflowStarted
from edged.core.inbound import _STATUS_OF
from edged.core.model import Task, TaskStatus, Workflow, WorkflowStatus
from edged.core.policies import effective_taskdef, seconds
from edged.core.views import ExpressionContext, task_view, workflow_view
from edged.expr import resolve
from edged.expr.params import resolve_params


@pytest.mark.parametrize(
    "taskdef",
    [
        None,
        effective_taskdef("a", None),
        {"timeoutSeconds": 5, "responseTimeoutSeconds": 7.0, "pollTimeoutSeconds": True},
        {"timeoutSeconds": -3, "responseTimeoutSeconds": "9"},
        {},
    ],
)
def test_cached_timeouts_equal_policies_seconds(taskdef: dict[str, Any] | None) -> None:
    decider = Decider()
    for _ in range(2):  # a miss, then a hit
        assert tuple(decider.timeouts(taskdef)) == (
            seconds(taskdef, "timeoutSeconds"),
            seconds(taskdef, "responseTimeoutSeconds"),
            seconds(taskdef, "pollTimeoutSeconds"),
        )


def test_timeouts_follow_the_object_not_a_reused_id() -> None:
    decider = Decider()
    for limit in range(1, 2_000):  # ids get reused as these are freed; the cache clears itself
        assert decider.timeouts({"timeoutSeconds": limit}).timeout_s == limit


def test_status_lookup_equals_the_enum() -> None:
    for status in TaskStatus:
        assert _STATUS_OF.get(status.value) is TaskStatus(status.value)
        assert _STATUS_OF.get(status) is status
    assert _STATUS_OF.get("DONE") is None


def _workflow() -> Workflow:
    wf = Workflow(
        workflow_id="w", definition={"name": "d"}, status=WorkflowStatus.RUNNING,
        input={"n": 1}, created_ms=1,
    )  # fmt: skip
    for seq, ref in enumerate(["a", "b__2", "a"], start=1):
        wf.tasks.append(
            Task(
                task_id=f"t{seq}",
                seq=seq,
                ref=ref,
                task_type="SIMPLE",
                def_name=ref,
                wt={},
                status=TaskStatus.COMPLETED,
                input={},
                output={"seq": seq},
                iteration=2 if "__" in ref else 0,
            )
        )
    return wf


def test_expression_context_get_matches_the_mapping_protocol() -> None:
    wf = _workflow()
    ctx = ExpressionContext(wf)
    assert ctx.get("workflow") == workflow_view(wf)
    assert ctx.get("a") == task_view(wf, wf.tasks[2])  # the newest attempt
    assert ctx.get("b") == task_view(wf, wf.tasks[1])  # a loop iteration by its base ref
    assert ctx.get("nope") is None
    assert ctx.get("nope", 7) == 7
    assert ctx["a"] is ctx.get("a")  # one view per key and context
    with pytest.raises(KeyError):
        ctx["nope"]
    assert "a" in ctx
    assert "nope" not in ctx


def test_the_shared_root_scope() -> None:
    assert Scope() == ROOT_SCOPE
    tr = Transition(Decider(), _workflow(), 5)
    task = tr.wf.tasks[0]
    assert tr.scope_of(task) is ROOT_SCOPE
    task.loop_id, task.iteration = "l", 3
    assert tr.scope_of(task) == Scope("l", 3, None)


@pytest.mark.parametrize(
    "workflow_id",
    [
        "0190c7a2-1234-7abc-8def-0123456789ab",  # version 7, as edged makes them
        "0190C7A2-12AB-7ABC-8DEF-0123456789AB",  # upper case: spelled in lower case
        "0190c7a2-1234-8abc-8def-0123456789ab",  # derived from a version 7 id
        "12 34 56-78 9-7abc-8def-0123456789ab",  # fromhex skips spaces: the slow path
        "0190c7a2-12g4-7abc-8def-0123456789ab",  # not hex
        "6f1c4d2e-5b7a-4c3e-9a8d-0e2f4b6c8a1d",  # version 4
        "wf-1",
        "",
    ],
)
def test_task_ids_equal_derive_id(workflow_id: str) -> None:
    ids = _TaskIds(workflow_id)
    for seq in (1, 2, 10, 12345):
        assert ids.of(seq) == derive_id(workflow_id, str(seq))


_NO = object()


@pytest.mark.parametrize("root", ["workflow", "a", "b", "b__2", "nope"])
def test_get_in_reads_as_get_then_get(root: str) -> None:
    wf = _workflow()
    keys = [*workflow_view(wf), *task_view(wf, wf.tasks[0]), "nope"]
    for fetched_first in (False, True):
        ctx = ExpressionContext(wf)
        if fetched_first:
            ctx.get(root)
        for key in keys:
            view = ExpressionContext(wf).get(root, _NO)
            expected = _NO if view is _NO else view.get(key, _NO)
            assert ctx.get_in(root, key, _NO) == expected, (root, key)


@pytest.mark.parametrize(
    "template",
    [
        {"m": "${workflow.input}", "n": "${workflow.input.n}", "lit": "x", "k": 1},
        {"seq": "${a.output.seq}", "out": "${b.output}", "it": "${b.iteration}"},
        {"x": "${nope.output.x}", "y": "${workflow.nope.x}", "z": "${workflow.input.n.deeper}"},
        {"wf": "${workflow}", "home": "${HOME}", "home_x": "${HOME.x}", "id": "${CPEWF_TASK_ID}"},
        {"status": "${a.status}", "type": "${workflow.workflowType}", "text": "n=${a.output.seq}"},
    ],
)
def test_resolve_params_reads_a_context_as_any_mapping(template: dict[str, Any]) -> None:
    wf = _workflow()
    env = {"HOME": "/home/edged"}
    plain = {
        "workflow": workflow_view(wf),
        "a": task_view(wf, wf.tasks[2]),
        "b": task_view(wf, wf.tasks[1]),
    }
    got = resolve_params(template, ExpressionContext(wf), task_id="t9", env=env)
    assert got == resolve_params(template, plain, task_id="t9", env=env)
    assert got == resolve(template, ExpressionContext(wf), task_id="t9", env=env)
    assert list(got) == list(template)


@pytest.mark.parametrize(
    "node",
    [
        {"taskReferenceName": "t", "name": "t", "type": "INLINE", "inputParameters": {"v": 1}},
        {"taskReferenceName": "t", "inputParameters": {"n": "${workflow.input.n}"}},  # SIMPLE
        {"taskReferenceName": "t", "name": 7, "type": "WAIT"},  # a name that is no string
        {"taskReferenceName": "t", "type": "SIMPLE", "inputParameters": {}},
        {
            "taskReferenceName": "t",
            "name": "work",
            "taskDefinition": {"name": "work", "inputTemplate": {"d": 1, "v": 0}},
            "inputParameters": {"v": "${workflow.input.n}"},
        },
    ],
)
def test_a_definition_node_makes_the_task_a_copy_of_it_makes(node: dict[str, Any]) -> None:
    wf = _workflow()
    wf.definition = {"name": "d", "tasks": [node]}
    tr = Transition(Decider(), wf, 5)
    assert id(node) in tr.index.facts  # read once, with the index
    pinned = tr.new_task(node, ROOT_SCOPE)
    for kw in ({}, {"task_type": "SIMPLE", "def_name": "other"}):
        via_index = tr.new_task(node, Scope("l", 2, None), **kw)
        copied = tr.new_task(dict(node), Scope("l", 2, None), **kw)
        for field in ("ref", "task_type", "def_name", "input", "taskdef", "iteration"):
            assert getattr(via_index, field) == getattr(copied, field), field
    assert (pinned.ref, pinned.iteration) == ("t", 0)


@pytest.mark.parametrize(
    "tasks",
    [
        [],
        [{"taskReferenceName": "s", "type": "SET_VARIABLE", "inputParameters": {"v": 1}}],
        [
            {
                "taskReferenceName": "w",
                "name": "work",
                "inputParameters": {"n": "${workflow.input.n}"},
            }
        ],
    ],
)
@pytest.mark.parametrize("state", ["new", "started", "terminal"])
def test_decider_start_decides_as_workflow_started(tasks: list[Any], state: str) -> None:
    def fresh() -> Workflow:
        wf = Workflow(
            workflow_id="0190c7a2-1234-7abc-8def-0123456789ab",
            definition={"name": "d", "version": 2, "timeoutSeconds": 60, "tasks": tasks},
            status=WorkflowStatus.TERMINATED if state == "terminal" else WorkflowStatus.RUNNING,
            input={"n": 1},
            created_ms=1000,
        )
        if state == "started":
            wf.tasks = _workflow().tasks
        return wf

    by_event, by_start = fresh(), fresh()
    decision = Decider().decide(by_event, WorkflowStarted(by_event.created_ms))
    assert Decider().start(by_start) == decision
    assert by_start == by_event
