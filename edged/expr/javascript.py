"""Sandboxed JavaScript (QuickJS-ng) for INLINE, LAMBDA, SWITCH, DECISION and DO_WHILE.

Theory of operation
-------------------
A `JsSandbox` owns one QuickJS context per thread (a QuickJS runtime records
the C stack of the thread that made it, and the quickjs package's own tests
show crashes when a second thread touches it, even one at a time).  Creating
a context costs ~280 µs here; reusing one costs ~15 µs per evaluation, so the
context is reused and hardened once instead:

* host extras that are not ECMAScript (`performance`, `queueMicrotask`,
  `DOMException`, `btoa`, `atob`) are deleted; QuickJS-ng's Python binding
  adds no `std`/`os`/`require`/`print`, and we register no host callables;
* every intrinsic reachable from `globalThis` (constructors, prototypes,
  `Math`, `JSON`, ...) or from an instance of one (iterator and generator
  prototypes, which no global leads to) is frozen and every existing global
  made read-only, so one script cannot change what the next one sees
  (`Array.prototype.x = 1` silently does nothing, as frozen objects do in
  sloppy mode);
* each script runs through a direct `eval` inside a fresh function call, so
  its `var`/`function`/`let`/`const` declarations are local to that call and
  its completion value is the result, as when Conductor evaluates it as a
  top-level script in a fresh GraalJS context (a script that is one expression,
  the usual INLINE/SWITCH shape, is compiled once per context into a function of
  `$` and called instead, which gives the same value without parsing it again;
  see `_compiled`); globals it creates by
  assignment (`x = 1`) are deleted afterwards and the global object's
  prototype is put back (a non-deletable global, or a global object made
  non-extensible, makes us throw the context away); the full list of the
  global object's keys is only read when a cheaper check (enumerable keys,
  symbol keys, the wrapped `Object.defineProperty` and kin) says a script may
  have added one (see the bootstrap);
* `$` is the bindings, passed in as JSON text and parsed by `JSON.parse` in
  the runner (a plain object, no host proxies); the result comes back through
  `JSON.stringify` inside the same guarded call: undefined, functions and
  symbols become None, NaN and Infinity None (JSON null), a BigInt anywhere in
  the result is a JsError.

One evaluation is one call into QuickJS, `__edged_run(script, bindings JSON,
mode)`, which returns:

* value mode: the JSON text of the value (one `JSON.stringify`, so a flat
  string; a rope string, which quickjs-ng makes when concatenating long
  strings, cannot cross into Python), or undefined (None) when the value has no
  JSON form;
* bool mode: true or false, already converted as Conductor's `toBoolean` does;
* either mode, when the script (or a `toJSON` it left in its value: the globals
  check runs after `JSON.stringify`) created a global that cannot be deleted:
  that outcome wrapped in a one-element array, an object, so Python sees a
  `quickjs.Object`, reads it with `.json()` and throws the context away.

Bindings over the memory cap fail in the call as `InternalError: out of
memory` (QuickJS cannot make the argument string, and `JSON.parse` then
raises the pending error), as when they were parsed by `parse_json`.

Limits, per evaluation: `set_time_limit` (QuickJS measures C `clock()`, the
*process* CPU time, so a busy second thread eats the budget), a memory cap on
the runtime (bindings count against it) and a stack cap (deep recursion is a
RangeError, catchable by the script, or a JsError).  A timeout cannot be
caught by the script.  Importing `quickjs` starts one idle worker thread (its
`Function` helper's executor); we never use it.

Deliberate differences from Conductor (GraalJS, 4 s timeout by default)
----------------------------------------------------------------------
* Timeout 100 ms and memory 16 MiB by default (edge devices).
* Intrinsics are frozen: assigning over an inherited builtin property
  (`obj.toString = f` on a plain object) is ignored in sloppy code and throws
  in strict code (the "override mistake").  Object literals are unaffected.
  `Error.stackTraceLimit` (10) and `Error.prepareStackTrace` (undefined) are
  frozen values too: as accessors they set state the next script would see.
* NaN/Infinity results are None; GraalJS returns a Java double.
"""

from __future__ import annotations

import json
import json.encoder
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final

import quickjs

from edged.errors import BadInput
from edged.expr.params import java_str

__all__ = [
    "ExpressionError",
    "JsError",
    "JsSandbox",
    "eval_case",
    "eval_condition",
    "eval_inline",
    "eval_lambda",
    "switch_case",
]

