"""The MQTT adapter inside the daemon: one broker connection shared by every MQTT feature.

Theory of operation
-------------------
``configure(section, cfg, defs)`` (called by the daemon for an ``mqtt:`` config section or
``edged run --mqtt URL``) checks the section and returns an ``MqttService``; nothing touches
the network yet. The daemon then calls ``attach(engine)`` before recovery (the outbox sink
and the MQTT_PUBLISH task type must exist when recovery replays the outbox) and starts
``run`` in its nursery after recovery.

``run`` opens one ``MqttClient`` (persistent session, manual ack, reconnect with backoff),
subscribes every registered filter, and then routes each received message to the callbacks
of every subscription whose filter matches its topic, in arrival order:

- ``subscribe(filter, qos, callback)``: ``callback(message)`` is called synchronously, in
  order; it may return ``None`` (done), a ``Pending`` that it settles later by a call (no
  task: the trigger fast path, settled by the engine's reply), or an awaitable, which runs
  in its own task (at most ``max_concurrent_messages`` unsettled messages at once: beyond
  that the reader waits, and the broker's in-flight window holds the rest). The message is PUBACKed when every matching callback
  is done, so a callback that returns after its durable commit gets at-least-once delivery
  for free. A callback raising ``Redeliver`` leaves the message unacked and drops the
  connection after a pause, so the broker sends it again (use when the journal refused the
  commit); any other exception is counted, logged, dead-lettered and acked, so one bad
  message never blocks those behind it. Messages matching no subscription are acked.
- ``publish(topic, payload, ...)``: direct, not journaled (returns after PUBACK); durable
  publishes go through the outbox (``MQTT_PUBLISH`` tasks, ``EVENT`` with an ``mqtt:`` sink).
- ``engine`` is the Engine; ``client`` the MqttClient (statistics, wait_connected).
- ``dead_letter(message, reason)``: count, log, publish a JSON description to the
  dead-letter topic (best effort, QoS 1) and remember the last few.

Subscriptions may be added before or after ``run`` starts (later ones subscribe at once).
"""

from __future__ import annotations

import base64
import collections
import inspect
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio

from edged.errors import EdgedError
from edged_mqtt.client import MqttClient, open_mqtt_client
from edged_mqtt.inbox import MqttMessage
from edged_mqtt.options import AdapterOptions, parse_options
from edged_mqtt.topics import compile_filter

log = logging.getLogger("edged.mqtt")


class Redeliver(EdgedError):
    """Raised by a callback: do not ack; let the broker deliver the message again."""


class Pending:
    """A callback's outcome that arrives later by a call instead of in a task of its own.

    The callback returns it at once and calls ``settle()`` (done), ``settle(Redeliver(...))``
    or ``settle(exc)`` (an error: counted, dead-lettered, acked) when the outcome is known,
    typically from a durable commit's reply; it costs no task and no scheduler pass.
    """

    __slots__ = ("_error", "_settled", "_then")

    def __init__(self) -> None:
        self._then: Callable[[BaseException | None], None] | None = None
        self._settled = False
        self._error: BaseException | None = None

    def settle(self, error: BaseException | None = None) -> None:
        if self._settled:
            return
        self._settled, self._error = True, error
        then, self._then = self._then, None
        if then is not None:
            then(error)

    def then(self, fn: Callable[[BaseException | None], None]) -> None:
        if self._settled:
            fn(self._error)
        else:
            self._then = fn

    async def wait(self) -> None:
        done = trio.Event()
        outcome: list[BaseException | None] = []

        def settled(error: BaseException | None) -> None:
            outcome.append(error)
            done.set()

        self.then(settled)
        await done.wait()
        if outcome[0] is not None:
            raise outcome[0]


Callback = Callable[[MqttMessage], Awaitable[None] | Pending | None]


@dataclass(slots=True)
class _Subscription:
    topic_filter: str
    qos: int
    callback: Callback
    name: str
    matches: Callable[[str], bool]


@dataclass(slots=True)
class ServiceStats:
    routed: int = 0
    unrouted: int = 0
    callback_errors: int = 0
    dead_lettered: int = 0
    redeliveries: int = 0


