"""Turning batches into SQL: encoding on the caller's side, statements on the writer's.

Theory of operation
-------------------
`prepare` runs on the Trio loop inside `Journal.commit`: it encodes every
payload and flattens rows to tuples, so a non-JSON payload fails the caller at
once (nothing queued) and the writer thread only runs SQL.

`apply_segment` runs on the writer thread inside an open transaction.  A
segment is either one batch, applied table by table in the order `Batch`
documents, or a run of *upsert-only* batches (no deletes, clears or acks),
which group commit concatenates table by table: upserts of the same key still
land in batch order, appends keep their order, so the result equals applying
them one by one, in a handful of ``executemany`` calls instead of dozens.

History and outbox ids come from AUTOINCREMENT: the writer holds the only
write lock, so the rows of one ``executemany`` receive consecutive ids ending
at ``last_insert_rowid()``.

History length per execution is tracked in ``executions.history_count``; when
it passes `JournalSettings.max_history_per_execution` the oldest events are
deleted and ``history_dropped`` counts them.  History for a workflow id with
no execution row is kept uncapped.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from edged.journal.codec import encode
from edged.journal.rows import Batch

__all__ = [
    "PreparedBatch",
    "SegmentResult",
    "apply_segment",
    "delete_executions",
    "prepare",
    "select_prune_chunk",
    "split_segments",
]

Row = tuple[Any, ...]


@dataclass(slots=True)
class PreparedBatch:
    executions: list[Row] = field(default_factory=list)
    tasks: list[Row] = field(default_factory=list)
    deleted_tasks: list[Row] = field(default_factory=list)
    history: list[Row] = field(default_factory=list)
    timers_set: list[Row] = field(default_factory=list)
    timers_cleared: list[Row] = field(default_factory=list)
    outbox_added: list[Row] = field(default_factory=list)
    outbox_acked: list[Row] = field(default_factory=list)
    workflow_defs: list[Row] = field(default_factory=list)
    deleted_workflow_defs: list[Row] = field(default_factory=list)
    task_defs: list[Row] = field(default_factory=list)
    deleted_task_defs: list[Row] = field(default_factory=list)
    deleted_executions: list[Row] = field(default_factory=list)
    rows: int = 0

    @property
    def upsert_only(self) -> bool:
        return not (
            self.deleted_tasks
            or self.timers_cleared
            or self.outbox_acked
            or self.deleted_workflow_defs
            or self.deleted_task_defs
            or self.deleted_executions
        )


@dataclass(frozen=True, slots=True)
class SegmentResult:
    history_ids: list[list[int]]  # per batch of the segment
    outbox_ids: list[list[int]]
    history_dropped: int


def prepare(batch: Batch) -> PreparedBatch:
    """Encode `batch` (raises PayloadNotJSON before anything is queued)."""
    p = PreparedBatch(
        executions=[
            (
                e.workflow_id,
                e.name,
                e.version,
                e.status,
                e.parent_id,
                e.correlation_id,
                e.idempotency_key,
                e.created_ms,
                e.updated_ms,
                e.ended_ms,
                encode(e.doc),
            )
            for e in batch.executions
        ],
        tasks=[(t.task_id, t.workflow_id, t.seq, t.status, encode(t.doc)) for t in batch.tasks],
        deleted_tasks=[(task_id,) for task_id in batch.deleted_tasks],
        history=[(h.workflow_id, h.at_ms, h.kind, encode(h.body)) for h in batch.history],
        timers_set=[(t.key, t.workflow_id, t.fire_at_ms, encode(t.body)) for t in batch.timers_set],
        timers_cleared=[(key,) for key in batch.timers_cleared],
        outbox_added=[(o.kind, o.workflow_id, encode(o.body)) for o in batch.outbox_added],
        outbox_acked=[(outbox_id,) for outbox_id in batch.outbox_acked],
        workflow_defs=[(n, v, encode(doc)) for n, v, doc in batch.workflow_defs],
        deleted_workflow_defs=[(n, v) for n, v in batch.deleted_workflow_defs],
        task_defs=[(n, encode(doc)) for n, doc in batch.task_defs],
        deleted_task_defs=[(n,) for n in batch.deleted_task_defs],
        deleted_executions=[(wf,) for wf in batch.deleted_executions],
    )
    p.rows = sum(
        len(rows)
        for rows in (
            p.executions,
            p.tasks,
            p.deleted_tasks,
            p.history,
            p.timers_set,
            p.timers_cleared,
            p.outbox_added,
            p.outbox_acked,
            p.workflow_defs,
            p.deleted_workflow_defs,
            p.task_defs,
            p.deleted_task_defs,
            p.deleted_executions,
        )
    )
    return p


_UPSERT_EXECUTION = """
INSERT INTO executions (workflow_id, name, version, status, parent_id, correlation_id,
                        idempotency_key, created_ms, updated_ms, ended_ms, doc)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (workflow_id) DO UPDATE SET
    name = excluded.name, version = excluded.version, status = excluded.status,
    parent_id = excluded.parent_id, correlation_id = excluded.correlation_id,
    idempotency_key = excluded.idempotency_key, created_ms = excluded.created_ms,
    updated_ms = excluded.updated_ms, ended_ms = excluded.ended_ms, doc = excluded.doc
