"""The one-call protocol between JsSandbox and its runner: JSON text in, JSON text out.

The runner returns the value's JSON text (value mode), a boolean (bool mode), or, when
the script left a global it could not delete, that outcome wrapped in an array; the
globals check runs after JSON.stringify, so a toJSON that creates globals is caught too.
"""

from __future__ import annotations

import json.encoder
from types import MappingProxyType
from typing import Any

import pytest

from edged.expr.javascript import JsError, JsSandbox, _bindings_encoder

# Each script once as a compiled expression and once down the eval path (a statement first).
SHAPES = [pytest.param("", id="compiled"), pytest.param("void 0; ", id="eval")]


@pytest.mark.parametrize("lead", SHAPES)
def test_a_global_made_by_to_json_is_deleted(lead: str) -> None:
    sandbox = JsSandbox()
    script = lead + "({toJSON() { leakJson = 1; return {v: $.a} }})"
    assert sandbox.evaluate(script, {"a": 7}) == {"v": 7}
    context = sandbox._slot.context
    assert sandbox.evaluate("typeof leakJson", {}) == "undefined"
    assert sandbox._slot.context is context  # deleted, so the context is kept


@pytest.mark.parametrize("lead", SHAPES)
def test_a_stuck_global_made_by_to_json_drops_the_context(lead: str) -> None:
    sandbox = JsSandbox()
    script = lead + (
        "({toJSON() { Object.defineProperty(globalThis, 'stuckJson', {value: 1});"
        " return {v: $.a, s: 'x\"y'} }})"
    )
    context = sandbox._context()[0]
    assert sandbox.evaluate(script, {"a": 7}) == {"v": 7, "s": 'x"y'}
    assert sandbox._slot.context is None
    assert sandbox.evaluate("typeof stuckJson", {}) == "undefined"
    assert sandbox._slot.context is not context


@pytest.mark.parametrize(
    ("value", "expected"),
    [("'text'", "text"), ("undefined", None), ("null", None), ("[1, 'a']", [1, "a"])],
)
def test_a_stuck_global_keeps_the_value(value: str, expected: Any) -> None:
    sandbox = JsSandbox()
    script = f"Object.defineProperty(globalThis, 'stuck', {{value: 1}}); {value}"
    got = sandbox.evaluate(script, {})
    assert got == expected and type(got) is type(expected)
    assert sandbox._slot.context is None
    assert sandbox.evaluate("typeof stuck", {}) == "undefined"


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("0", False), ("'1'", False)])
def test_a_stuck_global_keeps_the_condition(value: str, expected: bool) -> None:
    sandbox = JsSandbox()
    script = f"Object.defineProperty(globalThis, 'stuck', {{value: 1}}), {value}"
    assert sandbox.evaluate_bool(script, {}) is expected
    assert sandbox._slot.context is None
    assert sandbox.evaluate_bool("typeof stuck === 'undefined'", {}) is True


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        ("'[1, 2]'", "[1, 2]"),  # a string that looks like JSON stays a string
        ("'null'", "null"),
        ("'\"'", '"'),
        ("$.s + '\\u2713'", "é😀\u2713"),
        # long concatenations are ropes in quickjs-ng; the JSON text is flat
        (
            "'a'.repeat(5000) + $.s.repeat(3000) + 'b'.repeat(5000)",
            "a" * 5000 + "é😀" * 3000 + "b" * 5000,
        ),
        (
            "[$.s + $.s, {k: 'x'.repeat(3000) + 'y'.repeat(3000)}]",
            ["é😀é😀", {"k": "x" * 3000 + "y" * 3000}],
        ),
    ],
)
def test_strings_cross_as_json_text(script: str, expected: Any) -> None:
    assert JsSandbox().evaluate(script, {"s": "é😀"}) == expected


def test_bool_mode_returns_booleans_without_json() -> None:
    sandbox = JsSandbox()
    assert sandbox.evaluate_bool("$.n > 1", {"n": 2}) is True
    assert sandbox.evaluate_bool("({toJSON() { throw new Error('not called') }})", {}) is False


def test_an_unexpected_outcome_drops_the_context() -> None:
    sandbox = JsSandbox()
    sandbox._context()
    sandbox._slot.runner = lambda *args: 5
    with pytest.raises(JsError, match="unexpected value"):
        sandbox.evaluate("1", {})
    assert sandbox._slot.context is None
    assert sandbox.evaluate("1 + 1", {}) == 2


def test_cyclic_bindings_are_not_json() -> None:
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    with pytest.raises(JsError, match="not JSON"):
        JsSandbox().evaluate("1", {"c": [cycle]})


@pytest.mark.parametrize("c_encoder", [True, False], ids=["c", "python"])
def test_the_bindings_encoder(monkeypatch: pytest.MonkeyPatch, c_encoder: bool) -> None:
    if not c_encoder:
        monkeypatch.setattr(json.encoder, "c_make_encoder", None)
    encode = _bindings_encoder()
    value = {"a": (1, 2.5, None, True), "m": MappingProxyType({"k": "é\n"}), "big": 2**70}
    assert (
        encode(value)
        == '{"a":[1,2.5,null,true],"m":{"k":"\\u00e9\\n"},"big":1180591620717411303424}'
    )
    for bad in (float("nan"), float("inf"), object()):
        with pytest.raises((TypeError, ValueError)):
            encode({"x": [bad]})
    shared = {"k": 1}
    assert encode([shared, shared]) == '[{"k":1},{"k":1}]'  # shared is not a cycle
