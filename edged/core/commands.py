"""Commands: what the runtime must do, in the imperative.  The decider's output.

Which commands are durable, and how:

- `DispatchTask` is derived from state: after a crash every SCHEDULED or
  IN_PROGRESS work task is dispatched again with the same task id and attempt,
  so it needs no outbox row.  `CancelTask` is best effort for the same reason
  (a cancelled task is terminal in the journal; it is never dispatched again).
- `StartTimer` / `CancelTimer` become rows of the journal's timers table in
  the same transaction as the state that asked for them.
- Everything that reaches another execution or the outside world
  (`StartWorkflow`, `NotifyParent`, `TerminateWorkflow`, `PublishEvent`) goes
  to the outbox in the same transaction and is acknowledged in the transaction
  that records its effect, so it happens once even across crashes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class DispatchTask:
    workflow_id: str
    task_id: str
    task_type: str
    def_name: str
    ref: str
    input: dict[str, Any]
    attempt: int  # retryCount: with task_id, the idempotency key of the work
    generation: int
    taskdef: dict[str, Any] | None
    domain: str | None = None


@dataclass(frozen=True, slots=True)
class CancelTask:
    workflow_id: str
    task_id: str


@dataclass(frozen=True, slots=True)
class StartTimer:
    key: str
    workflow_id: str
    fire_at_ms: int


@dataclass(frozen=True, slots=True)
class CancelTimer:
    key: str


@dataclass(frozen=True, slots=True)
class StartWorkflow:
    """Start another execution: a SUB_WORKFLOW child, START_WORKFLOW, a failure workflow."""

    workflow_id: str  # derived from the requesting task, so a repeat is harmless
    name: str
    version: int | None
    input: dict[str, Any]
    definition: dict[str, Any] | None = None  # inline definition
    correlation_id: str | None = None
    parent_id: str | None = None
    parent_task_id: str | None = None
    task_to_domain: dict[str, str] = field(default_factory=dict)
    priority: int = 0
    # who asked: the runtime reports a failure to start back to this task
    requested_by: tuple[str, str] | None = None  # (workflow id, task id)


@dataclass(frozen=True, slots=True)
class NotifyParent:
    parent_id: str
    parent_task_id: str
    child_id: str
    status: str
    output: dict[str, Any]
    reason: str | None


@dataclass(frozen=True, slots=True)
class TerminateWorkflow:
    workflow_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class PublishEvent:
    sink: str
    payload: dict[str, Any]
    workflow_id: str
    task_id: str


@dataclass(frozen=True, slots=True)
class ContinueLater:
    """The decider hit its step budget; deliver `Continued` to this execution."""

    workflow_id: str


@dataclass(frozen=True, slots=True)
class RetryWorkflow:
    """Retry a (child) workflow: `retry` with resumeSubworkflowTasks reaches down
    the hierarchy instead of starting a fresh child (WorkflowExecutor.retry)."""

    workflow_id: str
    resume_subworkflow_tasks: bool = True


Command = (
    DispatchTask
    | CancelTask
    | StartTimer
    | CancelTimer
    | StartWorkflow
    | NotifyParent
    | TerminateWorkflow
    | PublishEvent
    | ContinueLater
    | RetryWorkflow
)

OUTBOX_COMMANDS = (StartWorkflow, NotifyParent, TerminateWorkflow, PublishEvent, RetryWorkflow)
