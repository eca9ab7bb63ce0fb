"""The Conductor worker protocol on the engine's side: polls, logs, queue sizes.

Theory of operation
-------------------
A poll takes up to ``count`` tasks from the dispatcher's queue for (task
type, domain) within the task's limits, then records each as started: one
``TaskStarted`` op per task through the engine's owner (IN_PROGRESS,
workerId, pollCount + 1, startTime once, response timeout armed), all in one
group commit.  Only after that commit does the worker get the tasks, so a
task a worker holds is always IN_PROGRESS in the journal.  A queue entry whose
task meanwhile ended (a late update, a cancel) is dropped at this point, as
ExecutionService.poll does.  A poll that finds nothing waits (long poll) on
the queue until a task is queued there or its ``timeout`` passes; Conductor
caps that at 5 s (a larger value is a 400).

Crashes and lost answers:

- crash after the commit, before the answer: the task is IN_PROGRESS in the
  journal; recovery dispatches every unfinished work task again, so it is
  back in its queue after the restart and the next poll hands it out (its
  pollCount says it was polled before);
- the answer is lost (the client went away): the task stays with the worker
  id that never got it until ``responseTimeoutSeconds`` times it out and it
  is retried, exactly as in Conductor;
- a worker that got the task before a crash and answers after the restart
  is accepted: its update names the task id, the task is still pending, so
  the result applies and the queued copy is taken out of the queue.  A
  result for a task that has already ended is acknowledged and ignored
  (Conductor answers 200 there too), so no result is recorded twice.

Known differences from Conductor: a task's domain is chosen when it is
queued and not journaled, so after a restart a task mapped to several
domains is queued by the poll data seen since the restart (none at first:
the last entry of its list); and ``timeoutSeconds`` counts from when a task
is queued, not from its first poll (in-process handlers never poll), so an
unpolled task can time out by it as well as by ``pollTimeoutSeconds``.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from edged.core import events as ev
from edged.core.commands import DispatchTask
from edged.core.decider import dispatch_command
from edged.core.model import Task, TaskStatus, Workflow
from edged.core.views import task_json
from edged.errors import BadInput, EdgedError, NotFound
from edged.runtime.engine import Engine, Op, Reply
from edged.runtime.task_queues import queue_name
from edged.runtime.timers import now_ms

log = logging.getLogger("edged.workers")

JsonDict = dict[str, Any]

MAX_POLL_TIMEOUT_MS = 5000  # ExecutionService.MAX_POLL_TIMEOUT_MS
MAX_POLL_COUNT = 1000


class WorkerService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.dispatcher = engine.dispatcher
        self.queues = engine.dispatcher.queues

    # ------------------------------------------------------------------ poll

    async def poll(
        self,
        task_type: str,
        *,
        worker_id: str | None,
        domain: str | None,
        count: int,
        timeout_ms: int,
    ) -> list[JsonDict]:
        """Up to ``count`` tasks, waiting up to ``timeout_ms`` for the first one."""
        if timeout_ms > MAX_POLL_TIMEOUT_MS:
            raise BadInput("Long Poll Timeout value cannot be more than 5 seconds")
        if count < 1 or count > MAX_POLL_COUNT:
            raise BadInput(f"count must be between 1 and {MAX_POLL_COUNT}")
        domain = domain or None
        self.queues.record_poll(task_type, domain, worker_id, now_ms())
        name = queue_name(task_type, domain)
        deadline = trio.current_time() + max(0, timeout_ms) / 1000
        while True:
            tasks = await self._hand_out(task_type, domain, worker_id, count)
            if tasks:
                try:
                    await trio.lowlevel.checkpoint_if_cancelled()
                except trio.Cancelled:
                    # the client left while the poll was journaled: the next poll gets them
                    self._requeue(tasks)
                    raise
                return tasks
            if trio.current_time() >= deadline:
                return tasks
            with trio.move_on_at(deadline):
                if not await self.queues.wait(name):
                    return []  # too many polls waiting: answer now, empty

    async def _hand_out(
        self, task_type: str, domain: str | None, worker_id: str | None, count: int
    ) -> list[JsonDict]:
        handed = self.dispatcher.poll(task_type, count, domain)
        if not handed:
            return []
        # Shielded: once tasks left the queue they must be either given out or
        # put back, whatever happens to the request that asked for them.
        out: list[JsonDict] = []
        with trio.CancelScope(shield=True):
            at = now_ms()
            posted: list[tuple[DispatchTask, Reply]] = []
            for cmd in handed:
                if self._current(cmd) is None:
                    self.dispatcher.ended((cmd.task_id,))  # ended while queued
                    continue
                reply = Reply()
                event = ev.TaskStarted(
                    at_ms=at, task_id=cmd.task_id, worker_id=worker_id, generation=cmd.generation
                )
                self.engine.post(Op(cmd.workflow_id, event, reply=reply))
                posted.append((cmd, reply))
            for cmd, reply in posted:
                try:
                    await reply.wait()
                except EdgedError as exc:
                    # not journaled: back to the head of its queue for the next poll
                    log.warning("poll of %s not recorded (%s); requeued", cmd.task_id, exc)
                    self.dispatcher.ended((cmd.task_id,))
                    self.queues.push(cmd, now_ms(), front=True)
                    continue
                found = self._current(cmd)
                if found is None or found[1].status is not TaskStatus.IN_PROGRESS:
                    self.dispatcher.ended((cmd.task_id,))
                    continue
                out.append(task_json(*found))
        return out

    def _requeue(self, tasks: list[JsonDict]) -> None:
        at = now_ms()
        for doc in reversed(tasks):
            found = self._current_by_id(str(doc["workflowInstanceId"]), str(doc["taskId"]))
            if found is None:
                continue
            wf, task = found
            self.dispatcher.ended((task.task_id,))
            self.queues.push(dispatch_command(wf, task), at, front=True)

    def _current_by_id(self, workflow_id: str, task_id: str) -> tuple[Workflow, Task] | None:
        wf = self.engine.live.get(workflow_id)
        task = wf.task_by_id(task_id) if wf is not None else None
        if wf is None or task is None or task.status.terminal:
            return None
        return wf, task

    def _current(self, cmd: DispatchTask) -> tuple[Workflow, Task] | None:
        """The queued task, if it still waits for exactly this dispatch."""
        wf = self.engine.live.get(cmd.workflow_id)
        if wf is None or wf.status.terminal:
            return None
        task = wf.task_by_id(cmd.task_id)
        if task is None or task.status.terminal or task.generation != cmd.generation:
            return None
        return wf, task

    async def check_result(self, result: JsonDict) -> None:
        wf = await self.engine.workflow(str(result["workflowInstanceId"]))
        if wf.task_by_id(str(result["taskId"])) is None:
            raise NotFound(f"No such task: {result['taskId']} in workflow {wf.workflow_id}")

    async def next_task(self, result: JsonDict) -> JsonDict | None:
        """update-v2's answer: the next task of the updated task's type for that worker."""
        wf = await self.engine.workflow(str(result["workflowInstanceId"]))
        task = wf.task_by_id(str(result["taskId"]))
        if task is None:
            return None
        mapping = wf.task_to_domain.get(task.def_name) or wf.task_to_domain.get("*")
        domain = self.queues.active_domain(task.def_name, mapping, now_ms())
        tasks = await self.poll(
            task.def_name, worker_id=result.get("workerId"), domain=domain, count=1, timeout_ms=0
        )
        return tasks[0] if tasks else None

    # ------------------------------------------------------------------ logs

    def _find(self, task_id: str) -> tuple[Workflow, Task] | None:
        for source in (self.engine.live, self.engine.recent):
            for wf in list(source.values()):
                task = wf.task_by_id(task_id)
                if task is not None:
                    return wf, task
        return None

    async def add_log(self, task_id: str, line: str) -> None:
        found = self._find(task_id)
        if found is None:
            raise NotFound(f"No such task found by id: {task_id}")
        wf, _task = found
        await self.engine.submit(
            Op(wf.workflow_id, ev.TaskLogged(at_ms=now_ms(), task_id=task_id, logs=(line,)))
        )

    async def logs(self, task_id: str) -> list[JsonDict]:
        found = self._find(task_id)
        if found is None:
            return []  # ExecutionService.getTaskLogs: an empty list
        return [
            {"log": entry.get("log"), "taskId": task_id, "createdTime": entry.get("createdTime")}
            for entry in found[1].logs
        ]

    # ---------------------------------------------------------------- queues

    def queue_sizes(self, names: list[str]) -> dict[str, int]:
        return {name: self.queues.size(name) for name in names}

    def queue_size(self, task_type: str, domain: str | None) -> int:
        return self.queues.size(queue_name(task_type, domain or None))

    def all_queues(self) -> dict[str, int]:
        return self.queues.sizes()

    def all_queues_verbose(self) -> dict[str, dict[str, dict[str, int]]]:
        polled = self.dispatcher.polled_by_name()  # handed out, not yet over ("unacked")
        names = set(self.queues.sizes()) | set(polled)
        return {
            name: {"a": {"size": self.queues.size(name), "uacked": polled.get(name, 0)}}
            for name in sorted(names)
        }

    def poll_data(self, task_type: str | None) -> list[JsonDict]:
        return [data.to_json() for data in self.queues.poll_data(task_type)]

    def statistics(self) -> JsonDict:
        return {
            "queued": sum(self.queues.sizes().values()),
            "polled": self.dispatcher.polled_count(),
            "waiting_polls": self.queues.waiting(),
            **self.queues.stats,
        }
