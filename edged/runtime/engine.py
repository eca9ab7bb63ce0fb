"""The engine: one owner task that applies events and writes ahead.

Theory of operation
-------------------
Everything that changes an execution is an *op* in one of two queues:
`internal` (executor results, timer fires, follow-ups of committed commands;
bounded by what is in flight) and `external` (API requests; bounded by a
semaphore, so a flood of requests waits instead of growing memory).  The
owner task takes every op waiting at that moment (up to `max_batch`),
applies each to its execution through the pure decider, and gathers the
results into ONE journal batch: execution and task snapshots, history,
timers, outbox rows, outbox acknowledgements.  Only after that batch is
durable does it carry out the commands (dispatch work, arm timers, start
children, notify parents...) and answer the API callers.

Pipelining: the owner does not wait for a commit before deciding the next
batch.  Up to `max_inflight` decided batches are on their way through the
journal writer (which merges whatever is queued into one transaction: group
commit) while the owner decides more on top of their in-memory state; batches
are finished strictly in order, each only once it is durable.  So the
decider (Trio thread) and SQLite (writer thread) work at the same time.
Every batch of one pipeline belongs to a journal *chain*: if one fails, the
writer refuses every later batch of the chain unapplied, because they were
decided on top of state that never became durable.  Reads shown to clients
(`committed_workflow`, behind GET /api/workflow/{id}) therefore wait for the
batches on their way that touched the execution, or read the journal's copy:
the in-memory state runs ahead of what a power loss would keep.

Scheduler passes: on an idle daemon every pass of Trio's loop is an epoll_wait
and its bookkeeping, so the owner runs twice per batch (decide and queue the
commit; settle it) and yields in between only when more work is ready; a
lingering ack moves the deadline of the owner's sleep instead of waking it; a
settled batch's writes leave from the owner's step (`write_batchers`).

Failure: if a commit fails (disk full, I/O error) nothing of that batch and
of the batches behind it happened.  The owner waits until each has its
answer, starts a new chain, reloads the touched executions from the journal
(throwing away the in-memory transitions), answers API callers with the
journal's error, and puts internal ops back to retry after a pause, so no
executor result or timer is lost and the engine carries on once the journal
accepts writes again.  A decider exception (a bug) is contained the same way
for its execution alone.

Crash: recovery (`recover()`) loads unfinished executions, timers and the
outbox; dispatches every unfinished work task again with the same id and
attempt; replays outbox commands, whose effects acknowledge them in the
journal so each happens once.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import trio

from edged.core import admin
from edged.core import events as ev
from edged.core.commands import (
    CancelTask,
    CancelTimer,
    Command,
    ContinueLater,
    DispatchTask,
    NotifyParent,
    PublishEvent,
    RetryWorkflow,
    StartTimer,
    StartWorkflow,
    TerminateWorkflow,
)
from edged.core.decider import Decider, Decision
from edged.core.model import Task, Workflow
from edged.errors import BadInput, Conflict, EdgedError, JournalError, NotFound
from edged.journal import Batch, HistoryEvent, Journal, OutboxRow, TaskRow, TimerRow
from edged.journal.writer import Completion
from edged.runtime.dispatch import Dispatcher
from edged.runtime.registry import DefinitionRegistry
from edged.runtime.rows import (
    _command_body,
    _command_from_body,
    _execution_row,
    _fresh_copy,
    _from_rows,
    new_workflow,
    recovery_dispatches,
)
from edged.runtime.timers import TimerService, now_ms

__all__ = ["Engine", "EngineSettings", "Op", "Reply", "new_workflow", "recovery_dispatches"]

log = logging.getLogger("edged.engine")

_OUTBOX_KINDS: dict[str, type] = {
    "StartWorkflow": StartWorkflow,
    "NotifyParent": NotifyParent,
    "TerminateWorkflow": TerminateWorkflow,
    "PublishEvent": PublishEvent,
    "RetryWorkflow": RetryWorkflow,
}


class Reply:
    """An op's durable outcome: awaited (`wait`), or handed to `callback(value, error)`.

    The callback form lets a caller that handles many ops (MQTT triggers) be told without
    a task of its own per op; it runs on the owner task, so it must not block or raise.
    The event a waiter parks on is made only when someone waits before the outcome is
    known (a callback reply, one per triggered message, never needs one).
    """

    __slots__ = ("_event", "callback", "error", "is_set", "value")

    def __init__(self, callback: Callable[[Any, BaseException | None], None] | None = None) -> None:
        self._event: trio.Event | None = None
        self.is_set = False
        self.value: Any = None
        self.error: BaseException | None = None
        self.callback = callback

    def set(self, value: Any = None, error: BaseException | None = None) -> None:
        self.value, self.error = value, error
        self.is_set = True
        if self._event is not None:
            self._event.set()
        callback = self.callback
        if callback is not None:
            self.callback = None
            try:
                callback(value, error)
            except Exception:  # a caller's bug must not stop the owner loop
                log.exception("reply callback failed")

    async def wait(self) -> Any:
        if self.is_set:
            await trio.lowlevel.checkpoint()
        else:
            if self._event is None:
                self._event = trio.Event()
            await self._event.wait()
        if self.error is not None:
            raise self.error
        return self.value


@dataclass(slots=True)
class Op:
    workflow_id: str
    event: ev.Event | None = None  # None with `create`: an ack-only op
    create: Workflow | None = None
    admin: bool = False
    reply: Reply | None = None
    ack: int | None = None  # outbox row this op's effect acknowledges
    attempts: int = 0


@dataclass(slots=True)
class EngineSettings:
    max_batch: int = 1024
    max_inflight: int = 4  # decided batches whose commit is under way (pipelining)
    max_external_ops: int = 4096
    recent_cache: int = 512
    retry_pause_s: float = 1.0
    step_budget: int = 2000
    # An acknowledgement alone (a delivered outbox row, nothing else to apply) waits up to
    # this long to ride on the next batch instead of costing a commit of its own; until it
    # is durable a crash re-sends the row, which delivery is at least once anyway.
    ack_linger_s: float = 0.25
    ack_linger_max: int = 256
    env: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class EngineStats:
    batches: int = 0
    ops: int = 0
    commit_failures: int = 0
    decider_errors: int = 0
    pipelined: int = 0  # batches queued for commit while an earlier one was still committing
    undone: int = 0  # batches thrown away because their commit (or an earlier one) failed
    started: int = 0
    finished: int = 0
    last_commit_ms: float = 0.0


@dataclass(slots=True)
class _Flight:
    """One decided batch on its way through the journal (see `Engine._own`)."""

    ops: list[Op]
    batch: Batch
    touched: dict[str, Workflow]
    commands: list[tuple[str, Command]]
    outbox_cmds: list[tuple[str, Command]]
    replies: list[tuple[Reply, Any, BaseException | None]]
    created: list[Workflow]
    ended: list[Workflow]  # terminal when decided: retired once durable
    ended_tasks: list[str]  # polled tasks over when decided: slots freed once durable
    acks: list[int]  # lingering acknowledgements this batch carries (see EngineSettings)
    history_spans: list[tuple[str, int, int]]  # (workflow id, start, end) in batch.history
    done: Completion | None = None
    error: BaseException | None = None  # could not even be queued
    started: float = 0.0
    gone: trio.Event | None = None  # made by a committed read waiting for the batch to settle

    @property
    def settled(self) -> bool:
        return self.done is None or self.done.event.is_set()


class WriteBatcher(Protocol):
    """A connection that sends what a settled batch wrote (its replies' acknowledgements,
    its publishes) in one go at the end of the batch, from the engine's task, instead of
    waking a writer task of its own for it (a scheduler pass per batch on an idle daemon)."""

    def hold_writes(self) -> None: ...

    def release_writes(self) -> None: ...


def _gone(flights: list[_Flight]) -> None:
    """Wake the committed reads waiting for these batches (see `Engine.committed_workflow`)."""
    for flight in flights:
        if flight.gone is not None:
            flight.gone.set()


class Engine:
    def __init__(
        self,
        journal: Journal,
        registry: DefinitionRegistry,
        dispatcher_factory: Callable[[Callable[..., Any]], Dispatcher],
        *,
        settings: EngineSettings | None = None,
    ) -> None:
        self.journal = journal
        self.registry = registry
        self.settings = settings or EngineSettings()
        self.decider = Decider(
            registry.taskdef, env=self.settings.env, step_budget=self.settings.step_budget
        )
        self.dispatcher = dispatcher_factory(self._report_result)
        self.timers = TimerService(self._timer_fired)
        self.live: dict[str, Workflow] = {}
        self.recent: collections.OrderedDict[str, Workflow] = collections.OrderedDict()
        self.stats = EngineStats()
        self.sinks: dict[str, Callable[[PublishEvent], list[Op]]] = {}
        # Called after each commit with an execution and its new history rows
        # (journal id, event), oldest first; must not block or raise.
        self.listeners: list[Callable[[Workflow, list[tuple[int, HistoryEvent]]], None]] = []
        # Connections whose writes a settled batch sends together (see `WriteBatcher`).
        self.write_batchers: list[WriteBatcher] = []
        self._internal: collections.deque[Op] = collections.deque()
        self._external: collections.deque[Op] = collections.deque()
        self._acks: list[int] = []  # lingering outbox acknowledgements (see `post`)
        self._acks_since = 0.0
        self._slots = trio.Semaphore(self.settings.max_external_ops)
        self._wake = trio.Event()
        self._sleep: trio.CancelScope | None = None  # the owner's, while it waits for work
        self._inflight: collections.deque[_Flight] = collections.deque()
        self._chain = 0
        self._end_waiters: dict[str, list[trio.Event]] = {}
        self.accepting = True
        self._processing = False
        self._nursery: trio.Nursery | None = None
        self.journal_error: str | None = None
        self._definitions: dict[tuple[Any, Any], list[dict[str, Any]]] = {}

    # ---------------------------------------------------------------- queues

    def busy(self) -> bool:
        """Ops are queued or a batch is being applied/committed."""
        return bool(
            self._internal or self._external or self._acks or self._processing or self._inflight
        )

    def queue_depths(self) -> tuple[int, int]:
        """(internal, external) ops waiting for the owner task (for /metrics)."""
        return len(self._internal), len(self._external)

    def post(self, op: Op) -> None:
        """Queue an internal op (never blocks; the sources are bounded).

        An op that only acknowledges an outbox row lingers instead: it joins the next
        batch decided for any other reason, or its own once `ack_linger_s` has passed or
        `ack_linger_max` are waiting (at low rates this halves the commits of an MQTT
        echo: the PUBACK of one reply rides on the next message's start).
        """
        if op.ack is not None and op.event is None and op.create is None and op.reply is None:
            if not self._acks:
                self._acks_since = trio.current_time()
                sleep = self._sleep
                if sleep is not None and len(self._inflight) < self.settings.max_inflight:
                    # the owner's sleep ends when the linger does; no wake-up to say so
                    # (it cost an idle daemon one more scheduler pass per delivered row)
                    sleep.deadline = min(
                        sleep.deadline, self._acks_since + self.settings.ack_linger_s
                    )
            self._acks.append(op.ack)
            if len(self._acks) >= self.settings.ack_linger_max:
                self._wake.set()
            return
        self._internal.append(op)
        self._wake.set()

    def _acks_due(self) -> bool:
        acks = self._acks
        return bool(acks) and (
            len(acks) >= self.settings.ack_linger_max
            or trio.current_time() - self._acks_since >= self.settings.ack_linger_s
        )

    async def submit(self, op: Op) -> Any:
        """Queue an external op and wait for its durable result."""
        op.reply = op.reply or Reply()
        await self._slots.acquire()
        self._external.append(op)
        self._wake.set()
        return await op.reply.wait()

    def try_submit(self, op: Op) -> bool:
        """Queue an external op without waiting; False (nothing queued) when the queue is full.

        The op's reply (give it a callback) is set once the op's effect is durable or refused.
        """
        try:
            self._slots.acquire_nowait()
        except trio.WouldBlock:
            return False
        op.reply = op.reply or Reply()
        self._external.append(op)
        self._wake.set()
        return True

    async def _report_result(self, workflow_id: str, event: ev.TaskResultReceived) -> None:
        self.post(Op(workflow_id, event))

    def _timer_fired(self, key: str, workflow_id: str, at_ms: int) -> None:
        self.post(Op(workflow_id, ev.TimerFired(at_ms=max(at_ms, now_ms()), key=key)))

    # ------------------------------------------------------------- the owner

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.dispatcher.run)
            await nursery.start(self.timers.run)
            await self.recover()
            task_status.started()
            await self._own()

    async def _own(self) -> None:
        """The owner loop: decide batches, pipeline their commits, finish them in order."""
        inflight = self._inflight
        while True:
            while inflight and inflight[0].settled:
                self._processing = True  # a failed commit's undo and retry pause count as busy
                try:
                    await self._settle_head()
                finally:
                    self._processing = False
            if (self._internal or self._external or self._acks_due()) and len(
                inflight
            ) < self.settings.max_inflight:
                ops: list[Op] = []
                while self._internal and len(ops) < self.settings.max_batch:
                    ops.append(self._internal.popleft())
                while self._external and len(ops) < self.settings.max_batch:
                    ops.append(self._external.popleft())
                    self._slots.release()
                acks, self._acks = self._acks, []
                self._processing = True
                try:
                    flight = self._decide(ops, acks)
                    if flight is not None:
                        await self._submit_commit(flight)  # no checkpoint while there is room
                finally:
                    self._processing = False  # busy() counts the batches in flight itself
                if self._internal or self._external or (inflight and inflight[0].settled):
                    # more to do at once: yield here so the loop never starves other tasks;
                    # otherwise the wait below is this round's checkpoint (a yield here
                    # would cost an idle daemon one more scheduler pass per batch)
                    await trio.lowlevel.checkpoint()
                continue
            self._wake = trio.Event()
            deadline = math.inf
            if self._acks and len(inflight) < self.settings.max_inflight:
                deadline = self._acks_since + self.settings.ack_linger_s
            with trio.CancelScope(deadline=deadline) as self._sleep:
                await self._wake.wait()
            self._sleep = None

    def _wake_owner(self) -> None:
        self._wake.set()

    def _lookup(self, workflow_id: str) -> Workflow | None:
        return self.live.get(workflow_id) or self.recent.get(workflow_id)

    def _decide(self, ops: list[Op], acks: list[int] | None = None) -> _Flight | None:
        """Apply `ops` through the decider and gather ONE journal batch (no I/O, no await).

        `acks` are lingering outbox acknowledgements (see `post`) the batch also carries.
        """
        acks = acks or []
        batch = Batch(outbox_acked=list(acks))
        touched: dict[str, Workflow] = {}
        tasks: dict[str, tuple[Workflow, Task]] = {}
        removed: list[str] = []
        commands: list[tuple[str, Command]] = []
        replies: list[tuple[Reply, Any, BaseException | None]] = []
        created: list[Workflow] = []
        timers: dict[str, TimerRow | None] = {}
        history_spans: list[tuple[str, int, int]] = []
        history = batch.history
        at_ms = now_ms()
        for op in ops:
            if op.ack is not None:
                batch.outbox_acked.append(op.ack)
            try:
                decision, wf = self._apply(op, created)
            except EdgedError as exc:
                if op.reply:
                    replies.append((op.reply, None, exc))
                continue
            except Exception as exc:  # a decider bug: contain it to this execution
                self.stats.decider_errors += 1
                log.exception(
                    "decider failed on %s for workflow %s", type(op.event).__name__, op.workflow_id
                )
                self.live.pop(op.workflow_id, None)
                self.recent.pop(op.workflow_id, None)
                touched.pop(op.workflow_id, None)
                if op.reply:
                    replies.append((op.reply, None, EdgedError(f"internal error: {exc}")))
                continue
            if decision is None or wf is None:
                if op.reply:
                    replies.append((op.reply, wf.workflow_id if wf else None, None))
                continue
            touched[wf.workflow_id] = wf
            for task in decision.changed.values():
                tasks[task.task_id] = (wf, task)
            for task_id in decision.removed:
                tasks.pop(task_id, None)
                removed.append(task_id)
            for command in decision.commands:
                if isinstance(command, StartTimer):
                    timers[command.key] = TimerRow(
                        command.key, command.workflow_id, command.fire_at_ms, None
                    )
                elif isinstance(command, CancelTimer):
                    timers[command.key] = None
                commands.append((wf.workflow_id, command))
            if decision.history:
                wid = wf.workflow_id
                start = len(history)
                for kind, body in decision.history:
                    history.append(HistoryEvent(wid, at_ms, kind, body))
                history_spans.append((wid, start, len(history)))
            if op.reply:
                replies.append((op.reply, wf.workflow_id, None))
        if not touched and not batch.outbox_acked:
            for reply, value, error in replies:
                reply.set(value, error)
            return None
        for wf in touched.values():
            batch.executions.append(_execution_row(wf))
        task_rows = batch.tasks  # a loop, not a generator: no frame resumed per task
        for wf, t in tasks.values():
            task_rows.append(
                TaskRow(t.task_id, wf.workflow_id, t.seq, t.status._value_, t.to_doc())
            )
        batch.deleted_tasks.extend(removed)
        for key, row in timers.items():
            if row is None:
                batch.timers_cleared.append(key)
            else:
                batch.timers_set.append(row)
        outbox_cmds: list[tuple[str, Command]] = []
        for wid, c in commands:  # loops, not generators: no frame resumed per item
            kind = type(c).__name__
            if kind in _OUTBOX_KINDS:
                outbox_cmds.append((wid, c))
                batch.outbox_added.append(OutboxRow(kind, wid, _command_body(c)))
        ended = [wf for wf in touched.values() if wf.status.terminal]
        ended_tasks = (
            [t.task_id for _, t in tasks.values() if t.status.terminal] + removed
            if self.dispatcher.polled_count()
            else []
        )
        return _Flight(
            ops, batch, touched, commands, outbox_cmds, replies, created, ended, ended_tasks, acks,
            history_spans,
        )  # fmt: skip

    async def _submit_commit(self, flight: _Flight) -> None:
        flight.started = time.perf_counter()
        try:
            flight.done = await self.journal.commit_start(
                flight.batch, chain=self._chain, notify=self._wake_owner
            )
        except JournalError as exc:
            # Nothing was queued.  Batches before it may still commit: settle
            # them in order first, then undo this one (nothing may build on it).
            flight.error = exc
            self._inflight.append(flight)
            while self._inflight:
                await self._settle_head()
            return
        if self._inflight:
            self.stats.pipelined += 1
        self._inflight.append(flight)

    async def _settle_head(self) -> None:
        head = self._inflight[0]
        if head.done is not None and not head.done.event.is_set():
            # set (the usual case: _own settles the settled ones) wait() would only add
            # a scheduler pass
            await head.done.event.wait()
        self._inflight.popleft()
        error = head.error or (head.done.error if head.done is not None else None)
        if error is None:
            self._finish(head)
            _gone([head])
            return
        doomed = [head, *self._inflight]
        self._inflight.clear()
        try:
            await self._pipeline_failed(doomed, error)
        finally:
            _gone(doomed)  # (already, unless the undo itself failed)

    def _finish(self, flight: _Flight) -> None:
        """The batch is durable: carry out its commands, answer its callers."""
        batchers = self.write_batchers
        for batcher in batchers:
            batcher.hold_writes()
        try:
            self._carry_out_batch(flight)
        finally:
            for batcher in batchers:
                batcher.release_writes()

    def _carry_out_batch(self, flight: _Flight) -> None:
        assert flight.done is not None
        result = flight.done.value
        self.journal_error = None
        self.stats.batches += 1
        self.stats.ops += len(flight.ops)
        self.stats.last_commit_ms = (time.perf_counter() - flight.started) * 1000
        self.stats.started += len(flight.created)
        outbox_ids: dict[int, int] = {}
        for (_, command), outbox_id in zip(flight.outbox_cmds, result.outbox_ids, strict=True):
            outbox_ids[id(command)] = outbox_id
        for wf in flight.ended:
            if wf.status.terminal and wf.workflow_id in self.live:
                self._retire(wf)
        if self.listeners and flight.batch.history:
            self._notify(flight.batch.history, flight.history_spans, result.history_ids)
        if flight.ended_tasks:
            # A polled task holds a concurrency slot until its result is durable.
            self.dispatcher.ended(flight.ended_tasks)
        for wid, command in flight.commands:
            self._carry_out(wid, command, outbox_ids.get(id(command)))
        for reply, value, error in flight.replies:
            reply.set(value, error)

    async def _pipeline_failed(self, flights: list[_Flight], exc: BaseException) -> None:
        """A commit failed: it and every later batch of the pipeline did not happen.

        The later batches were decided on top of the failed one's state, so the
        writer refuses them (`chain`); wait until each has its answer, then undo
        all of them at once and start a new chain.
        """
        for flight in flights:
            if flight.done is not None:
                await flight.done.event.wait()
        self._chain += 1
        self.stats.undone += len(flights)
        lost_acks = [ack for flight in flights for ack in flight.acks]
        if lost_acks:  # back in line: they ride on the retried batch (or linger again)
            if not self._acks:
                self._acks_since = trio.current_time()
            self._acks[:0] = lost_acks
        ops: list[Op] = []
        touched: dict[str, Workflow] = {}
        created: list[Workflow] = []
        replies: list[tuple[Reply, Any, BaseException | None]] = []
        for flight in flights:
            ops += flight.ops
            touched.update(flight.touched)
            created += flight.created
            replies += flight.replies
        error = exc if isinstance(exc, JournalError) else JournalError(str(exc))
        await self._commit_failed(ops, touched, created, replies, error, lambda: _gone(flights))

    def _notify(
        self, history: list[HistoryEvent], spans: list[tuple[str, int, int]], ids: list[int]
    ) -> None:
        """Hand each execution its new history rows, in one call per execution and batch."""
        if len(ids) != len(history):
            raise ValueError(f"{len(ids)} history ids for {len(history)} events")
        # paired once, then one slice per span (two slices and a zip each cost ~4k a message)
        pairs = list(zip(ids, history, strict=True))
        by_workflow: dict[str, list[tuple[int, HistoryEvent]]] = {}
        for wid, start, end in spans:  # one span per decision: a workflow may have several
            rows = pairs[start:end]
            known = by_workflow.get(wid)
            if known is None:
                by_workflow[wid] = rows
            else:
                known += rows
        for wid, events in by_workflow.items():
            wf_obj = self._lookup(wid)
            if wf_obj is not None:
                for listener in self.listeners:
                    listener(wf_obj, events)

    def _apply(self, op: Op, created: list[Workflow]) -> tuple[Decision | None, Workflow | None]:
        if op.create is not None:
            wf = op.create
            if wf.workflow_id in self.live or wf.workflow_id in self.recent:
                return None, self._lookup(wf.workflow_id)
            self.live[wf.workflow_id] = wf
            created.append(wf)
            return self.decider.start(wf), wf  # decide(wf, WorkflowStarted(wf.created_ms))
        if op.event is None:
            return None, None
        found = self._lookup(op.workflow_id)
        if found is None:
            if op.admin:
                raise NotFound(f"No such workflow: {op.workflow_id}")
            return None, None
        if op.admin:
            refusal = admin.precondition(found, op.event)
            if refusal is not None:
                kind, message = refusal
                raise {"conflict": Conflict, "bad_input": BadInput, "not_found": NotFound}[kind](
                    message
                )
            if found.workflow_id not in self.live:
                self.live[found.workflow_id] = found
                self.recent.pop(found.workflow_id, None)
        decision = self.decider.decide(found, op.event)
        if not found.status.terminal and found.workflow_id not in self.live:
            self.live[found.workflow_id] = found  # reopened (a child was retried)
            self.recent.pop(found.workflow_id, None)
        if decision.empty and not decision.history:
            return None, found
        return decision, found

    async def _load_then_post(self, op: Op) -> None:
        if self._lookup(op.workflow_id) is None:
            loaded = await self._load(op.workflow_id)
            if loaded is not None and self._lookup(op.workflow_id) is None:
                (self.recent if loaded.status.terminal else self.live)[loaded.workflow_id] = loaded
        self.post(op)

    async def _commit_failed(
        self,
        ops: list[Op],
        touched: dict[str, Workflow],
        created: list[Workflow],
        replies: list[tuple[Reply, Any, BaseException | None]],
        exc: JournalError,
        undone: Callable[[], None],
    ) -> None:
        """Undo `touched` to their journal state, answer the callers, retry internal ops.

        `undone` runs once memory holds the journal's state again, before the retry pause.
        """
        self.stats.commit_failures += 1
        self.journal_error = str(exc)
        log.error("journal commit failed, %d ops not applied: %s", len(ops), exc)
        for wf in created:
            self.live.pop(wf.workflow_id, None)
        for wid in touched:  # all of them before the first await: no reader sees an undone one
            self.live.pop(wid, None)
            self.recent.pop(wid, None)
        for wid in touched:
            restored = await self._load(wid)
            if restored is not None and self._lookup(wid) is None:
                (self.recent if restored.status.terminal else self.live)[wid] = restored
        undone()
        for reply, _, error in replies:
            reply.set(None, error or exc)
        retry = [op for op in ops if op.reply is None]
        if retry:
            await trio.sleep(self.settings.retry_pause_s)
            for op in retry:
                op.attempts += 1
                if op.create is not None:
                    op.create = _fresh_copy(op.create)
                self.post(op)

    def _retire(self, wf: Workflow) -> None:
        self.live.pop(wf.workflow_id, None)
        self.recent[wf.workflow_id] = wf
        self.recent.move_to_end(wf.workflow_id)
        while len(self.recent) > self.settings.recent_cache:
            self.recent.popitem(last=False)
        self.stats.finished += 1
        if self._end_waiters:
            for event in self._end_waiters.pop(wf.workflow_id, ()):
                event.set()

    # ----------------------------------------------------------- commands

    def _carry_out(self, workflow_id: str, command: Command, outbox_id: int | None) -> None:
        match command:
            case DispatchTask():
                self.dispatcher.submit(command)
            case PublishEvent():
                self._publish(command, outbox_id)
            case CancelTask():
                self.dispatcher.cancel(command.task_id)
            case StartTimer():
                self.timers.arm(command.key, command.workflow_id, command.fire_at_ms)
            case CancelTimer():
                self.timers.cancel(command.key)
            case StartWorkflow():
                self._start_requested(command, outbox_id)
            case NotifyParent():
                op = Op(
                    command.parent_id,
                    ev.ChildWorkflowEnded(
                        at_ms=now_ms(),
                        task_id=command.parent_task_id,
                        child_id=command.child_id,
                        status=command.status,
                        output=command.output,
                        reason=command.reason,
                    ),
                    ack=outbox_id,
                )
                if self._lookup(command.parent_id) is None and self._nursery is not None:
                    # a long-finished parent (a child retried much later) left the cache
                    self._nursery.start_soon(self._load_then_post, op)
                else:
                    self.post(op)
            case TerminateWorkflow():
                self.post(
                    Op(
                        command.workflow_id,
                        ev.TerminateRequested(at_ms=now_ms(), reason=command.reason),
                        ack=outbox_id,
                    )
                )
            case RetryWorkflow():
                event = ev.RetryRequested(
                    at_ms=now_ms(), resume_subworkflow_tasks=command.resume_subworkflow_tasks
                )
                self.post(Op(command.workflow_id, event, ack=outbox_id))
            case ContinueLater():
                self.post(Op(command.workflow_id, ev.Continued(at_ms=now_ms())))

    def _start_requested(self, command: StartWorkflow, outbox_id: int | None) -> None:
        try:
            if command.definition is not None:
                definition = self.registry.check_workflow(command.definition)
            else:
                definition = self.registry.workflow(command.name, command.version)
        except EdgedError as exc:
            if command.requested_by is not None:
                wid, task_id = command.requested_by
                self.post(
                    Op(
                        wid,
                        ev.TaskResultReceived(
                            at_ms=now_ms(),
                            task_id=task_id,
                            status="FAILED",
                            reason=f"cannot start {command.name}: {exc}",
                        ),
                        ack=outbox_id,
                    )
                )
            else:
                log.error("cannot start workflow %s: %s", command.name, exc)
                self.post(Op(command.workflow_id, ack=outbox_id))
            return
        wf = new_workflow(
            definition,
            workflow_id=command.workflow_id,
            input=command.input,
            correlation_id=command.correlation_id,
            parent_id=command.parent_id,
            parent_task_id=command.parent_task_id,
            task_to_domain=command.task_to_domain,
            priority=command.priority,
        )
        self.post(Op(wf.workflow_id, create=wf, ack=outbox_id))
        if command.requested_by is not None and command.parent_id is None:
            wid, task_id = command.requested_by  # START_WORKFLOW: done once started
            self.post(
                Op(
                    wid,
                    ev.TaskResultReceived(
                        at_ms=now_ms(),
                        task_id=task_id,
                        status="COMPLETED",
                        output={"workflowId": wf.workflow_id},
                    ),
                )
            )

    def _publish(self, command: PublishEvent, outbox_id: int | None) -> None:
        prefix = command.sink.split(":", 1)[0]
        sink = self.sinks.get(prefix)
        follow: list[Op] = []
        if sink is not None and hasattr(sink, "accept"):
            # a delivering sink (e.g. MQTT): it queues the command and posts the ack op
            # itself once the message is delivered, so the row survives until then
            sink.accept(command, outbox_id)
            return
        if sink is None:
            log.warning("EVENT task %s: no sink %r; event dropped", command.task_id, command.sink)
        else:
            try:
                follow = sink(command)
            except Exception:
                log.exception("sink %s failed", prefix)
        for op in follow:
            self.post(op)
        self.post(Op(command.workflow_id, ack=outbox_id))

    # ------------------------------------------------------------ recovery

    async def recover(self) -> None:
        started = time.perf_counter()
        rows = await self.journal.load_unfinished()
        for row, task_rows in rows:
            wf = _from_rows(row, task_rows)
            wf.definition = self._pinned(wf.definition)
            self.live[wf.workflow_id] = wf
        for timer in await self.journal.load_timers():
            self.timers.arm(timer.key, timer.workflow_id, timer.fire_at_ms)
        for outbox_id, out_row in await self.journal.load_outbox():
            cls = _OUTBOX_KINDS.get(out_row.kind)
            if cls is None:
                log.error(
                    "unknown outbox command %s (id %d); acknowledged", out_row.kind, outbox_id
                )
                self.post(Op(out_row.workflow_id or "", ack=outbox_id))
                continue
            self._carry_out(
                out_row.workflow_id or "", _command_from_body(cls, out_row.body), outbox_id
            )
        for wf in self.live.values():
            for cmd in recovery_dispatches(wf):
                self.dispatcher.submit(cmd)
            if wf.deferred and wf.status.value == "RUNNING":
                self.post(Op(wf.workflow_id, ev.Continued(at_ms=now_ms())))
        if rows:
            elapsed_ms = (time.perf_counter() - started) * 1000
            log.info(
                "recovered %d unfinished executions in %.0f ms",
                len(rows),
                elapsed_ms,
                extra={
                    "fields": {
                        "event": "recovered",
                        "executions": len(rows),
                        "duration_ms": round(elapsed_ms),
                    }
                },
            )

    async def _load(self, workflow_id: str) -> Workflow | None:
        found = await self.journal.load_execution(workflow_id)
        if found is None:
            return None
        row, task_rows = found
        wf = _from_rows(row, task_rows)
        wf.definition = self._pinned(wf.definition)
        return wf

    def _pinned(self, definition: dict[str, Any]) -> dict[str, Any]:
        """One shared object per distinct pinned definition read back from the journal.

        Every execution row carries its own copy of its definition: 10,000
        recovered executions of one workflow would hold 10,000 equal dicts,
        and each copy would be a miss in the journal's `SharedValues` cache
        (keyed by identity), so every later snapshot re-encoded it.
        Definitions are never mutated in place, so sharing is safe.
        """
        key = (definition.get("name"), definition.get("version"))
        variants = self._definitions.setdefault(key, [])
        for known in variants:
            if known == definition:
                return known
        variants.append(definition)
        return definition

    async def committed_workflow(self, workflow_id: str) -> Workflow:
        """The execution as its last durable commit left it: what reads may show.

        A decided batch changes the executions in memory before its commit is durable;
        a reader shown that state could act on a status a power loss then undoes.  When
        a batch on its way touches the execution, this waits for the batches in flight
        (a commit, a few ms); should newer batches have changed it again meanwhile (a
        busy execution), it answers with the journal's copy rather than wait on.
        """
        for waits in range(3):
            pending = [f for f in self._inflight if workflow_id in f.touched]
            if not pending:
                return await self.workflow(workflow_id)
            if waits == 2:
                break
            last = pending[-1]
            if last.gone is None:
                last.gone = trio.Event()
            await last.gone.wait()
        wf = await self._load(workflow_id)
        if wf is None:
            raise NotFound(f"No such workflow: {workflow_id}")
        return wf

    async def workflow(self, workflow_id: str) -> Workflow:
        """The execution as the engine has it now, decided changes included (see
        `committed_workflow` for reads shown to clients)."""
        wf = self._lookup(workflow_id)
        if wf is None:
            wf = await self._load(workflow_id)
        if wf is None:
            raise NotFound(f"No such workflow: {workflow_id}")
        return wf

    async def wait_for_end(self, workflow_id: str) -> Workflow:
        while True:
            wf = await self.workflow(workflow_id)
            if wf.status.terminal and workflow_id not in self.live:
                return wf
            event = trio.Event()
            self._end_waiters.setdefault(workflow_id, []).append(event)
            await event.wait()
