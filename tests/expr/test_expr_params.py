"""Parameter wiring: Conductor's ParametersUtils behaviour, checked case by case.

Expected values in the tables below were produced by running Conductor's
replaceVariables (its regex, Jayway json-path 2.10) on a JVM over the same
documents.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edged.expr import find_references, resolve
from edged.expr.params import _copy, java_double, java_str
from tests.container_ids import container_ids

CTX: dict[str, Any] = {
    "workflow": {
        "input": {
            "x": 1,
            "f": 1.5,
            "big": 1e20,
            "s": "str",
            "b": True,
            "n": None,
            "m": {"a": 1, "b": [1, 2]},
            "l": [1, "two", {"c": 3}],
            "k.dot": "dotted",
            "key": "s",
            "e": [],
            "a b": 2,
            "slash": ["a/b"],
        },
        "workflowId": "wf1",
    },
    "t1": {"output": {"id": "abc", "list": [{"v": 1}, {"v": 2}]}},
}

# (template, expected) pairs confirmed against Conductor on a JVM.
CONDUCTOR_CASES = [
    # a lone reference keeps the value's type
    ("${workflow.input.x}", 1),
    ("${workflow.input.f}", 1.5),
    ("${workflow.input.b}", True),
    ("${workflow.input.m}", {"a": 1, "b": [1, 2]}),
    ("${workflow.input.l}", [1, "two", {"c": 3}]),
    ("${workflow.input}", CTX["workflow"]["input"]),
    ("${workflow.input.missing}", None),
    ("${workflow.input.x.y}", None),
    # embedded references print as Java's Objects.toString
    ("id-${workflow.input.x}", "id-1"),
    ("${workflow.input.f}-", "1.5-"),
    ("${workflow.input.big}-", "1.0E20-"),
    ("${workflow.input.b}-", "true-"),
    ("${workflow.input.n}-", "null-"),
    ("${workflow.input.missing}-", "null-"),
    ("${workflow.input.m}-", "{a=1, b=[1, 2]}-"),
    ("${workflow.input.l}-", "[1, two, {c=3}]-"),
    ("${workflow.input.e}-", "[]-"),
    ("${workflow.input.x}${workflow.input.x}", "11"),
    ("{${workflow.input.x}}", "{1}"),
    ("${workflow.input.x}}", "1}"),
    # indefinite paths give Jayway's array; embedded it prints as JSON
    ("${t1.output.list[*].v}", [1, 2]),
    ("${t1.output.list[*].v}-", "[1,2]-"),
    ("${workflow.input.slash[*]}-", '["a\\/b"]-'),
    ("${workflow.input.l[1:]}", ["two", {"c": 3}]),
    ("${workflow..x}", [1]),
    ("${a..b}", []),
    # escapes
    ("$${workflow.input.x}", "${workflow.input.x}"),
    ("a $${x} b", "a ${x} b"),
    ("$$${workflow.input.x}", "$${workflow.input.x}"),
    ("$${a}${b}", "${a}null"),
    ("$${", "${"),
    # malformed references
    ("${", "${"),
    ("${workflow.input.x", "${workflow.input.x"),
    ("${}", ""),
    ("${ }", ""),
    ("x${}y", "xy"),
    ("${a[}", None),
    ("${{workflow.input.x}}", None),
    ("${ workflow.input.x }", None),
    ("${workflow.input.x }", 1),
    ("${workflow.input.a b}", None),
    ("${x${y}", "${x${y}"),
    ("${x}${", "null${"),
    ("${a}}${b}", "null}null"),
    # JsonPath indexes, quoting and functions
    ("${workflow.input.l[0]}", 1),
    ("${workflow.input.l[-1]}", {"c": 3}),
    ("${workflow.input.l[5]}", None),
    ("${workflow.input.l[-4]}", None),
    ("${workflow.input.l.[0]}", 1),
    ("${workflow.input.s[0]}", None),
    ("${workflow.input['k.dot']}", "dotted"),
    ('${workflow.input["a b"]}', 2),
    ("${workflow.input.m['b'][1]}", 2),
    ("${$.workflow.input.x}", 1),
    ("${@.workflow.input.x}", 1),
    ("${workflow.input.l.length()}", 3),
    ("${workflow.input.m.length()}", 2),
    ("${workflow.input.l.size()}", 3),
    ("${workflow.input.s.length()}", None),
    ("${workflow.input.l.min()}", 1.0),
    ("${workflow.input.m.*}", [1, [1, 2]]),
    # nested references: the inner one names the outer path
    ("${workflow.input.${workflow.input.key}}", "str"),
    ("${CPEWF_TASK_ID}", "TID"),
    ("x-${CPEWF_TASK_ID}", "x-TID"),
]


@pytest.mark.parametrize(("template", "expected"), CONDUCTOR_CASES)
def test_matches_conductor(template: str, expected: Any) -> None:
    got = resolve(template, CTX, task_id="TID")
    assert got == expected
    assert type(got) is type(expected)


def test_whole_template_walks_dicts_and_lists_without_mutating() -> None:
    # ParametersUtilsTest.testReplaceInputWithMapAndList, in our words.
    ctx = {"name": "conductor", "version": 2, "externalId": '{"taskRefName":"t001"}'}
    template = {
        "k1": "${$.externalId}",
        "k2": "${name}",
        "k3": "${version}",
        "map": {"name": "${name}", "version": "${version}"},
        "list": ["${name}", "${version}", 7, None, ["${name}"]],
        "n": 3.5,
        "${name}": "keys are not resolved",
    }
    before = copy.deepcopy(template)
    out = resolve(template, ctx)
    assert out == {
        "k1": '{"taskRefName":"t001"}',
        "k2": "conductor",
        "k3": 2,
        "map": {"name": "conductor", "version": 2},
        "list": ["conductor", 2, 7, None, ["conductor"]],
        "n": 3.5,
        "${name}": "keys are not resolved",
    }
    assert template == before


def test_referenced_containers_are_copies() -> None:
    ctx = {"workflow": {"input": {"m": {"a": [1]}}}}
    out = resolve({"v": "${workflow.input.m}"}, ctx)
    out["v"]["a"].append(2)
    assert ctx["workflow"]["input"]["m"] == {"a": [1]}


@pytest.mark.parametrize(
    "value",
    [
        {"seq": 1, "ts": 2.5, "on": True, "none": None, "s": "x"},  # flat: no walk
        {"a": 1, "m": {"b": [1, {"c": 2}]}, "z": "last"},
        {"m": {"b": 1}, "a": 1},  # the container first
        {"a": 1, "l": [1, [2]]},  # the container last
        [1, {"a": [2]}, [3, {"b": 4}]],
        {},
    ],
)
def test_copies_share_no_container(value: Any) -> None:
    copied = _copy(value)
    assert copied == value
    assert not set(container_ids(copied)) & set(container_ids(value))
    assert list(copied) == list(value)  # keys keep their order


def test_task_id_without_task_id_stays_literal() -> None:
    assert resolve("${CPEWF_TASK_ID}", {}) == "${CPEWF_TASK_ID}"
    assert resolve("a-${CPEWF_TASK_ID}", {}) == "a-${CPEWF_TASK_ID}"


def test_env_is_consulted_only_after_ctx() -> None:
    env = {"SITE": "north", "workflow": "shadowed"}
    ctx = {"workflow": {"input": {"x": 1}}}
    assert resolve("${SITE}", ctx, env=env) == "north"
    assert resolve("at-${SITE}", ctx, env=env) == "at-north"
    assert resolve("${workflow.input.x}", ctx, env=env) == 1
    assert resolve("${SITE.x}", ctx, env=env) is None
    assert resolve("${HOME}", ctx, env=env) is None  # not allow-listed
    assert resolve("${HOME}", ctx) is None


class LazyCtx(Mapping[str, Any]):
    """A ctx that builds views on demand and refuses to be iterated."""

    def __init__(self, views: dict[str, Any]) -> None:
        self.views = views
        self.asked: list[str] = []

    def __getitem__(self, key: str) -> Any:
        self.asked.append(key)
        return self.views[key]

    def __iter__(self) -> Iterator[str]:
        raise AssertionError("resolve must not iterate ctx")

    def __len__(self) -> int:
        raise AssertionError("resolve must not size ctx")


def test_lazy_ctx_is_only_probed() -> None:
    ctx = LazyCtx({"workflow": {"input": {"x": 1}}, "t": {"output": {"y": 2}}})
    template = {"a": "${workflow.input.x}", "b": "${t.output.y}", "c": "${nope.x}"}
    # Root scans would need to list every task: they match nothing (documented).
    template |= {"d": "${.x}", "e": "${*}", "f": "${$}", "g": "${..x}"}
    out = resolve(template, ctx)
    assert out == {"a": 1, "b": 2, "c": None, "d": [], "e": [], "f": None, "g": None}
    assert sorted(set(ctx.asked)) == ["nope", "t", "workflow"]


def test_find_references() -> None:
    template = {
        "a": "${workflow.input.x}",
        "b": ["id-${t1.output.id}-${CPEWF_TASK_ID}", {"c": "${workflow.input.${t2.output.k}}"}],
        "d": "$${escaped} ${} plain",
        "${key.not.scanned}": 1,
    }
    assert find_references(template) == [
        "workflow.input.x",
        "t1.output.id",
        "CPEWF_TASK_ID",
        "workflow.input.${t2.output.k}",
        "t2.output.k",
    ]
    assert find_references("no refs") == []


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1.0"),
        (-0.0, "-0.0"),
        (0.001, "0.001"),
        (1e-5, "1.0E-5"),
        (123456789.0, "1.23456789E8"),
        (1e7, "1.0E7"),
        (9999999.5, "9999999.5"),
        (1.3345679050101e8, "1.3345679050101E8"),
        (float("nan"), "NaN"),
        (float("-inf"), "-Infinity"),
    ],
)
def test_java_double(value: float, text: str) -> None:
    assert java_double(value) == text


def test_java_str_nested() -> None:
    value = {"a": [1, None, True, 2.5], "b": {"c": "d"}}
    assert java_str(value) == "{a=[1, null, true, 2.5], b={c=d}}"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)
ref_text = st.text(alphabet="${}.[]*'\"0-1 abwx()", max_size=24)


@settings(max_examples=300, deadline=None)
@given(
    template=json_values, ctx=st.dictionaries(st.sampled_from(["workflow", "a", "b"]), json_values)
)
def test_template_without_references_is_unchanged(template: Any, ctx: dict[str, Any]) -> None:
    text = json.dumps(template)
    if "${" in text:
        return
    assert resolve(template, ctx) == template


@settings(max_examples=500, deadline=None)
@given(
    template=st.recursive(
        ref_text, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner)
    ),
    ctx=st.dictionaries(st.sampled_from(["workflow", "a", "b", "x"]), json_values),
    env=st.dictionaries(st.sampled_from(["a", "HOME", "x"]), st.text(max_size=5)),
)
def test_resolve_never_raises(template: Any, ctx: dict[str, Any], env: dict[str, str]) -> None:
    resolve(template, ctx, task_id="t", env=env)
    find_references(template)


@settings(max_examples=300, deadline=None)
@given(
    value=json_values,
    prefix=st.text(alphabet="ab {}", max_size=4),
    suffix=st.text(alphabet="ab {}", max_size=4),
)
def test_lone_reference_keeps_value_and_embedded_prints_java(
    value: Any, prefix: str, suffix: str
) -> None:
    ctx = {"workflow": {"input": {"v": value}}}
    assert resolve("${workflow.input.v}", ctx) == value
    embedded = resolve(prefix + "=${workflow.input.v}" + suffix, ctx)
    assert embedded == (prefix + "=" + java_str(value) + suffix).replace("$${", "${")