DEFAULT_TIME_LIMIT_MS: Final = 100
DEFAULT_MEMORY_LIMIT_BYTES: Final = 16 * 1024 * 1024
DEFAULT_MAX_STACK_BYTES: Final = 256 * 1024

_MODE_VALUE: Final = 0
_MODE_BOOL: Final = 1

# Runs once per context.  The runner is made with `Function` so that it is
# sloppy-mode code at global scope: a direct eval inside it then behaves like
# a top-level script whose declarations stay inside the call.
_BOOTSTRAP: Final = r"""
(function () {
  "use strict";
  const g = globalThis;
  for (const name of ["performance", "queueMicrotask", "DOMException", "btoa", "atob"]) {
    delete g[name];
  }
  const ownKeys = Reflect.ownKeys, deleteProperty = Reflect.deleteProperty;
  const getDescriptor = Reflect.getOwnPropertyDescriptor, defineProperty = Reflect.defineProperty;
  const getPrototypeOf = Reflect.getPrototypeOf, freeze = Object.freeze;
  const stringify = JSON.stringify, parse = JSON.parse;
  const Fn = Function;
  const inner = new Fn("__edged_src", "$", "return eval(__edged_src);");
  const isExtensible = Reflect.isExtensible, setPrototypeOf = Reflect.setPrototypeOf;
  const symbolsOf = Object.getOwnPropertySymbols, hasOwn = Object.hasOwn;
  const globalProto = getPrototypeOf(g);
  let baseline = null, baselineSize = 0, baselineSymbols = 0;
  // The globals check.  Reflect.ownKeys(globalThis) builds a ~70-key array, ~40% of an
  // INLINE evaluation, so it runs only when something may have been added.  In
  // quickjs-ng 0.17 a script adds an own property enumerably (assignment, `var` in an
  // indirect eval, __defineGetter__, class fields, CreateDataProperty in Array.from and
  // friends, ...) unless it goes through a definer wrapped below (they mark `defined`
  // whatever their target, since a Proxy of globalThis forwards to it) or
  // Error.captureStackTrace (a non-enumerable `stack`); tests/expr/test_js_isolation.py
  // tries each path.  So: a definer call, a symbol key beyond the baseline's one,
  // `stack`, or any enumerable key (for-in: no array is built and no getter runs).
  let defined = false;
  const objectDefine = Object.defineProperty, objectDefineAll = Object.defineProperties;
  const objectDefiners = {  // methods: named, with the natives' lengths, not constructors
    defineProperty(o, key, descriptor) {
      defined = true;
      return objectDefine(o, key, descriptor);
    },
    defineProperties(o, descriptors) {
      defined = true;
      return objectDefineAll(o, descriptors);
    },
  };
  const reflectDefiners = {
    defineProperty(o, key, descriptor) {
      defined = true;
      return defineProperty(o, key, descriptor);
    },
  };
  // Before the freeze below, so the wrappers are all any script can reach.
  defineProperty(Object, "defineProperty", { value: objectDefiners.defineProperty });
  defineProperty(Object, "defineProperties", { value: objectDefiners.defineProperties });
  defineProperty(Reflect, "defineProperty", { value: reflectDefiners.defineProperty });
  // Error.stackTraceLimit and Error.prepareStackTrace are accessors over state of the
  // context, not of Error: freezing Error leaves their setters working, so one script
  // could format (run code inside) the next one's stack traces.  Plain values instead.
  defineProperty(Error, "stackTraceLimit", { value: Error.stackTraceLimit });
  defineProperty(Error, "prepareStackTrace", { value: undefined });
  // Array.fromAsync holds its own native Object.defineProperty and, after its first
  // await, defines non-enumerable elements on `new this(n)`, which may be globalThis.
  // edged runs no promise jobs, so that never happens; should jobs ever run, a context
  // that saw fromAsync called with a constructor of the script's is dropped all the same.
  const arrayFromAsync = Array.fromAsync, apply = Reflect.apply;
  let ownConstructor = false;
  defineProperty(Array, "fromAsync", { value: {
    fromAsync(items) {
      if (typeof this === "function" && this !== Array) ownConstructor = true;
      return apply(arrayFromAsync, this, arguments);
    },
  }.fromAsync });
  const added = function () {
    if (defined || symbolsOf(g).length !== baselineSymbols || hasOwn(g, "stack")) return true;
    for (const key in g) return true;  // the global prototype is restored, and frozen
    return false;
  };
  const cleanup = function () {
    // The global object stays extensible (that cannot be undone) with its own prototype.
    let ok = isExtensible(g) && (getPrototypeOf(g) === globalProto || setPrototypeOf(g, globalProto));
    if (ownConstructor) ok = false;
    if (!added()) return ok;
    defined = false;
    const keys = ownKeys(g);
    if (keys.length === baselineSize) return ok;  // nothing added (none can be deleted)
    for (const key of keys) {
      if (!baseline.has(key) && !deleteProperty(g, key)) ok = false;
    }
    return ok;
  };
  // A script that is one expression statement compiles once to a function of `$`.
  // Wrapped in ( ) and, as a check, in [ ]: a source that closes the wrapper early to
  // append statements of its own cannot parse both ways, so it stays on the eval path.
  const compile = function (src) {
    try {
      new Fn("$", "return [" + src + "\n];");
      return new Fn("$", "return (" + src + "\n);");
    } catch (e) {
      return null;
    }
  };
  // One call per evaluation: the bindings come in as JSON text and the value goes out as
  // JSON text, made by one JSON.stringify (a flat string: concatenating onto it would make
  // a rope string (quickjs-ng) that the Python binding cannot convert).  The globals check
  // runs after stringify, since a toJSON can create globals too; a script that left one we
  // cannot delete gets its outcome wrapped in an array (an object, not a string or boolean).
  const run = function (src, json, mode) {
    let out, clean = false;
    try {
      const input = parse(json);
      const value = typeof src === "function" ? src(input) : inner(src, input);
      if (mode === 1) {
        const t = typeof value;
        out = t === "boolean" ? value : (t === "number" || t === "bigint") && value > 0;
      } else {
        out = stringify(value);
      }
    } finally {
      clean = cleanup();
    }
    return clean ? out : [out];
  };
  defineProperty(g, "__edged_run", { value: run, writable: false, configurable: false });
  defineProperty(g, "__edged_compile", { value: compile, writable: false, configurable: false });
  const seen = new Set();
  // Intrinsics no global property leads to (iterator and generator prototypes, ...),
  // reached from throwaway instances of them: the walk freezes their prototype chains.
  const todo = [
    [].values(), new Map().values(), new Set().values(), ""[Symbol.iterator](),
    /a/[Symbol.matchAll](""), [].values().map((x) => x), Iterator.from({ next() {} }),
    function* () {}, (function* () {})(), async function () {}, async function* () {},
    (async function* () {})(),
  ];
  for (const key of ownKeys(g)) {
    const d = getDescriptor(g, key);
    todo.push(d.value, d.get, d.set);
  }
  while (todo.length > 0) {
    const o = todo.pop();
    if (o === null || o === g || (typeof o !== "object" && typeof o !== "function")) continue;
    if (seen.has(o)) continue;
    seen.add(o);
    freeze(o);
    todo.push(getPrototypeOf(o));
    for (const key of ownKeys(o)) {
      const d = getDescriptor(o, key);
      todo.push(d.value, d.get, d.set);
    }
  }
  for (const key of ownKeys(g)) {
    const d = getDescriptor(g, key);
    defineProperty(g, key, "value" in d ? { writable: false, configurable: false }
                                        : { configurable: false });
  }
  baseline = new Set(ownKeys(g));
  baselineSize = baseline.size;
  baselineSymbols = symbolsOf(g).length;  // Symbol.toStringTag
  if (added()) throw new Error("a baseline global is enumerable");  // for-in would see it
  return seen.size;
})()
"""


