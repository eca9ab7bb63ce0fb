"""Bad input against a real daemon: every answer is 2xx or 4xx with Conductor's error JSON.

Hypothesis drives a few hundred requests through one live `edged run`
(conftest.daemon_url): mutated and arbitrary definitions, garbage and
non-UTF-8 bodies, deep nesting, large strings under the body limit, random
start, task-update and signal bodies.  Each request is bounded by a client
timeout (a hang fails the test).  Afterwards the daemon must still register
a normal definition and run a workflow to COMPLETED, and the fixture checks
that SIGTERM ends it with exit code 0.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

TIMEOUT_S = 5
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))

VALID_DEF: dict[str, Any] = {
    "name": "fuzz_ok",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [
        {
            "name": "s",
            "taskReferenceName": "s",
            "type": "SET_VARIABLE",
            "inputParameters": {"v": "${workflow.input.v}"},
        },
        {
            "name": "i",
            "taskReferenceName": "i",
            "type": "INLINE",
            "inputParameters": {
                "evaluatorType": "javascript",
                "expression": "$.v + 1",
                "v": "${workflow.input.v}",
            },
        },
    ],
    "outputParameters": {"r": "${i.output.result}"},
}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4),
    max_leaves=15,
)


@st.composite
def mutated_definitions(draw: st.DrawFn) -> Any:
    doc = json.loads(json.dumps(VALID_DEF))
    # the dicts to mutate are taken before mutating, so a removed "tasks" is fine
    targets = [doc, doc["tasks"][0], doc["tasks"][1], doc["tasks"][1]["inputParameters"]]
    for _ in range(draw(st.integers(1, 3))):
        target = draw(st.sampled_from(targets))
        key = draw(st.sampled_from([*target.keys(), "extra"]))
        if draw(st.booleans()):
            target.pop(key, None)
        else:
            target[key] = draw(json_values)
    return doc


def bodies() -> st.SearchStrategy[bytes]:
    as_json = st.one_of(mutated_definitions(), json_values).map(lambda v: json.dumps(v).encode())
    return st.one_of(
        as_json,
        as_json,
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.sampled_from([b"name: x\ntasks: [", b"- - - :", b"{", b"\xff\xfe\x00", b"[]", b"null"]),
        st.integers(100, 20_000).map(lambda n: b"[" * n + b"]" * n),
        st.integers(1, 600_000).map(lambda n: json.dumps({"name": "x" * n}).encode()),
    )


def check(response: httpx.Response) -> None:
    assert response.status_code < 500, f"{response.status_code}: {response.text[:500]}"
    if response.status_code >= 400:
        body = response.json()
        assert isinstance(body.get("message"), str) and body["message"], body


@pytest.fixture(scope="module")
def client(daemon_url: str) -> Any:
    with httpx.Client(base_url=daemon_url, timeout=TIMEOUT_S) as c:
        yield c


@FUZZ
@given(method=st.sampled_from(["POST", "PUT"]), body=bodies(), as_list=st.booleans())
def test_definition_endpoints_answer_4xx_never_5xx(
    client: httpx.Client, method: str, body: bytes, as_list: bool
) -> None:
    if as_list and body.startswith(b"{"):
        body = b"[" + body + b"]"
    check(
        client.request(
            method,
            "/api/metadata/workflow",
            content=body,
            headers={"content-type": "application/json"},
        )
    )


@FUZZ
@given(
    route=st.sampled_from(
        [
            "/api/workflow",
            "/api/workflow/fuzz_ok",
            "/api/workflow/no_such_wf",
            "/api/tasks",
            "/api/tasks/nope/COMPLETED/signal",
            "/api/tasks/nope/t/COMPLETED",
        ]
    ),
    body=st.one_of(
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=100),
        st.fixed_dictionaries(
            {
                "name": st.sampled_from(["fuzz_ok", "nope", ""]),
                "idempotencyKey": json_values,
                "idempotencyStrategy": json_values,
                "input": json_values,
            }
        ).map(lambda v: json.dumps(v).encode()),
    ),
)
def test_start_task_and_signal_bodies_answer_4xx_never_5xx(
    client: httpx.Client, route: str, body: bytes
) -> None:
    check(client.post(route, content=body, headers={"content-type": "application/json"}))


def test_oversized_body_is_413(client: httpx.Client) -> None:
    response = client.post(
        "/api/metadata/workflow",
        content=b" " * (2 * 1024 * 1024),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413
    assert response.json()["message"]


def test_twenty_faults_are_all_reported_with_paths(client: httpx.Client) -> None:
    tasks = [{"name": f"t{i}", "taskReferenceName": f"t{i}", "type": "HTTTP"} for i in range(20)]
    response = client.post("/api/metadata/workflow", json={"name": "bad", "tasks": tasks})
    assert response.status_code == 400
    errors = response.json()["validationErrors"]
    paths = {e["path"] for e in errors}
    assert all(any(p.startswith(f"tasks[{i}]") for p in paths) for i in range(20)), errors


def test_daemon_still_serves_after_the_fuzzing(client: httpx.Client) -> None:
    """Runs last in the module (pytest keeps file order)."""
    assert client.get("/health").status_code == 200
    response = client.put("/api/metadata/workflow", json=[VALID_DEF])
    assert response.status_code < 300, response.text
    # version pinned: the fuzzing may have registered mutated fuzz_ok versions above 1
    started = client.post("/api/workflow/fuzz_ok?version=1", json={"v": 41})
    assert started.status_code == 200, started.text
    workflow_id = started.text.strip('"')
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        doc = client.get(f"/api/workflow/{workflow_id}").json()
        if doc["status"] != "RUNNING":
            break
        time.sleep(0.05)
    assert doc["status"] == "COMPLETED", doc
    assert doc["output"] == {"r": 42}
