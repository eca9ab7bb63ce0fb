"""Execution documents reference their pinned definition, stored once per journal."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import msgpack
import pytest
import trio
from journal_builders import execution

from edged.errors import JournalError
from edged.journal import Batch, TaskRow, codec, open_journal
from edged.journal.apply import prepare
from edged.journal.codec import EXT_SHARED_REF, MissingSharedValue, SharedValues, decode
from edged.journal.search import ExecutionQuery

DEFINITION: dict[str, Any] = {
    "name": "freezer_alarm",
    "version": 1,
    "tasks": [
        {"name": f"step{i}", "taskReferenceName": f"s{i}", "type": "SIMPLE"} for i in range(20)
    ],
}


WT: dict[str, Any] = {"name": "step0", "taskReferenceName": "s0", "inputParameters": {"x": 1}}
TASKDEF: dict[str, Any] = {"name": "step0", "retryCount": 3, "responseTimeoutSeconds": 3600}


def _task(workflow_id: str) -> TaskRow:
    doc = {"taskId": f"{workflow_id}/t", "wt": WT, "taskdef": TASKDEF, "input": {"x": 1}}
    return TaskRow(f"{workflow_id}/t", workflow_id, 1, "SCHEDULED", doc)


def _doc(n: int) -> dict[str, Any]:
    return {"definition": DEFINITION, "input": {"n": n}, "reason": None}


@pytest.fixture
def new_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget every shared value this process has seen, as a restarted daemon would."""
    monkeypatch.setattr(codec, "_SHARED_BODIES", {})


def test_an_encoded_reference_decodes_to_the_value() -> None:
    shared = SharedValues()
    first: dict[bytes, bytes] = {}
    inline = shared.encode_ref(_doc(1), ("definition",), first, "wf-1")
    assert first == {}  # one owner so far: spliced in inline, as `encode` does
    assert inline == shared.encode(_doc(1), "definition") and decode(inline) == _doc(1)
    refs: dict[bytes, bytes] = {}
    blob = shared.encode_ref(_doc(2), ("definition",), refs, "wf-2")
    [(digest, body)] = refs.items()
    assert len(digest) == 20  # a SHA-1
    assert len(blob) < 100 < len(body)
    assert decode(blob) == _doc(2)
    again: dict[bytes, bytes] = {}
    blob = shared.encode_ref(_doc(1), ("definition",), again, "wf-1")  # shared from now on
    assert again == refs and decode(blob) == _doc(1)
    assert decode(blob)["definition"] is not decode(blob)["definition"]  # fresh copies


def test_nothing_worth_sharing_stays_inline() -> None:
    docs: list[dict[str, Any]] = [{"input": {}}, {"definition": {}}, {"definition": "x"}]
    for doc in docs:
        shared, refs = SharedValues(), dict[bytes, bytes]()
        for owner in ("a", "b"):
            blob = shared.encode_ref(doc, ("definition",), refs, owner)
            assert refs == {} and decode(blob) == doc


def test_a_doc_too_deep_around_the_definition_is_split_inline() -> None:
    deep: Any = []
    for _ in range(1_030):
        deep = [deep]
    shared = SharedValues()
    for owner in ("a", "b"):
        refs: dict[bytes, bytes] = {}
        blob = shared.encode_ref({**_doc(1), "input": deep}, ("definition",), refs, owner)
        assert refs == {}
        assert decode(blob)["definition"] == DEFINITION


def test_an_unknown_reference_is_reported(new_process: None) -> None:
    blob = codec._pack({"definition": msgpack.ExtType(EXT_SHARED_REF, b"\x01" * 20)})
    with pytest.raises(MissingSharedValue):
        decode(blob)


def test_every_batch_carries_what_it_references() -> None:
    shared = SharedValues()
    for _ in range(2):  # the second batch too: the first might never commit
        batch = Batch(executions=[execution("a", doc=_doc(1)), execution("b", doc=_doc(2))])
        assert len(prepare(batch, shared).shared_values) == 1


