"""Group commit: merging, failure isolation, cancellation, back-pressure, statistics.

The writer thread is held inside its first transaction by a `before_commit`
fault point, so the commits issued meanwhile are all queued when it resumes:
the tests decide the grouping instead of hoping for it.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
from journal_builders import execution, transition

from edged.errors import JournalError
from edged.journal import Batch, CommitResult, Journal, JournalSettings, open_journal


class Gate:
    """Holds the writer in its first transaction until `release`."""

    def __init__(self, fail_when: Callable[[int], bool] = lambda n: False) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()
        self.calls = 0
        self.fail_when = fail_when

    def before_commit(self) -> None:
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            self.released.wait(10)
        if self.fail_when(self.calls):
            raise OSError("injected I/O error")

    async def wait_entered(self) -> None:
        await trio.to_thread.run_sync(self.entered.wait, 10)

    def release(self) -> None:
        self.released.set()


@asynccontextmanager
async def held_journal(
    path: Path, gate: Gate, settings: JournalSettings | None = None
) -> AsyncIterator[Journal]:
    async with open_journal(
        path,
        settings=settings or JournalSettings(),
        fault_points={"before_commit": gate.before_commit},
    ) as journal:
        try:
            yield journal
        finally:
            gate.release()  # never leave the writer stuck if a test fails


async def test_concurrent_commits_share_one_transaction(tmp_path: Path) -> None:
    gate = Gate()
    results: dict[str, CommitResult] = {}

    async def commit(journal: Journal, workflow_id: str) -> None:
        results[workflow_id] = await journal.commit(transition(workflow_id))

    with trio.fail_after(10):
        async with held_journal(tmp_path / "j.db", gate) as journal:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(commit, journal, "first")
                await gate.wait_entered()
                for i in range(20):
                    nursery.start_soon(commit, journal, f"wf-{i}")
                await trio.testing.wait_all_tasks_blocked()
                assert journal.statistics().queue_depth == 20
                gate.release()
            stats = journal.statistics()
            assert stats.commits == 2
            assert stats.batches_committed == 21
            assert stats.batches_merged == 20
            assert stats.commit_size_histogram == {1: 1, 16: 1}
            assert stats.rows_written == 21 * 4
            assert stats.queue_depth == 0 and stats.writer_alive
            # Every waiter got its own, distinct, increasing ids.
            ids = [i for r in results.values() for i in r.history_ids]
            assert len(ids) == len(set(ids)) == 42
            for workflow_id, result in results.items():
                events = await journal.history(workflow_id)
                assert [i for i, _ in events] == result.history_ids


async def test_a_bad_batch_fails_alone_and_its_neighbours_commit(tmp_path: Path) -> None:
    gate = Gate()
    outcomes: dict[str, Any] = {}

    async def commit(journal: Journal, workflow_id: str, batch: Batch) -> None:
        try:
            outcomes[workflow_id] = await journal.commit(batch)
        except JournalError as exc:
            outcomes[workflow_id] = exc

    bad = transition("bad")
    bad.executions[0].name = None  # type: ignore[assignment]  # violates NOT NULL
    with trio.fail_after(10):
        async with held_journal(tmp_path / "j.db", gate) as journal:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(commit, journal, "first", transition("first"))
                await gate.wait_entered()
                for i in range(5):
                    nursery.start_soon(commit, journal, f"wf-{i}", transition(f"wf-{i}"))
                await trio.testing.wait_all_tasks_blocked()
                nursery.start_soon(commit, journal, "bad", bad)
                await trio.testing.wait_all_tasks_blocked()
                for i in range(5, 10):
                    nursery.start_soon(commit, journal, f"wf-{i}", transition(f"wf-{i}"))
                await trio.testing.wait_all_tasks_blocked()
                gate.release()
            assert isinstance(outcomes.pop("bad"), JournalError)
            assert all(isinstance(r, CommitResult) for r in outcomes.values())
            assert await journal.load_execution("bad") is None
            assert await journal.history("bad") == []
            for workflow_id in outcomes:
                assert await journal.load_execution(workflow_id) is not None
            stats = journal.statistics()
            assert stats.failures == 1 and "NOT NULL" in (stats.last_failure or "")
            # first, then the group (rolled back), then ten lone retries that succeed.
            assert stats.commits == 11 and stats.batches_committed == 11


async def test_io_error_in_a_group_is_retried_batch_by_batch(tmp_path: Path) -> None:
    gate = Gate(fail_when=lambda n: n == 2)  # the group's transaction fails once
    with trio.fail_after(10):
        async with held_journal(tmp_path / "j.db", gate) as journal:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(journal.commit, transition("first"))
                await gate.wait_entered()
                for i in range(4):
                    nursery.start_soon(journal.commit, transition(f"wf-{i}"))
                await trio.testing.wait_all_tasks_blocked()
                gate.release()
            assert len(await journal.load_unfinished()) == 5
            assert journal.statistics().failures == 0


async def test_failure_when_alone_raises_and_applies_nothing(tmp_path: Path) -> None:
    gate = Gate(fail_when=lambda n: n == 2)
    with trio.fail_after(10):
        async with held_journal(tmp_path / "j.db", gate) as journal:
            gate.release()
            await journal.commit(transition("ok"))
            with pytest.raises(JournalError, match="injected I/O error"):
                await journal.commit(transition("lost"))
            assert await journal.load_execution("lost") is None
            await journal.commit(transition("after"))  # the journal carries on
            assert {e.workflow_id for e, _ in await journal.load_unfinished()} == {"ok", "after"}


async def test_cancelled_waiter_still_commits_its_batch(tmp_path: Path) -> None:
    gate = Gate()
    with trio.fail_after(10):
        async with held_journal(tmp_path / "j.db", gate) as journal:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(journal.commit, transition("first"))
                await gate.wait_entered()
                with trio.CancelScope() as scope:
                    nursery.start_soon(_cancel_soon, scope)
                    await journal.commit(transition("cancelled"))
                assert scope.cancelled_caught
                gate.release()
            # The rule: once queued, the batch commits whole; the caller just did not learn ids.
            # Batches commit in queue order, so once a later one is back, it is in.
            await journal.commit(transition("later"))
            loaded = await journal.load_execution("cancelled")
            assert loaded is not None and len(loaded[1]) == 1
            assert len(await journal.history("cancelled")) == 2


async def _cancel_soon(scope: trio.CancelScope) -> None:
    await trio.testing.wait_all_tasks_blocked()
    scope.cancel()


async def test_cancel_while_waiting_for_room_queues_nothing(tmp_path: Path) -> None:
    gate = Gate()
    settings = JournalSettings(max_pending_batches=1)
    with trio.fail_after(10):
        async with held_journal(tmp_path / "j.db", gate, settings) as journal:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(journal.commit, transition("first"))
                await gate.wait_entered()
                with trio.CancelScope() as scope:
                    nursery.start_soon(_cancel_soon, scope)
                    await journal.commit(transition("never"))  # blocks: no room
                assert scope.cancelled_caught
                assert journal.statistics().queue_depth == 0
                gate.release()
            assert await journal.load_execution("never") is None
            await journal.commit(transition("later"))  # room came back
            assert await journal.load_execution("later") is not None


async def test_back_pressure_bounds_the_queue(tmp_path: Path) -> None:
    gate = Gate()
    settings = JournalSettings(max_pending_batches=3)
    with trio.fail_after(10):
        async with held_journal(tmp_path / "j.db", gate, settings) as journal:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(journal.commit, transition("first"))
                await gate.wait_entered()
                for i in range(10):
                    nursery.start_soon(journal.commit, transition(f"wf-{i}"))
                await trio.testing.wait_all_tasks_blocked()
                assert journal.statistics().queue_depth == 2  # 3 slots, one held by "first"
                gate.release()
            assert len(await journal.load_unfinished()) == 11


async def test_commit_after_close_is_refused(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with open_journal(tmp_path / "j.db") as journal:
            await journal.commit(Batch(executions=[execution("wf")]))
        with pytest.raises(JournalError, match="closed"):
            await journal.commit(transition("late"))


async def test_after_commit_fault_stops_the_writer_and_fails_waiters(tmp_path: Path) -> None:
    def explode() -> None:
        raise RuntimeError("simulated writer crash")

    with trio.fail_after(10):
        async with open_journal(
            tmp_path / "j.db", fault_points={"after_commit": explode}
        ) as journal:
            with pytest.raises(JournalError, match="outcome unknown"):
                await journal.commit(transition("wf"))
            with pytest.raises(JournalError, match="writer stopped"):
                await journal.commit(transition("wf2"))
            assert not journal.statistics().writer_alive
            # It did commit: after_commit runs after COMMIT.
            assert await journal.load_execution("wf") is not None


async def test_a_failed_batch_fails_the_rest_of_its_chain_unapplied(tmp_path: Path) -> None:
    """A pipelining caller decides batch N+1 on top of N: if N fails, N+1 must not land."""
    gate = Gate()
    bad = transition("bad")
    bad.executions[0].name = None  # type: ignore[assignment]  # violates NOT NULL
    with trio.fail_after(10):
        async with held_journal(tmp_path / "j.db", gate) as journal:
            first = await journal.commit_start(transition("first"), chain=1)
            await gate.wait_entered()
            # queued behind the held transaction: one group, retried batch by batch
            before = await journal.commit_start(transition("before"), chain=1)
            failing = await journal.commit_start(bad, chain=1)
            after = await journal.commit_start(transition("after"), chain=1)
            other = await journal.commit_start(transition("other"), chain=2)
            gate.release()
            for done in (first, before, failing, after, other):
                await done.event.wait()
            assert first.error is None and before.error is None and other.error is None
            assert isinstance(failing.error, JournalError)
            assert isinstance(after.error, JournalError)
            assert "earlier batch" in str(after.error)
            assert await journal.load_execution("after") is None
            assert await journal.load_execution("other") is not None
            # a later batch of the broken chain is refused too, even in a new transaction
            late = await journal.commit_start(transition("late"), chain=1)
            await late.event.wait()
            assert isinstance(late.error, JournalError)
            assert await journal.load_execution("late") is None
            # a new chain commits normally
            fresh = await journal.commit_start(transition("fresh"), chain=3)
            await fresh.event.wait()
            assert fresh.error is None and await journal.load_execution("fresh") is not None
