"""The writer thread: one connection, group commit, failure isolation, fault points.

Theory of operation
-------------------
One dedicated OS thread owns the only write connection.  Trio tasks hand it
requests through a thread-safe queue and wait on a `Completion`; the thread
wakes them with ONE ``TrioToken.run_sync_soon`` per transaction, so the Trio
loop never blocks on SQLite and a wake-up costs the loop almost nothing.

Loop: block until a request arrives, then move everything queued at that
moment into a local backlog and take its head:

* a run of commit requests (at most ``max_group_batches``) becomes ONE
  transaction and one fsync (group commit).  If that transaction fails, it is
  rolled back and every batch of the group is retried alone, so one bad batch
  (or one that does not fit) cannot fail its neighbours; only batches that
  fail alone report an error, and for those nothing was applied.
* a prune request deletes one chunk per transaction and, if more is due, goes
  back to the END of the backlog, so commits queued meanwhile go first and a
  big prune never holds the writer for long.  It also rests between steps
  (`_PRUNE_SHARE`): the next step is not due before the writer has spent
  three times the last step's length on other work or waiting, so a prune of
  tens of thousands of executions spreads over seconds instead of taking a
  whole core from the loop thread (2-vCPU boards) while messages stream in.
* a call request runs a function on the connection (pragmas, checkpoints).
* a stop request ends the loop after everything queued before it.

Fault points (`fault_points`, name -> callable, run on this thread):

* ``before_commit`` -- inside the transaction, all statements done, before
  COMMIT.  Raising here makes the transaction fail like an I/O error (rolled
  back; each batch retried alone, which calls the hook again).  A crash test
  that kills the process here must find none of the group in the journal.
* ``after_commit`` -- COMMIT returned (durable), waiters not yet woken.
  Killing the process here must find the whole group.  Raising here is
  treated as a writer crash: the thread stops, every waiter (this group's
  too) gets `JournalError` with outcome unknown, and later commits are refused.

Both fire for every write transaction: groups, lone retries and prune chunks.
An unexpected error outside a transaction also stops the writer the same way:
the daemon is meant to exit and recover from the journal, not limp on.
"""

from __future__ import annotations

import bisect
import queue
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

import trio

from edged.errors import JournalError, JournalFull
from edged.journal.apply import (
    PreparedBatch,
    apply_segment,
    delete_executions,
    select_prune_chunk,
    split_segments,
)
from edged.journal.rows import CommitResult, JournalSettings
from edged.journal.schema import apply_size_limit

__all__ = [
    "COMMIT_LATENCY_BOUNDS_MS",
    "CallRequest",
    "CommitRequest",
    "Completion",
    "PruneRequest",
    "WriterStats",
    "WriterThread",
]

# Upper bounds (ms) of the commit-latency buckets kept in `WriterStats.commit_latency_counts`
# (one more bucket for everything above); /metrics exposes them as a histogram.
COMMIT_LATENCY_BOUNDS_MS: tuple[float, ...] = (
    0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
)  # fmt: skip

# Shared-value keys remembered as committed, at most (see WriterThread._stored_shared).
_MAX_STORED_SHARED = 4_096

# Executions the first step of a prune removes at most; later steps follow prune_step_ms.
_PRUNE_FIRST_CHUNK = 20

# The most of the writer's time a prune takes while it runs: after a step of t ms the
# next is due t * (1 / share - 1) ms later (commits go meanwhile).  At a steady 1,000
# messages/s on a 2-vCPU VM the first prune (48,000 executions) took the writer's core
# for ~5 s back to back: p50 / p99 of those seconds 16-19 / 32-34 ms against 11 / 20-21
# around them.  Paced, it takes ~15 s at p50 / p99 12-14 / 21-30 ms (two runs each,
# over 80 s runs: p99 27.9 -> 21.2 ms in the second pair).  A step removes ~40 executions
# in its ~2 ms, so a quarter share still removes several thousand a second.
_PRUNE_SHARE = 0.25

# Pages handed back to the OS after a prune that removed a full chunk or more (~8 MB).
_VACUUM_PAGES_AFTER_PRUNE = 2_048


class Completion:
    """Where the writer leaves one request's outcome; set on the Trio thread."""

    __slots__ = ("error", "event", "on_done", "value")

    def __init__(self, on_done: Callable[[], None] | None = None) -> None:
        self.event = trio.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.on_done = on_done

    def settle(self, value: Any, error: BaseException | None) -> None:
        if self.event.is_set():
            return  # a crash after a lone retry succeeded may report it twice
        self.value, self.error = value, error
        self.event.set()
        if self.on_done is not None:
            self.on_done()


