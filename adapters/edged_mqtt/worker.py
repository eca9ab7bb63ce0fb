"""A Keptn task worker for Python: ``run_worker(url, task_name, handler)``.

Theory of operation. The worker subscribes ``<prefix>/<task>/triggered`` at QoS 1 on a
persistent session (stable client id ``keptn-worker-<task>-<name>``; triggered events sent
while it was away are delivered when it comes back) with manual acks. For each
``sh.keptn.event.<task>.triggered`` CloudEvent:

1. If it already answered that event id, it publishes its stored answers again (same
   CloudEvents ids) and does not run the handler: edged re-publishes a triggered event after
   a restart and needs the answers, not the work, again; duplicates are dropped by id.
2. Else it publishes ``.started``, runs ``handler(data, event, progress)`` (sync handlers in a
   worker thread, async ones on the loop) where ``data`` is ``event.data[<task>]`` and
   ``progress("50%")`` publishes a ``.status.changed``, then publishes ``.finished``:
   the handler's dict return -> ``result: pass, status: succeeded`` with the dict under
   ``data.<task>``; ``raise WorkerResult("warning"|"fail", message)`` -> that result with
   ``status: succeeded``; ``raise WorkerResult(..., status="aborted")`` -> aborted; any other
   exception -> ``result: fail, status: errored`` with the exception as message.
3. Only after ``.finished`` is acknowledged by the broker is the triggered message acked,
   so a worker crash mid-task gets the event again (at least once). Up to ``max_concurrent``
   events (default 16) are handled at once.

Answers are kept in memory (bounded, the oldest forgotten first) and, with ``state_dir``, as
one JSON file per triggered id so a restarted worker still replays instead of redoing.
A message that is not a valid triggered CloudEvent is logged, counted and acked.

CLI (a demo worker that echoes its input): ``python -m edged_mqtt.worker --broker URL --task
NAME``.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import inspect
import json
import logging
import os
import sys
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio

from edged_mqtt.client import MqttClient, open_mqtt_client
from edged_mqtt.cloudevents import (
    STRUCTURED_CONTENT_TYPE,
    CloudEvent,
    CloudEventError,
    decode_message,
    decode_structured,
    encode_structured,
)
from edged_mqtt.inbox import MqttMessage
from edged_mqtt.keptn import Kind, answer, parse_type
from edged_mqtt.settings import MqttSettings, settings_from_url

log = logging.getLogger("edged.keptn.worker")

Progress = Callable[[str], Awaitable[None]]
WorkerHandler = Callable[..., Any]
MAX_REMEMBERED = 10_000


class WorkerResult(Exception):
    """Raised by a handler to finish with a result other than pass (or status aborted)."""

    def __init__(self, result: str, message: str = "", *, status: str = "succeeded") -> None:
        super().__init__(message or result)
        self.result = result
        self.message = message
        self.status = status


@dataclass(slots=True)
class WorkerStats:
    handled: int = 0
    replayed: int = 0
    malformed: int = 0


class KeptnWorker:
    def __init__(
        self,
        client: MqttClient,
        task: str,
        handler: WorkerHandler,
        *,
        name: str,
        topic_prefix: str = "keptn",
        state_dir: Path | None = None,
    ) -> None:
        self.client = client
        self.task = task
        self.handler = handler
        self.source = f"keptn-worker/{name}"
        self.prefix = topic_prefix
        self.state_dir = state_dir
        self.answered: collections.OrderedDict[str, list[bytes]] = collections.OrderedDict()
        self._running: dict[str, trio.Event] = {}
        self.stats = WorkerStats()
        if state_dir is not None:
            state_dir.mkdir(parents=True, exist_ok=True)

    def topic(self, kind: Kind) -> str:
        return f"{self.prefix}/{self.task}/{kind.value}"

    async def serve(self, max_concurrent: int = 16) -> None:
        """Handle triggered events, up to ``max_concurrent`` at once (beyond that the
        reader waits and the broker's in-flight window holds the rest)."""
        slots = trio.Semaphore(max_concurrent)

        async def one(message: MqttMessage) -> None:
            try:
                await self.handle(message)
            finally:
                slots.release()
            self.client.ack(message)  # after .finished was acknowledged: at least once

        async with trio.open_nursery() as nursery:
            async for message in self.client.messages():
                await slots.acquire()
                nursery.start_soon(one, message)

    async def handle(self, message: MqttMessage) -> None:
        try:
            event = decode_message(
                message.payload,
                getattr(message.properties, "ContentType", None),
                getattr(message.properties, "UserProperty", None) or (),
            )
            parsed = parse_type(event.type) if event is not None else None
            if event is None or parsed is None or parsed != (self.task, Kind.TRIGGERED):
                raise CloudEventError(f"not a {self.task}.triggered CloudEvent")
        except CloudEventError as exc:
            self.stats.malformed += 1
            log.warning("keptn worker malformed topic=%s error=%s", message.topic, exc)
            return
        running = self._running.get(event.id)
        if running is not None:
            await running.wait()  # a duplicate while the first copy runs: then replay
        stored = self._stored(event.id)
        if stored is not None:
            self.stats.replayed += 1
            for raw in stored:
                kind = parse_type(decode_structured(raw).type)
                assert kind is not None
                await self._send(kind[1], raw)
            return
        answers: list[bytes] = []

        async def publish(kind: Kind, data: dict[str, Any]) -> None:
            ce = answer(event, kind, source=self.source, event_id=str(uuid.uuid4()), data=data)
            raw = encode_structured(ce)
            if kind is not Kind.STATUS_CHANGED:
                answers.append(raw)
            if kind is Kind.FINISHED:
                # Stored before it is sent: cancelled or killed while sending, the
                # next copy of this event replays the same answers, never reruns.
                self._remember(event.id, answers)
            await self._send(kind, raw)

        done = self._running[event.id] = trio.Event()
        try:
            await publish(Kind.STARTED, {"status": "succeeded"})
            finished = await self._run(event, partial(publish, Kind.STATUS_CHANGED))
            await publish(Kind.FINISHED, finished)
            self.stats.handled += 1
        finally:
            del self._running[event.id]
            done.set()

    async def _run(self, event: CloudEvent, status_changed: Any) -> dict[str, Any]:
        data = event.data.get(self.task, {}) if isinstance(event.data, dict) else {}

        async def progress(message: str) -> None:
            await status_changed({"status": "succeeded", "message": str(message)})

        try:
            if inspect.iscoroutinefunction(self.handler):
                output = await self.handler(data, event, progress)
            else:
                token = trio.lowlevel.current_trio_token()

                def sync_progress(message: str) -> None:
                    trio.from_thread.run(progress, message, trio_token=token)

                output = await trio.to_thread.run_sync(self.handler, data, event, sync_progress)
        except WorkerResult as exc:
            return {"result": exc.result, "status": exc.status, "message": exc.message}
        except Exception as exc:
            log.warning("keptn worker %s handler raised %r", self.task, exc)
            return {
                "result": "fail",
                "status": "errored",
                "message": f"{type(exc).__name__}: {exc}",
            }
        body = output if isinstance(output, dict) else {"value": output}
        return {"result": "pass", "status": "succeeded", self.task: body}

    async def _send(self, kind: Kind, raw: bytes) -> None:
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        props.ContentType = STRUCTURED_CONTENT_TYPE
        await self.client.publish(self.topic(kind), raw, 1, False, props)

    def _stored(self, event_id: str) -> list[bytes] | None:
        if event_id in self.answered:
            return self.answered[event_id]
        if self.state_dir is not None:
            path = self.state_dir / f"{uuid.uuid5(uuid.NAMESPACE_URL, event_id)}.json"
            with contextlib.suppress(OSError, ValueError):
                return [s.encode() for s in json.loads(path.read_text())]
        return None

    def _remember(self, event_id: str, answers: list[bytes]) -> None:
        self.answered[event_id] = answers
        while len(self.answered) > MAX_REMEMBERED:
            self.answered.popitem(last=False)
        if self.state_dir is not None:
            path = self.state_dir / f"{uuid.uuid5(uuid.NAMESPACE_URL, event_id)}.json"
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps([a.decode() for a in answers]))
            os.replace(tmp, path)


