"""The journal: edged's SQLite write-ahead store with group commit.

The engine keeps live state in memory and, before acting on any transition,
commits what the transition produced (snapshots, history, timers, outbox
commands, definitions) as one `Batch`.  `open_journal` gives a `Journal`;
see `edged.journal.journal` for the commit and cancellation rules,
`edged.journal.writer` for group commit and fault points, and
`edged.journal.schema` for integrity checks and migrations.
"""

from edged.journal.codec import PayloadNotJSON
from edged.journal.journal import Journal, open_journal
from edged.journal.rows import (
    TERMINAL_STATUSES,
    UNFINISHED_STATUSES,
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
from edged.journal.schema import SCHEMA_VERSION, JournalCorrupt

__all__ = [
    "SCHEMA_VERSION",
    "TERMINAL_STATUSES",
    "UNFINISHED_STATUSES",
    "Batch",
    "CommitResult",
    "ExecutionRow",
    "HistoryEvent",
    "Journal",
    "JournalCorrupt",
    "JournalSettings",
    "JournalStatistics",
    "OutboxRow",
    "PayloadNotJSON",
    "TaskRow",
    "TimerRow",
    "open_journal",
]
