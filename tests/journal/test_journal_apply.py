"""Group merging is invisible: a group gives exactly the state of its batches one by one."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from journal_builders import event, execution, task

from edged.journal import Batch, JournalSettings, OutboxRow, TaskRow, TimerRow
from edged.journal.apply import apply_segment, prepare, split_segments
from edged.journal.codec import encode
from edged.journal.schema import open_writer_connection

workflows = st.sampled_from(["a", "b", "c"])


@st.composite
def batches(draw: st.DrawFn) -> Batch:
    batch = Batch()
    for wf in draw(st.lists(workflows, max_size=2)):
        batch.executions.append(execution(wf, status=draw(st.sampled_from(["RUNNING", "PAUSED"]))))
    for wf, seq in draw(st.lists(st.tuples(workflows, st.integers(0, 2)), max_size=3)):
        batch.tasks.append(task(wf, seq, draw(st.sampled_from(["SCHEDULED", "COMPLETED"]))))
    batch.history = [event(wf) for wf in draw(st.lists(workflows, max_size=4))]
    # As the engine does: history goes with its execution's snapshot.  (History for an
    # execution not yet written is kept but not counted toward the cap; see apply.py.)
    written = {e.workflow_id for e in batch.executions}
    batch.executions += [
        execution(wf) for wf in sorted({h.workflow_id for h in batch.history} - written)
    ]
    for wf in draw(st.lists(workflows, max_size=2)):
        batch.timers_set.append(TimerRow(f"{wf}/timer", wf, draw(st.integers(0, 9)), None))
    batch.outbox_added = [OutboxRow("Run", wf, {}) for wf in draw(st.lists(workflows, max_size=2))]
    if draw(st.booleans()):  # sometimes a batch that cannot be merged
        batch.deleted_tasks = [
            f"{wf}/t{seq}"
            for wf, seq in draw(st.lists(st.tuples(workflows, st.integers(0, 2)), max_size=2))
        ]
        batch.timers_cleared = [f"{wf}/timer" for wf in draw(st.lists(workflows, max_size=1))]
        batch.deleted_executions = draw(st.lists(workflows, max_size=1))
    return batch


def dump(conn: sqlite3.Connection) -> dict[str, list[Any]]:
    tables = ["executions", "tasks", "history", "timers", "outbox"]
    return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}


def run(directory: str, name: str, groups: list[list[Batch]], cap: int) -> tuple[Any, list[Any]]:
    conn = open_writer_connection(Path(directory) / name, JournalSettings())
    ids: list[Any] = []
    for group in groups:
        conn.execute("BEGIN")
        for segment in split_segments([prepare(b) for b in group]):
            result = apply_segment(conn, segment, cap)
            ids += list(zip(result.history_ids, result.outbox_ids, strict=True))
        conn.execute("COMMIT")
    state = dump(conn)
    conn.close()
    return state, ids


@given(st.lists(batches(), min_size=1, max_size=8), st.integers(2, 6))
@settings(max_examples=60, deadline=None)
def test_a_merged_group_equals_its_batches_one_by_one(group: list[Batch], cap: int) -> None:
    with tempfile.TemporaryDirectory() as directory:
        merged = run(directory, "merged.db", [group], cap)
        alone = run(directory, "alone.db", [[b] for b in group], cap)
    assert merged == alone


@st.composite
def rewrites(draw: st.DrawFn) -> Batch:
    """Snapshots whose indexed columns sometimes change (status, end, restart) and
    task rows that sometimes claim another execution or seq for the same id."""
    batch = Batch()
    for wf in draw(st.lists(workflows, max_size=3)):
        batch.executions.append(
            execution(
                wf,
                status=draw(st.sampled_from(["RUNNING", "COMPLETED"])),
                name=draw(st.sampled_from(["one", "two"])),
                created_ms=draw(st.sampled_from([1_000, 2_000])),
                ended_ms=draw(st.sampled_from([None, 3_000])),
                correlation_id=draw(st.sampled_from([None, "c"])),
                idempotency_key=draw(st.sampled_from([None, "k"])),
                doc={"n": draw(st.integers(0, 9))},
            )
        )
    for wf, seq in draw(st.lists(st.tuples(workflows, st.integers(0, 1)), max_size=3)):
        row = task(wf, seq, draw(st.sampled_from(["SCHEDULED", "COMPLETED"])))
        if draw(st.booleans()):
            row = TaskRow("shared-id", row.workflow_id, row.seq, row.status, row.doc)
        batch.tasks.append(row)
    batch.history = [event(e.workflow_id) for e in batch.executions if draw(st.booleans())]
    return batch


@given(st.lists(rewrites(), min_size=1, max_size=6), st.booleans())
@settings(max_examples=80, deadline=None)
def test_every_column_of_the_last_snapshot_lands(group: list[Batch], merged: bool) -> None:
    """The narrow upserts (SET without indexed columns) fall back whenever those change."""
    with tempfile.TemporaryDirectory() as directory:
        state, _ = run(directory, "j.db", [group] if merged else [[b] for b in group], 1_000)
    executions: dict[str, Any] = {}
    tasks: dict[str, Any] = {}
    for batch in group:
        for e in batch.executions:
            executions[e.workflow_id] = e
        for t in batch.tasks:
            tasks[t.task_id] = t
    history = {wf: sum(h.workflow_id == wf for b in group for h in b.history) for wf in executions}
    columns = ["workflow_id", "name", "version", "status", "parent_id", "correlation_id"]
    columns += ["created_ms", "updated_ms", "ended_ms", "doc", "idempotency_key"]
    assert [row[:11] for row in state["executions"]] == [
        tuple(encode(e.doc) if c == "doc" else getattr(e, c) for c in columns)
        for e in sorted(executions.values(), key=lambda e: e.workflow_id)
    ]
    assert {row[0]: row[11] for row in state["executions"]} == history
    assert state["tasks"] == [
        (t.task_id, t.workflow_id, t.seq, t.status, encode(t.doc))
        for t in sorted(tasks.values(), key=lambda t: t.task_id)
    ]
