"""One test per definition footgun: the exact path and message of each fault."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from edged.defs import (
    KNOWN_TASK_TYPES,
    lint_warnings,
    register_task_type,
    validate_taskdef,
    validate_workflow,
)
from edged.errors import BadInput


def simple(ref: str, **extra: Any) -> dict[str, Any]:
    return {"name": ref, "taskReferenceName": ref, "type": "SIMPLE", **extra}


def workflow(*tasks: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"name": "wf", "tasks": list(tasks) or [simple("a")], **extra}


def faults(doc: Any) -> list[tuple[str, str]]:
    return [(f.path, f.message) for f in validate_workflow(doc)]


def test_valid_workflow_has_no_faults() -> None:
    assert faults(workflow(simple("a"), simple("b", inputParameters={"x": "${a.output.y}"}))) == []


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"tasks": [simple("a")]}, [("name", "missing workflow name")]),
        (workflow(name="  "), [("name", "missing workflow name")]),
        (workflow(name=7), [("name", "expected a string, got number")]),
        (workflow(name="a:b"), [("name", "workflow name must not contain ':'")]),
        ({"name": "wf"}, [("tasks", "missing: a workflow needs a list of tasks")]),
        ({"name": "wf", "tasks": {}}, [("tasks", "expected an array of tasks, got object")]),
        ({"name": "wf", "tasks": []}, [("tasks", "must hold at least one task")]),
        ([], [("", "a workflow definition must be an object, got array")]),
    ],
)
def test_workflow_shape(doc: Any, expected: list[tuple[str, str]]) -> None:
    assert faults(doc) == expected


def test_task_without_name_or_ref() -> None:
    assert faults(workflow({"type": "SIMPLE"})) == [
        ("tasks[0].name", "missing task name"),
        ("tasks[0].taskReferenceName", "missing taskReferenceName"),
    ]
    assert faults(workflow("oops")) == [("tasks[0]", "a task must be an object, got string")]


def test_unknown_task_type_suggests() -> None:
    doc = workflow(
        {
            "name": "s",
            "taskReferenceName": "s",
            "type": "SWITCH",
            "evaluatorType": "value-param",
            "expression": "k",
            "decisionCases": {"hot": [simple("a", type="HTTTP")]},
        }
    )
    assert faults(doc) == [
        ("tasks[0].decisionCases.hot[0].type", 'unknown task type "HTTTP" (did you mean "HTTP"?)')
    ]
    assert faults(workflow(simple("a", type="Wait"))) == [
        ("tasks[0].type", 'unknown task type "Wait" (did you mean "WAIT"?)')
    ]


def test_register_task_type() -> None:
    assert faults(workflow(simple("a", type="SERIAL_COMMAND")))
    register_task_type("SERIAL_COMMAND")
    try:
        assert faults(workflow(simple("a", type="SERIAL_COMMAND"))) == []
    finally:
        KNOWN_TASK_TYPES.discard("SERIAL_COMMAND")
    with pytest.raises(BadInput):
        register_task_type("lower")


def test_duplicate_refs_anywhere_in_the_tree() -> None:
    doc = workflow(
        {
            "name": "f",
            "taskReferenceName": "f",
            "type": "FORK_JOIN",
            "forkTasks": [[simple("a")], [simple("b")]],
        },
        {"name": "j", "taskReferenceName": "j", "type": "JOIN", "joinOn": ["a", "b"]},
        {
            "name": "l",
            "taskReferenceName": "l",
            "type": "DO_WHILE",
            "loopCondition": "false",
            "loopOver": [simple("a")],
        },
    )
    assert faults(doc) == [
        (
            "tasks[2].loopOver[0].taskReferenceName",
            'duplicate taskReferenceName "a" (first used at tasks[0].forkTasks[0][0])',
        )
    ]


def fork(ref: str, *branches: list[dict[str, Any]], kind: str = "FORK_JOIN") -> dict[str, Any]:
    return {"name": ref, "taskReferenceName": ref, "type": kind, "forkTasks": list(branches)}


def join(ref: str, *on: str) -> dict[str, Any]:
    return {"name": ref, "taskReferenceName": ref, "type": "JOIN", "joinOn": list(on)}


def test_fork_must_be_followed_by_join() -> None:
    assert faults(workflow(fork("f", [simple("a")]), simple("b"))) == [
        ("tasks[0]", "FORK_JOIN must be followed immediately by a JOIN task in the same list")
    ]
    dyn = {
        "name": "d",
        "taskReferenceName": "d",
        "type": "FORK_JOIN_DYNAMIC",
        "dynamicForkTasksParam": "t",
        "dynamicForkTasksInputParamName": "i",
    }
    assert faults(workflow(dyn)) == [
        (
            "tasks[0]",
            "FORK_JOIN_DYNAMIC must be followed immediately by a JOIN task in the same list",
        )
    ]
    assert faults(workflow(dyn, join("j"))) == []


def test_join_on_must_name_fork_branch_tasks() -> None:
    doc = workflow(
        fork("f", [simple("a1"), simple("a2")], [simple("b")]), join("j", "a2", "bb"), simple("c")
    )
    assert faults(doc) == [
        (
            "tasks[1].joinOn[1]",
            '"bb" is not a task of the FORK_JOIN at tasks[0] (did you mean "b"?)',
        )
    ]


def test_empty_join_on_is_a_warning_not_a_fault() -> None:
    doc = workflow(fork("f", [simple("a")]), join("j"))
    assert faults(doc) == []
    assert [(w.path, w.message) for w in lint_warnings(doc)] == [
        ("tasks[1].joinOn", "empty: this JOIN waits for none of the FORK_JOIN's branches")
    ]


def test_fork_without_branches() -> None:
    assert faults(workflow(fork("f"), join("j"))) == [
        ("tasks[0].forkTasks", "FORK_JOIN needs at least one branch in forkTasks")
    ]


def test_do_while_needs_body_and_condition() -> None:
    loop = {"name": "l", "taskReferenceName": "l", "type": "DO_WHILE"}
    assert faults(workflow(loop)) == [
        ("tasks[0].loopOver", "DO_WHILE needs tasks in loopOver"),
        ("tasks[0].loopCondition", "DO_WHILE needs a loopCondition (or items to iterate over)"),
    ]
    with_items = dict(
        loop, loopOver=[simple("a")], inputParameters={"items": "${workflow.input.xs}"}
    )
    assert faults(workflow(with_items)) == []


def switch(**fields: Any) -> dict[str, Any]:
    return {
        "name": "s",
        "taskReferenceName": "s",
        "type": "SWITCH",
        "decisionCases": {"x": [simple("a")]},
        **fields,
    }


def test_switch_needs_evaluator_and_expression() -> None:
    assert faults(workflow(switch())) == [
        (
            "tasks[0].evaluatorType",
            "SWITCH needs evaluatorType (value-param, javascript or graaljs)",
        ),
        ("tasks[0].expression", "SWITCH needs an expression"),
    ]
    assert faults(workflow(switch(evaluatorType="javascrpt", expression="1"))) == [
        (
            "tasks[0].evaluatorType",
            '"javascrpt" is not one of graaljs, javascript, value-param (did you mean "javascript"?)',
        )
    ]
    assert faults(workflow(switch(evaluatorType="graaljs", expression="1", decisionCases={}))) == [
        ("tasks[0].decisionCases", "SWITCH needs at least one case")
    ]


def test_decision_needs_case_param() -> None:
    doc = workflow(
        {
            "name": "d",
            "taskReferenceName": "d",
            "type": "DECISION",
            "decisionCases": {"x": [simple("a")]},
        }
    )
    assert faults(doc) == [
        ("tasks[0].caseValueParam", "DECISION needs caseValueParam or caseExpression")
    ]


def test_sub_workflow_needs_a_target() -> None:
    sub = {"name": "s", "taskReferenceName": "s", "type": "SUB_WORKFLOW"}
    assert faults(workflow(sub)) == [
        ("tasks[0].subWorkflowParam", "SUB_WORKFLOW needs subWorkflowParam with a name")
    ]
    assert faults(workflow(dict(sub, subWorkflowParam={"version": 1}))) == [
        (
            "tasks[0].subWorkflowParam.name",
            "SUB_WORKFLOW needs subWorkflowParam.name or an inline workflowDefinition",
        )
    ]
    # An inline definition is a workflow of its own: its own faults, its own references.
    inline = {"name": "child", "tasks": [simple("a", type="HTTTP")]}
    assert faults(
        workflow(simple("a"), dict(sub, subWorkflowParam={"workflowDefinition": inline}))
    ) == [
        (
            "tasks[1].subWorkflowParam.workflowDefinition.tasks[0].type",
            'unknown task type "HTTTP" (did you mean "HTTP"?)',
        )
    ]


def test_wait_takes_one_of_duration_and_until() -> None:
    wait = simple("w", type="WAIT", inputParameters={"duration": "5s", "until": "2030-01-01 00:00"})
    assert faults(workflow(wait)) == [
        ("tasks[0].inputParameters.until", "WAIT takes duration or until, not both")
    ]


def test_terminate_status() -> None:
    term = simple("t", type="TERMINATE", inputParameters={"terminationStatus": "DONE"})
    assert faults(workflow(term)) == [
        (
            "tasks[0].inputParameters.terminationStatus",
            '"DONE" is not allowed: TERMINATE needs COMPLETED, FAILED or TERMINATED',
        )
    ]
    for status in ("COMPLETED", "FAILED", "TERMINATED"):
        assert (
            faults(
                workflow(
                    simple("t", type="TERMINATE", inputParameters={"terminationStatus": status})
                )
            )
            == []
        )


@pytest.mark.parametrize(
    ("kind", "path", "message"),
    [
        (
            "INLINE",
            "tasks[0].inputParameters.expression",
            "INLINE needs the script in inputParameters.expression",
        ),
        (
            "LAMBDA",
            "tasks[0].inputParameters.scriptExpression",
            "LAMBDA needs the script in inputParameters.scriptExpression",
        ),
        (
            "JSON_JQ_TRANSFORM",
            "tasks[0].inputParameters.queryExpression",
            "JSON_JQ_TRANSFORM needs inputParameters.queryExpression",
        ),
        ("DYNAMIC", "tasks[0].dynamicTaskNameParam", "DYNAMIC needs dynamicTaskNameParam"),
        ("EVENT", "tasks[0].sink", "EVENT needs a sink"),
    ],
)
def test_script_and_required_inputs(kind: str, path: str, message: str) -> None:
    assert faults(workflow(simple("t", type=kind))) == [(path, message)]


def test_references() -> None:
    params = {
        "ok": "${workflow.input.x} ${a.output.y} ${a__3.output} ${CPEWF_TASK_ID} ${NODE_ID} $${literal}",
        "nested": [{"deep": "pre ${aa.output.y} post"}],
    }
    doc = workflow(
        simple("a"),
        simple("b", inputParameters=params),
        outputParameters={"o": "${b.output}", "p": "${bb.x}"},
    )
    assert faults(doc) == [
        (
            "tasks[1].inputParameters.nested[0].deep",
            '"${aa.output.y}" refers to unknown task reference "aa" (did you mean "a"?)',
        ),
        (
            "outputParameters.p",
            '"${bb.x}" refers to unknown task reference "bb" (did you mean "b"?)',
        ),
    ]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("timeoutPolicy", "RETRY", '"RETRY" is not one of ALERT_ONLY, TIME_OUT_WF'),
        ("timeoutSeconds", -1, "must be >= 0, got -1"),
        ("timeoutSeconds", "60", "expected an integer, got string"),
        ("restartable", "yes", "expected true or false, got string"),
        ("schemaVersion", 1, "only schemaVersion 2 is supported, got 1"),
        ("ownerEmail", "nobody", '"nobody" is not an email address'),
    ],
)
def test_workflow_fields(field: str, value: Any, message: str) -> None:
    assert faults(workflow(**{field: value})) == [(field, message)]


def taskdef_faults(doc: Any) -> list[tuple[str, str]]:
    return [(f.path, f.message) for f in validate_taskdef(doc)]


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ({"name": "t"}, []),
        ({}, [("name", "missing task definition name")]),
        (
            {"name": "t", "timeoutPolicy": "TIME_OUT"},
            [
                (
                    "timeoutPolicy",
                    '"TIME_OUT" is not one of ALERT_ONLY, RETRY, TIME_OUT_WF (did you mean "TIME_OUT_WF"?)',
                )
            ],
        ),
        (
            {"name": "t", "retryLogic": "LINEAR"},
            [
                (
                    "retryLogic",
                    '"LINEAR" is not one of EXPONENTIAL_BACKOFF, FIXED, LINEAR_BACKOFF (did you mean "LINEAR_BACKOFF"?)',
                )
            ],
        ),
        ({"name": "t", "retryCount": -2}, [("retryCount", "must be >= 0, got -2")]),
        (
            {"name": "t", "retryDelaySeconds": 1.5},
            [("retryDelaySeconds", "expected an integer, got number")],
        ),
        (
            {"name": "t", "timeoutSeconds": 60, "responseTimeoutSeconds": 61},
            [("responseTimeoutSeconds", "must be <= timeoutSeconds (61 > 60)")],
        ),
        (
            {"name": "t", "timeoutSeconds": 60},
            [
                (
                    "responseTimeoutSeconds",
                    "defaults to 3600, which exceeds timeoutSeconds 60; set it to at most 60",
                )
            ],
        ),
        ({"name": "t", "timeoutSeconds": 0, "responseTimeoutSeconds": 7200}, []),
        (
            {"name": "t", "responseTimeoutSeconds": 0},
            [("responseTimeoutSeconds", "must be >= 1, got 0")],
        ),
    ],
)
def test_taskdef(doc: Any, expected: list[tuple[str, str]]) -> None:
    assert taskdef_faults(doc) == expected


def test_lint_flags_unknown_keys_with_suggestions() -> None:
    doc = workflow(simple("a", inputParamters={}), triggers=[], outputParamters={})
    assert [(w.path, w.message) for w in lint_warnings(doc)] == [
        ("outputParamters", 'unknown key (did you mean "outputParameters"?)'),
        ("tasks[0].inputParamters", 'unknown key (did you mean "inputParameters"?)'),
    ]
    assert faults(doc) == []  # unknown keys never block


def test_every_fault_is_reported_at_once() -> None:
    bad = workflow(
        simple("a", type="HTTTP"),
        simple("a", startDelay=-1),
        simple("c", inputParameters={"x": "${zz.y}"}),
    )
    assert len(faults(bad)) == 4
    assert validate_workflow(copy.deepcopy(bad)) == validate_workflow(bad)
