"""Conductor's search by tasks (``/api/workflow/search-by-tasks[-v2]``) and task search
(``/api/tasks/search[-v2]``) against a real `edged run` over loopback HTTP.

One daemon for the module with a fixed population no test changes: three
``rd_add`` executions whose ``it_add`` task COMPLETED, two whose ``it_add``
FAILED (``a`` is not a number), and two RUNNING ``rd_wait`` executions whose
WAIT task (``gate``) is IN_PROGRESS.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from read_daemon import make_daemon, start, wait_status

BY_TASKS = "/api/workflow/search-by-tasks"
TASKS = "/api/tasks/search"
TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@dataclass
class Population:
    http: httpx.Client
    completed: list[str]
    failed: list[str]
    waiting: list[str]

    @property
    def adds(self) -> set[str]:
        return {*self.completed, *self.failed}


@pytest.fixture(scope="module")
def pop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Population]:
    daemon = make_daemon(tmp_path_factory.mktemp("by_tasks"))
    try:
        with daemon.client() as http:
            completed = [start(http, "rd_add", {"a": i, "b": 1}) for i in range(3)]
            failed = [
                start(http, "rd_add", {"a": "x", "b": 1}, correlationId="bad") for _ in range(2)
            ]
            waiting = [start(http, "rd_wait", {"n": i}) for i in range(2)]
            wait_status(http, completed, {"COMPLETED"})
            wait_status(http, failed, {"FAILED"})
            wait_status(http, waiting, {"RUNNING"})
            yield Population(http, completed, failed, waiting)
    finally:
        daemon.kill()


def search(pop: Population, path: str = BY_TASKS, **params: Any) -> dict[str, Any]:
    resp = pop.http.get(path, params=params)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def found(pop: Population, **params: Any) -> set[str]:
    body = search(pop, size=1000, **params)
    ids = [r["workflowId"] for r in body["results"]]
    assert body["totalHits"] == len(ids)
    assert len(set(ids)) == len(ids), "an execution appears once however many tasks match"
    return set(ids)


def test_found_by_task_fields(pop: Population) -> None:
    assert found(pop, query="taskDefName = it_add AND status = FAILED") == set(pop.failed)
    assert found(pop, query="taskType = it_add AND status = COMPLETED") == set(pop.completed)
    assert found(pop, query="taskType = WAIT") == set(pop.waiting)
    assert found(pop, query="status IN (IN_PROGRESS, SCHEDULED)") == set(pop.waiting)
    assert found(pop, query="referenceTaskName = gate") == set(pop.waiting)
    assert found(pop, query="taskDefName IN (it_add, wait)") == pop.adds | set(pop.waiting)
    assert found(pop, query="taskDefName != it_add") == set(pop.waiting)
    assert found(pop, query="status != COMPLETED") == set(pop.failed + pop.waiting)
    # Conductor reports a SIMPLE task under its definition name
    assert found(pop, query="taskType = SIMPLE") == set()
    assert found(pop, query="taskDefName = no_such_task") == set()
    assert found(pop) == pop.adds | set(pop.waiting)  # no condition: every execution


def test_found_by_task_id(pop: Population) -> None:
    wf = pop.http.get(f"/api/workflow/{pop.failed[1]}").json()
    [task] = wf["tasks"]
    assert found(pop, query=f"taskId = '{task['taskId']}'") == {pop.failed[1]}
    assert found(pop, query=f"taskId = '{task['taskId']}' AND status = COMPLETED") == set()


def test_execution_and_task_conditions_combine(pop: Population) -> None:
    assert found(pop, query="workflowType = rd_add AND status = FAILED") == set(pop.failed)
    assert found(pop, query="correlationId = bad AND status = COMPLETED") == set()
    assert found(pop, query=f"workflowId = {pop.completed[0]} AND taskType = it_add") == {
        pop.completed[0]
    }
    # the conditions hold for one task: no task is both a WAIT and FAILED
    assert found(pop, query="taskType = WAIT AND status = FAILED") == set()


def test_free_text_over_tasks(pop: Population) -> None:
    assert found(pop, freeText="gate") == set(pop.waiting)
    assert found(pop, freeText="IT_ADD") == pop.adds  # case-insensitive
    assert found(pop, freeText="*it_add* add") == pop.adds
    assert found(pop, freeText="it_add", query="status = FAILED") == set(pop.failed)
    assert found(pop, freeText="gate it_add") == set()  # every term in one task
    assert found(pop, freeText="*") == pop.adds | set(pop.waiting)


def test_paging_and_sort_as_search(pop: Population) -> None:
    query = "taskType IN (it_add, WAIT)"
    full = search(pop, query=query, sort="startTime:ASC", size=100)
    ids = [r["workflowId"] for r in full["results"]]
    assert full["totalHits"] == 7 and len(ids) == 7
    pages: list[str] = []
    for start_at in range(0, 8, 3):
        page = search(pop, query=query, sort="startTime:ASC", start=start_at, size=3)
        assert page["totalHits"] == 7
        pages += [r["workflowId"] for r in page["results"]]
    assert pages == ids
    desc = search(pop, query=query, sort="startTime:DESC")["results"]
    assert [r["workflowId"] for r in desc] == ids[::-1]
    assert search(pop, query=query, size=0) == {"totalHits": 7, "results": []}


def test_summary_and_v2_shapes_match_search(pop: Population) -> None:
    by_tasks = search(pop, query="status = FAILED", sort="workflowId")
    plain = search(
        pop, "/api/workflow/search", query="status = FAILED", sort="workflowId"
    )  # the executions' status: the same two here
    assert by_tasks == plain
    assert by_tasks["results"][0]["failedReferenceTaskNames"] == "add"
    v2 = search(pop, f"{BY_TASKS}-v2", query="referenceTaskName = gate", sort="workflowId")
    assert v2["totalHits"] == 2
    assert [w["workflowId"] for w in v2["results"]] == sorted(pop.waiting)
    assert all(w["status"] == "RUNNING" and not w.get("tasks") for w in v2["results"])


@pytest.mark.parametrize(
    ("params", "path", "fragment"),
    [
        ({"query": "bogus = 1"}, "query", "at position 0: unknown field 'bogus'; known fields:"),
        ({"query": "status = RUNNING"}, "query", "at position 9: 'RUNNING' is not a task status"),
        ({"query": "taskType > WAIT"}, "query", "at position 9: taskType supports =, != and IN"),
        ({"query": "taskId IN ()"}, "query", "at position 11: expected a value for taskId"),
        ({"query": "taskType = WAIT OR taskType = X"}, "query", "OR is not supported"),
        ({"query": "taskDefName = 'open"}, "query", "unterminated quoted value"),
        ({"size": "1001"}, "size", "between 0 and 1000"),
        ({"start": "-1"}, "start", "between 0"),
        ({"sort": "taskType:DESC"}, "sort", "cannot sort by 'taskType'"),
        ({"freeText": "x" * 300}, "freeText", "longer than 256"),
    ],
)
def test_bad_queries_are_400s(
    pop: Population, params: dict[str, str], path: str, fragment: str
) -> None:
    for route in (BY_TASKS, f"{BY_TASKS}-v2", TASKS, f"{TASKS}-v2"):
        resp = pop.http.get(route, params=params)
        assert resp.status_code == 400, resp.text
        faults = resp.json()["validationErrors"]
        assert any(f["path"] == path and fragment in f["message"] for f in faults), faults
    assert search(pop, query="taskType = WAIT")["totalHits"] == 2  # still serving


def test_plain_search_knows_no_task_fields(pop: Population) -> None:
    resp = pop.http.get("/api/workflow/search", params={"query": "taskType = WAIT"})
    assert resp.status_code == 400
    assert "unknown field 'taskType'" in resp.text


# -- /api/tasks/search ---------------------------------------------------------


def test_task_search_finds_tasks(pop: Population) -> None:
    body = search(pop, TASKS, query="taskDefName = it_add AND status = FAILED")
    assert body["totalHits"] == 2
    assert {t["workflowId"] for t in body["results"]} == set(pop.failed)
    for summary in body["results"]:
        assert summary["taskDefName"] == summary["taskType"] == "it_add"
        assert summary["status"] == "FAILED" and summary["reasonForIncompletion"]
        assert summary["workflowType"] == "rd_add" and summary["correlationId"] == "bad"
        assert json.loads(summary["input"]) == {"a": "x", "b": 1}
        for key in ("scheduledTime", "updateTime", "endTime"):
            assert TIME.match(summary[key]), summary[key]
        assert summary["executionTime"] >= 0 and summary["queueWaitTime"] >= 0
    waiting = search(pop, TASKS, query="taskType = WAIT", freeText="gate")["results"]
    assert {t["workflowId"] for t in waiting} == set(pop.waiting)
    assert all(t["status"] == "IN_PROGRESS" and t["endTime"] is None for t in waiting)
    assert search(pop, TASKS)["totalHits"] == 7  # one task per execution here


def test_task_search_paging_and_v2_match_get_task(pop: Population) -> None:
    full = search(pop, TASKS, sort="startTime:ASC")["results"]
    pages: list[dict[str, Any]] = []
    for start_at in range(0, 8, 2):
        pages += search(pop, TASKS, sort="startTime:ASC", start=start_at, size=2)["results"]
    assert pages == full
    v2 = search(pop, f"{TASKS}-v2", query="status = COMPLETED", sort="workflowId")["results"]
    assert [t["workflowInstanceId"] for t in v2] == sorted(pop.completed)
    for task in v2:
        assert task == pop.http.get(f"/api/tasks/{task['taskId']}").json()
