"""Execution state: the values the decider reads and writes.

A `Workflow` is one execution of a definition, pinned to the (normalized)
definition it started with; its `tasks` are kept in scheduling order (`seq`).
Both are mutable dataclasses on purpose: the decider applies an event to the
live state in place and reports which tasks it touched, so a transition costs
O(changed tasks), not O(execution).  Purity is kept where it matters: the
decider does no I/O, reads no clock and draws no random numbers; every time
and id it uses arrives in the event or is derived from the state.

`to_doc`/`from_doc` give the journal's representation (plain JSON values),
`workflow_json`/`task_json` give Conductor's Workflow and Task JSON shapes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class WorkflowStatus(StrEnum):
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    TIMED_OUT = "TIMED_OUT"
    TERMINATED = "TERMINATED"
    PAUSED = "PAUSED"

    # Plain per-member attributes (set below the class), not properties: the
    # decider reads them on every scan of a workflow's tasks, ~15x cheaper.
    terminal: bool
    successful: bool


class TaskStatus(StrEnum):
    IN_PROGRESS = "IN_PROGRESS"
    CANCELED = "CANCELED"
    FAILED = "FAILED"
    FAILED_WITH_TERMINAL_ERROR = "FAILED_WITH_TERMINAL_ERROR"
    COMPLETED = "COMPLETED"
    COMPLETED_WITH_ERRORS = "COMPLETED_WITH_ERRORS"
    SCHEDULED = "SCHEDULED"
    TIMED_OUT = "TIMED_OUT"
    SKIPPED = "SKIPPED"

    terminal: bool  # per-member attributes, set below (see WorkflowStatus)
    successful: bool

    @property
    def retriable(self) -> bool:
        return self not in (TaskStatus.FAILED_WITH_TERMINAL_ERROR,)


for _wf_status in WorkflowStatus:
    _wf_status.terminal = _wf_status not in (WorkflowStatus.RUNNING, WorkflowStatus.PAUSED)
    _wf_status.successful = _wf_status in (WorkflowStatus.COMPLETED, WorkflowStatus.PAUSED)
for _task_status in TaskStatus:
    _task_status.terminal = _task_status not in (TaskStatus.IN_PROGRESS, TaskStatus.SCHEDULED)
    _task_status.successful = _task_status in (
        TaskStatus.COMPLETED,
        TaskStatus.COMPLETED_WITH_ERRORS,
        TaskStatus.SKIPPED,
    )


# Operators the decider carries out itself.  Everything else is work and goes
# to an executor through a binding (or waits for a Conductor-protocol poller).
SYNC_SYSTEM_TYPES = frozenset(
    {
        "DECISION",
        "SWITCH",
        "FORK_JOIN",
        "FORK_JOIN_DYNAMIC",
        "SET_VARIABLE",
        "INLINE",
        "LAMBDA",
        "JSON_JQ_TRANSFORM",
        "NOOP",
        "TERMINATE",
        "EXCLUSIVE_JOIN",
        "EVENT",
    }
)
ASYNC_SYSTEM_TYPES = frozenset(
    {"JOIN", "DO_WHILE", "SUB_WORKFLOW", "START_WORKFLOW", "WAIT", "HUMAN"}
)
# A set, not a frozenset: adapters add their publish task types at start-up
# (operators.register_publish_type), before any decision is taken.
OPERATOR_TYPES: set[str] = set(SYNC_SYSTEM_TYPES | ASYNC_SYSTEM_TYPES | {"DYNAMIC"})


@dataclass(slots=True, eq=True)
class Task:
    task_id: str
    seq: int
    ref: str  # referenceTaskName; loop iterations carry the `__i` suffix
    task_type: str
    def_name: str
    wt: dict[str, Any]  # the WorkflowTask node this task was made from
    status: TaskStatus
    input: dict[str, Any]
    output: dict[str, Any] = field(default_factory=dict)
    scheduled_ms: int = 0
    start_ms: int = 0
    end_ms: int = 0
    update_ms: int = 0
    retry_count: int = 0
    poll_count: int = 0
    iteration: int = 0
    reason: str | None = None
    worker_id: str | None = None
    callback_after_s: int = 0
    start_delay_s: int = 0
    retried: bool = False  # a later attempt replaced this one
    retried_task_id: str | None = None
    subworkflow_id: str | None = None
    taskdef: dict[str, Any] | None = None  # TaskDef snapshot taken at scheduling
    loop_id: str | None = None  # task id of the DO_WHILE this task iterates in
    fork_id: str | None = None  # task id of the dynamic fork that spawned it
    generation: int = 0  # bumped by rerun so stale results are recognized
    logs: list[dict[str, Any]] = field(default_factory=list)
    timers: list[str] = field(default_factory=list)  # keys of armed timers
    marker: int = 0  # operator progress: DO_WHILE iteration whose body ended

    @property
    def base_ref(self) -> str:
        return strip_iteration(self.ref)

    def to_doc(self) -> dict[str, Any]:
        """The journal's document: fields still at their default are left out.

        About half of a task's fields keep their default for its whole life, and
        every transition rewrites the documents of the tasks it touched: leaving
        them out saves ~190 of ~750 bytes per document.  `from_doc` reads both
        this and the complete documents older journals hold.
        """
        doc: dict[str, Any] = {
            "taskId": self.task_id,
            "seq": self.seq,
            "ref": self.ref,
            "type": self.task_type,
            "defName": self.def_name,
            "wt": self.wt,
            "status": self.status._value_,
            "input": self.input,
            "scheduledMs": self.scheduled_ms,
            "updateMs": self.update_ms,
        }
        if self.output:
            doc["output"] = self.output
        if self.start_ms:
            doc["startMs"] = self.start_ms
        if self.end_ms:
            doc["endMs"] = self.end_ms
        if self.retry_count:
            doc["retryCount"] = self.retry_count
        if self.poll_count:
            doc["pollCount"] = self.poll_count
        if self.iteration:
            doc["iteration"] = self.iteration
        if self.reason is not None:
            doc["reason"] = self.reason
        if self.worker_id is not None:
            doc["workerId"] = self.worker_id
        if self.callback_after_s:
            doc["callbackAfterS"] = self.callback_after_s
        if self.start_delay_s:
            doc["startDelayS"] = self.start_delay_s
        if self.retried:
            doc["retried"] = self.retried
        if self.retried_task_id is not None:
            doc["retriedTaskId"] = self.retried_task_id
        if self.subworkflow_id is not None:
            doc["subWorkflowId"] = self.subworkflow_id
        if self.taskdef is not None:
            doc["taskdef"] = self.taskdef
        if self.loop_id is not None:
            doc["loopId"] = self.loop_id
        if self.fork_id is not None:
            doc["forkId"] = self.fork_id
        if self.generation:
            doc["generation"] = self.generation
        if self.logs:
            doc["logs"] = self.logs
        if self.timers:
            doc["timers"] = self.timers
        if self.marker:
            doc["marker"] = self.marker
        return doc

    @classmethod
    def from_doc(cls, d: dict[str, Any]) -> Task:
        get = d.get
        return cls(
            task_id=d["taskId"],
            seq=d["seq"],
            ref=d["ref"],
            task_type=d["type"],
            def_name=d["defName"],
            wt=d["wt"],
            status=TaskStatus(d["status"]),
            input=d["input"],
            output=get("output") or {},
            scheduled_ms=d["scheduledMs"],
            start_ms=get("startMs", 0),
            end_ms=get("endMs", 0),
            update_ms=d["updateMs"],
            retry_count=get("retryCount", 0),
            poll_count=get("pollCount", 0),
            iteration=get("iteration", 0),
            reason=get("reason"),
            worker_id=get("workerId"),
            callback_after_s=get("callbackAfterS", 0),
            start_delay_s=get("startDelayS", 0),
            retried=get("retried", False),
            retried_task_id=get("retriedTaskId"),
            subworkflow_id=get("subWorkflowId"),
            taskdef=get("taskdef"),
            loop_id=get("loopId"),
            fork_id=get("forkId"),
            generation=get("generation", 0),
            logs=get("logs") or [],
            timers=get("timers") or [],
            marker=get("marker", 0),
        )


@dataclass(slots=True, eq=True)
class Workflow:
    workflow_id: str
    definition: dict[str, Any]  # normalized WorkflowDef, pinned at start
    status: WorkflowStatus
    input: dict[str, Any]
    created_ms: int
    output: dict[str, Any] = field(default_factory=dict)
    variables: dict[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None
    priority: int = 0
    parent_id: str | None = None
    parent_task_id: str | None = None
    updated_ms: int = 0
    ended_ms: int = 0
    reason: str | None = None
    failed_refs: list[str] = field(default_factory=list)
    task_to_domain: dict[str, str] = field(default_factory=dict)
    idempotency_key: str | None = None
    failure_workflow_id: str | None = None
    next_seq: int = 1
    deferred: list[str] = field(default_factory=list)  # finished tasks not yet acted on
    root_done: bool = False  # the root task list has been walked to its end
    last_event_id: str | None = None  # dedupe key of the last applied event
    tasks: list[Task] = field(default_factory=list)

    @property
    def name(self) -> str:
        name = self.definition.get("name", "")
        return name if isinstance(name, str) else ""

    @property
    def version(self) -> int:
        version = self.definition.get("version", 1)
        return version if isinstance(version, int) else 1

    def task_by_id(self, task_id: str) -> Task | None:
        for task in reversed(self.tasks):
            if task.task_id == task_id:
                return task
        return None

    def latest_by_ref(self, ref: str) -> Task | None:
        """The newest attempt of `ref` (exact ref, e.g. `t1__2` or `t1`)."""
        for task in reversed(self.tasks):
            if task.ref == ref:
                return task
        return None

    def to_doc(self) -> dict[str, Any]:
        """The journal's document; fields at their default are left out (see `Task.to_doc`)."""
        doc: dict[str, Any] = {
            "definition": self.definition,
            "input": self.input,
            "output": self.output,  # search summaries print it, `{}` included
            "nextSeq": self.next_seq,
        }
        if self.variables:
            doc["variables"] = self.variables
        if self.priority:
            doc["priority"] = self.priority
        if self.parent_task_id is not None:
            doc["parentTaskId"] = self.parent_task_id
        if self.reason is not None:
            doc["reason"] = self.reason
        if self.failed_refs:
            doc["failedRefs"] = self.failed_refs
        if self.task_to_domain:
            doc["taskToDomain"] = self.task_to_domain
        if self.failure_workflow_id is not None:
            doc["failureWorkflowId"] = self.failure_workflow_id
        if self.deferred:
            doc["deferred"] = self.deferred
        if self.root_done:
            doc["rootDone"] = self.root_done
        if self.last_event_id is not None:
            doc["lastEventId"] = self.last_event_id
        return doc

    @classmethod
    def from_doc(
        cls,
        *,
        workflow_id: str,
        status: str,
        parent_id: str | None,
        correlation_id: str | None,
        idempotency_key: str | None,
        created_ms: int,
        updated_ms: int,
        ended_ms: int | None,
        doc: dict[str, Any],
        tasks: list[Task],
    ) -> Workflow:
        get = doc.get
        return cls(
            workflow_id=workflow_id,
            definition=doc["definition"],
            status=WorkflowStatus(status),
            input=doc["input"],
            created_ms=created_ms,
            output=doc["output"],
            variables=get("variables") or {},
            correlation_id=correlation_id,
            priority=get("priority", 0),
            parent_id=parent_id,
            parent_task_id=get("parentTaskId"),
            updated_ms=updated_ms,
            ended_ms=ended_ms or 0,
            reason=get("reason"),
            failed_refs=get("failedRefs") or [],
            task_to_domain=get("taskToDomain") or {},
            idempotency_key=idempotency_key,
            failure_workflow_id=get("failureWorkflowId"),
            next_seq=doc["nextSeq"],
            deferred=get("deferred") or [],
            root_done=get("rootDone", False),
            last_event_id=get("lastEventId"),
            tasks=tasks,
        )


@dataclass(frozen=True, slots=True)
class Scope:
    """Where a task lives: which DO_WHILE iteration, which dynamic fork."""

    loop_id: str | None = None
    iteration: int = 0
    fork_id: str | None = None


ROOT_SCOPE = Scope()  # frozen: shared by every task outside loops and dynamic forks


def strip_iteration(ref: str) -> str:
    """`t1__3` -> `t1` (Conductor's TaskUtils.removeIterationFromTaskRefName)."""
    head, sep, tail = ref.rpartition("__")
    if sep and tail.isdigit():
        return head
    return ref


def with_iteration(ref: str, iteration: int) -> str:
    return f"{ref}__{iteration}"
