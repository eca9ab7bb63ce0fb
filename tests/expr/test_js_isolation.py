"""One script cannot change what the next one sees, through any shared object.

test_expr_javascript covers globals and the intrinsics reachable from them; these cover
the global object's own prototype and extensibility, and the intrinsics that no global
property leads to (iterator and generator prototypes), reachable from their instances.
"""

from __future__ import annotations

import pytest

from edged.expr.javascript import JsError, JsSandbox

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


# Every way a script can add an own property to the global object.  The cleanup skips
# its full Reflect.ownKeys check when for-in, getOwnPropertySymbols, `stack` and the
# wrapped definers say nothing was added, so each path must trip one of them.  `G` is
# the global object, `P` a Proxy of it (it forwards [[DefineOwnProperty]] to G).
ADDERS = {
    "assignment": "leak = 1",
    "global property": "G.leak = 1",
    "sloppy this": "(function () { this.leak = 1 })()",
    "index key": "G[0] = 1",
    "indirect eval var": "(0, eval)('var leak = 1')",
    "indirect eval function": "(0, eval)('function leak() {}')",
    "Function body global": "Function('leak = 1')()",
    "symbol key": "G[Symbol('leak')] = 1",
    "registered symbol key": "G[Symbol.for('leak')] = 1",
    "well-known symbol key": "G[Symbol.iterator] = function* () {}",
    "__defineGetter__": "G.__defineGetter__('leak', () => 1)",
    "__defineSetter__": "G.__defineSetter__('leak', (v) => {})",
    "Object.assign": "Object.assign(G, {leak: 1})",
    "Object.assign symbol": "Object.assign(G, {[Symbol('leak')]: 1})",
    "Reflect.set": "Reflect.set(G, 'leak', 1)",
    "Reflect.set receiver": "Reflect.set({}, 'leak', 1, G)",
    "Reflect.set Proxy receiver": "Reflect.set({}, 'leak', 1, P)",
    "with": "with (P) { leak = 1 }",
    "Array.prototype.push": "Array.prototype.push.call(G, 1)",
    "Array.from constructor": "Array.from.call(function () { return G }, [1])",
    "Array.of constructor": "Array.of.call(function () { return G }, 1)",
    "species": (
        "class A extends Array { static get [Symbol.species]() { return function () {"
        " return G } } }; new A(1, 2).map((x) => x)"
    ),
    "class field": (
        "class B { constructor(o) { return o } };"
        " class F extends B { leak = 1; constructor() { super(G) } }; new F()"
    ),
    "class symbol field": (
        "class B { constructor(o) { return o } };"
        " class F extends B { [Symbol.for('leak')] = 1; constructor() { super(G) } }; new F()"
    ),
    "Iterator constructor setter": (
        "Object.getOwnPropertyDescriptor(Iterator.prototype, 'constructor').set.call(G, 1)"
    ),
    "Error stack setter": (
        "Object.getOwnPropertyDescriptor(Error.prototype, 'stack').set.call(G, 's')"
    ),
    "defineProperty": "Object.defineProperty(G, 'leak', {value: 1, configurable: true})",
    "defineProperty symbol": (
        "Object.defineProperty(G, Symbol('leak'), {value: 1, configurable: true})"
    ),
    "defineProperty getter": (
        "Object.defineProperty(G, 'leak', {get() { return 1 }, configurable: true})"
    ),
    "defineProperty setter": ("Object.defineProperty(G, 'leak', {set(v) {}, configurable: true})"),
    "defineProperties": (
        "Object.defineProperties(G, {leak: {value: 1, configurable: true},"
        " [Symbol('leak')]: {value: 2, configurable: true}})"
    ),
    "Reflect.defineProperty": "Reflect.defineProperty(G, 'leak', {value: 1, configurable: true})",
    "defineProperty on a Proxy": (
        "Object.defineProperty(P, 'leak', {value: 1, configurable: true})"
    ),
    "defineProperties on a Proxy": (
        "Object.defineProperties(P, {leak: {value: 1, configurable: true}})"
    ),
    "Reflect.defineProperty on a Proxy": (
        "Reflect.defineProperty(P, 'leak', {value: 1, configurable: true})"
    ),
    "definer bound": (
        "Function.prototype.call.call(Object.defineProperty, null, G, 'leak',"
        " {value: 1, configurable: true})"
    ),
    "made non-enumerable": "leak = 1; Object.defineProperty(G, 'leak', {enumerable: false})",
    "captureStackTrace": "Error.captureStackTrace(G)",
    "captureStackTrace on a Proxy": "Error.captureStackTrace(P)",
    "captureStackTrace over an enumerable stack": "stack = 1; Error.captureStackTrace(G)",
}


