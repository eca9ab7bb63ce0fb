"""The decider: state x event -> state', commands.  Pure.

Theory of operation
-------------------
An execution moves forward edge by edge.  `decide()` applies one event to a
live `Workflow` in place and returns a `Decision`: the commands to carry out,
the tasks it created or changed, the tasks it removed and the history records
to append.  The runtime journals all of that in one transaction before it
acts on any command.

Inside one decision the work is a queue of *finished tasks*: whenever a task
becomes terminal (a result arrived, a timer fired, or a synchronous operator
such as SWITCH or INLINE ran while being scheduled) its id is queued, and the
drain loop handles it: retry it, let it fail the workflow, or advance to the
next node of the definition (which may schedule more tasks, and so on).  The
queue replaces recursion, so a DO_WHILE whose body is all synchronous cannot
overflow the stack; after `step_budget` items the rest of the queue is saved
in `wf.deferred` and a `ContinueLater` command asks the runtime to come back,
so one busy execution cannot monopolize the engine.  While the workflow is
PAUSED finished tasks are recorded but their handling is deferred the same
way, until resume.

Guarantees the property tests check:
- no I/O, no clock, no randomness: ids derive from (workflow id, seq);
- a duplicate or stale event (unknown task, task already terminal, wrong
  generation, timer whose stamp no longer matches) yields no commands;
- a terminal workflow absorbs every event except retry/restart/rerun;
- replaying the same events on the start state reproduces the live state.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from edged.core import events as ev
from edged.core.commands import (
    CancelTask,
    CancelTimer,
    Command,
    ContinueLater,
    DispatchTask,
    NotifyParent,
    StartTimer,
    StartWorkflow,
    TerminateWorkflow,
)
from edged.core.model import (
    OPERATOR_TYPES,
    ROOT_SCOPE,
    Scope,
    Task,
    TaskStatus,
    Workflow,
    WorkflowStatus,
    with_iteration,
)
from edged.core.navigate import DefinitionIndex, index_of, node_facts
from edged.core.policies import effective_taskdef, max_retries, retry_delay_s, seconds
from edged.core.views import ExpressionContext, workflow_json

try:  # CPython's own SHA-1: no OpenSSL context to set up per hash (~1.6k instructions a task id)
    from _sha1 import sha1 as _sha1
except ImportError:  # an interpreter built without it
    from hashlib import sha1 as _sha1

_NS = uuid.UUID("6f1c4d2e-5b7a-4c3e-9a8d-0e2f4b6c8a1d")
MAX_LOG_LINES = 200


_NS_BYTES = _NS.bytes

# Bits of the 128-bit id: the version nibble (bits 76-79) and the variant (bits 62-63),
# cleared and then set; an id derived from a time-ordered one also takes its creation
# time as its first 48 bits.
_CLEAR = ((1 << 128) - 1) & ~(0xF << 76) & ~(0x3 << 62)
_VARIANT = 0x2 << 62
_V5 = (0x5 << 76) | _VARIANT
_LOW80 = (1 << 80) - 1


def _time_prefix(part: str) -> bytes | None:
    """The 48-bit creation time leading a version 7 id (or an id derived from one)."""
    if len(part) == 36 and part[14] in "78" and part[8] == "-" and part[13] == "-":
        try:
            return bytes.fromhex(part[:8] + part[9:13])
        except ValueError:
            return None
    return None


_LOWER_HEX = frozenset("0123456789abcdef")


def _time_head(part: str) -> str | None:
    """`tttttttt-tttt-8`, how the ids derived from `part` start, if it is time-ordered."""
    if len(part) != 36 or part[14] not in "78" or part[8] != "-" or part[13] != "-":
        return None
    if _LOWER_HEX.issuperset(part[:8]) and _LOWER_HEX.issuperset(part[9:13]):
        return part[:13] + "-8"  # as the bytes below spell it, ~2.5k instructions sooner
    prefix = _time_prefix(part)
    return None if prefix is None else f"{prefix[:4].hex()}-{prefix[4:].hex()}-8"


def _id_bits(first: str) -> tuple[int, int]:
    """(mask, bits) turning a SHA-1 value into the id derived from `first` and more parts."""
    prefix = _time_prefix(first)
    if prefix is None:
        return _CLEAR, _V5
    return _CLEAR & _LOW80, int.from_bytes(prefix, "big") << 80 | 0x8 << 76 | _VARIANT


def _id_text(value: int) -> str:
    h = f"{value:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def derive_id(*parts: str) -> str:
    """A deterministic id for `parts` (task, child workflow and failure workflow ids).

    `str(uuid.uuid5(_NS, "/".join(parts)))` built without a UUID object (~2x cheaper,
    the same string), except when the first part is a time-ordered id (a version 7
    execution id, or an id derived from one): then the first 48 bits are that id's
    creation time and the rest SHA-1 as before, marked version 8, so a new execution's
    tasks land on the last pages of the journal's task index like the execution itself
    (see edged/ids.py). Ids of executions with other ids are exactly as before.
    """
    mask, bits = _id_bits(parts[0]) if parts else (_CLEAR, _V5)
    digest = _sha1(_NS_BYTES + "/".join(parts).encode()).digest()
    return _id_text(int.from_bytes(digest[:16], "big") & mask | bits)


# The variant's hex digit: the top two bits of SHA-1's 17th digit set to 10.
_VARIANT_DIGIT = {f"{n:x}": f"{n & 0x3 | 0x8:x}" for n in range(16)}


class _TaskIds:
    """`derive_id(workflow_id, str(seq))` for one workflow's new tasks, with the
    workflow id's part of the hash and of the id worked out once (a transition that
    starts an execution makes one id per task), spelled from SHA-1's hex digits."""

    __slots__ = ("head", "seed")

    def __init__(self, workflow_id: str) -> None:
        self.seed = _sha1(_NS_BYTES + workflow_id.encode() + b"/")
        # the creation time and version digit of an id derived from a time-ordered one
        self.head = _time_head(workflow_id)

    def of(self, seq: int) -> str:
        h = self.seed.copy()
        h.update(str(seq).encode())
        x = h.hexdigest()
        head = self.head or f"{x[:8]}-{x[8:12]}-5"
        return f"{head}{x[13:16]}-{_VARIANT_DIGIT[x[16]]}{x[17:20]}-{x[20:32]}"


