"""Opening a journal file: integrity check, pragmas, schema migrations.

Theory of operation
-------------------
`open_writer_connection` is the only way a journal file is opened for writing.
It goes, in order, and stops at the first problem without writing anything:

1. The file, if it exists and is not empty, must start with SQLite's magic
   header; otherwise `JournalCorrupt` (a config file or an image passed by
   mistake is refused, never overwritten).
2. ``PRAGMA quick_check`` (when `JournalSettings.check_on_open`): anything
   but ``ok``, or SQLite refusing the file, is `JournalCorrupt` naming the
   file and SQLite's words.  A corrupt journal is never reset: recovering it
   is an operator's decision (``sqlite3 .recover``), not ours.
3. ``PRAGMA user_version`` newer than `SCHEMA_VERSION` is a `JournalError`:
   a downgraded edged must not half-understand a newer file.
4. Pragmas (WAL, synchronous=FULL, small cache, no mmap), then every
   migration from the file's version to `SCHEMA_VERSION`, all in ONE
   transaction together with the new ``user_version``: a crash mid-migration
   leaves the old version intact.

Migrations are an ordered list; ``MIGRATIONS[n]`` takes a file from version n
to n+1 (version 0 is an empty file).  Add a function, never edit a shipped one.

Version 1 had no idempotency keys and did not track history length; version 2
adds ``executions.idempotency_key`` (indexed) and ``history_count`` /
``history_dropped`` for `JournalSettings.max_history_per_execution`, filled
from the existing history.  Version 3 changes no table: execution documents may
reference their pinned definition, stored once in ``meta`` (see
`SharedValues.encode_ref`); documents written before still read as they are.

Space: new files use ``auto_vacuum=INCREMENTAL`` so a big prune can hand pages
back to the OS (`incremental_vacuum`); files migrated from version 1 keep
``auto_vacuum=NONE`` and SQLite reuses their free pages for new rows instead.
Foreign keys stay off: the engine deletes an execution's rows explicitly, and
history may legitimately arrive for an execution written in the same group.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Final

from edged.errors import JournalError
from edged.journal.rows import JournalSettings

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "JournalCorrupt", "open_writer_connection"]

SQLITE_MAGIC: Final = b"SQLite format 3\x00"


class JournalCorrupt(JournalError):
    """The journal file is damaged or not an SQLite database; it was left untouched."""


_V1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE executions (
    workflow_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    status TEXT NOT NULL,
    parent_id TEXT,
    correlation_id TEXT,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    ended_ms INTEGER,
    doc BLOB NOT NULL
);
CREATE INDEX executions_by_status ON executions (status);
CREATE INDEX executions_by_name ON executions (name, created_ms);
CREATE INDEX executions_by_parent ON executions (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX executions_by_correlation ON executions (correlation_id)
    WHERE correlation_id IS NOT NULL;
CREATE INDEX executions_by_ended ON executions (ended_ms) WHERE ended_ms IS NOT NULL;
CREATE TABLE tasks (
    task_id TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    status TEXT NOT NULL,
    doc BLOB NOT NULL
);
CREATE INDEX tasks_by_workflow ON tasks (workflow_id, seq);
-- AUTOINCREMENT: ids are cursors (sync agent, streams) and must never be reused after a prune.
CREATE TABLE history (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    workflow_id TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX history_by_workflow ON history (workflow_id, id);
CREATE TABLE timers (
    key TEXT PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    fire_at_ms INTEGER NOT NULL,
    body BLOB NOT NULL
);
CREATE INDEX timers_by_fire_at ON timers (fire_at_ms);
CREATE INDEX timers_by_workflow ON timers (workflow_id);
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    workflow_id TEXT,
    body BLOB NOT NULL
);
CREATE TABLE workflow_defs (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    doc BLOB NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE TABLE task_defs (name TEXT PRIMARY KEY, doc BLOB NOT NULL);
"""

V1_SCHEMA_SQL: Final = _V1  # kept public so tests can build a genuine version-1 file


def _migrate_0_to_1(conn: sqlite3.Connection) -> None:
    for statement in _V1.split(";"):
        if statement.strip():
            conn.execute(statement)


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    conn.execute("ALTER TABLE executions ADD COLUMN idempotency_key TEXT")
    conn.execute("ALTER TABLE executions ADD COLUMN history_count INTEGER NOT NULL DEFAULT 0")
    conn.execute("ALTER TABLE executions ADD COLUMN history_dropped INTEGER NOT NULL DEFAULT 0")
    conn.execute(
        "CREATE INDEX executions_by_idempotency_key ON executions (idempotency_key)"
        " WHERE idempotency_key IS NOT NULL"
    )
    conn.execute(
        "UPDATE executions SET history_count ="
        " (SELECT COUNT(*) FROM history WHERE history.workflow_id = executions.workflow_id)"
    )


