"""The ``keptn`` binding kind: a work task handed to event-driven workers over MQTT.

Theory of operation. Config::

    bindings:
      backup:
        keptn:
          task: backup              # Keptn task name (default: the bound task's name)
          topic_prefix: keptn       # topics: keptn/backup/triggered, keptn/backup/<answer>
          start_timeout_s: 30       # FAILED when no worker started by then (default 60)
          timeout_s: 600            # optional bound on the whole lifecycle

The handler builds a ``KeptnTask`` (keptn.py), publishes its ``sh.keptn.event.<task>.triggered``
CloudEvent (structured JSON, QoS 1) to ``<prefix>/<task>/triggered`` with the task input
under ``data.<task>`` (Keptn's habit) and edged's ids under ``data.edged``, then feeds every
answer for its triggered id to the state machine until it decides. ``.status.changed``
messages become task log lines; the decision becomes the task's result (mapping in keptn.py).

Workers answer on ``<prefix>/<task>/started``, ``.../status.changed``, ``.../finished`` (the
CloudEvents ``type`` decides, the topic only routes). The adapter subscribes those filters for
every configured prefix at start, decodes each message, and routes it by its ``triggeredid``
through a ``Correlator``: an answer that arrives before its task waits again (after a
restart the broker delivers queued answers as soon as the session resumes) is held for it.
A message that is not a valid Keptn CloudEvent is dead-lettered by the adapter and acked.

Crash: the task is dispatched again with the same id and attempt, so the same triggered event
(same CloudEvents id, same bytes) is published again; a worker that already handled it must
not redo the work but answer again (the worker helper and the example shell worker replay
their stored answers), and answers still queued in the broker arrive too; duplicates are
dropped by CloudEvents id.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from edged.errors import BadInput
from edged.handlers import TaskContext, TaskFailed
from edged.runtime.bindings import BindingContext
from edged.runtime.timers import now_ms
from edged_mqtt.cloudevents import STRUCTURED_CONTENT_TYPE, decode_message, encode_structured
from edged_mqtt.inbox import MqttMessage
from edged_mqtt.keptn import KeptnTask, Kind, parse_type
from edged_mqtt.requests import Correlator
from edged_mqtt.topics import InvalidTopic, validate_topic

ANSWER_KINDS = (Kind.STARTED, Kind.STATUS_CHANGED, Kind.FINISHED)
_SPEC_KEYS = {"task", "topic_prefix", "start_timeout_s", "timeout_s"}


@dataclass(frozen=True, slots=True)
class KeptnSpec:
    task: str
    topic_prefix: str = "keptn"
    start_timeout_s: float = 60.0
    timeout_s: float | None = None

    def triggered_topic(self) -> str:
        return f"{self.topic_prefix}/{self.task}/triggered"


def parse_spec(name: str, spec: Any, ctx: BindingContext) -> KeptnSpec:
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise ctx.error("expected a mapping (task, topic_prefix, start_timeout_s, timeout_s)")
    for key in spec:
        if key not in _SPEC_KEYS:
            raise ctx.error(f"unknown key (known: {', '.join(sorted(_SPEC_KEYS))})", f".{key}")
    task = spec.get("task", name)
    if not isinstance(task, str) or not task or any(c in task for c in "/+#"):
        raise ctx.error("must be a name without '/', '+' or '#'", ".task")
    prefix = spec.get("topic_prefix", "keptn")
    if not isinstance(prefix, str) or not prefix or any(c in prefix for c in "+#"):
        raise ctx.error("must be a topic without wildcards", ".topic_prefix")
    try:
        validate_topic(f"{prefix}/{task}/triggered")
    except InvalidTopic as exc:
        raise ctx.error(str(exc), ".topic_prefix") from exc
    values: dict[str, float | None] = {}
    for key, default in (("start_timeout_s", 60.0), ("timeout_s", None)):
        value = spec.get(key, default)
        if value is not None and (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or not math.isfinite(value)
            or value <= 0
        ):
            raise ctx.error("must be a positive number of seconds", f".{key}")
        values[key] = None if value is None else float(value)
    start = values["start_timeout_s"]
    assert start is not None
    return KeptnSpec(task, prefix.rstrip("/"), start, values["timeout_s"])


def answer_filters(prefix: str) -> list[str]:
    return [f"{prefix}/+/{kind.value}" for kind in ANSWER_KINDS]


def route_answer(correlator: Correlator, message: MqttMessage) -> None:
    """An answer subscription's callback. Raises BadInput for what is not a Keptn answer
    (the adapter counts, logs and dead-letters it, then acks)."""
    props = message.properties
    event = decode_message(
        message.payload,
        getattr(props, "ContentType", None),
        getattr(props, "UserProperty", None) or (),
    )
    if event is None:
        raise BadInput("not a CloudEvent")
    parsed = parse_type(event.type)
    if parsed is None or parsed[1] not in ANSWER_KINDS:
        raise BadInput(f"not a Keptn task answer: type {event.type!r}")
    triggered = event.extension("triggeredid")
    if not isinstance(triggered, str) or not triggered:
        raise BadInput(f"Keptn {event.type} without triggeredid")
    correlator.deliver(triggered, event)


async def run_keptn_task(
    ctx: TaskContext,
    spec: KeptnSpec,
    *,
    publish: Any,
    correlator: Correlator,
    source: str,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Publish the triggered event and follow the lifecycle to its decision. Lifecycle
    lines go to ``log`` as they happen (the daemon journals them as task logs at once),
    else to the task context (attached with the result)."""
    log = log or ctx.log
    task = KeptnTask(
        task=spec.task,
        task_id=ctx.task_id,
        attempt=ctx.attempt,
        workflow_id=ctx.workflow_id,
        source=source,
        created_ms=now_ms(),
        start_timeout_s=spec.start_timeout_s,
    )
    data = {
        spec.task: ctx.input,
        "edged": {"workflowId": ctx.workflow_id, "taskId": ctx.task_id, "attempt": ctx.attempt},
    }
    event = task.triggered_event(data)
    from paho.mqtt.packettypes import PacketTypes  # here: importing edged stays light
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.ContentType = STRUCTURED_CONTENT_TYPE
    limit = math.inf if spec.timeout_s is None else spec.timeout_s
    with correlator.open(task.triggered_id) as answers, trio.move_on_after(limit):
        try:
            await publish(spec.triggered_topic(), encode_structured(event), 1, False, props)
        except BadInput as exc:  # payload too large, data not JSON: a retry fails again
            raise TaskFailed(f"keptn {spec.task}: {exc}", terminal=True) from exc
        log(f"published {event.type} id {event.id} to {spec.triggered_topic()}")
        while True:
            deadline = task.deadline_ms
            wait_s = math.inf if deadline is None else max(0.0, (deadline - now_ms()) / 1000)
            with trio.move_on_after(wait_s) as waited:
                answer = await answers.receive()
            outcome = (
                task.on_tick(now_ms())
                if waited.cancelled_caught
                else task.on_event(answer, now_ms())
            )
            for line in outcome.log:
                log(line)
            if outcome.status == "COMPLETED":
                return outcome.output
            if outcome.status is not None:
                raise TaskFailed(
                    outcome.reason or outcome.status,
                    terminal=outcome.status == "FAILED_WITH_TERMINAL_ERROR",
                    output=outcome.output,
                )
    raise TaskFailed(
        f"Keptn workers did not finish {spec.task} within {spec.timeout_s:g} s "
        f"(started: {', '.join(sorted(task.workers)) or 'none'})",
        output={"triggeredid": task.triggered_id},
    )
