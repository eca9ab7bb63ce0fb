"""The MQTT outbox in a real ``edged run`` against a real Mosquitto: publishes committed while
the broker is down survive a SIGKILL, go out in order per topic once it is back, and
complete their tasks only after PUBACK; expiry and the outbox bound; EVENT ``mqtt:`` sink."""

from __future__ import annotations

import json
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
    flow,
    kill,
    publish_task,
    start,
    start_workflow,
    wait_status,
    workflow,
)

DEADLINE_S = 90
FAST_RECONNECT = {"reconnect_min_s": 0.05, "reconnect_max_s": 0.3}


@pytest.fixture
def make_daemon(tmp_path: Path, broker: Broker) -> Iterator[Callable[..., Daemon]]:
    yield from daemon_maker(tmp_path, broker)


PUB_FLOW = flow(
    "pub_one",
    [
        publish_task(
            "send",
            "${workflow.input.topic}",
            {"seq": "${workflow.input.seq}"},
            userProperties={"kind": "test"},
        )
    ],
)
FIRE_FLOW = flow("pub_fire", [publish_task("send", "fire/x", "${workflow.input}", confirm=False)])
EVENT_FLOW = flow(
    "event_one",
    [
        {
            "name": "notify",
            "taskReferenceName": "notify",
            "type": "EVENT",
            "sink": "mqtt:ev/notify",
            "inputParameters": {"note": "${workflow.input.note}"},
        }
    ],
)


def _task(doc: dict[str, Any], ref: str) -> dict[str, Any]:
    return next(t for t in doc["tasks"] if t["referenceTaskName"] == ref)


async def test_outbox_survives_broker_outage_and_sigkill_in_order(
    make_daemon: Any, broker: Broker
) -> None:
    with trio.fail_after(DEADLINE_S):
        daemon = make_daemon(PUB_FLOW, EVENT_FLOW, FIRE_FLOW, mqtt=FAST_RECONNECT)
        sub_settings = broker.settings(client_id="outbox-sub")  # persistent session
        async with open_mqtt_client(sub_settings) as sub:
            await sub.subscribe("out/#", 1)
            await sub.subscribe("ev/#", 1)
            await sub.subscribe("fire/#", 1)
        await start(daemon)
        broker.stop()  # SIGTERM: mosquitto keeps the subscriber's session on disk
        ids = []
        for seq in range(30):
            topic = "out/a" if seq % 3 else "out/b"
            ids.append(await start_workflow(daemon, "pub_one", {"topic": topic, "seq": seq}))
        event_id = await start_workflow(daemon, "event_one", {"note": "hello"})
        fire_id = await start_workflow(daemon, "pub_fire", {"fire": 1})
        # confirm: false completes with the commit that journals the row, broker or not
        assert (await wait_status(daemon, fire_id, ("COMPLETED",)))["status"] == "COMPLETED"
        await trio.sleep(0.3)
        first = await workflow(daemon, ids[0])
        assert first["status"] == "RUNNING"
        assert _task(first, "send")["status"] == "IN_PROGRESS"  # not before PUBACK
        await kill(daemon)  # the rows are only in the journal now
        await start(daemon)
        broker.start()
        async with open_mqtt_client(sub_settings) as sub:
            await sub.subscribe("out/#", 1)
            await sub.subscribe("ev/#", 1)
            await sub.subscribe("fire/#", 1)
            got = await collect(sub, 32, 30)
        per_topic: dict[str, list[int]] = {}
        for message in got:
            if message.topic.startswith("out/"):
                per_topic.setdefault(message.topic, []).append(json.loads(message.payload)["seq"])
        assert per_topic["out/a"] == [s for s in range(30) if s % 3]
        assert per_topic["out/b"] == [s for s in range(30) if not s % 3]
        props = dict(next(m for m in got if m.topic == "out/a").properties.UserProperty)
        assert props["kind"] == "test" and props["edged-task-id"]
        events = [json.loads(m.payload) for m in got if m.topic == "ev/notify"]
        assert len(events) == 1 and events[0]["note"] == "hello"
        assert events[0]["workflowInstanceId"] == event_id
        assert [json.loads(m.payload) for m in got if m.topic == "fire/x"] == [{"fire": 1}]
        for wid in ids:
            doc = await wait_status(daemon, wid, ("COMPLETED", "FAILED"))
            assert doc["status"] == "COMPLETED", doc.get("reasonForIncompletion")
            assert _task(doc, "send")["outputData"]["topic"].startswith("out/")
        assert daemon.terminate() == 0


EXPIRING_FLOW = flow(
    "pub_expiring",
    [publish_task("send", "exp/x", "${workflow.input.tag}", expiresAfterSeconds=1)],
)


async def test_expiry_and_the_outbox_bound(make_daemon: Any, broker: Broker) -> None:
    with trio.fail_after(DEADLINE_S):
        daemon = make_daemon(
            PUB_FLOW, EXPIRING_FLOW, mqtt={**FAST_RECONNECT, "outbox": {"max_messages": 4}}
        )
        sub_settings = broker.settings(client_id="bound-sub")
        async with open_mqtt_client(sub_settings) as sub:
            await sub.subscribe("exp/#", 1)
            await sub.subscribe("out/#", 1)
        await start(daemon)
        broker.stop()
        stale = await start_workflow(daemon, "pub_expiring", {"tag": "stale"})
        kept = [
            await start_workflow(daemon, "pub_one", {"topic": "out/k", "seq": i}) for i in range(3)
        ]
        refused = await start_workflow(daemon, "pub_one", {"topic": "out/k", "seq": 99})
        doc = await wait_status(daemon, refused, ("FAILED",), timeout_s=10)
        assert "outbox full" in _task(doc, "send")["reasonForIncompletion"]
        await trio.sleep(1.5)  # the first one expires while the broker is away
        broker.start()
        async with open_mqtt_client(sub_settings) as sub:
            await sub.subscribe("exp/#", 1)
            await sub.subscribe("out/#", 1)
            got = await collect(sub, 3, 8)
            got += await collect(sub, 1, 1)  # the expired one must not follow
        assert sorted(json.loads(m.payload)["seq"] for m in got) == [0, 1, 2]
        for wid in kept:
            assert (await wait_status(daemon, wid, ("COMPLETED",)))["status"] == "COMPLETED"
        doc = await wait_status(daemon, stale, ("FAILED",))
        task = _task(doc, "send")
        assert task["status"] == "FAILED_WITH_TERMINAL_ERROR"
        assert "expired" in task["reasonForIncompletion"]
        assert daemon.terminate() == 0


async def test_bad_publish_inputs_fail_the_task(make_daemon: Any, broker: Broker) -> None:
    with trio.fail_after(DEADLINE_S):
        daemon = make_daemon(PUB_FLOW)
        await start(daemon)
        bad_topic = await start_workflow(daemon, "pub_one", {"topic": "bad/#/topic", "seq": 1})
        no_topic = await start_workflow(daemon, "pub_one", {"seq": 2})
        for wid in (bad_topic, no_topic):
            doc = await wait_status(daemon, wid, ("FAILED",))
            assert _task(doc, "send")["status"] == "FAILED_WITH_TERMINAL_ERROR"
        assert daemon.terminate() == 0
