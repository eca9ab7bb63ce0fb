"""The subset of Jayway JsonPath that Conductor's `${...}` references rely on.

Theory of operation
-------------------
Conductor hands the text between `${` and `}` to Jayway JsonPath
(`DocumentContext.read` with `SUPPRESS_EXCEPTIONS`) over a document whose top
level is `{"workflow": {...}, "<taskRef>": {...}}`.  Jayway prefixes a path
that does not start with `$` or `@` with `$.`, so `workflow.input.x` means
`$.workflow.input.x` and `.x` or `a..b` are deep scans.

`compile_path` turns the text into a `CompiledPath` (a tuple of steps) once;
`CompiledPath.read` walks Python JSON values.  The rules follow Jayway, checked
against json-path 2.10 (the version Conductor ships):

* A *definite* path (only names and single indexes) yields one value, or
  `None` when any step is missing or hits the wrong type.
* An *indefinite* path (`*`, `..`, slices, several indexes) yields a list of
  every match, `[]` when nothing matches.  Callers need to know which kind
  they got, because Conductor prints the two differently when it embeds them
  in text (a Java `List` prints as `[a, b]`, Jayway's result array as JSON).
* Functions at the end: `length()`/`size()` (of an object or array, `None`
  on anything else), `min() max() sum() avg() stddev()` (numbers in an array,
  as floats), `first() last() keys()`.
* A malformed path (`a[`, `{x}`, spaces outside brackets, a trailing dot)
  reads as `None`: Conductor catches Jayway's `InvalidPathException` and
  substitutes null.

Deliberate differences from Jayway
----------------------------------
* Filters (`[?(...)]`) are not supported: they read as `None`.
* The root document may be a lazy mapping that must not be iterated, so a
  wildcard or deep scan *at the root* (`${*}`, `${..x}`, `${$}`) matches
  nothing (`[]`, or `None` for `${$}`); Jayway would scan every task.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

__all__ = ["MISSING", "CompiledPath", "PathSyntaxError", "compile_path"]


class PathSyntaxError(ValueError):
    """The reference text is not a JsonPath we understand (reads as null)."""


class _Missing:
    """Sentinel for 'this step found nothing' (distinct from a JSON null)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()

_FUNCTIONS: Final = frozenset(
    {"length", "size", "min", "max", "sum", "avg", "stddev", "first", "last", "keys"}
)


@dataclass(frozen=True, slots=True)
class _Prop:
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Index:
    indexes: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class _Slice:
    start: int | None
    stop: int | None


@dataclass(frozen=True, slots=True)
class _Wildcard:
    pass


@dataclass(frozen=True, slots=True)
class _Scan:
    """`..` followed by one step, applied to the node and every descendant."""

    step: _Prop | _Index | _Slice | _Wildcard


_Step = _Prop | _Index | _Slice | _Wildcard | _Scan


def _is_definite(step: _Step) -> bool:
    match step:
        case _Prop():
            return True  # several names give one object, still definite
        case _Index(indexes):
            return len(indexes) == 1
        case _:
            return False


@dataclass(frozen=True, slots=True)
class CompiledPath:
    """A parsed reference; `read` walks it over a root mapping."""

    steps: tuple[_Step, ...]
    function: str | None
    definite: bool
    root: str | None  # the top-level name the path starts with (`workflow`, a task ref)
    keys: tuple[str, ...] | None  # the names after the root, when that is all there is
    yields_array: bool  # `read` returns Jayway's result array (printed as JSON when embedded)

    def read(self, root_value: Any) -> Any:
        """Apply every step after the root name to `root_value` (MISSING if absent).

        Returns the value (definite, or any path ending in a function) or the
        list of matches (indefinite).
        """
        keys = self.keys
        if keys is not None:
            # The common case (`workflow.input.x`): plain key lookups, no lists.
            node = root_value
            for key in keys:
                if type(node) is dict or isinstance(node, Mapping):
                    node = node.get(key, MISSING)
                else:
                    return None
            return None if node is MISSING else node
        nodes: list[Any] = [] if root_value is MISSING else [root_value]
        for step in self.steps[1:]:
            nodes = _apply(step, nodes)
        if self.function is not None:
            target: Any = nodes if not self.definite else (nodes[0] if nodes else MISSING)
            return _call(self.function, target)
        if self.definite:
            return nodes[0] if nodes else None
        return nodes

    def read_unrooted(self) -> Any:
        """Result for a path that does not start with a plain name (`$`, `*`, `..x`)."""
        if self.function is not None:
            return None
        return None if self.definite else []


def _apply(step: _Step, nodes: list[Any]) -> list[Any]:
    out: list[Any] = []
    for node in nodes:
        _apply_one(step, node, out)
    return out


def _apply_one(step: _Step, node: Any, out: list[Any]) -> None:
    match step:
        case _Prop(names):
            if not isinstance(node, Mapping):
                return
            if len(names) == 1:
                if names[0] in node:
                    out.append(node[names[0]])
            else:
                out.append({name: node.get(name) for name in names})
        case _Index(indexes):
            if not isinstance(node, list):
                return
            size = len(node)
            for index in indexes:
                effective = index + size if index < 0 else index
                if 0 <= effective < size:
                    out.append(node[effective])
        case _Slice(start, stop):
            if isinstance(node, list):
                out.extend(node[start:stop])
        case _Wildcard():
            if isinstance(node, Mapping):
                out.extend(node.values())
            elif isinstance(node, list):
                out.extend(node)
        case _Scan(inner):
            _scan(inner, node, out)