# What a routed message still waits for: its subscriptions' awaitables, their Pendings,
# whether one of them failed (see MqttService._route).
_Held = tuple[
    list[tuple["_Subscription", Awaitable[None]]], list[tuple["_Subscription", Pending]], bool
]


class MqttService:
    def __init__(self, options: AdapterOptions, defs: Any = None) -> None:
        self.options = options
        self.defs = defs
        self.engine: Any = None
        self.client: MqttClient | None = None
        self.stats = ServiceStats()
        self.recent_dead_letters: collections.deque[dict[str, Any]] = collections.deque(maxlen=100)
        self._subs: list[_Subscription] = []
        self._running = False
        self._nursery: trio.Nursery | None = None
        self._limit = trio.Semaphore(options.max_concurrent_messages)
        self._ready = trio.Event()
        self._dropping = False
        self._attach_hooks: list[Callable[[Any], None]] = []
        self._run_hooks: list[Callable[[MqttService], Awaitable[None]]] = []
        from edged_mqtt.outbox import MqttOutbox
        from edged_mqtt.triggers import TriggerSet

        self.outbox = MqttOutbox(self, options.outbox)
        self.triggers = TriggerSet(self)

    # ------------------------------------------------------------------ daemon hooks

    def attach(self, engine: Any) -> None:
        """Register the outbox sink and task types; read trigger rules. Before recovery."""
        self.engine = engine
        self.outbox.attach(engine)
        self.triggers.attach(engine)
        batchers = getattr(engine, "write_batchers", None)
        if batchers is not None:
            batchers.append(self)  # a settled batch's PUBACKs and publishes: one send
        for hook in self._attach_hooks:
            hook(engine)

    def hold_writes(self) -> None:
        """The engine settles a batch: see ``MqttClient.hold_writes``."""
        if self.client is not None:
            self.client.hold_writes()

    def release_writes(self) -> None:
        if self.client is not None:
            self.client.release_writes()

    def on_attach(self, hook: Callable[[Any], None]) -> None:
        """Extension point for other MQTT features: ``hook(engine)`` runs in ``attach``."""
        self._attach_hooks.append(hook)

    def on_run(self, hook: Callable[[MqttService], Awaitable[None]]) -> None:
        """Extension point: ``await hook(service)`` runs as a task once the client exists."""
        self._run_hooks.append(hook)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with open_mqtt_client(self.options.settings) as client:
            self.client = client
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._running = True
                granted = trio.Semaphore(0)

                async def subscribe(sub: _Subscription) -> None:
                    await client.subscribe(sub.topic_filter, sub.qos)
                    granted.release()

                for sub in self._subs:
                    nursery.start_soon(subscribe, sub)
                nursery.start_soon(self._route_loop, client)
                nursery.start_soon(self.outbox.run, client)
                for hook in self._run_hooks:
                    nursery.start_soon(hook, self)
                self._ready.set()
                # Ready once the broker granted every subscription (messages published
                # before that would miss a fresh session), but never wait on a broker
                # that is down: the client keeps trying and subscribes when it is back.
                waiting = len(self._subs)
                with trio.move_on_after(self.options.settings.connect_timeout_s):
                    while waiting and not client.statistics().failed_attempts:
                        with trio.move_on_after(0.05):
                            await granted.acquire()
                            waiting -= 1
                s = self.options.settings
                log.info(
                    "mqtt adapter started broker=%s:%d client_id=%s subscriptions=%d",
                    s.host,
                    s.port,
                    s.effective_client_id(),
                    len(self._subs),
                )
                task_status.started()
                await trio.sleep_forever()

    # ------------------------------------------------------------------ the API

    def subscribe(
        self, topic_filter: str, qos: int, callback: Callback, name: str = ""
    ) -> _Subscription:
        """Route messages matching ``topic_filter`` to ``callback`` (see module doc)."""
        sub = _Subscription(
            topic_filter, qos, callback, name or topic_filter, compile_filter(topic_filter)
        )
        self._subs.append(sub)
        if self._running and self._nursery is not None and self.client is not None:
            self._nursery.start_soon(self.client.subscribe, topic_filter, qos)
        return sub

    def unsubscribe(self, sub: _Subscription) -> None:
        """Stop routing to ``sub`` (from ``subscribe``); messages already handed to it finish.

        When no other subscription uses its filter, the broker is told too (when the client
        can), so it stops sending them; until then they are acked as unrouted.
        """
        if sub not in self._subs:
            return
        self._subs.remove(sub)
        if any(other.topic_filter == sub.topic_filter for other in self._subs):
            return
        client = self.client
        unsubscribe = getattr(client, "unsubscribe", None)
        if self._running and self._nursery is not None and unsubscribe is not None:
            self._nursery.start_soon(self._unsubscribe_quietly, unsubscribe, sub.topic_filter)

    async def _unsubscribe_quietly(
        self, unsubscribe: Callable[[str], Awaitable[None]], topic_filter: str
    ) -> None:
        with trio.move_on_after(10):
            try:
                await unsubscribe(topic_filter)
            except Exception as exc:  # the filter stays; its messages are acked as unrouted
                log.warning("mqtt unsubscribe %s failed: %s", topic_filter, exc)

    async def publish(
        self,
        topic: str,
        payload: bytes,
        qos: int = 1,
        retain: bool = False,
        properties: Any = None,
    ) -> None:
        """Publish now (not journaled); returns after PUBACK. Waits for the connection."""
        await self._ready.wait()
        assert self.client is not None
        await self.client.publish(topic, payload, qos, retain, properties)

    async def wait_ready(self) -> MqttClient:
        await self._ready.wait()
        assert self.client is not None
        return self.client

    def dead_letter(self, message: MqttMessage, reason: str, rule: str = "") -> None:
        """Count, log and (best effort) publish a description of a message we gave up on."""
        self.stats.dead_lettered += 1
        log.warning(
            "mqtt dead_letter topic=%s rule=%s size_bytes=%d reason=%s",
            message.topic,
            rule,
            len(message.payload),
            reason[:300],
        )
        doc = {
            "topic": message.topic,
            "rule": rule,
            "reason": reason[:1000],
            "receivedAtMs": message.received_at_ms,
            "size": len(message.payload),
            # the first bytes only: the description must stay far below max_payload_bytes
            "payloadBase64": base64.b64encode(message.payload[:512]).decode("ascii"),
        }
        self.recent_dead_letters.append(doc)
        topic = self.options.dead_letter_topic
        if topic and self._nursery is not None and self.client is not None:
            data = json.dumps(doc).encode()
            self._nursery.start_soon(self._publish_quietly, topic, data)

    async def _publish_quietly(self, topic: str, data: bytes) -> None:
        assert self.client is not None
        with trio.move_on_after(10):
            try:
                await self.client.publish(topic, data, 1)
            except Exception as exc:  # best effort: a dead letter must not take us down
                log.debug("mqtt dead_letter publish failed: %s", exc)

    # ------------------------------------------------------------------ routing

    async def _route_loop(self, client: MqttClient) -> None:
        client.set_direct(lambda message: self._route_now(client, message))
        try:
            async for message in client.messages():
                held = self._route(client, message)
                if held is None:
                    continue
                try:  # no scheduler pass per message while there is room (the usual case)
                    self._limit.acquire_nowait()
                except trio.WouldBlock:
                    await self._limit.acquire()
                self._carry_on(client, message, *held)
        finally:
            client.set_direct(None)

    def _route_now(self, client: MqttClient, message: MqttMessage) -> bool:
        """The client's direct hand-off: a message that arrives while this loop waits on an
        empty inbox is routed at once by the reader, when a slot is free (else queued)."""
        if not self._limit.value or self._nursery is None:
            return False
        held = self._route(client, message)
        if held is not None:
            self._limit.acquire_nowait()
            self._carry_on(client, message, *held)
        return True

    def _route(self, client: MqttClient, message: MqttMessage) -> _Held | None:
        """Run the matching subscriptions' callbacks. None when that settled the message;
        else what it still waits for (pending awaitables, Pendings, whether one failed),
        which needs a slot of ``max_concurrent_messages``."""
        subs = [s for s in self._subs if s.matches(message.topic)]
        if not subs:
            self.stats.unrouted += 1
            client.ack(message)
            return None
        self.stats.routed += 1
        pending: list[tuple[_Subscription, Awaitable[None]]] = []
        later: list[tuple[_Subscription, Pending]] = []
        failed = False
        for sub in subs:
            try:
                result = sub.callback(message)
            except Redeliver:
                failed = True
                continue
            except Exception as exc:
                self._callback_failed(sub, message, exc)
                continue
            if result is None:
                continue
            if isinstance(result, Pending):
                later.append((sub, result))
            elif inspect.isawaitable(result):
                pending.append((sub, result))
        if not pending and not later:
            self._finish(client, message, failed)
            return None
        return pending, later, failed

    def _carry_on(
        self,
        client: MqttClient,
        message: MqttMessage,
        pending: list[tuple[_Subscription, Awaitable[None]]],
        later: list[tuple[_Subscription, Pending]],
        failed: bool,
    ) -> None:
        """Wait for what the callbacks left (a slot is held for it)."""
        if pending:
            pending += [(sub, p.wait()) for sub, p in later]
            assert self._nursery is not None
            self._nursery.start_soon(self._complete, client, message, pending, failed)
        else:
            self._settle_later(client, message, later, failed)

    def _settle_later(
        self,
        client: MqttClient,
        message: MqttMessage,
        later: list[tuple[_Subscription, Pending]],
        failed: bool,
    ) -> None:
        """Finish `message` when every Pending has settled (no task: the last settle does it)."""
        left = len(later)
        redeliver = failed

        def one(sub: _Subscription) -> Callable[[BaseException | None], None]:
            def settled(error: BaseException | None) -> None:
                nonlocal left, redeliver
                if isinstance(error, Redeliver):
                    redeliver = True
                elif error is not None:
                    self._callback_failed(sub, message, error)
                left -= 1
                if left == 0:
                    self._limit.release()
                    self._finish(client, message, redeliver)

            return settled

        for sub, p in later:
            p.then(one(sub))

    async def _complete(
        self,
        client: MqttClient,
        message: MqttMessage,
        pending: list[tuple[_Subscription, Awaitable[None]]],
        failed: bool,
    ) -> None:
        try:
            for sub, awaitable in pending:
                try:
                    await awaitable
                except Redeliver:
                    failed = True
                except Exception as exc:
                    self._callback_failed(sub, message, exc)
        finally:
            self._limit.release()
        self._finish(client, message, failed)

    def _callback_failed(
        self, sub: _Subscription, message: MqttMessage, exc: BaseException
    ) -> None:
        self.stats.callback_errors += 1
        if not isinstance(exc, EdgedError):
            log.exception("mqtt callback %s failed on %s", sub.name, message.topic)
        self.dead_letter(message, f"{type(exc).__name__}: {exc}", sub.name)

    def _finish(self, client: MqttClient, message: MqttMessage, redeliver: bool) -> None:
        if not redeliver:
            client.ack(message)
            return
        self.stats.redeliveries += 1
        stopping = self.engine is not None and not self.engine.accepting
        if self._nursery is not None and not self._dropping and not stopping:
            self._dropping = True  # one reconnect for a burst of refusals
            self._nursery.start_soon(self._drop_later, client)

    async def _drop_later(self, client: MqttClient) -> None:
        # the journal refused a commit: give it a moment, then reconnect so that the broker
        # redelivers every unacked message of this connection
        try:
            await trio.sleep(1.0)
            client.drop_connection()
        finally:
            self._dropping = False


def configure(section: dict[str, Any], cfg: Any = None, defs: Any = None) -> MqttService:
    """The daemon's entry point (see edged.daemon.configure_adapters)."""
    service = MqttService(parse_options(section), defs)
    service.triggers.load_config_rules(service.options.triggers)
    if defs is not None:
        for doc in getattr(defs, "workflows", []):
            service.triggers.check_definition(doc)
    from edged_mqtt.device_tasks import install  # MQTT_REQUEST, keptn, mqtt: event handlers

    install(service)
    return service
