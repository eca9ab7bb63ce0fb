"""MqttClient.unsubscribe against a real Mosquitto: the broker stops sending the filter's
messages, and a reconnect does not subscribe it again."""

from __future__ import annotations

import pytest
import trio

from edged_mqtt.client import open_mqtt_client
from tests.mqtt.conftest import Broker

DEADLINE_S = 15


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_unsubscribed_filter_gets_nothing_even_after_reconnect(
    broker: Broker, protocol: str
) -> None:
    with trio.fail_after(DEADLINE_S):
        sub_settings = broker.settings(client_id=f"unsub-{protocol}", protocol=protocol)
        pub_settings = broker.settings(client_id=f"unsub-pub-{protocol}", protocol=protocol)
        async with open_mqtt_client(sub_settings) as sub, open_mqtt_client(pub_settings) as pub:
            await sub.subscribe("keep/#", 1)
            await sub.subscribe("drop/#", 1)
            await pub.publish("drop/1", b"before", qos=1)
            assert (await sub.receive()).payload == b"before"
            await sub.unsubscribe("drop/#")
            await pub.publish("drop/2", b"after", qos=1)
            await pub.publish("keep/1", b"kept", qos=1)
            # messages arrive in order per connection: the kept one proves the dropped
            # one (published first) was never sent
            message = await sub.receive()
            assert (message.topic, message.payload) == ("keep/1", b"kept")
            sub.drop_connection()  # the reconnect must not subscribe drop/# again
            await sub.wait_connected()
            await pub.publish("drop/3", b"after reconnect", qos=1)
            await pub.publish("keep/2", b"kept again", qos=1)
            # keep/1 may come again (its PUBACK may not have left before the drop), but
            # nothing on drop/# may
            seen = []
            while not seen or seen[-1] != ("keep/2", b"kept again"):
                message = await sub.receive()
                seen.append((message.topic, message.payload))
            assert all(topic.startswith("keep/") for topic, _ in seen), seen
            # unsubscribing a filter the broker does not hold is harmless
            await sub.unsubscribe("never/subscribed")
