"""Turning batches into SQL: encoding on the caller's side, statements on the writer's.

Theory of operation
-------------------
`prepare` runs on the Trio loop inside `Journal.commit`: it encodes every
payload and flattens rows to tuples, so a non-JSON payload fails the caller at
once (nothing queued) and the writer thread only runs SQL.

`apply_segment` runs on the writer thread inside an open transaction.  A
segment is either one batch, applied table by table in the order `Batch`
documents, or a run of *mergeable* batches (no deletes or clears; outbox acks
allowed), which group commit concatenates table by table: upserts of the same
key still land in batch order, appends keep their order, so the result equals
applying them one by one, in a handful of statements instead of dozens.  Acks
may join because an outbox id is only known once its row has committed and
AUTOINCREMENT never hands it out again: deleting a segment's acks after its
inserts removes exactly the rows that deleting them batch by batch would.

History and outbox ids come from AUTOINCREMENT: the writer holds the only
write lock, so the rows of one multi-row INSERT receive consecutive ids ending
at its ``lastrowid``.

Shared values (`SharedValues.encode_ref`) are written with ``INSERT OR
IGNORE`` by every batch referencing them; the writer passes the keys it has
already seen committed (`apply_segment`'s ``stored_shared``) so those are not
sent again.  Nothing but a pruning of ``meta`` could remove one, and nothing
prunes shared values.

Rows go in as multi-row ``INSERT ... VALUES (...), (...)`` statements in
chunks of at most 64 rows (see `_chunk_size`).  History length per execution
is tracked in ``executions.history_count``, carried on the execution upsert of
the same segment; one ``SELECT`` per segment (`_over_cap`) then finds the
executions past `JournalSettings.max_history_per_execution`, whose oldest
events are deleted and counted in ``history_dropped``.  History counts toward the cap
when its execution row is in the same batch or already written (the engine
always writes the snapshot with its events); history for a workflow id with
no execution row yet is kept but not counted.
"""

from __future__ import annotations

import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from edged.journal.codec import SharedValues, encode, encode_many, remember_shared
from edged.journal.rows import Batch

