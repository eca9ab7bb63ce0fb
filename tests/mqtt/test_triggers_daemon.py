"""MQTT triggers in a real ``edged run`` against a real Mosquitto: starts, the mqtt-echo
example, hostile payloads and floods (counted, dead-lettered, never blocking the messages
behind), identity dedupe across SIGKILL, and the concurrency modes."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from edged_mqtt.client import open_mqtt_client
from tests.integration.daemon_harness import Daemon
from tests.mqtt.conftest import Broker
from tests.mqtt.mqtt_harness import (
    collect,
    daemon_maker,
    echo_definition,
    flow,
    kill,
    publish_task,
    search,
    start,
    wait_count,
    wait_status,
)

DEADLINE_S = 90


@pytest.fixture
def make_daemon(tmp_path: Path, broker: Broker) -> Iterator[Callable[..., Daemon]]:
    yield from daemon_maker(tmp_path, broker)


async def test_mqtt_echo_example_round_trip(make_daemon: Any, broker: Broker) -> None:
    with trio.fail_after(DEADLINE_S):
        daemon = make_daemon(echo_definition())
        async with open_mqtt_client(broker.settings(client_id="echo-probe")) as probe:
            await probe.subscribe("bench/out", 1)
            await start(daemon)
            for seq in range(20):
                body = {"seq": seq, "ts": 123, "pad": "x" * 16}
                await probe.publish("bench/in", json.dumps(body).encode(), qos=1)
            got = await collect(probe, 20, 20)
            docs = sorted((json.loads(m.payload) for m in got), key=lambda d: d["seq"])
            assert [d["seq"] for d in docs] == list(range(20))
            assert all(d["echoedBy"] == "edged" and d["pad"] == "x" * 16 for d in docs)
            assert all(m.qos == 1 for m in got)
            props = dict(got[0].properties.UserProperty)
            assert "edged-task-id" in props
            done = await wait_count(daemon, "mqtt_echo", 20, status="COMPLETED")
            assert len(done) == 20
            assert daemon.terminate() == 0


BAD_FLOW = flow(
    "bad_in",
    [publish_task("ack", "out/ok", "${workflow.input}")],
    triggers=[
        {"name": "j", "topic": "in/json", "decode": "json"},
        {"name": "t", "topic": "in/text", "decode": "text", "input": {"text": "${payload}"}},
        {"name": "c", "topic": "in/cond", "condition": "$.payload.a.b.c > 1"},
        {"name": "ce", "topic": "in/ce", "decode": "cloudevents"},
        {"name": "flood", "topic": "flood/#", "condition": "$.payload.keep == true"},
    ],
)


async def test_hostile_payloads_and_floods_are_counted_and_never_block(
    make_daemon: Any, broker: Broker
) -> None:
    with trio.fail_after(DEADLINE_S):
        daemon = make_daemon(BAD_FLOW, mqtt={"max_payload_bytes": 2048})
        async with open_mqtt_client(broker.settings(client_id="bad-probe")) as probe:
            await probe.subscribe("out/ok", 1)
            await probe.subscribe("edged/dead-letter", 1)
            await start(daemon)
            hostile = [
                ("in/json", b"{not json"),
                ("in/json", b"\xff\xfe\x00garbage"),
                ("in/json", b"[" * 1800),  # nesting deeper than the parser's recursion limit
                ("in/text", b"\xc3\x28 invalid utf-8"),
                ("in/cond", b'{"a": 1}'),  # the condition throws: a.b is undefined
                ("in/ce", b'{"specversion": "1.0", "id": "x"}'),  # no source/type
                ("in/ce", b'{"plain": "json, not a CloudEvent"}'),
                ("in/json", b"{" + b'"k": 1,' * 1000 + b"}"),  # oversized (> 2048 bytes)
            ]
            for topic, payload in hostile:
                await probe.publish(topic, payload, qos=1)
            # a flood on one topic (filtered out by its condition) ahead of the good ones
            for i in range(1500):
                await probe.publish(f"flood/{i % 7}", b'{"keep": false}', qos=0)
            good = [
                ("in/json", {"tag": "j1"}),
                ("in/text", "hello"),
                ("in/cond", {"a": {"b": {"c": 2}}, "tag": "c1"}),
                ("flood/9", {"keep": True, "tag": "f1"}),
            ]
            for topic, body in good:
                data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                await probe.publish(topic, data, qos=1)
            binary_ce = [("specversion", "1.0"), ("id", "e1"), ("source", "t"), ("type", "x")]
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            props.UserProperty = binary_ce
            props.ContentType = "application/json"
            await probe.publish("in/ce", b'{"tag": "ce1"}', qos=1, properties=props)
            got = await collect(probe, 5 + 7, 20)
            oks = [json.loads(m.payload) for m in got if m.topic == "out/ok"]
            dead = [json.loads(m.payload) for m in got if m.topic == "edged/dead-letter"]
            tags = sorted(str(d.get("tag") or d.get("text")) for d in oks)
            assert tags == ["c1", "ce1", "f1", "hello", "j1"], oks
            reasons = " | ".join(d["reason"] for d in dead)
            assert len(dead) == 7, reasons  # the oversized one is dropped by the client
            assert "not JSON" in reasons and "not UTF-8" in reasons
            assert "CloudEvent" in reasons and "not a CloudEvent" in reasons
            started = await wait_count(daemon, "bad_in", 5, status="COMPLETED")
            assert len(started) == 5
            assert daemon.proc is not None and daemon.proc.poll() is None
            assert daemon.terminate() == 0


IDENT_FLOW = flow(
    "ident",
    [publish_task("done", "ident/out", "${workflow.input}")],
    triggers=[{"name": "r", "topic": "ident/in", "identity": "payload.id", "mode": "parallel"}],
)


async def test_identity_never_starts_twice_across_sigkill(make_daemon: Any, broker: Broker) -> None:
    with trio.fail_after(DEADLINE_S):
        daemon = make_daemon(IDENT_FLOW)
        await start(daemon)
        n = 120
        async with open_mqtt_client(broker.settings(client_id="ident-pub")) as pub:
            kill_at = random.Random(7).randrange(30, 90)
            for i in range(n):
                await pub.publish("ident/in", json.dumps({"id": f"dev-{i}"}).encode(), qos=1)
                if i == kill_at:
                    await kill(daemon)  # mid-load: some started and unacked, some queued
            # the broker holds the unacked ones for the persistent session; and a producer
            # that retries sends every identity again
            await start(daemon)
            for i in range(n):
                await pub.publish("ident/in", json.dumps({"id": f"dev-{i}"}).encode(), qos=1)
        found = await wait_count(daemon, "ident", n, status="COMPLETED", timeout_s=40)
        await trio.sleep(1.0)  # anything late would show up as a duplicate now
        everything = await search(daemon, "ident")
        inputs = sorted(w["input"] for w in everything)
        assert len(found) == n, f"{len(found)} completed"
        assert len(everything) == n, f"{len(everything)} executions for {n} identities"
        assert len(set(inputs)) == n
        assert daemon.terminate() == 0


def _hold_flow(name: str, mode: str, limit: int | None = None) -> dict[str, Any]:
    trigger: dict[str, Any] = {"name": "m", "topic": f"mode/{name}", "mode": mode}
    if limit is not None:
        trigger["max"] = limit
    return flow(name, [{"name": "hold", "taskReferenceName": "hold", "type": "WAIT"}], [trigger])


async def _complete_wait(daemon: Any, workflow_id: str) -> None:
    def signal() -> None:
        with daemon.client() as http:
            resp = http.post(
                f"/api/tasks/{workflow_id}/hold/COMPLETED", json={}, params={"workerid": "t"}
            )
            assert resp.status_code == 200, resp.text

    await trio.to_thread.run_sync(signal)


async def test_concurrency_modes(make_daemon: Any, broker: Broker) -> None:
    with trio.fail_after(DEADLINE_S):
        daemon = make_daemon(
            _hold_flow("m_single", "single"),
            _hold_flow("m_restart", "restart"),
            _hold_flow("m_queued", "queued", 5),
            _hold_flow("m_parallel", "parallel", 2),
        )
        await start(daemon)
        async with open_mqtt_client(broker.settings(client_id="mode-pub")) as pub:
            for name in ("m_single", "m_restart", "m_queued", "m_parallel"):
                for i in range(3):
                    await pub.publish(f"mode/{name}", json.dumps({"i": i}).encode(), qos=1)
                    await trio.sleep(0.3)  # one at a time: the modes decide in order
            await trio.sleep(0.5)
            single = await search(daemon, "m_single")
            assert [w["input"] for w in single] == ['{"i":0}'], single
            restart = await search(daemon, "m_restart")
            by_status = sorted((w["status"], w["input"]) for w in restart)
            assert by_status == [
                ("RUNNING", '{"i":2}'),
                ("TERMINATED", '{"i":0}'),
                ("TERMINATED", '{"i":1}'),
            ], by_status
            parallel = await search(daemon, "m_parallel")
            assert sorted(w["input"] for w in parallel) == ['{"i":0}', '{"i":1}']
            queued = await search(daemon, "m_queued")
            assert [w["input"] for w in queued] == ['{"i":0}']
            # the queued ones start one after the other as each ends, in arrival order
            for i in range(3):
                running = await wait_count(daemon, "m_queued", 1, status="RUNNING")
                assert [w["input"] for w in running] == [f'{{"i":{i}}}']
                await _complete_wait(daemon, running[0]["workflowId"])
                await wait_status(daemon, running[0]["workflowId"], ("COMPLETED",))
                if i < 2:
                    await wait_count(daemon, "m_queued", i + 2)
            assert len(await search(daemon, "m_queued")) == 3
        assert daemon.terminate() == 0


LOAD_FLOW = flow(
    "load",
    [publish_task("reply", "load/out", "${workflow.input}")],
    triggers=[{"name": "r", "topic": "load/in", "identity": "payload.id"}],
)


async def test_broker_restart_under_load_loses_nothing(make_daemon: Any, broker: Broker) -> None:
    """Triggers and outbox publishes while the broker is stopped and started again: every
    identity starts exactly one execution and every reply reaches the subscriber."""
    with trio.fail_after(DEADLINE_S):
        daemon = make_daemon(LOAD_FLOW, mqtt={"reconnect_min_s": 0.05, "reconnect_max_s": 0.3})
        sub_settings = broker.settings(client_id="load-sub")
        async with open_mqtt_client(sub_settings) as sub:
            await sub.subscribe("load/out", 1)
        await start(daemon)
        n = 300
        replies: set[str] = set()
        async with (
            open_mqtt_client(broker.settings(client_id="load-pub")) as pub,
            open_mqtt_client(sub_settings) as sub,
        ):
            await sub.subscribe("load/out", 1)

            all_in = trio.Event()

            async def receive() -> None:
                while len(replies) < n:
                    message = await sub.receive()
                    replies.add(json.loads(message.payload)["id"])
                all_in.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive)
                for i in range(n):
                    if i in (100, 200):
                        broker.stop()  # SIGTERM: sessions and queued messages kept
                        await trio.sleep(0.3)
                        broker.start()
                    await pub.publish("load/in", json.dumps({"id": f"m{i}"}).encode(), qos=1)
                with trio.move_on_after(40):
                    await all_in.wait()
                nursery.cancel_scope.cancel()
        assert len(replies) == n, f"{n - len(replies)} replies missing"
        done = await wait_count(daemon, "load", n, status="COMPLETED", timeout_s=30)
        assert len(done) == n
        assert len(await search(daemon, "load")) == n  # never two for one identity
        assert daemon.terminate() == 0


async def test_config_file_rules_and_binary_decoding(make_daemon: Any, broker: Broker) -> None:
    target = flow("cfg_target", [publish_task("echo", "cfg/out", "${workflow.input}")])
    rules = [
        {
            "name": "raw",
            "workflow": "cfg_target",
            "topic": "cfg/in/+",
            "decode": "bytes",
            "input": {"data": "${payload}", "device": "${topicLevels[2]}"},
        }
    ]
    with trio.fail_after(DEADLINE_S):
        daemon = make_daemon(target, mqtt={"triggers": rules})
        async with open_mqtt_client(broker.settings(client_id="cfg-probe")) as probe:
            await probe.subscribe("cfg/out", 1)
            await start(daemon)
            await probe.publish("cfg/in/dev7", b"\x00\x01\xfe\xff", qos=1)
            got = await collect(probe, 1, 20)
            assert [json.loads(m.payload) for m in got] == [{"data": "AAH+/w==", "device": "dev7"}]
        assert daemon.terminate() == 0
