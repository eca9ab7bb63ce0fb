"""The journal file itself: migrations, refusal of newer/corrupt files, disk full, retention."""

from __future__ import annotations

import hashlib
import random
import sqlite3
import threading
from pathlib import Path

import pytest
import trio
import trio.testing
from journal_builders import event, execution, task, transition

from edged.errors import JournalError, JournalFull
from edged.journal import (
    SCHEMA_VERSION,
    Batch,
    HistoryEvent,
    JournalCorrupt,
    JournalSettings,
    TimerRow,
    open_journal,
)
from edged.journal.codec import encode
from edged.journal.schema import V1_SCHEMA_SQL


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def scribble_over_pages(path: Path) -> None:
    """Overwrite three b-tree pages in the middle of a closed journal with noise."""
    # The WAL was checkpointed and removed at close: everything is in the main file.
    assert not Path(f"{path}-wal").exists()
    data = bytearray(path.read_bytes())
    page_size = 4096
    pages = len(data) // page_size
    assert pages > 10
    rng = random.Random(7)
    for page in range(pages // 3, pages // 3 + 3):
        start = page * page_size
        data[start : start + page_size] = rng.randbytes(page_size)
    path.write_bytes(bytes(data))


def build_v1_file(path: Path) -> None:
    """A journal as edged with schema 1 left it, written with raw sqlite3."""
    conn = sqlite3.connect(path)
    conn.executescript(V1_SCHEMA_SQL)
    conn.execute(
        "INSERT INTO executions (workflow_id, name, version, status, parent_id, correlation_id,"
        " created_ms, updated_ms, ended_ms, doc) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ("old-wf", "freezer_alarm", 3, "RUNNING", None, "corr-1", 10, 20, None, encode({"v": 1})),
    )
    conn.execute(
        "INSERT INTO tasks (task_id, workflow_id, seq, status, doc) VALUES (?, ?, ?, ?, ?)",
        ("old-wf/t0", "old-wf", 0, "IN_PROGRESS", encode({"taskType": "SIMPLE"})),
    )
    conn.executemany(
        "INSERT INTO history (workflow_id, at_ms, kind, body) VALUES (?, ?, ?, ?)",
        [("old-wf", i, f"E{i}", encode({"i": i})) for i in range(4)],
    )
    conn.execute(
        "INSERT INTO timers (key, workflow_id, fire_at_ms, body) VALUES (?, ?, ?, ?)",
        ("old-wf/wait", "old-wf", 99, encode(None)),
    )
    conn.execute(
        "INSERT INTO workflow_defs VALUES (?, ?, ?)", ("freezer_alarm", 3, encode({"tasks": []}))
    )
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


async def test_version_1_file_is_migrated_with_its_data(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    build_v1_file(path)
    settings = JournalSettings(max_history_per_execution=5)
    with trio.fail_after(10):
        async with open_journal(path, settings=settings) as journal:
            loaded = await journal.load_execution("old-wf")
            assert loaded is not None
            row, tasks = loaded
            assert (row.name, row.version, row.correlation_id, row.idempotency_key) == (
                "freezer_alarm",
                3,
                "corr-1",
                None,
            )
            assert row.doc == {"v": 1} and [t.task_id for t in tasks] == ["old-wf/t0"]
            assert [e.kind for _, e in await journal.history("old-wf")] == ["E0", "E1", "E2", "E3"]
            assert await journal.load_timers() == [TimerRow("old-wf/wait", "old-wf", 99, None)]
            assert await journal.load_workflow_defs() == [("freezer_alarm", 3, {"tasks": []})]
            # The migration counted existing history: two more events pass the cap of 5 by one.
            await journal.commit(Batch(history=[event("old-wf", "E4"), event("old-wf", "E5")]))
            assert await journal.history_dropped("old-wf") == 1
            # And the new column works.
            row.idempotency_key = "evt-1"
            await journal.commit(Batch(executions=[row]))
            assert [
                r.workflow_id for r in await journal.find_executions(idempotency_key="evt-1")
            ] == ["old-wf"]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_failed_migration_leaves_the_old_version(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    build_v1_file(path)
    conn = sqlite3.connect(path)  # sabotage: the column v2 adds already exists
    conn.execute("ALTER TABLE executions ADD COLUMN idempotency_key TEXT")
    conn.commit()
    conn.close()
    with trio.fail_after(10), pytest.raises(JournalError, match="duplicate column"):
        async with open_journal(path):
            pass  # pragma: no cover
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
    assert conn.execute("SELECT COUNT(*) FROM history").fetchone()[0] == 4
    conn.close()


async def test_newer_schema_is_refused_and_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE something (x)")
    conn.execute("PRAGMA user_version = 7")
    conn.commit()
    conn.close()
    before = digest(path)
    with trio.fail_after(10), pytest.raises(JournalError) as caught:
        async with open_journal(path):
            pass  # pragma: no cover
    assert str(caught.value) == "journal schema 7 is newer than this edged (3); refusing to open"
    assert not isinstance(caught.value, JournalCorrupt)
    assert digest(path) == before


async def test_not_an_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "edged.yaml"
    path.write_text("journal: /var/lib/edged/journal.db\n" * 100)
    before = digest(path)
    with trio.fail_after(10), pytest.raises(JournalCorrupt, match="not an SQLite database"):
        async with open_journal(path):
            pass  # pragma: no cover
    assert digest(path) == before


async def test_corrupt_pages_are_detected_and_the_file_is_never_reset(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with trio.fail_after(20):
        async with open_journal(path) as journal:
            for i in range(40):
                batch = transition(f"wf-{i}")
                batch.executions[0].doc = {"pad": "x" * 2_000, "i": i}
                await journal.commit(batch)
        scribble_over_pages(path)
        before = digest(path)
        with pytest.raises(JournalCorrupt) as caught:
            async with open_journal(path):
                pass  # pragma: no cover
        assert str(path) in str(caught.value)
        assert digest(path) == before


async def test_disk_full_fails_cleanly_and_recovers_when_space_returns(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with trio.fail_after(20):
        async with open_journal(path) as journal:
            for i in range(10):
                await journal.commit(transition(f"keep-{i}"))
            before = await journal.load_unfinished()
            # Cap the file at its current size: the next growth has nowhere to go.
            await journal.set_size_limit(path.stat().st_size)
            big = transition("big")
            big.executions[0].doc = {"blob": "x" * 2_000_000}
            with pytest.raises(JournalFull):
                await journal.commit(big)
            stats = journal.statistics()
            assert stats.failures == 1 and "full" in (stats.last_failure or "")
            assert await journal.load_execution("big") is None
            assert await journal.load_unfinished() == before
            await journal.set_size_limit(None)  # space returns
            await journal.commit(big)
            assert await journal.load_execution("big") is not None
        async with open_journal(path) as journal:
            assert len(await journal.load_unfinished()) == 11


async def test_disk_full_fails_only_the_batch_that_does_not_fit(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with trio.fail_after(20):
        async with open_journal(path) as journal:
            await journal.commit(transition("seed"))
            await journal.set_size_limit(path.stat().st_size + 64 * 1024)
            results: dict[str, object] = {}

            async def commit(name: str, batch: Batch) -> None:
                try:
                    results[name] = await journal.commit(batch)
                except JournalFull as exc:
                    results[name] = exc

            big = transition("big")
            big.executions[0].doc = {"blob": "x" * 1_000_000}
            async with trio.open_nursery() as nursery:
                nursery.start_soon(commit, "small-1", transition("small-1"))
                nursery.start_soon(commit, "big", big)
                nursery.start_soon(commit, "small-2", transition("small-2"))
            assert isinstance(results["big"], JournalFull)
            assert not isinstance(results["small-1"], JournalFull)
            assert not isinstance(results["small-2"], JournalFull)
            names = {e.workflow_id for e, _ in await journal.load_unfinished()}
            assert names == {"seed", "small-1", "small-2"}


def finished(workflow_id: str, ended_ms: int) -> Batch:
    batch = Batch(
        executions=[
            execution(workflow_id, status="COMPLETED", created_ms=ended_ms - 1, ended_ms=ended_ms)
        ],
        tasks=[task(workflow_id, 0, "COMPLETED")],
        history=[HistoryEvent(workflow_id, ended_ms, "WorkflowCompleted", {})],
        timers_set=[TimerRow(f"{workflow_id}/t", workflow_id, ended_ms, {})],
    )
    return batch


async def test_retention_by_age_removes_old_finished_executions_only(tmp_path: Path) -> None:
    settings = JournalSettings(retention_max_age_ms=1_000, prune_chunk_executions=3)
    with trio.fail_after(20):
        async with open_journal(tmp_path / "j.db", settings=settings) as journal:
            for i in range(10):
                await journal.commit(finished(f"done-{i}", ended_ms=1_000 * (i + 1)))
            await journal.commit(transition("running"))
            # At 8,500 ms the cutoff is 7,500: done-0 .. done-6 (ended 1,000 .. 7,000) go.
            assert await journal.prune(now_ms=8_500) == 7
            left = {r.workflow_id for r in await journal.find_executions(limit=100)}
            assert left == {"done-7", "done-8", "done-9", "running"}
            assert await journal.history("done-0") == []
            assert {t.workflow_id for t in await journal.load_timers()} == {
                "done-7",
                "done-8",
                "done-9",
            }
            stats = journal.statistics()
            assert stats.executions_pruned == 7
            assert stats.commits >= 11 + 3  # seven removals in chunks of three
            assert await journal.prune(now_ms=8_500) == 0


async def test_retention_by_count_removes_the_oldest_ended_first(tmp_path: Path) -> None:
    settings = JournalSettings(retention_max_count=4, prune_chunk_executions=2)
    with trio.fail_after(20):
        async with open_journal(tmp_path / "j.db", settings=settings) as journal:
            order = [5, 2, 9, 1, 7, 3, 8]
            for i in order:
                await journal.commit(finished(f"done-{i}", ended_ms=10_000 + i))
            await journal.commit(Batch(executions=[execution("paused", status="PAUSED")]))
            assert await journal.prune(now_ms=20_000) == 3
            left = {r.workflow_id for r in await journal.find_executions()}
            assert left == {"done-5", "done-9", "done-7", "done-8", "paused"}


async def test_a_count_prune_removes_the_excess_it_counted_first(tmp_path: Path) -> None:
    # One COUNT(*) per prune, not per chunk: executions that finish while it runs are left
    # to the next prune (the cap is a retention target, not a hard bound).
    settings = JournalSettings(retention_max_count=10, prune_chunk_executions=5)
    hold = threading.Event()
    holding = threading.Event()

    def before_commit() -> None:
        if holding.is_set() and not hold.is_set():
            hold.wait(10)  # first prune chunk: wait until more executions have finished

    with trio.fail_after(20):
        async with open_journal(
            tmp_path / "j.db", settings=settings, fault_points={"before_commit": before_commit}
        ) as journal:
            merged = Batch()
            for i in range(30):
                merged.executions += finished(f"done-{i}", ended_ms=i + 1).executions
            await journal.commit(merged)
            counted: list[int] = []

            async def prune() -> None:
                counted.append(await journal.prune(now_ms=1_000))

            async def more() -> None:
                late = Batch()
                for i in range(30, 37):
                    late.executions += finished(f"done-{i}", ended_ms=i + 1).executions
                await journal.commit(late)

            holding.set()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(prune)
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(more)  # queued behind the first chunk
                await trio.testing.wait_all_tasks_blocked()
                hold.set()
            assert counted == [20]  # 30 finished, cap 10: the 7 that finished meanwhile stay
            left = {r.workflow_id for r in await journal.find_executions(limit=100)}
            assert left == {f"done-{i}" for i in range(20, 37)}
            assert await journal.prune(now_ms=1_000) == 7  # the next prune counts again
            left = {r.workflow_id for r in await journal.find_executions(limit=100)}
            assert left == {f"done-{i}" for i in range(27, 37)}


async def test_prune_lets_commits_through_between_chunks(tmp_path: Path) -> None:
    settings = JournalSettings(retention_max_age_ms=0, prune_chunk_executions=5)
    hold = threading.Event()
    holding = threading.Event()

    def before_commit() -> None:
        if holding.is_set() and not hold.is_set():
            hold.wait(10)  # first prune chunk: wait until the commit is queued

    with trio.fail_after(20):
        async with open_journal(
            tmp_path / "j.db", settings=settings, fault_points={"before_commit": before_commit}
        ) as journal:
            merged = Batch()
            for i in range(100):
                merged.executions += finished(f"done-{i}", ended_ms=i + 1).executions
            await journal.commit(merged)
            order: list[str] = []

            async def prune() -> None:
                order.append(f"pruned {await journal.prune(now_ms=1_000)}")

            async def commit() -> None:
                await journal.commit(transition("urgent"))
                order.append("committed")

            holding.set()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(prune)
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(commit)
                await trio.testing.wait_all_tasks_blocked()
                hold.set()
            # The commit queued during the first chunk did not wait for all twenty chunks.
            assert order == ["committed", "pruned 100"]
            assert journal.statistics().executions_pruned == 100
