"""Bulk pause/resume/terminate/retry/restart against a real `edged run`: partial failures, caps.

Each test starts its own executions on a daemon shared by the module and
checks both the BulkResponse and the executions' states afterwards (so a
"success" that did nothing would fail).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from read_daemon import make_daemon, start, wait_status

from edged.api.bulk_api import MAX_BULK_IDS


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    daemon = make_daemon(tmp_path_factory.mktemp("bulk"))
    try:
        with daemon.client(timeout_s=10) as client:
            yield client
    finally:
        daemon.kill()


def status_of(http: httpx.Client, workflow_id: str) -> str:
    doc = http.get(f"/api/workflow/{workflow_id}", params={"includeTasks": "false"}).json()
    return str(doc["status"])


def bulk(http: httpx.Client, method: str, action: str, ids: list[str], **params: Any) -> Any:
    resp = http.request(method, f"/api/workflow/bulk/{action}", json=ids, params=params)
    assert resp.status_code == 200, resp.text
    return resp.json()


def waiting(http: httpx.Client, n: int) -> list[str]:
    ids = [start(http, "rd_wait", {"i": i}) for i in range(n)]
    wait_status(http, ids, {"RUNNING"})
    return ids


def test_pause_and_resume_with_partial_failures(http: httpx.Client) -> None:
    a, b, c = waiting(http, 3)
    got = bulk(http, "PUT", "pause", [a, "no-such-workflow", b, a])
    assert got["bulkSuccessfulResults"] == [a, b]  # request order, duplicate acted on once
    assert list(got["bulkErrorResults"]) == ["no-such-workflow"]
    assert "no-such-workflow" in got["bulkErrorResults"]["no-such-workflow"]
    assert [status_of(http, w) for w in (a, b, c)] == ["PAUSED", "PAUSED", "RUNNING"]
    got = bulk(http, "PUT", "resume", [a, b, c])
    assert got["bulkSuccessfulResults"] == [a, b]
    assert "not PAUSED" in got["bulkErrorResults"][c]
    assert [status_of(http, w) for w in (a, b, c)] == ["RUNNING"] * 3


def test_terminate_with_reason(http: httpx.Client) -> None:
    a, b = waiting(http, 2)
    got = bulk(http, "POST", "terminate", [a, b], reason="maintenance window")
    # exactly Conductor's JSON (its BulkResponse.message has no getter, so Jackson omits it)
    assert got == {"bulkErrorResults": {}, "bulkSuccessfulResults": [a, b]}
    for w in (a, b):
        doc = http.get(f"/api/workflow/{w}").json()
        assert doc["status"] == "TERMINATED"
        assert doc["reasonForIncompletion"] == "maintenance window"
    again = bulk(http, "POST", "terminate", [a])
    assert (
        again["bulkSuccessfulResults"] == []
        and "already TERMINATED" in again["bulkErrorResults"][a]
    )


def test_retry_and_restart(http: httpx.Client) -> None:
    failed = start(http, "rd_add", {"a": "x", "b": 1})
    completed = start(http, "rd_add", {"a": 1, "b": 2})
    [running] = waiting(http, 1)
    wait_status(http, [failed], {"FAILED"})
    wait_status(http, [completed], {"COMPLETED"})
    got = bulk(http, "POST", "retry", [failed, completed, running])
    assert got["bulkSuccessfulResults"] == [failed]
    assert "still RUNNING" in got["bulkErrorResults"][running]
    assert "no retryable tasks" in got["bulkErrorResults"][completed]
    wait_status(http, [failed], {"FAILED"})  # ran its task again, which fails again
    tasks = http.get(f"/api/workflow/{failed}").json()["tasks"]
    assert len(tasks) == 2 and tasks[0]["taskId"] != tasks[1]["taskId"]
    got = bulk(http, "POST", "restart", [completed, running], useLatestDefinitions="true")
    assert got["bulkSuccessfulResults"] == [completed]
    assert "cannot restart" in got["bulkErrorResults"][running]
    wait_status(http, [completed], {"COMPLETED"})
    bad = http.post(
        "/api/workflow/bulk/restart", json=[completed], params={"useLatestDefinitions": "maybe"}
    )
    assert bad.status_code == 400


def test_many_ids_at_once(http: httpx.Client) -> None:
    ids = waiting(http, 40)
    got = bulk(http, "PUT", "pause", ids)
    assert got["bulkSuccessfulResults"] == ids and got["bulkErrorResults"] == {}
    assert {status_of(http, w) for w in ids} == {"PAUSED"}
    got = bulk(http, "POST", "terminate", ids)
    assert got["bulkSuccessfulResults"] == ids


@pytest.mark.parametrize(
    "body",
    [
        json.dumps(["x"] * (MAX_BULK_IDS + 1)),
        json.dumps({"workflowIds": ["a"]}),
        json.dumps(["ok", 7, None]),
        json.dumps([""]),
        json.dumps(["y" * 2000]),
        "[not json",
        "",
    ],
)
def test_bad_bodies_are_400s_and_change_nothing(http: httpx.Client, body: str) -> None:
    [w] = waiting(http, 1)
    for method, action in [("PUT", "pause"), ("POST", "terminate"), ("POST", "retry")]:
        resp = http.request(
            method,
            f"/api/workflow/bulk/{action}",
            content=body.replace('"x"', json.dumps(w)),
            headers={"content-type": "application/json"},
        )
        assert resp.status_code == 400, resp.text
        assert resp.json()["status"] == 400
    assert status_of(http, w) == "RUNNING"


def test_over_cap_message_is_conductors(http: httpx.Client) -> None:
    resp = http.post("/api/workflow/bulk/terminate", json=[f"id-{i}" for i in range(1001)])
    assert resp.status_code == 400
    [fault] = resp.json()["validationErrors"]
    assert (
        fault["message"] == "Cannot process more than 1000 workflows. Please use multiple requests."
    )
    exactly = bulk(http, "POST", "terminate", [f"id-{i}" for i in range(MAX_BULK_IDS)])
    assert len(exactly["bulkErrorResults"]) == MAX_BULK_IDS  # at the cap: processed, all unknown
