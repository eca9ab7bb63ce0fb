"""Reads: a small pool of read-only connections used from Trio's worker threads.

Theory of operation
-------------------
WAL lets readers run beside the writer: each read sees the last committed
state when its (read) transaction starts and never blocks a commit.  A read
that needs several statements to agree (`load_unfinished`, `load_execution`)
opens an explicit read transaction so all of them see the same snapshot.

`ReadPool.run` takes a free connection (there are ``read_connections`` of
them, bounded by a `trio.CapacityLimiter` so no caller ever finds the pool
empty) and runs the query function in ``trio.to_thread.run_sync``.  A
cancelled read waits for its thread to finish before returning the
connection: reads are short, and a connection is never used by two threads.

The query functions below are plain synchronous code on a connection; they
decode payloads here, off the Trio loop.
"""

from __future__ import annotations

import gc
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import trio

from edged.errors import BadInput, JournalError
from edged.journal.apply import load_shared_values
from edged.journal.codec import MissingSharedValue, decode, decode_many
from edged.journal.rows import (
    UNFINISHED_STATUSES,
    ExecutionRow,
    HistoryEvent,
    JournalSettings,
    OutboxRow,
    TaskRow,
    TimerRow,
)
from edged.journal.schema import connect

__all__ = ["ReadPool"]

T = TypeVar("T")

_EXECUTION_COLUMNS = (
    "workflow_id, name, version, status, parent_id, correlation_id, idempotency_key,"
    " created_ms, updated_ms, ended_ms, doc"
)


class ReadPool:
    def __init__(self, path: Path, settings: JournalSettings) -> None:
        count = max(1, settings.read_connections)
        self._free = [connect(path, settings, read_only=True) for _ in range(count)]
        self._all = list(self._free)
        self._lock = threading.Lock()
        self._limiter = trio.CapacityLimiter(count)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            conn = self._free.pop()
        try:
            return fn(conn)
        except sqlite3.Error as exc:
            raise JournalError(f"journal read failed: {exc}") from exc
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            with self._lock:
                self._free.append(conn)

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await trio.to_thread.run_sync(self._call, fn, limiter=self._limiter)

    def close(self) -> None:
        for conn in self._all:
            conn.close()


def with_shared_values(conn: sqlite3.Connection, fn: Callable[[], T]) -> T:
    """`fn()`, loading the journal's shared values first if a document references one
    this process has not seen yet (a journal written by an earlier run)."""
    try:
        return fn()
    except MissingSharedValue:
        load_shared_values(conn)
    try:
        return fn()
    except MissingSharedValue as exc:
        raise JournalError(
            f"journal document references shared value {exc} that the journal does not hold"
        ) from exc


def _execution(conn: sqlite3.Connection, row: tuple[Any, ...]) -> ExecutionRow:
    wf, name, version, status, parent, correlation, key, created, updated, ended, blob = row
    doc = with_shared_values(conn, lambda: decode(blob))
    return ExecutionRow(
        wf, name, version, status, parent, correlation, key, created, updated, ended, doc
    )


def _tasks_of(conn: sqlite3.Connection, workflow_id: str) -> list[TaskRow]:
    rows = conn.execute(
        "SELECT task_id, workflow_id, seq, status, doc FROM tasks WHERE workflow_id = ? ORDER BY seq",
        (workflow_id,),
    )
    found = rows.fetchall()
    docs = with_shared_values(conn, lambda: decode_many([row[4] for row in found]))
    return [TaskRow(t, w, s, st, doc) for (t, w, s, st, _), doc in zip(found, docs, strict=True)]


def load_unfinished(conn: sqlite3.Connection) -> list[tuple[ExecutionRow, list[TaskRow]]]:
    marks = ",".join("?" * len(UNFINISHED_STATUSES))
    conn.execute("BEGIN")  # one snapshot for both statements
    executions = conn.execute(
        f"SELECT {_EXECUTION_COLUMNS} FROM executions WHERE status IN ({marks}) ORDER BY created_ms",
        UNFINISHED_STATUSES,
    ).fetchall()
    # No ORDER BY: sorting 100,000 rows in a temp b-tree costs more than
    # sorting each execution's handful of tasks below.
    tasks = conn.execute(
        "SELECT t.task_id, t.workflow_id, t.seq, t.status, t.doc FROM executions e"
        f" JOIN tasks t ON t.workflow_id = e.workflow_id WHERE e.status IN ({marks})",
        UNFINISHED_STATUSES,
    ).fetchall()
    conn.execute("COMMIT")
    # Building ~200,000 objects triggers repeated full GC passes over a heap that
    # holds no cycles worth finding yet: pausing the collector halves recovery time.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _assemble(conn, executions, tasks)
    finally:
        if gc_was_enabled:
            gc.enable()


