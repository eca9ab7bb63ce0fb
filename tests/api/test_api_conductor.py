"""Conductor's REST routes over real loopback HTTP: status codes, media types, shapes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio
from api_fakes import FakeEngine

from edged.errors import BadInput, Conflict, EdgedError, JournalError, JournalFull, NotFound

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
LIMIT_S = 10

WF_DEF = {"name": "freezer_alarm", "version": 1, "tasks": [{"name": "w", "type": "WAIT"}]}


def assert_error(resp: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == JSON
    body: dict[str, Any] = resp.json()
    assert body["status"] == status
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["retryable"], bool)
    assert isinstance(body["validationErrors"], list)
    assert "Traceback" not in resp.text
    return body


def assert_empty(resp: httpx.Response, status: int = 200) -> None:
    assert resp.status_code == status, resp.text
    assert resp.content == b""
    assert "content-type" not in resp.headers


async def started(client: httpx.AsyncClient, **query: str) -> str:
    assert (await client.post("/api/metadata/workflow", json=WF_DEF)).status_code == 200
    resp = await client.post("/api/workflow/freezer_alarm", json={"temp": -12}, params=query)
    assert resp.status_code == 200
    return resp.text


# -- health and metadata ------------------------------------------------------


async def test_health_reports_engine_health(
    conductor: httpx.AsyncClient, engine: FakeEngine
) -> None:
    with trio.fail_after(LIMIT_S):
        resp = await conductor.get("/health")
        assert (resp.status_code, resp.headers["content-type"], resp.json()) == (
            200,
            JSON,
            {"healthy": True},
        )
        engine.healthy = False
        resp = await conductor.get("/health")
        assert (resp.status_code, resp.json()) == (503, {"healthy": False})


async def test_workflow_def_lifecycle(conductor: httpx.AsyncClient, engine: FakeEngine) -> None:
    with trio.fail_after(LIMIT_S):
        assert_empty(await conductor.post("/api/metadata/workflow", json=WF_DEF))
        assert engine.last_call("register_workflow_defs") == ([WF_DEF], False)
        # Conductor: registering an existing (name, version) again is a conflict.
        assert_error(await conductor.post("/api/metadata/workflow", json=WF_DEF), 409, "CONFLICT")
        assert_empty(
            await conductor.post(
                "/api/metadata/workflow", json=WF_DEF, params={"overwrite": "true"}
            )
        )
        v2 = {**WF_DEF, "version": 2}
        assert_empty(await conductor.put("/api/metadata/workflow", json=[v2]))
        assert engine.last_call("register_workflow_defs") == ([v2], True)

        resp = await conductor.get("/api/metadata/workflow/freezer_alarm")
        assert (resp.status_code, resp.headers["content-type"]) == (200, JSON)
        assert resp.json()["version"] == 2
        resp = await conductor.get("/api/metadata/workflow/freezer_alarm", params={"version": 1})
        assert resp.json()["version"] == 1
        assert engine.last_call("get_workflow_def") == ("freezer_alarm", 1)
        resp = await conductor.get("/api/metadata/workflow")
        assert sorted(d["version"] for d in resp.json()) == [1, 2]

        assert_empty(await conductor.delete("/api/metadata/workflow/freezer_alarm/1"))
        assert engine.last_call("delete_workflow_def") == ("freezer_alarm", 1)
        assert_error(
            await conductor.get("/api/metadata/workflow/freezer_alarm", params={"version": 1}),
            404,
            "NOT_FOUND",
        )
        body = assert_error(
            await conductor.delete("/api/metadata/workflow/freezer_alarm/one"), 400, "INVALID_INPUT"
        )
        assert body["validationErrors"][0]["path"] == "version"


async def test_workflow_def_bodies_are_checked(conductor: httpx.AsyncClient) -> None:
    with trio.fail_after(LIMIT_S):
        body = assert_error(
            await conductor.post("/api/metadata/workflow", json=[WF_DEF]), 400, "INVALID_INPUT"
        )
        assert body["validationErrors"] == [
            {"path": "body", "message": "must be a JSON object, not an array"}
        ]
        body = assert_error(
            await conductor.put("/api/metadata/workflow", json=[WF_DEF, 3]), 400, "INVALID_INPUT"
        )
        assert body["validationErrors"][0]["path"] == "[1]"
        # The engine's own faults travel as validationErrors, paths intact.
        body = assert_error(
            await conductor.put("/api/metadata/workflow", json=[{"version": "x"}]),
            400,
            "INVALID_INPUT",
        )
        assert {e["path"] for e in body["validationErrors"]} == {"[0].name", "[0].version"}
        assert body["message"] == "Validation failed, check below errors for detail."


async def test_task_def_lifecycle(conductor: httpx.AsyncClient, engine: FakeEngine) -> None:
    with trio.fail_after(LIMIT_S):
        defs = [{"name": "snapshot", "retryCount": 2}, {"name": "publish"}]
        assert_empty(await conductor.post("/api/metadata/taskdefs", json=defs))
        assert_empty(
            await conductor.put("/api/metadata/taskdefs", json={"name": "publish", "x": 1})
        )
        assert engine.last_call("register_task_defs") == ([{"name": "publish", "x": 1}],)
        resp = await conductor.get("/api/metadata/taskdefs")
        assert (resp.status_code, resp.headers["content-type"]) == (200, JSON)
        assert {d["name"] for d in resp.json()} == {"snapshot", "publish"}
        resp = await conductor.get("/api/metadata/taskdefs/snapshot")
        assert resp.json() == {"name": "snapshot", "retryCount": 2}
        assert_empty(await conductor.delete("/api/metadata/taskdefs/snapshot"))
        assert_error(await conductor.get("/api/metadata/taskdefs/snapshot"), 404, "NOT_FOUND")
        assert_error(
            await conductor.post("/api/metadata/taskdefs", json={"name": "x"}), 400, "INVALID_INPUT"
        )


# -- workflows --------------------------------------------------------------------


async def test_start_by_name_folds_path_and_query(
    conductor: httpx.AsyncClient, engine: FakeEngine
) -> None:
    with trio.fail_after(LIMIT_S):
        workflow_id = await started(conductor, version="1", correlationId="door-7", priority="5")
        assert workflow_id == "wf-1"
        assert engine.last_call("start_workflow") == (
            {
                "name": "freezer_alarm",
                "version": 1,
                "correlationId": "door-7",
                "input": {"temp": -12},
                "taskToDomain": {},
                "workflowDef": None,
                "priority": 5,
                "idempotencyKey": None,
                "idempotencyStrategy": None,
            },
        )
        resp = await conductor.post("/api/workflow/freezer_alarm", content=b"")
        assert (resp.status_code, resp.headers["content-type"]) == (200, TEXT)
        assert engine.last_call("start_workflow")[0]["input"] == {}
        body = assert_error(
            await conductor.post(
                "/api/workflow/freezer_alarm", json={}, params={"priority": "100"}
            ),
            400,
            "INVALID_INPUT",
        )
        assert body["validationErrors"] == [
            {"path": "priority", "message": "priority: 100 should be maximum 99"}
        ]
        assert_error(await conductor.post("/api/workflow/nope", json={}), 404, "NOT_FOUND")


async def test_start_with_request_body(conductor: httpx.AsyncClient, engine: FakeEngine) -> None:
    with trio.fail_after(LIMIT_S):
        request = {
            "name": "inline",
            "workflowDef": WF_DEF,
            "input": {"a": [1, 2]},
            "taskToDomain": {"*": "edge"},
            "priority": 99,
            "idempotencyKey": "evt-1",
            "idempotencyStrategy": "RETURN_EXISTING",
            "unknownField": "dropped",
        }
        resp = await conductor.post("/api/workflow", json=request)
        assert (resp.status_code, resp.headers["content-type"], resp.text) == (200, TEXT, "wf-1")
        (normalized,) = engine.last_call("start_workflow")
        assert "unknownField" not in normalized
        assert normalized["version"] is None and normalized["correlationId"] is None
        assert normalized["idempotencyStrategy"] == "RETURN_EXISTING"

        bad = {
            "version": "1",
            "input": [],
            "taskToDomain": {"a": 1},
            "priority": -1,
            "idempotencyStrategy": "MAYBE",
        }
        body = assert_error(await conductor.post("/api/workflow", json=bad), 400, "INVALID_INPUT")
        assert {e["path"] for e in body["validationErrors"]} == {
            "name",
            "version",
            "input",
            "taskToDomain.a",
            "priority",
            "idempotencyStrategy",
        }
        assert {"path": "name", "message": "Workflow name cannot be null or empty"} in body[
            "validationErrors"
        ]


async def test_get_workflow_and_correlated(
    conductor: httpx.AsyncClient, engine: FakeEngine
) -> None:
    with trio.fail_after(LIMIT_S):
        workflow_id = await started(conductor, correlationId="c1")
        resp = await conductor.get(f"/api/workflow/{workflow_id}")
        assert (resp.status_code, resp.headers["content-type"]) == (200, JSON)
        assert resp.json()["workflowId"] == workflow_id and resp.json()["tasks"]
        assert engine.last_call("get_workflow") == (workflow_id, True)  # Conductor's default
        resp = await conductor.get(f"/api/workflow/{workflow_id}", params={"includeTasks": "false"})
        assert resp.json()["tasks"] == []
        assert_error(
            await conductor.get(f"/api/workflow/{workflow_id}", params={"includeTasks": "maybe"}),
            400,
            "INVALID_INPUT",
        )
        assert_error(await conductor.get("/api/workflow/wf-404"), 404, "NOT_FOUND")

        resp = await conductor.get("/api/workflow/freezer_alarm/correlated/c1")
        assert [w["workflowId"] for w in resp.json()] == [workflow_id]
        assert engine.last_call("find_correlated") == ("freezer_alarm", "c1", False, False)
        await conductor.get(
            "/api/workflow/freezer_alarm/correlated/c1",
            params={"includeClosed": "TRUE", "includeTasks": "1"},
        )
        assert engine.last_call("find_correlated") == ("freezer_alarm", "c1", True, True)


async def test_workflow_controls(conductor: httpx.AsyncClient, engine: FakeEngine) -> None:
    with trio.fail_after(LIMIT_S):
        workflow_id = await started(conductor)
        base = f"/api/workflow/{workflow_id}"
        assert_empty(await conductor.put(f"{base}/pause"))
        assert_error(await conductor.put(f"{base}/pause"), 409, "CONFLICT")
        assert_empty(await conductor.put(f"{base}/resume"))
        assert_empty(await conductor.post(f"{base}/retry"), 204)
        assert engine.last_call("retry") == (workflow_id, False)
        assert_empty(await conductor.post(f"{base}/retry?resumeSubworkflowTasks=true"), 204)
        assert engine.last_call("retry") == (workflow_id, True)
        assert_empty(await conductor.post(f"{base}/restart?useLatestDefinitions=true"), 204)
        assert engine.last_call("restart") == (workflow_id, True)

        resp = await conductor.post(f"{base}/rerun", json={"reRunFromTaskId": "task-1", "x": 1})
        assert (resp.status_code, resp.headers["content-type"], resp.text) == (
            200,
            TEXT,
            workflow_id,
        )
        assert engine.last_call("rerun") == (
            workflow_id,
            {
                "reRunFromWorkflowId": None,
                "workflowInput": None,
                "reRunFromTaskId": "task-1",
                "taskInput": None,
                "correlationId": None,
            },
        )
        assert_error(
            await conductor.post(f"{base}/rerun", json={"taskInput": 1}), 400, "INVALID_INPUT"
        )

        assert_empty(await conductor.put(f"{base}/skiptask/wait", json={"taskOutput": {"k": 1}}))
        assert engine.last_call("skip_task") == (
            workflow_id,
            "wait",
            {"taskInput": None, "taskOutput": {"k": 1}},
        )
        assert_empty(await conductor.put(f"{base}/skiptask/wait"))  # no body at all is fine

        assert_empty(await conductor.delete(base, params={"reason": "operator said so"}))
        assert engine.last_call("terminate") == (workflow_id, "operator said so")
        assert_empty(await conductor.delete(f"{base}/remove"))
        assert_error(await conductor.put(f"{base}/pause"), 404, "NOT_FOUND")


# -- tasks ----------------------------------------------------------------------


async def test_update_task(conductor: httpx.AsyncClient, engine: FakeEngine) -> None:
    with trio.fail_after(LIMIT_S):
        workflow_id = await started(conductor)
        result = {
            "workflowInstanceId": workflow_id,
            "taskId": "task-1",
            "status": "COMPLETED",
            "outputData": {"door": "open"},
            "logs": ["took a picture", {"log": "sent", "createdTime": 1}],
            "callbackAfterSeconds": 0,
        }
        resp = await conductor.post("/api/tasks", json=result)
        assert (resp.status_code, resp.headers["content-type"], resp.text) == (200, TEXT, "task-1")
        (normalized,) = engine.last_call("update_task")
        assert normalized["logs"] == [{"log": "took a picture"}, {"log": "sent", "createdTime": 1}]
        assert normalized["workerId"] is None and normalized["reasonForIncompletion"] is None

        bad = {"status": "DONE", "outputData": [], "callbackAfterSeconds": -1, "logs": [3]}
        body = assert_error(await conductor.post("/api/tasks", json=bad), 400, "INVALID_INPUT")
        assert {e["path"] for e in body["validationErrors"]} == {
            "workflowInstanceId",
            "taskId",
            "status",
            "outputData",
            "callbackAfterSeconds",
            "logs[0]",
        }
        unknown = {**result, "taskId": "task-404"}
        assert_error(await conductor.post("/api/tasks", json=unknown), 404, "NOT_FOUND")


async def test_get_task(conductor: httpx.AsyncClient) -> None:
    with trio.fail_after(LIMIT_S):
        await started(conductor)
        resp = await conductor.get("/api/tasks/task-1")
        assert (resp.status_code, resp.headers["content-type"]) == (200, JSON)
        assert resp.json()["referenceTaskName"] == "wait"
        # Conductor answers 204 with no body for an unknown task id.
        assert_empty(await conductor.get("/api/tasks/task-404"), 204)


async def test_update_task_by_ref(conductor: httpx.AsyncClient, engine: FakeEngine) -> None:
    with trio.fail_after(LIMIT_S):
        workflow_id = await started(conductor)
        resp = await conductor.post(
            f"/api/tasks/{workflow_id}/wait/COMPLETED", json={"ok": True}, params={"workerid": "w1"}
        )
        assert (resp.status_code, resp.headers["content-type"], resp.text) == (200, TEXT, "task-1")
        assert engine.last_call("complete_task_by_ref") == (
            workflow_id,
            "wait",
            "COMPLETED",
            {"ok": True},
            "w1",
        )
        resp = await conductor.post(f"/api/tasks/{workflow_id}/wait/FAILED/sync", json={})
        assert (resp.status_code, resp.headers["content-type"]) == (200, JSON)
        assert resp.json()["tasks"][0]["status"] == "FAILED"
        body = assert_error(
            await conductor.post(f"/api/tasks/{workflow_id}/wait/SKIPPED", json={}),
            400,
            "INVALID_INPUT",
        )
        assert body["validationErrors"][0]["path"] == "status"
        assert_error(
            await conductor.post(f"/api/tasks/{workflow_id}/nope/COMPLETED"), 404, "NOT_FOUND"
        )


async def test_signal_routes_win_over_task_ref_routes(
    conductor: httpx.AsyncClient, engine: FakeEngine
) -> None:
    with trio.fail_after(LIMIT_S):
        workflow_id = await started(conductor)
        # ".../COMPLETED/signal" also matches {workflowId}/{taskRefName}/{status};
        # the literal segment must win, as in Spring.
        assert_empty(
            await conductor.post(f"/api/tasks/{workflow_id}/COMPLETED/signal", json={"a": 1})
        )
        assert engine.last_call("signal") == (workflow_id, "COMPLETED", {"a": 1})
        assert_error(
            await conductor.post(f"/api/tasks/{workflow_id}/COMPLETED/signal", json={}),
            409,
            "CONFLICT",
        )

        second = (await conductor.post("/api/workflow/freezer_alarm", json={})).text
        resp = await conductor.post(f"/api/tasks/{second}/COMPLETED/signal/sync", json={"b": 2})
        assert (resp.status_code, resp.headers["content-type"]) == (200, JSON)
        assert resp.json()["tasks"][0]["outputData"] == {"b": 2}
        assert_error(
            await conductor.post(
                f"/api/tasks/{second}/COMPLETED/signal/sync",
                params={"returnStrategy": "BLOCKING_TASK"},
            ),
            400,
            "INVALID_INPUT",
        )


# -- errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "status", "code", "retryable"),
    [
        (BadInput("bad"), 400, "INVALID_INPUT", False),
        (NotFound("gone"), 404, "NOT_FOUND", False),
        (Conflict("busy"), 409, "CONFLICT", False),
        (JournalFull("disk full"), 507, "JOURNAL_FULL", False),
        (JournalError("write failed"), 503, "BACKEND_ERROR", True),
        (EdgedError("odd"), 500, "INTERNAL_ERROR", False),
        (KeyError("secret detail"), 500, "INTERNAL_ERROR", False),
    ],
)
async def test_engine_errors_map_to_conductor_error_json(
    conductor: httpx.AsyncClient,
    engine: FakeEngine,
    exc: Exception,
    status: int,
    code: str,
    retryable: bool,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with trio.fail_after(LIMIT_S):
        engine.fail_next = exc
        body = assert_error(await conductor.get("/api/metadata/workflow"), status, code)
        assert body["retryable"] is retryable
        if status == 500:
            assert body["message"] == "internal server error"  # never the details
            assert "secret detail" not in str(body)
            assert any(r.exc_info for r in caplog.records), "the traceback must be logged"
        else:
            assert body["message"] == str(exc)
        # The server keeps answering.
        assert (await conductor.get("/api/metadata/workflow")).status_code == 200


async def test_unknown_paths_and_methods(conductor: httpx.AsyncClient) -> None:
    with trio.fail_after(LIMIT_S):
        assert_error(await conductor.get("/api/nothing/here"), 404, "NOT_FOUND")
        resp = await conductor.post("/api/workflow/wf-1/pause")
        assert_error(resp, 405, "METHOD_NOT_ALLOWED")
        assert resp.headers["allow"] == "PUT"
        resp = await conductor.patch("/api/metadata/workflow")
        assert resp.headers["allow"] == "GET, HEAD, POST, PUT"
