"""Fuzzing: whatever comes in, only faults come out, and quickly.

load_text must answer any text with Definitions or a DefinitionError, and
validate_workflow/validate_taskdef/lint_warnings must answer any JSON value
with a list of Faults: never another exception, never a hang.
"""

from __future__ import annotations

import json
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from edged.defs import (
    DefinitionError,
    Fault,
    lint_warnings,
    load_text,
    normalize_workflow,
    validate_taskdef,
    validate_workflow,
)

TIME_BOUND_S = 2.0

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)

VALID = {
    "name": "wf",
    "tasks": [
        {"name": "a", "taskReferenceName": "a", "inputParameters": {"x": "${workflow.input.x}"}},
        {
            "name": "f",
            "taskReferenceName": "f",
            "type": "FORK_JOIN",
            "forkTasks": [
                [{"name": "b", "taskReferenceName": "b"}],
                [{"name": "c", "taskReferenceName": "c", "type": "WAIT"}],
            ],
        },
        {"name": "j", "taskReferenceName": "j", "type": "JOIN", "joinOn": ["b", "c"]},
        {
            "name": "s",
            "taskReferenceName": "s",
            "type": "SWITCH",
            "evaluatorType": "value-param",
            "expression": "k",
            "decisionCases": {
                "x": [
                    {
                        "name": "d",
                        "taskReferenceName": "d",
                        "type": "TERMINATE",
                        "inputParameters": {"terminationStatus": "FAILED"},
                    }
                ]
            },
        },
        {
            "name": "l",
            "taskReferenceName": "l",
            "type": "DO_WHILE",
            "loopCondition": "false",
            "loopOver": [{"name": "e", "taskReferenceName": "e"}],
        },
    ],
    "outputParameters": {"r": "${e.output}"},
}


def paths_in(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out.extend(paths_in(v, (*prefix, k)))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(paths_in(v, (*prefix, i)))
    return out


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    doc: Any = json.loads(json.dumps(VALID))
    for _ in range(draw(st.integers(1, 4))):
        spots = [p for p in paths_in(doc) if p]
        if not spots:
            break
        path = draw(st.sampled_from(spots))
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["drop", "swap", "nest"]))
        if action == "drop":
            del parent[path[-1]]
        elif action == "swap":
            parent[path[-1]] = draw(json_values)
        else:
            deep: Any = parent[path[-1]]
            for _ in range(draw(st.integers(1, 200))):
                deep = [deep] if draw(st.booleans()) else {"tasks": deep}
            parent[path[-1]] = deep
    return doc


def check_answer(text: str) -> None:
    start = time.monotonic()
    try:
        defs = load_text(text)
    except DefinitionError as e:
        assert e.faults and all(isinstance(f, Fault) and f.message for f in e.faults)
    else:
        assert all(isinstance(w, Fault) for w in defs.warnings)
    assert time.monotonic() - start < TIME_BOUND_S


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text(text: str) -> None:
    check_answer(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet='{}[]:,"\n -&*!|>abc123', max_size=120))
def test_structured_garbage(text: str) -> None:
    check_answer(text)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_arbitrary_json_values(value: Any) -> None:
    for check in (validate_workflow, validate_taskdef, lint_warnings):
        assert all(isinstance(f, Fault) for f in check(value))
    check_answer(json.dumps(value))


@settings(max_examples=300, deadline=None)
@given(mutated())
def test_mutated_definitions(doc: Any) -> None:
    start = time.monotonic()
    found = validate_workflow(doc)
    assert all(isinstance(f, Fault) for f in found)
    if not found:
        normal = normalize_workflow(doc)
        assert validate_workflow(normal) == [] and normalize_workflow(normal) == normal
    assert all(isinstance(f, Fault) for f in lint_warnings(doc))
    assert time.monotonic() - start < TIME_BOUND_S
    try:
        text = json.dumps(doc)
    except RecursionError:
        return  # the JSON encoder's limit, not ours: validate_workflow above already coped
    check_answer(text)


def test_valid_base_is_valid() -> None:
    assert validate_workflow(VALID) == []
    assert load_text(json.dumps(VALID)).workflows[0]["name"] == "wf"


def test_pathological_inputs_are_fast() -> None:
    start = time.monotonic()
    wide = {
        "name": "wf",
        "tasks": [
            {"name": "t", "taskReferenceName": f"t{i}", "inputParameters": {"x": "${" * 50}}
            for i in range(9_000)
        ],
    }
    text = json.dumps(wide)
    assert load_text(text).workflows
    deep_value: Any = "x"
    for _ in range(100_000):
        deep_value = [deep_value]
    doc = {
        "name": "wf",
        "tasks": [{"name": "a", "taskReferenceName": "a", "inputParameters": {"v": deep_value}}],
    }
    found = [f.message for f in validate_workflow(doc)]  # depth-capped: no RecursionError
    assert found == ["value nested deeper than 64 levels"]
    assert time.monotonic() - start < 10
