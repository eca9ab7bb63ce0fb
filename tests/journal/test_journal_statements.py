"""How many statements a commit costs: every sqlite3 call hands the GIL to the Trio thread
and must win it back, so the writer keeps them few (see edged/journal/apply.py)."""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from journal_builders import event, execution, task, transition

from edged.errors import JournalError
from edged.journal import Batch, JournalSettings, OutboxRow, open_journal
from edged.journal.apply import apply_segment, prepare, split_segments
from edged.journal.codec import SharedValues
from edged.journal.schema import open_writer_connection


@contextmanager
def writer_connection(directory: str, name: str = "j.db") -> Iterator[sqlite3.Connection]:
    conn = open_writer_connection(Path(directory) / name, JournalSettings())
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def counted(conn: sqlite3.Connection) -> Iterator[list[str]]:
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        yield statements
    finally:
        conn.set_trace_callback(None)


def echo_message(n: int, acks: list[int]) -> Batch:
    """What the MQTT echo writes per message: a snapshot, two tasks, six events, a
    publish to send and the acknowledgement of an earlier one."""
    wf = f"wf-{n:05d}"
    return Batch(
        executions=[execution(wf)],
        tasks=[task(wf, 0, "COMPLETED"), task(wf, 1)],
        history=[event(wf, kind) for kind in ("A", "B", "C", "D", "E", "F")],
        outbox_added=[OutboxRow("MqttPublish", wf, {"topic": "out", "n": n})],
        outbox_acked=acks,
    )


def commit(conn: sqlite3.Connection, group: list[Batch], cap: int = 1_000) -> list[Any]:
    results: list[Any] = []
    conn.execute("BEGIN IMMEDIATE")
    for segment in split_segments([prepare(b) for b in group]):
        result = apply_segment(conn, segment, cap)
        results += zip(result.history_ids, result.outbox_ids, strict=True)
    conn.execute("COMMIT")
    return results


def dump(conn: sqlite3.Connection) -> dict[str, list[Any]]:
    tables = ["executions", "tasks", "history", "outbox"]
    return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}


def test_an_echo_shaped_group_is_one_segment_of_six_statements() -> None:
    with tempfile.TemporaryDirectory() as directory, writer_connection(directory) as conn:
        first = commit(conn, [echo_message(n, []) for n in range(4)])
        outbox_ids = [i for _, ids in first for i in ids]
        group = [echo_message(4 + n, [outbox_ids[n]]) for n in range(4)]
        assert len(split_segments([prepare(b) for b in group])) == 1
        with counted(conn) as statements:
            commit(conn, group)
        # BEGIN, executions, tasks, history, the history cap check, outbox, acks, COMMIT
        assert len(statements) == 8, statements
        assert conn.execute("SELECT id FROM outbox ORDER BY id").fetchall() == [
            (i,) for i in range(5, 9)
        ]