"""
_UPSERT_TASK = """
INSERT INTO tasks (task_id, workflow_id, seq, status, doc) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (task_id) DO UPDATE SET
    workflow_id = excluded.workflow_id, seq = excluded.seq, status = excluded.status,
    doc = excluded.doc
"""
_UPSERT_TIMER = """
INSERT INTO timers (key, workflow_id, fire_at_ms, body) VALUES (?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET
    workflow_id = excluded.workflow_id, fire_at_ms = excluded.fire_at_ms, body = excluded.body
"""
_UPSERT_WORKFLOW_DEF = """
INSERT INTO workflow_defs (name, version, doc) VALUES (?, ?, ?)
ON CONFLICT (name, version) DO UPDATE SET doc = excluded.doc
"""
_UPSERT_TASK_DEF = """
INSERT INTO task_defs (name, doc) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET doc = excluded.doc
"""


def _concat(segment: list[PreparedBatch], attr: str) -> list[Row]:
    if len(segment) == 1:
        rows: list[Row] = getattr(segment[0], attr)
        return rows
    return [row for batch in segment for row in getattr(batch, attr)]


def _insert_with_ids(conn: sqlite3.Connection, sql: str, rows: list[Row]) -> list[int]:
    if not rows:
        return []
    conn.executemany(sql, rows)
    last = int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])
    return list(range(last - len(rows) + 1, last + 1))


def _split_ids(ids: list[int], segment: list[PreparedBatch], attr: str) -> list[list[int]]:
    out: list[list[int]] = []
    start = 0
    for batch in segment:
        count = len(getattr(batch, attr))
        out.append(ids[start : start + count])
        start += count
    return out


def _cap_history(conn: sqlite3.Connection, history: list[Row], max_per_execution: int) -> int:
    counts = Counter(row[0] for row in history)
    conn.executemany(
        "UPDATE executions SET history_count = history_count + ? WHERE workflow_id = ?",
        [(n, wf) for wf, n in counts.items()],
    )
    ids = list(counts)
    over: list[tuple[str, int]] = []
    for start in range(0, len(ids), 500):  # stay far below SQLite's bound-parameter limit
        chunk = ids[start : start + 500]
        marks = ",".join("?" * len(chunk))
        over += conn.execute(
            f"SELECT workflow_id, history_count FROM executions"
            f" WHERE workflow_id IN ({marks}) AND history_count > ?",
            [*chunk, max_per_execution],
        ).fetchall()
    dropped = 0
    for workflow_id, count in over:
        excess = int(count) - max_per_execution
        conn.execute(
            "DELETE FROM history WHERE id IN"
            " (SELECT id FROM history WHERE workflow_id = ? ORDER BY id LIMIT ?)",
            (workflow_id, excess),
        )
        conn.execute(
            "UPDATE executions SET history_count = history_count - ?,"
            " history_dropped = history_dropped + ? WHERE workflow_id = ?",
            (excess, excess, workflow_id),
        )
        dropped += excess
    return dropped


def delete_executions(conn: sqlite3.Connection, workflow_ids: list[Row]) -> None:
    """Remove executions with their tasks, timers and history (outbox rows stay)."""
    if not workflow_ids:
        return
    conn.executemany("DELETE FROM tasks WHERE workflow_id = ?", workflow_ids)
    conn.executemany("DELETE FROM timers WHERE workflow_id = ?", workflow_ids)
    conn.executemany("DELETE FROM history WHERE workflow_id = ?", workflow_ids)
    conn.executemany("DELETE FROM executions WHERE workflow_id = ?", workflow_ids)


def apply_segment(
    conn: sqlite3.Connection, segment: list[PreparedBatch], max_history_per_execution: int
) -> SegmentResult:
    """Apply one batch, or a run of upsert-only batches, inside the caller's transaction."""
    assert len(segment) == 1 or all(b.upsert_only for b in segment)

    def many(sql: str, attr: str) -> None:
        rows = _concat(segment, attr)
        if rows:
            conn.executemany(sql, rows)

    many(_UPSERT_EXECUTION, "executions")
    many(_UPSERT_TASK, "tasks")
    many("DELETE FROM tasks WHERE task_id = ?", "deleted_tasks")
    history = _concat(segment, "history")
    history_ids = _insert_with_ids(
        conn, "INSERT INTO history (workflow_id, at_ms, kind, body) VALUES (?, ?, ?, ?)", history
    )
    dropped = _cap_history(conn, history, max_history_per_execution) if history else 0
    many(_UPSERT_TIMER, "timers_set")
    many("DELETE FROM timers WHERE key = ?", "timers_cleared")
    outbox_ids = _insert_with_ids(
        conn,
        "INSERT INTO outbox (kind, workflow_id, body) VALUES (?, ?, ?)",
        _concat(segment, "outbox_added"),
    )
    many("DELETE FROM outbox WHERE id = ?", "outbox_acked")
    many(_UPSERT_WORKFLOW_DEF, "workflow_defs")
    many("DELETE FROM workflow_defs WHERE name = ? AND version = ?", "deleted_workflow_defs")
    many(_UPSERT_TASK_DEF, "task_defs")
    many("DELETE FROM task_defs WHERE name = ?", "deleted_task_defs")
    delete_executions(conn, _concat(segment, "deleted_executions"))
    return SegmentResult(
        history_ids=_split_ids(history_ids, segment, "history"),
        outbox_ids=_split_ids(outbox_ids, segment, "outbox_added"),
        history_dropped=dropped,
    )


def split_segments(group: list[PreparedBatch]) -> list[list[PreparedBatch]]:
    """Cut a commit group into segments: runs of upsert-only batches, other batches alone."""
    segments: list[list[PreparedBatch]] = []
    for batch in group:
        if batch.upsert_only and segments and segments[-1][-1].upsert_only:
            segments[-1].append(batch)
        else:
            segments.append([batch])
    return segments


def select_prune_chunk(
    conn: sqlite3.Connection, *, cutoff_ms: int, max_count: int, chunk: int
) -> list[Row]:
    """Up to `chunk` finished executions due for removal: too old first, then beyond the count."""
    rows = conn.execute(
        "SELECT workflow_id FROM executions WHERE ended_ms IS NOT NULL AND ended_ms < ?"
        " ORDER BY ended_ms LIMIT ?",
        (cutoff_ms, chunk),
    ).fetchall()
    if rows:
        return [tuple(r) for r in rows]
    finished = int(
        conn.execute("SELECT COUNT(*) FROM executions WHERE ended_ms IS NOT NULL").fetchone()[0]
    )
    excess = finished - max_count
    if excess <= 0:
        return []
    rows = conn.execute(
        "SELECT workflow_id FROM executions WHERE ended_ms IS NOT NULL"
        " ORDER BY ended_ms, workflow_id LIMIT ?",
        (min(chunk, excess),),
    ).fetchall()
    return [tuple(r) for r in rows]