@dataclass(slots=True, init=False)
class Decision:
    commands: list[Command]
    changed: dict[str, Task]
    removed: list[str]
    history: list[tuple[str, dict[str, Any]]]
    workflow_changed: bool

    def __init__(self) -> None:
        # Written out: one per transition, and dataclass default factories cost a call each.
        self.commands = []
        self.changed = {}
        self.removed = []
        self.history = []
        self.workflow_changed = False

    @property
    def empty(self) -> bool:
        return not (self.commands or self.changed or self.removed or self.workflow_changed)


TaskDefLookup = Callable[[str], dict[str, Any] | None]


class Timeouts(NamedTuple):
    """A TaskDef's timeouts in seconds (0: none), as `policies.seconds` reads them."""

    timeout_s: int
    response_s: int
    poll_s: int


_NO_TIMEOUTS = Timeouts(0, 0, 0)


class Decider:
    def __init__(
        self,
        taskdefs: TaskDefLookup | None = None,
        *,
        env: Mapping[str, str] | None = None,
        step_budget: int = 2000,
    ) -> None:
        self.taskdefs: TaskDefLookup = taskdefs or (lambda _name: None)
        self.env: Mapping[str, str] = env or {}
        self.step_budget = step_budget
        # effective TaskDefs are shared by every task of a name: read-only after this
        self._taskdef_cache: dict[tuple[str, int], tuple[Any, dict[str, Any]]] = {}
        self._timeouts_cache: dict[int, tuple[dict[str, Any], Timeouts]] = {}

    def effective_taskdef(self, name: str, registered: dict[str, Any] | None) -> dict[str, Any]:
        """Conductor's defaults under the registered (or inline) TaskDef, made once per object."""
        key = (name, id(registered))
        found = self._taskdef_cache.get(key)
        if found is not None and found[0] is registered:
            return found[1]
        merged = effective_taskdef(name, registered)
        if len(self._taskdef_cache) > 1024:
            self._taskdef_cache.clear()
        self._taskdef_cache[key] = (registered, merged)
        return merged

    def timeouts(self, taskdef: dict[str, Any] | None) -> Timeouts:
        """`taskdef`'s timeouts, read once per TaskDef object (every dispatch needs them)."""
        if taskdef is None:
            return _NO_TIMEOUTS
        found = self._timeouts_cache.get(id(taskdef))
        if found is not None and found[0] is taskdef:
            return found[1]
        timeouts = Timeouts(
            seconds(taskdef, "timeoutSeconds"),
            seconds(taskdef, "responseTimeoutSeconds"),
            seconds(taskdef, "pollTimeoutSeconds"),
        )
        if len(self._timeouts_cache) > 1024:
            self._timeouts_cache.clear()
        self._timeouts_cache[id(taskdef)] = (taskdef, timeouts)
        return timeouts

    def decide(self, wf: Workflow, event: ev.Event) -> Decision:
        tr = Transition(self, wf, event.at_ms)
        tr.apply(event)
        return tr.decision

    def start(self, wf: Workflow) -> Decision:
        """`decide(wf, WorkflowStarted(wf.created_ms))`, without making the event and
        matching it (once per execution: ~3k instructions)."""
        tr = Transition(self, wf, wf.created_ms)
        tr.started()
        tr.drain()
        return tr.decision


