"""Searching executions: a filter spec turned into parameterized SQL, plus a bounded free-text scan.

Theory of operation
-------------------
`ExecutionQuery` is what a search asks for, already parsed and checked (the
HTTP API parses Conductor's query language into it, see
``edged.api.search_query``): a conjunction of `Condition` s on the indexed
columns of ``executions``, sort keys, a page (``start``, ``size``) and
free-text terms.  `search_executions` runs on a read connection (a worker
thread, through `ReadPool.run`), never on the Trio loop.

Column names come only from the `COLUMNS` table and operators from
`OPERATORS`; every value is a bound parameter, so no query text reaches SQL.

Without free text, ``totalHits`` is ``SELECT COUNT(*)`` over the same WHERE
clause and the page is ``LIMIT size OFFSET start`` in SQL.

Free text is bounded in cost.  Each term (whitespace separated; all must
match, case-insensitively) is looked for in the workflow id, correlation id,
workflow name, reason for incompletion and the JSON text of the input and
output.  Rows that pass the SQL filter are read in sort order, at most
`FREE_TEXT_SCAN_ROWS` of them; a row whose stored document does not contain
the lower-cased term bytes (msgpack keeps strings as UTF-8, so this is a cheap
prefilter with no decoding) is skipped unless the term is in its id columns;
only the rest are decoded and checked exactly, and a row whose id columns
hold every term is not decoded at all.  The scan also stops once
`FREE_TEXT_DECODE_BYTES` of documents were decoded.  ``totalHits`` then
counts the matches among the rows scanned, and ``truncated`` says the scan
stopped at a cap, so a client knows older executions were not examined.

Search by tasks (``task_conditions`` / ``task_text``, Conductor's
``/search-by-tasks``) adds ``workflow_id IN (SELECT workflow_id FROM tasks
WHERE ...)``: one task must satisfy every task condition and hold every term.
``taskId`` and ``status`` are columns of ``tasks``; the other task fields live
only in the task document, so SQL first keeps the documents holding the value's
UTF-8 bytes (``instr``: cheap, no false negatives; msgpack stores strings as
UTF-8) and a Python function registered on the read connection for that query
(``edged_task_match``) decodes only those and compares exactly.  With
``per_task`` (``/api/tasks/search``) the page is of tasks joined to their
executions instead, sorted by the executions' keys and then ``seq``.  Neither
is capped like the free-text scan: every task row is looked at by SQL, but
only rows holding the searched bytes are decoded.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Final, Literal

import msgpack

from edged.journal.codec import decode
from edged.journal.reads import with_shared_values
from edged.journal.rows import ExecutionRow, TaskRow

__all__ = [
    "COLUMNS",
    "FREE_TEXT_DECODE_BYTES",
    "FREE_TEXT_SCAN_ROWS",
    "TASK_FIELDS",
    "Condition",
    "ExecutionQuery",
    "SearchPage",
    "SortKey",
    "search_executions",
]

# Conductor's field name -> (column, kind).  Only these reach SQL.
COLUMNS: Final[dict[str, tuple[str, Literal["text", "int"]]]] = {
    "workflowType": ("name", "text"),
    "workflowId": ("workflow_id", "text"),
    "correlationId": ("correlation_id", "text"),
    "status": ("status", "text"),
    "version": ("version", "int"),
    "startTime": ("created_ms", "int"),
    "updateTime": ("updated_ms", "int"),
    "endTime": ("ended_ms", "int"),
}
OPERATORS: Final = frozenset({"=", "!=", ">", "<", ">=", "<=", "IN"})
# Search by tasks: Conductor's task field name -> (column of ``tasks`` or None,
# key of the task document).  All are text and take =, != and IN.  ``taskType``
# is Conductor's: a SIMPLE task's is its definition name, both forks are FORK.
TASK_FIELDS: Final[dict[str, tuple[str | None, str]]] = {
    "taskId": ("task_id", "taskId"),
    "status": ("status", "status"),  # the task's status
    "taskDefName": (None, "defName"),
    "taskType": (None, "type"),
    "referenceTaskName": (None, "ref"),
    "workerId": (None, "workerId"),
}
# Task free text looks at these document keys (and the Conductor task type).
_TASK_TEXT_KEYS: Final = ("defName", "ref", "type", "taskId", "reason")
_FORKS: Final = frozenset({"FORK_JOIN", "FORK_JOIN_DYNAMIC"})
FREE_TEXT_SCAN_ROWS: Final = 20_000
# The JSON text of input + output checked per row is cut here.
FREE_TEXT_MAX_CHARS: Final = 256 * 1024
# Decoding is the expensive part of a scan: once the documents decoded in one
# search (rows that passed the byte prefilter) reach this size, the scan stops
# (``truncated``), so big payloads cannot make one search take seconds.
FREE_TEXT_DECODE_BYTES: Final = 32 * 1024 * 1024

_CHUNK = 256  # rows read per statement during a free-text scan
_COLUMNS_SQL = (
    "workflow_id, name, version, status, parent_id, correlation_id, idempotency_key,"
    " created_ms, updated_ms, ended_ms, doc"
)


@dataclass(frozen=True, slots=True)
class Condition:
    field: str  # a key of COLUMNS
    op: str  # one of OPERATORS
    values: tuple[str | int, ...]  # one value, or several for IN


@dataclass(frozen=True, slots=True)
class SortKey:
    field: str  # a key of COLUMNS
    descending: bool


@dataclass(frozen=True, slots=True)
class ExecutionQuery:
    conditions: tuple[Condition, ...] = ()
    sort: tuple[SortKey, ...] = ()
    start: int = 0
    size: int = 100
    free_text: tuple[str, ...] = ()  # terms, all must match; () matches everything
    # Search by tasks: an execution matches when one of its tasks satisfies every
    # task condition (fields of TASK_FIELDS) and holds every task term.
    task_conditions: tuple[Condition, ...] = ()
    task_text: tuple[str, ...] = ()
    # One result per matching task (``/api/tasks/search``): the page holds the
    # tasks and, row for row, their executions.
    per_task: bool = False

    @property
    def by_tasks(self) -> bool:
        return bool(self.task_conditions or self.task_text)


@dataclass(slots=True)
class SearchPage:
    total_hits: int
    rows: list[ExecutionRow] = field(default_factory=list)
    truncated: bool = False  # the free-text scan stopped at FREE_TEXT_SCAN_ROWS
    tasks: list[TaskRow] = field(default_factory=list)  # per_task: the task of rows[i]


def _where(conditions: tuple[Condition, ...], prefix: str = "") -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    for cond in conditions:
        column, _kind = COLUMNS[cond.field]
        column = prefix + column
        if cond.op not in OPERATORS:
            raise ValueError(f"unknown operator {cond.op!r}")
        if cond.op == "IN":
            clauses.append(f"{column} IN ({','.join('?' * len(cond.values))})")
        elif cond.op == "!=":
            # Conductor's != also matches documents without the field.
            clauses.append(f"({column} IS NULL OR {column} != ?)")
        else:
            clauses.append(f"{column} {cond.op} ?")
        params.extend(cond.values)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def _task_clause(
    conn: sqlite3.Connection, conditions: tuple[Condition, ...], terms: tuple[str, ...]
) -> tuple[str, list[Any]]:
    """``workflow_id IN (tasks matching every condition and term)`` and its parameters."""
    where, params = _task_where(conn, conditions, terms)
    return f"workflow_id IN (SELECT workflow_id FROM tasks WHERE {where})", params


def _task_where(
    conn: sqlite3.Connection,
    conditions: tuple[Condition, ...],
    terms: tuple[str, ...],
    prefix: str = "",
) -> tuple[str, list[Any]]:
    """The SQL condition on ``tasks`` (columns named with `prefix`) for every
    condition and term, and its parameters.

    Column fields are SQL conditions.  Document fields and free-text terms are
    first narrowed in SQL by a byte search of the task document (msgpack keeps
    strings as UTF-8 bytes; cheap, never a false negative), then checked
    exactly by ``edged_task_match`` (a Python function registered on this
    connection for this query), which decodes only the rows that passed.
    """
    clauses: list[str] = []
    params: list[Any] = []
    exact: list[Condition] = []
    for cond in conditions:
        column, _key = TASK_FIELDS[cond.field]
        column = None if column is None else prefix + column
        if cond.op not in ("=", "!=", "IN"):
            raise ValueError(f"task fields take =, != or IN, not {cond.op!r}")
        if column is not None:
            if cond.op == "!=":
                clauses.append(f"{column} != ?")
            else:
                clauses.append(f"{column} IN ({','.join('?' * len(cond.values))})")
            params.extend(cond.values)
            continue
        exact.append(cond)
        if cond.op != "!=":
            either = " OR ".join(f"instr({prefix}doc, ?) > 0" for _ in cond.values)
            clauses.append(f"({either})")
            params.extend(_utf8(str(v)) for v in cond.values)
    lowered = tuple(t.lower() for t in terms)
    for term in lowered:
        if term.isascii():  # SQLite's lower() folds ASCII only
            clauses.append(f"instr(lower({prefix}doc), ?) > 0")
            params.append(term)
    if exact or lowered:
        conn.create_function(
            "edged_task_match", 1, _task_matcher(tuple(exact), lowered), deterministic=True
        )
        clauses.append(f"edged_task_match({prefix}doc)")
    return (" AND ".join(clauses) if clauses else "1"), params


def _utf8(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def _opaque(code: int, data: bytes) -> None:
    """Shared references (definition nodes, TaskDefs) are not searched: no need to load them."""
    del code, data


def _task_matcher(
    conditions: tuple[Condition, ...], terms: tuple[str, ...]
) -> Callable[[bytes], int]:
    def match(blob: bytes) -> int:
        # SQLite turns an exception here into a failed query: a row that does
        # not decode simply does not match.
        try:
            doc = msgpack.unpackb(
                blob,
                ext_hook=_opaque,
                raw=False,
                unicode_errors="surrogatepass",
                strict_map_key=False,
            )
        except Exception:  # any row that does not decode is a non-match
            return 0
        if not isinstance(doc, dict):
            return 0
        for cond in conditions:
            value = _task_value(doc, cond.field)
            if cond.op == "!=":
                if value == cond.values[0]:
                    return 0
            elif value not in cond.values:
                return 0
        if terms:
            parts = [str(doc.get(key) or "") for key in _TASK_TEXT_KEYS]
            parts.append(str(_task_value(doc, "taskType") or ""))
            text = "\n".join(parts).lower()
            for term in terms:
                if term not in text:
                    return 0
        return 1

    return match


def _task_value(doc: dict[Any, Any], field: str) -> Any:
    if field == "taskType":
        kind = doc.get("type")
        if kind == "SIMPLE":
            return doc.get("defName")
        return "FORK" if kind in _FORKS else kind
    return doc.get(TASK_FIELDS[field][1])


def _order(sort: tuple[SortKey, ...], prefix: str = "") -> str:
    keys = sort or (SortKey("startTime", True),)
    parts = []
    for key in keys:
        column, _kind = COLUMNS[key.field]
        parts.append(f"{prefix}{column} {'DESC' if key.descending else 'ASC'}")
    # A stable tie-breaker so pages never overlap or skip rows.
    last_desc = keys[-1].descending
    parts.append(f"{prefix}workflow_id {'DESC' if last_desc else 'ASC'}")
    return " ORDER BY " + ", ".join(parts)


def _row(conn: sqlite3.Connection, row: tuple[Any, ...], doc: Any = None) -> ExecutionRow:
    wf, name, version, status, parent, correlation, key, created, updated, ended, blob = row
    if doc is None:
        doc = with_shared_values(conn, lambda: decode(blob))
    return ExecutionRow(
        wf,
        name,
        version,
        status,
        parent,
        correlation,
        key,
        created,
        updated,
        ended,
        doc,
    )


def search_executions(conn: sqlite3.Connection, query: ExecutionQuery) -> SearchPage:
    if query.per_task:
        return _search_tasks(conn, query)
    where, params = _where(query.conditions)
    if query.by_tasks:
        clause, more = _task_clause(conn, query.task_conditions, query.task_text)
        where = f"{where} AND {clause}" if where else f" WHERE {clause}"
        params += more
    order = _order(query.sort)
    if not query.free_text:
        conn.execute("BEGIN")  # the count and the page see one snapshot
        try:
            (total,) = conn.execute(f"SELECT COUNT(*) FROM executions{where}", params).fetchone()
            # Sort and page over the narrow index columns only, then fetch the
            # page's documents: sorting whole rows would drag every doc blob
            # through the sorter (~3x slower at 100,000 executions).
            rows = conn.execute(
                f"SELECT {_COLUMNS_SQL} FROM executions WHERE rowid IN"
                f" (SELECT rowid FROM executions{where}{order} LIMIT ? OFFSET ?){order}",
                [*params, query.size, query.start],
            ).fetchall()
        finally:
            conn.execute("COMMIT")
        return SearchPage(int(total), [_row(conn, r) for r in rows])
    return _free_text_scan(conn, query, where, params, order)


def _search_tasks(conn: sqlite3.Connection, query: ExecutionQuery) -> SearchPage:
    """Tasks matching the task conditions and terms whose executions match the
    execution conditions, sorted by their executions' keys, then by ``seq``."""
    where, params = _where(query.conditions, "e.")
    task_where, more = _task_where(conn, query.task_conditions, query.task_text, "t.")
    where = f"{where} AND {task_where}" if where else f" WHERE {task_where}"
    params += more
    order = _order(query.sort, "e.") + ", t.seq ASC"
    joined = "tasks t JOIN executions e ON e.workflow_id = t.workflow_id"
    columns = ", ".join(f"e.{c.strip()}" for c in _COLUMNS_SQL.split(","))
    conn.execute("BEGIN")  # the count and the page see one snapshot
    try:
        (total,) = conn.execute(f"SELECT COUNT(*) FROM {joined}{where}", params).fetchone()
        rows = conn.execute(
            f"SELECT t.task_id, t.seq, t.status, t.doc, {columns} FROM {joined}"
            f" WHERE t.rowid IN (SELECT t.rowid FROM {joined}{where}{order} LIMIT ? OFFSET ?)"
            f"{order}",
            [*params, query.size, query.start],
        ).fetchall()
    finally:
        conn.execute("COMMIT")
    page = SearchPage(int(total))
    for task_id, seq, status, blob, *execution in rows:
        row = _row(conn, tuple(execution))
        doc = with_shared_values(conn, partial(decode, blob))
        page.rows.append(row)
        page.tasks.append(TaskRow(task_id, row.workflow_id, seq, status, doc))
    return page