@dataclass(slots=True)
class CommitRequest:
    batch: PreparedBatch
    done: Completion
    # Batches of one chain build on each other (a pipelining engine decides the
    # next batch on top of the state of one not yet committed): once one fails,
    # every later batch of the same chain fails unapplied.
    chain: int | None = None


@dataclass(slots=True)
class PruneRequest:
    now_ms: int
    done: Completion
    removed: int = 0
    excess: int | None = None  # beyond the count cap, still to remove (None: not counted yet)
    chunk: int = 0  # executions the next step removes at most (0: not sized yet)
    due: float = 0.0  # time.monotonic() before which the next step rests (_PRUNE_SHARE)


@dataclass(slots=True)
class CallRequest:
    fn: Callable[[sqlite3.Connection], Any]
    done: Completion


_STOP = object()
Outcome = tuple[Completion, Any, BaseException | None]


@dataclass(slots=True)
class WriterStats:
    """Counters, written only by the writer thread (under `lock`)."""

    lock: threading.Lock
    commits: int = 0
    batches_committed: int = 0
    batches_merged: int = 0
    failures: int = 0
    rows_written: int = 0
    last_commit_ms: float = 0.0
    total_commit_ms: float = 0.0
    max_commit_ms: float = 0.0
    executions_pruned: int = 0
    history_dropped: int = 0
    last_failure: str | None = None
    group_sizes: dict[int, int] = field(default_factory=dict)  # bucket -> committed groups
    commit_latency_counts: list[int] = field(
        default_factory=lambda: [0] * (len(COMMIT_LATENCY_BOUNDS_MS) + 1)
    )


def _as_journal_error(exc: BaseException) -> JournalError:
    if isinstance(exc, JournalError):
        return exc
    if (
        isinstance(exc, sqlite3.Error)
        and getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
    ):
        error: JournalError = JournalFull(f"journal storage full: {exc}")
    else:
        error = JournalError(f"journal write failed: {exc!r}")
    error.__cause__ = exc
    return error


