"""Conductor parameter wiring: `${workflow.input.x}` templates, as ParametersUtils does it.

Theory of operation
-------------------
`resolve(template, ctx)` walks dicts and lists and rebuilds them (the
template is never mutated; referenced containers are copied).  Dict keys and
non-string scalars pass through.  Each string is compiled once into a
`_Template` (bounded LRU) of literal text and references; rendering then does
one lookup per reference.

Matching follows ParametersUtils.replaceVariables (conductor-oss, checked
against its regex and Jayway json-path 2.10 run on a JVM):

* A reference starts at `${` whose `$` is not itself preceded by `$`, and ends
  at the `}` that balances the first `{` (every `{`/`}` counts, so nested
  `${a.${b}}` references work: the inner one is resolved first, as text, and
  the result is the outer path).  If a `${` is never balanced, scanning stops
  there and the rest of the string is literal (Java's regex behaves so).
* A string that is exactly one reference keeps the referenced value's type.
  Otherwise each value is printed as Java's `Objects.toString` prints the
  object Conductor holds: null -> `null`, booleans `true`/`false`, floats as
  Java doubles (`1.0`, `1.0E20`), objects `{a=1, b=[1, 2]}`, arrays
  `[1, two]`; the array that an indefinite path (`[*]`, `..`, slices)
  produces prints as JSON (`[1,"two"]`, `/` escaped as `\\/`) because Jayway
  returns a json-smart array there.
* After substitution every `$${` in the whole string becomes `${` (so `$${x}`
  is the literal `${x}`); a lone reference string is returned without that
  step, as in Java.
* Blank references (`${}`, `${  }`) become the empty string.  An unclosed
  `${` stays literal.  A path Jayway rejects (`${a[}`, `${{x}}`,
  `${ x }`) and a missing path give null; `${a..b}` is a valid deep scan
  (a list, `[]` when nothing matches).
* `${CPEWF_TASK_ID}` is the task id; with no task id the reference stays
  literal (Java adds no replacement).

Deliberate differences
----------------------
* Conductor checks JVM environment variables and system properties before the
  document, for the whole path.  edged looks in `ctx` first and only then in
  the allow-listed `env` mapping, by root name (`${HOME}`, `${SITE.x}` reads
  `.x` of a string: null).  NETFLIX_ENV / NETFLIX_STACK are not special.
* `workflow.secrets.*` and `workflow.env.*` are not special (plain lookups).
* Objects print in insertion order; Java prints its HashMaps in hash order.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

from edged.expr.jsonpath import MISSING, CompiledPath, PathSyntaxError, compile_path

__all__ = ["find_references", "java_str", "resolve", "resolve_params"]

TASK_ID_REFERENCE: Final = "CPEWF_TASK_ID"
_EMPTY_ENV: Final[Mapping[str, str]] = {}
# Values that resolve (and `_copy`) to themselves, by exact type; checked inline by the
# container branches so a message's scalars cost no call each.
_ATOMS: Final = frozenset({str, int, float, bool, type(None)})


@dataclass(frozen=True, slots=True)
class _Ref:
    """One `${...}`: its original text and how to find its value."""

    text: str  # the whole match, `${...}`, kept for the no-task-id case
    path_text: str  # between the braces, `$${` already unescaped, if static
    path: CompiledPath | None  # None: blank, CPEWF_TASK_ID, invalid, or dynamic
    nested: _Template | None  # set when the path itself contains references


@dataclass(frozen=True, slots=True)
class _Template:
    parts: tuple[str | _Ref, ...]
    whole: bool  # exactly one reference spanning the string
    lone: _Ref | None  # that reference, when `whole`


def _spans(text: str) -> list[tuple[int, int]]:
    spans: list[tuple[int, int]] = []
    pos = 0
    while True:
        start = text.find("${", pos)
        if start < 0:
            return spans
        if start > 0 and text[start - 1] == "$":
            pos = start + 1  # `$${` is an escape, not a reference
            continue
        depth = 0
        end = -1
        for at in range(start + 1, len(text)):
            ch = text[at]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    end = at
                    break
        if end < 0:
            return spans  # unbalanced: Java's regex finds nothing further
        spans.append((start, end + 1))
        pos = end + 1


@lru_cache(maxsize=8192)
def _compile(text: str) -> _Template:
    parts: list[str | _Ref] = []
    pos = 0
    spans = _spans(text)
    for start, end in spans:
        if start > pos:
            parts.append(text[pos:start])
        inner = text[start + 2 : end - 1]
        nested = _compile(inner) if _spans(inner) else None
        path_text = inner.replace("$${", "${")
        path: CompiledPath | None = None
        if nested is None and path_text.strip() and path_text != TASK_ID_REFERENCE:
            try:
                path = compile_path(path_text)
            except PathSyntaxError:
                path = None
        parts.append(_Ref(text[start:end], path_text, path, nested))
        pos = end
    if pos < len(text):
        parts.append(text[pos:])
    whole = len(spans) == 1 and spans[0] == (0, len(text))
    lone = parts[0] if whole and isinstance(parts[0], _Ref) else None
    return _Template(tuple(parts), whole, lone)


class _Resolver:
    """Holds the lookup sources for one `resolve` call."""

    __slots__ = ("ctx", "env", "task_id")

    def __init__(self, ctx: Mapping[str, Any], env: Mapping[str, str], task_id: str | None):
        self.ctx = ctx
        self.env = env
        self.task_id = task_id

    def walk(self, value: Any) -> Any:
        kind = type(value)  # exact type checks first: this runs for every template value
        if kind is str:
            return self.walk_str(value)
        if kind is dict:
            # inputParameters: mostly strings and numbers, handled here without a walk()
            # call each
            out = {}
            for key, item in value.items():
                kind = type(item)
                if kind is str:
                    out[key] = item if "${" not in item else self.walk_str(item)
                elif kind in _ATOMS:
                    out[key] = item
                else:
                    out[key] = self.walk(item)
            return out
        if kind in _ATOMS:
            return value
        if kind is list:
            return [self.walk(item) for item in value]
        if isinstance(value, str):
            return self.walk(str(value))
        if isinstance(value, Mapping):
            return {key: self.walk(value[key]) for key in value}
        if isinstance(value, (list, tuple)):
            return [self.walk(item) for item in value]
        return value

    def walk_str(self, value: str) -> Any:
        if "${" not in value:
            return value
        template = _compile(value)
        ref = template.lone
        if ref is not None:
            path = ref.path
            if path is not None and path.root is not None:
                found = self.ctx.get(path.root, MISSING)
                if found is MISSING:
                    found = self.env.get(path.root, MISSING)
                return _copy(path.read(found))
        return self.render(template, top=True)

    def render(self, template: _Template, *, top: bool) -> Any:
        if template.whole and top:
            ref = template.parts[0]
            assert isinstance(ref, _Ref)
            found, value, _ = self.lookup(ref)
            return _copy(value) if found else _unescape(ref.text)
        pieces: list[str] = []
        for part in template.parts:
            if isinstance(part, str):
                pieces.append(part)
                continue
            found, value, as_json = self.lookup(part)
            if not found:
                pieces.append(part.text)
            elif as_json:
                pieces.append(_json_str(value))
            else:
                pieces.append(java_str(value))
        return _unescape("".join(pieces))

    def lookup(self, ref: _Ref) -> tuple[bool, Any, bool]:
        """(replaced?, value, print-as-JSON?) for one reference."""
        path = ref.path
        path_text = ref.path_text
        if ref.nested is not None:
            path_text = str(self.render(ref.nested, top=False))
            path = None
            if path_text.strip() and path_text != TASK_ID_REFERENCE:
                try:
                    path = compile_path(path_text)
                except PathSyntaxError:
                    return True, None, False
        if not path_text.strip():
            return True, "", False
        if path_text == TASK_ID_REFERENCE:
            return self.task_id is not None, self.task_id, False
        if path is None:
            return True, None, False  # Jayway rejected the path: null
        root = path.root
        if root is None:
            return True, path.read_unrooted(), path.yields_array
        value = self.ctx.get(root, MISSING)
        if value is MISSING:
            value = self.env.get(root, MISSING)
        return True, path.read(value), path.yields_array


def _unescape(text: str) -> str:
    return text.replace("$${", "${") if "$${" in text else text


def _copy(value: Any) -> Any:
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is dict or isinstance(value, dict):
        out = dict(value)  # then the containers in it, copied in place (no size change)
        for item in out.values():
            if type(item) not in _ATOMS:  # (a flat dict, most messages, skips this: ~1k)
                for key, child in out.items():
                    if type(child) not in _ATOMS:
                        out[key] = _copy(child)
                break
        return out
    if kind is list or isinstance(value, (list, tuple)):
        return [item if type(item) in _ATOMS else _copy(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _copy(value[key]) for key in value}
    return value


def resolve(
    template: Any,
    ctx: Mapping[str, Any],
    *,
    task_id: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Any:
    """Resolve every `${...}` in `template` against `ctx` (then `env`); never raises.

    `ctx` is only probed with `get`, never iterated, so it may be lazy.
    """
    return _Resolver(ctx, env if env is not None else _EMPTY_ENV, task_id).walk(template)


@dataclass(frozen=True, slots=True)
class _Plan:
    """What resolving one parameter dict takes, worked out once per dict object."""

    skeleton: dict[Any, Any]  # every key in order; atoms and `${`-free strings as they are
    # exactly one rooted reference: look it up (split: its first key and the rest, if only keys)
    lone: tuple[tuple[Any, CompiledPath, tuple[str, tuple[str, ...]] | None], ...]
    walked: tuple[tuple[Any, Any], ...]  # anything else: `walk` it


_PLANS: dict[int, tuple[dict[Any, Any], _Plan]] = {}
_PLANS_MAX = 4096


def _plan_of(template: dict[Any, Any]) -> _Plan:
    found = _PLANS.get(id(template))
    if found is not None and found[0] is template:
        return found[1]
    skeleton: dict[Any, Any] = {}
    lone: list[tuple[Any, CompiledPath, tuple[str, tuple[str, ...]] | None]] = []
    walked: list[tuple[Any, Any]] = []
    for key, item in template.items():
        skeleton[key] = item  # the place of the key; replaced unless an atom
        kind = type(item)
        if kind is str and "${" in item:
            ref = _compile(item).lone
            path = ref.path if ref is not None else None
            if path is not None and path.root is not None:
                split = (path.keys[0], path.keys[1:]) if path.keys else None
                lone.append((key, path, split))
            else:
                walked.append((key, item))
        elif kind not in _ATOMS:
            walked.append((key, item))
    plan = _Plan(skeleton, tuple(lone), tuple(walked))
    if len(_PLANS) >= _PLANS_MAX:
        _PLANS.clear()
    _PLANS[id(template)] = (template, plan)  # holds it: the id is not reused meanwhile
    return plan


# Types found to be Mappings (an ABC isinstance check costs a call each time); a type
# never stops being one, so the set only grows, up to the few view types there are.
_MAPPINGS: set[type] = set()


def _is_mapping(node: Any) -> bool:
    if isinstance(node, Mapping):
        if len(_MAPPINGS) < 64:
            _MAPPINGS.add(type(node))
        return True
    return False


def resolve_params(
    template: dict[Any, Any],
    ctx: Mapping[str, Any],
    *,
    task_id: str | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[Any, Any]:
    """`resolve(template, ctx, ...)` for a parameter dict that is never changed in place
    (a definition's `inputParameters` / `outputParameters`): what each entry needs is
    worked out once per dict object, so a resolution copies the literal entries at once
    (keys keep their order: each resolved value replaces its key's placeholder) and
    does only the lookups."""
    found = _PLANS.get(id(template))
    plan = found[1] if found is not None and found[0] is template else _plan_of(template)
    out = dict(plan.skeleton)
    # A context may read a root and the first key under it in one call, without building
    # the root's view (the decider's ExpressionContext: ~3k instructions a reference less).
    get_in = getattr(ctx, "get_in", None)
    for key, path, split in plan.lone:
        node: Any = MISSING
        keys: tuple[str, ...] | None
        if split is not None and get_in is not None:
            first, keys = split
            node = get_in(path.root, first, MISSING)
        if node is MISSING:  # (or either is absent) looked up as any Mapping
            node = ctx.get(path.root, MISSING)  # type: ignore[arg-type]  # rooted: a str
            if node is MISSING:
                node = (env or _EMPTY_ENV).get(path.root, MISSING)  # type: ignore[arg-type]
            keys = path.keys
        if keys is None:
            node = path.read(node)
        else:  # CompiledPath.read's plain-keys walk, without the call
            for name in keys:
                kind = type(node)
                if kind is dict or kind in _MAPPINGS or _is_mapping(node):
                    node = node.get(name, MISSING)
                else:
                    node = None
                    break
            if node is MISSING:
                node = None
        out[key] = node if type(node) in _ATOMS else _copy(node)
    if plan.walked:
        resolver = _Resolver(ctx, env if env is not None else _EMPTY_ENV, task_id)
        for key, item in plan.walked:
            out[key] = resolver.walk(item)
    return out


def find_references(template: Any) -> list[str]:
    """Every reference path in `template`, in order; nested ones after their outer one.

    A reference whose path is built from another (`${a.${b}}`) is listed as
    written (`a.${b}`), followed by the inner `b`.  Blank references are skipped.
    """
    found: list[str] = []
    _collect(template, found)
    return found


def _collect(value: Any, found: list[str]) -> None:
    if isinstance(value, str):
        if "${" in value:
            _collect_template(_compile(value), found)
    elif isinstance(value, dict):
        for item in value.values():
            _collect(item, found)
    elif isinstance(value, list):
        for item in value:
            _collect(item, found)


def _collect_template(template: _Template, found: list[str]) -> None:
    for part in template.parts:
        if isinstance(part, _Ref) and part.path_text.strip():
            found.append(part.path_text)
            if part.nested is not None:
                _collect_template(part.nested, found)


def java_double(value: float) -> str:
    """Java's Double.toString (shortest digits, as JDK 19+ prints them)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "Infinity" if value > 0 else "-Infinity"
    magnitude = abs(value)
    if value == 0 or 1e-3 <= magnitude < 1e7:
        return repr(value)  # Python also prints this range as plain decimals
    _sign, digits, exponent = Decimal(repr(magnitude)).as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits)).rstrip("0") or "0"
    power = len(digits) - 1 + exponent
    mantissa = text[0] + "." + (text[1:] or "0")
    return ("-" if value < 0 else "") + f"{mantissa}E{power}"


def java_str(value: Any) -> str:
    """`Objects.toString` of the Java object Conductor would hold for a JSON value."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{java_str(k)}={java_str(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple, set, frozenset)):
        return "[" + ", ".join(java_str(item) for item in value) + "]"
    return str(value)


_JSON_SMART_ESCAPES: Final = {
    '"': '\\"',
    "\\": "\\\\",
    "/": "\\/",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def _json_smart_string(text: str) -> str:
    out = ['"']
    for ch in text:
        escaped = _JSON_SMART_ESCAPES.get(ch)
        if escaped is not None:
            out.append(escaped)
        elif ch < " " or "\x7f" <= ch <= "\x9f" or "\u2000" <= ch <= "\u20ff":
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _json_str(value: Any) -> str:
    """JSON as json-smart prints Jayway's result arrays (no spaces, `\\/`, Java doubles)."""
    if value is None or isinstance(value, (bool, int)):
        return json.dumps(value)
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, str):
        return _json_smart_string(value)
    if isinstance(value, Mapping):
        items = (f"{_json_smart_string(str(k))}:{_json_str(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_json_str(item) for item in value) + "]"
    return _json_smart_string(str(value))
