"""Journal faults seen through a real daemon: disk full, old schema, corruption."""

from __future__ import annotations

import hashlib
import random
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml
from workloads import TASKDEFS, simple, wait

from edged.journal.schema import SCHEMA_VERSION, V1_SCHEMA_SQL
from tests.integration.daemon_harness import Daemon, edged_cmd, free_port, handler_config

WAITER: dict[str, Any] = {
    "name": "it_waiter",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [wait("w", "1 seconds"), simple("it_add", "add", a="${workflow.input.a}", b=1)],
    "outputParameters": {"sum": "${add.output.sum}"},
}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def started_id(resp: Any) -> str:
    assert resp.status_code == 200, resp.text
    return str(resp.text.strip().strip('"'))


def test_disk_full_refuses_new_starts_keeps_old_ones_and_carries_on(daemon_factory: Any) -> None:
    # a WAIT long enough that the executions are still unfinished when the cap is lifted
    slow_waiter = {**WAITER, "tasks": [wait("w", "6 seconds"), *WAITER["tasks"][1:]]}
    d: Daemon = daemon_factory(slow_waiter, taskdefs=TASKDEFS, journal={"max_size_bytes": 400_000})
    d.start()
    pad = "x" * 6_000  # big inputs fill the journal in a few dozen starts
    accepted: dict[str, int] = {}
    refusal = None
    for i in range(400):
        resp = d.start_workflow("it_waiter", {"a": i, "pad": pad})
        if resp.status_code != 200:
            refusal = resp
            break
        accepted[started_id(resp)] = i
    assert refusal is not None, "the journal never filled"
    assert refusal.status_code == 507, refusal.text
    body = refusal.json()
    assert "full" in body["message"].lower(), body
    assert len(accepted) >= 5
    # Still serving: everything committed before the refusal is intact.
    running = 0
    for wid, a in accepted.items():
        doc = d.workflow(wid)
        assert doc["input"]["a"] == a and doc["status"] in ("RUNNING", "COMPLETED"), doc
        running += doc["status"] == "RUNNING"
    assert running, "every execution finished before the cap was lifted; the test proves less"
    assert d.start_workflow("it_waiter", {"a": -1, "pad": pad}).status_code == 507
    # Space returns: restart with no cap; every accepted execution completes.
    d.config.write_text(yaml.safe_dump({**yaml.safe_load(d.config.read_text()), "journal": {}}))
    d.restart()
    done = d.wait_ended(list(accepted), timeout_s=30)
    for wid, a in accepted.items():
        assert done[wid]["status"] == "COMPLETED" and done[wid]["output"] == {"sum": a + 1}, done[
            wid
        ]
    assert started_id(d.start_workflow("it_waiter", {"a": 7})) not in accepted


def downgrade_to_v1(v2: Path, v1: Path) -> None:
    """Copy a v2 journal's rows into a genuine version-1 file (schema 1 DDL, user_version 1)."""
    conn = sqlite3.connect(v1)
    conn.executescript(V1_SCHEMA_SQL)
    conn.execute("ATTACH DATABASE ? AS new", (str(v2),))
    for table in (
        "meta",
        "executions",
        "tasks",
        "history",
        "timers",
        "outbox",
        "workflow_defs",
        "task_defs",
    ):
        cols = [row[1] for row in conn.execute(f"PRAGMA main.table_info({table})")]
        names = ", ".join(cols)
        conn.execute(f"INSERT INTO main.{table} ({names}) SELECT {names} FROM new.{table}")
    conn.commit()
    conn.execute("DETACH DATABASE new")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()


def test_version_1_journal_is_migrated_on_start_and_its_executions_resume(
    daemon_factory: Any,
) -> None:
    long_wait = {
        **WAITER,
        "name": "it_long",
        "tasks": [wait("w", "2 seconds"), *WAITER["tasks"][1:]],
    }
    d: Daemon = daemon_factory(long_wait, taskdefs=TASKDEFS)
    d.start()
    wid = started_id(d.start_workflow("it_long", {"a": 41}))
    assert d.terminate() == 0
    journal = d.data_dir / "journal.db"
    v2 = journal.with_name("v2.db")
    journal.rename(v2)
    for suffix in ("-wal", "-shm"):
        Path(f"{journal}{suffix}").unlink(missing_ok=True)
    downgrade_to_v1(v2, journal)
    v2.unlink()
    d.start()
    doc = d.wait_ended([wid], timeout_s=15)[wid]
    assert doc["status"] == "COMPLETED" and doc["output"] == {"sum": 42}
    assert d.terminate() == 0
    conn = sqlite3.connect(journal)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def scribble(path: Path) -> None:
    data = bytearray(path.read_bytes())
    page_size = 4096
    pages = len(data) // page_size
    assert pages > 6, pages
    rng = random.Random(3)
    for page in range(pages // 2, pages // 2 + 3):
        data[page * page_size : (page + 1) * page_size] = rng.randbytes(page_size)
    path.write_bytes(bytes(data))


def test_corrupt_journal_stops_the_start_with_one_line_and_is_left_untouched(
    daemon_factory: Any, tmp_path: Path
) -> None:
    d: Daemon = daemon_factory(WAITER, taskdefs=TASKDEFS)
    d.start()
    for i in range(30):
        started_id(d.start_workflow("it_waiter", {"a": i, "pad": "y" * 3_000}))
    assert d.terminate() == 0
    journal = d.data_dir / "journal.db"
    assert not Path(f"{journal}-wal").exists() or Path(f"{journal}-wal").stat().st_size == 0
    scribble(journal)
    before = digest(journal)
    began = time.monotonic()
    proc = subprocess.run(
        edged_cmd(
            "run",
            "--data-dir",
            str(d.data_dir),
            "--listen",
            f"127.0.0.1:{free_port()}",
            "--defs",
            str(d.defs_dir),
            "--config",
            str(handler_config(tmp_path / "again.yaml")),
        ),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert str(journal) in lines[0] and "corrupt" in lines[0], lines[0]
    assert digest(journal) == before
    assert time.monotonic() - began < 30
