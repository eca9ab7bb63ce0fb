"""Executions as journal rows and back, new executions, and the work to redo after a crash.

Plain functions shared by the engine, the service and the CLI: building a
new `Workflow` (inputTemplate defaults, definition variables), turning one
into an `ExecutionRow` and rows back into one, encoding outbox commands as
rows, and listing the work tasks that must be dispatched again on recovery.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Callable
from typing import Any

from edged.core.commands import Command, DispatchTask, StartWorkflow
from edged.core.decider import dispatch_command
from edged.core.model import OPERATOR_TYPES, Task, Workflow, WorkflowStatus
from edged.journal import ExecutionRow, TaskRow
from edged.runtime.timers import now_ms


def recovery_dispatches(wf: Workflow) -> list[DispatchTask]:
    """Work that was handed out but whose result is not in the journal: hand it out again."""
    if wf.status.terminal:
        return []
    out = []
    for task in wf.tasks:
        if task.status.terminal or task.task_type in OPERATOR_TYPES:
            continue
        if any(key.startswith("delay:") for key in task.timers):
            continue  # waits for its start delay / callback; the timer dispatches it
        out.append(dispatch_command(wf, task))
    return out


def new_workflow(
    definition: dict[str, Any],
    *,
    workflow_id: str,
    input: dict[str, Any],
    correlation_id: str | None = None,
    parent_id: str | None = None,
    parent_task_id: str | None = None,
    task_to_domain: dict[str, str] | None = None,
    priority: int = 0,
    idempotency_key: str | None = None,
) -> Workflow:
    template = definition.get("inputTemplate")
    merged = {**template, **input} if isinstance(template, dict) else dict(input)
    variables = definition.get("variables")
    at = now_ms()
    # The required fields by position, then only what differs from the defaults (one
    # per triggered message: keyword matching against 24 parameters was most of it).
    wf = Workflow(workflow_id, definition, WorkflowStatus.RUNNING, merged, at)
    wf.updated_ms = at
    if isinstance(variables, dict) and variables:
        wf.variables = dict(variables)
    if correlation_id is not None:
        wf.correlation_id = correlation_id
    if priority:
        wf.priority = priority
    if parent_id is not None:
        wf.parent_id = parent_id
    if parent_task_id is not None:
        wf.parent_task_id = parent_task_id
    if task_to_domain:
        wf.task_to_domain = dict(task_to_domain)
    if idempotency_key is not None:
        wf.idempotency_key = idempotency_key
    return wf


def _execution_row(wf: Workflow) -> ExecutionRow:
    return ExecutionRow(  # by position (one per execution and batch): see ExecutionRow
        wf.workflow_id,
        wf.name,
        wf.version,
        wf.status._value_,
        wf.parent_id,
        wf.correlation_id,
        wf.idempotency_key,
        wf.created_ms,
        wf.updated_ms,
        wf.ended_ms or None,
        wf.to_doc(),
    )


def _from_rows(row: ExecutionRow, task_rows: list[TaskRow]) -> Workflow:
    return Workflow.from_doc(
        workflow_id=row.workflow_id,
        status=row.status,
        parent_id=row.parent_id,
        correlation_id=row.correlation_id,
        idempotency_key=row.idempotency_key,
        created_ms=row.created_ms,
        updated_ms=row.updated_ms,
        ended_ms=row.ended_ms,
        doc=row.doc,
        tasks=[Task.from_doc(t.doc) for t in sorted(task_rows, key=lambda r: r.seq)],
    )


def _fresh_copy(wf: Workflow) -> Workflow:
    return new_workflow(
        wf.definition,
        workflow_id=wf.workflow_id,
        input=wf.input,
        correlation_id=wf.correlation_id,
        parent_id=wf.parent_id,
        parent_task_id=wf.parent_task_id,
        task_to_domain=wf.task_to_domain,
        priority=wf.priority,
        idempotency_key=wf.idempotency_key,
    )


_FIELDS: dict[type, tuple[tuple[str, ...], Callable[[Any], Any]]] = {}


def _command_body(command: Command) -> dict[str, Any]:
    kind = type(command)
    found = _FIELDS.get(kind)
    if found is None:  # once per command class: dataclasses.fields is a walk of its own
        names = tuple(f.name for f in dataclasses.fields(command))
        read = operator.attrgetter(*names)
        found = _FIELDS[kind] = (names, read if len(names) > 1 else lambda c: (read(c),))
    names, read_all = found
    return dict(zip(names, read_all(command), strict=True))


def _command_from_body(cls: type, body: dict[str, Any]) -> Any:
    if cls is StartWorkflow and body.get("requested_by") is not None:
        body = {**body, "requested_by": tuple(body["requested_by"])}
    return cls(**body)
