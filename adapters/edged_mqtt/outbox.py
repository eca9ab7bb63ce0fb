"""The MQTT outbox: journaled publishes, delivered in order per topic, acked after PUBACK.

Theory of operation
-------------------
An ``MQTT_PUBLISH`` task (registered as a publish task type: the decider emits a
``PublishEvent`` to sink ``mqtt_publish`` in the very transition that schedules the task)
and an ``EVENT`` task with sink ``mqtt:<topic>`` both become outbox rows in the journal,
in the same commit as the transition that caused them. After that commit the engine hands
the command to ``MqttOutbox.accept`` (also on recovery, for every row still in the
journal). Nothing is acknowledged yet: the row stays in the journal until the broker has
the message.

- Order: one FIFO per topic. A committed message goes to paho at once from ``accept``
  when no sender runs for its topic and paho takes it without waiting (connected, an
  in-flight slot free); otherwise one sender task per topic with messages waiting hands
  them to paho in FIFO order without waiting for each PUBACK (``publish_then``; the
  client's ``max_inflight`` bounds the window), so a topic's messages leave in order at
  full speed; paho retransmits unacknowledged ones, in order, after a reconnect. While
  connected with in-flight slots free, up to ``_SEND_BURST`` messages go per scheduler
  pass (``publish_then_nowait``: no wait, no checkpoint), then the sender yields.
- Acknowledgement: after PUBACK one op goes to the engine carrying ``ack=<outbox id>``;
  for MQTT_PUBLISH it is also the task's result (COMPLETED, output ``{topic, qos,
  messageId}``), so the row delete and the task completion are one commit. A crash
  between PUBACK and that commit publishes again on restart: at least once. Every message
  carries the MQTT 5 user property ``edged-task-id`` so consumers can dedupe.
- While the broker is unreachable, messages wait (in memory and in the journal).
- Bound (stated policy): at most ``max_messages`` undelivered messages and ``max_bytes``
  of payload. A new MQTT_PUBLISH beyond the bound FAILS its task with a retryable reason
  ("outbox full"), so the definition's retry policy decides; an EVENT beyond it is
  dropped, counted and logged (the EVENT task already completed). Rows replayed at
  recovery are always taken: they were accepted before.
- Expiry: ``expiresAfterSeconds`` (MQTT_PUBLISH input) counts from when the task was
  scheduled. A message still undelivered when it expires is never sent: its task fails
  with a terminal error, counted. Sent messages carry the MQTT 5 Message Expiry Interval
  set to the time left, so the broker drops them too if no subscriber takes them in time.
- A bad message (topic, QoS, payload not encodable or too large) fails its task at once
  with a terminal error and its row is acknowledged.
- ``confirm: false`` (MQTT_PUBLISH input): the task COMPLETES in the transition that
  journals the row (the outbox's promise), so the execution needs no second commit; the
  row is still delivered in order, at least once, after restarts. Its failures (bound,
  expiry, refusal, bad input) can no longer fail the task: they are counted and logged,
  like an EVENT's.
"""

from __future__ import annotations

import collections
import functools
import json
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import trio
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edged.core import events as ev
from edged.core.commands import PublishEvent
from edged.core.operators import register_publish_type
from edged.errors import BadInput
from edged.runtime.engine import Op
from edged_mqtt.client import MqttClient
from edged_mqtt.fastprops import new_properties
from edged_mqtt.options import OutboxLimits
from edged_mqtt.session import ClientClosed, PublishRejected
from edged_mqtt.topics import validate_topic

log = logging.getLogger("edged.mqtt.outbox")

PUBLISH_TASK_TYPE = "MQTT_PUBLISH"
PUBLISH_SINK = "mqtt_publish"
EVENT_SINK = "mqtt"
_SEND_BURST = 64  # messages a sender hands to paho per scheduler pass


@dataclass(slots=True)
class OutboxStats:
    accepted: int = 0
    delivered: int = 0
    rejected_full: int = 0
    expired: int = 0
    invalid: int = 0
    refused_by_broker: int = 0


