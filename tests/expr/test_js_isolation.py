"""One script cannot change what the next one sees, through any shared object.

test_expr_javascript covers globals and the intrinsics reachable from them; these cover
the global object's own prototype and extensibility, and the intrinsics that no global
property leads to (iterator and generator prototypes), reachable from their instances.
"""

from __future__ import annotations

import pytest

from edged.expr.javascript import JsSandbox

HIDDEN_INTRINSICS = [
    "[].values()",
    "new Map().entries()",
    "new Set().values()",
    "''[Symbol.iterator]()",
    "'ab'.matchAll(/a/g)",
    "[].values().map((x) => x)",
    "Iterator.from({ next() {} })",
    "function* () {}",
    "Object.getPrototypeOf((function* () {})())",  # its prototype is per function
    "async function () {}",
    "async () => {}",
    "async function* () {}",
    "Object.getPrototypeOf((async function* () {})())",
]


@pytest.mark.parametrize("instance", HIDDEN_INTRINSICS)
def test_prototypes_of_hidden_intrinsics_are_frozen(instance: str) -> None:
    sandbox = JsSandbox()
    chain = "const o = (INSTANCE); let p = Object.getPrototypeOf(o), n = 0; "
    chain += "for (; p !== null; p = Object.getPrototypeOf(p)) { if (!Object.isFrozen(p)) n++ } n"
    assert sandbox.evaluate(chain.replace("INSTANCE", instance), {}) == 0
    sandbox.evaluate(f"Object.getPrototypeOf({instance}).leak = 1; 0", {})
    assert sandbox.evaluate(f"({instance}).leak", {}) is None


@pytest.mark.parametrize(
    "script",
    [
        "Object.setPrototypeOf(globalThis, {leak: 1, __proto__: Object.prototype}); 0",
        "globalThis.__proto__ = {leak: 1, __proto__: Object.prototype}; 0",
        "Object.setPrototypeOf(globalThis, null); 0",
    ],
)
def test_the_global_prototype_is_restored(script: str) -> None:
    sandbox = JsSandbox()
    context = sandbox._context()[0]
    assert sandbox.evaluate(script, {}) == 0
    assert sandbox.evaluate("[typeof leak, typeof globalThis.hasOwnProperty]", {}) == [
        "undefined",
        "function",
    ]
    assert sandbox._slot.context is context  # restored in place


@pytest.mark.parametrize("how", ["preventExtensions", "seal", "freeze"])
def test_a_non_extensible_global_object_drops_the_context(how: str) -> None:
    sandbox = JsSandbox()
    assert sandbox.evaluate(f"Object.{how}(globalThis); 0", {}) == 0
    assert sandbox._slot.context is None
    assert sandbox.evaluate("counter = 1; counter += 1; counter", {}) == 2
