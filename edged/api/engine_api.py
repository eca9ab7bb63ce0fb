"""The contract between the HTTP API and the engine: ``EngineAPI``.

Theory of operation.  ``edged.api.conductor`` parses and validates Conductor's
REST requests, then calls exactly one ``EngineAPI`` method per request.  The
engine owns every decision and every durable effect; the API owns only shapes.

Rules both sides keep:

- Every method is ``async`` and may raise only the ``edged.errors`` families:
  ``BadInput`` (400; an optional ``faults`` attribute of (path, message)
  pairs becomes Conductor's ``validationErrors``), ``NotFound`` (404),
  ``Conflict`` (409), ``JournalFull`` (507), ``JournalError`` (503).  Anything
  else is a bug and becomes a logged 500.
- Definitions (WorkflowDef, TaskDef) and executions (Workflow, Task) travel as
  plain JSON-ready dicts in Conductor's shapes.  The API checks request
  *envelopes* (field types, enum values); the engine validates definitions.
- Request dicts handed to the engine are normalized by the API: every field
  listed in the method's docstring is present (None or a default when the
  client left it out) and unknown fields are dropped, as Jackson does with
  Conductor's ``FAIL_ON_UNKNOWN_PROPERTIES = false``.
- A mutating call returns only after its effect is durable in the journal.
"""

from __future__ import annotations

from typing import Any, Protocol

from edged.journal.search import ExecutionQuery

JsonDict = dict[str, Any]


class EngineAPI(Protocol):
    """What the HTTP API needs from the engine; one method per REST operation."""

    # -- metadata ----------------------------------------------------------

    async def register_workflow_defs(self, defs: list[JsonDict], *, overwrite: bool) -> None:
        """Register definitions; with ``overwrite=False`` an existing (name, version) is a Conflict."""
        ...

    async def get_workflow_def(self, name: str, version: int | None) -> JsonDict:
        """The definition, the latest version when ``version`` is None; NotFound otherwise."""
        ...

    async def list_workflow_defs(self) -> list[JsonDict]: ...

    async def delete_workflow_def(self, name: str, version: int) -> None: ...

    async def register_task_defs(self, defs: list[JsonDict]) -> None:
        """Create or update task definitions."""
        ...

    async def get_task_def(self, name: str) -> JsonDict: ...

    async def list_task_defs(self) -> list[JsonDict]: ...

    async def delete_task_def(self, name: str) -> None: ...

    # -- workflows ---------------------------------------------------------

    async def start_workflow(self, request: JsonDict) -> str:
        """Start a workflow; returns its id.

        ``request`` is a StartWorkflowRequest with keys ``name`` (str),
        ``version`` (int | None), ``correlationId`` (str | None), ``input``
        (dict), ``taskToDomain`` (dict[str, str]), ``workflowDef`` (dict |
        None), ``priority`` (int, 0-99), ``idempotencyKey`` (str | None) and
        ``idempotencyStrategy`` ("FAIL" | "RETURN_EXISTING" |
        "FAIL_ON_RUNNING" | None).
        """
        ...

    async def get_workflow(self, workflow_id: str, *, include_tasks: bool) -> JsonDict: ...

    async def find_correlated(
        self, name: str, correlation_id: str, *, include_closed: bool, include_tasks: bool
    ) -> list[JsonDict]: ...

    async def search_workflows(self, query: ExecutionQuery, *, full: bool) -> JsonDict:
        """Conductor's SearchResult: ``{"totalHits": int, "results": [...]}`` of
        WorkflowSummary dicts, or of Workflow dicts (no tasks) when ``full``."""
        ...

    async def running_workflow_ids(
        self, name: str, version: int, start_ms: int | None, end_ms: int | None
    ) -> list[str]:
        """Ids of RUNNING/PAUSED executions of ``name`` at ``version``; with both
        times, of every execution of it started in [start_ms, end_ms] (Conductor's rule)."""
        ...

    async def remove_workflow(self, workflow_id: str) -> None: ...

    async def pause(self, workflow_id: str) -> None: ...

    async def resume(self, workflow_id: str) -> None: ...

    async def terminate(self, workflow_id: str, reason: str | None) -> None: ...

    async def retry(self, workflow_id: str, *, resume_subworkflow_tasks: bool) -> None: ...

    async def restart(self, workflow_id: str, *, use_latest_definitions: bool) -> None: ...

    async def rerun(self, workflow_id: str, request: JsonDict) -> str:
        """Rerun; returns the workflow id.  ``request`` keys: ``reRunFromWorkflowId``,
        ``workflowInput``, ``reRunFromTaskId``, ``taskInput``, ``correlationId``
        (each None when absent)."""
        ...

    async def skip_task(self, workflow_id: str, task_ref: str, request: JsonDict) -> None:
        """Skip ``task_ref``; ``request`` keys: ``taskInput``, ``taskOutput`` (dict | None)."""
        ...

    # -- tasks -------------------------------------------------------------

    async def update_task(self, result: JsonDict) -> None:
        """Apply a TaskResult with keys ``workflowInstanceId``, ``taskId``,
        ``status`` (IN_PROGRESS | FAILED | FAILED_WITH_TERMINAL_ERROR |
        COMPLETED), ``outputData`` (dict), ``reasonForIncompletion`` (str |
        None), ``callbackAfterSeconds`` (int >= 0), ``logs`` (list of
        ``{"log": str, ...}`` dicts), ``workerId`` (str | None), ``extendLease``
        (bool: only restart the response timeout).  A result for a task that
        already ended is acknowledged and ignored, as Conductor does."""
        ...

    async def complete_task_by_ref(
        self,
        workflow_id: str,
        task_ref: str,
        status: str,
        output: JsonDict,
        worker_id: str | None,
    ) -> str | None:
        """Update the pending task ``task_ref``; may return the task id, which
        Conductor sends back as text (None sends an empty body)."""
        ...

    async def signal(self, workflow_id: str, status: str, output: JsonDict) -> JsonDict | None:
        """Complete the workflow's current blocking WAIT/HUMAN task; may return
        the workflow (served by ``/signal/sync``)."""
        ...

    async def get_task(self, task_id: str) -> JsonDict: ...

    async def health(self) -> JsonDict:
        """``{"healthy": bool, ...}``; unhealthy makes ``GET /health`` a 503."""
        ...
