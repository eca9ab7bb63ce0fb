"""Pending: a subscription callback's outcome settled later by a call, with no task.

The route loop PUBACKs a message once every matching callback is done. With Pending
results the last settle does it: an error is dead-lettered and acked, a Redeliver leaves
the message unacked (the broker sends it again), and the concurrency slot comes back.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from edged_mqtt.inbox import MqttMessage
from edged_mqtt.options import parse_options
from edged_mqtt.service import MqttService, Pending, Redeliver, _Subscription
from edged_mqtt.topics import compile_filter


class RecordingClient:
    def __init__(self) -> None:
        self.acked: list[int] = []

    def ack(self, message: MqttMessage) -> bool:
        self.acked.append(message.mid)
        return True


def sub(name: str) -> _Subscription:
    return _Subscription("t/#", 1, lambda m: None, name, compile_filter("t/#"))


def message(mid: int) -> MqttMessage:
    return MqttMessage(topic="t/x", payload=b"{}", qos=1, retain=False, mid=mid)


def service() -> MqttService:
    return MqttService(parse_options({"host": "127.0.0.1", "port": 1}))


def test_then_runs_at_settle_or_at_once_when_already_settled() -> None:
    seen: list[Any] = []
    early = Pending()
    early.then(seen.append)
    assert seen == []
    early.settle()
    early.settle(RuntimeError("ignored: settles once"))
    assert seen == [None]
    late = Pending()
    error = RuntimeError("x")
    late.settle(error)
    late.then(seen.append)
    assert seen == [None, error]


async def test_wait_returns_or_raises_the_settled_error() -> None:
    ok, bad = Pending(), Pending()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ok.wait)
        await trio.testing.wait_all_tasks_blocked()
        ok.settle()
    bad.settle(Redeliver("refused"))
    with pytest.raises(Redeliver):
        await bad.wait()


async def test_message_is_acked_only_when_every_pending_settles() -> None:
    svc, client = service(), RecordingClient()
    first, second = Pending(), Pending()
    await svc._limit.acquire()
    svc._settle_later(client, message(7), [(sub("a"), first), (sub("b"), second)], False)
    first.settle()
    assert client.acked == []
    assert svc._limit.value == svc.options.max_concurrent_messages - 1
    second.settle()
    assert client.acked == [7]
    assert svc._limit.value == svc.options.max_concurrent_messages


async def test_an_error_is_dead_lettered_and_acked_a_redeliver_is_not_acked() -> None:
    svc, client = service(), RecordingClient()
    failing = Pending()
    await svc._limit.acquire()
    svc._settle_later(client, message(1), [(sub("a"), failing)], False)
    failing.settle(RuntimeError("decoder bug"))
    assert client.acked == [1]
    assert svc.stats.callback_errors == 1 and svc.stats.dead_lettered == 1
    refused = Pending()
    await svc._limit.acquire()
    svc._settle_later(client, message(2), [(sub("a"), refused)], False)
    refused.settle(Redeliver("journal full"))
    assert client.acked == [1]  # message 2 stays unacked: the broker redelivers it
    assert svc.stats.redeliveries == 1
    assert svc._limit.value == svc.options.max_concurrent_messages
