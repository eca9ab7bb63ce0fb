"""EngineAPI: the engine as the HTTP API (and the CLI) see it.

Each method validates what it can without the owner task (definitions,
existence, idempotency), then hands one op to the engine and returns only
after the op's effect is durable.  Queries read the in-memory state of live
and recent executions and fall back to the journal for older ones.
"""

from __future__ import annotations

from typing import Any

import trio

from edged.core import events as ev
from edged.core.model import WorkflowStatus
from edged.core.views import task_json, workflow_json
from edged.errors import BadInput, Conflict, EdgedError, NotFound
from edged.ids import new_execution_id
from edged.journal import Batch
from edged.journal.search import ExecutionQuery
from edged.runtime import search_service
from edged.runtime.engine import Engine, Op
from edged.runtime.rows import _from_rows, new_workflow
from edged.runtime.timers import now_ms

JsonDict = dict[str, Any]


class EngineService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.registry = engine.registry
        # one lock per (workflow name, idempotencyKey) while a keyed start is checked and
        # committed: two concurrent requests with one key (a client retrying after a
        # timeout) would otherwise both find nothing and both start an execution
        self._key_locks: dict[tuple[str, str], trio.Lock] = {}

    # -------------------------------------------------------------- metadata

    async def register_workflow_defs(self, defs: list[JsonDict], *, overwrite: bool) -> None:
        checked = [self.registry.check_workflow(d) for d in defs]
        if not overwrite:
            for d in checked:
                versions = self.registry.workflows.get(d["name"], {})
                if d["version"] in versions:
                    raise Conflict(f"Workflow with {d['name']}.{d['version']} already exists!")
        await self.engine.journal.commit(
            Batch(workflow_defs=[(d["name"], d["version"], d) for d in checked])
        )
        for d in checked:
            self.registry.put_workflow(d)

    async def get_workflow_def(self, name: str, version: int | None) -> JsonDict:
        return self.registry.workflow(name, version)

    async def list_workflow_defs(self) -> list[JsonDict]:
        return self.registry.all_workflows()

    async def delete_workflow_def(self, name: str, version: int) -> None:
        self.registry.workflow(name, version)
        await self.engine.journal.commit(Batch(deleted_workflow_defs=[(name, version)]))
        self.registry.remove_workflow(name, version)

    async def register_task_defs(self, defs: list[JsonDict]) -> None:
        checked = [self.registry.check_taskdef(d) for d in defs]
        await self.engine.journal.commit(Batch(task_defs=[(d["name"], d) for d in checked]))
        for d in checked:
            self.registry.put_taskdef(d)

    async def get_task_def(self, name: str) -> JsonDict:
        found = self.registry.taskdef(name)
        if found is None:
            raise NotFound(f"No such taskType found by name: {name}")
        return found

    async def list_task_defs(self) -> list[JsonDict]:
        return [self.registry.taskdefs[n] for n in sorted(self.registry.taskdefs)]

    async def delete_task_def(self, name: str) -> None:
        await self.get_task_def(name)
        await self.engine.journal.commit(Batch(deleted_task_defs=[name]))
        self.registry.remove_taskdef(name)

    # ------------------------------------------------------------- workflows

    async def start_workflow(self, request: JsonDict) -> str:
        engine = self.engine
        if not engine.accepting:
            raise EdgedError("edged is shutting down; not starting new workflows")
        inline = request.get("workflowDef")
        name = request.get("name")
        if isinstance(inline, dict) and inline:
            definition = self.registry.check_workflow(inline)
        else:
            if not isinstance(name, str) or not name:
                raise BadInput("workflow name is required")
            definition = self.registry.workflow(name, request.get("version"))
        name = definition["name"]
        workflow_input = request.get("input") or {}
        if not isinstance(workflow_input, dict):
            raise BadInput("input must be a JSON object")
        key = request.get("idempotencyKey")
        if not (isinstance(key, str) and key):
            return await self._start(definition, workflow_input, request, None)
        lock = self._key_locks.setdefault((name, key), trio.Lock())
        try:
            async with lock:
                existing = await self._idempotent(
                    name, key, request.get("idempotencyStrategy") or "FAIL"
                )
                if existing is not None:
                    return existing
                return await self._start(definition, workflow_input, request, key)
        finally:
            if not lock.locked() and not lock.statistics().tasks_waiting:
                self._key_locks.pop((name, key), None)

    async def _start(
        self, definition: JsonDict, workflow_input: JsonDict, request: JsonDict, key: str | None
    ) -> str:
        wf = new_workflow(
            definition,
            workflow_id=new_execution_id(),
            input=workflow_input,
            correlation_id=request.get("correlationId"),
            task_to_domain=request.get("taskToDomain") or {},
            priority=int(request.get("priority") or 0),
            idempotency_key=key,
        )
        await self.engine.submit(Op(wf.workflow_id, create=wf))
        return wf.workflow_id

    async def _idempotent(self, name: str, key: str, strategy: str) -> str | None:
        """Conductor's idempotency strategies; returns an id to answer with, or None to start."""
        matches = [
            w for w in self.engine.live.values() if w.idempotency_key == key and w.name == name
        ]
        matches += [
            w for w in self.engine.recent.values() if w.idempotency_key == key and w.name == name
        ]
        if not matches:
            rows = await self.engine.journal.find_executions(
                name=name, idempotency_key=key, limit=10
            )
            matches = [_from_rows(r, []) for r in rows]
        if not matches:
            return None
        running = [w for w in matches if not w.status.terminal]
        if strategy == "RETURN_EXISTING":
            return (running or matches)[0].workflow_id
        if strategy == "FAIL_ON_RUNNING":
            if running:
                raise Conflict(
                    f"Workflow with idempotencyKey {key} is already running: {running[0].workflow_id}"
                )
            return None
        raise Conflict(
            f"Workflow with idempotencyKey {key} already exists: {matches[0].workflow_id}"
        )

    async def get_workflow(self, workflow_id: str, *, include_tasks: bool) -> JsonDict:
        wf = await self.engine.committed_workflow(workflow_id)
        return workflow_json(wf, include_tasks=include_tasks)

    async def find_correlated(
        self, name: str, correlation_id: str, *, include_closed: bool, include_tasks: bool
    ) -> list[JsonDict]:
        rows = await self.engine.journal.find_executions(
            name=name, correlation_id=correlation_id, limit=1000
        )
        out = []
        for row in rows:
            wf = await self.engine.committed_workflow(row.workflow_id)
            if include_closed or not wf.status.terminal:
                out.append(workflow_json(wf, include_tasks=include_tasks))
        return out

    async def search_workflows(self, query: ExecutionQuery, *, full: bool) -> JsonDict:
        return await search_service.search_workflows(self.engine.journal, query, full=full)

    async def running_workflow_ids(
        self, name: str, version: int, start_ms: int | None, end_ms: int | None
    ) -> list[str]:
        journal = self.engine.journal
        return await search_service.running_workflow_ids(journal, name, version, start_ms, end_ms)

    async def remove_workflow(self, workflow_id: str) -> None:
        wf = await self.engine.workflow(workflow_id)
        if not wf.status.terminal:
            raise Conflict(
                f"Workflow {workflow_id} is {wf.status.value}; terminate it before removing it"
            )
        await self.engine.journal.commit(Batch(deleted_executions=[workflow_id]))
        self.engine.recent.pop(workflow_id, None)

    async def _admin(self, workflow_id: str, event: ev.Event) -> None:
        engine = self.engine
        if engine._lookup(workflow_id) is None:
            wf = await engine.workflow(workflow_id)  # NotFound, or load an old one
            if engine._lookup(workflow_id) is None:
                engine.recent[workflow_id] = wf
        await engine.submit(Op(workflow_id, event, admin=True))

    async def pause(self, workflow_id: str) -> None:
        await self._admin(workflow_id, ev.PauseRequested(at_ms=now_ms()))

    async def resume(self, workflow_id: str) -> None:
        await self._admin(workflow_id, ev.ResumeRequested(at_ms=now_ms()))

    async def terminate(self, workflow_id: str, reason: str | None) -> None:
        await self._admin(workflow_id, ev.TerminateRequested(at_ms=now_ms(), reason=reason))

    async def retry(self, workflow_id: str, *, resume_subworkflow_tasks: bool) -> None:
        await self._admin(
            workflow_id,
            ev.RetryRequested(at_ms=now_ms(), resume_subworkflow_tasks=resume_subworkflow_tasks),
        )

    async def restart(self, workflow_id: str, *, use_latest_definitions: bool) -> None:
        definition = None
        if use_latest_definitions:
            wf = await self.engine.workflow(workflow_id)
            definition = self.registry.workflow(wf.name, None)
        await self._admin(workflow_id, ev.RestartRequested(at_ms=now_ms(), definition=definition))

    async def rerun(self, workflow_id: str, request: JsonDict) -> str:
        await self._admin(
            workflow_id,
            ev.RerunRequested(
                at_ms=now_ms(),
                from_task_id=request.get("reRunFromTaskId"),
                task_input=request.get("taskInput"),
                workflow_input=request.get("workflowInput"),
                correlation_id=request.get("correlationId"),
            ),
        )
        return workflow_id

    async def skip_task(self, workflow_id: str, task_ref: str, request: JsonDict) -> None:
        await self._admin(
            workflow_id,
            ev.SkipTaskRequested(
                at_ms=now_ms(),
                ref=task_ref,
                task_input=request.get("taskInput") or {},
                task_output=request.get("taskOutput") or {},
            ),
        )

    # ----------------------------------------------------------------- tasks

    async def update_task(self, result: JsonDict) -> None:
        workflow_id = result.get("workflowInstanceId")
        task_id = result.get("taskId")
        if not isinstance(workflow_id, str) or not isinstance(task_id, str):
            raise BadInput("workflowInstanceId and taskId are required")
        wf = await self.engine.workflow(workflow_id)
        task = wf.task_by_id(task_id)
        if task is None:
            raise NotFound(f"No such task: {task_id} in workflow {workflow_id}")
        queues = self.engine.dispatcher.queues
        if task.status.terminal or wf.status.terminal:
            # WorkflowExecutor.updateTask: a late result is acknowledged (200) and
            # dropped, and the task leaves its queue; nothing is recorded twice.
            queues.remove((task_id,))
            return
        if result.get("extendLease"):
            await self.engine.submit(
                Op(workflow_id, ev.TaskLeaseExtended(at_ms=now_ms(), task_id=task_id))
            )
            return
        logs = tuple(
            str(entry.get("log", ""))
            for entry in result.get("logs") or []
            if isinstance(entry, dict)
        )
        await self.engine.submit(
            Op(
                workflow_id,
                ev.TaskResultReceived(
                    at_ms=now_ms(),
                    task_id=task_id,
                    status=str(result.get("status")),
                    output=result.get("outputData") or {},
                    reason=result.get("reasonForIncompletion"),
                    callback_after_s=int(result.get("callbackAfterSeconds") or 0),
                    worker_id=result.get("workerId"),
                    logs=logs,
                ),
            )
        )
        if task.status.terminal:
            queues.remove((task_id,))  # a polled copy queued again after a restart

    async def complete_task_by_ref(
        self, workflow_id: str, task_ref: str, status: str, output: JsonDict, worker_id: str | None
    ) -> str | None:
        wf = await self.engine.workflow(workflow_id)
        pending = [t for t in wf.tasks if t.ref == task_ref and not t.status.terminal]
        if not pending:
            raise NotFound(
                f"No pending task with reference name {task_ref} in workflow {workflow_id}"
            )
        task = pending[-1]
        await self.engine.submit(
            Op(
                workflow_id,
                ev.TaskResultReceived(
                    at_ms=now_ms(),
                    task_id=task.task_id,
                    status=status,
                    output=output,
                    worker_id=worker_id,
                ),
            )
        )
        return task.task_id

    async def signal(self, workflow_id: str, status: str, output: JsonDict) -> JsonDict | None:
        wf = await self.engine.workflow(workflow_id)
        if wf.status.terminal:
            raise Conflict(f"Workflow {workflow_id} is {wf.status.value}")
        if not any(t.task_type in ("WAIT", "HUMAN") and not t.status.terminal for t in wf.tasks):
            raise NotFound(f"Workflow {workflow_id} has no pending WAIT or HUMAN task")
        await self.engine.submit(
            Op(workflow_id, ev.TaskSignaled(at_ms=now_ms(), ref=None, status=status, output=output))
        )
        return workflow_json(await self.engine.committed_workflow(workflow_id), include_tasks=True)

    async def get_task(self, task_id: str) -> JsonDict:
        for wf in list(self.engine.live.values()) + list(self.engine.recent.values()):
            task = wf.task_by_id(task_id)
            if task is not None:
                return task_json(wf, task)
        raise NotFound(f"No such task found by id: {task_id}")

    async def health(self) -> JsonDict:
        engine = self.engine
        return {
            "healthy": engine.journal_error is None,
            "journal": engine.journal_error or "ok",
            "running": sum(1 for w in engine.live.values() if w.status is WorkflowStatus.RUNNING),
            "accepting": engine.accepting,
        }
