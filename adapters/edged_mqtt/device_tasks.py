"""MQTT work executors (MQTT_REQUEST, the ``keptn`` binding kind, ``mqtt:`` event handlers)
and how they reach the running adapter.

Theory of operation. Executors register when this module is imported
(``edged.runtime.bindings.ADAPTER_EXECUTOR_MODULES`` names it), which is before any binding
is built and before the adapter is configured; the adapter is one per daemon and comes
later: ``configure`` calls ``install(service)``, which hooks ``attach`` (subscriptions, made
before the connection so that nothing the broker queued for us is routed nowhere) and makes
the service the one the handlers use. A handler that runs with no adapter (a definition
uses MQTT_REQUEST but the config has no ``mqtt:`` section) fails its task terminally with
that reason instead of waiting forever.

Subscriptions made at attach, all QoS 1:

- ``edged/<client id>/replies/#``: MQTT_REQUEST replies, routed by correlation data;
- ``<prefix>/+/started``, ``/status.changed``, ``/finished`` for every ``keptn`` binding's
  topic prefix: Keptn answers, routed by ``triggeredid``;
- every active ``mqtt:<filter>`` event handler's filter (event_waits.py).
"""

from __future__ import annotations

import logging
import re
from functools import partial
from typing import Any

from edged.core.events import TaskLogged
from edged.handlers import Handler, TaskContext, TaskFailed
from edged.runtime.bindings import BindingContext, register_binding_kind, register_type_executor
from edged.runtime.engine import Op
from edged.runtime.timers import now_ms
from edged_mqtt.event_waits import EventWaits, handler_filters
from edged_mqtt.keptn_binding import (
    KeptnSpec,
    answer_filters,
    parse_spec,
    route_answer,
    run_keptn_task,
)
from edged_mqtt.requests import Correlator, route_reply, run_request

log = logging.getLogger("edged.mqtt.tasks")

REQUEST_TASK_TYPE = "MQTT_REQUEST"


class MqttTasks:
    def __init__(self, service: Any) -> None:
        self.service = service
        client_id = service.options.settings.effective_client_id()
        self.node = re.sub(r"[/+#\x00]", "_", client_id) or "edged"
        self.reply_root = f"edged/{self.node}/replies"
        self.source = f"edged/{self.node}"
        self.replies = Correlator()
        self.keptn = Correlator()
        self.event_waits: dict[str, EventWaits] = {}

    def attach(self, engine: Any) -> None:
        self.service.subscribe(
            f"{self.reply_root}/#", 1, lambda m: route_reply(self.replies, m), "mqtt_request"
        )
        for prefix in sorted(_keptn_prefixes):
            for topic_filter in answer_filters(prefix):
                self.service.subscribe(
                    topic_filter, 1, lambda m: route_answer(self.keptn, m), "keptn"
                )
        for topic_filter, event in handler_filters(engine.registry.event_handlers).items():
            waits = self.event_waits[event] = EventWaits(engine, event)
            self.service.subscribe(topic_filter, 1, waits, event)

    def live_log(self, ctx: TaskContext, line: str) -> None:
        """A task log line journaled now (progress shows while the task runs)."""
        engine = self.service.engine
        if engine is None:
            ctx.log(line)
            return
        event = TaskLogged(at_ms=now_ms(), task_id=ctx.task_id, logs=(line[:4096],))
        engine.post(Op(ctx.workflow_id, event))

    def statistics(self) -> dict[str, Any]:
        return {
            "replies": self.replies.stats,
            "keptn_answers": self.keptn.stats,
            "event_waits": {name: w.applied for name, w in self.event_waits.items()},
        }


_active: MqttTasks | None = None
_keptn_prefixes: set[str] = set()


def install(service: Any) -> MqttTasks:
    """Make ``service`` the adapter the MQTT executors use (one per daemon)."""
    global _active
    tasks = MqttTasks(service)
    service.on_attach(tasks.attach)
    _active = tasks
    return tasks


def _require() -> MqttTasks:
    if _active is None:
        raise TaskFailed(
            "MQTT tasks need the MQTT adapter: add an mqtt: section to the config "
            "or run with --mqtt mqtt://HOST:PORT",
            terminal=True,
        )
    return _active


async def mqtt_request(ctx: TaskContext) -> dict[str, Any]:
    tasks = _require()
    return await run_request(
        ctx,
        publish=tasks.service.publish,
        correlator=tasks.replies,
        reply_root=tasks.reply_root,
    )


def keptn_kind(name: str, spec: Any, ctx: BindingContext) -> Handler:
    parsed: KeptnSpec = parse_spec(name, spec, ctx)
    _keptn_prefixes.add(parsed.topic_prefix)

    async def keptn_handler(task_ctx: TaskContext) -> dict[str, Any]:
        tasks = _require()
        return await run_keptn_task(
            task_ctx,
            parsed,
            publish=tasks.service.publish,
            correlator=tasks.keptn,
            source=tasks.source,
            log=partial(tasks.live_log, task_ctx),
        )

    return keptn_handler


register_type_executor(REQUEST_TASK_TYPE, mqtt_request)
register_binding_kind("keptn", keptn_kind)