def _baseline_keys() -> int:
    count: int = JsSandbox().evaluate("Reflect.ownKeys(globalThis).length", {})
    return count


@pytest.mark.parametrize("lead", [pytest.param("", id="compiled"), pytest.param("0; ", id="eval")])
@pytest.mark.parametrize("adder", list(ADDERS.values()), ids=list(ADDERS))
def test_no_path_leaves_a_global(adder: str, lead: str) -> None:
    """The next evaluation sees the global object exactly as a fresh context has it."""
    sandbox = JsSandbox()
    context = sandbox._context()[0]
    setup = "const G = globalThis, P = new Proxy(globalThis, {}); "
    script = f"(function () {{ {setup}{adder}; return 1 }})()"
    assert sandbox.evaluate(lead + script, {}) == 1
    assert sandbox._slot.context is context  # deleted in place
    probe = (
        "[Reflect.ownKeys(globalThis).length, typeof leak, globalThis.stack,"
        " globalThis[0], typeof Iterator.prototype.constructor, String(globalThis[Symbol.iterator])]"
    )
    assert sandbox.evaluate(probe, {}) == [
        _baseline_keys(),
        "undefined",
        None,
        None,
        "function",
        "undefined",
    ]


@pytest.mark.parametrize(
    "definer",
    [
        "Object.defineProperty(P, 'stuck', {value: 1})",
        "Object.defineProperties(P, {stuck: {value: 1}})",
        "Reflect.defineProperty(P, 'stuck', {value: 1})",
        "Reflect.defineProperty(P, Symbol('stuck'), {get() { return 1 }})",
    ],
)
def test_a_global_no_one_can_delete_drops_the_context(definer: str) -> None:
    sandbox = JsSandbox()
    sandbox._context()
    script = f"const P = new Proxy(globalThis, {{}}); {definer}; 'kept'"
    assert sandbox.evaluate(script, {}) == "kept"
    assert sandbox._slot.context is None
    assert sandbox.evaluate("Reflect.ownKeys(globalThis).length", {}) == _baseline_keys()


def test_a_global_defined_lazily_by_a_getter_during_stringify_is_deleted() -> None:
    sandbox = JsSandbox()
    context = sandbox._context()[0]
    script = (
        "({get v() { Object.defineProperty(globalThis, 'leak', {value: 1, configurable: true});"
        " globalThis[Symbol.for('leak')] = 2; return 1 }})"
    )
    assert sandbox.evaluate(script, {}) == {"v": 1}
    assert sandbox._slot.context is context
    assert sandbox.evaluate("[typeof leak, Reflect.ownKeys(globalThis).length]", {}) == [
        "undefined",
        _baseline_keys(),
    ]


@pytest.mark.parametrize(
    "replace",
    [
        "Object.defineProperty = Reflect.defineProperty = Object.defineProperties = null",
        "delete Object.defineProperty; delete Reflect.defineProperty",
        "Object.getOwnPropertyDescriptor(Object, 'defineProperty').value.call = null",
        "Object.setPrototypeOf(Object.defineProperty, null)",
        "Object.defineProperty(Object, 'defineProperty', {value: null})",
        "Object = {defineProperty: null}",
        "var Reflect = {}",
    ],
)
def test_the_wrapped_definers_cannot_be_replaced(replace: str) -> None:
    """They are frozen with the intrinsics: each attempt fails and they still mark."""
    sandbox = JsSandbox()
    script = f"try {{ {replace} }} catch (e) {{}}; typeof Object.defineProperty"
    assert sandbox.evaluate(script, {}) == "function"
    wrapped = "[Object.defineProperty, Object.defineProperties, Reflect.defineProperty]"
    assert sandbox.evaluate(
        f"{wrapped}.map((f) => [f.name, f.length, Object.isFrozen(f)])", {}
    ) == [
        ["defineProperty", 3, True],
        ["defineProperties", 2, True],
        ["defineProperty", 3, True],
    ]
    hidden = "Object.defineProperty(globalThis, 'leak', {value: 1, configurable: true}); leak"
    assert sandbox.evaluate(hidden, {}) == 1
    assert sandbox.evaluate("typeof leak", {}) == "undefined"