def _migrate_2_to_3(conn: sqlite3.Connection) -> None:
    """Nothing to convert: version 3 marks files whose execution documents may
    reference their definition (`codec.EXT_SHARED_REF`) instead of holding it; the
    referenced encodings are rows of ``meta`` keyed ``shared:<sha1 hex>``.  An older
    edged would fail on those documents, so it must refuse the file instead."""
    del conn


MIGRATIONS: Final[list[Callable[[sqlite3.Connection], None]]] = [
    _migrate_0_to_1,
    _migrate_1_to_2,
    _migrate_2_to_3,
]
SCHEMA_VERSION: Final = len(MIGRATIONS)


def connect(
    path: Path, settings: JournalSettings, *, read_only: bool = False
) -> sqlite3.Connection:
    """A connection with edged's pragmas; manual transactions (isolation_level=None)."""
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, cached_statements=256
    )
    conn.execute(f"PRAGMA busy_timeout = {int(settings.busy_timeout_ms)}")
    conn.execute(f"PRAGMA cache_size = -{int(settings.cache_size_kib)}")
    conn.execute("PRAGMA mmap_size = 0")  # 512 MB boards: no address-space games
    conn.execute("PRAGMA temp_store = MEMORY")
    if read_only:
        conn.execute("PRAGMA query_only = 1")
    return conn


def _check_header(path: Path) -> None:
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise JournalError(f"journal {path}: cannot read: {exc}") from exc
    if head and head != SQLITE_MAGIC:
        raise JournalCorrupt(f"journal {path} is not an SQLite database; refusing to open")


def _check_integrity(conn: sqlite3.Connection, path: Path) -> None:
    try:
        rows = conn.execute("PRAGMA quick_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise JournalCorrupt(f"journal {path} is corrupt: {exc}") from exc
    messages = [str(row[0]) for row in rows]
    if messages != ["ok"]:
        detail = "; ".join(messages[:5])
        raise JournalCorrupt(f"journal {path} is corrupt: {detail}")


def _migrate(conn: sqlite3.Connection, found: int) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        for version in range(found, SCHEMA_VERSION):
            MIGRATIONS[version](conn)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def open_writer_connection(path: Path, settings: JournalSettings) -> sqlite3.Connection:
    """Check, configure and migrate the journal at `path`; return the writer connection."""
    _check_header(path)
    try:
        conn = connect(path, settings)
    except sqlite3.Error as exc:
        raise JournalError(f"journal {path}: cannot open: {exc}") from exc
    try:
        if settings.check_on_open:
            _check_integrity(conn, path)
        try:
            found = int(conn.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise JournalCorrupt(f"journal {path} is corrupt: {exc}") from exc
        if found > SCHEMA_VERSION:
            raise JournalError(
                f"journal schema {found} is newer than this edged ({SCHEMA_VERSION}); refusing to open"
            )
        if found == 0:
            # Must precede the first table; it cannot be switched on later without VACUUM.
            conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise JournalError(f"journal {path}: cannot enable WAL (got {mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA wal_autocheckpoint = {int(settings.wal_autocheckpoint_pages)}")
        conn.execute(f"PRAGMA journal_size_limit = {int(settings.wal_size_limit_bytes)}")
        if found < SCHEMA_VERSION:
            _migrate(conn, found)
        apply_size_limit(conn, settings.max_size_bytes)
        # Only now: quick_check reads the whole file and would fill the bigger cache at start.
        conn.execute(f"PRAGMA cache_size = -{int(settings.writer_cache_size_kib)}")
    except sqlite3.Error as exc:
        conn.close()
        raise JournalError(f"journal {path}: cannot open: {exc}") from exc
    except BaseException:
        conn.close()
        raise
    return conn


def apply_size_limit(conn: sqlite3.Connection, max_size_bytes: int | None) -> None:
    """Cap the database size; SQLite never lowers the cap below the current size."""
    page_size = int(conn.execute("PRAGMA page_size").fetchone()[0])
    # SQLite clamps the cap to at least the current page count, so this cannot shrink data.
    pages = _SQLITE_MAX_PAGES if max_size_bytes is None else max(1, max_size_bytes // page_size)
    conn.execute(f"PRAGMA max_page_count = {pages}")


_SQLITE_MAX_PAGES: Final = 1_073_741_823  # SQLite 3.40's default max_page_count
