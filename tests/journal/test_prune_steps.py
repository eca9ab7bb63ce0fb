"""Retention prune steps size themselves to `JournalSettings.prune_step_ms`: a commit that
arrives while a step runs waits for it, so a step should be short on any machine."""

from __future__ import annotations

from pathlib import Path

import trio
from journal_builders import execution

from edged.journal import Batch, JournalSettings, open_journal


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