class WriterThread:
    def __init__(
        self,
        conn: sqlite3.Connection,
        settings: JournalSettings,
        fault_points: Mapping[str, Callable[[], None]],
    ) -> None:
        self._conn = conn
        self._settings = settings
        self._faults = dict(fault_points)
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._backlog: deque[object] = deque()
        self._token = trio.lowlevel.current_trio_token()
        self.stats = WriterStats(threading.Lock())
        self.stopped_reason: str | None = None
        # Requests taken off the backlog and not yet answered: failed too if the writer dies.
        self._inflight: list[Completion] = []
        self._broken_chains: set[int] = set()
        # Meta keys of shared values this writer saw committed: batches referencing them
        # again skip their INSERT OR IGNORE (see apply.py).  Updated only after COMMIT.
        self._stored_shared: set[str] = set()
        self._thread = threading.Thread(target=self._run, name="edged-journal-writer", daemon=True)

    # ---- Trio side -------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def submit(self, request: object) -> None:
        if self.stopped_reason is not None:
            raise JournalError(f"journal writer stopped: {self.stopped_reason}")
        self._queue.put(request)

    def stop(self) -> None:
        self._queue.put(_STOP)

    def join(self) -> None:
        self._thread.join()

    @property
    def alive(self) -> bool:
        return self.stopped_reason is None and self._thread.is_alive()

    @property
    def queue_depth(self) -> int:
        return self._queue.qsize() + len(self._backlog)

    # ---- writer thread ---------------------------------------------------------

    def _wake(self, outcomes: list[Outcome]) -> None:
        if not outcomes:
            return
        # If the Trio run is over nobody is left to tell; the data is durable (or rolled back).
        with suppress(trio.RunFinishedError):
            self._token.run_sync_soon(_settle_all, outcomes)

    def _fault(self, name: str) -> None:
        hook = self._faults.get(name)
        if hook is not None:
            hook()

    def _transaction(self, work: Callable[[], Any], *, durable: bool = True) -> Any:
        """Run `work` in one write transaction. Not `durable`: its commit does not wait for
        the disk (synchronous=NORMAL for it: no fsync of the WAL); the next durable commit's
        fsync covers it, since the WAL is one file written in order, and a power loss before
        that loses the whole transaction or none of it, never the database's consistency."""
        started = time.perf_counter()
        try:
            if not durable:
                self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("BEGIN IMMEDIATE")
            result = work()
            self._fault("before_commit")
            self._conn.execute("COMMIT")
        except BaseException:
            if self._conn.in_transaction:
                # SQLite may already have rolled back (e.g. after an I/O error).
                with suppress(sqlite3.Error):
                    self._conn.execute("ROLLBACK")
            raise
        finally:
            if not durable:
                self._conn.execute("PRAGMA synchronous = FULL")
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        with self.stats.lock:
            self.stats.commits += 1
            self.stats.last_commit_ms = elapsed_ms
            self.stats.total_commit_ms += elapsed_ms
            self.stats.max_commit_ms = max(self.stats.max_commit_ms, elapsed_ms)
            self.stats.commit_latency_counts[
                bisect.bisect_left(COMMIT_LATENCY_BOUNDS_MS, elapsed_ms)
            ] += 1
        return result

    def _apply_group(self, group: list[CommitRequest]) -> list[CommitResult]:
        results: list[CommitResult] = []
        dropped = 0
        max_history = self._settings.max_history_per_execution
        for segment in split_segments([r.batch for r in group]):
            outcome = apply_segment(self._conn, segment, max_history, self._stored_shared)
            dropped += outcome.history_dropped
            results += map(CommitResult, outcome.history_ids, outcome.outbox_ids)
        with self.stats.lock:
            self.stats.history_dropped += dropped
        return results

    def _broken(self, request: CommitRequest) -> bool:
        if request.chain is None or request.chain not in self._broken_chains:
            return False
        self._record(
            [request],
            failed=JournalError("journal write not applied: an earlier batch it builds on failed"),
        )
        return True

    def _fail(self, request: CommitRequest, exc: Exception) -> None:
        if request.chain is not None:
            self._broken_chains.add(request.chain)
        self._record([request], failed=_as_journal_error(exc))

    def _commit_group(self, group: list[CommitRequest]) -> None:
        if self._broken_chains:
            group = [r for r in group if not self._broken(r)]
            if not group:
                return
        try:
            results = self._transaction(lambda: self._apply_group(group))
        except Exception as exc:
            if len(group) == 1:
                self._fail(group[0], exc)
                return
            for request in group:  # isolate: retry each batch alone
                if self._broken(request):
                    continue
                try:
                    result = self._transaction(lambda r=request: self._apply_group([r]))  # type: ignore[misc]
                except Exception as lone_exc:
                    self._fail(request, lone_exc)
                else:
                    self._record([request], results=result)
            return
        self._record(group, results=results)

    def _record(
        self,
        group: list[CommitRequest],
        *,
        results: list[CommitResult] | None = None,
        failed: JournalError | None = None,
    ) -> None:
        with self.stats.lock:
            if failed is not None:
                self.stats.failures += len(group)
                self.stats.last_failure = str(failed)
            else:
                self.stats.batches_committed += len(group)
                if len(group) > 1:
                    self.stats.batches_merged += len(group)
                self.stats.rows_written += sum(r.batch.rows for r in group)
                bucket = 1 << (len(group).bit_length() - 1)
                self.stats.group_sizes[bucket] = self.stats.group_sizes.get(bucket, 0) + 1
        if failed is None:
            for request in group:
                if request.batch.shared_values:
                    if len(self._stored_shared) >= _MAX_STORED_SHARED:
                        self._stored_shared.clear()  # a bound; a miss costs one INSERT OR IGNORE
                    self._stored_shared.update(k for k, _ in request.batch.shared_values)
            self._fault("after_commit")
            assert results is not None
            self._wake([(r.done, res, None) for r, res in zip(group, results, strict=True)])
        else:
            self._wake([(r.done, None, failed) for r in group])

    def _prune_step(self, request: PruneRequest) -> None:
        settings = self._settings
        cutoff_ms = request.now_ms - settings.retention_max_age_ms
        chunk = request.chunk or min(_PRUNE_FIRST_CHUNK, settings.prune_chunk_executions)

        def work() -> tuple[int, int | None]:
            ids, excess = select_prune_chunk(
                self._conn,
                cutoff_ms=cutoff_ms,
                max_count=self._settings.retention_max_count,
                chunk=chunk,
                excess=request.excess,
            )
            delete_executions(self._conn, ids)
            return len(ids), excess

        try:
            # A prune step need not wait for the disk: one lost to a power cut is simply
            # done again, and the next commit's fsync makes it durable anyway. Waiting cost
            # a busy daemon an fsync per step (~50 a second at 1,000 executions/s once
            # retention deletes as many as start), which every commit queued behind waited.
            removed, excess = self._transaction(work, durable=False)
        except Exception as exc:
            self._wake([(request.done, None, _as_journal_error(exc))])
            return
        elapsed_ms = self.stats.last_commit_ms  # this step's (only this thread writes it)
        self._fault("after_commit")
        request.removed += removed
        request.excess = excess
        with self.stats.lock:
            self.stats.executions_pruned += removed
        if removed == chunk:
            # A commit that arrives meanwhile waits for the step: size the next one to take
            # about prune_step_ms (a fixed 100 took 5-14 ms on a busy 2-vCPU VM, where 20
            # took 1.6-2.9 ms; 1,000 messages/s then saw the prune in their p99).
            target = settings.prune_step_ms
            if elapsed_ms > 2 * target:
                chunk = max(1, chunk // 2)
            elif elapsed_ms < target / 2:
                chunk = min(settings.prune_chunk_executions, chunk * 2)
            request.chunk = chunk
            request.due = time.monotonic() + elapsed_ms * (1 / _PRUNE_SHARE - 1) / 1000
            self._backlog.append(request)  # more may be due: after the commits queued meanwhile
            return
        if request.removed >= settings.prune_chunk_executions:
            # A big prune: give pages back and fold the WAL in now, not at some busy moment.
            self._conn.execute(f"PRAGMA incremental_vacuum({_VACUUM_PAGES_AFTER_PRUNE})")
            self._conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        self._wake([(request.done, request.removed, None)])

    def _take_group(self) -> list[CommitRequest]:
        group: list[CommitRequest] = []
        while (
            self._backlog
            and isinstance(self._backlog[0], CommitRequest)
            and len(group) < self._settings.max_group_batches
        ):
            group.append(self._backlog.popleft())  # type: ignore[arg-type]
        return group

    def _run(self) -> None:
        try:
            while True:
                if not self._backlog:
                    self._backlog.append(self._queue.get())
                while True:  # everything queued right now joins the backlog
                    try:
                        self._backlog.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                head = self._backlog[0]
                if head is _STOP:
                    break
                if isinstance(head, CommitRequest):
                    group = self._take_group()
                    self._inflight = [r.done for r in group]
                    self._commit_group(group)
                elif isinstance(head, PruneRequest):
                    self._backlog.popleft()
                    if self._resting(head):
                        continue
                    self._inflight = [head.done]
                    self._prune_step(head)
                elif isinstance(head, CallRequest):
                    self._backlog.popleft()
                    self._inflight = [head.done]
                    self._call(head)
                self._inflight = []
            self.stopped_reason = "journal closed"
        except BaseException as exc:
            self.stopped_reason = f"writer crashed: {exc!r}"
        finally:
            self._fail_pending()
            self._conn.close()

    def _resting(self, request: PruneRequest) -> bool:
        """Whether `request` (just taken off the backlog) must rest before its next step:
        it goes back behind whatever else is queued, or, with nothing else to do, waits
        for a request to arrive or for its time to come."""
        rest = request.due - time.monotonic()
        if rest <= 0:
            return False
        if all(isinstance(item, PruneRequest) for item in self._backlog):  # none to go first
            try:
                self._backlog.append(self._queue.get(timeout=rest))
            except queue.Empty:
                return False
        self._backlog.append(request)
        return True

    def _call(self, request: CallRequest) -> None:
        try:
            value = request.fn(self._conn)
        except Exception as exc:
            self._wake([(request.done, None, _as_journal_error(exc))])
        else:
            self._wake([(request.done, value, None)])

    def _fail_pending(self) -> None:
        error = JournalError(f"journal writer stopped: {self.stopped_reason}; outcome unknown")
        outcomes: list[Outcome] = [(done, None, error) for done in self._inflight]
        while True:
            while self._backlog:
                item = self._backlog.popleft()
                if isinstance(item, CommitRequest | PruneRequest | CallRequest):
                    outcomes.append((item.done, None, error))
            try:
                self._backlog.append(self._queue.get_nowait())
            except queue.Empty:
                break
        self._wake(outcomes)


def _settle_all(outcomes: list[Outcome]) -> None:
    for done, value, error in outcomes:
        done.settle(value, error)


def set_size_limit(max_size_bytes: int | None) -> Callable[[sqlite3.Connection], None]:
    """A CallRequest function changing the storage cap on the writer connection."""
    return lambda conn: apply_size_limit(conn, max_size_bytes)