def _scan(inner: _Prop | _Index | _Slice | _Wildcard, node: Any, out: list[Any]) -> None:
    # Pre-order like Jayway's ScanPathToken: the node itself, then its children.
    if isinstance(node, Mapping):
        _apply_one(inner, node, out)
        for child in node.values():
            if isinstance(child, (Mapping, list)):
                _scan(inner, child, out)
    elif isinstance(node, list):
        _apply_one(inner, node, out)
        for child in node:
            if isinstance(child, (Mapping, list)):
                _scan(inner, child, out)


def _numbers(value: Any) -> list[float]:
    if not isinstance(value, list):
        return []
    return [float(v) for v in value if isinstance(v, (int, float)) and not isinstance(v, bool)]


def _call(function: str, value: Any) -> Any:
    if function in ("length", "size"):
        return len(value) if isinstance(value, (Mapping, list)) else None
    if function in ("first", "last"):
        if isinstance(value, list) and value:
            return value[0] if function == "first" else value[-1]
        return None
    if function == "keys":
        return list(value.keys()) if isinstance(value, Mapping) else None
    numbers = _numbers(value)
    if not numbers:
        return None
    if function == "min":
        return min(numbers)
    if function == "max":
        return max(numbers)
    if function == "sum":
        return math.fsum(numbers)
    if function == "avg":
        return math.fsum(numbers) / len(numbers)
    return statistics.pstdev(numbers)  # stddev: Jayway divides by n


class _Reader:
    """A cursor over the path text; each method consumes one construct."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self, offset: int = 0) -> str:
        at = self.pos + offset
        return self.text[at] if at < len(self.text) else ""

    def fail(self, why: str) -> PathSyntaxError:
        return PathSyntaxError(f"{why} at {self.pos} in {self.text!r}")

    def name(self) -> str:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] not in ".[( ":
            self.pos += 1
        if self.pos == start:
            raise self.fail("expected a name")
        return self.text[start : self.pos]

    def bracket(self) -> _Prop | _Index | _Slice | _Wildcard:
        assert self.peek() == "["
        close = self.text.find("]", self.pos)
        if self.peek(1) in ("'", '"'):
            return self._quoted_names()
        if close < 0:
            raise self.fail("unclosed [")
        body = self.text[self.pos + 1 : close].strip()
        self.pos = close + 1
        if body == "*":
            return _Wildcard()
        if body.startswith("?"):
            raise self.fail("filters are not supported")
        try:
            if ":" in body:
                start, _, stop = body.partition(":")
                if ":" in stop:
                    raise self.fail("slice steps are not supported")
                return _Slice(_opt_int(start), _opt_int(stop))
            return _Index(tuple(int(part) for part in body.split(",")))
        except ValueError as exc:
            raise self.fail(f"bad index {body!r}") from exc

    def _quoted_names(self) -> _Prop:
        self.pos += 1  # the [
        names: list[str] = []
        while True:
            while self.peek() == " ":
                self.pos += 1
            quote = self.peek()
            if quote not in ("'", '"'):
                raise self.fail("expected a quoted name")
            self.pos += 1
            chars: list[str] = []
            while True:
                ch = self.peek()
                if ch == "":
                    raise self.fail("unclosed quote")
                self.pos += 1
                if ch == "\\" and self.peek() in (quote, "\\"):
                    chars.append(self.peek())
                    self.pos += 1
                elif ch == quote:
                    break
                else:
                    chars.append(ch)
            names.append("".join(chars))
            while self.peek() == " ":
                self.pos += 1
            if self.peek() == ",":
                self.pos += 1
                continue
            if self.peek() == "]":
                self.pos += 1
                return _Prop(tuple(names))
            raise self.fail("expected , or ]")


def _opt_int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text else None


@lru_cache(maxsize=4096)
def compile_path(text: str) -> CompiledPath:
    """Parse reference text like `workflow.input.items[0]['a.b'].length()`.

    Raises PathSyntaxError for text Jayway would reject (callers read it as null).
    """
    text = text.rstrip()  # Jayway ignores trailing blanks (but not leading ones)
    if text.startswith(("$", "@")):
        body = text[1:]
    else:
        body = "." + text if not text.startswith("[") else text
    reader = _Reader(body)
    steps: list[_Step] = []
    function: str | None = None
    while reader.pos < len(body):
        if function is not None:
            raise reader.fail("a function must be the last step")
        ch = reader.peek()
        if ch == "[":
            steps.append(reader.bracket())
        elif ch == ".":
            reader.pos += 1
            if reader.peek() == ".":
                reader.pos += 1
                inner: _Prop | _Index | _Slice | _Wildcard
                if reader.peek() == "[":
                    inner = reader.bracket()
                elif reader.peek() == "*":
                    reader.pos += 1
                    inner = _Wildcard()
                else:
                    inner = _Prop((reader.name(),))
                steps.append(_Scan(inner))
            elif reader.peek() == "[":
                steps.append(reader.bracket())
            elif reader.peek() == "*":
                reader.pos += 1
                steps.append(_Wildcard())
            else:
                name = reader.name()
                if reader.peek() == "(":
                    if body[reader.pos : reader.pos + 2] != "()" or name not in _FUNCTIONS:
                        raise reader.fail(f"unsupported function {name!r}")
                    reader.pos += 2
                    function = name
                else:
                    steps.append(_Prop((name,)))
        else:
            raise reader.fail(f"unexpected {ch!r}")
    definite = all(_is_definite(step) for step in steps)
    root = None
    if steps and isinstance(steps[0], _Prop) and len(steps[0].names) == 1:
        root = steps[0].names[0]
    keys: tuple[str, ...] | None = None
    plain = all(isinstance(step, _Prop) and len(step.names) == 1 for step in steps)
    if root is not None and function is None and plain:
        keys = tuple(step.names[0] for step in steps[1:] if isinstance(step, _Prop))
    yields_array = not definite and function is None
    return CompiledPath(tuple(steps), function, definite, root, keys, yields_array)
