"""Conductor event handlers fed by MQTT messages: a WAIT task completed by a matching message.

Theory of operation. An event handler (Conductor's ``EventHandler``: ``event``, optional
``condition``, ``actions``; loaded from the definition files or registered over the API before
start) whose ``event`` is ``mqtt:<topic filter>`` makes the adapter subscribe that filter at
QoS 1 when the daemon starts. Each message is decoded into the handler payload:

- a JSON object: that object (a CloudEvent in structured mode stays whole, so
  ``${data.x}`` and ``${id}`` work; binary mode gives its JSON document the same shape);
- anything else (not JSON, a JSON array or scalar, bad UTF-8): counted, logged and
  dead-lettered by the adapter, then acked. It never blocks the messages behind it.

The payload then goes through the same code as the ``conductor`` sink
(``ConductorSink.ops_for``: condition, ``${}`` over the payload, ``complete_task`` /
``fail_task`` by workflowId + taskRefName or taskId, ``start_workflow``). The message is
acked only after the ops it caused are committed to the journal (``engine.submit``): a
crash before that commit gets the message redelivered. ``complete_task``/``fail_task`` are
idempotent (a duplicate finds the task ended and changes nothing); ``start_workflow`` is at
least once, as with Conductor's queues (use a trigger with an identity for exactly-once
starts). A commit refused by the journal leaves the message unacked for redelivery.

Handlers registered after start are not subscribed until the next start (documented).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from edged.errors import BadInput, JournalError
from edged.runtime.sinks import ConductorSink
from edged_mqtt.cloudevents import decode_message, to_json_doc
from edged_mqtt.inbox import MqttMessage
from edged_mqtt.topics import InvalidTopic, validate_filter

log = logging.getLogger("edged.mqtt.events")

PREFIX = "mqtt:"


def handler_filters(event_handlers: list[dict[str, Any]]) -> dict[str, str]:
    """Topic filter -> the handlers' ``event`` name, for every active ``mqtt:`` handler.
    A bad filter is logged and skipped (the handler can never match)."""
    out: dict[str, str] = {}
    for handler in event_handlers:
        event = handler.get("event")
        if handler.get("active") is False or not isinstance(event, str):
            continue
        if not event.startswith(PREFIX):
            continue
        topic_filter = event[len(PREFIX) :]
        try:
            validate_filter(topic_filter)
        except InvalidTopic as exc:
            log.error("event handler %s: bad topic filter %r: %s", handler.get("name"), event, exc)
            continue
        out[topic_filter] = event
    return out


def message_payload(message: MqttMessage) -> dict[str, Any]:
    """The handler payload of a message (see module doc); BadInput when it has none."""
    props = message.properties
    event = decode_message(
        message.payload,
        getattr(props, "ContentType", None),
        getattr(props, "UserProperty", None) or (),
    )
    if event is not None:
        doc = to_json_doc(event)
        doc.pop("data_base64", None)
        return doc
    try:
        doc = json.loads(message.payload)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise BadInput(f"event handler payload is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise BadInput(f"event handler payload is a JSON {type(doc).__name__}, not an object")
    return doc


class EventWaits:
    """The callback for one ``mqtt:`` event name."""

    def __init__(self, engine: Any, event: str) -> None:
        self.engine = engine
        self.event = event
        self.sink = ConductorSink(engine)
        self.applied = 0

    async def __call__(self, message: MqttMessage) -> None:
        from edged_mqtt.service import Redeliver

        payload = message_payload(message)
        ops = self.sink.ops_for(self.event, payload)
        for op in ops:
            try:
                await self.engine.submit(op)
            except JournalError as exc:
                raise Redeliver(f"journal refused the commit: {exc}") from exc
            self.applied += 1
        if not ops:
            log.debug("mqtt event %s on %s matched no handler action", self.event, message.topic)