async def run_worker(
    url: str | MqttSettings,
    task_name: str,
    handler: WorkerHandler,
    *,
    name: str = "py",
    topic_prefix: str = "keptn",
    state_dir: Path | None = None,
    max_concurrent: int = 16,
    task_status: trio.TaskStatus[KeptnWorker] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``task_name`` until cancelled; ``nursery.start`` returns once subscribed."""
    base = settings_from_url(url) if isinstance(url, str) else url
    settings = base.replace(
        client_id=f"keptn-worker-{task_name}-{name}"[:64], protocol="5", manual_ack=True
    )
    async with open_mqtt_client(settings) as client:
        worker = KeptnWorker(
            client, task_name, handler, name=name, topic_prefix=topic_prefix, state_dir=state_dir
        )
        await client.subscribe(worker.topic(Kind.TRIGGERED), 1)
        task_status.started(worker)
        await worker.serve(max_concurrent)


def _echo(data: dict[str, Any], event: CloudEvent, progress: Callable[[str], None]) -> Any:
    progress("echoing")
    return {"echo": data}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edged_mqtt.worker", description=__doc__)
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--task", required=True, help="Keptn task name")
    parser.add_argument("--name", default="echo", help="worker name (client id, source)")
    parser.add_argument("--topic-prefix", default="keptn")
    parser.add_argument("--state-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    with contextlib.suppress(KeyboardInterrupt):
        trio.run(
            partial(
                run_worker,
                args.broker,
                args.task,
                _echo,
                name=args.name,
                topic_prefix=args.topic_prefix,
                state_dir=args.state_dir,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
