"""The Conductor worker protocol's edges, over raw HTTP against a real `edged run`.

One daemon serves the module (each test registers its own task and workflow
names); the crash test has its own.  Every wait is bounded by trio.fail_after
or an HTTP timeout; time is only ever asserted as a lower bound (a long poll
that answered too early) or with a wide upper bound (a woken long poll that
must not sit out its 5 s).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

import tests.integration.daemon_harness as integration

Json = dict[str, Any]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    base: Path = tmp_path_factory.mktemp("workers")
    d = integration.Daemon(
        data_dir=base / "data",
        defs_dir=integration.write_defs(base / "defs"),
        config=integration.handler_config(base / "edged.yaml"),
    )
    d.start()
    yield d
    d.kill()


@pytest.fixture
async def http(daemon: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=daemon.url, timeout=10) as client:
        yield client


async def register(http: httpx.AsyncClient, name: str, **taskdef: Any) -> str:
    """A one-task workflow `name` whose SIMPLE task `name_t` has `taskdef`; returns the task."""
    task = f"{name}_t"
    td = {"name": task, "retryCount": 0, "responseTimeoutSeconds": 3600, **taskdef}
    resp = await http.post("/api/metadata/taskdefs", json=[td])
    assert resp.status_code == 200, resp.text
    wf = {
        "name": name,
        "version": 1,
        "schemaVersion": 2,
        "tasks": [
            {
                "name": task,
                "taskReferenceName": "t",
                "type": "SIMPLE",
                "inputParameters": {"n": "${workflow.input.n}"},
            }
        ],
        "outputParameters": {"r": "${t.output.r}"},
    }
    resp = await http.post("/api/metadata/workflow", json=wf, params={"overwrite": "true"})
    assert resp.status_code == 200, resp.text
    return task


async def start(http: httpx.AsyncClient, name: str, n: int = 0, **extra: Any) -> str:
    resp = await http.post("/api/workflow", json={"name": name, "input": {"n": n}, **extra})
    assert resp.status_code == 200, resp.text
    return resp.text


async def workflow(http: httpx.AsyncClient, wid: str) -> Json:
    doc: Json = (await http.get(f"/api/workflow/{wid}", params={"includeTasks": "true"})).json()
    return doc


async def poll(http: httpx.AsyncClient, task: str, **params: Any) -> Json | None:
    resp = await http.get(f"/api/tasks/poll/{task}", params={"workerid": "w1", **params})
    if resp.status_code == 204:
        assert resp.content == b""
        return None
    assert resp.status_code == 200, resp.text
    doc: Json = resp.json()
    return doc


async def update(http: httpx.AsyncClient, task: Json, status: str, **fields: Any) -> httpx.Response:
    body = {
        "workflowInstanceId": task["workflowInstanceId"],
        "taskId": task["taskId"],
        "status": status,
        "workerId": "w1",
        **fields,
    }
    return await http.post("/api/tasks", json=body)


async def until(predicate: Any, timeout_s: float = 10.0) -> None:
    with trio.fail_after(timeout_s):
        while not await predicate():  # noqa: ASYNC110 (polls a daemon over HTTP)
            await trio.sleep(0.05)


# ----------------------------------------------------------------- polling


async def test_empty_poll_is_204_and_empty_batch_is_an_empty_list(http: httpx.AsyncClient) -> None:
    task = await register(http, "empty")
    assert await poll(http, task) is None
    began = time.monotonic()
    resp = await http.get(f"/api/tasks/poll/batch/{task}", params={"timeout": 300, "count": 5})
    assert resp.status_code == 200 and resp.json() == []
    assert time.monotonic() - began >= 0.25  # it waited for its timeout


async def test_poll_hands_out_an_in_progress_task_once(http: httpx.AsyncClient) -> None:
    task = await register(http, "once")
    wid = await start(http, "once", 7)
    got = await poll(http, task, workerid="alpha")
    assert got is not None
    assert got["workflowInstanceId"] == wid and got["inputData"] == {"n": 7}
    assert got["status"] == "IN_PROGRESS" and got["pollCount"] == 1
    assert got["workerId"] == "alpha" and got["startTime"] > 0
    assert await poll(http, task) is None  # never handed out twice
    journaled = (await workflow(http, wid))["tasks"][0]
    assert (journaled["status"], journaled["workerId"]) == ("IN_PROGRESS", "alpha")
    assert (await update(http, got, "COMPLETED", outputData={"r": 14})).text == got["taskId"]
    wf = await workflow(http, wid)
    assert (wf["status"], wf["output"]) == ("COMPLETED", {"r": 14})


async def test_batch_poll_is_woken_by_a_new_task(http: httpx.AsyncClient) -> None:
    task = await register(http, "wake")
    got: list[Json] = []

    async def long_poll() -> None:
        resp = await http.get(f"/api/tasks/poll/batch/{task}", params={"timeout": 5000, "count": 3})
        got.extend(resp.json())

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(long_poll)
            await trio.sleep(0.3)
            began = time.monotonic()
            wid = await start(http, "wake")
    assert [t["workflowInstanceId"] for t in got] == [wid]
    assert time.monotonic() - began < 4.0  # woken, not timed out at 5 s


async def test_a_long_poll_held_back_by_concurrent_exec_limit_is_woken_when_a_slot_frees(
    http: httpx.AsyncClient,
) -> None:
    task = await register(http, "limited", concurrentExecLimit=1)
    first_id, second_id = await start(http, "limited", 1), await start(http, "limited", 2)
    first = await poll(http, task)
    assert first is not None and first["workflowInstanceId"] == first_id
    assert await poll(http, task) is None  # the second waits for the slot
    got: list[Json] = []

    async def long_poll() -> None:
        resp = await http.get(f"/api/tasks/poll/batch/{task}", params={"timeout": 5000})
        got.extend(resp.json())

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(long_poll)
            await trio.sleep(0.3)
            began = time.monotonic()
            assert (await update(http, first, "COMPLETED")).status_code == 200
    assert [t["workflowInstanceId"] for t in got] == [second_id]
    assert time.monotonic() - began < 4.0  # woken by the freed slot, not by the timeout


async def test_batch_poll_takes_up_to_count(http: httpx.AsyncClient) -> None:
    task = await register(http, "count")
    ids = [await start(http, "count", n) for n in range(5)]
    resp = await http.get(f"/api/tasks/poll/batch/{task}", params={"count": 3})
    first = [t["workflowInstanceId"] for t in resp.json()]
    assert first == ids[:3]  # FIFO
    resp = await http.get(f"/api/tasks/poll/batch/{task}", params={"count": 10})
    assert [t["workflowInstanceId"] for t in resp.json()] == ids[3:]


@pytest.mark.parametrize(
    ("params", "fault"),
    [
        ({"timeout": 5001}, "Long Poll Timeout value cannot be more than 5 seconds"),
        ({"timeout": -1}, "timeout"),
        ({"count": 0}, "count"),
        ({"count": "many"}, "count"),
        ({"count": 100000}, "count"),
    ],
)
async def test_bad_batch_poll_parameters_are_400(
    http: httpx.AsyncClient, params: Json, fault: str
) -> None:
    resp = await http.get("/api/tasks/poll/batch/anything", params=params)
    assert resp.status_code == 400
    assert fault in resp.text


# ----------------------------------------------------------------- updates


async def test_update_v2_answers_with_the_next_task(http: httpx.AsyncClient) -> None:
    task = await register(http, "v2")
    first_id, second_id = await start(http, "v2", 1), await start(http, "v2", 2)
    first = await poll(http, task)
    assert first is not None and first["workflowInstanceId"] == first_id
    body = {
        "workflowInstanceId": first_id,
        "taskId": first["taskId"],
        "status": "COMPLETED",
        "outputData": {"r": 2},
        "workerId": "w1",
    }
    resp = await http.post("/api/tasks/update-v2", json=body)
    assert resp.status_code == 200
    nxt = resp.json()
    assert nxt["workflowInstanceId"] == second_id and nxt["status"] == "IN_PROGRESS"
    body = {**body, "workflowInstanceId": second_id, "taskId": nxt["taskId"]}
    resp = await http.post("/api/tasks/update-v2", json=body)
    assert resp.status_code == 204 and resp.content == b""  # nothing queued
    assert (await workflow(http, second_id))["status"] == "COMPLETED"


async def test_update_of_unknown_task_or_workflow_is_404(http: httpx.AsyncClient) -> None:
    await register(http, "unknown")
    wid = await start(http, "unknown")
    fake = {"workflowInstanceId": wid, "taskId": "no-such-task"}
    assert (await update(http, fake, "COMPLETED")).status_code == 404
    fake = {"workflowInstanceId": "no-such-workflow", "taskId": "x"}
    assert (await update(http, fake, "COMPLETED")).status_code == 404


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'{"taskId": "x", "status": "COMPLETED"}',
        b'{"workflowInstanceId": "w", "taskId": "x", "status": "DONE"}',
        b'{"workflowInstanceId": "w", "taskId": "x", "status": "COMPLETED", "outputData": 3}',
        b'{"workflowInstanceId": "w", "taskId": "x", "status": "IN_PROGRESS", "extendLease": "y"}',
        b'{"workflowInstanceId": "w", "taskId": "x", "status": "COMPLETED", "callbackAfterSeconds": -1}',
    ],
)
async def test_bad_task_results_are_400_and_the_daemon_keeps_serving(
    http: httpx.AsyncClient, body: bytes
) -> None:
    for path in ("/api/tasks", "/api/tasks/update-v2"):
        resp = await http.post(path, content=body, headers={"content-type": "application/json"})
        assert resp.status_code == 400, (path, resp.text)
        assert resp.json()["code"] == "INVALID_INPUT"
    assert (await http.get("/health")).status_code == 200


async def test_a_late_result_for_an_ended_task_is_acknowledged_and_ignored(
    http: httpx.AsyncClient,
) -> None:
    task = await register(http, "late")
    wid = await start(http, "late")
    got = await poll(http, task)
    assert got is not None
    assert (await update(http, got, "COMPLETED", outputData={"r": 1})).status_code == 200
    resp = await update(http, got, "FAILED", reasonForIncompletion="too late")
    assert resp.status_code == 200  # Conductor's answer; nothing changes
    wf = await workflow(http, wid)
    assert (wf["status"], wf["output"]) == ("COMPLETED", {"r": 1})


async def test_in_progress_with_callback_requeues_the_task_after_the_delay(
    http: httpx.AsyncClient,
) -> None:
    task = await register(http, "callback")
    wid = await start(http, "callback")
    got = await poll(http, task)
    assert got is not None
    resp = await update(
        http, got, "IN_PROGRESS", callbackAfterSeconds=1, outputData={"progress": 50}
    )
    assert resp.status_code == 200
    queued = (await workflow(http, wid))["tasks"][0]
    assert queued["status"] == "SCHEDULED" and queued["outputData"] == {"progress": 50}
    assert await poll(http, task) is None  # not before the callback
    again: list[Json] = []

    async def polled_again() -> bool:
        found = await poll(http, task)
        if found is not None:
            again.append(found)
        return bool(again)

    began = time.monotonic()
    await until(polled_again, 10)
    assert time.monotonic() - began >= 0.5
    assert again[0]["taskId"] == got["taskId"] and again[0]["pollCount"] == 2
    assert again[0]["callbackAfterSeconds"] == 0  # reset when handed out


async def test_extend_lease_keeps_the_response_timeout_away(http: httpx.AsyncClient) -> None:
    task = await register(http, "lease", responseTimeoutSeconds=1)
    wid = await start(http, "lease")
    got = await poll(http, task)
    assert got is not None
    for _ in range(4):  # 2 s of work, heartbeats every 0.5 s: never 1 s of silence
        await trio.sleep(0.5)
        resp = await update(http, got, "IN_PROGRESS", extendLease=True)
        assert resp.status_code == 200
    assert (await workflow(http, wid))["tasks"][0]["status"] == "IN_PROGRESS"
    assert await poll(http, task) is None  # a lease extension does not requeue

    async def timed_out() -> bool:
        return (await workflow(http, wid))["tasks"][0]["status"] == "TIMED_OUT"

    await until(timed_out, 10)  # heartbeats stopped: the response timeout fires
    assert "responseTimeout" in (await workflow(http, wid))["tasks"][0]["reasonForIncompletion"]


async def test_poll_timeout_times_out_an_unpolled_task(http: httpx.AsyncClient) -> None:
    await register(http, "unpolled", pollTimeoutSeconds=1, timeoutPolicy="TIME_OUT_WF")
    wid = await start(http, "unpolled")

    async def ended() -> bool:
        return (await workflow(http, wid))["status"] != "RUNNING"

    await until(ended, 10)
    wf = await workflow(http, wid)
    assert wf["status"] == "TIMED_OUT"
    assert wf["tasks"][0]["reasonForIncompletion"] == "Task poll timed out after 1 seconds"


# ----------------------------------------------------------------- domains


async def test_a_task_in_a_domain_goes_only_to_polls_of_that_domain(
    http: httpx.AsyncClient,
) -> None:
    task = await register(http, "dom")
    wid = await start(http, "dom", taskToDomain={"dom_t": "site9"})
    assert await poll(http, task) is None
    assert await poll(http, task, domain="site8") is None
    got = await poll(http, task, domain="site9")
    assert got is not None and got["workflowInstanceId"] == wid


async def test_star_mapping_and_no_domain_fallback(http: httpx.AsyncClient) -> None:
    task = await register(http, "star")
    starred = await start(http, "star", taskToDomain={"*": "yard"})
    got = await poll(http, task, domain="yard")
    assert got is not None and got["workflowInstanceId"] == starred
    # no worker polled "ghost" lately: NO_DOMAIN at the end of the list means no domain
    fallback = await start(http, "star", taskToDomain={"star_t": "ghost,NO_DOMAIN"})
    got = await poll(http, task)
    assert got is not None and got["workflowInstanceId"] == fallback
    # without NO_DOMAIN the last domain of the list is used
    last = await start(http, "star", taskToDomain={"star_t": "ghost,attic"})
    assert await poll(http, task) is None
    got = await poll(http, task, domain="attic")
    assert got is not None and got["workflowInstanceId"] == last


async def test_an_active_worker_domain_wins(http: httpx.AsyncClient) -> None:
    task = await register(http, "active")
    assert await poll(http, task, domain="busy") is None  # a worker of "busy" polls now
    wid = await start(http, "active", taskToDomain={"active_t": "busy,NO_DOMAIN"})
    assert await poll(http, task) is None
    got = await poll(http, task, domain="busy")
    assert got is not None and got["workflowInstanceId"] == wid


# ------------------------------------------------------------ logs, queues


async def test_task_logs(http: httpx.AsyncClient) -> None:
    task = await register(http, "logs")
    await start(http, "logs")
    got = await poll(http, task)
    assert got is not None
    tid = got["taskId"]
    assert (await http.post(f"/api/tasks/{tid}/log", json="as a JSON string")).status_code == 200
    plain = {"content-type": "text/plain"}
    resp = await http.post(f"/api/tasks/{tid}/log", content=b"plain text", headers=plain)
    assert resp.status_code == 200
    await update(http, got, "IN_PROGRESS", callbackAfterSeconds=60, logs=[{"log": "in result"}])
    logs = (await http.get(f"/api/tasks/{tid}/log")).json()
    assert [e["log"] for e in logs] == ["as a JSON string", "plain text", "in result"]
    assert all(e["taskId"] == tid and e["createdTime"] > 0 for e in logs)
    assert (await http.post("/api/tasks/nope/log", json="x")).status_code == 404
    assert (await http.get("/api/tasks/nope/log")).json() == []
    resp = await http.post(f"/api/tasks/{tid}/log", content=b"\xff\xfe", headers=plain)
    assert resp.status_code == 400
    resp = await http.post(f"/api/tasks/{tid}/log", content=b"x" * 70_000, headers=plain)
    assert resp.status_code == 400


async def test_queue_sizes_and_poll_data(http: httpx.AsyncClient) -> None:
    task = await register(http, "sizes")
    for n in range(3):
        await start(http, "sizes", n)
    await start(http, "sizes", 9, taskToDomain={"sizes_t": "d2"})
    resp = await http.get(
        "/api/tasks/queue/sizes", params=[("taskType", task), ("taskType", "nothing_here")]
    )
    assert resp.json() == {task: 3, "nothing_here": 0}
    resp = await http.get("/api/tasks/queue/sizes", params={"taskType": f"d2:{task}"})
    assert resp.json() == {f"d2:{task}": 1}
    assert (await http.get("/api/tasks/queue/size", params={"taskType": task})).json() == 3
    resp = await http.get("/api/tasks/queue/size", params={"taskType": task, "domain": "d2"})
    assert resp.json() == 1
    every = (await http.get("/api/tasks/queue/all")).json()
    assert every[task] == 3 and every[f"d2:{task}"] == 1
    await poll(http, task, workerid="sizer")
    verbose = (await http.get("/api/tasks/queue/all/verbose")).json()
    assert verbose[task] == {"a": {"size": 2, "uacked": 1}}  # one handed out
    polldata = (await http.get("/api/tasks/queue/polldata", params={"taskType": task})).json()
    assert [(p["queueName"], p["workerId"]) for p in polldata] == [(task, "sizer")]
    assert (await http.get("/api/tasks/queue/polldata")).status_code == 400
    every_poll = (await http.get("/api/tasks/queue/polldata/all")).json()
    assert any(p["queueName"] == task for p in every_poll)


# ------------------------------------------------------------------ crashes


def test_a_task_polled_before_a_crash_is_queued_again_and_the_late_update_counts(
    daemon_factory: Any,
) -> None:
    d = daemon_factory()
    d.start()
    with httpx.Client(base_url=d.url, timeout=10) as http:
        http.post("/api/metadata/taskdefs", json=[{"name": "crash_t", "retryCount": 0}])
        wf = {
            "name": "crash",
            "version": 1,
            "schemaVersion": 2,
            "tasks": [{"name": "crash_t", "taskReferenceName": "t", "type": "SIMPLE"}],
        }
        assert http.post("/api/metadata/workflow", json=wf).status_code == 200
        wid = http.post("/api/workflow", json={"name": "crash", "input": {}}).text
        first = http.get("/api/tasks/poll/crash_t", params={"workerid": "before"}).json()
    d.kill()
    d.start()
    with httpx.Client(base_url=d.url, timeout=10) as http:
        again = http.get("/api/tasks/poll/crash_t", params={"workerid": "after"}).json()
        assert again["taskId"] == first["taskId"]
        assert again["pollCount"] == 2  # the journal remembers the first poll
        # the worker that got it before the crash answers late: accepted
        body = {
            "workflowInstanceId": wid,
            "taskId": first["taskId"],
            "status": "COMPLETED",
            "outputData": {"by": "before"},
            "workerId": "before",
        }
        assert http.post("/api/tasks", json=body).status_code == 200
        doc = http.get(f"/api/workflow/{wid}").json()
        assert doc["status"] == "COMPLETED" and doc["tasks"][0]["outputData"] == {"by": "before"}
        # the second worker's answer for the same task is acknowledged and dropped
        body = {**body, "outputData": {"by": "after"}, "workerId": "after"}
        assert http.post("/api/tasks", json=body).status_code == 200
        assert http.get(f"/api/workflow/{wid}").json()["tasks"][0]["outputData"] == {"by": "before"}
        assert http.get("/api/tasks/queue/size", params={"taskType": "crash_t"}).json() == 0


# ------------------------------------------------------------ disconnects


async def test_a_long_poll_whose_client_left_takes_no_task(
    daemon: Any, http: httpx.AsyncClient
) -> None:
    task = await register(http, "gone")
    with trio.fail_after(10):
        sock = await trio.open_tcp_stream("127.0.0.1", daemon.port)
        await sock.send_all(
            f"GET /api/tasks/poll/batch/{task}?timeout=5000 HTTP/1.1\r\nHost: t\r\n\r\n".encode()
        )
        await trio.sleep(0.3)  # parked on the queue now
        await sock.aclose()
        await trio.sleep(0.3)  # the server saw the EOF and cancelled the poll
        wid = await start(http, "gone")
        got = await poll(http, task)
    # had the abandoned poll still been waiting, it would have taken the task
    assert got is not None and got["workflowInstanceId"] == wid and got["pollCount"] == 1


async def test_a_request_pipelined_behind_a_long_poll_is_served(daemon: Any) -> None:
    with trio.fail_after(10):
        sock = await trio.open_tcp_stream("127.0.0.1", daemon.port)
        await sock.send_all(
            b"GET /api/tasks/poll/batch/nobody?timeout=300 HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /api/tasks/queue/size?taskType=nobody HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        received = b""
        while received.count(b"HTTP/1.1 200") < 2 or not received.endswith(b"0"):
            chunk = await sock.receive_some(65536)
            assert chunk, received
            received += chunk
        await sock.aclose()
    first, second = received.split(b"HTTP/1.1 200")[1:]
    assert first.endswith(b"[]") and second.endswith(b"\r\n\r\n0")