class ExpressionError(BadInput):
    """An expression (JavaScript, jq, evaluator choice) could not be evaluated."""


class JsError(ExpressionError):
    """A script failed: syntax error, exception, timeout, memory or stack limit."""


class _Slot(threading.local):
    context: Any = None
    runner: Any = None
    compiler: Any = None
    compiled: dict[str, Any] | None = None


# Compiled expression scripts kept per context (LRU); a definition has a handful.
_COMPILED_MAX: Final = 256

# ExpressionStatement may not start with these (ECMA-262 14.5): such a source means
# something else as a script than in parentheses ({} is a block there, `function f(){}`
# a declaration, `let [a] = b` a declaration), so it always takes the eval path.  So
# does one starting with `/` (a comment or a regular expression: not worth telling).
_NOT_EXPRESSION_START: Final = re.compile(r"\s*(?:[{/]|function\b|class\b|async\b|let\b)")


class JsSandbox:
    """Evaluates scripts with `$` bound to JSON data, under time/memory/stack caps."""

    def __init__(
        self,
        *,
        time_limit_ms: int = DEFAULT_TIME_LIMIT_MS,
        memory_limit_bytes: int = DEFAULT_MEMORY_LIMIT_BYTES,
        max_stack_bytes: int = DEFAULT_MAX_STACK_BYTES,
    ) -> None:
        self.time_limit_ms = time_limit_ms
        self.memory_limit_bytes = memory_limit_bytes
        self.max_stack_bytes = max_stack_bytes
        self._slot = _Slot()

    def evaluate(self, script: str, bindings: Mapping[str, Any]) -> Any:
        """The completion value of `script` (as JSON-decoded Python), `$` = bindings."""
        return self._run(script, bindings, _MODE_VALUE)

    def evaluate_bool(self, script: str, bindings: Mapping[str, Any]) -> bool:
        """Conductor's ScriptEvaluator.evalBool: booleans as is, numbers > 0, else False."""
        return bool(self._run(script, bindings, _MODE_BOOL))

    def _context(self) -> tuple[Any, Any]:
        slot = self._slot
        if slot.context is None:
            context = quickjs.Context()
            context.set_memory_limit(self.memory_limit_bytes)
            context.set_max_stack_size(self.max_stack_bytes)
            # Bootstrap without a time limit: freezing the intrinsics takes a few ms.
            context.eval(_BOOTSTRAP)
            context.set_time_limit(self.time_limit_ms / 1000)
            slot.context, slot.runner = context, context.get("__edged_run")
            slot.compiler, slot.compiled = context.get("__edged_compile"), {}
        return slot.context, slot.runner

    def _discard_context(self) -> None:
        slot = self._slot
        slot.context = slot.runner = slot.compiler = slot.compiled = None

    def _compiled(self, script: str) -> Any:
        """The script as a compiled function of `$` when it is one expression, else itself.

        Evaluating the function gives what a direct eval of the script gives (the value
        of its only expression statement), without parsing the source again: the parser
        is most of an INLINE evaluation's cost on a busy daemon (~75 of ~85 us, measured
        with cold caches, against ~12 us for the call).  The one visible difference is
        `arguments` inside the script (the eval path's runner has two).
        """
        slot = self._slot
        cache = slot.compiled
        if cache is None:
            return script
        found = cache.get(script)
        if found is None:
            if script in cache or _NOT_EXPRESSION_START.match(script):
                return script
            # `expr;` is the same expression statement as `expr`
            source = script.rstrip()
            source = source[:-1] if source.endswith(";") else source
            try:
                found = slot.compiler(source)
            except quickjs.JSException:
                found = None
            if len(cache) >= _COMPILED_MAX:
                del cache[next(iter(cache))]
            cache[script] = found  # None: not an expression, keep taking the eval path
            if found is None:
                return script
        return found

    def _run(self, script: str, bindings: Mapping[str, Any], mode: int) -> Any:
        try:
            bindings_json = _encode_bindings(bindings)
        except (TypeError, ValueError, RecursionError) as exc:
            raise JsError(f"bindings are not JSON: {exc}") from exc
        slot = self._slot
        cache = slot.compiled
        if cache is None:
            self._context()
            cache = slot.compiled
            assert cache is not None
        source = cache.get(script)
        if source is None:
            source = self._compiled(script)
        try:
            outcome = slot.runner(source, bindings_json, mode)
        except quickjs.JSException as exc:
            # After a timeout or memory/stack exhaustion the heap may be half-built
            # garbage; rebuilding costs a few ms and only happens on the error path.
            self._discard_context()
            raise self._translate(exc) from None
        if type(outcome) is str:  # value mode: the value's JSON text
            return _decode_json(outcome)[0]
        if outcome is None or type(outcome) is bool:  # undefined JSON text; bool mode
            return outcome
        return self._left_a_global(outcome, mode)

    def _left_a_global(self, outcome: Any, mode: int) -> Any:
        """The outcome of a script that left a global we could not delete: `[out]`."""
        self._discard_context()
        if not isinstance(outcome, quickjs.Object):
            raise JsError("sandbox returned an unexpected value")
        (out,) = json.loads(outcome.json())
        if mode == _MODE_VALUE and out is not None:
            return json.loads(out)
        return out

    def _translate(self, exc: Exception) -> JsError:
        text = str(exc)
        first_line = text.split("\n", 1)[0].strip()
        if first_line == "InternalError: interrupted":
            return JsError(f"script timed out after {self.time_limit_ms} ms")
        if first_line == "InternalError: out of memory":
            return JsError(f"script exceeded the memory limit of {self.memory_limit_bytes} bytes")
        if first_line == "null":
            # When memory is so short that QuickJS cannot even build the
            # InternalError, it throws null: indistinguishable from `throw null`.
            return JsError(
                f"script threw null, or hit the memory limit of {self.memory_limit_bytes} bytes"
            )
        if isinstance(exc, quickjs.StackOverflow) or "call stack size exceeded" in first_line:
            return JsError(f"script overflowed the stack (max {self.max_stack_bytes} bytes)")
        return JsError(f"Error evaluating the script `{first_line}`")


