"""A real `edged run` with command bindings, for the executor tests.

Reuses tests/integration's `Daemon` (tests/integration/daemon_harness.py) and adds bindings of the example workers and the
misbehaving test worker, with only their two directories allowed.
"""

from __future__ import annotations

from typing import Any

from executor_support import EXAMPLES, MISBEHAVE, WORKERS

TASKDEFS = [
    {
        "name": name,
        "retryCount": retries,
        "retryLogic": "FIXED",
        "retryDelaySeconds": 0,
        "timeoutSeconds": 60,
        "responseTimeoutSeconds": 60,
        "ownerEmail": "t@example.com",
    }
    for name, retries in [
        ("checknumber", 2),
        ("fahrenheit", 1),
        ("misbehave", 0),
        ("misbehave_quick", 0),
        ("call_api", 1),
    ]
]

BINDINGS = {
    "checknumber": {"command": {"argv": [str(EXAMPLES / "checknumber.sh")], "timeout_s": 20}},
    "fahrenheit": {"command": [str(EXAMPLES / "fahrenheit.js")]},
    "misbehave": {
        "command": {
            "argv": [str(MISBEHAVE)],
            "max_output_bytes": 50_000,
            "max_log_lines": 5,
            "terminal_exit_codes": [2, 7],
        }
    },
    "misbehave_quick": {
        "command": {"argv": [str(MISBEHAVE)], "timeout_s": 0.5, "kill_grace_s": 0.2}
    },
}
EXECUTORS = {"command": {"allow": [str(EXAMPLES), str(WORKERS)]}}


def one_task(name: str, task_type: str = "SIMPLE", **params: Any) -> dict[str, Any]:
    """A workflow named `wf_NAME` with one task taking `params` from the workflow input."""
    return {
        "name": f"wf_{name}",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [
            {
                "name": name,
                "taskReferenceName": "only",
                "type": task_type,
                "inputParameters": params or {"in": "${workflow.input}"},
            }
        ],
        "outputParameters": {"out": "${only.output}"},
    }
