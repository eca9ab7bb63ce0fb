"""Received messages: one bounded queue per subscription, read round-robin.

Theory of operation: every received message is routed to the first subscription (in the
order they were made) whose filter matches its topic; messages that match none (retained or
queued messages of a filter subscribed in an earlier run) go to a catch-all queue. Each queue
holds at most ``max_per_queue`` messages. At the bound the OLDEST message of that queue is
dropped and counted; the caller gets it back to log it (and, with manual ack, to leave it
un-acknowledged so the broker redelivers it on the next session resume). Readers take one
message from each non-empty queue in turn, so a flood on one subscription delays another
subscription's next message by at most one message per flooding queue; it never starves it.

Memory is bounded by (subscriptions + 1) x max_per_queue messages x max payload size.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from edged_mqtt.topics import compile_filter

CATCH_ALL = ""


@dataclass(frozen=True, slots=True)
class MqttMessage:
    """One received PUBLISH. ``connection`` numbers the connection it arrived on: an ack is
    only meaningful on that same connection (packet ids are reused across connections)."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    mid: int
    dup: bool = False
    properties: Any = None  # paho.mqtt.properties.Properties on MQTT 5, else None
    subscription: str = CATCH_ALL
    connection: int = 0
    received_at_ms: int = 0


@dataclass(slots=True)
class Inbox:
    max_per_queue: int
    _queues: dict[str, deque[MqttMessage]] = field(default_factory=dict)
    _order: deque[str] = field(default_factory=deque)  # round-robin cursor over queue keys
    dropped: int = 0
    _matchers: dict[str, Callable[[str], bool]] = field(default_factory=dict)
    _count: int = 0  # messages queued, over all queues

    def __post_init__(self) -> None:
        if self.max_per_queue < 1:
            raise ValueError("max_per_queue must be >= 1")
        self._add(CATCH_ALL)

    def _add(self, key: str) -> None:
        if key not in self._queues:
            self._queues[key] = deque()
            self._order.append(key)

    def add_route(self, topic_filter: str) -> None:
        """Give ``topic_filter`` its own queue (idempotent)."""
        self._add(topic_filter)

    def routes(self) -> Iterator[str]:
        return (key for key in self._queues if key != CATCH_ALL)

    def route(self, topic: str) -> str:
        """The subscription a message on ``topic`` belongs to (CATCH_ALL when none)."""
        matchers = self._matchers
        for key in self._queues:
            if key == CATCH_ALL:
                continue
            matches = matchers.get(key)
            if matches is None:
                matches = matchers[key] = compile_filter(key)
            if matches(topic):
                return key
        return CATCH_ALL

    def put(self, message: MqttMessage) -> MqttMessage | None:
        """Queue ``message`` (its ``subscription`` names the queue); return the message
        dropped to make room, if any."""
        key = message.subscription if message.subscription in self._queues else CATCH_ALL
        queue = self._queues[key]
        evicted = None
        if len(queue) >= self.max_per_queue:
            evicted = queue.popleft()
            self.dropped += 1
        else:
            self._count += 1
        queue.append(message)
        return evicted

    def empty(self) -> bool:
        return not self._count

    def get_nowait(self) -> MqttMessage | None:
        """The next message in round-robin order, or None when every queue is empty."""
        for _ in range(len(self._order)):
            key = self._order[0]
            self._order.rotate(-1)
            queue = self._queues[key]
            if queue:
                self._count -= 1
                return queue.popleft()
        return None

    def __len__(self) -> int:
        return self._count
