"""Read pacing (MqttSettings.read_batch_ms) against a real Mosquitto: under load the reader
wakes at most once per window and hands out what arrived meanwhile as one burst, in order;
a message after a quiet spell is read at once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from edged.errors import ConfigError
from edged_mqtt.client import MqttClient, open_mqtt_client
from edged_mqtt.options import parse_options
from tests.mqtt.conftest import Broker


@asynccontextmanager
async def _paced_pair(
    broker: Broker, name: str, read_batch_ms: float, manual_ack: bool = True
) -> AsyncIterator[tuple[MqttClient, MqttClient]]:
    """A subscriber to `name`/# paced at `read_batch_ms` and a publisher, after a quiet
    spell longer than the window (the subscriber's next read is at once)."""
    # Manual acks (the default): the client then announces a Receive Maximum of
    # max_buffered_messages, so the broker sends a whole burst at once (its default in-flight
    # window for a client that announces none is 20 messages, which a paced reader drains
    # 20 per window).
    settings = broker.settings(
        client_id=f"{name}-sub", read_batch_ms=read_batch_ms, manual_ack=manual_ack
    )
    async with (
        open_mqtt_client(settings) as sub,
        open_mqtt_client(broker.settings(client_id=f"{name}-pub")) as pub,
    ):
        await sub.subscribe(f"{name}/#", 1)  # its SUBACK may wait out the window after CONNACK
        await trio.sleep(read_batch_ms / 1000 + 0.1)
        yield sub, pub


async def _burst_after_two(broker: Broker, read_batch_ms: float, n: int) -> tuple[list[int], int]:
    """Subscriber paced at `read_batch_ms`: after a quiet spell one message, a second right
    after it (dense traffic: pacing starts), then `n` more. Returns the payloads received and
    the reader's wake-ups meanwhile."""
    async with _paced_pair(broker, "rb", read_batch_ms) as (sub, pub):
        before = sub.statistics().read_wakeups
        got = []
        for i in range(2):
            await pub.publish("rb/x", str(i).encode(), 1)
            message = await sub.receive()
            sub.ack(message)
            got.append(int(message.payload))
        for i in range(2, n + 2):
            await pub.publish_then("rb/x", str(i).encode(), 1, False, None, lambda e: None)
        for _ in range(n):
            message = await sub.receive()
            sub.ack(message)
            got.append(int(message.payload))
        return got, sub.statistics().read_wakeups - before


async def test_a_burst_inside_the_window_is_read_in_one_wakeup(broker: Broker) -> None:
    # A long window so that the test's own publishing always fits inside it.
    with trio.fail_after(20):
        got, wakeups = await _burst_after_two(broker, 1000, 50)
    assert got == list(range(52))
    # The first message woke the reader at once, and so did the second (traffic was
    # sparse until then); two within a window are dense traffic, so the next 50 arrived
    # while the reader slept out the window and came in on one more wake-up (PUBACKs of
    # the publisher's own messages go to the publisher, not here).
    assert wakeups == 3


async def test_sparse_traffic_is_read_at_once(broker: Broker) -> None:
    # A 1 s window and one message every 0.6 s: more often than the window, but fewer
    # than two per window. Each is read at once, not held to the window's end (0.4 s).
    with trio.fail_after(20):
        async with _paced_pair(broker, "s", 1000) as (sub, pub):
            for i in range(6):
                await pub.publish("s/x", str(i).encode(), 1)
                with trio.fail_after(0.3):
                    message = await sub.receive()
                sub.ack(message)
                assert message.payload == str(i).encode()
                await trio.sleep(0.6)


async def test_a_message_after_a_quiet_spell_is_not_held_for_the_window(broker: Broker) -> None:
    with trio.fail_after(10):
        async with _paced_pair(broker, "q", 1000, manual_ack=False) as (sub, pub):
            await pub.publish("q/x", b"hello", 1)
            with trio.fail_after(0.5):  # a paced read would take up to the 1 s window
                assert (await sub.receive()).payload == b"hello"


def test_read_batch_ms_is_checked() -> None:
    assert parse_options({"read_batch_ms": 8}).settings.read_batch_ms == 8.0
    assert parse_options({"read_batch_ms": 0}).settings.read_batch_ms == 0.0
    for bad in (-1, 1001, "5"):
        with pytest.raises(ConfigError, match="read_batch_ms"):
            parse_options({"read_batch_ms": bad})


async def test_pacing_stops_while_the_publish_window_waits_for_acks(broker: Broker) -> None:
    # A 1 s window and a publish window of 4, and the client reads its own messages (dense
    # traffic: paced): paced PUBACK reads would let one window of publishes through per
    # second (16 publishes: ~3 s); unpaced they take milliseconds.
    settings = broker.settings(client_id="paced-pub", read_batch_ms=1000, max_inflight=4)
    with trio.fail_after(10):
        async with open_mqtt_client(settings) as pub:
            await pub.subscribe("w/#", 1)
            await trio.sleep(1.1)  # past the window opened by the SUBACK
            for i in range(2):  # two messages in quick succession: pacing starts
                await pub.publish("w/x", str(i).encode(), 1)
                await pub.receive()
            acked = trio.Semaphore(0)
            with trio.fail_after(1.5):
                for i in range(16):
                    await pub.publish_then(
                        "w/x", str(i).encode(), 1, False, None, lambda e: acked.release()
                    )
                for _ in range(16):
                    await acked.acquire()
            assert pub.statistics().published == 18


async def test_the_window_follows_the_traffic(broker: Broker) -> None:
    # Base window 0.5 s. Traffic sparser than two messages per window is read at once;
    # denser traffic waits out the base window; a burst of >= 4 (well above that) doubles
    # the next window to 1 s. Generous margins for a slow CI.
    with trio.fail_after(20):
        async with _paced_pair(broker, "g", 500) as (sub, pub):

            async def held(count: int) -> float:
                """Publish `count` messages now; seconds until the last one is read."""
                start = trio.current_time()
                for i in range(count):
                    await pub.publish_then("g/x", str(i).encode(), 1, False, None, lambda e: None)
                for _ in range(count):
                    sub.ack(await sub.receive())
                return trio.current_time() - start

            assert await held(1) < 0.3  # after a quiet spell: read at once
            assert await held(1) < 0.3  # and right after it: two at once is dense traffic
            assert await held(10) >= 0.35  # held to the base window's end: a full burst
            assert await held(1) >= 0.8  # the window after a full burst is 1 s ...
            assert await held(1) < 0.3  # ... and one message in it is sparse: read at once
            assert await held(3) >= 0.35  # dense again: the base window; 3 is not full ...
            assert 0.35 <= await held(1) < 0.9  # ... so the next window is the base one


async def test_pacing_stands_aside_at_three_quarters_of_the_publish_window(
    broker: Broker,
) -> None:
    # Mosquitto's receive maximum (20) clamps the publish window. A batch of 10 publishes
    # leaves pacing alone (at half it cut every window short at 1,000 msg/s); 15 do not.
    settings = broker.settings(client_id="threequarters", max_inflight=64)
    with trio.fail_after(10):
        async with open_mqtt_client(settings) as pub:
            await pub.wait_connected()
            window = pub._paho._max_inflight_messages
            assert window == 20
            for n, due in ((10, False), (14, False), (15, True), (20, True)):
                pub._pending_pubs = dict.fromkeys(range(n))  # type: ignore[arg-type]
                assert pub._acks_due() is due, n
            pub._pending_pubs = {}
