"""Task queues for Conductor-protocol workers: one FIFO per queue, long-poll waiters, poll data.

Theory of operation
-------------------
A work task with no in-process executor waits here for a worker to poll it.
As in Conductor (QueueUtils.getQueueName) a queue is named by the task type,
prefixed with the task's domain when it has one: ``"resize"`` or
``"cam1:resize"``.  A poll names a task type and maybe a domain and takes from
exactly that queue: a task queued in a domain is only handed to polls of that
domain.

The domain is chosen when the task is queued (WorkflowExecutor.setTaskDomains
and getActiveDomain): the execution's ``taskToDomain`` maps the task name, or
``*``, to a comma-separated list of domains; the first domain in the list
where a worker of this type polled within ``active_worker_ms`` wins; when no
domain is active the last one in the list is used, and ``NO_DOMAIN`` as that
last entry means "the queue without a domain".

Long poll: a poll that finds nothing parks on the queue's ParkingLot until a
task is pushed there or its timeout passes (the caller's cancel scope).  At
most ``max_waiters`` polls wait at once; beyond that a poll answers at once
with nothing (the stated behaviour at the limit: reject new waiters, never
grow).  A cancelled waiter (client gone, server stopping) leaves the lot by
Trio's cancellation, so nothing is left behind.

Everything here is in memory: the journal knows every queued task as a
SCHEDULED or IN_PROGRESS work task and recovery dispatches each again, which
refills these queues after a restart (see ``edged.runtime.worker_service``).
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass

import trio

from edged.core.commands import DispatchTask

NO_DOMAIN = "NO_DOMAIN"
DOMAIN_SEPARATOR = ":"


def queue_name(task_type: str, domain: str | None) -> str:
    """Conductor's queue name: ``domain:taskType``, or the task type alone."""
    return f"{domain}{DOMAIN_SEPARATOR}{task_type}" if domain else task_type


@dataclass(slots=True)
class PollData:
    """Who polled a queue last, and when (Conductor's PollData)."""

    queue_name: str
    domain: str | None
    worker_id: str | None
    last_poll_ms: int

    def to_json(self) -> dict[str, object]:
        return {
            "queueName": self.queue_name,
            "domain": self.domain,
            "workerId": self.worker_id,
            "lastPollTime": self.last_poll_ms,
        }


class TaskQueues:
    def __init__(self, *, max_waiters: int = 1024, active_worker_ms: int = 10_000) -> None:
        self.pending: dict[str, collections.deque[DispatchTask]] = collections.defaultdict(
            collections.deque
        )
        self.max_waiters = max_waiters
        self.active_worker_ms = active_worker_ms
        self._lots: dict[str, trio.lowlevel.ParkingLot] = {}
        self._waiting = 0
        self._where: dict[str, str] = {}  # task id -> name of the queue holding it
        self._poll_data: dict[tuple[str, str | None], PollData] = {}
        self.stats = {"queued": 0, "woken": 0, "refused_waiters": 0}

    # ------------------------------------------------------------- domains

    def active_domain(self, task_type: str, domains_text: str | None, at_ms: int) -> str | None:
        """The domain a task of `task_type` is queued in, given the mapping's text."""
        if not domains_text:
            return None
        domains = [d.strip() for d in domains_text.split(",")]
        domains = [d for d in domains if d] or [""]
        for domain in domains:
            if domain.upper() == NO_DOMAIN:
                continue
            seen = self._poll_data.get((task_type, domain))
            if seen is not None and at_ms - seen.last_poll_ms < self.active_worker_ms:
                return domain
        last = domains[-1]
        return None if last.upper() == NO_DOMAIN or not last else last

    def record_poll(
        self, task_type: str, domain: str | None, worker_id: str | None, at_ms: int
    ) -> None:
        key = (task_type, domain or None)
        if key not in self._poll_data and len(self._poll_data) >= 4 * self.max_waiters:
            return  # bounded: a flood of made-up task types is not remembered
        self._poll_data[key] = PollData(
            queue_name(task_type, domain), domain or None, worker_id, at_ms
        )

    def poll_data(self, task_type: str | None = None) -> list[PollData]:
        return [
            data
            for (name, _), data in sorted(self._poll_data.items(), key=lambda kv: kv[1].queue_name)
            if task_type is None or name == task_type
        ]

    # -------------------------------------------------------------- queues

    def push(self, cmd: DispatchTask, at_ms: int, *, front: bool = False) -> str:
        """Queue `cmd` in its (resolved) domain's queue; wakes that queue's waiters."""
        name = queue_name(cmd.def_name, self.active_domain(cmd.def_name, cmd.domain, at_ms))
        if cmd.task_id in self._where:
            return self._where[cmd.task_id]  # already waiting (a duplicate dispatch)
        queue = self.pending[name]
        self._where[cmd.task_id] = name
        if front:
            queue.appendleft(cmd)
        else:
            queue.append(cmd)
        self.stats["queued"] += 1
        lot = self._lots.get(name)
        if lot is not None and lot:
            self.stats["woken"] += len(lot)
            lot.unpark_all()
        return name

    def pop(self, name: str) -> DispatchTask:
        """The oldest task of queue `name` (which must not be empty)."""
        cmd = self.pending[name].popleft()
        self._where.pop(cmd.task_id, None)
        return cmd

    def remove(self, task_ids: Iterable[str]) -> None:
        """Take these tasks out of their queues (cancelled, or ended by a late update)."""
        if not self._where:
            return
        for task_id in task_ids:
            name = self._where.pop(task_id, None)
            if name is None:
                continue
            queue = self.pending[name]
            for cmd in queue:
                if cmd.task_id == task_id:
                    queue.remove(cmd)
                    break

    def queued(self, task_id: str) -> bool:
        return task_id in self._where

    def sizes(self) -> dict[str, int]:
        return {name: len(queue) for name, queue in sorted(self.pending.items()) if queue}

    def size(self, name: str) -> int:
        queue = self.pending.get(name)
        return len(queue) if queue else 0

    def wake(self, task_type: str) -> None:
        """Wake the waiters of every queue of `task_type` (a limit may admit one now)."""
        suffix = f"{DOMAIN_SEPARATOR}{task_type}"
        for name, lot in list(self._lots.items()):
            if lot and (name == task_type or name.endswith(suffix)):
                lot.unpark_all()

    async def wait(self, name: str) -> bool:
        """Park until a task is pushed to queue `name`; False at once when too many wait.

        The caller bounds the wait with a cancel scope (the poll's timeout).
        """
        if self._waiting >= self.max_waiters:
            self.stats["refused_waiters"] += 1
            return False
        lot = self._lots.get(name)
        if lot is None:
            lot = self._lots[name] = trio.lowlevel.ParkingLot()
        self._waiting += 1
        try:
            await lot.park()
        finally:
            self._waiting -= 1
            if not lot and self._lots.get(name) is lot:
                del self._lots[name]
        return True

    def waiting(self) -> int:
        return self._waiting
