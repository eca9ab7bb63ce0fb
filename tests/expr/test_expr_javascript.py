"""The QuickJS sandbox and the Conductor-shaped helpers on top of it."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edged.errors import BadInput
from edged.expr import (
    ExpressionError,
    JsError,
    JsSandbox,
    eval_case,
    eval_condition,
    eval_inline,
    eval_lambda,
    switch_case,
)


@pytest.fixture(scope="module")
def sandbox() -> JsSandbox:
    return JsSandbox()


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("$.a + 1", 2),
        ("$.a / 2", 0.5),
        ("4 / 2", 2),
        ("'s' + $.a", "s1"),
        ("$.a === 1", True),
        ("null", None),
        ("undefined", None),
        ("(function () {})", None),
        ("Symbol('x')", None),
        ("NaN", None),
        ("1 / 0", None),
        ("[1, 'a', null, undefined]", [1, "a", None, None]),
        ("({a: {b: [1]}, f: function () {}, u: undefined})", {"a": {"b": [1]}}),
        ("new Date(0)", "1970-01-01T00:00:00.000Z"),
        ("var total = 0; for (const v of $.list) total += v; total", 6),
        ("if ($.a == 1) { 'one' } else { 'other' }", "one"),
    ],
)
def test_results_of_each_type(sandbox: JsSandbox, script: str, expected: Any) -> None:
    got = sandbox.evaluate(script, {"a": 1, "list": [1, 2, 3]})
    assert got == expected
    assert type(got) is type(expected)


def test_bigint_result_is_an_error(sandbox: JsSandbox) -> None:
    with pytest.raises(JsError, match="BigInt"):
        sandbox.evaluate("({n: 10n})", {})


def test_bindings_are_a_copy(sandbox: JsSandbox) -> None:
    data = {"a": {"b": 1}}
    assert sandbox.evaluate("$.a.b = 2; $.a.b", data) == 2
    assert data == {"a": {"b": 1}}


def test_syntax_error_and_exceptions(sandbox: JsSandbox) -> None:
    with pytest.raises(JsError, match="SyntaxError"):
        sandbox.evaluate("function (", {})
    with pytest.raises(JsError, match="boom"):
        sandbox.evaluate("throw new Error('boom')", {})
    with pytest.raises(JsError, match="TypeError"):
        sandbox.evaluate("null.x", {})
    with pytest.raises(BadInput):
        sandbox.evaluate("throw 5", {})
    assert sandbox.evaluate("1 + 1", {}) == 2  # usable after errors


def test_timeout_cannot_be_caught() -> None:
    sandbox = JsSandbox(time_limit_ms=50)
    started = time.perf_counter()
    with pytest.raises(JsError, match="timed out after 50 ms"):
        sandbox.evaluate("try { while (true) {} } catch (e) { 'escaped' }", {})
    assert time.perf_counter() - started < 2
    assert sandbox.evaluate("'alive'", {}) == "alive"


def test_memory_cap() -> None:
    sandbox = JsSandbox(memory_limit_bytes=4 * 1024 * 1024)
    with pytest.raises(JsError, match="memory limit"):
        sandbox.evaluate("const a = []; while (true) a.push('x'.repeat(1000) + a.length)", {})
    assert sandbox.evaluate("[1, 2].length", {}) == 2


def test_stack_overflow(sandbox: JsSandbox) -> None:
    with pytest.raises(JsError, match="stack"):
        sandbox.evaluate("function f(n) { return f(n + 1) + 1 } f(0)", {})
    # Catchable inside the script, like any RangeError.
    script = "try { (function f() { f() })() } catch (e) { e instanceof RangeError }"
    assert sandbox.evaluate(script, {}) is True


def test_nothing_but_ecmascript(sandbox: JsSandbox) -> None:
    names = ["require", "std", "os", "print", "console", "process", "performance"]
    names += ["queueMicrotask", "btoa", "atob", "DOMException", "setTimeout", "fetch"]
    script = "[" + ", ".join(f"typeof {name}" for name in names) + "]"
    assert sandbox.evaluate(script, {}) == ["undefined"] * len(names)
    # Plain ECMAScript is all there.
    script = "[typeof JSON, typeof Math.max, typeof Promise, typeof Map, typeof RegExp]"
    assert sandbox.evaluate(script, {}) == [
        "object",
        "function",
        "function",
        "function",
        "function",
    ]


def test_no_leakage_between_evaluations(sandbox: JsSandbox) -> None:
    sandbox.evaluate("var leakVar = 1; function leakFn() {} let leakLet = 2; leakImplicit = 3", {})
    script = "[typeof leakVar, typeof leakFn, typeof leakLet, typeof leakImplicit]"
    assert sandbox.evaluate(script, {}) == ["undefined"] * 4
    # The same top-level `const` twice is fine (a pooled GraalJS context would throw).
    assert sandbox.evaluate("const k = 1; k", {}) == 1
    assert sandbox.evaluate("const k = 2; k", {}) == 2
    # Builtins cannot be changed for the next script.
    sandbox.evaluate("Array.prototype.evil = 1; Math.max = () => 0; JSON = null; 1", {})
    assert sandbox.evaluate("[[].evil, Math.max(1, 2), typeof JSON]", {}) == [None, 2, "object"]
    # A global that cannot be deleted makes the sandbox start a fresh context.
    sandbox.evaluate("Object.defineProperty(globalThis, 'stuck', {value: 1}); 0", {})
    assert sandbox.evaluate("typeof stuck", {}) == "undefined"


def test_implicit_globals_work_within_one_script(sandbox: JsSandbox) -> None:
    assert sandbox.evaluate("counter = 1; counter += 1; counter", {}) == 2


def test_hostile_bindings() -> None:
    sandbox = JsSandbox(memory_limit_bytes=8 * 1024 * 1024)
    with pytest.raises(JsError, match="memory limit"):
        sandbox.evaluate("$.s.length", {"s": "x" * (16 * 1024 * 1024)})
    assert sandbox.evaluate("$.s.length", {"s": "x" * 100_000}) == 100_000
    deep: Any = 0
    for _ in range(5_000):
        deep = [deep]
    with pytest.raises(JsError):
        sandbox.evaluate("1", {"d": deep})
    with pytest.raises(JsError, match="not JSON"):
        sandbox.evaluate("1", {"f": float("nan")})
    with pytest.raises(JsError, match="not JSON"):
        sandbox.evaluate("1", {"o": object()})
    assert sandbox.evaluate("1", {}) == 1


def test_each_thread_gets_its_own_context(sandbox: JsSandbox) -> None:
    results: list[Any] = []
    worker = threading.Thread(target=lambda: results.append(sandbox.evaluate("$.v * 2", {"v": 21})))
    worker.start()
    worker.join(timeout=10)
    assert results == [42]


def test_eval_inline_binds_task_input() -> None:
    task_input = {"value": 3, "evaluatorType": "javascript", "expression": "..."}
    assert eval_inline("$.value * 2", task_input) == 6
    assert eval_inline("(function () { return {doubled: $.value * 2} })()", task_input) == {
        "doubled": 6
    }
    with pytest.raises(JsError, match="Empty 'expression'"):
        eval_inline("  ", task_input)


def test_eval_lambda_wraps_a_function_body() -> None:
    script = "if ($.input.a == 1) { return {testvalue: true} } else { return {testvalue: false} }"
    assert eval_lambda(script, {"input": {"a": 1}}) == {"testvalue": True}
    assert eval_lambda(script, {"input": {"a": 2}}) == {"testvalue": False}
    assert eval_lambda("var x = 1;", {}) is None
    with pytest.raises(JsError, match="Empty 'scriptExpression'"):
        eval_lambda("", {})


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("$.loop.iteration < 3", True),
        ("$.loop.iteration < 2", False),
        ("1", True),
        ("0.5", True),
        ("0", False),
        ("-1", False),  # numbers count only when > 0, unlike JS truthiness
        ("'true'", False),  # strings are false, whatever they say
        ("({})", False),
        ("null", False),
        ("undefined", False),
        ("Infinity", True),
        ("NaN", False),
        ("1n", True),
    ],
)
def test_eval_condition_follows_to_boolean(expression: str, expected: bool) -> None:
    assert eval_condition(expression, {"loop": {"iteration": 2}}) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("$.kind", "a"),
        ("1", "1"),
        ("1.5", "1.5"),
        ("2 / 2", "1"),
        ("1e21", "1.0E21"),
        ("true", "true"),
        ("null", "null"),
        ("undefined", "null"),
        ("$.missing", "null"),
        ("[1, 'a']", "[1, a]"),
        ("({x: 1})", "{x=1}"),
    ],
)
def test_switch_javascript_case_is_java_string(expression: str, expected: str) -> None:
    task_input = {"kind": "a"}
    assert switch_case("javascript", expression, task_input) == expected
    assert switch_case("graaljs", expression, task_input) == expected
    assert eval_case(expression, task_input) == expected


def test_switch_value_param() -> None:
    task_input = {"k": "x", "n": 1, "f": 1.0, "b": False, "z": None}
    assert switch_case("value-param", "k", task_input) == "x"
    assert switch_case("value-param", "n", task_input) == "1"
    assert switch_case("value-param", "f", task_input) == "1.0"
    assert switch_case("value-param", "b", task_input) == "false"
    assert switch_case("value-param", "z", task_input) == "null"
    assert switch_case("value-param", "absent", task_input) == "null"
    with pytest.raises(ExpressionError, match="No evaluator registered for type: python"):
        switch_case("python", "k", task_input)


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
        max_leaves=20,
    )
)
def test_bindings_round_trip(sandbox: JsSandbox, value: Any) -> None:
    assert sandbox.evaluate("$.v", {"v": value}) == value
