"""Command bindings and the HTTP task through a real `edged run` over real HTTP.

One daemon per module (the `executor_daemon` fixture); each test starts its own
executions.  Every wait is bounded (Daemon.wait_ended, gone_soon).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from executor_daemon import BINDINGS, EXECUTORS, TASKDEFS, one_task
from executor_support import EXAMPLES, gone_soon, kill_if_running, read_pid
from http_test_server import http_test_server

import tests.integration.daemon_harness as it_daemon


@pytest.fixture(scope="module")
def executor_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A running daemon with the bindings above and workflows for each task name
    (one per test module: the tests start their own executions and share it)."""
    tmp_path = tmp_path_factory.mktemp("executor_daemon")
    docs = [
        one_task("checknumber", n="${workflow.input.n}", fail_attempts="${workflow.input.fail}"),
        one_task("fahrenheit", celsius="${workflow.input.celsius}"),
        one_task("misbehave", mode="${workflow.input.mode}", pidfile="${workflow.input.pidfile}"),
        one_task(
            "misbehave_quick", mode="${workflow.input.mode}", pidfile="${workflow.input.pidfile}"
        ),
        one_task("call_api", "HTTP", http_request="${workflow.input.http_request}"),
    ]
    daemon = it_daemon.Daemon(
        data_dir=tmp_path / "data",
        defs_dir=it_daemon.write_defs(tmp_path / "defs", *docs, taskdefs=TASKDEFS),
        config=it_daemon.handler_config(
            tmp_path / "edged.yaml", bindings=BINDINGS, executors=EXECUTORS
        ),
    )
    daemon.start()
    try:
        yield daemon
    finally:
        daemon.kill()


def start(daemon: Any, name: str, workflow_input: dict[str, Any]) -> str:
    resp = daemon.start_workflow(f"wf_{name}", workflow_input)
    assert resp.status_code == 200, resp.text
    return str(resp.text.strip('"'))


