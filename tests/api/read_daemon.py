"""A real `edged run` for the read, bulk and OpenAPI tests, with a few small workflows.

Reuses tests/integration's `Daemon` (tests/integration/daemon_harness.py) and its
`it_handlers` (``it_add`` adds ``a`` and ``b``; a non-number fails it).

- ``rd_add``  one ``it_add`` task: COMPLETED, or FAILED when ``a`` is not a
  number (its task definition allows no retries);
- ``rd_wait`` one WAIT task: RUNNING until signalled or terminated;
- ``rd_sleep`` one WAIT for ``input.duration``;
- ``rd_starter`` starts an ``rd_wait`` whose correlation id is ``input.corr``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx

import tests.integration.daemon_harness as it

HERE = Path(__file__).resolve().parent


WORKFLOWS: list[dict[str, Any]] = [
    {
        "name": "rd_add",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [
            {
                "name": "it_add",
                "taskReferenceName": "add",
                "type": "SIMPLE",
                "inputParameters": {"a": "${workflow.input.a}", "b": "${workflow.input.b}"},
            }
        ],
        "outputParameters": {"sum": "${add.output.sum}"},
    },
    {
        "name": "rd_wait",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [{"name": "wait", "taskReferenceName": "gate", "type": "WAIT"}],
    },
    {
        "name": "rd_sleep",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [
            {
                "name": "sleep",
                "taskReferenceName": "nap",
                "type": "WAIT",
                "inputParameters": {"duration": "${workflow.input.duration}"},
            }
        ],
    },
    {
        "name": "rd_starter",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [
            {
                "name": "start_child",
                "taskReferenceName": "child",
                "type": "START_WORKFLOW",
                "inputParameters": {
                    "startWorkflow": {
                        "name": "rd_wait",
                        "correlationId": "${workflow.input.corr}",
                        "input": {"from": "rd_starter"},
                    }
                },
            }
        ],
    },
]
TASKDEFS = [{"name": "it_add", "retryCount": 0, "timeoutSeconds": 60, "responseTimeoutSeconds": 60}]


def make_daemon(tmp_path: Path) -> Any:
    data = tmp_path / "data"
    data.mkdir(parents=True, exist_ok=True)
    d = it.Daemon(
        data_dir=data,
        defs_dir=it.write_defs(tmp_path / "defs", *WORKFLOWS, taskdefs=TASKDEFS),
        config=it.handler_config(tmp_path / "edged.yaml"),
    )
    d.start()
    return d


def start(http: httpx.Client, name: str, workflow_input: dict[str, Any], **extra: Any) -> str:
    resp = http.post("/api/workflow", json={"name": name, "input": workflow_input, **extra})
    assert resp.status_code == 200, resp.text
    return resp.text


def wait_status(
    http: httpx.Client, ids: list[str], wanted: set[str], timeout_s: float = 20.0
) -> None:
    """Poll until every id has a status in ``wanted`` (bounded)."""
    deadline = time.monotonic() + timeout_s
    pending = list(ids)
    while pending and time.monotonic() < deadline:
        pending = [
            i
            for i in pending
            if http.get(f"/api/workflow/{i}", params={"includeTasks": "false"}).json()["status"]
            not in wanted
        ]
        if pending:
            time.sleep(0.02)
    assert not pending, f"not {wanted} within {timeout_s} s: {pending}"
