"""MQTT_REQUEST: MQTT 5 request/response as a task, and the correlator it waits on.

Theory of operation. The task publishes its request with the MQTT 5 Response Topic
``edged/<client id>/replies/<task id>`` and Correlation Data ``<task id>:<attempt>``, then
waits for a reply carrying that correlation. The adapter subscribes
``edged/<client id>/replies/#`` once, at start (so replies queued by the broker while the
daemon was down are routed too), and hands each reply to ``Correlator.deliver``.

- Reply -> COMPLETED, output ``{"response": <JSON, else text, else base64>, "topic",
  "correlation", "contentType", "userProperties"}``.
- No reply within ``timeout_s`` (input, default 10 s; the clock starts when the task starts
  and includes waiting for the broker) -> FAILED with the reason; the TaskDef's retry
  policy decides. A reply that arrives later finds no waiter: it is counted (``kept``) and
  held briefly, and never completes anything: a retry is a new attempt with a new
  correlation, so it cannot take the old request's answer.
- Crash: the engine dispatches the task again with the same id and attempt, so the request
  is re-published with the same correlation (the device may answer twice; the first answer
  wins, later ones are counted). A reply that arrives before the re-dispatched task waits
  again is held by the correlator (bounded, ``max_early`` replies for ``early_ttl_s``).
- Bad input (no topic, wildcard topic, qos not 0/1, bad timeout) -> FAILED_WITH_TERMINAL_ERROR
  at once; a reply without correlation data, or for nobody, is counted and acked.
"""

from __future__ import annotations

import base64
import collections
import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import trio

from edged.errors import BadInput
from edged.handlers import TaskContext, TaskFailed
from edged_mqtt.inbox import MqttMessage
from edged_mqtt.topics import InvalidTopic, validate_topic

MAX_TIMEOUT_S = 24 * 3600.0
DEFAULT_TIMEOUT_S = 10.0


@dataclass(slots=True)
class CorrelatorStats:
    delivered: int = 0
    kept: int = 0  # arrived with no waiter: early (recovery) or late (after a timeout)
    unmatched: int = 0
    overflow: int = 0


class Correlator:
    """Waiters by key. ``open(key)`` gives a receive channel; ``deliver(key, item)`` sends to
    it, or keeps the item for a waiter that opens within ``early_ttl_s`` (bounded)."""

    def __init__(self, max_early: int = 256, early_ttl_s: float = 600.0, per_key: int = 64):
        self._waiters: dict[str, trio.MemorySendChannel[Any]] = {}
        self._early: collections.OrderedDict[str, list[tuple[float, Any]]] = (
            collections.OrderedDict()
        )
        self._max_early = max_early
        self._ttl_s = early_ttl_s
        self._per_key = per_key
        self.stats = CorrelatorStats()

    def waiting(self, key: str) -> bool:
        return key in self._waiters

    @contextmanager
    def open(self, key: str) -> Iterator[trio.MemoryReceiveChannel[Any]]:
        send, receive = trio.open_memory_channel[Any](self._per_key)
        previous = self._waiters.get(key)
        self._waiters[key] = send
        now = time.monotonic()
        for at, item in self._early.pop(key, []):
            if now - at <= self._ttl_s:
                self._send(send, item)
        try:
            yield receive
        finally:
            if self._waiters.get(key) is send:
                del self._waiters[key]
                if previous is not None:
                    self._waiters[key] = previous
            send.close()
            receive.close()

    def deliver(self, key: str, item: Any, *, keep: bool = True) -> bool:
        """True when a waiter got it. Else it is kept for a later ``open(key)`` (when
        ``keep``), the oldest key dropped at the bound."""
        send = self._waiters.get(key)
        if send is not None:
            self.stats.delivered += 1
            self._send(send, item)
            return True
        if not keep:
            self.stats.unmatched += 1
            return False
        self.stats.kept += 1
        now = time.monotonic()
        while self._early:
            oldest_key, items = next(iter(self._early.items()))
            if len(self._early) < self._max_early and now - items[0][0] <= self._ttl_s:
                break
            del self._early[oldest_key]
        items = self._early.setdefault(key, [])
        if len(items) < self._per_key:
            items.append((now, item))
        else:
            self.stats.overflow += 1
        return False

    def _send(self, send: trio.MemorySendChannel[Any], item: Any) -> None:
        try:
            send.send_nowait(item)
        except trio.WouldBlock:
            self.stats.overflow += 1


# ------------------------------------------------------------------------ MQTT_REQUEST


@dataclass(frozen=True, slots=True)
class RequestSpec:
    topic: str
    payload: bytes
    content_type: str | None
    qos: int
    timeout_s: float
    user_properties: tuple[tuple[str, str], ...]


