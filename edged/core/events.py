"""Events: what happened, in the past tense.  The decider's only input.

Every event carries the time it happened (`at_ms`, epoch milliseconds), so
the decider never reads a clock.  Events that come from outside (executors,
the API, other executions) name their target task by id; the decider checks
that the target is still waiting for exactly this news and ignores it
otherwise, so a duplicate or stale delivery yields no commands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class WorkflowStarted:
    at_ms: int


@dataclass(frozen=True, slots=True)
class TaskStarted:
    """An executor or a poller picked the task up."""

    at_ms: int
    task_id: str
    worker_id: str | None = None
    generation: int = 0


@dataclass(frozen=True, slots=True)
class TaskLeaseExtended:
    """The worker holding an IN_PROGRESS task is still at it (TaskResult.extendLease):
    its response timeout starts again from `at_ms`."""

    at_ms: int
    task_id: str


@dataclass(frozen=True, slots=True)
class TaskLogged:
    """Log lines for a task (``POST /api/tasks/{taskId}/log``); nothing else changes."""

    at_ms: int
    task_id: str
    logs: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TaskResultReceived:
    """An executor, worker or API call reported on a task (Conductor's TaskResult)."""

    at_ms: int
    task_id: str
    status: str  # IN_PROGRESS, COMPLETED, FAILED, FAILED_WITH_TERMINAL_ERROR
    output: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    callback_after_s: int = 0
    worker_id: str | None = None
    logs: tuple[str, ...] = ()
    generation: int | None = None  # None: from the API, applies to the current run
    started_ms: int = 0


@dataclass(frozen=True, slots=True)
class TimerFired:
    at_ms: int
    key: str  # "<kind>:<task id or workflow id>:<stamp>"


@dataclass(frozen=True, slots=True)
class ChildWorkflowEnded:
    at_ms: int
    task_id: str  # the SUB_WORKFLOW task of the parent
    child_id: str
    status: str
    output: dict[str, Any]
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class TaskSignaled:
    """An external signal for a WAIT/HUMAN (or any pending) task by ref."""

    at_ms: int
    ref: str | None  # None: the newest pending WAIT/HUMAN task
    status: str
    output: dict[str, Any]
    worker_id: str | None = None
    task_types: tuple[str, ...] = ()  # restrict to these types when ref is None


@dataclass(frozen=True, slots=True)
class PauseRequested:
    at_ms: int


@dataclass(frozen=True, slots=True)
class ResumeRequested:
    at_ms: int


@dataclass(frozen=True, slots=True)
class TerminateRequested:
    at_ms: int
    reason: str | None = None
    trigger_failure_workflow: bool = False


@dataclass(frozen=True, slots=True)
class RetryRequested:
    at_ms: int
    resume_subworkflow_tasks: bool = False


@dataclass(frozen=True, slots=True)
class RestartRequested:
    at_ms: int
    definition: dict[str, Any] | None = None  # the latest definition, when asked for


@dataclass(frozen=True, slots=True)
class RerunRequested:
    at_ms: int
    from_task_id: str | None = None
    task_input: dict[str, Any] | None = None
    workflow_input: dict[str, Any] | None = None
    correlation_id: str | None = None


@dataclass(frozen=True, slots=True)
class SkipTaskRequested:
    at_ms: int
    ref: str
    task_input: dict[str, Any] = field(default_factory=dict)
    task_output: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Continued:
    """The decider yielded after a long run of synchronous steps; go on."""

    at_ms: int


Event = (
    WorkflowStarted
    | TaskStarted
    | TaskLeaseExtended
    | TaskLogged
    | TaskResultReceived
    | TimerFired
    | ChildWorkflowEnded
    | TaskSignaled
    | PauseRequested
    | ResumeRequested
    | TerminateRequested
    | RetryRequested
    | RestartRequested
    | RerunRequested
    | SkipTaskRequested
    | Continued
)
