"""Conductor's search parameters (``query``, ``freeText``, ``sort``, ``start``, ``size``) parsed.

Theory of operation.  Conductor hands ``query`` to its index (Elasticsearch,
or SQL in the Postgres/MySQL indexers) in a small language of its own; edged
accepts the subset tools use, with the same spelling::

    query     := condition (AND condition)*
    condition := FIELD op VALUE | FIELD IN '(' VALUE (',' VALUE)* ')' | '(' query ')'
    op        := = | != | > | < | >= | <=
    VALUE     := bare word | "double quoted" | 'single quoted'

``AND`` and ``IN`` are case-insensitive; field names are Conductor's
(``workflowType``, ``workflowId``, ``correlationId``, ``status``,
``version``, ``startTime``, ``updateTime``, ``endTime``).  Times are epoch
milliseconds or ISO 8601 (a date without a zone is UTC).  ``OR`` is not
supported and says so.  The search by tasks (``by_tasks``) also knows the task
fields of `TASK_FIELDS` (text: =, != and IN), and there ``status`` is the
task's (Conductor's task statuses); those conditions and the free text go to
``task_conditions`` / ``task_text``.

A fault is a 400 whose ``validationErrors`` entry has path ``query`` and a
message starting ``at position N`` (0-based character offset into the
query) that says what was expected and what was found.  The parser is
pure; it yields an `ExecutionQuery`, which the journal turns into
parameterized SQL (`edged.journal.search`).

Bounds: a query of at most 4,096 characters and 32 conditions, IN lists of
at most 256 values, ``size`` 0..1,000, ``start`` 0..1,000,000, at most 8
sort keys and 16 free-text terms of at most 256 characters each.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final, Literal

from edged.api.shapes import InvalidRequest
from edged.journal.search import COLUMNS, TASK_FIELDS, Condition, ExecutionQuery, SortKey

__all__ = ["parse_free_text", "parse_query", "parse_sort", "search_request"]

MAX_QUERY_CHARS: Final = 4096
MAX_CONDITIONS: Final = 32
MAX_IN_VALUES: Final = 256
MAX_SIZE: Final = 1000
MAX_START: Final = 1_000_000
MAX_SORT_KEYS: Final = 8
MAX_TERMS: Final = 16
MAX_TERM_CHARS: Final = 256

_STATUSES: Final = frozenset(
    {"RUNNING", "COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED", "PAUSED"}
)
_TASK_STATUSES: Final = frozenset(
    {
        "SCHEDULED",
        "IN_PROGRESS",
        "CANCELED",
        "FAILED",
        "FAILED_WITH_TERMINAL_ERROR",
        "COMPLETED",
        "COMPLETED_WITH_ERRORS",
        "TIMED_OUT",
        "SKIPPED",
    }
)
_Kind = Literal["text", "int"]
# Field name -> kind, for /search and for the search by tasks (where ``status``
# is the task's and the task fields join the execution's).
_EXECUTION_FIELDS: Final[dict[str, _Kind]] = {name: kind for name, (_c, kind) in COLUMNS.items()}
_TASK_SEARCH_FIELDS: Final[dict[str, _Kind]] = {
    **{name: kind for name, kind in _EXECUTION_FIELDS.items() if name != "status"},
    **dict.fromkeys(TASK_FIELDS, "text"),
}
_INT64: Final = (-(2**63), 2**63 - 1)
_TOKEN = re.compile(
    r"""\s*(?:
        (?P<op>!=|>=|<=|=|>|<)
      | (?P<punct>[(),])
      | "(?P<dq>(?:[^"\\]|\\.)*)"
      | '(?P<sq>(?:[^'\\]|\\.)*)'
      | (?P<word>[^\s=!<>(),"']+)
    )""",
    re.VERBOSE,
)
_UNTERMINATED = re.compile(r"""\s*["']""")
_ESCAPE = re.compile(r"\\(.)")

_Token = tuple[str, str, int]  # (kind, text, position); kind: op, punct, str, word, end


def _fault(position: int, message: str) -> InvalidRequest:
    return InvalidRequest([("query", f"at position {position}: {message}")])


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(text):
        if text[pos:].isspace():
            break
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            start = len(text) - len(text[pos:].lstrip())
            if _UNTERMINATED.match(text, pos):
                raise _fault(start, "unterminated quoted value")
            raise _fault(start, f"unexpected character {text[start]!r}")
        kind = match.lastgroup or "word"
        start = match.start(kind)
        if kind in ("dq", "sq"):
            out.append(("str", _ESCAPE.sub(r"\1", match.group(kind)), start - 1))
        else:
            out.append((kind, match.group(kind), start))
        pos = match.end()
    out.append(("end", "", len(text)))
    return out


class _Parser:
    def __init__(self, text: str, *, by_tasks: bool = False) -> None:
        self.tokens = _tokens(text)
        self.i = 0
        self.conditions: list[Condition] = []
        self.fields = _TASK_SEARCH_FIELDS if by_tasks else _EXECUTION_FIELDS
        self.statuses = (_TASK_STATUSES, "task") if by_tasks else (_STATUSES, "workflow")

    def peek(self) -> _Token:
        return self.tokens[self.i]

    def take(self) -> _Token:
        token = self.tokens[self.i]
        if token[0] != "end":
            self.i += 1
        return token

    def expect_punct(self, char: str) -> None:
        kind, text, pos = self.take()
        if kind != "punct" or text != char:
            raise _fault(pos, f"expected {char!r}, found {_describe(kind, text)}")

    def parse(self) -> tuple[Condition, ...]:
        self.conjunction(depth=0)
        kind, text, pos = self.peek()
        if kind != "end":
            raise _fault(
                pos, f"expected AND or the end of the query, found {_describe(kind, text)}"
            )
        return tuple(self.conditions)

    def conjunction(self, depth: int) -> None:
        self.condition(depth)
        while True:
            kind, text, pos = self.peek()
            if kind == "word" and text.upper() == "AND":
                self.take()
                self.condition(depth)
            elif kind == "word" and text.upper() == "OR":
                raise _fault(pos, "OR is not supported; run one search per alternative")
            else:
                return

    def condition(self, depth: int) -> None:
        kind, text, pos = self.take()
        if kind == "punct" and text == "(":
            if depth >= 8:
                raise _fault(pos, "parentheses nested too deeply")
            self.conjunction(depth + 1)
            self.expect_punct(")")
            return
        if kind != "word":
            raise _fault(pos, f"expected a field name, found {_describe(kind, text)}")
        if text not in self.fields:
            known = ", ".join(self.fields)
            raise _fault(pos, f"unknown field {text!r}; known fields: {known}")
        if len(self.conditions) >= MAX_CONDITIONS:
            raise _fault(pos, f"more than {MAX_CONDITIONS} conditions")
        field = text
        op_kind, op_text, op_pos = self.take()
        if op_kind == "word" and op_text.upper() == "IN":
            self.expect_punct("(")
            values = [self.value(field)]
            while self.peek()[:2] == ("punct", ","):
                self.take()
                if len(values) >= MAX_IN_VALUES:
                    raise _fault(self.peek()[2], f"more than {MAX_IN_VALUES} values in IN")
                values.append(self.value(field))
            self.expect_punct(")")
            self.conditions.append(Condition(field, "IN", tuple(values)))
            return
        if op_kind != "op":
            raise _fault(
                op_pos, f"expected an operator after {field}, found {_describe(op_kind, op_text)}"
            )
        if self.fields[field] == "text" and op_text not in ("=", "!="):
            raise _fault(op_pos, f"{field} supports =, != and IN, not {op_text}")
        self.conditions.append(Condition(field, op_text, (self.value(field),)))

    def value(self, field: str) -> str | int:
        kind, text, pos = self.take()
        if kind not in ("word", "str"):
            raise _fault(pos, f"expected a value for {field}, found {_describe(kind, text)}")
        if self.fields[field] == "int":
            return _int_value(field, text, pos)
        statuses, whose = self.statuses
        if field == "status" and text not in statuses:
            raise _fault(pos, f"{text!r} is not a {whose} status ({', '.join(sorted(statuses))})")
        return text


def _describe(kind: str, text: str) -> str:
    return "the end of the query" if kind == "end" else repr(text)


def _int_value(field: str, text: str, pos: int) -> int:
    digits = text[1:] if text[:1] == "-" else text
    if digits.isascii() and digits.isdecimal():
        number = int(text)
    else:
        if field == "version":
            raise _fault(pos, f"version must be an integer, not {text!r}")
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise _fault(
                pos, f"{field} must be epoch milliseconds or ISO 8601, not {text!r}"
            ) from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        number = int(moment.timestamp() * 1000)
    if not _INT64[0] <= number <= _INT64[1]:
        raise _fault(pos, f"{field} value {text} is out of range")
    return number


def parse_query(text: str | None, *, by_tasks: bool = False) -> tuple[Condition, ...]:
    """Conditions of ``query``; None, empty or ``*`` means no condition.  With
    `by_tasks`, the task fields (`TASK_FIELDS`) are known too and ``status`` is
    the task's."""
    if text is None or text.strip() in ("", "*"):
        return ()
    if len(text) > MAX_QUERY_CHARS:
        raise _fault(MAX_QUERY_CHARS, f"query longer than {MAX_QUERY_CHARS} characters")
    return _Parser(text, by_tasks=by_tasks).parse()


def parse_sort(values: list[str]) -> tuple[SortKey, ...]:
    """``field[:ASC|DESC]`` items, from repeated ``sort`` params or one joined by ``;`` or ``,``."""
    keys: list[SortKey] = []
    for value in values:
        for item in re.split(r"[;,|]", value):
            item = item.strip()
            if not item:
                continue
            name, _, order = item.partition(":")
            name, order = name.strip(), order.strip().upper() or "ASC"
            if name not in COLUMNS:
                known = ", ".join(COLUMNS)
                raise InvalidRequest([("sort", f"cannot sort by {name!r}; known fields: {known}")])
            if order not in ("ASC", "DESC"):
                raise InvalidRequest([("sort", f"order must be ASC or DESC, not {order!r}")])
            keys.append(SortKey(name, order == "DESC"))
    if len(keys) > MAX_SORT_KEYS:
        raise InvalidRequest([("sort", f"more than {MAX_SORT_KEYS} sort keys")])
    return tuple(keys)


def parse_free_text(text: str | None) -> tuple[str, ...]:
    """Terms of ``freeText``; ``*`` (Conductor's default) and wildcards around terms match all."""
    if text is None:
        return ()
    terms = [t.strip("*") for t in text.split()]
    terms = [t for t in terms if t]
    if len(terms) > MAX_TERMS:
        raise InvalidRequest([("freeText", f"more than {MAX_TERMS} terms")])
    for term in terms:
        if len(term) > MAX_TERM_CHARS:
            raise InvalidRequest([("freeText", f"a term longer than {MAX_TERM_CHARS} characters")])
    return tuple(terms)


def search_request(
    *,
    query: str | None,
    free_text: str | None,
    sort: list[str],
    start: int,
    size: int,
    by_tasks: bool = False,
    per_task: bool = False,
) -> ExecutionQuery:
    """All search parameters checked together into one `ExecutionQuery`.

    With `by_tasks` (``/search-by-tasks``), conditions on task fields and the
    free text apply to the executions' tasks (one task must match them all);
    with `per_task` too (``/api/tasks/search``) the results are those tasks."""
    faults: list[tuple[str, str]] = []
    if not 0 <= start <= MAX_START:
        faults.append(("start", f"must be between 0 and {MAX_START}, not {start}"))
    if not 0 <= size <= MAX_SIZE:
        faults.append(("size", f"must be between 0 and {MAX_SIZE}, not {size}"))
    if faults:
        raise InvalidRequest(faults)
    conditions = parse_query(query, by_tasks=by_tasks or per_task)
    terms = parse_free_text(free_text)
    if not (by_tasks or per_task):
        return ExecutionQuery(conditions, parse_sort(sort), start, size, terms)
    return ExecutionQuery(
        conditions=tuple(c for c in conditions if c.field not in TASK_FIELDS),
        sort=parse_sort(sort),
        start=start,
        size=size,
        task_conditions=tuple(c for c in conditions if c.field in TASK_FIELDS),
        task_text=terms,
        per_task=per_task,
    )
