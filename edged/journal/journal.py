"""`open_journal` and `Journal`: the engine's durable, write-ahead store.

Theory of operation
-------------------
`open_journal` checks and migrates the file (see `edged.journal.schema`),
starts the writer thread (`edged.journal.writer`) and opens the read pool
(`edged.journal.reads`).  On exit it queues a stop behind every request
already queued, waits for the writer to finish them (shielded from
cancellation: a journal is never left half-closed), then closes the readers.

`Journal.commit(batch)`:

1. encodes the batch on the calling task (a non-JSON payload raises
   `PayloadNotJSON` and nothing is queued);
2. waits for room among ``max_pending_batches`` (back-pressure; a cancel here
   means nothing was queued);
3. queues the batch for the writer and waits for the group it joins to commit.

When `commit` returns, the batch is durable (synchronous=FULL).  When it
raises `JournalError` / `JournalFull`, nothing of the batch was applied.

**Cancellation rule.**  Once a batch is queued (step 3), cancelling `commit`
does not withdraw it: the batch still commits (or fails) as a whole, and the
cancelled caller just does not learn the ids.  A caller that must know should
treat a cancelled commit like a crash: re-read the journal (`load_outbox`,
`load_execution`) before acting.  Never "retry" a cancelled batch blindly:
history appends would be doubled.

Reads never touch the writer: they run on read-only connections in worker
threads, see every batch whose `commit` has returned, and can run while the
writer is busy.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import trio

from edged.errors import JournalError
from edged.journal import reads
from edged.journal.apply import prepare
from edged.journal.codec import SharedValues
from edged.journal.rows import (
    Batch,
    CommitResult,
    ExecutionRow,
    HistoryEvent,
    JournalSettings,
    JournalStatistics,
    OutboxRow,
    TaskRow,
    TimerRow,
)
from edged.journal.schema import SCHEMA_VERSION, open_writer_connection
from edged.journal.search import ExecutionQuery, SearchPage, search_executions
from edged.journal.writer import (
    CallRequest,
    CommitRequest,
    Completion,
    PruneRequest,
    WriterThread,
    set_size_limit,
)

__all__ = ["DEFAULT_SETTINGS", "Journal", "open_journal"]

DEFAULT_SETTINGS = JournalSettings()


class Journal:
    """Use through `open_journal`."""

    def __init__(self, path: Path, settings: JournalSettings, writer: WriterThread) -> None:
        self.path = path
        self.settings = settings
        self._writer = writer
        self._reads = reads.ReadPool(path, settings)
        self._room = trio.Semaphore(max(1, settings.max_pending_batches))
        self._closed = False
        self._shared = SharedValues()

    # ---- writes ------------------------------------------------------------------

    async def _await(self, done: Completion) -> Any:
        await done.event.wait()
        if done.error is not None:
            raise done.error
        return done.value

    async def commit(self, batch: Batch) -> CommitResult:
        """Write `batch` in one transaction; durable when this returns (see module docstring)."""
        done = await self.commit_start(batch)
        result: CommitResult = await self._await(done)
        return result

    async def commit_start(
        self, batch: Batch, *, chain: int | None = None, notify: Callable[[], None] | None = None
    ) -> Completion:
        """Queue `batch` for commit and return its `Completion` without waiting for it.

        The batch is encoded now (a non-JSON payload raises here, nothing
        queued), so the caller may go on changing the objects it came from.
        Batches of one `chain` are applied in order and each only if every
        earlier one of the chain was (see `CommitRequest.chain`); `notify`
        runs on the Trio thread once the outcome is known.
        """
        prepared = prepare(batch, self._shared)
        # Not a checkpoint when there is room: the engine's owner loop yields where it
        # has nothing left to do, and a yield here cost it a scheduler pass per batch.
        try:
            self._room.acquire_nowait()
        except trio.WouldBlock:
            await self._room.acquire()

        def settled() -> None:
            self._room.release()
            if notify is not None:
                notify()

        done = Completion(on_done=settled)
        try:
            self._submit(CommitRequest(prepared, done, chain))
        except BaseException:
            self._room.release()
            raise
        return done

    async def prune(self, now_ms: int) -> int:
        """Apply retention at `now_ms`; returns how many executions were removed."""
        done = Completion()
        self._submit(PruneRequest(now_ms, done))
        removed: int = await self._await(done)
        return removed

    async def set_size_limit(self, max_size_bytes: int | None) -> None:
        """Change the storage cap at run time (None: no cap but the disk)."""
        done = Completion()
        self._submit(CallRequest(set_size_limit(max_size_bytes), done))
        await self._await(done)

    def _submit(self, request: object) -> None:
        if self._closed:
            raise JournalError(f"journal {self.path} is closed")
        self._writer.submit(request)

    # ---- reads -------------------------------------------------------------------

    async def load_unfinished(self) -> list[tuple[ExecutionRow, list[TaskRow]]]:
        """RUNNING and PAUSED executions (oldest first) with their tasks ordered by seq."""
        return await self._reads.run(reads.load_unfinished)

    async def load_execution(self, workflow_id: str) -> tuple[ExecutionRow, list[TaskRow]] | None:
        return await self._reads.run(lambda conn: reads.load_execution(conn, workflow_id))

    async def load_timers(self) -> list[TimerRow]:
        return await self._reads.run(reads.load_timers)

    async def load_outbox(self) -> list[tuple[int, OutboxRow]]:
        return await self._reads.run(reads.load_outbox)

    async def load_workflow_defs(self) -> list[tuple[str, int, Any]]:
        return await self._reads.run(reads.load_workflow_defs)

    async def load_task_defs(self) -> list[tuple[str, Any]]:
        return await self._reads.run(reads.load_task_defs)

    async def history(
        self, workflow_id: str | None, *, after_id: int = 0, limit: int = 1000
    ) -> list[tuple[int, HistoryEvent]]:
        """History events with id > after_id, oldest first: of one execution, or all (None)."""
        return await self._reads.run(lambda conn: reads.history(conn, workflow_id, after_id, limit))

    async def history_named(
        self,
        workflow_id: str | None = None,
        name: str | None = None,
        *,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[tuple[int, str | None, HistoryEvent]]:
        """History events with id > after_id, oldest first, each with its execution's
        name: of one execution, of the executions of one workflow name, or all."""
        return await self._reads.run(
            lambda conn: reads.history_named(conn, workflow_id, name, after_id, limit)
        )

    async def history_dropped(self, workflow_id: str) -> int:
        """How many of an execution's oldest events max_history_per_execution removed."""
        return await self._reads.run(lambda conn: reads.history_dropped(conn, workflow_id))

    async def find_executions(
        self,
        *,
        name: str | None = None,
        status: str | None = None,
        correlation_id: str | None = None,
        idempotency_key: str | None = None,
        limit: int = 100,
        offset: int = 0,
        newest_first: bool = True,
    ) -> list[ExecutionRow]:
        """Executions matching every given filter, by created_ms."""
        return await self._reads.run(
            lambda conn: reads.find_executions(
                conn,
                name=name,
                status=status,
                correlation_id=correlation_id,
                idempotency_key=idempotency_key,
                limit=limit,
                offset=offset,
                newest_first=newest_first,
            )
        )

    async def search_executions(self, query: ExecutionQuery) -> SearchPage:
        """Conductor-style search (`edged.journal.search`), off the Trio loop."""
        return await self._reads.run(lambda conn: search_executions(conn, query))

    # ---- introspection -----------------------------------------------------------

    def statistics(self) -> JournalStatistics:
        stats = self._writer.stats
        size = 0
        for suffix in ("", "-wal"):
            with suppress(FileNotFoundError):  # no WAL right after a clean close
                size += os.stat(f"{self.path}{suffix}").st_size
        with stats.lock:
            return JournalStatistics(
                commits=stats.commits,
                batches_committed=stats.batches_committed,
                batches_merged=stats.batches_merged,
                failures=stats.failures,
                rows_written=stats.rows_written,
                last_commit_ms=stats.last_commit_ms,
                avg_commit_ms=stats.total_commit_ms / stats.commits if stats.commits else 0.0,
                max_commit_ms=stats.max_commit_ms,
                commit_size_histogram=dict(sorted(stats.group_sizes.items())),
                executions_pruned=stats.executions_pruned,
                history_dropped=stats.history_dropped,
                bytes_on_disk=size,
                schema_version=SCHEMA_VERSION,
                queue_depth=self._writer.queue_depth,
                writer_alive=self._writer.alive,
                last_failure=stats.last_failure,
                commit_latency_counts=tuple(stats.commit_latency_counts),
            )

    async def _close(self) -> None:
        self._closed = True
        self._writer.stop()
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self._writer.join)
        self._reads.close()


@asynccontextmanager
async def open_journal(
    path: str | Path,
    *,
    settings: JournalSettings = DEFAULT_SETTINGS,
    fault_points: Mapping[str, Callable[[], None]] | None = None,
) -> AsyncIterator[Journal]:
    """Open (creating or migrating) the journal at `path` for the duration of the block.

    Raises JournalCorrupt for a damaged file and JournalError for a newer schema;
    neither file is modified.  `fault_points` are described in edged.journal.writer.
    """
    file = Path(path)
    conn = await trio.to_thread.run_sync(open_writer_connection, file, settings)
    writer = WriterThread(conn, settings, fault_points or {})
    writer.start()
    try:
        journal = Journal(file, settings, writer)
    except BaseException:
        writer.stop()
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(writer.join)
        raise
    try:
        yield journal
    finally:
        await journal._close()
