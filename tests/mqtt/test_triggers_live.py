"""Trigger rules follow the definitions registered through the API while the daemon runs:
a new version's `triggers` take effect at once, a changed topic moves the rule, a version
without triggers stops it. A real ``edged run`` and a real Mosquitto."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from edged_mqtt.client import open_mqtt_client
from tests.integration.daemon_harness import Daemon
from tests.mqtt.conftest import Broker
from tests.mqtt.mqtt_harness import collect, daemon_maker, flow, publish_task, search, start

DEADLINE_S = 90


@pytest.fixture
def make_daemon(tmp_path: Path, broker: Broker) -> Iterator[Callable[..., Daemon]]:
    yield from daemon_maker(tmp_path, broker)


def live(version: int, triggers: list[dict[str, Any]] | None) -> dict[str, Any]:
    doc: dict[str, Any] = flow(
        "live", [publish_task("out", "out/live", "${workflow.input}")], triggers=triggers
    )
    doc["version"] = version
    return doc


def register(daemon: Daemon, doc: dict[str, Any]) -> None:
    with httpx.Client(base_url=daemon.url, timeout=10) as http:
        resp = http.put("/api/metadata/workflow", json=[doc])
        assert resp.status_code in (200, 204), resp.text


async def test_rules_follow_registered_definitions(make_daemon: Any, broker: Broker) -> None:
    with trio.fail_after(DEADLINE_S):
        daemon = make_daemon(live(1, None))
        async with open_mqtt_client(broker.settings(client_id="live-probe")) as probe:
            await probe.subscribe("out/live", 1)
            await start(daemon)

            async def echoes(topic: str, n: int, expect: int) -> None:
                for i in range(n):
                    body = json.dumps({"on": topic, "i": i}).encode()
                    await probe.publish(topic, body, qos=1)
                got = await collect(probe, max(expect, 1), 10 if expect else 1.5)
                assert [json.loads(m.payload)["on"] for m in got] == [topic] * expect

            await echoes("in/a", 2, 0)  # no rules yet
            await trio.to_thread.run_sync(
                register, daemon, live(1, [{"name": "t", "topic": "in/a"}])
            )
            await trio.sleep(0.5)  # the subscription reaches the broker
            await echoes("in/a", 3, 3)
            # the same rule on another topic: moves there
            await trio.to_thread.run_sync(
                register, daemon, live(1, [{"name": "t", "topic": "in/b"}])
            )
            await trio.sleep(0.5)
            await echoes("in/a", 2, 0)
            await echoes("in/b", 2, 2)
            # a newer version without triggers: the latest decides, nothing starts
            await trio.to_thread.run_sync(register, daemon, live(2, None))
            await echoes("in/b", 2, 0)
            found = await search(daemon, "live")
            assert len(found) == 5 and all(w["status"] == "COMPLETED" for w in found)
            assert daemon.terminate() == 0
