"""Helpers for the trigger/outbox daemon tests: a Trio MQTT publisher/collector on the real
broker, and bounded waits on a real ``edged run`` (its blocking calls run in threads)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import trio

from edged_mqtt.client import MqttClient
from edged_mqtt.inbox import MqttMessage
from tests.integration.daemon_harness import Daemon
from tests.mqtt.conftest import Broker
from tests.mqtt.mqtt_daemon import mqtt_daemon

ROOT = Path(__file__).resolve().parents[2]


def echo_definition() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((ROOT / "examples" / "mqtt-echo" / "echo.json").read_text())
    return doc


def flow(name: str, tasks: list[dict[str, Any]], triggers: list[dict[str, Any]] | None = None):  # type: ignore[no-untyped-def]
    doc: dict[str, Any] = {"name": name, "version": 1, "schemaVersion": 2, "tasks": tasks}
    if triggers is not None:
        doc["triggers"] = triggers
    return doc


def publish_task(ref: str, topic: str, payload: Any, **extra: Any) -> dict[str, Any]:
    return {
        "name": ref,
        "taskReferenceName": ref,
        "type": "MQTT_PUBLISH",
        "inputParameters": {"topic": topic, "payload": payload, "qos": 1, **extra},
    }


async def collect(
    client: MqttClient, count: int, timeout_s: float, topic: str | None = None
) -> list[MqttMessage]:
    """Up to `count` messages (on `topic` if given) within `timeout_s`."""
    got: list[MqttMessage] = []
    with trio.move_on_after(timeout_s):
        while len(got) < count:
            message = await client.receive()
            if topic is None or message.topic == topic:
                got.append(message)
    return got


async def start(daemon: Daemon) -> None:
    await trio.to_thread.run_sync(daemon.start)


async def kill(daemon: Daemon) -> None:
    await trio.to_thread.run_sync(daemon.kill)


def _search(daemon: Daemon, name: str) -> list[dict[str, Any]]:
    with httpx.Client(base_url=daemon.url, timeout=10) as http:
        resp = http.get(
            "/api/workflow/search", params={"query": f"workflowType={name}", "size": 1000}
        )
        resp.raise_for_status()
        results: list[dict[str, Any]] = resp.json()["results"]
        return results


async def search(daemon: Daemon, name: str) -> list[dict[str, Any]]:
    return await trio.to_thread.run_sync(_search, daemon, name)


async def wait_count(
    daemon: Daemon, name: str, count: int, timeout_s: float = 20.0, status: str | None = None
) -> list[dict[str, Any]]:
    """Executions of `name` (with `status`), once there are at least `count` (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await search(daemon, name)
        if status is not None:
            found = [w for w in found if w["status"] == status]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await trio.sleep(0.1)


async def workflow(daemon: Daemon, workflow_id: str) -> dict[str, Any]:
    return await trio.to_thread.run_sync(daemon.workflow, workflow_id)


async def start_workflow(daemon: Daemon, name: str, data: dict[str, Any]) -> str:
    resp = await trio.to_thread.run_sync(daemon.start_workflow, name, data)
    assert resp.status_code == 200, resp.text
    return str(resp.text.strip('"'))


async def wait_status(
    daemon: Daemon, workflow_id: str, statuses: tuple[str, ...], timeout_s: float = 20.0
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        doc = await workflow(daemon, workflow_id)
        if doc["status"] in statuses:
            return doc
        assert time.monotonic() < deadline, f"{workflow_id} still {doc['status']}"
        await trio.sleep(0.1)


def daemon_maker(tmp_path: Path, broker: Broker) -> Iterator[Callable[..., Daemon]]:
    """For a fixture: ``make(*definitions, **config)`` -> an MQTT-enabled Daemon, SIGKILLed
    at the end."""
    made: list[Daemon] = []

    def make(*docs: dict[str, Any], **config: Any) -> Daemon:
        daemon = mqtt_daemon(tmp_path / f"d{len(made)}", broker, *docs, **config)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.kill()