@pytest.mark.parametrize("count", [1, 7, 16, 17, 24, 36, 63, 64, 65, 130])
def test_rows_take_at_most_two_statements_per_64_and_get_their_ids(count: int) -> None:
    batch = Batch(
        executions=[execution("wf")],
        history=[event("wf", f"E{i}") for i in range(count)],
        outbox_added=[OutboxRow("Run", "wf", {"i": i}) for i in range(count)],
    )
    with tempfile.TemporaryDirectory() as directory, writer_connection(directory) as conn:
        commit(conn, [Batch(history=[event("other")])])  # ids do not start at 1
        with counted(conn) as statements:
            [(history_ids, outbox_ids)] = commit(conn, [batch])
        inserts = [s for s in statements if s.startswith("INSERT INTO history")]
        assert len(inserts) <= 2 * -(-count // 64)
        rows = conn.execute("SELECT id, kind FROM history WHERE workflow_id = 'wf' ORDER BY id")
        assert [(i, f"E{n}") for n, i in enumerate(history_ids)] == rows.fetchall()
        rows = conn.execute("SELECT id, body FROM outbox ORDER BY id")
        assert [i for i, _ in rows] == outbox_ids == list(range(1, count + 1))


outbox_picks = st.lists(st.integers(0, 5), max_size=3)


@given(st.lists(st.tuples(outbox_picks, st.integers(0, 2)), min_size=1, max_size=6))
@settings(max_examples=40, deadline=None)
def test_acks_merge_and_the_group_equals_its_batches_one_by_one(
    shape: list[tuple[list[int], int]],
) -> None:
    """Acks of committed rows (each batch picks some, maybe the same as a neighbour)
    no longer cut a group into segments; the state is the same either way."""

    def run(directory: str, name: str, merged: bool) -> Any:
        with writer_connection(directory, name) as conn:
            first = commit(conn, [echo_message(n, []) for n in range(6)])
            ids = [i for _, outbox in first for i in outbox]
            group = []
            for n, (picks, adds) in enumerate(shape):
                batch = transition(f"x-{n}")
                batch.outbox_acked = [ids[p] for p in picks]
                batch.outbox_added = [OutboxRow("Run", f"x-{n}", {"k": k}) for k in range(adds)]
                group.append(batch)
            results = commit(conn, group) if merged else [commit(conn, [b])[0] for b in group]
            return dump(conn), results

    with tempfile.TemporaryDirectory() as directory:
        assert run(directory, "merged.db", True) == run(directory, "alone.db", False)


def test_the_history_cap_still_applies_when_a_snapshot_changes_its_status() -> None:
    """The complete upsert (a status change) must not count the segment's history twice."""
    with tempfile.TemporaryDirectory() as directory, writer_connection(directory) as conn:
        commit(conn, [Batch(executions=[execution("wf")], history=[event("wf")] * 3)], cap=4)
        done = Batch(executions=[execution("wf", status="COMPLETED", ended_ms=5)])
        done.history = [event("wf", "X")] * 2
        commit(conn, [done, transition("other")], cap=4)
        rows = conn.execute(
            "SELECT workflow_id, status, history_count, history_dropped FROM executions"
            " ORDER BY workflow_id"
        ).fetchall()
        assert rows == [("other", "RUNNING", 2, 0), ("wf", "COMPLETED", 4, 1)]
        assert conn.execute("SELECT COUNT(*) FROM history WHERE workflow_id = 'wf'").fetchone() == (
            4,
        )


DEFINITION: dict[str, Any] = {"name": "echo", "tasks": [{"name": f"s{i}"} for i in range(9)]}


def shared_batch() -> Batch:
    # Two executions holding the same definition object: it becomes a shared value.
    return Batch(
        executions=[
            execution("a", doc={"definition": DEFINITION, "n": 1}),
            execution("b", doc={"definition": DEFINITION, "n": 2}),
        ]
    )


def test_a_shared_value_known_to_be_stored_is_not_sent_again() -> None:
    prepared = prepare(shared_batch(), SharedValues())
    [(key, _)] = prepared.shared_values
    with tempfile.TemporaryDirectory() as directory, writer_connection(directory) as conn:
        for stored, expected in ((frozenset(), 1), (frozenset([key]), 0)):
            with counted(conn) as statements:
                apply_segment(conn, [prepared], 1_000, stored)
            assert sum(s.startswith("INSERT OR IGNORE INTO meta") for s in statements) == expected


async def test_a_shared_value_of_a_rolled_back_commit_is_written_by_the_next(
    tmp_path: Path,
) -> None:
    calls = 0

    def before_commit() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("injected I/O error")

    path = tmp_path / "j.db"
    with trio.fail_after(10):
        async with open_journal(path, fault_points={"before_commit": before_commit}) as journal:
            with pytest.raises(JournalError, match="injected"):
                await journal.commit(shared_batch())
            await journal.commit(shared_batch())
            await journal.commit(shared_batch())
    conn = sqlite3.connect(path)
    try:
        keys = [k for (k,) in conn.execute("SELECT key FROM meta WHERE key LIKE 'shared:%'")]
    finally:
        conn.close()
    [(key, _)] = prepare(shared_batch(), SharedValues()).shared_values
    assert keys == [key]


@given(
    st.lists(st.integers(1, 12), max_size=14)
    | st.tuples(st.integers(1, 12), st.integers(0, 6)).map(lambda t: list(range(t[0], t[0] + t[1])))
    | st.lists(st.integers(1, 12), max_size=6).map(lambda ids: [*ids, *ids])
)
@settings(max_examples=60, deadline=None)
def test_acks_delete_exactly_their_outbox_rows(acks: list[int]) -> None:
    """Runs of ids (one BETWEEN), gaps, repeats and ids past the last row (an IN list)."""
    with tempfile.TemporaryDirectory() as directory, writer_connection(directory) as conn:
        commit(conn, [echo_message(n, []) for n in range(10)])
        with counted(conn) as statements:
            commit(conn, [Batch(outbox_acked=acks)])
        left = [i for (i,) in conn.execute("SELECT id FROM outbox ORDER BY id")]
        assert left == [i for i in range(1, 11) if i not in acks]
        if acks and max(acks) - min(acks) + 1 == len(set(acks)):
            assert any("BETWEEN" in s for s in statements)
