"""MqttClient against a real Mosquitto: round trips, sessions, manual ack, faults."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio

from edged_mqtt.client import MqttClient, open_mqtt_client
from edged_mqtt.inbox import MqttMessage
from tests.mqtt.conftest import Broker

DEADLINE_S = 10


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll a counter owned by a client or the broker (callers bound it with fail_after)."""
    while True:
        if predicate():
            return
        await trio.sleep(0.005)


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


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_unacked_message_is_redelivered_after_reconnect(
    broker: Broker, protocol: str
) -> None:
    with trio.fail_after(DEADLINE_S):
        sub_settings = broker.settings(
            client_id=f"ack-{protocol}", protocol=protocol, manual_ack=True
        )
        async with (
            open_mqtt_client(sub_settings) as sub,
            open_mqtt_client(
                broker.settings(client_id=f"ack-pub-{protocol}", protocol=protocol)
            ) as pub,
        ):
            await sub.subscribe("ack/#", 1)
            await pub.publish("ack/1", b"first")
            first = await sub.receive()
            assert first.payload == b"first"
            # Not acked: a crash here must not lose it. Drop the connection like a power cut.
            n = await sub.wait_connected()
            sub.drop_connection()
            assert not sub.ack(first), "an ack on a dead connection must report failure"
            await sub.wait_connected(after=n)
            again = await sub.receive()
            assert again.payload == b"first"
            assert again.dup
            assert sub.ack(again)
            # ack() queues the PUBACK; a publish round trip on the same socket flushes it.
            await sub.publish("sync", b"")
            # Acked now: after another reconnect it does not come back, the next message does.
            n = await sub.wait_connected()
            sub.drop_connection()
            await sub.wait_connected(after=n)
            await pub.publish("ack/2", b"second")
            nxt = await sub.receive()
            assert nxt.payload == b"second"
            assert sub.ack(nxt)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_messages_published_while_away_arrive_on_reconnect(
    broker: Broker, protocol: str
) -> None:
    with trio.fail_after(DEADLINE_S):
        sub_settings = broker.settings(client_id=f"away-{protocol}", protocol=protocol)
        async with open_mqtt_client(sub_settings) as sub:
            await sub.subscribe("away/#", 1)
        # The subscriber is gone (clean DISCONNECT); its session stays on the broker.
        async with open_mqtt_client(broker.settings(client_id=f"away-pub-{protocol}")) as pub:
            for i in range(10):
                await pub.publish(f"away/{i}", str(i).encode())
        async with open_mqtt_client(sub_settings) as sub:
            # No subscribe call: the persistent session still holds the subscription.
            got = await receive_n(sub, 10)
            assert sorted(int(m.payload) for m in got) == list(range(10))
            assert all(m.qos == 1 for m in got)


async def test_every_acknowledged_publish_survives_a_broker_restart(broker: Broker) -> None:
    total = 400
    seen: set[int] = set()
    acknowledged: set[int] = set()
    with trio.fail_after(30):
        async with (
            open_mqtt_client(
                broker.settings(client_id="load-sub", max_buffered_messages=10_000)
            ) as sub,
            open_mqtt_client(broker.settings(client_id="load-pub", max_inflight=16)) as pub,
        ):
            await sub.subscribe("load/#", 1)

            async def publisher(start: int) -> None:
                for i in range(start, total, 8):
                    await pub.publish(f"load/{i % 7}", str(i).encode())
                    acknowledged.add(i)

            async def restarter() -> None:
                await wait_until(lambda: len(acknowledged) >= total // 3)
                await trio.to_thread.run_sync(broker.restart)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(restarter)
                for start in range(8):
                    nursery.start_soon(publisher, start)
            assert acknowledged == set(range(total))
            while seen != acknowledged:
                seen.add(int((await sub.receive()).payload))
            assert pub.statistics().reconnects >= 1
            assert sub.statistics().reconnects >= 1


async def test_client_connects_once_a_late_broker_comes_up(
    broker_factory: list[Broker], tmp_path
) -> None:  # type: ignore[no-untyped-def]
    late = Broker(tmp_path)
    broker_factory.append(late)
    settings = late.settings(client_id="late", reconnect_base_s=0.05, reconnect_cap_s=0.1)
    with trio.fail_after(DEADLINE_S):
        async with open_mqtt_client(settings) as client:
            await wait_until(lambda: client.statistics().failed_attempts >= 2)
            assert not client.statistics().connected
            await trio.to_thread.run_sync(late.start)
            await client.wait_connected()
            await client.subscribe("late/#")
            await client.publish("late/x", b"hello")
            assert (await client.receive()).payload == b"hello"


async def test_oversized_and_malformed_payloads_do_not_break_the_client(broker: Broker) -> None:
    from edged_mqtt.session import PayloadTooLarge
    from edged_mqtt.topics import InvalidTopic

    with trio.fail_after(DEADLINE_S):
        async with (
            open_mqtt_client(
                broker.settings(client_id="big-sub", max_payload_bytes=1000, manual_ack=True)
            ) as sub,
            open_mqtt_client(broker.settings(client_id="big-pub")) as pub,
        ):
            await sub.subscribe("big/#", 1)
            await pub.publish("big/huge", b"x" * 5000)
            await pub.publish("big/garbage", b"\xff\xfe{not json\x00")
            await pub.publish("big/empty", b"")
            await pub.publish("big/ok", b"fine")
            got = await receive_n(sub, 3)
            assert [m.topic for m in got] == ["big/garbage", "big/empty", "big/ok"]
            assert sub.statistics().oversized == 1
            for m in got:
                assert sub.ack(m)
            with pytest.raises(PayloadTooLarge):
                await sub.publish("big/out", b"y" * 1001)
            with pytest.raises(InvalidTopic):
                await pub.publish("big/+", b"wildcards are for filters")
            await pub.publish("big/after", b"still works")
            assert (await sub.receive()).payload == b"still works"


async def test_a_flood_on_one_subscription_does_not_starve_another(broker: Broker) -> None:
    bound = 50
    flood = 500
    with trio.fail_after(DEADLINE_S):
        async with (
            open_mqtt_client(
                broker.settings(client_id="flood-sub", max_buffered_messages=bound)
            ) as sub,
            open_mqtt_client(broker.settings(client_id="flood-pub")) as pub,
        ):
            await sub.subscribe("flood/#", 0)
            await sub.subscribe("calm/#", 0)
            for i in range(flood):
                await pub.publish("flood/x", str(i).encode(), qos=0)
            await pub.publish("calm/x", b"important", qos=1)
            await wait_until(lambda: sub.statistics().received >= flood + 1)
            stats = sub.statistics()
            assert stats.dropped == flood - bound  # drop oldest, counted
            assert stats.buffered == bound + 1
            first_two = [await sub.receive(), await sub.receive()]
            assert b"important" in [m.payload for m in first_two]
            rest = [int(m.payload) for m in await receive_n(sub, bound - 1)]
            # What survived the bound is the newest of the flood, in order.
            assert rest == sorted(rest) and rest[-1] == flood - 1