class Transition:
    """One decision in progress: the workflow, the clock reading, the output."""

    def __init__(self, decider: Decider, wf: Workflow, at_ms: int) -> None:
        self.decider = decider
        self.wf = wf
        self.at_ms = at_ms
        self.decision = Decision()
        self.queue: deque[str] = deque()
        self.steps = 0
        self.index: DefinitionIndex = index_of(wf.definition)
        # Forks being scheduled and the JOINs they still owe (forks.schedule_fork).
        self.fork_depth = 0
        self.owed_joins: list[tuple[dict[str, Any] | None, Scope]] = []
        self._task_ids: _TaskIds | None = None

    def task_id(self, seq: int) -> str:
        """The id of the workflow's task number `seq`: `derive_id(workflow_id, str(seq))`."""
        ids = self._task_ids
        if ids is None:
            ids = self._task_ids = _TaskIds(self.wf.workflow_id)
        return ids.of(seq)

    # ------------------------------------------------------------------ events

    def apply(self, event: ev.Event) -> None:
        wf = self.wf
        match event:
            case ev.WorkflowStarted():
                self.started()
            case ev.TaskResultReceived():
                inbound.on_result(self, event)
            case ev.TaskStarted():
                inbound.on_started(self, event)
            case ev.TaskLeaseExtended():
                inbound.on_lease_extended(self, event)
            case ev.TaskLogged():
                inbound.on_logged(self, event)
            case ev.TimerFired():
                inbound.on_timer(self, event)
            case ev.ChildWorkflowEnded():
                inbound.on_child_ended(self, event)
            case ev.TaskSignaled():
                inbound.on_signal(self, event)
            case ev.Continued():
                if wf.status is WorkflowStatus.RUNNING and wf.deferred:
                    self.queue.extend(wf.deferred)
                    wf.deferred = []
                    self.touch()
            case ev.PauseRequested():
                admin.pause(self)
            case ev.ResumeRequested():
                admin.resume(self)
            case ev.TerminateRequested():
                if not wf.status.terminal:
                    self.end_workflow(
                        WorkflowStatus.TERMINATED,
                        event.reason or "terminated",
                        trigger_failure=event.trigger_failure_workflow,
                    )
            case ev.RetryRequested():
                admin.retry(self, event)
            case ev.RestartRequested():
                admin.restart(self, event)
            case ev.RerunRequested():
                admin.rerun(self, event)
            case ev.SkipTaskRequested():
                admin.skip(self, event)
        self.drain()

    def started(self) -> None:
        """WorkflowStarted: walk into the definition, unless that happened already."""
        wf = self.wf
        if not (wf.tasks or wf.status.terminal or wf.root_done):
            self.start()

    def start(self) -> None:
        wf = self.wf
        index = self.index
        decision = self.decision
        decision.history.append(("WorkflowStarted", {"name": index.name, "version": index.version}))
        timeout_s = index.timeout_s
        if timeout_s > 0:
            self.emit(
                StartTimer(
                    f"wft:{wf.workflow_id}", wf.workflow_id, wf.created_ms + timeout_s * 1000
                )
            )
        wf.updated_ms = self.at_ms  # self.touch()
        decision.workflow_changed = True
        tasks = wf.definition.get("tasks") or []
        if not tasks:
            wf.root_done = True
            return
        operators.schedule(self, tasks[0], ROOT_SCOPE)

    # ------------------------------------------------------------ task helpers

    def new_task(
        self,
        wt: dict[str, Any],
        scope: Scope,
        *,
        task_type: str | None = None,
        def_name: str | None = None,
        status: TaskStatus = TaskStatus.SCHEDULED,
        resolve_input: bool = True,
    ) -> Task:
        wf = self.wf
        seq = wf.next_seq
        wf.next_seq += 1
        ids = self._task_ids
        if ids is None:
            ids = self._task_ids = _TaskIds(wf.workflow_id)
        task_id = ids.of(seq)  # self.task_id(seq), without the call
        # a node of the pinned definition is read once (~2k instructions), others here
        base_ref, kind, name, params, pinned = self.index.facts.get(id(wt)) or node_facts(wt)
        kind = task_type or kind
        name = def_name or name
        ref = with_iteration(base_ref, scope.iteration) if scope.iteration else base_ref
        taskdef: dict[str, Any] | None = None
        if kind not in OPERATOR_TYPES or kind == "SUB_WORKFLOW":
            inline = wt.get("taskDefinition")
            registered = inline if isinstance(inline, dict) else self.decider.taskdefs(name)
            if kind == "SUB_WORKFLOW" and registered is None:
                taskdef = None
            else:
                taskdef = self.decider.effective_taskdef(name, registered)
        if taskdef and isinstance(taskdef.get("inputTemplate"), dict) and taskdef["inputTemplate"]:
            params = {**taskdef["inputTemplate"], **(params if isinstance(params, dict) else {})}
            pinned = False
        task_input: dict[str, Any] = {}
        if resolve_input and isinstance(params, dict) and params:
            if pinned:  # the pinned definition's own parameters (never changed in place)
                task_input = resolve_params(
                    params, ExpressionContext(wf), task_id=task_id, env=self.decider.env
                )
            else:
                resolved = resolve(
                    params, ExpressionContext(wf), task_id=task_id, env=self.decider.env
                )
                if isinstance(resolved, dict):
                    task_input = resolved
        # The required fields by position, then only what differs from the defaults:
        # matching 14 keywords against Task's 30 parameters cost ~2.5x the construction.
        task = Task(task_id, seq, ref, kind, name, wt, status, task_input)
        task.scheduled_ms = task.update_ms = self.at_ms
        if taskdef is not None:
            task.taskdef = taskdef
        if scope is not ROOT_SCOPE:
            task.iteration, task.loop_id, task.fork_id = (
                scope.iteration,
                scope.loop_id,
                scope.fork_id,
            )
        wf.tasks.append(task)
        # self.changed(task) and self.history(...), written out: twice per started task
        decision = self.decision
        decision.changed[task_id] = task
        wf.updated_ms = self.at_ms
        decision.workflow_changed = True
        decision.history.append(
            (
                "TaskScheduled",
                {"taskId": task_id, "ref": ref, "type": kind, "name": name, "seq": seq},
            )
        )
        return task

    def scope_of(self, task: Task) -> Scope:
        if task.loop_id is None and task.fork_id is None and not task.iteration:
            return ROOT_SCOPE
        return Scope(task.loop_id, task.iteration, task.fork_id)

    def changed(self, task: Task) -> None:
        self.decision.changed[task.task_id] = task
        self.touch()

    def touch(self) -> None:
        self.wf.updated_ms = self.at_ms
        self.decision.workflow_changed = True

    def emit(self, command: Command) -> None:
        self.decision.commands.append(command)

    def history(self, kind: str, body: dict[str, Any]) -> None:
        self.decision.history.append((kind, body))

    def set_status(self, task: Task, status: TaskStatus, reason: str | None) -> None:
        task.status = status
        task.update_ms = self.at_ms
        if status.terminal:
            task.end_ms = self.at_ms
            if not task.start_ms:
                task.start_ms = self.at_ms
            if task.timers:
                for key in task.timers:
                    self.emit(CancelTimer(key))
                task.timers = []
        if reason is not None:
            task.reason = reason
        # self.changed(task) and self.history(...), written out: once per task at least
        decision = self.decision
        decision.changed[task.task_id] = task
        self.wf.updated_ms = self.at_ms
        decision.workflow_changed = True
        body: dict[str, Any] = {"taskId": task.task_id, "ref": task.ref, "status": status._value_}
        if reason:
            body["reason"] = reason
        decision.history.append(("TaskStatusChanged", body))

    def finish(self, task: Task, status: TaskStatus, reason: str | None) -> None:
        """The task ended: record it and queue its handling."""
        self.set_status(task, status, reason)
        self.queue.append(task.task_id)

    def arm_timer(self, task: Task, kind: str, fire_at_ms: int, stamp: str = "") -> None:
        key = f"{kind}:{task.task_id}:{task.generation}"
        if stamp:
            key += f":{stamp}"
        for old in [k for k in task.timers if k.startswith(f"{kind}:")]:
            if old != key:
                task.timers.remove(old)
                self.emit(CancelTimer(old))
        if key not in task.timers:
            task.timers.append(key)
        self.emit(StartTimer(key, self.wf.workflow_id, fire_at_ms))
        self.changed(task)

    def arm_timeouts(self, task: Task, timeouts: Timeouts | None = None) -> None:
        if timeouts is None:
            timeouts = self.decider.timeouts(task.taskdef)
        if timeouts.timeout_s:
            self.arm_timer(task, "tt", (task.start_ms or self.at_ms) + timeouts.timeout_s * 1000)
        self.arm_response_timer(task, timeouts)

    def arm_response_timer(self, task: Task, timeouts: Timeouts | None = None) -> None:
        # Conductor checks responseTimeoutSeconds only for IN_PROGRESS tasks (a worker
        # polled it and must keep updating it); a SCHEDULED task is not answerable yet.
        if timeouts is None:
            timeouts = self.decider.timeouts(task.taskdef)
        response_s = timeouts.response_s
        if (
            response_s
            and task.status is TaskStatus.IN_PROGRESS
            and task.task_type not in OPERATOR_TYPES
        ):
            self.arm_timer(task, "rt", task.update_ms + response_s * 1000, str(task.update_ms))

    def dispatch(self, task: Task) -> None:
        """Hand a work task to the runtime (or arm its start delay first)."""
        if (
            task.start_delay_s
            and not task.start_ms
            and task.scheduled_ms + task.start_delay_s * 1000 > self.at_ms
        ):
            self.arm_timer(task, "delay", task.scheduled_ms + task.start_delay_s * 1000)
            return
        timeouts = self.decider.timeouts(task.taskdef)
        if timeouts.timeout_s or timeouts.response_s:
            self.arm_timeouts(task, timeouts)  # (a SCHEDULED task gets no response timer)
        poll_s = timeouts.poll_s
        if poll_s and task.status is TaskStatus.SCHEDULED and task.task_type not in OPERATOR_TYPES:
            # Conductor's checkTaskPollTimeout: a queued task nobody polls in time
            # times out (by its timeoutPolicy); measured from when it became pollable.
            self.arm_timer(task, "pt", self.at_ms + poll_s * 1000)
        self.emit(dispatch_command(self.wf, task))

    def cancel_timers(self, task: Task, kind: str) -> None:
        """Disarm `task`'s timers of `kind` ("rt", "pt", ...)."""
        for key in [k for k in task.timers if k.startswith(f"{kind}:")]:
            task.timers.remove(key)
            self.emit(CancelTimer(key))
            self.changed(task)

    def _append_logs(self, task: Task, lines: tuple[str, ...]) -> None:
        for line in lines:
            task.logs.append({"log": line, "createdTime": self.at_ms})
        # in the history too, so that live streams (edged logs -f) show them
        self.history("TaskLogged", {"taskId": task.task_id, "ref": task.ref, "logs": list(lines)})
        if len(task.logs) > MAX_LOG_LINES:
            del task.logs[: len(task.logs) - MAX_LOG_LINES]
        self.changed(task)

    # ------------------------------------------------------------- the drain

    def drain(self) -> None:
        wf = self.wf
        while self.queue:
            if wf.status.terminal:
                self.queue.clear()
                break
            if wf.status is WorkflowStatus.PAUSED:
                wf.deferred.extend(self.queue)
                self.queue.clear()
                self.touch()
                break
            if self.steps >= self.decider.step_budget:
                wf.deferred.extend(self.queue)
                self.queue.clear()
                self.touch()
                self.emit(ContinueLater(wf.workflow_id))
                break
            self.steps += 1
            task = wf.task_by_id(self.queue.popleft())
            if task is not None:
                operators.after_terminal(self, task)
        if wf.root_done and wf.status is WorkflowStatus.RUNNING and not wf.deferred:
            self.try_complete()

    def try_complete(self) -> None:
        wf = self.wf
        failed_permissive = []
        for t in wf.tasks:  # one pass, no generator frames: runs at the end of every execution
            status = t.status
            if not status.terminal:
                return
            if not status.successful and not t.retried and t.wt.get("permissive"):
                failed_permissive.append(t)
        if failed_permissive:
            first = failed_permissive[0]
            self.end_workflow(
                WorkflowStatus.FAILED,
                first.reason or f"Task {first.ref} failed",
                failed=first,
                failed_refs=[t.ref for t in failed_permissive],
            )
            return
        self.end_workflow(WorkflowStatus.COMPLETED, None)

    def workflow_output(self) -> dict[str, Any]:
        params = self.wf.definition.get("outputParameters") or {}
        if isinstance(params, dict) and params:
            # the pinned definition's own parameters (never changed in place)
            return resolve_params(params, ExpressionContext(self.wf), env=self.decider.env)
        if self.wf.tasks:
            return dict(self.wf.tasks[-1].output)
        return {}

    def end_workflow(
        self,
        status: WorkflowStatus,
        reason: str | None,
        *,
        failed: Task | None = None,
        failed_refs: list[str] | None = None,
        output: dict[str, Any] | None = None,
        trigger_failure: bool = True,
    ) -> None:
        wf = self.wf
        if wf.status.terminal:
            return
        for task in wf.tasks:
            if task.status.terminal:
                continue
            self.set_status(task, TaskStatus.CANCELED, None)
            if task.task_type == "SUB_WORKFLOW" and task.subworkflow_id:
                # LambdaAndTerminateTaskSpec asserts this wording on the child
                why = reason or f"Workflow is {status.value}"
                self.emit(
                    TerminateWorkflow(
                        task.subworkflow_id,
                        f"Parent workflow has been terminated with reason: {why}",
                    )
                )
            elif task.task_type not in OPERATOR_TYPES:
                self.emit(CancelTask(wf.workflow_id, task.task_id))
        if self.index.timeout_s:
            self.emit(CancelTimer(f"wft:{wf.workflow_id}"))
        wf.status = status
        wf.reason = reason
        wf.ended_ms = self.at_ms
        wf.deferred = []
        if failed_refs:
            wf.failed_refs.extend(r for r in failed_refs if r not in wf.failed_refs)
        elif failed is not None and failed.ref not in wf.failed_refs:
            wf.failed_refs.append(failed.ref)
        if output is not None:
            wf.output = output
        elif status is WorkflowStatus.COMPLETED:
            wf.output = self.workflow_output()
        wf.updated_ms = self.at_ms  # self.touch()
        self.decision.workflow_changed = True
        body: dict[str, Any] = {"status": status._value_}
        if reason:
            body["reason"] = reason
        self.decision.history.append(("WorkflowStatusChanged", body))
        failure_wf = wf.definition.get("failureWorkflow")
        if (
            trigger_failure
            and status in (WorkflowStatus.FAILED, WorkflowStatus.TIMED_OUT)
            and isinstance(failure_wf, str)
            and failure_wf
        ):
            if failure_wf.startswith("$"):
                # "${workflow.input.name}" / "$workflow.input.name": the name comes from the input
                # (WorkflowExecutor.handleWorkflowFailure takes the third path component)
                parts = failure_wf.strip("${}").split(".")
                named = wf.input.get(parts[2]) if len(parts) > 2 else None
                failure_wf = named if isinstance(named, str) else ""
            if failure_wf:
                self.start_failure_workflow(failure_wf, status, reason, failed)
        if wf.parent_id and wf.parent_task_id:
            self.emit(
                NotifyParent(
                    parent_id=wf.parent_id,
                    parent_task_id=wf.parent_task_id,
                    child_id=wf.workflow_id,
                    status=status.value,
                    output=wf.output,
                    reason=reason,
                )
            )

    def start_failure_workflow(
        self, name: str, status: WorkflowStatus, reason: str | None, failed: Task | None
    ) -> None:
        wf = self.wf
        child_id = derive_id(wf.workflow_id, "failure", str(wf.next_seq))
        wf_input: dict[str, Any] = dict(wf.input)
        wf_input.update(
            {
                "workflowId": wf.workflow_id,
                "reason": reason,
                "failureStatus": status.value,
                "failedWorkflow": workflow_json(wf),
            }
        )
        if failed is not None:
            wf_input["failureTaskId"] = failed.task_id
        wf.failure_workflow_id = child_id
        wf.output = {**wf.output, "conductor.failure_workflow": child_id}
        self.emit(
            StartWorkflow(
                workflow_id=child_id,
                name=name,
                version=None,
                input=wf_input,
                correlation_id=wf.correlation_id,
                task_to_domain=dict(wf.task_to_domain),
                priority=wf.priority,
            )
        )


def dispatch_command(wf: Workflow, task: Task) -> DispatchTask:
    """The work order for `task`: its id and attempt are the work's idempotency key."""
    domains = wf.task_to_domain
    return DispatchTask(  # by position (one per work task): see DispatchTask
        wf.workflow_id,
        task.task_id,
        task.task_type,
        task.def_name,
        task.ref,
        task.input,
        task.retry_count,  # attempt
        task.generation,
        task.taskdef,
        (domains.get(task.def_name) or domains.get("*")) if domains else None,
    )


__all__ = [
    "Decider",
    "Decision",
    "Scope",
    "Transition",
    "derive_id",
    "max_retries",
    "retry_delay_s",
]


# Imported last: these modules import this one only for typing or inside functions,
# and importing them here keeps per-call imports off the hot path.
from edged.core import admin, inbound, operators  # noqa: E402
from edged.expr import resolve  # noqa: E402
from edged.expr.params import resolve_params  # noqa: E402
