"""Durable timers, the in-memory half.

The journal holds every armed timer (committed with the state that armed it);
this service holds the same set in a heap and fires each one when due by
handing `TimerFired` to the engine.  At start it is filled from the journal,
so overdue timers fire at once after a crash.  Cancellation is lazy: a
cancelled or re-armed key stays in the heap until it surfaces and is then
skipped, so both operations are O(log n).  Most timers never fire (every
dispatched task arms an hour-long response timeout that its result cancels),
so once stale entries outnumber live ones the heap is rebuilt from the live
set: amortized O(1) per cancel, and memory stays proportional to the armed
timers instead of growing with every task ever dispatched.  A timer that fires twice (crash
between firing and the journal clearing it) is harmless: the decider checks
each timer against the task's current state.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable

import trio


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class TimerService:
    def __init__(self, fire: Callable[[str, str, int], None]) -> None:
        self._fire = fire  # (key, workflow id, due ms), must not block
        self._heap: list[tuple[int, str]] = []
        self._armed: dict[str, tuple[int, str]] = {}  # key -> (fire_at_ms, workflow id)
        self._wakeup = trio.Event()

    def arm(self, key: str, workflow_id: str, fire_at_ms: int) -> None:
        if len(self._heap) > 2 * len(self._armed) + 1024:
            self._compact()  # re-arming also leaves stale entries behind
        self._armed[key] = (fire_at_ms, workflow_id)
        heapq.heappush(self._heap, (fire_at_ms, key))
        if self._heap[0][1] == key:
            self._wakeup.set()

    def cancel(self, key: str) -> None:
        if self._armed.pop(key, None) is not None and len(self._heap) > 2 * len(self._armed) + 1024:
            self._compact()

    def _compact(self) -> None:
        self._heap = [(at, key) for key, (at, _) in self._armed.items()]
        heapq.heapify(self._heap)
        self._wakeup.set()  # the earliest entry may have changed

    def __len__(self) -> int:
        return len(self._armed)

    def next_due_ms(self) -> int | None:
        while self._heap:
            at, key = self._heap[0]
            armed = self._armed.get(key)
            if armed is not None and armed[0] == at:
                return at
            heapq.heappop(self._heap)
        return None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            due = self.next_due_ms()
            self._wakeup = trio.Event()
            if due is None:
                await self._wakeup.wait()
                continue
            delay_s = (due - now_ms()) / 1000
            if delay_s > 0:
                with trio.move_on_after(delay_s):
                    await self._wakeup.wait()
                continue
            at, key = heapq.heappop(self._heap)
            armed = self._armed.get(key)
            if armed is None or armed[0] != at:
                continue
            del self._armed[key]
            self._fire(key, armed[1], at)
            await trio.lowlevel.checkpoint()
