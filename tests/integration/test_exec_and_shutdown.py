"""`edged exec` end to end as a subprocess, and SIGTERM during in-flight work."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from workloads import CHILD, TASKDEFS, simple

from tests.integration.daemon_harness import (
    HERE,
    Daemon,
    edged_cmd,
    handler_config,
    read_invocations,
    write_defs,
)


def exec_edged(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        edged_cmd("exec", *args), capture_output=True, text=True, timeout=60, cwd=HERE
    )


def write(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(json.dumps(doc))
    return path


PARENT: dict[str, Any] = {
    "name": "exec_parent",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [
        simple("it_add", "add", a="${workflow.input.a}", b=2),
        {
            "name": "child",
            "taskReferenceName": "child",
            "type": "SUB_WORKFLOW",
            "inputParameters": {"x": "${add.output.sum}"},
            "subWorkflowParam": {"name": "it_child", "version": 1},
        },
    ],
    "outputParameters": {"sum": "${add.output.sum}", "child": "${child.output.sq_plus_1}"},
}


def test_exec_completed_with_handlers_and_a_sub_workflow_from_defs(tmp_path: Path) -> None:
    defs = write_defs(tmp_path / "defs", CHILD, taskdefs=TASKDEFS)
    proc = exec_edged(
        str(write(tmp_path / "parent.json", PARENT)),
        "--input",
        '{"a": 3}',
        "--defs",
        str(defs),
        "--config",
        str(handler_config(tmp_path / "c.yaml")),
        "--timeout",
        "30",
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "COMPLETED" and doc["output"] == {"sum": 5, "child": 26}
    assert [t["referenceTaskName"] for t in doc["tasks"]] == ["add", "child"]


def test_exec_with_mocks_needs_no_handlers(tmp_path: Path) -> None:
    wf = {
        "name": "mocked",
        "version": 1,
        "tasks": [simple("lookup", "lookup", id="${workflow.input.id}")],
        "outputParameters": {"owner": "${lookup.output.owner}"},
    }
    proc = exec_edged(
        str(write(tmp_path / "m.json", wf)),
        "--input",
        '{"id": 9}',
        "--mock",
        'lookup={"owner": "ann"}',
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["output"] == {"owner": "ann"}


def test_exec_failed_workflow_exits_1(tmp_path: Path) -> None:
    wf = {
        "name": "fails",
        "version": 1,
        "tasks": [
            {
                "name": "stop",
                "taskReferenceName": "stop",
                "type": "TERMINATE",
                "inputParameters": {
                    "terminationStatus": "FAILED",
                    "terminationReason": "on purpose",
                },
            }
        ],
    }
    proc = exec_edged(str(write(tmp_path / "f.json", wf)))
    assert proc.returncode == 1, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["status"] == "FAILED" and "on purpose" in doc["reasonForIncompletion"]


def test_exec_unbound_task_fails_instead_of_hanging(tmp_path: Path) -> None:
    wf = {"name": "unbound", "version": 1, "tasks": [simple("nobody_handles_this", "t")]}
    proc = exec_edged(str(write(tmp_path / "u.json", wf)), "--timeout", "20")
    assert proc.returncode == 1
    assert "nobody_handles_this" in json.loads(proc.stdout)["reasonForIncompletion"]


def test_exec_invalid_definition_exits_2_with_the_fault_path(tmp_path: Path) -> None:
    wf = {
        "name": "invalid",
        "version": 1,
        "tasks": [
            {
                "name": "s",
                "taskReferenceName": "s",
                "type": "SWITCH",
                "decisionCases": {"a": [{"name": "x"}]},
            }
        ],
    }
    proc = exec_edged(str(write(tmp_path / "i.json", wf)))
    assert proc.returncode == 2
    assert "tasks[0]" in proc.stderr and proc.stdout == "", proc.stderr
    bad_input = exec_edged(str(tmp_path / "i.json"), "--input", "[1, 2]")
    assert bad_input.returncode == 2 and "--input" in bad_input.stderr


def test_sigterm_finishes_in_flight_work_and_exits_0(daemon_factory: Any) -> None:
    wf = {
        "name": "it_slow_wf",
        "version": 1,
        "schemaVersion": 2,
        "tasks": [simple("it_slow", "slow", ms="${workflow.input.ms}")],
        "outputParameters": {"slept": "${slow.output.slept_ms}"},
    }
    d: Daemon = daemon_factory(wf, taskdefs=TASKDEFS)
    d.start()
    ids = []
    for _ in range(4):
        resp = d.start_workflow("it_slow_wf", {"ms": 1500})
        assert resp.status_code == 200
        ids.append(resp.text.strip().strip('"'))
    deadline = time.monotonic() + 10
    while len(read_invocations(d.invocation_log)) < len(ids):  # all four handlers are running
        assert time.monotonic() < deadline, "handlers never started"
        time.sleep(0.02)
    assert d.terminate() == 0, d.output()
    phases = [(i["task_id"], i["phase"]) for i in read_invocations(d.invocation_log)]
    assert sorted(p for _, p in phases) == ["end"] * 4 + ["start"] * 4, phases
    d.start()
    done = d.wait_ended(ids, timeout_s=5)
    assert all(
        doc["status"] == "COMPLETED" and doc["output"] == {"slept": 1500} for doc in done.values()
    )
    # nothing ran again after the restart: the results were committed before exit
    assert len(read_invocations(d.invocation_log)) == 8