def parse_request(raw: dict[str, Any]) -> RequestSpec:
    """The task input -> RequestSpec; TaskFailed(terminal) naming the bad field."""
    topic = raw.get("topic")
    if not isinstance(topic, str):
        raise TaskFailed("MQTT_REQUEST needs a string input 'topic'", terminal=True)
    try:
        validate_topic(topic)
    except InvalidTopic as exc:
        raise TaskFailed(f"MQTT_REQUEST topic: {exc}", terminal=True) from exc
    qos = raw.get("qos", 1)
    if qos not in (0, 1) or isinstance(qos, bool):
        raise TaskFailed(f"MQTT_REQUEST qos must be 0 or 1, got {qos!r}", terminal=True)
    timeout_s = raw.get("timeout_s", raw.get("timeoutSeconds", DEFAULT_TIMEOUT_S))
    if (
        isinstance(timeout_s, bool)
        or not isinstance(timeout_s, int | float)
        or not math.isfinite(timeout_s)
        or not 0 < timeout_s <= MAX_TIMEOUT_S
    ):
        raise TaskFailed(
            f"MQTT_REQUEST timeout_s must be a number in (0, {MAX_TIMEOUT_S:g}], got {timeout_s!r}",
            terminal=True,
        )
    props = raw.get("userProperties") or {}
    if not isinstance(props, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int | float | bool) for k, v in props.items()
    ):
        raise TaskFailed("MQTT_REQUEST userProperties must map names to scalars", terminal=True)
    payload = raw.get("payload", {})
    content_type: str | None
    if isinstance(payload, str):
        data, content_type = payload.encode("utf-8"), "text/plain"
    else:
        try:
            data = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise TaskFailed(f"MQTT_REQUEST payload is not JSON: {exc}", terminal=True) from exc
        content_type = "application/json"
    return RequestSpec(
        topic=topic,
        payload=data,
        content_type=content_type,
        qos=int(qos),
        timeout_s=float(timeout_s),
        user_properties=tuple((k, str(v)) for k, v in props.items()),
    )


def correlation_key(task_id: str, attempt: int) -> str:
    return f"{task_id}:{attempt}"


def reply_output(message: MqttMessage, key: str) -> dict[str, Any]:
    """A reply as the task's output: JSON if it parses, else text, else base64."""
    props = message.properties
    content_type = getattr(props, "ContentType", None)
    response: Any
    try:
        response = json.loads(message.payload)
        encoding = "json"
    except (ValueError, UnicodeDecodeError, RecursionError):
        try:
            response, encoding = message.payload.decode("utf-8"), "text"
        except UnicodeDecodeError:
            response = base64.b64encode(message.payload).decode("ascii")
            encoding = "base64"
    user = getattr(props, "UserProperty", None) or []
    return {
        "response": response,
        "encoding": encoding,
        "topic": message.topic,
        "correlation": key,
        "contentType": content_type,
        "userProperties": {str(k): str(v) for k, v in user},
    }


async def run_request(
    ctx: TaskContext,
    *,
    publish: Any,
    correlator: Correlator,
    reply_root: str,
) -> dict[str, Any]:
    """Publish the request and wait for its reply (see module doc)."""
    spec = parse_request(ctx.input)
    key = correlation_key(ctx.task_id, ctx.attempt)
    response_topic = f"{reply_root}/{ctx.task_id}"
    from paho.mqtt.packettypes import PacketTypes  # here: importing edged stays light
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ResponseTopic = response_topic
    props.CorrelationData = key.encode()
    if spec.content_type:
        props.ContentType = spec.content_type
    if spec.user_properties:
        props.UserProperty = list(spec.user_properties)
    with correlator.open(key) as replies, trio.move_on_after(spec.timeout_s):
        try:
            await publish(spec.topic, spec.payload, spec.qos, False, props)
        except BadInput as exc:  # payload too large, ...: the same input fails again
            raise TaskFailed(f"MQTT_REQUEST: {exc}", terminal=True) from exc
        ctx.log(f"request published to {spec.topic}, waiting on {response_topic}")
        message: MqttMessage = await replies.receive()
        return reply_output(message, key)
    raise TaskFailed(
        f"no reply to the request on {spec.topic} within {spec.timeout_s:g} s "
        f"(response topic {response_topic}, correlation {key})"
    )


def route_reply(correlator: Correlator, message: MqttMessage) -> None:
    """The reply subscription's callback: deliver by correlation data; count the rest."""
    raw = getattr(message.properties, "CorrelationData", None)
    if not raw:
        correlator.stats.unmatched += 1
        return
    try:
        key = bytes(raw).decode("utf-8")
    except (UnicodeDecodeError, TypeError):
        correlator.stats.unmatched += 1
        return
    correlator.deliver(key, message)
