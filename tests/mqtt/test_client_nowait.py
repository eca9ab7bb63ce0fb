"""``publish_then_nowait`` and the outbox's bursts, against a real Mosquitto: the fast path
refuses (having done nothing) when not connected or out of in-flight slots, checks its input
like ``publish_then``, and a queue far longer than one burst and than the in-flight window
still leaves in order, every message settled once."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
import trio

from edged.core.commands import PublishEvent
from edged.errors import BadInput
from edged_mqtt import outbox as outbox_module
from edged_mqtt.client import open_mqtt_client
from edged_mqtt.options import OutboxLimits
from edged_mqtt.outbox import PUBLISH_SINK, MqttOutbox
from edged_mqtt.session import PayloadTooLarge
from edged_mqtt.topics import InvalidTopic
from tests.mqtt.conftest import Broker


def ignore(error: BaseException | None) -> None:
    pass


async def test_nowait_refuses_before_the_connection_and_without_a_slot(broker: Broker) -> None:
    with trio.fail_after(30):
        async with (
            open_mqtt_client(broker.settings(client_id="nw-sub")) as sub,
            open_mqtt_client(broker.settings(client_id="nw-pub", max_inflight=2)) as pub,
        ):
            assert not pub.connected  # connecting in the background
            with pytest.raises(trio.WouldBlock):
                pub.publish_then_nowait("n/x", b"early", 1, False, None, ignore)
            assert pub.statistics().in_flight == 0
            await sub.subscribe("n/#", 1)
            await pub.wait_connected()
            assert pub.connected

            results: list[tuple[int, BaseException | None]] = []
            all_done = trio.Event()

            def done(i: int, error: BaseException | None) -> None:
                results.append((i, error))
                if len(results) == 3:
                    all_done.set()

            pub.publish_then_nowait("n/x", b"0", 1, False, None, partial(done, 0))
            pub.publish_then_nowait("n/x", b"1", 1, False, None, partial(done, 1))
            with pytest.raises(trio.WouldBlock):  # both slots taken until the PUBACKs
                pub.publish_then_nowait("n/x", b"never", 1, False, None, partial(done, 9))
            await pub.publish_then("n/x", b"2", 1, False, None, partial(done, 2))  # waits
            got = [(await sub.receive()).payload for _ in range(3)]
            assert got == [b"0", b"1", b"2"]
            await all_done.wait()
            assert sorted(results, key=lambda r: r[0]) == [(0, None), (1, None), (2, None)]
            stats = pub.statistics()
            assert stats.in_flight == 0 and stats.published == 3


async def test_nowait_checks_input_like_publish_then_and_qos0_is_done_at_once(
    broker: Broker,
) -> None:
    with trio.fail_after(30):
        async with open_mqtt_client(
            broker.settings(client_id="nw-in", max_payload_bytes=10)
        ) as pub:
            for bad, error in [
                (("a/+", b"x", 1), InvalidTopic),
                (("a/x", b"x", 3), ValueError),
                (("a/x", b"x" * 11, 1), PayloadTooLarge),
            ]:
                with pytest.raises(error):  # checked before the connection is looked at
                    pub.publish_then_nowait(*bad, False, None, ignore)
                with pytest.raises(error):
                    await pub.publish_then(*bad, False, None, ignore)
            assert issubclass(PayloadTooLarge, BadInput)
            await pub.wait_connected()
            calls: list[BaseException | None] = []
            pub.publish_then_nowait("a/x", b"q0", 0, False, None, calls.append)
            assert calls == [None]  # QoS 0: nothing to wait for
            assert pub.statistics().in_flight == 0 and pub.statistics().published == 1


class _Service:
    def __init__(self, settings: Any) -> None:
        self.options = type("Options", (), {"settings": settings})()


class _Engine:
    def __init__(self, expected: int) -> None:
        self.sinks: dict[str, Any] = {}
        self.ops: list[Any] = []
        self.expected = expected
        self.all_posted = trio.Event()

    def post(self, op: Any) -> None:
        self.ops.append(op)
        if len(self.ops) == self.expected:
            self.all_posted.set()


def _outbox(settings: Any, expected: int) -> tuple[_Engine, MqttOutbox]:
    """An outbox attached to an engine that expects `expected` posted ops."""
    engine = _Engine(expected)
    outbox = MqttOutbox(_Service(settings), OutboxLimits())
    outbox.attach(engine)
    return engine, outbox


async def test_outbox_bursts_keep_order_past_the_burst_and_the_window(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_module, "_SEND_BURST", 7)
    n = 300
    settings = broker.settings(client_id="ob-pub", max_inflight=16)
    engine, outbox = _outbox(settings, n)
    with trio.fail_after(30):
        async with (
            open_mqtt_client(broker.settings(client_id="ob-sub")) as sub,
            open_mqtt_client(settings) as pub,
            trio.open_nursery() as nursery,
        ):
            await sub.subscribe("ob/#", 1)
            for i in range(n):  # queued before the outbox runs: one long queue
                payload = {"topic": "ob/x", "payload": str(i), "userProperties": {"i": i}}
                outbox.accept(PublishEvent(PUBLISH_SINK, payload, "wf", f"t{i}"), i + 1)
            nursery.start_soon(outbox.run, pub)
            got = []
            for _ in range(n):
                message = await sub.receive()
                got.append(int(message.payload))
                assert ("edged-task-id", f"t{got[-1]}") in message.properties.UserProperty
            assert got == list(range(n))
            await engine.all_posted.wait()
            assert sorted(op.ack for op in engine.ops) == list(range(1, n + 1))
            assert {op.event.status for op in engine.ops} == {"COMPLETED"}
            assert outbox.pending() == 0 and outbox.stats.delivered == n
            nursery.cancel_scope.cancel()


async def test_outbox_hands_a_committed_message_to_paho_inline_and_queues_past_the_window(
    broker: Broker,
) -> None:
    # Connected with a slot free, accept() hands the message over before it returns (no
    # sender task, no scheduler pass); past the in-flight window the rest waits in a
    # sender task and still leaves in order.
    n = 12
    settings = broker.settings(client_id="inline-pub", max_inflight=4)
    engine, outbox = _outbox(settings, n)
    with trio.fail_after(30):
        async with (
            open_mqtt_client(broker.settings(client_id="inline-sub")) as sub,
            open_mqtt_client(settings) as pub,
            trio.open_nursery() as nursery,
        ):
            await sub.subscribe("in/#", 1)
            nursery.start_soon(outbox.run, pub)
            await pub.wait_connected()
            await trio.testing.wait_all_tasks_blocked()
            published = pub.statistics().published
            outbox.accept(
                PublishEvent(PUBLISH_SINK, {"topic": "in/x", "payload": "0"}, "wf", "t0"), 1
            )
            assert not outbox._senders  # sent inline
            assert len(pub._pending_pubs) == 1  # paho has it, waiting for its PUBACK
            for i in range(1, n):
                payload = {"topic": "in/x", "payload": str(i)}
                outbox.accept(PublishEvent(PUBLISH_SINK, payload, "wf", f"t{i}"), i + 1)
            assert outbox._senders == {"in/x"}  # the window (4) is full: the rest waits
            got = [int((await sub.receive()).payload) for _ in range(n)]
            assert got == list(range(n))
            await engine.all_posted.wait()
            assert sorted(op.ack for op in engine.ops) == list(range(1, n + 1))
            assert outbox.pending() == 0 and pub.statistics().published == published + n
            nursery.cancel_scope.cancel()


async def test_an_unexpected_error_handing_over_inline_is_left_to_the_sender(
    broker: Broker, monkeypatch: pytest.MonkeyPatch
) -> None:
    # accept() runs inside the engine's commit handling: a bug on the send path must not
    # escape there; the message stays queued and the sender task meets it as before.
    settings = broker.settings(client_id="inline-bug")
    engine, outbox = _outbox(settings, 1)
    with trio.fail_after(30):
        async with open_mqtt_client(settings) as pub, trio.open_nursery() as nursery:
            nursery.start_soon(outbox.run, pub)
            await pub.wait_connected()
            await trio.testing.wait_all_tasks_blocked()
            calls = []

            def broken(*args: Any) -> None:
                calls.append(args)
                raise RuntimeError("bug")

            real = pub.publish_then_nowait
            monkeypatch.setattr(pub, "publish_then_nowait", broken)
            event = PublishEvent(PUBLISH_SINK, {"topic": "b/x", "payload": "0"}, "wf", "t")
            outbox.accept(event, 1)
            assert len(calls) == 1 and outbox.pending() == 1
            assert outbox._senders == {"b/x"}  # started, not run yet
            monkeypatch.setattr(pub, "publish_then_nowait", real)
            await engine.all_posted.wait()  # the sender delivered it
            assert [op.ack for op in engine.ops] == [1] and outbox.pending() == 0
            nursery.cancel_scope.cancel()
