"""Text to JSON data, with the line each node starts on.

Theory of operation: JSON is tried first with the json module (fast, exact
integers); only when that fails is the text read as YAML, of which JSON is a
subset.  Both paths produce the same thing: plain JSON values (dict, list, str,
int, float, bool, None) and a map from rendered path (`tasks[2].type`) to the
1-based line where that node starts, so that semantic faults found later can
point at a line too.

Bounds, so hostile input gets a fault instead of an exception:
- nesting deeper than MAX_DEPTH is refused: after json.loads (whose C
  scanner raises RecursionError, caught, on absurd depths) and while YAML
  nodes are composed;
- YAML aliases are refused outright: they are the billion-laughs vector and
  definitions do not need them;
- YAML goes through a SafeLoader (no python/* tags); dates stay strings, as
  they would in JSON; anything that is still not JSON data (binary, sets,
  non-finite floats) is a fault.
The text size limit is the caller's (see load.py).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from edged.defs.faults import Fault, child, type_name

MAX_DEPTH = 64

_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[{}\[\]:,]|[^\s"{}\[\]:,]+')


@dataclass
class Parsed:
    """Documents read from one text, or the faults that stopped reading."""

    docs: list[Any] = field(default_factory=list)
    multi: bool = False  # True when docs came from a JSON/YAML list or a YAML stream
    faults: list[Fault] = field(default_factory=list)
    lines_known: dict[str, int] | None = None
    json_text: str | None = None  # set when the line map is still to be built

    @property
    def lines(self) -> dict[str, int]:
        """Path → line.  For JSON it is built on first use: most texts are valid
        and never need it, and the scan costs more than json.loads itself."""
        if self.lines_known is None:
            try:
                self.lines_known = _scan_json(self.json_text or "")
            except _Refused:
                self.lines_known = {}
        return self.lines_known


class _Refused(Exception):
    """Internal: stop reading; carries the fault."""

    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.fault = Fault("", message, line=line)


_LOOKS_JSON = re.compile(r'\s*[\[{]\s*(?:["\[{\]}]|\Z)')


def parse_text(text: str, *, json_only: bool = False) -> Parsed:
    """Read JSON or YAML text into documents plus a path → line map.

    Text that is clearly JSON (`{"...`, `[{...`) or comes from a .json file
    (`json_only`) gets the JSON error when it is malformed: YAML's flow syntax
    would otherwise read `{"a": }` as a null and hide the mistake.
    """
    stripped = text.lstrip()
    if not stripped:
        return Parsed(faults=[Fault("", "empty document: no definition found", line=1)])
    json_fault: Fault | None = None
    if stripped[0] in "{[":
        try:
            value = json.loads(text, parse_constant=_no_constant, parse_float=_finite_float)
        except json.JSONDecodeError as e:
            json_fault = Fault("", f"invalid JSON: {e.msg} (column {e.colno})", line=e.lineno)
        except RecursionError:
            return Parsed(faults=[_too_deep_json(text)])
        except ValueError as e:
            return Parsed(faults=[Fault("", f"invalid JSON: {e}")])
        else:
            if _deeper_than(value, MAX_DEPTH):
                return Parsed(faults=[_too_deep_json(text)])
            if isinstance(value, list):
                return Parsed(docs=value, multi=True, json_text=text)
            return Parsed(docs=[value], json_text=text)
    if json_fault is not None and (json_only or _LOOKS_JSON.match(text)):
        return Parsed(faults=[json_fault])
    if json_only:
        return Parsed(faults=[Fault("", "invalid JSON: expected an object or an array", line=1)])
    parsed = _parse_yaml(text)
    if parsed.faults and json_fault is not None:
        # Not YAML either: the JSON error is the more useful one.
        return Parsed(faults=[json_fault])
    return parsed


def _deeper_than(value: Any, limit: int) -> bool:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values() if isinstance(v, dict | list))
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node if isinstance(v, dict | list))
    return False


def _too_deep_json(text: str) -> Fault:
    try:
        _scan_json(text)
    except _Refused as e:
        return e.fault
    return Fault("", f"nesting deeper than {MAX_DEPTH} levels")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"number {text[:20]} is out of range")
    return number


def _scan_json(text: str) -> dict[str, int]:
    """Map each value's path to its line; refuse nesting deeper than MAX_DEPTH.

    Only run on text json.loads accepted (or found too deep), so the token
    stream is well formed; it is iterative, whatever the nesting.
    """
    lines: dict[str, int] = {}
    # Each frame: [is_object, path, next_index, pending_key]
    stack: list[list[Any]] = []
    line = 1
    last = 0
    expect_key = False
    for m in _TOKEN.finditer(text):
        pos = m.start()
        line += text.count("\n", last, pos)
        last = pos
        tok = m.group()
        first = tok[0]
        if first in ":,":
            if first == "," and stack:
                frame = stack[-1]
                if frame[0]:
                    expect_key = True
                else:
                    frame[2] += 1
            continue
        if first in "}]":
            if stack:
                stack.pop()
            expect_key = False
            continue
        if expect_key and stack and stack[-1][0]:
            stack[-1][3] = _key_text(tok)
            expect_key = False
            continue
        path = _value_path(stack)
        lines.setdefault(path, line)
        if first in "{[":
            if len(stack) >= MAX_DEPTH:
                raise _Refused(f"nesting deeper than {MAX_DEPTH} levels", line)
            stack.append([first == "{", path, 0, ""])
            expect_key = first == "{"
    return lines


def _key_text(tok: str) -> str:
    if tok.startswith('"'):
        if "\\" not in tok:
            return tok[1:-1]
        try:
            key = json.loads(tok)
        except ValueError:
            return tok
        return key if isinstance(key, str) else tok
    return tok


def _value_path(stack: list[list[Any]]) -> str:
    if not stack:
        return ""
    is_object, path, index, key = stack[-1]
    return child(path, key) if is_object else child(path, index)


class _SafeLoader(yaml.SafeLoader):
    """SafeLoader that refuses aliases and deep nesting, and keeps dates as text."""

    yaml_implicit_resolvers = {
        first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.edged_depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise _Refused(
                "YAML aliases (*name) are not supported; repeat the value instead",
                event.start_mark.line + 1,
            )
        self.edged_depth += 1
        try:
            if self.edged_depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _Refused(f"nesting deeper than {MAX_DEPTH} levels", mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self.edged_depth -= 1


def _parse_yaml(text: str) -> Parsed:
    try:
        # The reader checks the characters as the loader is built: keep it inside.
        loader = _SafeLoader(text)
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        return Parsed(faults=[Fault("", f"invalid YAML: {e.reason}", line=line)])
    try:
        nodes = []
        while loader.check_node():
            nodes.append(loader.get_node())
        if not nodes:
            return Parsed(faults=[Fault("", "empty document: no definition found", line=1)])
        multi = len(nodes) > 1
        parsed = Parsed(multi=multi, lines_known={})
        for i, node in enumerate(nodes):
            base = child("", i) if multi else ""
            _map_lines(node, base, parsed.lines)
            value = loader.construct_document(node)
            parsed.docs.append(_to_json(value, base, parsed))
        if len(parsed.docs) == 1 and isinstance(parsed.docs[0], list):
            parsed.docs, parsed.multi = parsed.docs[0], True
        return parsed
    except _Refused as e:
        return Parsed(faults=[e.fault])
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        mark_line = mark.line + 1 if mark is not None else None
        col = f" (column {mark.column + 1})" if mark is not None else ""
        problem = e.problem or e.context or "syntax error"
        return Parsed(faults=[Fault("", f"invalid YAML: {problem}{col}", line=mark_line)])
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        return Parsed(faults=[Fault("", f"invalid YAML: {e.reason}", line=line)])
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as e:
        return Parsed(faults=[Fault("", f"invalid YAML: {e}")])
    finally:
        loader.dispose()


def _map_lines(node: Any, path: str, lines: dict[str, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
            _map_lines(value_node, child(path, str(key)), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _map_lines(item, child(path, i), lines)


def _to_json(value: Any, path: str, parsed: Parsed) -> Any:
    """Check that YAML produced JSON data; turn scalar keys into JSON key text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        parsed.faults.append(_not_json(path, "non-finite number", parsed))
        return None
    if isinstance(value, list):
        return [_to_json(item, child(path, i), parsed) for i, item in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if isinstance(key, str):
                name = key
            elif key is None or isinstance(key, bool | int | float):
                # What the same key means in JSON, where keys are always text.
                name = json.dumps(key)
            else:
                parsed.faults.append(_not_json(path, f"{type_name(key)} key", parsed))
                continue
            out[name] = _to_json(item, child(path, name), parsed)
        return out
    parsed.faults.append(_not_json(path, type_name(value), parsed))
    return None


def _not_json(path: str, what: str, parsed: Parsed) -> Fault:
    return Fault(path, f"{what} is not JSON data", line=parsed.lines.get(path))