def test_a_value_of_one_owner_stays_inline() -> None:
    shared = SharedValues()
    for n in range(3):  # one execution's snapshots, again and again
        assert prepare(Batch(executions=[execution("a", doc=_doc(n))]), shared).shared_values == []


async def test_a_restarted_process_reads_referenced_definitions(
    tmp_path: Path, new_process: None
) -> None:
    path = tmp_path / "journal.db"
    with trio.fail_after(10):
        async with open_journal(path) as journal:
            for _ in range(2):  # b's rows share what a's held first; then a's do too
                await journal.commit(
                    Batch(
                        executions=[execution("a", doc=_doc(1)), execution("b", doc=_doc(2))],
                        tasks=[_task("a"), _task("b")],
                    )
                )
    conn = sqlite3.connect(path)
    sizes = [len(blob) for (blob,) in conn.execute("SELECT doc FROM executions")]
    assert max(sizes) < 100  # the definition is not in the rows
    sizes = [len(blob) for (blob,) in conn.execute("SELECT doc FROM tasks")]
    assert max(sizes) < 100  # nor the definition node and TaskDef
    assert conn.execute("SELECT COUNT(*) FROM meta WHERE key LIKE 'shared:%'").fetchone() == (3,)
    conn.close()
    codec._SHARED_BODIES.clear()
    with trio.fail_after(10):
        async with open_journal(path) as journal:
            loaded = await journal.load_execution("a")
            assert loaded is not None and loaded[0].doc == _doc(1)
            assert [t.doc for t in loaded[1]] == [_task("a").doc]
            codec._SHARED_BODIES.clear()
            unfinished = await journal.load_unfinished()
            assert [row.doc for row, _ in unfinished] == [_doc(1), _doc(2)]
            assert [[t.doc for t in tasks] for _, tasks in unfinished] == [
                [_task("a").doc],
                [_task("b").doc],
            ]
            codec._SHARED_BODIES.clear()
            found = await journal.find_executions(name="freezer_alarm", newest_first=False)
            assert [row.doc for row in found] == [_doc(1), _doc(2)]
            for free_text in ((), ("a",), ("n",)):
                codec._SHARED_BODIES.clear()
                page = await journal.search_executions(ExecutionQuery(free_text=free_text))
                assert sorted(row.doc["input"]["n"] for row in page.rows) == [1, 2]
                assert all(row.doc["definition"] == DEFINITION for row in page.rows)


async def test_a_reference_the_journal_cannot_resolve_is_a_journal_error(
    tmp_path: Path, new_process: None
) -> None:
    path = tmp_path / "journal.db"
    with trio.fail_after(10):
        async with open_journal(path) as journal:
            for _ in range(2):
                await journal.commit(
                    Batch(executions=[execution("a", doc=_doc(1)), execution("b", doc=_doc(2))])
                )
    conn = sqlite3.connect(path)
    conn.execute("DELETE FROM meta WHERE key LIKE 'shared:%'")
    conn.commit()
    conn.close()
    codec._SHARED_BODIES.clear()
    with trio.fail_after(10):
        async with open_journal(path) as journal:
            with pytest.raises(JournalError, match="does not hold"):
                await journal.load_execution("a")


def test_task_nodes_are_shared_between_executions_not_between_one_executions_tasks() -> None:
    """A retried task (or a dynamic fork's nodes) reuses its definition node within one
    execution: that stays inline, so pruning the execution leaves no meta row behind. The
    same node in a second execution's task is shared."""
    shared = SharedValues()
    node = {"name": "t", "taskReferenceName": "t", "type": "SIMPLE", "inputParameters": {"x": 1}}

    def task(task_id: str, workflow_id: str) -> TaskRow:
        return TaskRow(task_id, workflow_id, 1, "SCHEDULED", {"taskId": task_id, "wt": node})

    first_run = Batch(tasks=[task("t1", "wf-a"), task("t1-retry", "wf-a"), task("t1-r2", "wf-a")])
    assert prepare(first_run, shared).shared_values == []
    second_execution = Batch(tasks=[task("t2", "wf-b")])
    assert len(prepare(second_execution, shared).shared_values) == 1
