"""MQTT_REQUEST and WAIT-by-message in a real ``edged run`` with a real Mosquitto and the
device emulator as a subprocess; hostile replies and messages never crash or block it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import trio
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edged_mqtt.client import open_mqtt_client
from tests.integration.daemon_harness import Daemon
from tests.mqtt.conftest import Broker
from tests.mqtt.mqtt_daemon import REPLY_ROOT, mqtt_daemon, needs_clients, pub, start_emulator

pytestmark = needs_clients


def request_flow(name: str, topic: str, payload: Any, timeout_s: float) -> dict[str, Any]:
    return {
        "name": name,
        "version": 1,
        "schemaVersion": 2,
        "tasks": [
            {
                "name": "ask",
                "taskReferenceName": "ask",
                "type": "MQTT_REQUEST",
                "inputParameters": {"topic": topic, "payload": payload, "timeout_s": timeout_s},
            }
        ],
        "outputParameters": {"reply": "${ask.output.response}"},
    }


WAIT_FLOW = {
    "name": "wait_ack",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [{"name": "ack", "taskReferenceName": "ack", "type": "WAIT"}],
    "outputParameters": {"ack": "${ack.output}"},
}

ACK_HANDLER = {
    "name": "device_acks",
    "event": "mqtt:devices/+/ack",
    "active": True,
    "actions": [
        {
            "action": "complete_task",
            "complete_task": {
                "workflowId": "${workflowId}",
                "taskRefName": "ack",
                "output": {"temperature_c": "${temperature_c}"},
            },
        }
    ],
}

NOTIFY_FLOW = {  # an EVENT task publishing to mqtt:<topic> meets the mqtt: handler there
    "name": "notify",
    "version": 1,
    "schemaVersion": 2,
    "tasks": [
        {
            "name": "tell",
            "taskReferenceName": "tell",
            "type": "EVENT",
            "sink": "mqtt:devices/f9/ack",
            "inputParameters": {"workflowId": "${workflow.input.target}", "temperature_c": 7},
        }
    ],
}

NACK_HANDLER = {
    "name": "device_nacks",
    "event": "mqtt:devices/+/nack",
    "condition": "$.severity == 'fatal'",
    "actions": [
        {
            "action": "fail_task",
            "fail_task": {"workflowId": "${workflowId}", "taskRefName": "ack", "output": {}},
        }
    ],
}


def start(daemon: Daemon, name: str) -> str:
    resp = daemon.start_workflow(name, {})
    assert resp.status_code == 200, resp.text
    return resp.text.strip().strip('"')  # Conductor answers the id as text


def wait_status(daemon: Daemon, wid: str, timeout_s: float = 15.0) -> dict[str, Any]:
    return daemon.wait_ended([wid], timeout_s=timeout_s)[wid]


def test_mqtt_request_reply_timeout_and_hostile_replies(tmp_path: Path, broker: Broker) -> None:
    daemon = mqtt_daemon(
        tmp_path,
        broker,
        request_flow("ping", "devices/freezer-1/cmd", {"cmd": "ping"}, 5),
        request_flow("setpoint", "devices/freezer-1/cmd", {"cmd": "set_setpoint", "value": -20}, 5),
        request_flow("nobody", "devices/nobody/cmd", {"cmd": "ping"}, 0.5),
        request_flow("bad", "devices/+/cmd", {}, 1),
        taskdefs=[
            {"name": "ask", "retryCount": 0, "timeoutSeconds": 30, "responseTimeoutSeconds": 30}
        ],
    )
    daemon.start()
    try:
        with start_emulator(broker):
            # hostile traffic on the reply topics first: it must not block what follows
            pub(broker, f"{REPLY_ROOT}/x", b"\xff\x00 no correlation")
            pub(broker, f"{REPLY_ROOT}/x", b"{}", ("correlation-data", "nobody:0"))
            pub(broker, f"{REPLY_ROOT}/x", b"[" * 5000, ("correlation-data", "\xff"))
            done = wait_status(daemon, start(daemon, "ping"))
            assert done["status"] == "COMPLETED", done
            (task,) = done["tasks"]
            assert task["outputData"]["response"]["ok"] is True
            assert task["outputData"]["response"]["cmd"] == "ping"
            assert task["outputData"]["correlation"] == f"{task['taskId']}:0"
            done = wait_status(daemon, start(daemon, "setpoint"))
            assert done["output"]["reply"] == {
                "cmd": "set_setpoint",
                "ok": True,
                "setpoint_c": -20.0,
            }

        # nobody answers: FAILED with the reason; a late reply completes nothing
        wid = start(daemon, "nobody")
        failed = wait_status(daemon, wid)
        assert failed["status"] == "FAILED"
        (task,) = failed["tasks"]
        assert "no reply" in task["reasonForIncompletion"]
        pub(
            broker,
            f"{REPLY_ROOT}/{task['taskId']}",
            b'{"late": true}',
            ("correlation-data", f"{task['taskId']}:0"),
        )
        # a wildcard request topic is refused with the reason, not sent
        bad = wait_status(daemon, start(daemon, "bad"))
        assert bad["status"] == "FAILED"
        assert "topic" in bad["tasks"][0]["reasonForIncompletion"]
        time.sleep(0.3)
        assert daemon.workflow(wid)["status"] == "FAILED"
        with httpx.Client(base_url=daemon.url, timeout=5) as http:
            assert http.get("/health").status_code == 200
    finally:
        daemon.kill()


def test_wait_completed_and_failed_by_messages(tmp_path: Path, broker: Broker) -> None:
    daemon = mqtt_daemon(tmp_path, broker, WAIT_FLOW, NOTIFY_FLOW, ACK_HANDLER, NACK_HANDLER)
    daemon.start()
    try:
        wid = start(daemon, "wait_ack")
        other = start(daemon, "wait_ack")
        # the daemon is ready once the broker granted its subscriptions: one message each
        pub(broker, "devices/f1/ack", b"\x00 not json")  # dead-lettered, never blocks
        pub(broker, "devices/f1/ack", b"[1, 2]")
        pub(broker, "devices/f1/ack", f'{{"workflowId": "{wid}", "temperature_c": -3.5}}')
        done = wait_status(daemon, wid)
        assert done["status"] == "COMPLETED"
        assert done["output"]["ack"] == {"temperature_c": -3.5}
        assert daemon.workflow(other)["status"] == "RUNNING"  # only the named execution
        # the condition filters: a warning does not fail it, a fatal one does
        pub(broker, "devices/f1/nack", f'{{"workflowId": "{other}", "severity": "warning"}}')
        time.sleep(0.5)
        assert daemon.workflow(other)["status"] == "RUNNING"
        pub(broker, "devices/f1/nack", f'{{"workflowId": "{other}", "severity": "fatal"}}')
        assert wait_status(daemon, other)["status"] == "FAILED"
        # one workflow's EVENT task (sink mqtt:devices/f9/ack) completes another's WAIT
        third = start(daemon, "wait_ack")
        resp = daemon.start_workflow("notify", {"target": third})
        assert resp.status_code == 200, resp.text
        done = wait_status(daemon, third)
        assert done["status"] == "COMPLETED" and done["output"]["ack"] == {"temperature_c": 7}
    finally:
        daemon.kill()


async def test_request_across_sigkill_and_broker_restart(tmp_path: Path, broker: Broker) -> None:
    daemon = mqtt_daemon(
        tmp_path,
        broker,
        request_flow("slow", "devices/slow/cmd", {"cmd": "ping"}, 20),
        taskdefs=[
            {"name": "ask", "retryCount": 0, "timeoutSeconds": 60, "responseTimeoutSeconds": 60}
        ],
    )
    with trio.fail_after(60):
        async with open_mqtt_client(broker.settings(client_id="slow-device")) as device:
            await device.subscribe("devices/slow/cmd", 1)
            await trio.to_thread.run_sync(daemon.start)
            try:
                resp = await trio.to_thread.run_sync(daemon.start_workflow, "slow", {})
                wid = resp.text.strip().strip('"')
                first = await device.receive()  # the device sits on it; the daemon dies
                await trio.to_thread.run_sync(daemon.restart)  # SIGKILL, start
                again = await device.receive()  # the re-dispatched task asks again
                assert again.properties.CorrelationData == first.properties.CorrelationData
                assert again.properties.ResponseTopic == first.properties.ResponseTopic
                props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                props.CorrelationData = again.properties.CorrelationData
                await device.publish(again.properties.ResponseTopic, b'{"n": 2}', 1, False, props)
                done = (await trio.to_thread.run_sync(daemon.wait_ended, [wid], 30))[wid]
                assert done["status"] == "COMPLETED", done
                assert done["output"]["reply"] == {"n": 2}

                # the broker restarts between the request and the reply: sessions persist,
                # the reply published after it reaches the daemon
                resp = await trio.to_thread.run_sync(daemon.start_workflow, "slow", {})
                wid = resp.text.strip().strip('"')
                request = await device.receive()
                await trio.to_thread.run_sync(broker.restart)
                props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                props.CorrelationData = request.properties.CorrelationData
                await device.publish(request.properties.ResponseTopic, b'{"n": 3}', 1, False, props)
                done = (await trio.to_thread.run_sync(daemon.wait_ended, [wid], 30))[wid]
                assert done["status"] == "COMPLETED", done
                assert done["output"]["reply"] == {"n": 3}
            finally:
                await trio.to_thread.run_sync(daemon.kill)
