"""Numbers too big for the journal's 64-bit integers, against a real `edged run`.

Each used to reach SQLite and fail the group commit it joined (503, the
daemon unhealthy until the next good commit, and every other request in that
commit failed with it).  Request fields are now bounded (400 naming the
field); values computed at run time (a WAIT wired from input) are stored as
"never" by the journal.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from read_daemon import make_daemon, start, wait_status

HUGE = 10**30
WAIT_DEF = [{"name": "w", "taskReferenceName": "w", "type": "WAIT"}]


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    daemon = make_daemon(tmp_path_factory.mktemp("numbers"))
    try:
        with daemon.client() as client:
            yield client
        assert "handler failed" not in daemon.output()
    finally:
        daemon.kill()


def assert_healthy(http: httpx.Client) -> None:
    assert http.get("/health").json()["healthy"] is True
    assert http.get("/health/ready").status_code == 200


@pytest.mark.parametrize(
    ("path", "body", "fault"),
    [
        ("/api/workflow", {"name": "rd_wait", "version": HUGE}, "version"),
        ("/api/workflow", {"name": "x", "workflowDef": {"name": "x", "version": HUGE, "tasks": WAIT_DEF}}, "version"),
        ("/api/workflow", {"name": "x", "workflowDef": {"name": "x", "timeoutSeconds": HUGE, "tasks": WAIT_DEF}}, "timeoutSeconds"),
        ("/api/metadata/workflow", {"name": "big", "version": 2**63, "tasks": WAIT_DEF}, "version"),
        ("/api/metadata/taskdefs", [{"name": "td", "responseTimeoutSeconds": HUGE}], "responseTimeoutSeconds"),
    ],
)  # fmt: skip
def test_oversized_request_numbers_are_400s(
    http: httpx.Client, path: str, body: Any, fault: str
) -> None:
    resp = http.post(path, json=body)
    assert resp.status_code == 400, resp.text
    assert fault in resp.text
    assert_healthy(http)


def test_oversized_callback_is_a_400(http: httpx.Client) -> None:
    resp = http.post("/api/workflow", json={"name": "rd_sleep", "input": {"duration": "1 days"}})
    workflow_id = resp.text
    wait_status(http, [workflow_id], {"RUNNING"})
    task_id = http.get(f"/api/workflow/{workflow_id}").json()["tasks"][0]["taskId"]
    result = {"workflowInstanceId": workflow_id, "taskId": task_id, "status": "IN_PROGRESS"}
    resp = http.post("/api/tasks", json={**result, "callbackAfterSeconds": HUGE})
    assert resp.status_code == 400, resp.text
    assert resp.json()["validationErrors"][0]["path"] == "callbackAfterSeconds"
    assert_healthy(http)


@pytest.mark.parametrize("duration", ["999999999999999 days", "99999999999999999999999 seconds"])
def test_a_wait_past_the_end_of_time_waits(http: httpx.Client, duration: str) -> None:
    workflow_id = start(http, "rd_sleep", {"duration": duration})
    wait_status(http, [workflow_id], {"RUNNING"})
    assert http.get(f"/api/workflow/{workflow_id}").json()["tasks"][0]["status"] == "IN_PROGRESS"
    assert_healthy(http)
    assert start(http, "rd_wait", {"after": duration})