def _not_json(value: object) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _bindings_encoder() -> Callable[[object], str]:
    """JSON text of bindings: compact, ASCII, no NaN, Mappings and tuples as JSON allows.

    json's C encoder is built once here, where `JSONEncoder.encode` builds one per call
    (~23,000 -> ~15,000 instructions for an MQTT echo's bindings).  It runs without the
    circular-reference check: a cycle ends in RecursionError (not JSON) instead.
    """
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator: the pure-Python encoder, same text
        return json.JSONEncoder(
            allow_nan=False, default=_not_json, check_circular=False, separators=(",", ":")
        ).encode
    encode = make(
        None, _not_json, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False
    )
    join = "".join

    def encode_bindings(value: object) -> str:
        return join(encode(value, 0))

    return encode_bindings


_encode_bindings: Final = _bindings_encoder()
# JSON.stringify's text is one JSON value with nothing around it, what raw_decode reads.
_decode_json: Final = json.JSONDecoder().raw_decode


_DEFAULT = threading.local()


def _sandbox(sandbox: JsSandbox | None) -> JsSandbox:
    if sandbox is not None:
        return sandbox
    default: JsSandbox | None = getattr(_DEFAULT, "sandbox", None)
    if default is None:
        default = _DEFAULT.sandbox = JsSandbox()
    return default