__all__ = [
    "PreparedBatch",
    "SegmentResult",
    "apply_segment",
    "delete_executions",
    "load_shared_values",
    "prepare",
    "select_prune_chunk",
    "shared_key",
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
    outbox_acked: list[int] = field(default_factory=list)
    workflow_defs: list[Row] = field(default_factory=list)
    deleted_workflow_defs: list[Row] = field(default_factory=list)
    task_defs: list[Row] = field(default_factory=list)
    deleted_task_defs: list[Row] = field(default_factory=list)
    deleted_executions: list[Row] = field(default_factory=list)
    shared_values: list[Row] = field(default_factory=list)  # (meta key, body) referenced here
    rows: int = 0
    mergeable: bool = True  # no deletes or clears (acks allowed): may merge with its neighbours


@dataclass(frozen=True, slots=True)
class SegmentResult:
    history_ids: list[list[int]]  # per batch of the segment
    outbox_ids: list[list[int]]
    history_dropped: int


# SQLite's largest integer: a timer computed past it (a WAIT of 10**15 days wired
# from input) is stored as "never" instead of failing the group commit.
_NEVER_MS = 2**63 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


def _null(value: None) -> None:
    return value


# The sqlite3 module binds int, float, str and bytearray directly and sends every other
# value (None too) through its adapter lookup, which raises and formats an AttributeError
# on a miss: ~5% of the writer thread for the ~3 NULL columns of each execution row
# (callgrind).  An adapter registered for None makes the lookup a hit.  Process-wide, and
# harmless: None still binds as NULL, on every connection.
sqlite3.register_adapter(type(None), _null)


_EXECUTION_SHARED = ("definition",)
_TASK_SHARED = ("wt", "taskdef")


def shared_key(digest: bytes) -> str:
    """The meta key of a shared value (see `SharedValues.encode_ref`)."""
    return f"shared:{digest.hex()}"


def load_shared_values(conn: sqlite3.Connection) -> None:
    """Make every shared value of this journal decodable (`codec.remember_shared`)."""
    for key, body in conn.execute("SELECT key, value FROM meta WHERE key LIKE 'shared:%'"):
        remember_shared(bytes.fromhex(key[len("shared:") :]), body)


def _text(value: str | None) -> str | None:
    """A column string SQLite can store: UTF-8 has no lone surrogates (JSON has).

    One reaching a column (a correlation id wired from workflow input into a
    START_WORKFLOW, say) would otherwise fail every group commit it joins, so
    each becomes U+FFFD in the column; the document keeps the original.
    """
    if value is None or value.isascii():
        return value  # the common case: one cheap check
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", value)
    return value


def prepare(batch: Batch, shared: SharedValues | None = None) -> PreparedBatch:
    """Encode `batch` (raises PayloadNotJSON before anything is queued).

    With `shared`, each execution doc's ``definition`` (and each task doc's
    ``wt`` and ``taskdef``) is packed once per object instead of on every
    snapshot (see `SharedValues`).
    """

    # Blobs go to SQLite as bytearray: the sqlite3 module binds a bytearray
    # directly but sends every `bytes` through its adapter lookup first, ~10%
    # of the writer thread's time (measured with callgrind on a replay).  (An identity
    # adapter for bytes was tried: it cost the writer ~1k instructions per blob, about
    # what the copy costs this thread.)
    referenced: dict[bytes, bytes] = {}
    if shared is None:
        execution_docs = encode_many([e.doc for e in batch.executions])
        task_docs = encode_many([t.doc for t in batch.tasks])
    else:
        # The pinned definition is stored once, in meta, and referenced (see
        # SharedValues.encode_ref); every batch that references it writes it again
        # with INSERT OR IGNORE, so no batch depends on an earlier one having committed.
        # A task's definition node and TaskDef are shared by the tasks of every execution
        # made from them. The owner is the execution, not the task: the retries of one
        # task, or a dynamic fork's generated nodes, stay inline in that execution's rows
        # and leave no meta row behind when it is pruned.
        encode_ref = shared.encode_ref
        execution_docs = [
            encode_ref(e.doc, _EXECUTION_SHARED, referenced, e.workflow_id)
            for e in batch.executions
        ]
        task_docs = [
            encode_ref(t.doc, _TASK_SHARED, referenced, t.workflow_id) for t in batch.tasks
        ]

    history, outbox = batch.history, batch.outbox_added
    p = PreparedBatch(
        executions=[
            (
                _text(e.workflow_id),
                _text(e.name),
                e.version,
                e.status,
                _text(e.parent_id),
                _text(e.correlation_id),
                _text(e.idempotency_key),
                e.created_ms,
                e.updated_ms,
                e.ended_ms,
                bytearray(doc),
            )
            for e, doc in zip(batch.executions, execution_docs, strict=True)
        ],
        tasks=[
            (t.task_id, t.workflow_id, t.seq, t.status, bytearray(doc))
            for t, doc in zip(batch.tasks, task_docs, strict=True)
        ],
        history=[
            (h.workflow_id, h.at_ms, h.kind, bytearray(body))
            for h, body in zip(history, encode_many([h.body for h in history]), strict=True)
        ],
        timers_set=[
            (t.key, t.workflow_id, min(t.fire_at_ms, _NEVER_MS), bytearray(encode(t.body)))
            for t in batch.timers_set
        ],
        outbox_added=[
            (o.kind, o.workflow_id, bytearray(body))
            for o, body in zip(outbox, encode_many([o.body for o in outbox]), strict=True)
        ],
        outbox_acked=list(batch.outbox_acked),
        workflow_defs=[(n, v, bytearray(encode(doc))) for n, v, doc in batch.workflow_defs],
        task_defs=[(n, bytearray(encode(doc))) for n, doc in batch.task_defs],
    )
    p.shared_values = [(shared_key(digest), bytearray(body)) for digest, body in referenced.items()]
    p.rows = (
        len(p.executions)
        + len(p.tasks)
        + len(p.history)
        + len(p.timers_set)
        + len(p.outbox_added)
        + len(p.workflow_defs)
        + len(p.task_defs)
        + len(p.outbox_acked)
    )
    # Deletions are rare: skip the work (and keep the batch mergeable) when there are none.
    if (
        batch.deleted_tasks
        or batch.timers_cleared
        or batch.deleted_workflow_defs
        or batch.deleted_task_defs
        or batch.deleted_executions
    ):
        p.mergeable = False
        p.deleted_tasks = [(task_id,) for task_id in batch.deleted_tasks]
        p.timers_cleared = [(key,) for key in batch.timers_cleared]
        p.deleted_workflow_defs = [(n, v) for n, v in batch.deleted_workflow_defs]
        p.deleted_task_defs = [(n,) for n in batch.deleted_task_defs]
        p.deleted_executions = [(wf,) for wf in batch.deleted_executions]
        p.rows += (
            len(p.deleted_tasks)
            + len(p.timers_cleared)
            + len(p.deleted_workflow_defs)
            + len(p.deleted_task_defs)
            + len(p.deleted_executions)
        )
    return p


# Multi-row statements: one sqlite3_step (and one GIL hand-off) per chunk instead of
# per row, about a third cheaper than executemany.  Fewer, longer chunks are cheaper
# still (rows of one statement reuse its B-tree cursors): a chunk takes every row up
# to 16, else the most rows that are a multiple of 8 (at most 64), so any count up to
# 64 needs at most two statements while each statement has 22 variants, which the
# connection's statement cache (256) holds for every table at once.  (All 64 sizes
# would take ~10 MB of prepared statements across the tables, and a cache miss costs
# ~0.5 ms of preparing.)
_CHUNK_ROWS = 64
_EXACT_ROWS = 16
_CHUNK_STEP = 8

_EXECUTION_HEAD = """
INSERT INTO executions (workflow_id, name, version, status, parent_id, correlation_id,
                        idempotency_key, created_ms, updated_ms, ended_ms, doc, history_count)
VALUES """
# history_count carries the number of history events this segment adds for the
# execution, so counting them costs no extra statement (no RETURNING either: each
# returned row is a few more GIL hand-offs; see _over_cap).
#
# The common update sets no indexed column: SQLite rewrites the entries of every index
# holding a column named in SET (same value or not), about as costly as the row itself
# at random keys.  Rows whose indexed columns did change (a status change, the end, a
# restart) fail the WHERE and are left alone; the chunk's rowcount then falls short,
# and the chunk goes again through the complete upsert below, whose WHERE is the
# opposite: rows the first pass inserted or updated now hold exactly those indexed
# columns and are skipped (their history is not counted twice), the others are written.
_SAME_INDEXED = """status IS excluded.status AND ended_ms IS excluded.ended_ms
    AND name IS excluded.name AND version IS excluded.version
    AND created_ms IS excluded.created_ms AND parent_id IS excluded.parent_id
    AND correlation_id IS excluded.correlation_id
    AND idempotency_key IS excluded.idempotency_key"""
_EXECUTION_NARROW_TAIL = f"""
ON CONFLICT (workflow_id) DO UPDATE SET
    updated_ms = excluded.updated_ms, doc = excluded.doc,
    history_count = history_count + excluded.history_count
WHERE {_SAME_INDEXED}"""
_EXECUTION_TAIL = f"""
ON CONFLICT (workflow_id) DO UPDATE SET
    name = excluded.name, version = excluded.version, status = excluded.status,
    parent_id = excluded.parent_id, correlation_id = excluded.correlation_id,
    idempotency_key = excluded.idempotency_key, created_ms = excluded.created_ms,
    updated_ms = excluded.updated_ms, ended_ms = excluded.ended_ms, doc = excluded.doc,
    history_count = history_count + excluded.history_count
WHERE NOT ({_SAME_INDEXED})"""
_TASK_HEAD = "INSERT INTO tasks (task_id, workflow_id, seq, status, doc) VALUES "
_TASK_TAIL = """
ON CONFLICT (task_id) DO UPDATE SET
    workflow_id = excluded.workflow_id, seq = excluded.seq, status = excluded.status,
    doc = excluded.doc"""
# Task ids derive from (workflow id, seq), so an update never moves a task in the
# tasks_by_workflow index: leave those columns out of SET (see _EXECUTION_NARROW_TAIL).
# A row that would move one anyway is skipped (the chunk's rowcount falls short) and the
# chunk goes again through the complete upsert.
_TASK_NARROW_TAIL = """
ON CONFLICT (task_id) DO UPDATE SET status = excluded.status, doc = excluded.doc
WHERE workflow_id = excluded.workflow_id AND seq = excluded.seq"""
_HISTORY_HEAD = "INSERT INTO history (workflow_id, at_ms, kind, body) VALUES "
_OUTBOX_HEAD = "INSERT INTO outbox (kind, workflow_id, body) VALUES "
_SHARED_HEAD = "INSERT OR IGNORE INTO meta (key, value) VALUES "
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


def _chunk_size(count: int) -> int:
    if count <= _EXACT_ROWS:
        return count
    return min(_CHUNK_ROWS, count - count % _CHUNK_STEP)


def _chunks(rows: list[Row]) -> Iterator[list[Row]]:
    start = 0
    while start < len(rows):
        size = _chunk_size(len(rows) - start)
        yield rows[start : start + size]
        start += size


_SQL: dict[tuple[str, str, int, int], str] = {}


def _sql(head: str, tail: str, columns: int, rows: int) -> str:
    """The statement text, built once per variant (its hash too, for the statement cache)."""
    key = (head, tail, columns, rows)
    sql = _SQL.get(key)
    if sql is None:
        marks = "(" + ",".join("?" * columns) + ")"
        sql = _SQL[key] = head + ",".join([marks] * rows) + tail
    return sql


def _insert_rows(
    conn: sqlite3.Connection,
    head: str,
    tail: str,
    rows: list[Row],
    *,
    ids: bool = False,
    fallback_tail: str | None = None,
) -> list[Any]:
    """Insert `rows` with multi-row VALUES; with `ids`, the ids they got.

    With `fallback_tail`, a chunk that changed fewer rows than it holds (its upsert's
    WHERE skipped some) is sent again with that tail instead.
    """
    out: list[Any] = []
    for chunk in _chunks(rows):
        # Flattened in C: the nested comprehension cost the writer ~3.4k instructions per
        # echoed message more (~260 values per 10-message group).
        params = list(chain.from_iterable(chunk))
        cursor = conn.execute(_sql(head, tail, len(chunk[0]), len(chunk)), params)
        if fallback_tail is not None and cursor.rowcount != len(chunk):
            conn.execute(_sql(head, fallback_tail, len(chunk[0]), len(chunk)), params)
        if ids:
            # The writer holds the only write lock, so AUTOINCREMENT ids within one
            # statement are consecutive and end at the statement's last_insert_rowid().
            last = cursor.lastrowid
            assert last is not None
            out += range(last - len(chunk) + 1, last + 1)
    return out


def _concat(segment: list[PreparedBatch], attr: str) -> list[Any]:
    if len(segment) == 1:
        rows: list[Any] = getattr(segment[0], attr)
        return rows
    return [row for batch in segment for row in getattr(batch, attr)]


def _split_ids(ids: list[int], segment: list[PreparedBatch], attr: str) -> list[list[int]]:
    if len(segment) == 1:
        return [ids]
    out: list[list[int]] = []
    start = 0
    for batch in segment:
        count = len(getattr(batch, attr))
        out.append(ids[start : start + count])
        start += count
    return out


def _upsert_executions(
    conn: sqlite3.Connection, executions: list[Row], history: list[Row]
) -> list[str]:
    """Upsert executions and count the segment's history; the workflow ids written or counted."""
    added = Counter(row[0] for row in history)
    # Each upsert replaces every column but the history count, so only the LAST row
    # of an execution in the segment matters; it carries the segment's count.
    last: dict[str, Row] = {}
    for row in executions:
        last.pop(row[0], None)  # keep the order of last appearance
        last[row[0]] = row
    rows = [(*row, added.pop(workflow_id, 0)) for workflow_id, row in last.items()]
    _insert_rows(conn, _EXECUTION_HEAD, _EXECUTION_NARROW_TAIL, rows, fallback_tail=_EXECUTION_TAIL)
    counted = list(last)
    if added:  # history for executions not in this segment (counted if they exist)
        conn.executemany(
            "UPDATE executions SET history_count = history_count + ? WHERE workflow_id = ?",
            [(count, workflow_id) for workflow_id, count in added.items()],
        )
        counted += added
    return counted


def _in_lists(values: list[Any]) -> Iterator[tuple[str, list[Any]]]:
    """``?`` marks and values for ``IN (...)``, at most 64 a time, padded to a power of two
    with repeats of the first value (harmless in IN), so the statement cache holds every
    variant."""
    for start in range(0, len(values), _CHUNK_ROWS):
        chunk = values[start : start + _CHUNK_ROWS]
        size = 1 << (len(chunk) - 1).bit_length()
        chunk += chunk[:1] * (size - len(chunk))
        yield ",".join("?" * size), chunk


def _over_cap(
    conn: sqlite3.Connection, workflow_ids: list[str], max_per_execution: int
) -> list[tuple[str, int]]:
    """(workflow_id, history_count) of those of `workflow_ids` holding more than the cap:
    one statement, and usually no row, however many executions the segment wrote."""
    over: list[tuple[str, int]] = []
    for marks, chunk in _in_lists(workflow_ids):
        over += conn.execute(
            "SELECT workflow_id, history_count FROM executions"
            f" WHERE history_count > ? AND workflow_id IN ({marks})",
            [max_per_execution, *chunk],
        ).fetchall()
    return over


def _trim_history(
    conn: sqlite3.Connection, totals: list[tuple[str, int]], max_per_execution: int
) -> int:
    dropped = 0
    for workflow_id, count in totals:
        excess = count - max_per_execution
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


def _delete_outbox(conn: sqlite3.Connection, ids: list[int]) -> None:
    if ids and all(type(i) is int for i in ids):
        low, high = min(ids), max(ids)
        if high - low + 1 == len(set(ids)):
            # Every id from low to high: one range of the rowid b-tree instead of an IN
            # list (which builds an ephemeral index first), the same rows deleted.  Acks
            # come in id order, so they mostly form such a run: the writer's cost per
            # echoed message 223.3k -> 219.9k instructions (replay of echo batches).
            conn.execute("DELETE FROM outbox WHERE id BETWEEN ? AND ?", (low, high))
            return
    for marks, chunk in _in_lists(ids):
        conn.execute(f"DELETE FROM outbox WHERE id IN ({marks})", chunk)


def apply_segment(
    conn: sqlite3.Connection,
    segment: list[PreparedBatch],
    max_history_per_execution: int,
    stored_shared: set[str] | frozenset[str] = frozenset(),
) -> SegmentResult:
    """Apply one batch, or a run of mergeable batches, inside the caller's transaction.

    `stored_shared`: meta keys of shared values known to be committed already (skipped).
    """
    assert len(segment) == 1 or all(b.mergeable for b in segment)

    def many(sql: str, attr: str) -> None:
        rows = _concat(segment, attr)
        if rows:
            conn.executemany(sql, rows)

    shared_values = _concat(segment, "shared_values")
    if shared_values:
        unseen = {k: v for k, v in shared_values if k not in stored_shared}
        if unseen:
            _insert_rows(conn, _SHARED_HEAD, "", list(unseen.items()))
    history = _concat(segment, "history")
    counted = _upsert_executions(conn, _concat(segment, "executions"), history)
    _insert_rows(
        conn, _TASK_HEAD, _TASK_NARROW_TAIL, _concat(segment, "tasks"), fallback_tail=_TASK_TAIL
    )
    many("DELETE FROM tasks WHERE task_id = ?", "deleted_tasks")
    history_ids = _insert_rows(conn, _HISTORY_HEAD, "", history, ids=True)
    dropped = _trim_history(
        conn, _over_cap(conn, counted, max_history_per_execution), max_history_per_execution
    )
    many(_UPSERT_TIMER, "timers_set")
    many("DELETE FROM timers WHERE key = ?", "timers_cleared")
    outbox_ids = _insert_rows(conn, _OUTBOX_HEAD, "", _concat(segment, "outbox_added"), ids=True)
    _delete_outbox(conn, _concat(segment, "outbox_acked"))
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
    """Cut a commit group into segments: runs of mergeable batches, other batches alone."""
    segments: list[list[PreparedBatch]] = []
    for batch in group:
        if batch.mergeable and segments and segments[-1][-1].mergeable:
            segments[-1].append(batch)
        else:
            segments.append([batch])
    return segments


def select_prune_chunk(
    conn: sqlite3.Connection, *, cutoff_ms: int, max_count: int, chunk: int, excess: int | None
) -> tuple[list[Row], int | None]:
    """Up to `chunk` finished executions due for removal: too old first, then beyond the count.

    `excess` is how many finished executions beyond `max_count` this prune has still to
    remove, None until it first counts them: one COUNT(*) per prune instead of one per
    chunk (it walks every finished execution: ~1-2 ms of each 4-7 ms chunk at 50,000).
    Executions that finish meanwhile are left to the next prune. Returns the chunk and
    the excess left after it.
    """
    rows = conn.execute(
        "SELECT workflow_id FROM executions WHERE ended_ms IS NOT NULL AND ended_ms < ?"
        " ORDER BY ended_ms LIMIT ?",
        (cutoff_ms, chunk),
    ).fetchall()
    if rows:
        return [tuple(r) for r in rows], None if excess is None else max(0, excess - len(rows))
    if excess is None:
        finished = int(
            conn.execute("SELECT COUNT(*) FROM executions WHERE ended_ms IS NOT NULL").fetchone()[0]
        )
        excess = finished - max_count
    if excess <= 0:
        return [], 0
    rows = conn.execute(
        "SELECT workflow_id FROM executions WHERE ended_ms IS NOT NULL"
        " ORDER BY ended_ms, workflow_id LIMIT ?",
        (min(chunk, excess),),
    ).fetchall()
    return [tuple(r) for r in rows], excess - len(rows)
