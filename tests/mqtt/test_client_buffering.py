"""The client's buffered socket I/O against a real Mosquitto: a burst that arrives in one
large recv() (far more packets than one reader wake-up handles) is delivered in full with
nothing arriving after it, and many publishes gathered into few send() calls all arrive."""

from __future__ import annotations

from functools import partial

import trio

from edged_mqtt.client import open_mqtt_client
from tests.mqtt.conftest import Broker


async def test_a_burst_left_in_the_read_buffer_is_delivered(broker: Broker) -> None:
    n = 3000  # queued for an absent subscriber, then sent to it in one burst
    sub_settings = broker.settings(client_id="burst-sub", max_buffered_messages=n, manual_ack=True)
    with trio.fail_after(30):
        async with open_mqtt_client(sub_settings) as sub:
            await sub.subscribe("b/#", 1)
        async with open_mqtt_client(broker.settings(client_id="burst-pub")) as pub:
            for i in range(n - 1):
                await pub.publish_then("b/x", str(i).encode(), 1, False, None, lambda e: None)
            await pub.publish("b/x", str(n - 1).encode(), 1)  # PUBACKs come back in order
        async with open_mqtt_client(sub_settings) as sub:
            got = []
            for _ in range(n):  # nothing arrives after the burst: all must come from it
                message = await sub.receive()
                got.append(int(message.payload))
                sub.ack(message)
            assert got == list(range(n))


async def test_pipelined_publishes_are_all_acknowledged(broker: Broker) -> None:
    n = 500
    with trio.fail_after(30):
        async with (
            open_mqtt_client(broker.settings(client_id="pipe-sub")) as sub,
            open_mqtt_client(broker.settings(client_id="pipe-pub", max_inflight=64)) as pub,
        ):
            await sub.subscribe("p/#", 1)
            acked: list[int] = []
            all_acked = trio.Event()

            def done(i: int, error: BaseException | None) -> None:
                assert error is None
                acked.append(i)
                if len(acked) == n:
                    all_acked.set()

            for i in range(n):
                await pub.publish_then("p/x", str(i).encode(), 1, False, None, partial(done, i))
            got = [int((await sub.receive()).payload) for _ in range(n)]
            assert got == list(range(n))
            await all_acked.wait()
            assert sorted(acked) == list(range(n))
            assert pub.statistics().in_flight == 0 and pub.statistics().published == n
