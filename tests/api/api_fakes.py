"""An in-memory EngineAPI for HTTP tests: real enough to answer, simple enough to trust.

The real engine is tested end to end elsewhere; here only the HTTP layer is
under test, so this double keeps state in dicts, records every call, and can be
told to fail the next call with any exception (``fail_next``).
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

from edged.api.engine_api import EngineAPI
from edged.errors import BadInput, Conflict, NotFound

JsonDict = dict[str, Any]


class Faulty(BadInput):
    def __init__(self, faults: list[tuple[str, str]]) -> None:
        super().__init__("")
        self.faults = faults


class FakeEngine:
    def __init__(self) -> None:
        self.workflow_defs: dict[tuple[str, int], JsonDict] = {}
        self.task_defs: dict[str, JsonDict] = {}
        self.workflows: dict[str, JsonDict] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.fail_next: Exception | None = None
        self.healthy = True
        self._ids = itertools.count(1)

    def _enter(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))
        if self.fail_next is not None:
            exc, self.fail_next = self.fail_next, None
            raise exc

    def last_call(self, name: str) -> tuple[Any, ...]:
        for called, args in reversed(self.calls):
            if called == name:
                return tuple(args)
        raise AssertionError(f"{name} was never called")

    # -- metadata ----------------------------------------------------------

    async def register_workflow_defs(self, defs: list[JsonDict], *, overwrite: bool) -> None:
        self._enter("register_workflow_defs", defs, overwrite)
        faults = [
            (f"[{i}].name", "name is required")
            for i, d in enumerate(defs)
            if not isinstance(d.get("name"), str) or not d["name"]
        ]
        faults += [
            (f"[{i}].version", "version must be an integer")
            for i, d in enumerate(defs)
            if not isinstance(d.get("version", 1), int) or isinstance(d.get("version"), bool)
        ]
        if faults:
            raise Faulty(faults)
        for d in defs:
            key = (d["name"], d.get("version", 1))
            if key in self.workflow_defs and not overwrite:
                raise Conflict(f"Workflow {key[0]}.{key[1]} already exists!")
            self.workflow_defs[key] = {"version": 1, **d}

    async def get_workflow_def(self, name: str, version: int | None) -> JsonDict:
        self._enter("get_workflow_def", name, version)
        versions = sorted(v for n, v in self.workflow_defs if n == name)
        if not versions or (version is not None and version not in versions):
            raise NotFound(f"No such workflow found by name: {name}, version: {version}")
        return self.workflow_defs[(name, versions[-1] if version is None else version)]

    async def list_workflow_defs(self) -> list[JsonDict]:
        self._enter("list_workflow_defs")
        return list(self.workflow_defs.values())

    async def delete_workflow_def(self, name: str, version: int) -> None:
        self._enter("delete_workflow_def", name, version)
        if self.workflow_defs.pop((name, version), None) is None:
            raise NotFound(f"Cannot remove the unknown workflow {name}.{version}")

    async def register_task_defs(self, defs: list[JsonDict]) -> None:
        self._enter("register_task_defs", defs)
        for i, d in enumerate(defs):
            if not isinstance(d.get("name"), str) or not d["name"]:
                raise Faulty([(f"[{i}].name", "TaskDef name cannot be null or empty")])
        for d in defs:
            self.task_defs[d["name"]] = d

    async def get_task_def(self, name: str) -> JsonDict:
        self._enter("get_task_def", name)
        if name not in self.task_defs:
            raise NotFound(f"No such taskType found by name: {name}")
        return self.task_defs[name]

    async def list_task_defs(self) -> list[JsonDict]:
        self._enter("list_task_defs")
        return list(self.task_defs.values())

    async def delete_task_def(self, name: str) -> None:
        self._enter("delete_task_def", name)
        if self.task_defs.pop(name, None) is None:
            raise NotFound(f"No such taskType found by name: {name}")

    # -- workflows ---------------------------------------------------------

    async def start_workflow(self, request: JsonDict) -> str:
        self._enter("start_workflow", request)
        name = request["name"]
        if request["workflowDef"] is None and not any(n == name for n, _ in self.workflow_defs):
            raise NotFound(f"No such workflow found by name: {name}, version: null")
        n = next(self._ids)
        workflow_id = f"wf-{n}"
        self.workflows[workflow_id] = {
            "workflowId": workflow_id,
            "workflowName": name,
            "version": request["version"] or 1,
            "status": "RUNNING",
            "correlationId": request["correlationId"],
            "priority": request["priority"],
            "input": request["input"],
            "tasks": [
                {
                    "taskId": f"task-{n}",
                    "referenceTaskName": "wait",
                    "taskType": "WAIT",
                    "status": "IN_PROGRESS",
                    "workflowInstanceId": workflow_id,
                    "outputData": {},
                }
            ],
        }
        return workflow_id

    def _workflow(self, workflow_id: str) -> JsonDict:
        if workflow_id not in self.workflows:
            raise NotFound(f"No such workflow found by id: {workflow_id}")
        return self.workflows[workflow_id]

    async def get_workflow(self, workflow_id: str, *, include_tasks: bool) -> JsonDict:
        self._enter("get_workflow", workflow_id, include_tasks)
        workflow = copy.deepcopy(self._workflow(workflow_id))
        if not include_tasks:
            workflow["tasks"] = []
        return workflow

    async def find_correlated(
        self, name: str, correlation_id: str, *, include_closed: bool, include_tasks: bool
    ) -> list[JsonDict]:
        self._enter("find_correlated", name, correlation_id, include_closed, include_tasks)
        return [
            w
            for w in self.workflows.values()
            if w["workflowName"] == name
            and w["correlationId"] == correlation_id
            and (include_closed or w["status"] in ("RUNNING", "PAUSED"))
        ]

    async def search_workflows(self, query: Any, *, full: bool) -> JsonDict:
        # the real search runs against a real journal in tests/api/test_read_api.py
        self._enter("search_workflows", query, full)
        results = list(self.workflows.values())[query.start : query.start + query.size]
        return {"totalHits": len(self.workflows), "results": results}

    async def running_workflow_ids(
        self, name: str, version: int, start_ms: int | None, end_ms: int | None
    ) -> list[str]:
        self._enter("running_workflow_ids", name, version, start_ms, end_ms)
        return [
            w["workflowId"]
            for w in self.workflows.values()
            if w["workflowName"] == name and w["status"] in ("RUNNING", "PAUSED")
        ]

    async def remove_workflow(self, workflow_id: str) -> None:
        self._enter("remove_workflow", workflow_id)
        self._workflow(workflow_id)
        del self.workflows[workflow_id]

    async def pause(self, workflow_id: str) -> None:
        self._enter("pause", workflow_id)
        workflow = self._workflow(workflow_id)
        if workflow["status"] != "RUNNING":
            raise Conflict(f"Workflow {workflow_id} is {workflow['status']}, not RUNNING")
        workflow["status"] = "PAUSED"

    async def resume(self, workflow_id: str) -> None:
        self._enter("resume", workflow_id)
        workflow = self._workflow(workflow_id)
        if workflow["status"] != "PAUSED":
            raise Conflict(f"Workflow {workflow_id} is {workflow['status']}, not PAUSED")
        workflow["status"] = "RUNNING"

    async def terminate(self, workflow_id: str, reason: str | None) -> None:
        self._enter("terminate", workflow_id, reason)
        workflow = self._workflow(workflow_id)
        workflow["status"] = "TERMINATED"
        workflow["reasonForIncompletion"] = reason

    async def retry(self, workflow_id: str, *, resume_subworkflow_tasks: bool) -> None:
        self._enter("retry", workflow_id, resume_subworkflow_tasks)
        self._workflow(workflow_id)

    async def restart(self, workflow_id: str, *, use_latest_definitions: bool) -> None:
        self._enter("restart", workflow_id, use_latest_definitions)
        self._workflow(workflow_id)["status"] = "RUNNING"

    async def rerun(self, workflow_id: str, request: JsonDict) -> str:
        self._enter("rerun", workflow_id, request)
        self._workflow(workflow_id)
        return workflow_id

    async def skip_task(self, workflow_id: str, task_ref: str, request: JsonDict) -> None:
        self._enter("skip_task", workflow_id, task_ref, request)
        self._task_by_ref(self._workflow(workflow_id), task_ref)["status"] = "SKIPPED"

    # -- tasks -------------------------------------------------------------

    def _task_by_ref(self, workflow: JsonDict, task_ref: str) -> JsonDict:
        for task in workflow["tasks"]:
            if task["referenceTaskName"] == task_ref:
                return task  # type: ignore[no-any-return]
        raise NotFound(f"No task {task_ref} in workflow {workflow['workflowId']}")

    def _task(self, task_id: str) -> JsonDict:
        for workflow in self.workflows.values():
            for task in workflow["tasks"]:
                if task["taskId"] == task_id:
                    return task  # type: ignore[no-any-return]
        raise NotFound(f"No such task found by id: {task_id}")

    async def update_task(self, result: JsonDict) -> None:
        self._enter("update_task", result)
        task = self._task(result["taskId"])
        task["status"] = result["status"]
        task["outputData"].update(result["outputData"])

    async def complete_task_by_ref(
        self, workflow_id: str, task_ref: str, status: str, output: JsonDict, worker_id: str | None
    ) -> str | None:
        self._enter("complete_task_by_ref", workflow_id, task_ref, status, output, worker_id)
        task = self._task_by_ref(self._workflow(workflow_id), task_ref)
        task["status"] = status
        task["outputData"].update(output)
        return str(task["taskId"])

    async def signal(self, workflow_id: str, status: str, output: JsonDict) -> JsonDict | None:
        self._enter("signal", workflow_id, status, output)
        workflow = self._workflow(workflow_id)
        for task in workflow["tasks"]:
            if task["taskType"] == "WAIT" and task["status"] == "IN_PROGRESS":
                task["status"] = status
                task["outputData"].update(output)
                return copy.deepcopy(workflow)
        raise Conflict(f"Workflow {workflow_id} has no task waiting for a signal")

    async def get_task(self, task_id: str) -> JsonDict:
        self._enter("get_task", task_id)
        return self._task(task_id)

    async def health(self) -> JsonDict:
        self._enter("health")
        return {"healthy": self.healthy}


def _conforms(engine: FakeEngine) -> EngineAPI:
    return engine  # mypy checks that FakeEngine implements the protocol
