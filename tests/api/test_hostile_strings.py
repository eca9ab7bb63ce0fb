"""Lone surrogates in JSON strings against a real `edged run`: a 400, never a 500 or a sick journal.

JSON allows ``"\\ud800"``; UTF-8 does not, and SQLite's text columns hold
UTF-8.  Before the checks these guard, such a correlation id or definition
name failed the whole group commit (the daemon reported itself unhealthy and
not ready) and such an id in a TaskResult or bulk body was a 500.  Payloads
(input, output) keep lone surrogates: the journal's codec stores them exactly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from read_daemon import make_daemon, start, wait_status

LONE = '"\\ud800x"'  # JSON text of a string holding a lone surrogate


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    daemon = make_daemon(tmp_path_factory.mktemp("hostile"))
    try:
        with daemon.client() as client:
            yield client
        assert "handler failed" not in daemon.output()
    finally:
        daemon.kill()


def post(http: httpx.Client, method: str, path: str, body: str) -> httpx.Response:
    return http.request(method, path, content=body, headers={"content-type": "application/json"})


def assert_healthy(http: httpx.Client) -> None:
    assert http.get("/health").json()["healthy"] is True
    assert http.get("/health/ready").status_code == 200


@pytest.mark.parametrize(
    ("method", "path", "body", "fault_path"),
    [
        ("POST", "/api/workflow", f'{{"name": "rd_wait", "correlationId": {LONE}}}', "correlationId"),
        ("POST", "/api/workflow", f'{{"name": "rd_wait", "idempotencyKey": {LONE}}}', "idempotencyKey"),
        ("POST", "/api/workflow", f'{{"name": {LONE}}}', "name"),
        (
            "POST",
            "/api/workflow",
            f'{{"name": "x", "workflowDef": {{"name": {LONE}, "version": 1, "tasks":'
            ' [{"name": "w", "taskReferenceName": "w", "type": "WAIT"}]}}',
            "name",
        ),
        (
            "POST",
            "/api/metadata/workflow",
            f'{{"name": {LONE}, "version": 1, "tasks":'
            ' [{"name": "w", "taskReferenceName": "w", "type": "WAIT"}]}',
            "name",
        ),
        ("POST", "/api/metadata/taskdefs", f'[{{"name": {LONE}}}]', "name"),
        (
            "POST",
            "/api/tasks",
            f'{{"workflowInstanceId": {LONE}, "taskId": "t", "status": "COMPLETED"}}',
            "workflowInstanceId",
        ),
        ("PUT", "/api/workflow/bulk/pause", f'["ok", {LONE}]', "[1]"),
        ("POST", "/api/workflow/bulk/terminate", f"[{LONE}]", "[0]"),
    ],
)  # fmt: skip
def test_lone_surrogates_in_ids_and_names_are_400s(
    http: httpx.Client, method: str, path: str, body: str, fault_path: str
) -> None:
    resp = post(http, method, path, body)
    assert resp.status_code == 400, resp.text
    faults = resp.json()["validationErrors"]
    assert any(f["path"].endswith(fault_path) for f in faults), faults
    assert_healthy(http)


def test_lone_surrogates_in_payloads_are_kept(http: httpx.Client) -> None:
    resp = post(http, "POST", "/api/workflow", f'{{"name": "rd_wait", "input": {{"k": {LONE}}}}}')
    assert resp.status_code == 200, resp.text
    workflow_id = resp.text
    wait_status(http, [workflow_id], {"RUNNING"})
    doc: dict[str, Any] = http.get(f"/api/workflow/{workflow_id}").json()
    assert doc["input"] == {"k": "\ud800x"}
    found = http.get("/api/workflow/search", params={"query": f"workflowId = {workflow_id}"})
    assert found.status_code == 200 and found.json()["totalHits"] == 1
    assert_healthy(http)
    assert start(http, "rd_wait", {"after": "all that"})  # still starting work


_ANY_CHAR = st.characters(codec=None, exclude_categories=())  # surrogates included
_TEXT = st.text(_ANY_CHAR, max_size=12)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | _TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_TEXT, inner, max_size=4),
    max_leaves=12,
)


def _body_routes(http: httpx.Client, real_id: str) -> list[tuple[str, str, str]]:
    """(method, concrete path, the schema's name for the body) of each route taking JSON."""
    doc = http.get("/api-docs").json()
    routes = []
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            if "requestBody" not in op:
                continue
            concrete = path.replace("{workflowId}", real_id).replace("{status}", "COMPLETED")
            concrete = concrete.replace("{version}", "1")
            concrete = "/".join("x" if p.startswith("{") else p for p in concrete.split("/"))
            routes.append((method.upper(), concrete, json.dumps(op["requestBody"])))
    return routes


def test_hostile_json_bodies_never_5xx(http: httpx.Client) -> None:
    """Arbitrary JSON, surrogates in keys and strings included, to every route with a body,
    plain and wrapped in the fields each body schema names."""
    running = start(http, "rd_wait", {"hostile": True})
    routes = _body_routes(http, running)
    assert len(routes) >= 15
    fields = ["name", "correlationId", "idempotencyKey", "workflowInstanceId", "taskId", "input"]
    failures: list[str] = []

    @settings(max_examples=60, deadline=None, database=None, derandomize=True)
    @given(
        route=st.sampled_from(routes),
        value=_JSON,
        wrap=st.sampled_from([None, *fields]),
    )
    def send(route: tuple[str, str, str], value: Any, wrap: str | None) -> None:
        method, path, _ = route
        body = {wrap: value, "name": "rd_wait", "status": "COMPLETED"} if wrap else value
        resp = post(http, method, path, json.dumps(body, ensure_ascii=True))
        if resp.status_code >= 500:
            failures.append(f"{resp.status_code} {method} {path} {json.dumps(body)[:200]}")

    send()
    assert not failures, "\n".join(failures[:10])
    assert_healthy(http)


def test_lone_surrogate_wired_into_a_column_at_run_time(http: httpx.Client) -> None:
    """Input the API must accept (a payload) becomes a child's correlation id: the child
    starts, the journal keeps writing, the daemon stays healthy."""
    resp = post(
        http, "POST", "/api/workflow", f'{{"name": "rd_starter", "input": {{"corr": {LONE}}}}}'
    )
    assert resp.status_code == 200, resp.text
    wait_status(http, [resp.text], {"COMPLETED"})
    child = http.get(f"/api/workflow/{resp.text}").json()["tasks"][0]["outputData"]["workflowId"]
    wait_status(http, [child], {"RUNNING"})
    # GET shows what is committed, so a search (it reads the journal) finds the child now
    resp = http.get("/api/workflow/search", params={"query": 'correlationId = "\ufffdx"'})
    assert resp.status_code == 200, resp.text
    assert [r["workflowId"] for r in resp.json()["results"]] == [child]
    assert_healthy(http)
    assert start(http, "rd_wait", {"after": "the hostile child"})
