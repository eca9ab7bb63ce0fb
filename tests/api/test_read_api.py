"""Status, running ids and search against a real `edged run` over loopback HTTP.

One daemon per module (start-up is the slow part) with a fixed population,
which no test here changes: six ``rd_add`` executions (four COMPLETED, two
FAILED) and three RUNNING ``rd_wait`` executions.
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

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@dataclass
class Population:
    http: httpx.Client
    completed: list[str]
    failed: list[str]
    waiting: list[str]
    needle: str  # the completed execution whose input holds "Needle-ÄÖ"

    @property
    def all(self) -> list[str]:
        return self.completed + self.failed + self.waiting


@pytest.fixture(scope="module")
def pop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Population]:
    daemon = make_daemon(tmp_path_factory.mktemp("read"))
    try:
        with daemon.client() as http:
            completed = [
                start(
                    http,
                    "rd_add",
                    {"a": i, "b": 10, "note": f"plain {i}"},
                    correlationId=f"corr-{i}",
                )
                for i in range(3)
            ]
            needle = start(http, "rd_add", {"a": 5, "b": 5, "note": "Needle-ÄÖ here"})
            completed.append(needle)
            failed = [
                start(http, "rd_add", {"a": "x", "b": 1}, correlationId="bad") for _ in range(2)
            ]
            waiting = [start(http, "rd_wait", {"n": i}, correlationId=f"w-{i}") for i in range(3)]
            wait_status(http, completed, {"COMPLETED"})
            wait_status(http, failed, {"FAILED"})
            wait_status(http, waiting, {"RUNNING"})
            yield Population(http, completed, failed, waiting, needle)
    finally:
        daemon.kill()


def search(pop: Population, path: str = "/api/workflow/search", **params: Any) -> dict[str, Any]:
    resp = pop.http.get(path, params=params)
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def found(pop: Population, **params: Any) -> set[str]:
    body = search(pop, size=1000, **params)
    ids = [r["workflowId"] for r in body["results"]]
    assert body["totalHits"] == len(ids)
    return set(ids)


# -- status and running -------------------------------------------------------


def test_status_shape_and_flags(pop: Population) -> None:
    wid = pop.completed[1]
    plain = pop.http.get(f"/api/workflow/{wid}/status").json()
    assert plain == {
        "workflowId": wid,
        "correlationId": "corr-1",
        "output": None,
        "variables": None,
        "status": "COMPLETED",
    }
    full = pop.http.get(
        f"/api/workflow/{wid}/status", params={"includeOutput": "true", "includeVariables": "true"}
    ).json()
    assert full["output"] == {"sum": 11} and full["variables"] == {}
    missing = pop.http.get("/api/workflow/no-such-id/status")
    assert missing.status_code == 404 and "no-such-id" in missing.json()["message"]
    bad = pop.http.get(f"/api/workflow/{wid}/status", params={"includeOutput": "perhaps"})
    assert bad.status_code == 400 and bad.json()["validationErrors"][0]["path"] == "includeOutput"


def test_running_ids(pop: Population) -> None:
    assert pop.http.get("/api/workflow/running/rd_wait").json() == pop.waiting  # oldest first
    assert pop.http.get("/api/workflow/running/rd_add").json() == []
    assert pop.http.get("/api/workflow/running/rd_wait", params={"version": 2}).json() == []
    assert pop.http.get("/api/workflow/running/nothing_by_this_name").json() == []
    # with a time window: every execution started in it, whatever its status
    everything = pop.http.get(
        "/api/workflow/running/rd_add", params={"startTime": 1, "endTime": 2**52}
    ).json()
    assert set(everything) == set(pop.completed + pop.failed)
    before = pop.http.get(
        "/api/workflow/running/rd_add", params={"startTime": 1, "endTime": 2}
    ).json()
    assert before == []
    for params in ({"startTime": "yesterday"}, {"endTime": "-5"}, {"version": "1.0"}):
        bad = pop.http.get("/api/workflow/running/rd_add", params=params)
        assert bad.status_code == 400, (params, bad.text)


# -- search: the query language ------------------------------------------------


def test_equality_in_and_inequality(pop: Population) -> None:
    assert found(pop, query="workflowType = rd_add") == set(pop.completed + pop.failed)
    assert found(pop, query="workflowType IN (rd_add, rd_wait)") == set(pop.all)
    assert found(pop, query="status IN (FAILED, RUNNING)") == set(pop.failed + pop.waiting)
    assert found(pop, query="status = COMPLETED AND workflowType = rd_add") == set(pop.completed)
    assert found(pop, query="status != RUNNING") == set(pop.completed + pop.failed)
    assert found(pop, query=f'workflowId = "{pop.failed[0]}"') == {pop.failed[0]}
    assert found(pop, query="correlationId = corr-2") == {pop.completed[2]}
    assert found(pop, query="correlationId = bad AND status = COMPLETED") == set()
    assert found(pop, query="version = 1") == set(pop.all)


def test_time_comparisons(pop: Population) -> None:
    docs = {
        w: pop.http.get(f"/api/workflow/{w}", params={"includeTasks": "false"}).json()
        for w in pop.all
    }
    created = sorted(docs[w]["createTime"] for w in pop.all)
    middle = created[len(created) // 2]
    assert found(pop, query=f"startTime > {middle}") == {
        w for w in pop.all if docs[w]["createTime"] > middle
    }
    assert found(pop, query=f"startTime < {middle}") == {
        w for w in pop.all if docs[w]["createTime"] < middle
    }
    window = f"startTime >= {created[0]} AND startTime <= {created[-1]}"
    assert found(pop, query=window) == set(pop.all)
    assert found(pop, query="endTime > 0") == set(pop.completed + pop.failed)
    assert found(pop, query="updateTime > 2000-01-01T00:00:00Z") == set(pop.all)
    assert found(pop, query="startTime < 2000-01-01") == set()


# -- search: sort, paging, free text, shapes ------------------------------------------


def test_sort_and_paging(pop: Population) -> None:
    ascending = search(pop, sort="startTime:ASC", size=100)["results"]
    times = [r["startTime"] for r in ascending]
    assert times == sorted(times) and len(times) == 9
    descending = search(pop, sort="startTime:DESC", size=100)["results"]
    assert [r["workflowId"] for r in descending] == [r["workflowId"] for r in ascending][::-1]
    by_id = [r["workflowId"] for r in search(pop, sort="workflowId", size=100)["results"]]
    assert by_id == sorted(pop.all)
    pages = [search(pop, sort="status:DESC", start=s, size=4) for s in (0, 4, 8)]
    assert [p["totalHits"] for p in pages] == [9, 9, 9]
    assert [len(p["results"]) for p in pages] == [4, 4, 1]
    ids = [r["workflowId"] for p in pages for r in p["results"]]
    assert sorted(ids) == sorted(pop.all)
    statuses = [r["status"] for p in pages for r in p["results"]]
    assert statuses == sorted(statuses, reverse=True)
    beyond = search(pop, start=50, size=10)
    assert beyond == {"totalHits": 9, "results": []}
    assert search(pop, size=0) == {"totalHits": 9, "results": []}


def test_free_text(pop: Population) -> None:
    assert found(pop, freeText="Needle") == {pop.needle}
    assert found(pop, freeText="needle-äö") == {pop.needle}  # case-insensitive, beyond ASCII
    assert found(pop, freeText="*eedle*") == {pop.needle}  # Elasticsearch-style wildcards
    assert found(pop, freeText="corr-0") == {pop.completed[0]}  # correlation id
    assert found(pop, freeText=pop.waiting[1][:13]) == {pop.waiting[1]}  # workflow id prefix
    assert found(pop, freeText="plain corr-1") == {pop.completed[1]}  # every term must match
    assert found(pop, freeText="no-such-text-anywhere") == set()
    assert found(pop, freeText="*") == set(pop.all)
    assert found(pop, freeText="plain", query="correlationId = corr-2") == {pop.completed[2]}
    paged = search(pop, freeText="plain", sort="startTime:ASC", start=1, size=1)
    assert paged["totalHits"] == 3 and [r["workflowId"] for r in paged["results"]] == [
        pop.completed[1]
    ]


def test_summary_and_v2_shapes(pop: Population) -> None:
    [summary] = search(pop, query=f"workflowId = {pop.completed[2]}")["results"]
    assert summary["workflowType"] == "rd_add" and summary["version"] == 1
    assert summary["status"] == "COMPLETED" and summary["correlationId"] == "corr-2"
    for key in ("startTime", "updateTime", "endTime"):
        assert TIME.match(summary[key]), summary[key]
    assert json.loads(summary["input"]) == {"a": 2, "b": 10, "note": "plain 2"}
    assert json.loads(summary["output"]) == {"sum": 12}
    assert summary["executionTime"] >= 0 and summary["inputSize"] == len(summary["input"])
    [running] = search(pop, query=f"workflowId = {pop.waiting[0]}")["results"]
    assert running["endTime"] is None and running["executionTime"] == 0
    [failed] = search(pop, query=f"workflowId = {pop.failed[0]}")["results"]
    assert failed["failedReferenceTaskNames"] == "add" and failed["reasonForIncompletion"]
    v2 = search(pop, "/api/workflow/search-v2", query="status = FAILED", sort="workflowId")
    assert v2["totalHits"] == 2
    assert [w["workflowId"] for w in v2["results"]] == sorted(pop.failed)
    assert all(w["status"] == "FAILED" and w["input"] == {"a": "x", "b": 1} for w in v2["results"])
    assert all(not w.get("tasks") for w in v2["results"])


@pytest.mark.parametrize(
    ("params", "path", "fragment"),
    [
        ({"query": "workflowType IN (rd_add"}, "query", "at position 23: expected ')'"),
        ({"query": "bogus = 1"}, "query", "at position 0: unknown field 'bogus'"),
        ({"query": "status = DONE"}, "query", "at position 9: 'DONE' is not a workflow status"),
        ({"query": "startTime > tomorrow"}, "query", "at position 12:"),
        ({"query": "status=RUNNING OR status=FAILED"}, "query", "OR is not supported"),
        ({"size": "1001"}, "size", "between 0 and 1000"),
        ({"size": "ten"}, "size", "must be an integer"),
        ({"start": "-1"}, "start", "between 0"),
        ({"sort": "color:DESC"}, "sort", "cannot sort by 'color'"),
        ({"sort": "startTime:UP"}, "sort", "ASC or DESC"),
        ({"freeText": "x" * 300}, "freeText", "longer than 256"),
    ],
)
def test_bad_search_parameters_are_400s(
    pop: Population, params: dict[str, str], path: str, fragment: str
) -> None:
    for route in ("/api/workflow/search", "/api/workflow/search-v2"):
        resp = pop.http.get(route, params=params)
        assert resp.status_code == 400, resp.text
        faults = resp.json()["validationErrors"]
        assert any(f["path"] == path and fragment in f["message"] for f in faults), faults
    assert search(pop, query="status = RUNNING")["totalHits"] == 3  # still serving


def test_metadata_workflow_listing_shape(pop: Population) -> None:
    """Conductor's GET /api/metadata/workflow: a JSON array of WorkflowDef, every version."""
    defs = pop.http.get("/api/metadata/workflow").json()
    assert isinstance(defs, list)
    by_name = {(d["name"], d["version"]): d for d in defs}
    assert {("rd_add", 1), ("rd_wait", 1)} <= set(by_name)
    add = by_name[("rd_add", 1)]
    assert add["tasks"][0]["taskReferenceName"] == "add"
    assert add["outputParameters"] == {"sum": "${add.output.sum}"}
    assert add["schemaVersion"] == 2
