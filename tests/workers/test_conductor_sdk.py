"""The official conductor-python SDK (from PyPI, unchanged) against a real `edged run`.

`sdk_worker.py` (beside this file) runs in its own process: the SDK's
metadata client registers the task and workflow definitions, its workflow
client starts executions, and an SDK `TaskHandler` (which spawns its own
worker processes) batch-polls, runs the worker function and answers through
update-v2.  The test bounds the whole run with a subprocess timeout and then
checks, over plain HTTP, that every execution completed with the worker's
output, that each task was polled once by the SDK's worker id and that the
worker's log line reached the task.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("conductor.client", reason="conductor-python is in the test extra")

HERE = Path(__file__).resolve().parent
RUN_TIMEOUT_S = 120


def run_sdk(daemon: Any, count: int, domain: str | None) -> dict[str, Any]:
    # Its own session: on a timeout the SDK's worker processes go down with it.
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "sdk_worker.py"), daemon.url, str(count), domain or "-"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=HERE,
        start_new_session=True,
    )
    try:
        stdout, stderr = proc.communicate(timeout=RUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=10)
    finally:
        with contextlib.suppress(ProcessLookupError):  # no SDK process outlives the test
            os.killpg(proc.pid, signal.SIGKILL)
    out = stdout.decode(errors="replace")
    assert proc.returncode == 0, f"sdk_worker exited {proc.returncode}:\n{out}\n{stderr[-3000:]!r}"
    report: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return report


def check_completed(daemon: Any, ids: list[str]) -> None:
    with httpx.Client(base_url=daemon.url, timeout=5) as http:
        for n, wid in enumerate(ids):
            wf = http.get(f"/api/workflow/{wid}", params={"includeTasks": "true"}).json()
            assert wf["status"] == "COMPLETED", wf
            assert wf["output"] == {"doubled": 2 * n}
            (task,) = wf["tasks"]
            assert task["outputData"]["worker"] == "sdk"
            assert task["pollCount"] == 1
            assert task["workerId"]  # the SDK's worker identity (its host name)
            logs = http.get(f"/api/tasks/{task['taskId']}/log").json()
            assert [entry["log"] for entry in logs] == [f"doubling {n}"]


def test_sdk_task_handler_completes_simple_tasks(daemon_factory: Any) -> None:
    daemon = daemon_factory()
    daemon.start()
    report = run_sdk(daemon, 6, None)
    assert len(report["ids"]) == 6
    check_completed(daemon, report["ids"])
    with httpx.Client(base_url=daemon.url, timeout=5) as http:
        assert http.get("/api/tasks/queue/sizes", params={"taskType": "sdk_double"}).json() == {
            "sdk_double": 0
        }
        polldata = http.get("/api/tasks/queue/polldata", params={"taskType": "sdk_double"}).json()
        assert [p["queueName"] for p in polldata] == ["sdk_double"]


def test_sdk_worker_in_a_domain(daemon_factory: Any) -> None:
    daemon = daemon_factory()
    daemon.start()
    report = run_sdk(daemon, 3, "gw7")
    check_completed(daemon, report["ids"])
    with httpx.Client(base_url=daemon.url, timeout=5) as http:
        polldata = http.get("/api/tasks/queue/polldata", params={"taskType": "sdk_double"}).json()
        assert [(p["queueName"], p["domain"]) for p in polldata] == [("gw7:sdk_double", "gw7")]
