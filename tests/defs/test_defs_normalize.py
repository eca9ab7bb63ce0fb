"""Normalization fills every default at every depth, is idempotent, never mutates."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from edged.defs import normalize_taskdef, normalize_workflow, validate_workflow


def nested_workflow() -> dict[str, Any]:
    return {
        "name": "wf",
        "tasks": [
            {
                "name": "s",
                "taskReferenceName": "s",
                "type": "SWITCH",
                "evaluatorType": "value-param",
                "expression": "k",
                "decisionCases": {
                    "x": [
                        {
                            "name": "f",
                            "taskReferenceName": "f",
                            "type": "FORK_JOIN",
                            "forkTasks": [[{"name": "a", "taskReferenceName": "a"}]],
                        },
                        {"name": "j", "taskReferenceName": "j", "type": "JOIN", "joinOn": ["a"]},
                    ]
                },
            },
            {
                "name": "l",
                "taskReferenceName": "l",
                "type": "DO_WHILE",
                "loopCondition": "false",
                "loopOver": [{"name": "e", "taskReferenceName": "e", "type": "EXCLUSIVE_JOIN"}],
            },
        ],
    }


def test_defaults_at_every_depth() -> None:
    doc = nested_workflow()
    assert validate_workflow(doc) == []
    out = normalize_workflow(doc)
    assert out["version"] == 1 and out["schemaVersion"] == 2 and out["restartable"] is True
    assert out["timeoutPolicy"] == "ALERT_ONLY" and out["failureWorkflow"] == ""
    assert out["inputParameters"] == [] and out["outputParameters"] == {} and out["variables"] == {}
    switch = out["tasks"][0]
    assert switch["defaultCase"] == [] and switch["optional"] is False
    fork = switch["decisionCases"]["x"][0]
    leaf = fork["forkTasks"][0][0]
    assert leaf["type"] == "SIMPLE" and leaf["inputParameters"] == {} and leaf["startDelay"] == 0
    assert leaf["asyncComplete"] is False and leaf["permissive"] is False
    exclusive = out["tasks"][1]["loopOver"][0]
    assert exclusive["joinOn"] == [] and exclusive["defaultExclusiveJoinTask"] == []
    assert "ownerEmail" not in out


def test_taskdef_defaults_match_conductor() -> None:
    out = normalize_taskdef({"name": "t", "retryCount": 0})
    assert out == {
        "name": "t",
        "retryCount": 0,
        "timeoutSeconds": 0,
        "inputKeys": [],
        "outputKeys": [],
        "timeoutPolicy": "TIME_OUT_WF",
        "retryLogic": "FIXED",
        "retryDelaySeconds": 60,
        "responseTimeoutSeconds": 3600,
        "concurrentExecLimit": None,
        "inputTemplate": {},
        "rateLimitPerFrequency": 0,
        "rateLimitFrequencyInSeconds": 1,
        "pollTimeoutSeconds": None,
        "backoffScaleFactor": 1,
    }


def test_defaults_are_not_shared_between_results() -> None:
    a = normalize_workflow(nested_workflow())
    b = normalize_workflow(nested_workflow())
    a["variables"]["x"] = 1
    a["tasks"][1]["inputParameters"]["y"] = 2
    assert b["variables"] == {} and b["tasks"][1]["inputParameters"] == {}


JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
TASK_TYPES = st.sampled_from(
    ["SIMPLE", "SWITCH", "DECISION", "FORK_JOIN", "JOIN", "DO_WHILE", "WAIT"]
)


@st.composite
def task_trees(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    ref = draw(st.text("abcdefgh", min_size=1, max_size=6))
    task: dict[str, Any] = {"name": ref, "taskReferenceName": ref}
    if draw(st.booleans()):
        task["type"] = draw(TASK_TYPES)
    optional = st.dictionaries(
        st.sampled_from(["optional", "startDelay", "inputParameters", "description"]),
        JSON_SCALARS,
        max_size=2,
    )
    task.update(draw(optional))
    if depth < 3 and task.get("type") in ("SWITCH", "DECISION"):
        task["decisionCases"] = {"x": draw(st.lists(task_trees(depth + 1), max_size=2))}
    if depth < 3 and task.get("type") == "FORK_JOIN":
        task["forkTasks"] = draw(st.lists(st.lists(task_trees(depth + 1), max_size=2), max_size=2))
    if depth < 3 and task.get("type") == "DO_WHILE":
        task["loopOver"] = draw(st.lists(task_trees(depth + 1), max_size=2))
    return task


@settings(max_examples=150, deadline=None)
@given(
    st.lists(task_trees(), min_size=1, max_size=4),
    st.dictionaries(st.sampled_from(["version", "variables", "restartable"]), JSON_SCALARS),
)
def test_normalize_is_idempotent_and_pure(
    tasks: list[dict[str, Any]], extra: dict[str, Any]
) -> None:
    doc = {"name": "wf", "tasks": tasks, **extra}
    before = copy.deepcopy(doc)
    once = normalize_workflow(doc)
    assert doc == before
    assert normalize_workflow(once) == once
    # Existing values are kept, null ones filled.
    for key, value in extra.items():
        assert once[key] == (value if value is not None else normalize_workflow({"tasks": []})[key])
