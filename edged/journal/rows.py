"""The journal's vocabulary: rows, batches, settings and statistics.

Theory of operation
-------------------
The engine keeps live state in memory and describes every change as a
`Batch`: snapshots to upsert (executions, tasks, timers, definitions), rows to
append (history, outbox) and keys to delete.  A batch is applied in ONE
SQLite transaction, in the order of its fields, and is all-or-nothing.  The
journal assigns ids to history events and outbox commands and returns them in
a `CommitResult`.

``doc`` / ``body`` fields hold JSON values (see `edged.journal.codec`); they
are encoded when `Journal.commit` is called, so the caller may reuse or mutate
its batch as soon as `commit` has been called.  Times are integer epoch
milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "TERMINAL_STATUSES",
    "UNFINISHED_STATUSES",
    "Batch",
    "CommitResult",
    "ExecutionRow",
    "HistoryEvent",
    "JournalSettings",
    "JournalStatistics",
    "OutboxRow",
    "TaskRow",
    "TimerRow",
]

UNFINISHED_STATUSES = ("RUNNING", "PAUSED")
TERMINAL_STATUSES = ("COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED")

DAY_MS = 24 * 60 * 60 * 1000


@dataclass(slots=True)
class ExecutionRow:
    """One workflow execution: a snapshot, upserted by `workflow_id`."""

    workflow_id: str
    name: str
    version: int
    status: str  # RUNNING, PAUSED, COMPLETED, FAILED, TIMED_OUT, TERMINATED
    parent_id: str | None
    correlation_id: str | None
    idempotency_key: str | None
    created_ms: int
    updated_ms: int
    ended_ms: int | None  # set when terminal; retention keys on it
    doc: Any  # JSON value: everything else about the execution


@dataclass(slots=True)
class TaskRow:
    """One task of an execution: a snapshot, upserted by `task_id`."""

    task_id: str
    workflow_id: str
    seq: int  # order within the execution
    status: str
    doc: Any


@dataclass(slots=True)
class HistoryEvent:
    """An append-only history entry; the journal gives it a global increasing id."""

    workflow_id: str
    at_ms: int
    kind: str  # past tense: "WorkflowStarted", "TaskCompleted", ...
    body: Any


@dataclass(slots=True)
class TimerRow:
    """A durable timer, upserted by `key`."""

    key: str
    workflow_id: str
    fire_at_ms: int
    body: Any


@dataclass(slots=True)
class OutboxRow:
    """A command to carry out once its batch is committed; the journal assigns its id."""

    kind: str
    workflow_id: str | None
    body: Any


@dataclass(slots=True)
class Batch:
    """Everything one group of transitions produced; written in ONE transaction, in this order."""

    executions: list[ExecutionRow] = field(default_factory=list)
    tasks: list[TaskRow] = field(default_factory=list)
    deleted_tasks: list[str] = field(default_factory=list)  # task ids
    history: list[HistoryEvent] = field(default_factory=list)
    timers_set: list[TimerRow] = field(default_factory=list)
    timers_cleared: list[str] = field(default_factory=list)  # timer keys
    outbox_added: list[OutboxRow] = field(default_factory=list)
    outbox_acked: list[int] = field(default_factory=list)  # outbox ids now done
    workflow_defs: list[tuple[str, int, Any]] = field(default_factory=list)  # (name, version, doc)
    deleted_workflow_defs: list[tuple[str, int]] = field(default_factory=list)
    task_defs: list[tuple[str, Any]] = field(default_factory=list)  # (name, doc)
    deleted_task_defs: list[str] = field(default_factory=list)
    # Removes the execution with its tasks, timers and history (not its outbox).
    deleted_executions: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CommitResult:
    history_ids: list[int]  # ids given to batch.history, same order
    outbox_ids: list[int]  # ids given to batch.outbox_added, same order


@dataclass(frozen=True, slots=True)
class JournalSettings:
    """Tuning and retention.  Defaults suit a 512 MB Raspberry Pi."""

    # Retention: finished executions (ended_ms set) older than this go ...
    retention_max_age_ms: int = 7 * DAY_MS
    # ... and beyond this many finished ones, the oldest-ended go first.
    retention_max_count: int = 10_000
    # Oldest history events of one execution are dropped beyond this (count kept).
    max_history_per_execution: int = 10_000
    # Executions removed per prune transaction at most: bounds how long prune holds the
    # writer, with prune_step_ms: each transaction's size follows it (halved above twice
    # the time, doubled below half of it), commits queued meanwhile go in between.
    prune_chunk_executions: int = 100
    prune_step_ms: float = 2.0
    # Storage cap (None: the disk is the limit).  Past it commits raise JournalFull.
    max_size_bytes: int | None = None
    # Page cache per connection.  Small on purpose: the OS page cache does the rest.
    cache_size_kib: int = 2_048
    # The writer's page cache (it replaces cache_size_kib there).  Every commit walks
    # the tables and ~10 indexes; with 2 MB and random keys it kept re-reading pages
    # through the OS (read syscalls, WAL index lookups): 8 MB cut the journal's CPU
    # per task completion by ~12% (108 -> 95 us, journal-only benchmark, 34 MB file).
    # Since documents share their definitions (rows 4-10x smaller) and new execution
    # ids are time-ordered (new rows land on the last pages), 4 MB costs the writer
    # nothing measurable (MQTT echo at 1,000/s, two interleaved pairs) and the daemon
    # ~4 MB less RSS.  Filled only under load; readers keep the small cache.
    writer_cache_size_kib: int = 4_096
    busy_timeout_ms: int = 5_000
    # Checkpoint the WAL into the database every this many pages (~4 MB).
    wal_autocheckpoint_pages: int = 1_000
    # After a checkpoint resets the WAL, truncate its file back to this size.
    wal_size_limit_bytes: int = 8 * 1024 * 1024
    # Most batches merged into one transaction (one fsync).
    max_group_batches: int = 1_000
    # Most batches waiting for the writer; further commit() calls wait (back-pressure).
    max_pending_batches: int = 10_000
    read_connections: int = 2
    # PRAGMA quick_check at open: O(size), seconds for hundreds of MB on a Pi.
    check_on_open: bool = True


@dataclass(frozen=True, slots=True)
class JournalStatistics:
    commits: int  # write transactions committed (groups, lone retries, prune chunks)
    batches_committed: int
    batches_merged: int  # batches that shared their transaction with another
    failures: int  # batches whose commit() raised
    rows_written: int
    last_commit_ms: float  # latency of the last transaction, BEGIN to COMMIT returned
    avg_commit_ms: float
    max_commit_ms: float
    # Batches per committed group, bucketed by powers of two: {1: n, 2: n (2-3), 4: n (4-7), ...}
    commit_size_histogram: dict[int, int]
    executions_pruned: int
    history_dropped: int  # events dropped by max_history_per_execution
    bytes_on_disk: int  # database + WAL
    schema_version: int
    queue_depth: int  # requests waiting for the writer thread
    writer_alive: bool
    last_failure: str | None
    # Transactions per latency bucket (bounds: writer.COMMIT_LATENCY_BOUNDS_MS, then +Inf)
    commit_latency_counts: tuple[int, ...] = ()