def test_the_wrapped_definers_behave_as_the_natives() -> None:
    sandbox = JsSandbox()
    script = """
      const o = {};
      const a = Object.defineProperty(o, 'x', {value: 1}) === o;
      const b = Object.defineProperties(o, {y: {get() { return 2 }, enumerable: true}}) === o;
      const c = Reflect.defineProperty(Object.freeze({}), 'z', {value: 3});
      let d; try { Object.defineProperty(1, 'x', {}) } catch (e) { d = e instanceof TypeError }
      let e; try { new Object.defineProperty(o, 'w', {}) } catch (x) { e = x instanceof TypeError }
      [a, b, c, d, e, o.x, o.y, Object.keys(o), Object.create({}, {q: {value: 4}}).q]
    """
    assert sandbox.evaluate(script, {}) == [True, True, False, True, True, 1, 2, ["y"], 4]


def test_private_fields_stamped_on_the_global_object_are_invisible() -> None:
    """A class field `#x` on globalThis (return override) is no key: no later script
    holds the class, so none can read it; the old check did not see it either."""
    sandbox = JsSandbox()
    stamp = (
        "class B { constructor(o) { return o } };"
        " class S extends B { #x = 1; static has(o) { return #x in o } constructor() { super(globalThis) } };"
        " new S(); S.has(globalThis)"
    )
    assert sandbox.evaluate(stamp, {}) is True
    assert sandbox.evaluate("Reflect.ownKeys(globalThis).length", {}) == _baseline_keys()
    brand = (
        "class B { constructor(o) { return o } };"
        " class S extends B { #m() {} static has(o) { return #m in o } constructor() { super(globalThis) } };"
        " new S(); S.has(globalThis)"
    )
    assert sandbox.evaluate(brand, {}) is True
    assert sandbox.evaluate("Reflect.ownKeys(globalThis).length", {}) == _baseline_keys()


def test_lexical_declarations_of_an_indirect_eval_do_not_persist() -> None:
    """They live in an environment of that eval, not on the global object or in the
    context's global lexical scope."""
    sandbox = JsSandbox()
    assert sandbox.evaluate("(0, eval)('let a = 1; const b = 2; class C {}; a + b')", {}) == 3
    assert sandbox.evaluate("[typeof a, typeof b, typeof C]", {}) == ["undefined"] * 3


def test_array_from_async_with_the_scripts_constructor_drops_the_context() -> None:
    """fromAsync defines non-enumerable elements with a native of its own, after an
    await: only a promise job could do it, and edged runs none; were jobs run, this
    one would leave a hidden "0" on globalThis (the iterator never ends, so no
    enumerable `length` follows it), so the context goes instead."""
    sandbox = JsSandbox()
    script = (
        "const items = {[Symbol.asyncIterator]() { let n = 0; return {next() {"
        " return n++ < 1 ? {value: 1, done: false} : new Promise(() => {}) }} }};"
        " Array.fromAsync.call(function () { return globalThis }, items); 1"
    )
    assert sandbox.evaluate(script, {}) == 1
    context = sandbox._slot.context
    if context is not None:
        while context.execute_pending_job():
            pass
    assert sandbox.evaluate("Reflect.ownKeys(globalThis).length", {}) == _baseline_keys()
    assert sandbox.evaluate("Array.fromAsync([1]) instanceof Promise", {}) is True
    assert sandbox._slot.context is not None  # with Array itself the context stays


def test_stack_trace_settings_do_not_reach_the_next_script() -> None:
    """Error.stackTraceLimit and prepareStackTrace set context state, not a property of
    Error: as accessors, freezing Error left them settable across evaluations."""
    sandbox = JsSandbox()
    hijack = (
        "Error.stackTraceLimit = 0;"
        " Error.prepareStackTrace = function (e, sites) { return 'HIJACK' };"
        " [Error.stackTraceLimit, typeof Error.prepareStackTrace]"
    )
    assert sandbox.evaluate(hijack, {}) == [10, "undefined"]
    probe = (
        "const d = Object.getOwnPropertyDescriptor(Error, 'prepareStackTrace');"
        " [Error.stackTraceLimit, typeof Error.prepareStackTrace, typeof d.set,"
        " new Error('x').stack.includes('at ')]"
    )
    assert sandbox.evaluate(probe, {}) == [10, "undefined", "undefined", True]
    with pytest.raises(JsError, match="TypeError"):
        sandbox.evaluate("'use strict'; Error.prepareStackTrace = () => 1", {})
