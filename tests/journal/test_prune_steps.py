"""Retention prune steps size themselves to `JournalSettings.prune_step_ms`: a commit that
arrives while a step runs waits for it, so a step should be short on any machine."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import trio
from journal_builders import execution

from edged.journal import Batch, JournalSettings, open_journal
from edged.journal.writer import WriterThread


def _finished(count: int) -> Batch:
    batch = Batch()
    for i in range(count):
        batch.executions.append(
            execution(f"done-{i}", status="COMPLETED", created_ms=i, ended_ms=i + 1)
        )
    return batch


async def _prune_steps(tmp_path: Path, settings: JournalSettings, count: int) -> int:
    """Transactions a prune of `count` finished executions took."""
    with trio.fail_after(30):
        async with open_journal(tmp_path / "j.db", settings=settings) as journal:
            await journal.commit(_finished(count))
            before = journal.statistics().commits
            assert await journal.prune(now_ms=10_000) == count
            assert await journal.find_executions(limit=10) == []
            return journal.statistics().commits - before


async def test_fast_steps_grow_to_the_chunk_cap(tmp_path: Path) -> None:
    # Every step far below the target: 20 (the first), 40, then up to the cap of 64.
    settings = JournalSettings(retention_max_age_ms=0, prune_chunk_executions=64, prune_step_ms=1e6)
    assert await _prune_steps(tmp_path, settings, 200) == 5  # 20 + 40 + 64 + 64, then 12


async def test_slow_steps_shrink_to_one_execution(tmp_path: Path) -> None:
    # Every step far above the target: 20, 10, 5, 2, then one execution per transaction.
    settings = JournalSettings(
        retention_max_age_ms=0, prune_chunk_executions=64, prune_step_ms=1e-9
    )
    # 20 + 10 + 5 + 2 + 1 + 1 + 1, then an empty step (the last one was full)
    assert await _prune_steps(tmp_path, settings, 40) == 8


async def test_the_first_step_is_never_above_the_cap(tmp_path: Path) -> None:
    settings = JournalSettings(retention_max_age_ms=0, prune_chunk_executions=3, prune_step_ms=1e6)
    assert await _prune_steps(tmp_path, settings, 9) == 4  # 3 + 3 + 3, then an empty step


async def test_prune_steps_skip_the_fsync_and_commits_keep_it(tmp_path: Path) -> None:
    """A prune step commits with synchronous=NORMAL (no fsync: the next commit's covers it);
    every commit of work, before and after a prune, with FULL. Read inside each transaction
    at the writer's before_commit fault point."""
    seen: list[int] = []
    conn: list[object] = []

    def before_commit() -> None:
        seen.append(conn[0].execute("PRAGMA synchronous").fetchone()[0])  # type: ignore[attr-defined]

    settings = JournalSettings(retention_max_age_ms=0, prune_chunk_executions=4, prune_step_ms=1e6)
    faults = {"before_commit": before_commit}
    with trio.fail_after(30):
        async with open_journal(tmp_path / "j.db", settings=settings, fault_points=faults) as j:
            conn.append(j._writer._conn)
            await j.commit(_finished(10))
            assert await j.prune(now_ms=10_000) == 10
            await j.commit(_finished(1))
    full, normal = 2, 1
    assert seen == [full, normal, normal, normal, full]  # 4 + 4 + 2


async def test_a_prune_rests_three_times_each_step_before_the_next(tmp_path: Path) -> None:
    """After a step of t ms the next one starts no sooner than 3t later: while it runs, a
    prune takes at most a quarter of the writer's time (a big one at a steady 1,000
    messages/s otherwise took the writer's core for seconds)."""
    ended: list[tuple[float, float]] = []  # per step: monotonic after its COMMIT, its ms
    writing: list[float] = []  # per step: monotonic after its statements, before COMMIT
    writer: list[WriterThread] = []

    def after_commit() -> None:
        ended.append((time.monotonic(), writer[0].stats.last_commit_ms))

    faults = {
        "before_commit": lambda: writing.append(time.monotonic()),
        "after_commit": after_commit,
    }
    settings = JournalSettings(retention_max_age_ms=0, prune_chunk_executions=16, prune_step_ms=1e6)
    with trio.fail_after(60):
        async with open_journal(tmp_path / "j.db", settings=settings, fault_points=faults) as j:
            writer.append(j._writer)
            await j.commit(_finished(200))
            ended.clear()
            writing.clear()
            assert await j.prune(now_ms=10_000) == 200
    assert len(ended) == len(writing) >= 13  # 16 + 16 + ... (the first step 16: the cap)
    for (end, step_ms), next_writing in zip(ended, writing[1:], strict=False):
        assert next_writing - end >= 3 * step_ms / 1000


async def test_a_commit_queued_while_a_prune_rests_is_written_at_once(tmp_path: Path) -> None:
    settings = JournalSettings(retention_max_age_ms=0, prune_chunk_executions=8, prune_step_ms=1e6)
    stepped = threading.Event()  # set by the writer after each transaction once pruning
    pruning: list[bool] = []
    faults = {"after_commit": lambda: pruning and stepped.set()}
    pruned: list[int] = []
    with trio.fail_after(60):
        async with open_journal(tmp_path / "j.db", settings=settings, fault_points=faults) as j:
            await j.commit(_finished(400))

            async def prune() -> None:
                pruned.append(await j.prune(now_ms=10_000))

            async with trio.open_nursery() as nursery:
                pruning.append(True)
                nursery.start_soon(prune)
                await trio.to_thread.run_sync(stepped.wait)
                await j.commit(Batch(executions=[execution("still-running")]))
                assert not pruned, "the commit waited for the whole prune"
                assert j.statistics().executions_pruned < 400
            assert pruned == [400]
            assert [row.workflow_id for row in await j.find_executions(limit=10)] == [
                "still-running"
            ]
