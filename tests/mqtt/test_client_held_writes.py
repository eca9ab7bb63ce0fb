"""Held writes (``MqttClient.hold_writes`` / ``release_writes``, what the engine does while
it settles a batch) against a real Mosquitto: what was queued while held leaves in one go
from the releasing task, without a step of the client's writer task, and in order; when
the writer is busy, releasing hands the bytes to it as before."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio
import trio.testing

from edged_mqtt.client import MqttClient, open_mqtt_client
from tests.mqtt.conftest import Broker
from tests.task_steps import counting_steps


@asynccontextmanager
async def _pair(broker: Broker, name: str) -> AsyncIterator[tuple[MqttClient, MqttClient]]:
    """A subscriber to `name`/# and a publisher."""
    async with (
        open_mqtt_client(broker.settings(client_id=f"{name}-sub")) as sub,
        open_mqtt_client(broker.settings(client_id=f"{name}-pub")) as pub,
    ):
        await sub.subscribe(f"{name}/#", 1)
        await pub.wait_connected()  # publish_then_nowait refuses (WouldBlock) until then
        yield sub, pub


async def _received(sub: MqttClient, n: int) -> list[int]:
    """The next `n` messages' integer payloads, each acknowledged."""
    got = []
    for _ in range(n):
        message = await sub.receive()
        sub.ack(message)
        got.append(int(message.payload))
    return got


async def test_held_writes_leave_on_release_without_the_writer_task(broker: Broker) -> None:
    async with _pair(broker, "held") as (sub, pub):
        with trio.fail_after(10):
            await pub.publish("held/warm", b"w", 1)  # connected, first packets out of the way
            warm = await sub.receive()
            sub.ack(warm)
            await trio.testing.wait_all_tasks_blocked()
            with counting_steps("MqttClient._write_loop", owner=pub) as counter:
                pub.hold_writes()
                for i in range(5):
                    pub.publish_then_nowait(
                        "held/x", str(i).encode(), 1, False, None, lambda e: None
                    )
                await trio.testing.wait_all_tasks_blocked()
                assert pub.statistics().published == 1  # nothing of the five left yet
                with trio.move_on_after(0.2):
                    await sub.receive()
                    raise AssertionError("a held publish reached the broker before release")
                pub.release_writes()
                assert await _received(sub, 5) == [0, 1, 2, 3, 4]
                assert counter.steps == 0  # the releasing task sent them itself


async def test_release_hands_over_to_a_busy_writer(broker: Broker) -> None:
    async with _pair(broker, "busy") as (sub, pub):
        with trio.fail_after(10):
            # a publish wakes the writer (not held); a held one released before the writer
            # has run must leave after it, through the writer
            pub.publish_then_nowait("busy/x", b"0", 1, False, None, lambda e: None)
            pub.hold_writes()
            pub.publish_then_nowait("busy/x", b"1", 1, False, None, lambda e: None)
            pub.release_writes()
            assert await _received(sub, 2) == [0, 1]
