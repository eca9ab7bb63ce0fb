"""MqttClient against a real Mosquitto: round trips, sessions, manual ack, faults."""

from __future__ import annotations

import pytest
import trio
from edged_mqtt.client import MqttClient, open_mqtt_client
from edged_mqtt.inbox import MqttMessage

from tests.mqtt.conftest import Broker

DEADLINE_S = 10


async def receive_n(client: MqttClient, n: int) -> list[MqttMessage]:
    return [await client.receive() for _ in range(n)]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
@pytest.mark.parametrize("qos", [0, 1])
async def test_publish_subscribe_round_trip(broker: Broker, protocol: str, qos: int) -> None:
    with trio.fail_after(DEADLINE_S):
        sub_settings = broker.settings(client_id=f"sub-{protocol}-{qos}", protocol=protocol)
        pub_settings = broker.settings(client_id=f"pub-{protocol}-{qos}", protocol=protocol)
        async with open_mqtt_client(sub_settings) as sub, open_mqtt_client(pub_settings) as pub:
            await sub.subscribe("rt/+/x", qos)
            for i in range(5):
                await pub.publish(f"rt/{i}/x", f"m{i}".encode(), qos=qos)
            await pub.publish("rt/other", b"not for us", qos=qos)
            got = await receive_n(sub, 5)
            assert [m.payload for m in got] == [f"m{i}".encode() for i in range(5)]
            assert [m.topic for m in got] == [f"rt/{i}/x" for i in range(5)]
            assert all(m.qos == qos and m.subscription == "rt/+/x" for m in got)
            assert pub.statistics().published == 6
            assert sub.statistics().received == 5
            assert pub.statistics().in_flight == 0
