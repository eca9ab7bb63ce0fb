"""The live feed: execution events fanned out to stream subscribers.

Theory of operation
-------------------
`Feed` is an `Engine.listeners` entry.  After every journal commit the
engine's owner task calls it with an execution and the history rows that
commit added (journal id, event), oldest first.  The feed hands each row to
the subscriptions that want it: those following that execution, those
following its workflow name, and those following everything.

Each `Subscription` has a bounded buffer (`capacity` events).  Delivering
is `append` + `Event.set()`: the owner task never waits for a subscriber.
A subscriber whose buffer is full when an event arrives is *cut off*: it is
removed from the feed, keeps the events it already had, and learns
`overflowed` once it has drained them, so its stream can end with a final
event saying so (a client resumes from the journal with Last-Event-ID).
The engine's pace is never the slowest client's pace.

Ordering: the owner task commits batches one at a time and journal ids
increase, so a subscription sees ids in increasing order.  Events committed
before `subscribe` returned are in the journal, events committed after reach
the buffer: a reader that subscribes *first* and then replays the journal
misses nothing, and drops buffered ids it already replayed (see
`edged.api.streams`).

Bounds: at most `max_subscribers` subscriptions (`FeedFull` beyond, which
the API answers with 503) and `capacity` events each.  A client that closes
its connection frees its slot at once (the HTTP server watches the socket
while it streams and cancels the stream, whose close calls `close`).  A
refused subscription also wakes every idle one (its `take` returns early, its
stream writes a keep-alive), a second line for peers that vanish without a
word (no FIN, no reset): their write fails and their slot is freed by the
time the refused client retries.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import trio

from edged.core.model import Workflow
from edged.errors import EdgedError
from edged.journal import HistoryEvent

__all__ = ["Feed", "FeedEvent", "FeedFull", "FeedStatistics", "Subscription"]


class FeedFull(EdgedError):
    """Too many live subscriptions; try again later."""


@dataclass(slots=True)
class FeedEvent:
    """One history row as streams show it (shared by every subscriber: do not mutate,
    except `frame`, the encoded form a stream caches so N subscribers encode it once)."""

    id: int
    workflow_id: str
    name: str | None
    at_ms: int
    kind: str
    body: dict[str, Any]
    frame: bytes | None = field(default=None, compare=False, repr=False)


@dataclass(slots=True)
class FeedStatistics:
    subscribers: int = 0
    delivered: int = 0
    cut_off: int = 0
    refused: int = 0


class Subscription:
    """A bounded buffer of events for one reader; filled by the feed, drained by the reader."""

    def __init__(self, capacity: int, workflow_id: str | None, name: str | None) -> None:
        self.capacity = capacity
        self.workflow_id = workflow_id
        self.name = name
        self.overflowed = False
        self.closed = False
        self._events: collections.deque[FeedEvent] = collections.deque()
        self._wake = trio.Event()

    def _push(self, event: FeedEvent) -> bool:
        """Called by the feed; False when the buffer is full (the caller cuts us off)."""
        if len(self._events) >= self.capacity:
            self.overflowed = True
            self._wake.set()
            return False
        self._events.append(event)
        self._wake.set()
        return True

    def take_nowait(self) -> list[FeedEvent]:
        """Every buffered event, oldest first (may be empty)."""
        events = list(self._events)
        self._events.clear()
        return events

    async def take(self, timeout_s: float) -> list[FeedEvent]:
        """Wait up to `timeout_s` for events; [] on timeout, when the feed pokes (full),
        or once cut off and drained."""
        if not self._events and not self.overflowed:
            self._wake = trio.Event()
            with trio.move_on_after(timeout_s):
                await self._wake.wait()
        return self.take_nowait()

    @property
    def buffered(self) -> int:
        return len(self._events)


class Feed:
    """Engine listener that fans history rows out to bounded subscriptions."""

    def __init__(self, *, capacity: int = 1024, max_subscribers: int = 64) -> None:
        self.capacity = capacity
        self.max_subscribers = max_subscribers
        self.stats = FeedStatistics()
        self._by_workflow: dict[str, set[Subscription]] = {}
        self._by_name: dict[str, set[Subscription]] = {}
        self._everything: set[Subscription] = set()
        self._count = 0

    def statistics(self) -> FeedStatistics:
        return FeedStatistics(
            self._count, self.stats.delivered, self.stats.cut_off, self.stats.refused
        )

    # -- the engine side ---------------------------------------------------

    def __call__(self, wf: Workflow, rows: list[tuple[int, HistoryEvent]]) -> None:
        if not self._count:
            return
        targets: list[Subscription] = []
        for index, key in ((self._by_workflow, wf.workflow_id), (self._by_name, wf.name)):
            subs = index.get(key)
            if subs:
                targets.extend(subs)
        targets.extend(self._everything)
        if not targets:
            return
        events = [
            FeedEvent(hid, h.workflow_id, wf.name, h.at_ms, h.kind, h.body) for hid, h in rows
        ]
        for sub in targets:
            for event in events:
                if not sub._push(event):
                    self._remove(sub)
                    self.stats.cut_off += 1
                    break
            else:
                self.stats.delivered += len(events)

    # -- the reader side ---------------------------------------------------

    @contextmanager
    def subscribe(
        self, *, workflow_id: str | None = None, name: str | None = None
    ) -> Iterator[Subscription]:
        """A subscription for one execution, one workflow name, or (neither) everything."""
        sub = self.open(workflow_id=workflow_id, name=name)
        try:
            yield sub
        finally:
            self.close(sub)

    def open(self, *, workflow_id: str | None = None, name: str | None = None) -> Subscription:
        """Like `subscribe`, for callers that manage the lifetime themselves (`close`)."""
        if self._count >= self.max_subscribers:
            self.stats.refused += 1
            self._poke_all()
            raise FeedFull(f"too many live streams (limit {self.max_subscribers})")
        sub = Subscription(self.capacity, workflow_id, name)
        if workflow_id is not None:
            self._by_workflow.setdefault(workflow_id, set()).add(sub)
        elif name is not None:
            self._by_name.setdefault(name, set()).add(sub)
        else:
            self._everything.add(sub)
        self._count += 1
        return sub

    def _poke_all(self) -> None:
        # Full: make every idle stream write a keep-alive now, so that streams
        # whose client is gone fail their write and free their slot before the
        # refused client retries (a dead client is only noticed by a write).
        for index in (self._by_workflow, self._by_name):
            for subs in index.values():
                for sub in subs:
                    sub._wake.set()
        for sub in self._everything:
            sub._wake.set()

    def close(self, sub: Subscription) -> None:
        """Remove `sub` (idempotent)."""
        self._remove(sub)
        sub.closed = True

    def _remove(self, sub: Subscription) -> None:
        removed = False
        if sub.workflow_id is not None:
            removed = _discard(self._by_workflow, sub.workflow_id, sub)
        elif sub.name is not None:
            removed = _discard(self._by_name, sub.name, sub)
        elif sub in self._everything:
            self._everything.discard(sub)
            removed = True
        if removed:
            self._count -= 1


def _discard(index: dict[str, set[Subscription]], key: str, sub: Subscription) -> bool:
    subs = index.get(key)
    if subs is None or sub not in subs:
        return False
    subs.discard(sub)
    if not subs:
        del index[key]
    return True
