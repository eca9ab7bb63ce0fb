"""`${...}` wiring expressions: find them, and check what they point at.

Theory of operation: Conductor resolves `${root.rest}` in inputParameters and
outputParameters against a document whose top-level keys are `workflow` and
every task's reference name; `$${x}` is an escape for the literal text `${x}`.
A root that is none of those is almost always a typo of a reference name, so
it is a fault with a "did you mean".  Roots that are legitimately outside the
definition are allowed: `CPEWF_TASK_ID` (the current task's id), upper-case
environment-style names (`${NODE_NAME}`), and JSONPath roots starting with `$`.
A DO_WHILE iteration reference `ref__3` counts as `ref`.

Walking parameter values is iterative and depth-bounded so an adversarial
value cannot exhaust the stack.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator
from typing import Any

from edged.defs.faults import Fault, child, suggest

MAX_VALUE_DEPTH = 64

_ROOT = re.compile(r"\s*([^.\[\s}]+)")
_ENV_NAME = re.compile(r"[A-Z][A-Z0-9_]*\Z")
_ITERATION = re.compile(r"(.+)__\d+\Z")
BUILTIN_ROOTS = frozenset({"workflow", "CPEWF_TASK_ID"})


def iter_expressions(text: str) -> Iterator[str]:
    """The inside of every unescaped `${...}` in `text`, outermost only."""
    pos = text.find("${")
    while pos != -1:
        if pos > 0 and text[pos - 1] == "$":
            # `$${` is Conductor's escape for a literal `${`.
            pos = text.find("${", pos + 2)
            continue
        depth = 0
        end = -1
        for i in range(pos + 1, len(text)):
            ch = text[i]
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    end = i
                    break
        if end == -1:
            return
        yield text[pos + 2 : end]
        pos = text.find("${", end + 1)


def iter_strings(value: Any, path: str) -> Iterator[tuple[str, str | None]]:
    """(path, string) for every string inside `value`, keys excluded.

    A container nested deeper than MAX_VALUE_DEPTH yields (path, None) and is
    not entered: the caller reports it, so a valid definition is shallow.
    """
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        node, where, depth = stack.pop()
        if isinstance(node, str):
            yield where, node
        elif depth >= MAX_VALUE_DEPTH:
            if isinstance(node, dict | list):
                yield where, None
        elif isinstance(node, dict):
            for key in reversed(list(node)):
                stack.append((node[key], child(where, str(key)), depth + 1))
        elif isinstance(node, list):
            for i in range(len(node) - 1, -1, -1):
                stack.append((node[i], child(where, i), depth + 1))


def known_root(root: str, refs: Collection[str]) -> bool:
    if root in BUILTIN_ROOTS or root in refs or root.startswith("$"):
        return True
    if _ENV_NAME.match(root):
        return True
    m = _ITERATION.match(root)
    return m is not None and m.group(1) in refs


def check_references(value: Any, path: str, refs: Collection[str]) -> list[Fault]:
    """Faults for every `${root...}` in `value` whose root is unknown."""
    faults: list[Fault] = []
    for where, text in iter_strings(value, path):
        if text is None:
            faults.append(Fault(where, f"value nested deeper than {MAX_VALUE_DEPTH} levels"))
            continue
        if "${" not in text:
            continue
        for expr in iter_expressions(text):
            m = _ROOT.match(expr)
            if m is None or "${" in m.group(1):
                continue
            root = m.group(1)
            if known_root(root, refs):
                continue
            hint = suggest(root, [*sorted(refs), "workflow"])
            faults.append(
                Fault(where, f'"${{{expr}}}" refers to unknown task reference "{root}"{hint}')
            )
    return faults
