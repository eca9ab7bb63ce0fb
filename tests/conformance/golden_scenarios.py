"""Golden decider scenarios: Conductor fixtures driven through the pure decider.

Theory of operation
-------------------
Each scenario starts one fixture workflow under a fixed id and then feeds
events by task reference (complete / fail / child ended), each with an
explicit `at_ms`.  `record()` resolves references to task ids, applies every
event to a fresh `Decider` and writes down, per step, the event applied, the
commands produced and every task's (ref, status, retryCount) plus the
workflow status.  `make_golden.py` stores that as JSON; the replay test feeds
the stored events again and fails if today's decider answers differently, so
a change to the decider's commands is always deliberate (regenerate and
review the diff).
"""

from __future__ import annotations

import dataclasses
import enum
import json
from pathlib import Path
from typing import Any

from harness import HARNESS, HARNESS_TYPES, harness_taskdefs

from edged.core import events as ev
from edged.core.decider import Decider
from edged.core.model import Workflow, WorkflowStatus
from edged.defs import load_file
from edged.runtime.registry import DefinitionRegistry

GOLDEN = Path(__file__).resolve().parent / "golden"
T0_MS = 1_700_000_000_000
Json = dict[str, Any]

# name -> (fixture file, workflow name, input, steps)
# a step: ("complete"|"fail", ref, output-or-reason) or ("child", ref, status)
SCENARIOS: dict[str, tuple[str, str, Json, list[tuple[str, str, Any]]]] = {
    "linear_retry": (
        "simple_workflow_1_integration_test.json",
        "integration_test_wf",
        {"param1": "p1", "param2": "p2"},
        [
            ("fail", "t1", "boom"),
            ("complete", "t1", {"op": "done"}),
            ("complete", "t2", {"uuid": "u"}),
        ],
    ),
    "fork_join": (
        "fork_join_integration_test.json",
        "FanInOutTest",
        {},
        [
            ("complete", "t1", {"a": 1}),
            ("complete", "t2", {"b": 2}),
            ("complete", "t3", {}),
            ("complete", "t4", {}),
        ],
    ),
    "nested_decisions": (
        "conditional_task_workflow_integration_test.json",
        "ConditionalTaskWF",
        {"param1": "nested", "param2": "one", "finalCase": "notify"},
        [("complete", "t1", {}), ("complete", "integration_task_4", {})],
    ),
    "exclusive_join": (
        "exclusive_join_integration_test.json",
        "ExclusiveJoinTestWorkflow",
        {"payload": "p", "decision_1": "false", "decision_3": "true"},
        [("complete", "task1", {}), ("complete", "task4", {}), ("complete", "task5", {"x": 5})],
    ),
    "sub_workflow_failed": (
        "workflow_with_sub_workflow_1_integration_test.json",
        "integration_test_wf_with_sub_wf",
        {"param1": "p1", "param2": "p2", "subwf": "sub_workflow"},
        [("complete", "t1", {}), ("child", "t2", "FAILED")],
    ),
}


def _taskdefs() -> dict[str, Json]:
    return {d["name"]: DefinitionRegistry.check_taskdef(d) for d in harness_taskdefs()}


def _definition(fixture: str, name: str) -> Json:
    defs = load_file(HARNESS / fixture, task_types=HARNESS_TYPES)
    for doc in defs.workflows:
        if doc["name"] == name:
            return DefinitionRegistry.check_workflow(doc)
    raise KeyError(name)


def new_execution(fixture: str, name: str, workflow_input: Json, workflow_id: str) -> Workflow:
    definition = _definition(fixture, name)
    template = definition.get("inputTemplate")
    merged = {**template, **workflow_input} if isinstance(template, dict) else dict(workflow_input)
    return Workflow(
        workflow_id=workflow_id,
        definition=definition,
        status=WorkflowStatus.RUNNING,
        input=merged,
        created_ms=T0_MS,
        updated_ms=T0_MS,
    )


def decider() -> Decider:
    taskdefs = _taskdefs()
    return Decider(taskdefs.get)


def to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        body = {f.name: to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"kind": type(value).__name__, **body}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def event_from_json(doc: Json) -> ev.Event:
    body = dict(doc)
    cls = getattr(ev, body.pop("kind"))
    for key, value in list(body.items()):
        if isinstance(value, list):
            body[key] = tuple(value)
    event: ev.Event = cls(**body)
    return event


def snapshot(wf: Workflow) -> Json:
    return {
        "status": wf.status.value,
        "tasks": [[t.ref, t.task_type, t.status.value, t.retry_count] for t in wf.tasks],
    }


def apply_step(d: Decider, wf: Workflow, event: ev.Event) -> Json:
    decision = d.decide(wf, event)
    return {"event": to_json(event), "commands": to_json(decision.commands), "state": snapshot(wf)}


def record(name: str) -> Json:
    fixture, wf_name, workflow_input, steps = SCENARIOS[name]
    wf = new_execution(fixture, wf_name, workflow_input, f"golden-{name}")
    d = decider()
    out = [apply_step(d, wf, ev.WorkflowStarted(at_ms=T0_MS))]
    for i, (kind, ref, arg) in enumerate(steps, start=1):
        at_ms = T0_MS + i * 1000
        task = next(t for t in reversed(wf.tasks) if t.ref == ref and not t.status.terminal)
        event: ev.Event
        if kind == "child":
            assert task.subworkflow_id is not None
            event = ev.ChildWorkflowEnded(
                at_ms=at_ms,
                task_id=task.task_id,
                child_id=task.subworkflow_id,
                status=arg,
                output={},
                reason="child",
            )
        elif kind == "complete":
            event = ev.TaskResultReceived(
                at_ms=at_ms, task_id=task.task_id, status="COMPLETED", output=arg
            )
        else:
            event = ev.TaskResultReceived(
                at_ms=at_ms, task_id=task.task_id, status="FAILED", reason=arg
            )
        out.append(apply_step(d, wf, event))
    return {"fixture": fixture, "workflow": wf_name, "input": workflow_input, "steps": out}


def replay(golden: Json, name: str) -> list[Json]:
    wf = new_execution(golden["fixture"], golden["workflow"], golden["input"], f"golden-{name}")
    d = decider()
    return [apply_step(d, wf, event_from_json(step["event"])) for step in golden["steps"]]


def write_all() -> list[Path]:
    GOLDEN.mkdir(exist_ok=True)
    written = []
    for name in SCENARIOS:
        path = GOLDEN / f"{name}.json"
        path.write_text(json.dumps(record(name), indent=1, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written
