"""The start path's shortcuts (lazy views, parameter plans, per-transition task ids)
answer exactly what the general paths do."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edged.core.decider import ROOT_SCOPE, Decider, Scope, Transition, derive_id
from edged.core.model import Task, TaskStatus, Workflow, WorkflowStatus
from edged.core.views import ExpressionContext, task_view, workflow_view
from edged.expr.params import _copy, resolve, resolve_params
from edged.ids import new_execution_id


def _workflow(workflow_id: str = "w") -> Workflow:
    wf = Workflow(
        workflow_id=workflow_id,
        definition={"name": "d", "version": 3},
        status=WorkflowStatus.RUNNING,
        input={"n": 1, "m": {"deep": [1, 2.5, None, True]}, "s": "x"},
        created_ms=7,
        variables={"v": 1},
    )
    for seq, ref in enumerate(["a", "b__2", "a"], start=1):
        wf.tasks.append(
            Task(
                task_id=f"t{seq}",
                seq=seq,
                ref=ref,
                task_type="DO_WHILE" if ref == "b__2" else "SIMPLE",
                def_name=ref,
                wt={},
                status=TaskStatus.COMPLETED,
                input={"i": seq},
                output={"seq": seq, "iteration": 2, "list": [{"k": seq}]},
                iteration=2 if "__" in ref else 0,
            )
        )
    return wf


def test_lazy_views_equal_the_dict_views_key_for_key_in_order() -> None:
    wf = _workflow()
    ctx = ExpressionContext(wf)
    for view, expected in (
        (ctx.get("workflow"), workflow_view(wf)),
        (ctx.get("a"), task_view(wf, wf.tasks[2])),
        (ctx.get("b"), task_view(wf, wf.tasks[1])),
    ):
        assert list(view) == list(expected)
        assert view == expected and len(view) == len(expected)
        assert _copy(view) == expected and type(_copy(view)) is dict
        assert all(view[k] == v and view.get(k) == v and k in view for k, v in expected.items())
        assert view.get("nope") is None and view.get("nope", 3) == 3 and "nope" not in view
        with pytest.raises(KeyError):
            view["nope"]


TEMPLATES = [
    "${workflow}",
    "${workflow.input}",
    "${workflow.input.m.deep}",
    "${workflow.input.m.deep[1]}",
    "${workflow.status}-${workflow.version}",
    "${workflow.workflowType}",
    "${a.output}",
    "${a.output.list[0].k}",
    "${b.iteration}",
    "${b.output..k}",
    "${a.output.keys()}",
    "${workflow.input.length()}",
    "${CPEWF_TASK_ID}",
    "${HOME}",
    "${HOME.x}",
    "${nope.output}",
    "${}",
    "${a[}",
    "$${workflow.input.n}",
    "plain",
    "",
    1,
    2.5,
    None,
    True,
    ["${workflow.input.n}", 3],
    {"x": "${a.output.seq}", "y": [{"z": "${workflow.input.s}"}]},
]


@given(
    st.dictionaries(st.sampled_from("abcdefgh"), st.sampled_from(TEMPLATES), max_size=6),
    st.sampled_from([None, "tid"]),
)
def test_resolve_params_equals_resolve(template: dict[str, Any], task_id: str | None) -> None:
    wf = _workflow()
    env = {"HOME": "/home/edge"}
    expected = resolve(template, ExpressionContext(wf), task_id=task_id, env=env)
    for _ in range(2):  # the plan is made, then reused
        got = resolve_params(template, ExpressionContext(wf), task_id=task_id, env=env)
        assert got == expected
        assert list(got) == list(expected)


def test_resolved_parameters_never_share_containers_with_the_state() -> None:
    wf = _workflow()
    got = resolve_params({"m": "${workflow.input.m}"}, ExpressionContext(wf))
    got["m"]["deep"].append("changed")
    assert wf.input["m"]["deep"] == [1, 2.5, None, True]


@pytest.mark.parametrize(
    "workflow_id", ["w", new_execution_id(), derive_id(new_execution_id(), "1"), "0" * 36]
)
def test_transition_task_ids_equal_derive_id(workflow_id: str) -> None:
    wf = _workflow(workflow_id)
    tr = Transition(Decider(), wf, 5)
    for seq in (1, 2, 10, 12345):
        assert tr.task_id(seq) == derive_id(workflow_id, str(seq))
    task = tr.new_task({"taskReferenceName": "x", "type": "NOOP"}, ROOT_SCOPE)
    assert task.task_id == derive_id(workflow_id, str(task.seq))


def test_a_definition_node_resolves_through_its_plan_like_any_other() -> None:
    definition: dict[str, Any] = {
        "name": "d",
        "tasks": [
            {
                "taskReferenceName": "x",
                "type": "NOOP",
                "inputParameters": {"n": "${workflow.input.n}", "t": "${CPEWF_TASK_ID}"},
            }
        ],
        "outputParameters": {"n": "${x.input.n}", "all": "${workflow.input}"},
    }
    wf = Workflow("w", definition, WorkflowStatus.RUNNING, {"n": 4}, created_ms=1)
    tr = Transition(Decider(), wf, 5)
    node = definition["tasks"][0]
    task = tr.new_task(node, ROOT_SCOPE)
    assert task.input == {"n": 4, "t": task.task_id}
    copy = {**node, "inputParameters": dict(node["inputParameters"])}  # not the pinned node
    assert tr.new_task(copy, ROOT_SCOPE).input["n"] == 4
    assert tr.workflow_output() == {"n": 4, "all": {"n": 4}}


@pytest.mark.parametrize("scope", [ROOT_SCOPE, Scope(), Scope("loop", 2, "fork")])
def test_a_new_task_has_every_field_a_keyword_construction_gives(scope: Scope) -> None:
    wf = _workflow()
    tr = Transition(Decider(lambda name: {"name": name, "retryCount": 1}), wf, 9)
    wt = {"taskReferenceName": "x", "type": "SIMPLE", "inputParameters": {"n": 1}}
    task = tr.new_task(wt, scope)
    assert task == Task(
        task_id=task.task_id,
        seq=task.seq,
        ref="x__2" if scope.iteration else "x",
        task_type="SIMPLE",
        def_name="x",
        wt=wt,
        status=TaskStatus.SCHEDULED,
        input={"n": 1},
        scheduled_ms=9,
        update_ms=9,
        iteration=scope.iteration,
        taskdef=task.taskdef,
        loop_id=scope.loop_id,
        fork_id=scope.fork_id,
    )
    assert task.taskdef is not None and task.taskdef["retryCount"] == 1
