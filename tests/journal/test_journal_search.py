"""`search_executions` over a real journal file: each operator, sort, paging, free text, its cap.

Rows are written with chosen times so every comparison has a known answer;
each search result is checked against the same filter applied in Python.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from journal_builders import execution

from edged.journal import Batch, ExecutionRow, Journal, JournalSettings, open_journal
from edged.journal import search as search_module
from edged.journal.schema import connect
from edged.journal.search import Condition, ExecutionQuery, SortKey

NAMES = ["freezer_alarm", "door_watch", "camera_snap"]
STATUSES = ["RUNNING", "COMPLETED", "FAILED", "PAUSED", "TERMINATED"]


def _rows() -> list[ExecutionRow]:
    rows = []
    for i in range(30):
        status = STATUSES[i % len(STATUSES)]
        row = execution(
            f"wf-{i:02d}",
            status=status,
            name=NAMES[i % 3],
            created_ms=1_000 + 100 * i,
            ended_ms=None if status in ("RUNNING", "PAUSED") else 5_000 + 10 * i,
            correlation_id=f"corr-{i % 4}" if i % 5 else None,
            doc={
                "input": {"room": f"room {i}", "note": "Grüße" if i == 7 else "plain"},
                "output": {"ok": i % 2 == 0, "code": f"CODE{i}"},
                "reason": "Sensor OFFLINE" if i == 11 else None,
                "definition": {"tasks": [{"name": "never_matched_by_free_text"}]},
            },
        )
        row.updated_ms = 3_000 - 50 * i  # updateTime order is the reverse of startTime's
        rows.append(row)
    return rows


ROWS = _rows()


@pytest.fixture
async def journal(tmp_path: Path) -> AsyncIterator[Journal]:
    async with open_journal(tmp_path / "j.db") as j:
        await j.commit(Batch(executions=ROWS))
        yield j


async def ids(journal: Journal, *conditions: Condition, **kwargs: object) -> list[str]:
    with trio.fail_after(10):
        page = await journal.search_executions(
            ExecutionQuery(conditions=conditions, size=1000, **kwargs)  # type: ignore[arg-type]
        )
    return [r.workflow_id for r in page.rows]


def expected(keep: Callable[[ExecutionRow], bool]) -> set[str]:
    return {r.workflow_id for r in ROWS if keep(r)}


async def test_equality_inequality_and_in(journal: Journal) -> None:
    assert set(await ids(journal, Condition("workflowType", "=", ("door_watch",)))) == expected(
        lambda r: r.name == "door_watch"
    )
    assert set(await ids(journal, Condition("status", "!=", ("RUNNING",)))) == expected(
        lambda r: r.status != "RUNNING"
    )
    got = await ids(
        journal,
        Condition("workflowType", "IN", ("door_watch", "camera_snap")),
        Condition("status", "IN", ("RUNNING", "FAILED")),
    )
    assert set(got) == expected(
        lambda r: r.name in ("door_watch", "camera_snap") and r.status in ("RUNNING", "FAILED")
    )
    assert await ids(journal, Condition("workflowId", "=", ("wf-03",))) == ["wf-03"]
    # != also matches rows where the column is NULL, as Conductor's index does
    assert set(await ids(journal, Condition("correlationId", "!=", ("corr-1",)))) == expected(
        lambda r: r.correlation_id != "corr-1"
    )
    assert await ids(journal, Condition("workflowType", "=", ("nope",))) == []


async def test_time_comparisons(journal: Journal) -> None:
    for op, check in [
        (">", lambda v: v > 2_000),
        ("<", lambda v: v < 2_000),
        (">=", lambda v: v >= 2_000),
        ("<=", lambda v: v <= 2_000),
        ("=", lambda v: v == 2_000),
    ]:
        got = await ids(journal, Condition("startTime", op, (2_000,)))
        assert set(got) == expected(lambda r, c=check: c(r.created_ms)), op  # type: ignore[misc]
    got = await ids(journal, Condition("updateTime", ">", (2_500,)))
    assert set(got) == expected(lambda r: r.updated_ms > 2_500)
    # endTime is NULL while running: no comparison matches it
    got = await ids(journal, Condition("endTime", ">", (0,)))
    assert set(got) == expected(lambda r: r.ended_ms is not None)
    window = await ids(
        journal, Condition("startTime", ">", (1_500,)), Condition("startTime", "<", (2_500,))
    )
    assert set(window) == expected(lambda r: 1_500 < r.created_ms < 2_500)


async def test_sort_orders_and_tie_break(journal: Journal) -> None:
    newest_first = await ids(journal)  # default: startTime DESC
    assert newest_first == [r.workflow_id for r in sorted(ROWS, key=lambda r: -r.created_ms)]
    by_update = await ids(journal, sort=(SortKey("updateTime", False),))
    assert by_update == [r.workflow_id for r in sorted(ROWS, key=lambda r: r.updated_ms)]
    by_name = await ids(journal, sort=(SortKey("workflowType", False), SortKey("startTime", True)))
    assert by_name == [
        r.workflow_id for r in sorted(ROWS, key=lambda r: (r.name, -r.created_ms, r.workflow_id))
    ]


async def test_paging_is_disjoint_and_total_is_stable(journal: Journal) -> None:
    seen: list[str] = []
    for start in range(0, 40, 7):
        page = await journal.search_executions(
            ExecutionQuery(sort=(SortKey("status", False),), start=start, size=7)
        )
        assert page.total_hits == len(ROWS)
        seen += [r.workflow_id for r in page.rows]
    assert len(seen) == len(set(seen)) == len(ROWS)
    empty = await journal.search_executions(ExecutionQuery(start=0, size=0))
    assert empty.total_hits == len(ROWS) and empty.rows == []


async def test_free_text_fields_case_and_conjunction(journal: Journal) -> None:
    async def free(*terms: str, **kwargs: object) -> set[str]:
        return set(await ids(journal, free_text=terms, **kwargs))

    assert await free("room 1") == expected(lambda r: "room 1" in r.doc["input"]["room"])
    assert await free("code17") == {"wf-17"}  # output, case-insensitive
    assert await free("offline") == {"wf-11"}  # reasonForIncompletion
    assert await free("GRÜSSE") == set()  # no Unicode case folding beyond lower()
    assert await free("grüße") == {"wf-07"}  # non-ASCII: prefilter skipped, exact match
    assert await free("corr-3") == expected(lambda r: r.correlation_id == "corr-3")
    assert await free("wf-2") == expected(lambda r: r.workflow_id.startswith("wf-2"))
    assert await free("door_watch", "code4") == {"wf-04"}  # every term must match
    assert await free("never_matched_by_free_text") == set()  # the definition is not searched
    failed = Condition("status", "=", ("FAILED",))
    got = set(await ids(journal, failed, free_text=("plain",)))
    assert got == expected(lambda r: r.status == "FAILED" and r.workflow_id != "wf-07")


async def test_free_text_paging_and_scan_cap(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    query = ExecutionQuery(free_text=("plain",), start=3, size=4)
    page = await journal.search_executions(query)
    assert page.total_hits == 29 and len(page.rows) == 4 and not page.truncated
    monkeypatch.setattr(search_module, "FREE_TEXT_SCAN_ROWS", 10)
    page = await journal.search_executions(query)
    # only the 10 newest rows were examined, and the answer says so
    assert page.truncated and page.total_hits == 10
    assert [r.workflow_id for r in page.rows] == [f"wf-{i:02d}" for i in (26, 25, 24, 23)]


# -- the SQL against a Python model, for any query ------------------------------------

_VALUES = {
    "workflowType": [*NAMES, "nope"],
    "workflowId": ["wf-00", "wf-13", "wf-29", "wf-99"],
    "correlationId": ["corr-0", "corr-3", "corr-9"],
    "status": STATUSES,
    "version": [0, 1, 2],
    "startTime": [900, 1_000, 2_000, 2_050, 4_000],
    "updateTime": [1_500, 2_000, 3_000],
    "endTime": [0, 5_000, 5_150, 6_000],
}
_COLUMN = {
    "workflowType": "name",
    "workflowId": "workflow_id",
    "correlationId": "correlation_id",
    "status": "status",
    "version": "version",
    "startTime": "created_ms",
    "updateTime": "updated_ms",
    "endTime": "ended_ms",
}
_TEXT_FIELDS = {"workflowType", "workflowId", "correlationId", "status"}


@st.composite
def _conditions(draw: st.DrawFn) -> Condition:
    field = draw(st.sampled_from(sorted(_VALUES)))
    ops = ["=", "!=", "IN"] if field in _TEXT_FIELDS else ["=", "!=", ">", "<", ">=", "<=", "IN"]
    op = draw(st.sampled_from(ops))
    if op == "IN":
        values = tuple(draw(st.lists(st.sampled_from(_VALUES[field]), min_size=1, max_size=3)))
    else:
        values = (draw(st.sampled_from(_VALUES[field])),)
    return Condition(field, op, values)


def _matches(row: ExecutionRow, cond: Condition) -> bool:
    value = getattr(row, _COLUMN[cond.field])
    if cond.op == "!=":
        return value is None or value != cond.values[0]
    if value is None:
        return False  # SQL: a comparison with NULL is never true
    match cond.op:
        case "IN":
            return value in cond.values
        case "=":
            return bool(value == cond.values[0])
        case ">":
            return bool(value > cond.values[0])
        case "<":
            return bool(value < cond.values[0])
        case ">=":
            return bool(value >= cond.values[0])
        case _:
            return bool(value <= cond.values[0])


def _model(query: ExecutionQuery) -> tuple[int, list[str]]:
    rows = [r for r in ROWS if all(_matches(r, c) for c in query.conditions)]
    keys = query.sort or (SortKey("startTime", True),)
    rows.sort(key=lambda r: r.workflow_id, reverse=keys[-1].descending)  # the tie-breaker
    for key in reversed(keys):  # stable sorts, least significant first
        column = _COLUMN[key.field]
        # SQLite puts NULL first in ascending order (and so last in descending)
        rows.sort(
            key=lambda r, c=column: (getattr(r, c) is not None, getattr(r, c) or 0),  # type: ignore[misc]
            reverse=key.descending,
        )
    page = rows[query.start : query.start + query.size]
    return len(rows), [r.workflow_id for r in page]


def test_any_query_agrees_with_a_python_model(tmp_path: Path) -> None:
    async def fill() -> None:
        async with open_journal(tmp_path / "j.db") as j:
            await j.commit(Batch(executions=ROWS))

    trio.run(fill)
    conn = connect(tmp_path / "j.db", JournalSettings(), read_only=True)

    @settings(max_examples=200, deadline=None, database=None)
    @given(
        conditions=st.lists(_conditions(), max_size=3).map(tuple),
        sort=st.lists(
            st.builds(SortKey, st.sampled_from(sorted(_COLUMN)), st.booleans()), max_size=2
        ).map(tuple),
        start=st.integers(0, 35),
        size=st.integers(0, 12),
    )
    def check(
        conditions: tuple[Condition, ...], sort: tuple[SortKey, ...], start: int, size: int
    ) -> None:
        query = ExecutionQuery(conditions=conditions, sort=sort, start=start, size=size)
        page = search_module.search_executions(conn, query)
        assert (page.total_hits, [r.workflow_id for r in page.rows]) == _model(query)

    try:
        check()
    finally:
        conn.close()


async def test_free_text_stops_at_its_decode_budget(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    # "plain" is in nearly every document, so each of those rows is decoded
    monkeypatch.setattr(search_module, "FREE_TEXT_DECODE_BYTES", 1)
    page = await journal.search_executions(ExecutionQuery(free_text=("plain",)))
    assert page.truncated and page.total_hits == 1  # the first decoded row spent it all
    # a term every id column holds needs no decoding, so the budget is not spent
    page = await journal.search_executions(ExecutionQuery(free_text=("wf-",)))
    assert not page.truncated and page.total_hits == len(ROWS)
    assert all(isinstance(r.doc, dict) for r in page.rows)  # page rows are decoded