def _assemble(
    conn: sqlite3.Connection, executions: list[tuple[Any, ...]], tasks: list[tuple[Any, ...]]
) -> list[tuple[ExecutionRow, list[TaskRow]]]:
    by_id: dict[str, list[TaskRow]] = {row[0]: [] for row in executions}
    docs = with_shared_values(conn, lambda: decode_many([row[4] for row in tasks]))
    for (task_id, workflow_id, seq, status, _), doc in zip(tasks, docs, strict=True):
        by_id[workflow_id].append(TaskRow(task_id, workflow_id, seq, status, doc))
    for task_rows in by_id.values():
        task_rows.sort(key=_by_seq)
    blobs = [row[10] for row in executions]
    execution_docs = with_shared_values(conn, lambda: decode_many(blobs))
    return [
        (ExecutionRow(w, n, v, st, p, c, k, cr, up, end, doc), by_id[w])
        for (w, n, v, st, p, c, k, cr, up, end, _), doc in zip(
            executions, execution_docs, strict=True
        )
    ]


def _by_seq(task: TaskRow) -> int:
    return task.seq


def load_execution(
    conn: sqlite3.Connection, workflow_id: str
) -> tuple[ExecutionRow, list[TaskRow]] | None:
    conn.execute("BEGIN")
    row = conn.execute(
        f"SELECT {_EXECUTION_COLUMNS} FROM executions WHERE workflow_id = ?", (workflow_id,)
    ).fetchone()
    result = None if row is None else (_execution(conn, row), _tasks_of(conn, workflow_id))
    conn.execute("COMMIT")
    return result


def load_timers(conn: sqlite3.Connection) -> list[TimerRow]:
    rows = conn.execute(
        "SELECT key, workflow_id, fire_at_ms, body FROM timers ORDER BY fire_at_ms, key"
    )
    return [TimerRow(k, w, f, decode(b)) for k, w, f, b in rows]


def load_outbox(conn: sqlite3.Connection) -> list[tuple[int, OutboxRow]]:
    rows = conn.execute("SELECT id, kind, workflow_id, body FROM outbox ORDER BY id")
    return [(i, OutboxRow(k, w, decode(b))) for i, k, w, b in rows]


def load_workflow_defs(conn: sqlite3.Connection) -> list[tuple[str, int, Any]]:
    rows = conn.execute("SELECT name, version, doc FROM workflow_defs ORDER BY name, version")
    return [(n, v, decode(d)) for n, v, d in rows]


def load_task_defs(conn: sqlite3.Connection) -> list[tuple[str, Any]]:
    rows = conn.execute("SELECT name, doc FROM task_defs ORDER BY name")
    return [(n, decode(d)) for n, d in rows]


def _check_page(limit: int, offset: int) -> None:
    if limit < 0 or offset < 0:
        raise BadInput(f"limit and offset must not be negative (got {limit}, {offset})")


def history(
    conn: sqlite3.Connection, workflow_id: str | None, after_id: int, limit: int
) -> list[tuple[int, HistoryEvent]]:
    _check_page(limit, 0)
    if workflow_id is None:
        rows = conn.execute(
            "SELECT id, workflow_id, at_ms, kind, body FROM history WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        )
    else:
        rows = conn.execute(
            "SELECT id, workflow_id, at_ms, kind, body FROM history"
            " WHERE workflow_id = ? AND id > ? ORDER BY id LIMIT ?",
            (workflow_id, after_id, limit),
        )
    return [(i, HistoryEvent(w, at, k, decode(b))) for i, w, at, k, b in rows]


def history_named(
    conn: sqlite3.Connection, workflow_id: str | None, name: str | None, after_id: int, limit: int
) -> list[tuple[int, str | None, HistoryEvent]]:
    """History rows after ``after_id`` with their execution's name (None if it is gone)."""
    _check_page(limit, 0)
    where: list[str] = ["h.id > ?"]
    params: list[Any] = [after_id]
    if workflow_id is not None:
        where.append("h.workflow_id = ?")
        params.append(workflow_id)
    if name is not None:
        where.append("e.name = ?")
        params.append(name)
    rows = conn.execute(
        "SELECT h.id, e.name, h.workflow_id, h.at_ms, h.kind, h.body FROM history h"
        " LEFT JOIN executions e ON e.workflow_id = h.workflow_id"
        f" WHERE {' AND '.join(where)} ORDER BY h.id LIMIT ?",
        [*params, limit],
    )
    return [(i, n, HistoryEvent(w, at, k, decode(b))) for i, n, w, at, k, b in rows]


def history_dropped(conn: sqlite3.Connection, workflow_id: str) -> int:
    row = conn.execute(
        "SELECT history_dropped FROM executions WHERE workflow_id = ?", (workflow_id,)
    ).fetchone()
    return 0 if row is None else int(row[0])


def find_executions(
    conn: sqlite3.Connection,
    *,
    name: str | None,
    status: str | None,
    correlation_id: str | None,
    idempotency_key: str | None,
    limit: int,
    offset: int,
    newest_first: bool,
) -> list[ExecutionRow]:
    _check_page(limit, offset)
    where: list[str] = []
    params: list[Any] = []
    for column, value in (
        ("name", name),
        ("status", status),
        ("correlation_id", correlation_id),
        ("idempotency_key", idempotency_key),
    ):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    order = "DESC" if newest_first else "ASC"
    rows = conn.execute(
        f"SELECT {_EXECUTION_COLUMNS} FROM executions{clause}"
        f" ORDER BY created_ms {order}, workflow_id {order} LIMIT ? OFFSET ?",
        [*params, limit, offset],
    )
    return [_execution(conn, row) for row in rows.fetchall()]