def _free_text_scan(
    conn: sqlite3.Connection, query: ExecutionQuery, where: str, params: list[Any], order: str
) -> SearchPage:
    terms = [t.lower() for t in query.free_text]
    # bytes.lower() folds ASCII only: a term with other letters skips the prefilter.
    needles = [t.encode("utf-8", "surrogatepass") if t.isascii() else None for t in terms]
    page = SearchPage(0)
    end = query.start + query.size
    budget = FREE_TEXT_DECODE_BYTES
    conn.execute("BEGIN")  # the keys and the rows they name: one snapshot
    try:
        # Sort the narrow keys only, then read rows in chunks by rowid: sorting
        # whole rows would push every document blob through the sorter.
        keys = conn.execute(
            f"SELECT rowid FROM executions{where}{order} LIMIT ?",
            [*params, FREE_TEXT_SCAN_ROWS + 1],
        ).fetchall()
        if len(keys) > FREE_TEXT_SCAN_ROWS:
            page.truncated = True
            del keys[FREE_TEXT_SCAN_ROWS:]
        for chunk in range(0, len(keys), _CHUNK):
            rowids = [k[0] for k in keys[chunk : chunk + _CHUNK]]
            marks = ",".join("?" * len(rowids))
            by_rowid = {
                r[0]: r[1:]
                for r in conn.execute(
                    f"SELECT rowid, {_COLUMNS_SQL} FROM executions WHERE rowid IN ({marks})",
                    rowids,
                )
            }
            for rowid in rowids:
                row = by_rowid[rowid]
                found, decoded = _match(conn, row, terms, needles)
                budget -= decoded
                if found is not None:
                    if query.start <= page.total_hits < end:
                        page.rows.append(_row(conn, row, None if found is _IDS_ONLY else found))
                    page.total_hits += 1
                if budget < 0:
                    page.truncated = True
                    return page
    finally:
        conn.execute("COMMIT")
    return page


