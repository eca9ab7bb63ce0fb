"""The task search's SQL (byte prefilter + exact check) agrees with a Python model.

`search_executions` with task conditions narrows task documents by their bytes
in SQL and then checks the survivors exactly (``edged_task_match``).  The fast
path must never change an answer: a real journal file holds tasks whose values
also appear where a field condition must not find them (inputs, other
fields, substrings, other letter case), non-ASCII names, and forks; every
generated query's page (execution search and per-task search) is compared with
the same filter applied in Python to the rows written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from edged.journal import Batch, ExecutionRow, JournalSettings, TaskRow, open_journal
from edged.journal import search as search_module
from edged.journal.schema import connect
from edged.journal.search import TASK_FIELDS, Condition, ExecutionQuery

DEF_NAMES = ["send_mail", "mail", "Grüße_task", "probe", "MAIL"]
TYPES = ["SIMPLE", "WAIT", "FORK_JOIN", "FORK_JOIN_DYNAMIC", "HTTP"]
REFS = ["a", "mail_ref", "b"]
STATUSES = ["SCHEDULED", "IN_PROGRESS", "COMPLETED", "FAILED"]
WORKERS = ["w1", "w2"]
VALUES = [*DEF_NAMES, *TYPES, *REFS, *STATUSES, *WORKERS, "FORK", "wf-03/t1", "nothing"]
TERMS = ["mail", "MAIL", "grüße", "probe", "fork", "wait", "wf-05", "offline", "zzz"]


def _population() -> tuple[list[ExecutionRow], list[TaskRow]]:
    executions, tasks = [], []
    for i in range(12):
        wid = f"wf-{i:02d}"
        executions.append(
            ExecutionRow(
                workflow_id=wid,
                name="flow",
                version=1,
                status="RUNNING",
                parent_id=None,
                correlation_id=None,
                idempotency_key=None,
                created_ms=1_000 + 10 * i,
                updated_ms=1_000 + 10 * i,
                ended_ms=None,
                doc={"input": {}, "output": {}, "definition": {"name": "flow"}},
            )
        )
        for seq in range(1 + i % 3):
            k = i + seq
            doc: dict[str, Any] = {
                "taskId": f"{wid}/t{seq}",
                "seq": seq,
                "ref": REFS[k % len(REFS)],
                "type": TYPES[k % len(TYPES)],
                "defName": DEF_NAMES[k % len(DEF_NAMES)],
                "status": STATUSES[k % len(STATUSES)],
                # values a field condition must not find here
                "input": {"note": DEF_NAMES[(k + 1) % len(DEF_NAMES)], "t": "WAIT FORK w1"},
                "wt": {"name": DEF_NAMES[k % len(DEF_NAMES)], "type": "SIMPLE"},
            }
            if k % 4 == 0:
                doc["workerId"] = WORKERS[k % 2]
            if k % 5 == 0:
                doc["reason"] = "sensor OFFLINE"
            tasks.append(TaskRow(doc["taskId"], wid, seq, doc["status"], doc))
    return executions, tasks


EXECUTIONS, TASKS = _population()


def _conductor_type(doc: dict[str, Any]) -> Any:
    if doc["type"] == "SIMPLE":
        return doc["defName"]
    return "FORK" if doc["type"] in ("FORK_JOIN", "FORK_JOIN_DYNAMIC") else doc["type"]


def _field(doc: dict[str, Any], name: str) -> Any:
    if name == "taskType":
        return _conductor_type(doc)
    return doc.get(TASK_FIELDS[name][1])


def _task_matches(task: TaskRow, query: ExecutionQuery) -> bool:
    doc = task.doc
    for cond in query.task_conditions:
        value = _field(doc, cond.field)
        if cond.op == "!=" and value == cond.values[0]:
            return False
        if cond.op != "!=" and value not in cond.values:
            return False
    keys = ("defName", "ref", "type", "taskId", "reason")
    text = "\n".join([*(str(doc.get(k) or "") for k in keys), str(_conductor_type(doc))])
    return all(term.lower() in text.lower() for term in query.task_text)


def _model(query: ExecutionQuery) -> tuple[int, list[tuple[str, str | None]]]:
    """(totalHits, page of (workflow id, task id or None)); newest execution first."""
    hits: list[tuple[str, str | None]] = []
    for row in sorted(EXECUTIONS, key=lambda r: r.created_ms, reverse=True):
        mine = sorted(
            (t for t in TASKS if t.workflow_id == row.workflow_id and _task_matches(t, query)),
            key=lambda t: t.seq,
        )
        if query.per_task:
            hits += [(row.workflow_id, t.task_id) for t in mine]
        elif mine:
            hits.append((row.workflow_id, None))
    return len(hits), hits[query.start : query.start + query.size]


def _conditions() -> st.SearchStrategy[Condition]:
    one = st.sampled_from(VALUES)
    return st.one_of(
        st.builds(
            Condition, st.sampled_from(sorted(TASK_FIELDS)), st.sampled_from(["=", "!="]),
            one.map(lambda v: (v,)),
        ),
        st.builds(
            Condition, st.sampled_from(sorted(TASK_FIELDS)), st.just("IN"),
            st.lists(one, min_size=1, max_size=3).map(tuple),
        ),
    )  # fmt: skip


def test_task_search_agrees_with_a_python_model(tmp_path: Path) -> None:
    async def fill() -> None:
        async with open_journal(tmp_path / "j.db") as j:
            await j.commit(Batch(executions=EXECUTIONS, tasks=TASKS))

    trio.run(fill)
    conn = connect(tmp_path / "j.db", JournalSettings(), read_only=True)

    @settings(max_examples=300, deadline=None, database=None)
    @given(
        conditions=st.lists(_conditions(), max_size=3).map(tuple),
        terms=st.lists(st.sampled_from(TERMS), max_size=2).map(tuple),
        per_task=st.booleans(),
        start=st.integers(0, 25),
        size=st.integers(0, 10),
    )
    def check(
        conditions: tuple[Condition, ...],
        terms: tuple[str, ...],
        per_task: bool,
        start: int,
        size: int,
    ) -> None:
        query = ExecutionQuery(
            start=start,
            size=size,
            task_conditions=conditions,
            task_text=terms,
            per_task=per_task,
        )
        page = search_module.search_executions(conn, query)
        got: list[tuple[str, str | None]] = [(r.workflow_id, None) for r in page.rows]
        if per_task:
            got = [(r.workflow_id, t.task_id) for r, t in zip(page.rows, page.tasks, strict=True)]
        assert (page.total_hits, got) == _model(query)

    try:
        check()
    finally:
        conn.close()


def test_field_conditions_are_exact(tmp_path: Path) -> None:
    """Spot checks of what the model above encodes: substrings, case, other fields."""

    async def fill() -> None:
        async with open_journal(tmp_path / "j.db") as j:
            await j.commit(Batch(executions=EXECUTIONS, tasks=TASKS))

    trio.run(fill)
    conn = connect(tmp_path / "j.db", JournalSettings(), read_only=True)

    def task_ids(*conditions: Condition) -> set[str]:
        query = ExecutionQuery(size=1000, task_conditions=conditions, per_task=True)
        return {t.task_id for t in search_module.search_executions(conn, query).tasks}

    try:
        mail = task_ids(Condition("taskDefName", "=", ("mail",)))
        assert mail and mail == {t.task_id for t in TASKS if t.doc["defName"] == "mail"}
        fork = task_ids(Condition("taskType", "=", ("FORK",)))
        assert fork == {t.task_id for t in TASKS if t.doc["type"].startswith("FORK_JOIN")}
        assert task_ids(Condition("taskType", "=", ("SIMPLE",))) == set()
        umlaut = task_ids(Condition("taskDefName", "=", ("Grüße_task",)))
        assert umlaut == {t.task_id for t in TASKS if t.doc["defName"] == "Grüße_task"}
    finally:
        conn.close()
