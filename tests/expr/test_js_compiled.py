"""Scripts that are one expression run as a compiled function, with the eval path's results.

The sandbox compiles such a script once (per context) and calls it with `$`; any other
script, or one that only parses as an expression when wrapped, goes through direct eval.
Every script here must give the same value (or the same failure) both ways.
"""

from __future__ import annotations

from typing import Any

import pytest

from edged.expr.javascript import JsError, JsSandbox

BINDINGS = {"a": 2, "s": "x;y", "list": [1, 2, 3], "obj": {"k": "v"}}

SCRIPTS = [
    "$.a + 1",
    "$.a + 1;",
    "$.a + 1;  \n",
    "(function () { var m = $.obj; m.extra = $.a; return m; })()",
    "$.list.map(function (x) { return x * $.a; })",
    "$.a > 1 ? 'big' : 'small'",
    "$.s",
    "$.a // trailing comment",
    "$.a /* block */",
    "({a: 1})",
    "{a: 1}",  # a block with a label: 1, not an object
    "{}",
    "function f() { return 1 }",  # a declaration: no value
    "function () { return 1 }()",  # a syntax error as a script
    "class A {}",
    "async function g() {}",
    "let [q] = [5]; q",
    "let\n[q] = [5]",
    "/* lead */ $.a",
    "/x/.test('x')",
    "'use strict'",
    "x = 5",
    "y = $.a; y * 10",
    "1), (2",  # closes the wrapper early: must stay a syntax error
    "1); globalThis.leak = 1; (2",
    "1]; globalThis.leak = 1; [2",
    "$.a; $.a + 1",
    "var v = 3; v",
    "undefined",
    "NaN",
    "[1, , 3]",
    "throw new Error('boom')",
    "$.missing.deep",
    "",
    ";",
    "1;;",
]


def outcome(sandbox: JsSandbox, script: str, *, compiled: bool) -> Any:
    if not compiled:
        sandbox._context()
        slot = sandbox._slot
        slot.compiled = {script: None}  # a known non-expression: the eval path
    try:
        return ("value", sandbox.evaluate(script, BINDINGS))
    except JsError as exc:
        return ("error", str(exc).split(":")[0])


@pytest.mark.parametrize("script", SCRIPTS)
def test_compiled_and_eval_paths_agree(script: str) -> None:
    fast, slow = JsSandbox(), JsSandbox()
    assert outcome(fast, script, compiled=True) == outcome(slow, script, compiled=False)
    # and again from the cache, with nothing left behind on the global object
    assert outcome(fast, script, compiled=True) == outcome(slow, script, compiled=False)
    assert fast.evaluate("typeof leak + typeof x + typeof y", {}) == "undefinedundefinedundefined"


def test_expressions_are_compiled_once_and_others_are_not() -> None:
    sandbox = JsSandbox()
    sandbox.evaluate("$.a + 1", BINDINGS)
    sandbox.evaluate("var v = 1; v", BINDINGS)
    sandbox.evaluate("{a: 1}", BINDINGS)
    cache = sandbox._slot.compiled
    assert cache is not None
    assert cache["$.a + 1"] is not None
    assert cache["var v = 1; v"] is None  # not an expression: eval path, remembered
    assert "{a: 1}" not in cache  # a block as a script: never tried as an expression
    handle = cache["$.a + 1"]
    assert sandbox.evaluate("$.a + 1", {"a": 41}) == 42
    assert sandbox._slot.compiled is not None and sandbox._slot.compiled["$.a + 1"] is handle


def test_a_timeout_drops_the_context_and_its_compiled_scripts() -> None:
    sandbox = JsSandbox(time_limit_ms=50)
    sandbox.evaluate("$.a + 1", BINDINGS)
    with pytest.raises(JsError, match="timed out"):
        sandbox.evaluate("(function () { while (true) {} })()", BINDINGS)
    assert sandbox._slot.compiled is None
    assert sandbox.evaluate("$.a + 1", BINDINGS) == 3
