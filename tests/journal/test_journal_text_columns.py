"""Hostile values in columns: stored, never a failed group commit.

Column strings with lone surrogates are stored as U+FFFD in the column; a
timer past SQLite's largest integer is stored as "never".

A lone surrogate is valid in JSON and in Python strings but has no UTF-8
form, and SQLite's text columns are UTF-8.  Before `apply._text`, one such
correlation id made every group commit it joined fail, so one hostile input
stopped the whole journal.
"""

from __future__ import annotations

from pathlib import Path

import trio
from journal_builders import execution

from edged.journal import Batch, TimerRow, open_journal


async def test_lone_surrogate_columns_commit_and_docs_keep_the_original(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with open_journal(tmp_path / "j.db") as journal:
            hostile = execution(
                "wf-1",
                correlation_id="\ud800x",
                idempotency_key="k\udfff",
                doc={"input": {"c": "\ud800x"}},
            )
            fine = execution("wf-2", correlation_id="Grüße")
            await journal.commit(Batch(executions=[hostile, fine]))
            loaded = await journal.load_execution("wf-1")
            assert loaded is not None
            row = loaded[0]
            assert row.correlation_id == "\ufffdx" and row.idempotency_key == "k\ufffd"
            assert row.doc == {"input": {"c": "\ud800x"}}  # the payload is exact
            found = await journal.find_executions(correlation_id="Grüße")
            assert [r.workflow_id for r in found] == ["wf-2"]  # other text untouched
            await journal.commit(Batch(executions=[execution("wf-3")]))  # still writing
            assert await journal.load_execution("wf-3") is not None


async def test_a_timer_beyond_sqlites_integers_is_stored_as_never(tmp_path: Path) -> None:
    """A WAIT of 10**15 days (wired from input) used to fail the group commit (OverflowError)."""
    with trio.fail_after(10):
        async with open_journal(tmp_path / "j.db") as journal:
            far = TimerRow("wf-1/w", "wf-1", 10**30, {"ref": "w"})
            near = TimerRow("wf-2/w", "wf-2", 5_000, {"ref": "w"})
            await journal.commit(
                Batch(executions=[execution("wf-1"), execution("wf-2")], timers_set=[far, near])
            )
            timers = await journal.load_timers()
            assert [(t.key, t.fire_at_ms) for t in timers] == [
                ("wf-2/w", 5_000),
                ("wf-1/w", 2**63 - 1),
            ]