def eval_inline(
    expression: str, task_input: Mapping[str, Any], *, sandbox: JsSandbox | None = None
) -> Any:
    """INLINE (evaluatorType javascript/graaljs): `$` is the task input; the script's value.

    Conductor stores it as the task output `{"result": value}`; this returns the value.
    """
    if not isinstance(expression, str) or not expression.strip():
        raise JsError(
            "Empty 'expression' in Inline task's input parameters. "
            "A non-empty String value must be provided."
        )
    return _sandbox(sandbox).evaluate(expression, task_input)


def eval_lambda(
    script_expression: str, task_input: Mapping[str, Any], *, sandbox: JsSandbox | None = None
) -> Any:
    """LAMBDA: the script is a function body (`return ...`), `$` is the task input."""
    if not isinstance(script_expression, str) or not script_expression.strip():
        raise JsError(
            "Empty 'scriptExpression' in Lambda task's input parameters. "
            "A non-empty String value must be provided."
        )
    wrapped = "function scriptFun(){" + script_expression + "} scriptFun();"
    return _sandbox(sandbox).evaluate(wrapped, task_input)


def eval_condition(
    expression: str, bindings: Mapping[str, Any], *, sandbox: JsSandbox | None = None
) -> bool:
    """DO_WHILE loopCondition: true keeps looping.

    Conductor's bindings (`$`): the DO_WHILE's resolved inputParameters, plus
    its own reference name -> its output data (`iteration`, per-iteration
    outputs), plus each loopOver task's reference name (iteration suffix
    stripped) -> that task's output data.  The value converts as
    ScriptEvaluator.toBoolean: a boolean as is, a number when > 0, anything
    else (strings, objects, null) False.
    """
    return _sandbox(sandbox).evaluate_bool(expression, bindings)


def eval_case(
    expression: str, task_input: Mapping[str, Any], *, sandbox: JsSandbox | None = None
) -> str:
    """DECISION caseExpression: the value as Java prints it (`1`, `1.5`, `true`, `null`)."""
    return java_str(_sandbox(sandbox).evaluate(expression, task_input))


def switch_case(
    evaluator_type: str,
    expression: str,
    task_input: Mapping[str, Any],
    *,
    sandbox: JsSandbox | None = None,
) -> str:
    """SWITCH: the case key, as SwitchTaskMapper computes `"" + evaluator.evaluate(...)`.

    `value-param`: `expression` names a key of the task input (missing -> "null").
    `javascript`/`graaljs`: the script's value printed as Java prints it.
    """
    if evaluator_type == "value-param":
        return java_str(task_input.get(expression))
    if evaluator_type in ("javascript", "graaljs"):
        return eval_case(expression, task_input, sandbox=sandbox)
    raise ExpressionError(f"No evaluator registered for type: {evaluator_type}")