_IDS_ONLY = object()  # every term matched the id columns: no need to decode the document


def _match(
    conn: sqlite3.Connection, row: tuple[Any, ...], terms: list[str], needles: list[bytes | None]
) -> tuple[Any, int]:
    """(None, or the decoded document, or _IDS_ONLY; bytes decoded) for one row."""
    workflow_id, name, correlation, blob = row[0], row[1], row[5], row[10]
    ids = f"{workflow_id}\n{correlation or ''}\n{name}".lower()
    lowered = None
    pending = []
    for term, needle in zip(terms, needles, strict=True):  # plain loops: this runs per row
        if term in ids:
            continue
        if needle is not None:
            if lowered is None:
                lowered = bytes(blob).lower()
            if needle not in lowered:
                return None, 0  # cheap: no decoding for rows that cannot match
        pending.append(term)
    if not pending:
        return _IDS_ONLY, 0
    doc = with_shared_values(conn, lambda: decode(blob))
    text = _document_text(doc)
    for term in pending:
        if term not in text:
            return None, len(blob)
    return doc, len(blob)


def _document_text(doc: Any) -> str:
    if not isinstance(doc, dict):
        return ""
    parts = [str(doc.get("reason") or "")]
    for key in ("input", "output"):
        try:
            parts.append(json.dumps(doc.get(key), ensure_ascii=False, default=str))
        except (ValueError, TypeError, RecursionError):  # absurdly deep input: not searched
            parts.append("")
    return "\n".join(parts)[:FREE_TEXT_MAX_CHARS].lower()
