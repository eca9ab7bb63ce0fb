"""Durability across a real process kill (SIGKILL), at and between precise instants.

A child process commits one execution per transaction and prints each
commit's result; the parent kills it with SIGKILL, reopens the journal and
checks that every commit the child saw return is there, whole.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import trio

from edged.journal import Batch, open_journal
from edged.journal.schema import SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[2]

CHILD = r"""
import os, signal, sys
import trio
from edged.journal import Batch, ExecutionRow, HistoryEvent, TaskRow, open_journal

path, kill_at, point = sys.argv[1], int(sys.argv[2]), sys.argv[3]
transactions = 0

def hook():
    global transactions
    transactions += 1
    if transactions == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)

async def main():
    faults = {point: hook} if point != "none" else {}
    async with open_journal(path, fault_points=faults) as journal:
        for i in range(10_000):
            wf = f"wf-{i}"
            result = await journal.commit(Batch(
                executions=[ExecutionRow(wf, "n", 1, "RUNNING", None, None, None, i, i, None, {"i": i})],
                tasks=[TaskRow(wf + "/t0", wf, 0, "SCHEDULED", {"i": i})],
                history=[HistoryEvent(wf, i, "WorkflowStarted", {}), HistoryEvent(wf, i, "TaskScheduled", {})],
            ))
            print(f"committed {i} {result.history_ids[0]} {result.history_ids[1]}", flush=True)

trio.run(main)
"""


def run_child(path: Path, kill_at: int, point: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(kill_at), point],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


async def committed_ids(path: Path) -> dict[str, list[int]]:
    """workflow id -> history ids, for every execution in the journal, checking each is whole."""
    found: dict[str, list[int]] = {}
    with trio.fail_after(20):
        async with open_journal(path) as journal:
            for execution, tasks in await journal.load_unfinished():
                assert [t.task_id for t in tasks] == [f"{execution.workflow_id}/t0"]
                history = await journal.history(execution.workflow_id)
                assert [e.kind for _, e in history] == ["WorkflowStarted", "TaskScheduled"]
                found[execution.workflow_id] = [i for i, _ in history]
            assert len(await journal.history(None, limit=100_000)) == 2 * len(found)
    return found


def test_sigkill_right_after_commits_return_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    seen: dict[str, list[int]] = {}
    with run_child(path, 0, "none") as child:
        watchdog = threading.Timer(30, child.kill)  # bounds the test if the child stalls
        watchdog.start()
        try:
            assert child.stdout is not None
            for line in child.stdout:
                _, i, first, second = line.split()
                seen[f"wf-{i}"] = [int(first), int(second)]
                if len(seen) == 200:
                    child.send_signal(signal.SIGKILL)
                    break
            _, err = child.communicate(timeout=10)
        finally:
            watchdog.cancel()
    assert child.returncode == -signal.SIGKILL, err
    assert len(seen) == 200
    found = trio.run(committed_ids, path)
    for workflow_id, ids in seen.items():
        assert found[workflow_id] == ids
    # At most the commits in flight when the signal landed are extra, and none is partial.
    assert len(found) >= len(seen)


@pytest.mark.parametrize(
    ("point", "survivors"),
    [("before_commit", 4), ("after_commit", 5)],
)
def test_kill_at_a_fault_point(tmp_path: Path, point: str, survivors: int) -> None:
    path = tmp_path / "j.db"
    with run_child(path, 5, point) as child:
        out, err = child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL, err
    printed = [line.split()[1] for line in out.splitlines()]
    assert printed == [str(i) for i in range(4)]  # the fifth never returned
    found = trio.run(committed_ids, path)
    # Killed inside the fifth transaction before COMMIT: it is gone.  After: it is there.
    assert sorted(found) == sorted(f"wf-{i}" for i in range(survivors))


async def test_journal_is_usable_after_a_kill(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with run_child(path, 3, "before_commit") as child:
        await trio.to_thread.run_sync(lambda: child.communicate(timeout=30))
    with trio.fail_after(10):
        async with open_journal(path) as journal:
            unfinished = await journal.load_unfinished()
            assert len(unfinished) == 2
            stats = journal.statistics()
            assert stats.writer_alive and stats.schema_version == SCHEMA_VERSION
            await journal.commit(Batch(deleted_executions=["wf-0"]))
            assert len(await journal.load_unfinished()) == 1
