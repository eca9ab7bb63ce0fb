"""/metrics, the health probes, structured logs and access control, against a real `edged run`.

Every figure is read through a strict parser of the text format (promtext):
the test fails if the exposition is malformed, and checks that the values
move as work runs (executions started and finished by status, task latency
histograms by task type, journal commits, HTTP responses by code, executor
errors).
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import httpx
import promtext
from workloads import TASKDEFS, simple

from tests.integration.daemon_harness import HERE, Daemon

ADD: dict[str, Any] = {
    "name": "obs_add",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [simple("it_add", "add", a="${workflow.input.a}", b=1)],
}
BOOM: dict[str, Any] = {
    "name": "obs_boom_wf",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [simple("obs_boom", "boom", n="${workflow.input.n}")],
}
UNBOUND: dict[str, Any] = {**ADD, "name": "obs_unbound", "tasks": [simple("obs_remote", "r")]}
OBS_TASKDEFS = [*TASKDEFS, {"name": "obs_boom", "retryCount": 0, "responseTimeoutSeconds": 60}]
PYTHON = {"paths": [str(HERE)], "modules": ["it_handlers", "obs_handlers"]}
TOKEN = "0123456789abcdef-obs-token"


def scrape(d: Daemon, **headers: str) -> promtext.Exposition:
    resp = httpx.get(d.url + "/metrics", headers=headers, timeout=5.0)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    return promtext.parse(resp.text)


def started(resp: httpx.Response) -> str:
    assert resp.status_code == 200, resp.text
    return resp.text.strip().strip('"')


def test_metrics_parse_and_move_as_work_runs(daemon_factory: Any) -> None:
    d: Daemon = daemon_factory(ADD, BOOM, taskdefs=OBS_TASKDEFS, python=PYTHON)
    d.start()
    before = scrape(d)
    assert before.value("edged_ready") == 1
    assert before.get("edged_executions_finished_total", status="COMPLETED") == 0
    ok = [started(d.start_workflow("obs_add", {"a": i})) for i in range(5)]
    bad = [started(d.start_workflow("obs_boom_wf", {"n": i})) for i in range(2)]
    done = d.wait_ended(ok + bad)
    assert {done[w]["status"] for w in ok} == {"COMPLETED"}
    assert {done[w]["status"] for w in bad} == {"FAILED"}
    with d.client() as http:  # a 404 and a 400 for the by-code counter
        assert http.get("/api/workflow/no-such-id").status_code == 404
        assert http.post("/api/workflow/obs_add", content=b"{not json").status_code == 400

    after = scrape(d)
    assert after.value("edged_executions_started_total") == 7
    assert after.value("edged_executions_finished_total", status="COMPLETED") == 5
    assert after.value("edged_executions_finished_total", status="FAILED") == 2
    assert after.value("edged_executions", status="RUNNING") == 0
    # task latency by task type: 5 runs of it_add, each sleeps 20 ms in the handler
    run_count = after.value("edged_task_run_seconds_count", task_type="it_add", status="COMPLETED")
    assert run_count == 5
    run_sum = after.value("edged_task_run_seconds_sum", task_type="it_add", status="COMPLETED")
    assert run_sum >= 5 * 0.019
    assert (
        after.value(
            "edged_task_run_seconds_bucket", task_type="it_add", status="COMPLETED", le="0.01"
        )
        == 0
    )
    assert after.value("edged_task_queue_seconds_count", task_type="it_add") == 5
    assert after.value("edged_task_run_seconds_count", task_type="obs_boom", status="FAILED") == 2
    # executor errors: the handler bug is counted (and its task failed)
    assert after.value("edged_executor_errors_total") == 2
    assert after.value("edged_executor_results_total", outcome="completed") == 5
    # journal: commits and their latency histogram moved together
    commits = after.value("edged_journal_commits_total")
    assert commits > before.value("edged_journal_commits_total")
    assert after.value("edged_journal_commit_seconds_count") == commits
    assert after.value("edged_journal_commit_group_batches_count") >= 1
    assert after.value("edged_journal_rows_written_total") > 0
    assert after.value("edged_engine_ops_total") >= 7
    assert after.value("edged_engine_queue_depth", queue="external") == 0
    # HTTP responses by status code (the scrape before counted itself as a 200)
    assert after.value("edged_http_responses_total", code="404") == 1
    assert after.value("edged_http_responses_total", code="400") == 1
    assert after.value("edged_http_responses_total", code="200") >= 8
    assert after.value("edged_http_connections_refused_total") == 0
    # request latency: every answered request so far (the scrape itself is still in flight)
    answered = sum(after.series("edged_http_responses_total").values())
    assert after.value("edged_http_request_seconds_count") == answered
    assert 0 < after.value("edged_http_request_seconds_sum") < answered * 1.0
    assert after.value("edged_http_connections") >= 1  # the scrape's own
    # the standard process families, from the daemon's own /proc entry
    rss = after.value("process_resident_memory_bytes")
    assert 10e6 < rss < 500e6
    assert after.value("process_cpu_seconds_total") > 0
    assert 3 <= after.value("process_open_fds") <= after.value("process_max_fds")
    assert abs(after.value("process_start_time_seconds") - time.time()) < 120
    assert len(after.series("edged_build_info")) == 1


def test_pending_queue_depth_by_task_name(daemon_factory: Any) -> None:
    d: Daemon = daemon_factory(UNBOUND, taskdefs=OBS_TASKDEFS, python=PYTHON)
    d.start()
    for _ in range(3):
        started(d.start_workflow("obs_unbound", {}))
    deadline = time.monotonic() + 10
    while scrape(d).get("edged_dispatch_pending", task="obs_remote") != 3:
        assert time.monotonic() < deadline, "pending never reached 3"
        time.sleep(0.05)
    assert scrape(d).value("edged_executions", status="RUNNING") == 3


def test_probes_and_health_compatibility(daemon_factory: Any) -> None:
    d: Daemon = daemon_factory(ADD, taskdefs=OBS_TASKDEFS, python=PYTHON)
    d.start()
    with d.client() as http:
        assert http.get("/health/live").json() == {"live": True}
        assert http.get("/health/ready").json() == {"ready": True}
        health = http.get("/health")
        assert health.status_code == 200 and health.json()["healthy"] is True
        assert http.head("/health/live").status_code == 200
        assert http.post("/health/ready").status_code == 405


def test_ready_fails_while_the_journal_refuses_writes(daemon_factory: Any) -> None:
    # executions that wait for a poller: after the refusal nothing else commits, so no later
    # small commit that still fits can clear the error before the probe is asked
    d: Daemon = daemon_factory(
        UNBOUND, taskdefs=OBS_TASKDEFS, python=PYTHON, journal={"max_size_bytes": 300_000}
    )
    d.start()
    pad = "x" * 8_000
    with d.client() as http:
        for _ in range(200):
            resp = http.post("/api/workflow/obs_unbound", json={"a": 1, "pad": pad})
            if resp.status_code != 200:
                break
        assert resp.status_code == 507, resp.text
        ready = http.get("/health/ready")
        assert ready.status_code == 503, ready.text
        assert ready.json()["ready"] is False and "journal" in ready.json()["reason"]
        # alive all the same: a restart would not free the disk
        assert http.get("/health/live").status_code == 200
        assert scrape(d).value("edged_ready") == 0
        assert scrape(d).value("edged_engine_commit_failures_total") >= 1


def test_bearer_token_is_enforced_on_loopback_too(daemon_factory: Any) -> None:
    d: Daemon = daemon_factory(ADD, taskdefs=OBS_TASKDEFS, python=PYTHON, auth_token=TOKEN)
    d.start()  # polls /health without a token: it stays open
    good = {"authorization": f"Bearer {TOKEN}"}
    with d.client() as http:
        for path in ("/api/metadata/workflow", "/metrics", "/health/ready"):
            for headers in ({}, {"authorization": "Bearer nope"}, {"authorization": TOKEN}):
                resp = http.get(path, headers=headers)
                assert resp.status_code == 401, (path, headers, resp.text)
                assert resp.headers["www-authenticate"] == 'Bearer realm="edged"'
                assert resp.json()["code"] == "UNAUTHORIZED"
        assert http.post("/api/workflow/obs_add", json={"a": 1}).status_code == 401
        assert http.get("/health/live").status_code == 200
        assert http.post("/health/live").status_code == 401  # only GET/HEAD are open
        wid = started(http.post("/api/workflow/obs_add", json={"a": 1}, headers=good))
        assert http.get(f"/api/workflow/{wid}", headers=good).status_code == 200
        # Orkes SDKs send the bare token in X-Authorization
        assert http.get("/health/ready", headers={"x-authorization": TOKEN}).status_code == 200
        exposition = promtext.parse(http.get("/metrics", headers=good).text)
    assert exposition.value("edged_http_responses_total", code="401") >= 10


def test_body_and_header_limits_come_from_the_config(daemon_factory: Any) -> None:
    d: Daemon = daemon_factory(
        ADD,
        taskdefs=OBS_TASKDEFS,
        python=PYTHON,
        api={"max_body_bytes": 4096, "max_header_bytes": 2048, "max_connections": 3},
        log_level="INFO",
    )
    d.start()
    with d.client() as http:
        big = http.post("/api/workflow/obs_add", json={"a": 1, "pad": "x" * 5000})
        assert big.status_code == 413, big.text
        fits = http.post("/api/workflow/obs_add", json={"a": 1, "pad": "x" * 3000})
        assert fits.status_code == 200, fits.text
    # a head past 2 KiB gets 431 (raw socket: httpx would not send it as is)
    with socket.create_connection(("127.0.0.1", d.port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 3000 + b"\r\n\r\n")
        reply = b""
        while b"\r\n\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
    assert reply.startswith(b"HTTP/1.1 431"), reply[:100]
    with d.client() as http:  # still serving
        assert http.get("/health/live").status_code == 200
        assert scrape(d).value("edged_http_responses_total", code="431") == 1
        assert scrape(d).value("edged_http_responses_total", code="413") == 1
    # past max_connections (3) a new connection gets 503 and is closed.  Connections are
    # opened one at a time, each asked for a request, until one is refused: with three
    # served ones held, the fourth must be refused at the latest (an earlier client the
    # server has not yet seen go may make it come sooner).
    held: list[socket.socket] = []
    refusals = 0
    try:
        while refusals == 0:
            assert len(held) < 4, "four connections held, none refused"
            sock = socket.create_connection(("127.0.0.1", d.port), timeout=5)
            held.append(sock)
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n")
            head = sock.recv(100)
            assert head.startswith((b"HTTP/1.1 200", b"HTTP/1.1 503")), head
            refusals += head.startswith(b"HTTP/1.1 503")
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10
    while True:  # the server notices the closed ones within its next read
        resp = httpx.get(d.url + "/metrics", timeout=5.0)
        if resp.status_code == 200:
            break
        assert resp.status_code == 503, resp.text  # refused too: counted as well
        refusals += 1
        assert time.monotonic() < deadline, "the held connections never freed their slots"
        time.sleep(0.05)
    refused = promtext.parse(resp.text).value("edged_http_connections_refused_total")
    assert refused == refusals >= 1
    # rejections are logged, but at most one line per 10 s: a flood cannot fill the disk
    rejected = [line for line in d.output().splitlines() if 'msg="request rejected"' in line]
    assert len(rejected) == 1 and "status=413" in rejected[0], rejected


def test_structured_json_logs_cover_requests_and_failed_executions(daemon_factory: Any) -> None:
    d: Daemon = daemon_factory(
        BOOM, taskdefs=OBS_TASKDEFS, python=PYTHON, log_format="json", log_level="DEBUG"
    )
    d.start()
    wid = started(d.start_workflow("obs_boom_wf", {"n": 7}))
    d.wait_ended([wid])
    assert d.terminate() == 0
    log_path = d.data_dir.parent / f"daemon-{d.starts}.log"
    lines = [json.loads(x) for x in Path(log_path).read_text().splitlines() if x.startswith("{")]
    assert lines, "no JSON log lines"
    ready = [x for x in lines if x.get("event") == "ready"]
    assert ready and ready[0]["listen"].endswith(f":{d.port}") and ready[0]["level"] == "info"
    ended = [x for x in lines if x.get("workflow_id") == wid and x.get("status") == "FAILED"]
    assert ended, lines[-5:]
    assert ended[0]["workflow"] == "obs_boom_wf" and "boom 7" in ended[0]["reason"]
    assert ended[0]["failed_refs"] == "boom" and ended[0]["duration_ms"] >= 0
    requests = [x for x in lines if x.get("msg") == "request"]
    posted = [x for x in requests if x["method"] == "POST" and x["path"] == "/api/workflow"]
    assert posted and posted[0]["status"] == 200 and posted[0]["duration_ms"] >= 0
    assert any(x.get("event") == "stopping" and x.get("signal") == "SIGTERM" for x in lines)