@dataclass(slots=True)
class _Item:
    topic: str
    payload: bytes
    qos: int
    retain: bool
    user_properties: list[tuple[str, str]]
    workflow_id: str
    task_id: str
    outbox_id: int | None
    is_task: bool
    expires_at_ms: int | None = None
    content_type: str | None = None
    sent: bool = field(default=False)


def _now_ms() -> int:
    return int(time.time() * 1000)


class MqttOutbox:
    def __init__(self, service: Any, limits: OutboxLimits) -> None:
        self.service = service
        self.limits = limits
        self.stats = OutboxStats()
        self.engine: Any = None
        self._queues: dict[str, collections.deque[_Item]] = {}
        self._pending = 0
        self._pending_bytes = 0
        self._live = False  # False while recovery replays rows: those are always taken
        self._client: MqttClient | None = None
        self._nursery: trio.Nursery | None = None
        self._senders: set[str] = set()
        self._mqtt5 = service.options.settings.protocol == "5"

    # --------------------------------------------------------------- engine side

    def attach(self, engine: Any) -> None:
        self.engine = engine
        register_publish_type(PUBLISH_TASK_TYPE, PUBLISH_SINK)
        engine.sinks[PUBLISH_SINK] = self
        engine.sinks[EVENT_SINK] = self

    def __call__(self, command: PublishEvent) -> list[Op]:
        self.accept(command, None)  # only used by an engine that does not know `accept`
        return []

    def pending(self) -> int:
        return self._pending

    def accept(self, command: PublishEvent, outbox_id: int | None) -> None:
        """A committed publish (live or replayed): queue it, or settle it at once."""
        try:
            item = self._item(command, outbox_id)
        except (BadInput, ValueError, TypeError) as exc:
            self.stats.invalid += 1
            log.warning("mqtt outbox invalid task=%s: %s", command.task_id, exc)
            is_task = command.sink == PUBLISH_SINK and command.payload.get("confirm") is not False
            self._settle(
                command.workflow_id,
                command.task_id,
                outbox_id,
                is_task,
                "FAILED_WITH_TERMINAL_ERROR",
                str(exc),
            )
            return
        size = len(item.payload)
        if self._live and (
            self._pending >= self.limits.max_messages
            or self._pending_bytes + size > self.limits.max_bytes
        ):
            self.stats.rejected_full += 1
            log.warning(
                "mqtt outbox full pending=%d bytes=%d: %s to %s refused",
                self._pending,
                self._pending_bytes,
                "task" if item.is_task else "event",
                item.topic,
            )
            reason = f"MQTT outbox full ({self._pending} messages waiting for the broker)"
            self._settle_item(item, "FAILED", reason)
            return
        self.stats.accepted += 1
        self._pending += 1
        self._pending_bytes += size
        self._queues.setdefault(item.topic, collections.deque()).append(item)
        self._kick(item.topic)

    def _item(self, command: PublishEvent, outbox_id: int | None) -> _Item:
        body = command.payload
        if command.sink == PUBLISH_SINK:
            topic = body.get("topic")
            if not isinstance(topic, str):
                raise BadInput("MQTT_PUBLISH needs a string input 'topic'")
            payload = _encode_payload(body.get("payload"))
            qos = body.get("qos", 1)
            if qos not in (0, 1) or isinstance(qos, bool):
                raise BadInput(f"MQTT_PUBLISH qos must be 0 or 1, got {qos!r}")
            retain = bool(body.get("retain", False))
            props = body.get("userProperties") or {}
            if not isinstance(props, dict):
                raise BadInput("MQTT_PUBLISH userProperties must be an object")
            user_props = [
                (str(k), v if isinstance(v, str) else json.dumps(v)) for k, v in props.items()
            ]
            expires = body.get("expiresAfterSeconds")
            expires_at = None
            if expires is not None:
                if (
                    isinstance(expires, bool)
                    or not isinstance(expires, int | float)
                    or expires <= 0
                ):
                    raise BadInput("MQTT_PUBLISH expiresAfterSeconds must be a positive number")
                scheduled = body.get("scheduledAtMs")
                base = scheduled if isinstance(scheduled, int) else _now_ms()
                expires_at = base + int(expires * 1000)
            content_type = body.get("contentType")
            is_task = body.get("confirm") is not False  # else the task already completed
        else:
            topic = command.sink.split(":", 1)[1] if ":" in command.sink else ""
            payload = _compact_json(body).encode()
            qos, retain, user_props, expires_at, content_type = 1, False, [], None, None
            is_task = False
        validate_topic(topic)
        if len(payload) > self.service.options.settings.max_payload_bytes:
            raise BadInput(
                f"payload of {len(payload)} bytes exceeds mqtt.max_payload_bytes "
                f"{self.service.options.settings.max_payload_bytes}"
            )
        return _Item(
            topic=topic,
            payload=payload,
            qos=qos,
            retain=retain,
            user_properties=user_props,
            workflow_id=command.workflow_id,
            task_id=command.task_id,
            outbox_id=outbox_id,
            is_task=is_task,
            expires_at_ms=expires_at,
            content_type=content_type if isinstance(content_type, str) else None,
        )

    def _settle(
        self,
        workflow_id: str,
        task_id: str,
        outbox_id: int | None,
        is_task: bool,
        status: str,
        reason: str | None = None,
        output: dict[str, Any] | None = None,
    ) -> None:
        """One op: the task's result (for MQTT_PUBLISH) carrying the row's acknowledgement."""
        if is_task:
            event = ev.TaskResultReceived(
                at_ms=_now_ms(), task_id=task_id, status=status, output=output or {}, reason=reason
            )
            self.engine.post(Op(workflow_id, event, ack=outbox_id))
        elif outbox_id is not None:
            self.engine.post(Op(workflow_id, ack=outbox_id))

    # --------------------------------------------------------------- broker side

    async def run(self, client: MqttClient) -> None:
        async with trio.open_nursery() as nursery:
            self._client = client
            self._nursery = nursery
            self._live = True
            for topic in list(self._queues):
                self._wake(topic)
            await trio.sleep_forever()

    def _wake(self, topic: str) -> None:
        if self._nursery is None or topic in self._senders:
            return
        self._senders.add(topic)
        self._nursery.start_soon(self._sender, topic)

    async def _sender(self, topic: str) -> None:
        assert self._client is not None and self._nursery is not None
        queue = self._queues[topic]
        try:
            await self._send_queue(queue)
        except ClientClosed:
            pass  # shutting down: what is left stays in the journal for the next start
        finally:
            # A sender returns only with its queue empty (or the client closed); one ended
            # by cancellation or a bug must not start another, which would meet the same
            # end at once, and again, without end.
            self._senders.discard(topic)
            if not queue:
                self._queues.pop(topic, None)

    def _kick(self, topic: str) -> None:
        """A message joined ``topic``'s queue: when no sender runs for it and paho takes
        messages without waiting, hand them over now, from the caller (the engine, after
        the commit); a sender task only for what has to wait (a task started per commit
        was one more scheduler pass and ~18 us per batch)."""
        if self._nursery is None or topic in self._senders:
            return
        client = self._client
        if client is not None and client.connected:
            queue = self._queues[topic]
            try:
                self._send_ready(queue, _SEND_BURST)
            except Exception:  # not the engine's to carry: the sender meets it as before
                log.exception("mqtt outbox send failed topic=%s; the sender retries", topic)
            if not queue:
                self._queues.pop(topic, None)
                return
        self._wake(topic)

    def _send_ready(self, queue: collections.deque[_Item], limit: int) -> int:
        """Hand the queue's messages to paho in order while it takes them at once
        (connected, an in-flight slot free: ``publish_then_nowait``), at most ``limit``;
        expired and invalid ones are settled on the way. How many were handed over."""
        client = self._client
        assert client is not None
        sent = 0
        while queue and sent < limit:
            item = queue[0]
            if item.expires_at_ms is not None and _now_ms() >= item.expires_at_ms:
                queue.popleft()
                self._expired(item)
                continue
            try:
                client.publish_then_nowait(
                    item.topic,
                    item.payload,
                    item.qos,
                    item.retain,
                    self._properties(item),
                    functools.partial(self._delivered, item),
                )
            except trio.WouldBlock:  # not connected, or no in-flight slot free
                break
            except (BadInput, ValueError, PublishRejected) as exc:
                queue.popleft()
                self._invalid(item, exc)
                continue
            queue.popleft()
            sent += 1
        return sent

    async def _send_queue(self, queue: collections.deque[_Item]) -> None:
        """Hand the queue's messages to paho in order. While connected with in-flight
        slots free, up to ``_SEND_BURST`` go out per scheduler pass without yielding
        (``_send_ready``); otherwise (and between bursts) this waits as usual."""
        client = self._client
        assert client is not None
        while queue:
            await client.wait_connected()  # a checkpoint; expiry counts until the send
            if self._send_ready(queue, _SEND_BURST) >= _SEND_BURST or not queue:
                continue
            if not client.connected:
                continue  # lost meanwhile: wait for the next connection
            item = queue[0]  # no in-flight slot free: wait for one with this message
            props = self._properties(item)
            done = functools.partial(self._delivered, item)
            try:
                await client.publish_then(
                    item.topic, item.payload, item.qos, item.retain, props, done
                )
            except (BadInput, ValueError, PublishRejected) as exc:
                queue.popleft()
                self._invalid(item, exc)
                continue
            queue.popleft()

    def _invalid(self, item: _Item, exc: Exception) -> None:
        self._done(item)
        self.stats.invalid += 1
        self._settle_item(item, "FAILED_WITH_TERMINAL_ERROR", str(exc))

    def _delivered(self, item: _Item, error: BaseException | None) -> None:
        """Called back after the PUBACK (or the refusal, or the client's close)."""
        if isinstance(error, PublishRejected):  # the broker refused it (not authorized...)
            self._done(item)
            self.stats.refused_by_broker += 1
            log.warning("mqtt outbox refused topic=%s: %s", item.topic, error)
            self._settle_item(item, "FAILED", str(error))
            return
        if error is not None:
            # client closed (shutdown): the row stays in the journal and goes out next start
            log.info("mqtt outbox undelivered at close topic=%s: %s", item.topic, error)
            return
        self._done(item)
        self.stats.delivered += 1
        output = {"topic": item.topic, "qos": item.qos, "retain": item.retain}
        self._settle_item(item, "COMPLETED", output=output)

    def _settle_item(
        self,
        item: _Item,
        status: str,
        reason: str | None = None,
        output: dict[str, Any] | None = None,
    ) -> None:
        self._settle(
            item.workflow_id, item.task_id, item.outbox_id, item.is_task, status, reason, output
        )

    def _done(self, item: _Item) -> None:
        self._pending -= 1
        self._pending_bytes -= len(item.payload)

    def _expired(self, item: _Item) -> None:
        self._done(item)
        self.stats.expired += 1
        log.warning("mqtt outbox expired topic=%s task=%s: not sent", item.topic, item.task_id)
        self._settle_item(
            item,
            "FAILED_WITH_TERMINAL_ERROR",
            "message expired before the broker could be reached; not sent",
        )

    def _properties(self, item: _Item) -> Properties | None:
        if not self._mqtt5:
            return None
        props = new_properties(PacketTypes.PUBLISH)
        props.UserProperty = [("edged-task-id", item.task_id), *item.user_properties]
        if item.content_type:
            props.ContentType = item.content_type
        if item.expires_at_ms is not None:
            props.MessageExpiryInterval = max(1, math.ceil((item.expires_at_ms - _now_ms()) / 1000))
        return props


def _encode_payload(value: Any) -> bytes:
    """A str goes as UTF-8 text; any other JSON value as compact JSON; base64 via
    ``{"base64": "..."}`` is not special: binary payloads are not supported yet."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if value is None:
        return b""
    return _compact_json(value).encode()


_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_json_default = json.JSONEncoder().default


def _compact_json(value: Any) -> str:
    """``json.dumps(value, separators=(",", ":"), allow_nan=False)``: the same text and
    the same errors, from json's C encoder without building a JSONEncoder per call
    (its Python ``__init__``, ``encode`` and ``iterencode`` cost more than the C part
    for a message-sized value)."""
    if _make_encoder is None:
        return json.dumps(value, separators=(",", ":"), allow_nan=False)
    encode = _make_encoder(
        {}, _json_default, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, False
    )
    return "".join(encode(value, 0))
