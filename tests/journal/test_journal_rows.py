"""Every row type through a real journal file: round trips, upserts, deletes, queries."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from journal_builders import event, execution, task, transition

from edged.errors import BadInput
from edged.journal import (
    Batch,
    HistoryEvent,
    JournalSettings,
    OutboxRow,
    PayloadNotJSON,
    TaskRow,
    TimerRow,
    open_journal,
)


async def test_execution_and_tasks_round_trip(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with open_journal(tmp_path / "j.db") as journal:
            row = execution(
                "wf-1", correlation_id="c-1", idempotency_key="evt-9", doc={"big": 2**90}
            )
            tasks = [task("wf-1", 2), task("wf-1", 0), task("wf-1", 1)]
            result = await journal.commit(Batch(executions=[row], tasks=tasks))
            assert result.history_ids == [] and result.outbox_ids == []
            loaded = await journal.load_execution("wf-1")
            assert loaded is not None
            assert loaded[0] == row
            assert [t.seq for t in loaded[1]] == [0, 1, 2]
            assert await journal.load_execution("missing") is None


async def test_upserts_replace_snapshots_and_deletes_remove(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with open_journal(tmp_path / "j.db") as journal:
            await journal.commit(transition("wf-1"))
            done = execution("wf-1", status="COMPLETED", ended_ms=5_000, doc={"output": 1})
            await journal.commit(
                Batch(executions=[done], tasks=[task("wf-1", 0, "COMPLETED"), task("wf-1", 1)])
            )
            loaded = await journal.load_execution("wf-1")
            assert loaded is not None
            assert loaded[0] == done
            assert [(t.seq, t.status) for t in loaded[1]] == [(0, "COMPLETED"), (1, "SCHEDULED")]
            await journal.commit(Batch(deleted_tasks=["wf-1/t0"]))
            loaded = await journal.load_execution("wf-1")
            assert loaded is not None and [t.seq for t in loaded[1]] == [1]


async def test_load_unfinished_returns_running_and_paused_only(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with open_journal(tmp_path / "j.db") as journal:
            batch = Batch(
                executions=[
                    execution("run", created_ms=1),
                    execution("pause", status="PAUSED", created_ms=2),
                    execution("done", status="COMPLETED", created_ms=3, ended_ms=9),
                ],
                tasks=[task("run", 1), task("run", 0), task("done", 0), task("pause", 0)],
            )
            await journal.commit(batch)
            unfinished = await journal.load_unfinished()
            assert [(e.workflow_id, [t.seq for t in ts]) for e, ts in unfinished] == [
                ("run", [0, 1]),
                ("pause", [0]),
            ]


async def test_timers_outbox_and_definitions(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with open_journal(tmp_path / "j.db") as journal:
            first = await journal.commit(
                Batch(
                    timers_set=[
                        TimerRow("t-a", "wf", 50, {"a": 1}),
                        TimerRow("t-b", "wf", 10, None),
                    ],
                    outbox_added=[
                        OutboxRow("ScheduleTask", "wf", {"n": 1}),
                        OutboxRow("Publish", None, []),
                    ],
                    workflow_defs=[("flow", 1, {"tasks": []}), ("flow", 2, {"tasks": [1]})],
                    task_defs=[("probe", {"retryCount": 3})],
                )
            )
            assert len(first.outbox_ids) == 2 and first.outbox_ids[0] < first.outbox_ids[1]
            assert [t.key for t in await journal.load_timers()] == ["t-b", "t-a"]
            assert await journal.load_outbox() == [
                (first.outbox_ids[0], OutboxRow("ScheduleTask", "wf", {"n": 1})),
                (first.outbox_ids[1], OutboxRow("Publish", None, [])),
            ]
            await journal.commit(
                Batch(
                    timers_set=[TimerRow("t-a", "wf", 5, {"moved": True})],
                    timers_cleared=["t-b"],
                    outbox_acked=[first.outbox_ids[0]],
                    workflow_defs=[("flow", 2, {"tasks": [2]})],
                    deleted_workflow_defs=[("flow", 1)],
                    task_defs=[("probe2", {})],
                    deleted_task_defs=["probe"],
                )
            )
            assert await journal.load_timers() == [TimerRow("t-a", "wf", 5, {"moved": True})]
            assert [i for i, _ in await journal.load_outbox()] == [first.outbox_ids[1]]
            assert await journal.load_workflow_defs() == [("flow", 2, {"tasks": [2]})]
            assert await journal.load_task_defs() == [("probe2", {})]


async def test_ids_increase_and_are_never_reused(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with open_journal(tmp_path / "j.db") as journal:
            a = await journal.commit(transition("wf-1"))
            await journal.commit(Batch(deleted_executions=["wf-1"]))
            b = await journal.commit(transition("wf-2"))
            assert a.history_ids[1] == a.history_ids[0] + 1
            assert b.history_ids[0] > a.history_ids[1]
        async with open_journal(tmp_path / "j.db") as journal:
            c = await journal.commit(transition("wf-3"))
            assert c.history_ids[0] > b.history_ids[1]


async def test_deleted_execution_takes_tasks_timers_history_but_not_outbox(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with open_journal(tmp_path / "j.db") as journal:
            batch = transition("wf-1")
            batch.timers_set.append(TimerRow("t", "wf-1", 9, {}))
            batch.outbox_added.append(OutboxRow("ScheduleTask", "wf-1", {}))
            await journal.commit(batch)
            await journal.commit(transition("wf-2"))
            await journal.commit(Batch(deleted_executions=["wf-1"]))
            assert await journal.load_execution("wf-1") is None
            assert await journal.history("wf-1") == []
            assert await journal.load_timers() == []
            assert len(await journal.load_outbox()) == 1
            assert await journal.load_execution("wf-2") is not None


async def test_history_paging_per_execution_and_global(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with open_journal(tmp_path / "j.db") as journal:
            await journal.commit(Batch(executions=[execution("a"), execution("b")]))
            for i in range(25):
                wf = "a" if i % 3 else "b"
                await journal.commit(Batch(history=[event(wf, f"E{i}", at_ms=i)]))
            everything = await journal.history(None, limit=1000)
            assert [e.kind for _, e in everything] == [f"E{i}" for i in range(25)]
            pages: list[tuple[int, HistoryEvent]] = []
            after = 0
            while page := await journal.history("a", after_id=after, limit=4):
                assert len(page) <= 4
                pages += page
                after = page[-1][0]
            assert [e.kind for _, e in pages] == [f"E{i}" for i in range(25) if i % 3]
            ids = [i for i, _ in pages]
            assert ids == sorted(set(ids))
            with pytest.raises(BadInput):
                await journal.history(None, limit=-1)


async def test_history_cap_drops_oldest_and_counts(tmp_path: Path) -> None:
    settings = JournalSettings(max_history_per_execution=5)
    with trio.fail_after(10):
        async with open_journal(tmp_path / "j.db", settings=settings) as journal:
            await journal.commit(Batch(executions=[execution("wf")], history=[event("wf", "E0")]))
            for i in range(1, 4):  # history without the execution row in the batch
                await journal.commit(Batch(history=[event("wf", f"E{i}")]))
            await journal.commit(
                Batch(
                    executions=[execution("wf")],
                    history=[event("wf", f"E{i}") for i in range(4, 8)],
                )
            )
            kept = await journal.history("wf")
            assert [e.kind for _, e in kept] == ["E3", "E4", "E5", "E6", "E7"]
            assert await journal.history_dropped("wf") == 3
            assert journal.statistics().history_dropped == 3


async def test_find_executions_filters_and_pages(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with open_journal(tmp_path / "j.db") as journal:
            rows = [
                execution(
                    f"wf-{i}", name="a" if i % 2 else "b", created_ms=i, correlation_id=f"c{i % 3}"
                )
                for i in range(10)
            ]
            rows[4].idempotency_key = "mqtt:sensor/1:42"
            rows[7].status = "FAILED"
            await journal.commit(Batch(executions=rows))
            found = await journal.find_executions(name="a")
            assert [r.workflow_id for r in found] == ["wf-9", "wf-7", "wf-5", "wf-3", "wf-1"]
            found = await journal.find_executions(name="a", newest_first=False, limit=2, offset=1)
            assert [r.workflow_id for r in found] == ["wf-3", "wf-5"]
            assert [r.workflow_id for r in await journal.find_executions(status="FAILED")] == [
                "wf-7"
            ]
            assert [
                r.workflow_id
                for r in await journal.find_executions(idempotency_key="mqtt:sensor/1:42")
            ] == ["wf-4"]
            found = await journal.find_executions(correlation_id="c0", name="b")
            assert [r.workflow_id for r in found] == ["wf-6", "wf-0"]
            with pytest.raises(BadInput):
                await journal.find_executions(offset=-1)


async def test_non_json_payload_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with open_journal(tmp_path / "j.db") as journal:
            batch = transition("wf")
            batch.tasks.append(TaskRow("bad", "wf", 9, "SCHEDULED", {"when": {1, 2}}))
            with pytest.raises(PayloadNotJSON):
                await journal.commit(batch)
            assert await journal.load_execution("wf") is None
            assert journal.statistics().commits == 0


# A model-based check: any sequence of task upserts and deletes leaves exactly
# what a dict would hold.
task_ops = st.lists(
    st.tuples(st.sampled_from(["put", "del"]), st.integers(0, 6), st.sampled_from(["A", "B"])),
    max_size=25,
)


@given(st.lists(task_ops, min_size=1, max_size=4))
@settings(max_examples=25, deadline=None)
def test_task_snapshots_match_a_model(batches: list[list[tuple[str, int, str]]]) -> None:
    async def run(path: Path) -> None:
        model: dict[int, str] = {}
        with trio.fail_after(20):
            async with open_journal(path) as journal:
                await journal.commit(Batch(executions=[execution("wf")]))
                for ops in batches:
                    batch = Batch()
                    for op, seq, status in ops:
                        if op == "put":
                            batch.tasks.append(task("wf", seq, status))
                        else:
                            batch.deleted_tasks.append(f"wf/t{seq}")
                    # Batch order is: every upsert, then every delete.
                    model.update({t.seq: t.status for t in batch.tasks})
                    for task_id in batch.deleted_tasks:
                        model.pop(int(task_id.rsplit("t", 1)[1]), None)
                    await journal.commit(batch)
                loaded = await journal.load_execution("wf")
                assert loaded is not None
                got: dict[int, Any] = {t.seq: t.status for t in loaded[1]}
                assert got == model
                assert [t.seq for t in loaded[1]] == sorted(model)

    with tempfile.TemporaryDirectory() as directory:
        trio.run(run, Path(directory) / "j.db")