def run_all(daemon: Any, cases: dict[str, tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Start every case at once, wait for all; returns case -> Workflow JSON."""
    ids = {case: start(daemon, name, wf_input) for case, (name, wf_input) in cases.items()}
    done = daemon.wait_ended(list(ids.values()), timeout_s=30)
    return {case: done[wid] for case, wid in ids.items()}


def task_logs(daemon: Any, task: dict[str, Any]) -> list[str]:
    with daemon.client() as http:
        resp = http.get(f"/api/tasks/{task['taskId']}/log")
    assert resp.status_code == 200, resp.text
    return [entry["log"] for entry in resp.json()]


def test_shell_and_node_workers_complete_and_their_stderr_is_in_the_task_logs(
    executor_daemon: Any,
) -> None:
    cases = {"shell": ("checknumber", {"n": 4})}
    has_node = shutil.which("node") is not None
    if has_node:
        cases["node"] = ("fahrenheit", {"celsius": 100})
    wf = run_all(executor_daemon, cases)
    shell = wf["shell"]
    assert shell["status"] == "COMPLETED", shell.get("reasonForIncompletion")
    assert shell["output"]["out"] == {"n": 4, "even": True, "attempt": 0}
    (task,) = shell["tasks"]
    assert task_logs(executor_daemon, task) == [
        f"checknumber: task {task['taskId']} attempt 0 of workflow {shell['workflowId']}"
    ]
    if not has_node:
        pytest.skip("node is not installed: the Node.js worker was not exercised")
    node = wf["node"]
    assert node["status"] == "COMPLETED", node.get("reasonForIncompletion")
    assert node["output"]["out"]["fahrenheit"] == 212 and node["output"]["out"]["alarm"] is True
    (task,) = node["tasks"]
    assert task_logs(executor_daemon, task) == [f"fahrenheit: task {task['taskId']} attempt 0"]


def test_failures_retries_and_terminal_errors(executor_daemon: Any) -> None:
    wf = run_all(
        executor_daemon,
        {
            "retried": ("checknumber", {"n": 5, "fail": 1}),
            "terminal": ("checknumber", {"n": -1}),
            "custom_terminal": ("misbehave", {"mode": "exit", "code": 7}),
            "not_json": ("misbehave", {"mode": "text"}),
            "oversized": ("misbehave", {"mode": "big"}),
            "chatty": ("misbehave", {"mode": "spam"}),
        },
    )
    retried = wf["retried"]
    assert retried["status"] == "COMPLETED"
    first, second = retried["tasks"]
    assert first["status"] == "FAILED"
    assert first["reasonForIncompletion"] == (
        "exit code 1: attempt 0 fails on purpose (fail_attempts=1)"
    )
    assert second["status"] == "COMPLETED" and second["retryCount"] == 1
    assert second["outputData"] == {"n": 5, "even": False, "attempt": 1}

    terminal = wf["terminal"]
    assert terminal["status"] == "FAILED"
    (task,) = terminal["tasks"]  # retryCount 2, yet no retry
    assert task["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert (
        task["reasonForIncompletion"] == "exit code 2: n=-1 is negative: no retry will change that"
    )

    (task,) = wf["custom_terminal"]["tasks"]
    assert task["status"] == "FAILED_WITH_TERMINAL_ERROR"
    assert task["outputData"] == {"partial": True}

    (task,) = wf["not_json"]["tasks"]
    assert task["status"] == "FAILED"
    assert task["reasonForIncompletion"].startswith("stdout is not JSON")

    (task,) = wf["oversized"]["tasks"]
    assert task["status"] == "FAILED"
    assert task["reasonForIncompletion"] == (
        "output exceeds max_output_bytes (50000 bytes): process group killed"
    )

    chatty = wf["chatty"]
    assert chatty["status"] == "COMPLETED" and chatty["output"]["out"] == {"ok": True}
    logs = task_logs(executor_daemon, chatty["tasks"][0])
    assert logs == [f"noise {i}" for i in range(5)] + ["[497 more stderr lines dropped]"]


def test_timeout_and_terminate_kill_the_process_group(executor_daemon: Any, tmp_path: Path) -> None:
    timed_pid, term_pid = tmp_path / "timed.pid", tmp_path / "term.pid"
    try:
        timed = start(
            executor_daemon, "misbehave_quick", {"mode": "hang", "pidfile": str(timed_pid)}
        )
        term = start(executor_daemon, "misbehave", {"mode": "hang", "pidfile": str(term_pid)})
        doc = executor_daemon.wait_ended([timed], timeout_s=20)[timed]
        (task,) = doc["tasks"]
        assert task["status"] == "FAILED"
        assert task["reasonForIncompletion"] == "timed out after 0.5 s: process group killed"
        assert gone_soon(read_pid(timed_pid))
        assert task_logs(executor_daemon, task)[0].startswith("started grandchild")

        time.sleep(0.2)  # the other one is running its `sleep 300` by now
        with executor_daemon.client() as http:
            assert http.delete(f"/api/workflow/{term}").status_code in (200, 204)
        doc = executor_daemon.wait_ended([term], timeout_s=20)[term]
        assert doc["status"] == "TERMINATED"
        assert gone_soon(read_pid(term_pid), within_s=10)
    finally:
        for path in (timed_pid, term_pid):
            if path.exists():
                kill_if_running(read_pid(path))


def test_http_task_in_a_workflow(executor_daemon: Any) -> None:
    with http_test_server() as server:
        wf = run_all(
            executor_daemon,
            {
                "ok": (
                    "call_api",
                    {"http_request": {"uri": f"{server}/echo", "method": "POST", "body": {"a": 1}}},
                ),
                "error": (
                    "call_api",
                    {"http_request": {"uri": f"{server}/status/503", "method": "GET"}},
                ),
                "missing": ("call_api", {}),
            },
        )
    ok = wf["ok"]
    assert ok["status"] == "COMPLETED", ok.get("reasonForIncompletion")
    response = ok["output"]["out"]["response"]
    assert response["statusCode"] == 200 and response["body"]["body"] == '{"a": 1}'
    error = wf["error"]
    assert error["status"] == "FAILED"
    assert [t["status"] for t in error["tasks"]] == ["FAILED", "FAILED"]  # retryCount 1
    assert error["tasks"][1]["outputData"]["response"]["statusCode"] == 503
    assert error["tasks"][1]["reasonForIncompletion"].startswith("HTTP 503 Service Unavailable")
    assert wf["missing"]["tasks"][0]["reasonForIncompletion"].startswith("Missing HTTP request")


def test_a_program_outside_the_allow_list_stops_the_start(tmp_path: Path) -> None:
    config = tmp_path / "edged.yaml"
    bindings = {**BINDINGS, "intruder": {"command": ["/bin/sh", "-c", "echo '{}'"]}}
    config.write_text(yaml.safe_dump({"bindings": bindings, "executors": EXECUTORS}))
    data = tmp_path / "data"
    args = ["run", "--data-dir", str(data), "--listen", f"127.0.0.1:{it_daemon.free_port()}"]
    proc = subprocess.run(
        it_daemon.edged_cmd(*args, "--config", str(config)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("edged: config error: bindings.intruder.command.argv: program ")
    assert "is not allowed" in line
    assert not (data / "journal.db").exists()


def test_the_example_config_is_valid(tmp_path: Path) -> None:
    """examples/workers/edged.yaml binds its flows and starts (then stops on SIGTERM)."""
    doc = yaml.safe_load((EXAMPLES / "edged.yaml").read_text())
    assert doc["executors"]["command"]["allow"] == ["."]
    daemon = it_daemon.Daemon(
        data_dir=tmp_path / "data", defs_dir=EXAMPLES / "flows", config=EXAMPLES / "edged.yaml"
    )
    daemon.start()
    try:
        wid = daemon.start_workflow("freezer_check", {"n": 2, "celsius": -20}).text.strip('"')
        done = daemon.wait_ended([wid], timeout_s=20)[wid]
        if shutil.which("node") is None:
            assert done["status"] == "FAILED"  # fahrenheit.js needs node
        else:
            assert done["status"] == "COMPLETED", done.get("reasonForIncompletion")
            assert done["output"] == {"even": True, "fahrenheit": -4.0, "alarm": False}
        assert daemon.terminate() == 0
    finally:
        daemon.kill()
