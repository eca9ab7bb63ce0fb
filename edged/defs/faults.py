"""Faults: what is wrong with a definition, where, and how to say it.

Theory of operation: every check in edged.defs appends a `Fault` instead of
raising, so one pass reports every problem of a document.  A fault names the
spot by a *path* rendered the way a person reads JSON (`tasks[3].decisionCases.
hot[0].type`); the loader later attaches the source name and the line the node
starts on.  Only the public entry points (`load_text`, `load_file`, ...) turn a
non-empty fault list into one `DefinitionError`.

Paths are plain strings so faults stay simple values; `split_path` parses them
back into components when the loader needs a parent path for a missing key.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from edged.errors import BadInput

_IDENT = re.compile(r"[A-Za-z_$][\w$-]*\Z")
_COMPONENT = re.compile(r"\.([A-Za-z_$][\w$-]*)|\[(\d+)\]|\[(\")")


@dataclass(frozen=True)
class Fault:
    """One problem at one place of a definition."""

    path: str
    message: str
    source: str | None = None
    line: int | None = None

    def __str__(self) -> str:
        where = ""
        if self.source is not None:
            where = self.source + (f":{self.line}" if self.line is not None else "") + ": "
        elif self.line is not None:
            where = f"line {self.line}: "
        return f"{where}{self.path}: {self.message}" if self.path else where + self.message


class DefinitionError(BadInput):
    """A definition was refused; `faults` lists every reason."""

    def __init__(self, faults: Sequence[Fault]) -> None:
        self.faults: list[Fault] = list(faults)
        super().__init__("\n".join(str(f) for f in self.faults) or "invalid definition")


def child(path: str, key: str | int) -> str:
    """The path of `key` inside the node at `path`."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _IDENT.match(key):
        return f"{path}.{key}" if path else key
    # Keys that would be ambiguous after a dot are quoted, JSON style.
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def join(prefix: str, path: str) -> str:
    """Prefix a document-relative path with the document's place in its file."""
    if not prefix:
        return path
    if not path:
        return prefix
    return prefix + path if path.startswith("[") else f"{prefix}.{path}"


def split_path(path: str) -> list[str]:
    """Every ancestor of `path` from the root down, ending with `path` itself.

    Parses what `child` renders; on anything it cannot parse it returns what it
    has so far, because callers only use this to find the nearest known line.
    """
    prefixes = [""]
    text = "." + path if path and not path.startswith("[") else path
    pos = 0
    decoder = json.JSONDecoder()
    while pos < len(text):
        m = _COMPONENT.match(text, pos)
        if m is None:
            break
        if m.group(3):
            try:
                _, end = decoder.raw_decode(text, m.start(3))
            except ValueError:
                break
            if end >= len(text) or text[end] != "]":
                break
            pos = end + 1
        else:
            pos = m.end()
        prefixes.append(text[:pos].lstrip("."))
    return prefixes


def suggest(word: str, choices: Iterable[str]) -> str:
    """` (did you mean "X"?)` for the closest choice, or an empty string."""
    pool = list(choices)
    close = difflib.get_close_matches(word, pool, n=1, cutoff=0.6)
    if not close:
        # Case slips ("http" for "HTTP") score low with difflib; catch them directly.
        folded = {c.casefold(): c for c in pool}
        hit = folded.get(word.casefold())
        close = [hit] if hit is not None else []
    return f' (did you mean "{close[0]}"?)' if close else ""


def type_name(value: object) -> str:
    """The JSON name of a value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__
