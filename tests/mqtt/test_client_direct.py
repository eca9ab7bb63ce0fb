"""The client's direct hand-off (``MqttClient.set_direct``, what the trigger router uses)
against a real Mosquitto: a message that arrives while the receiver waits on an empty
inbox goes to the handler at once, from the reader task; one the handler declines, or one
that arrives while no receiver waits (it is busy, or there is none), is queued."""

from __future__ import annotations

import trio
import trio.testing

from edged_mqtt.client import open_mqtt_client
from edged_mqtt.inbox import MqttMessage
from tests.mqtt.conftest import Broker


async def test_direct_hand_off_and_its_fallbacks(broker: Broker) -> None:
    async with (
        open_mqtt_client(broker.settings(client_id="direct-sub")) as sub,
        open_mqtt_client(broker.settings(client_id="direct-pub")) as pub,
    ):
        await sub.subscribe("direct/#", 1)
        direct: list[bytes] = []
        take = True
        arrived = trio.Event()

        def handler(message: MqttMessage) -> bool:
            if not take:
                return False
            direct.append(message.payload)
            sub.ack(message)
            arrived.set()
            return True

        sub.set_direct(handler)
        received: list[bytes] = []
        receiving = trio.Event()

        async def receiver() -> None:
            receiving.set()
            async for message in sub.messages():
                received.append(message.payload)
                sub.ack(message)

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(receiver)
                await receiving.wait()
                await trio.testing.wait_all_tasks_blocked()
                # the receiver is parked on an empty inbox: the handler takes it
                await pub.publish("direct/a", b"1", 1)
                await arrived.wait()
                assert direct == [b"1"] and received == []
                # declined: queued, and the receiver gets it
                take = False
                await pub.publish("direct/a", b"2", 1)
                while received != [b"2"]:  # noqa: ASYNC110 - bounded by fail_after
                    await trio.sleep(0.01)
                nursery.cancel_scope.cancel()
        # no receiver parked (none runs now): queued, whatever the handler would say
        take = True
        with trio.fail_after(10):
            await pub.publish("direct/a", b"3", 1)
            message = await sub.receive()
            assert message.payload == b"3" and direct == [b"1"]
            sub.ack(message)
