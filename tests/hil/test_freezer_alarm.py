"""Hardware in the loop, emulated: the freezer-alarm example (examples/freezer-alarm) in a real
``edged run`` against a real Mosquitto and the emulated freezer as a subprocess.

The test opens the freezer door (a command to the device); the warm readings trigger
``freezer_alarm``, which publishes the alarm, closes the door and lowers the setpoint through
MQTT 5 request/response with the device, and waits for an operator's acknowledgement. The
daemon is SIGKILLed while it waits; after the restart the acknowledgement (an MQTT message)
completes the WAIT and the alarm is cleared. The device's own telemetry shows the effect.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.integration.daemon_harness import Daemon, handler_config
from tests.mqtt.conftest import Broker
from tests.mqtt.mqtt_daemon import CLIENT_ID, needs_clients, pub, start_emulator

pytestmark = needs_clients
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "freezer-alarm"


class Listener:
    """``mosquitto_sub -v`` on a filter in the background; lines read on demand (bounded)."""

    def __init__(self, broker: Broker, topic_filter: str, out: Path) -> None:
        self.out = out
        with out.open("wb") as sink:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [
                    "mosquitto_sub",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(broker.port),
                    "-V",
                    "mqttv5",
                    "-q",
                    "1",
                    "-v",
                    "-t",
                    topic_filter,
                ],
                stdout=sink,
                stderr=subprocess.DEVNULL,
            )

    def wait_for(self, topic: str, timeout_s: float = 20.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.out.read_text(errors="replace").splitlines():
                name, _, payload = line.partition(" ")
                if name == topic:
                    doc: dict[str, Any] = json.loads(payload)
                    return doc
            time.sleep(0.05)
        raise AssertionError(f"nothing on {topic} within {timeout_s} s: {self.out.read_text()}")

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def wait_task(daemon: Daemon, wid: str, ref: str, status: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tasks = {t["referenceTaskName"]: t for t in daemon.workflow(wid).get("tasks", [])}
        if tasks.get(ref, {}).get("status") == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"{ref} of {wid} not {status} within {timeout_s} s")


def test_freezer_alarm_end_to_end(tmp_path: Path, broker: Broker) -> None:
    config = handler_config(
        tmp_path / "edged.yaml",
        mqtt={"url": f"mqtt://127.0.0.1:{broker.port}", "client_id": CLIENT_ID},
    )
    daemon = Daemon(data_dir=tmp_path / "data", defs_dir=EXAMPLE, config=config)
    daemon.start()
    alarms = Listener(broker, "alarms/#", tmp_path / "alarms.txt")
    try:
        with start_emulator(broker, "freezer-1"):
            pub(broker, "devices/freezer-1/cmd", '{"cmd": "door", "open": true}')
            alarm = alarms.wait_for("alarms/freezer-1")
            assert alarm["device"] == "freezer-1" and alarm["temperature_c"] > -15
            assert alarm["door_open"] is True
            wid = alarm["workflowId"]
            wait_task(daemon, wid, "operator_ack", "IN_PROGRESS")

            daemon.restart()  # SIGKILL while the WAIT holds the execution
            pub(broker, "alarms/freezer-1/ack", json.dumps({"workflowId": wid, "by": "ana"}))
            done = daemon.wait_ended([wid], timeout_s=20)[wid]
            assert done["status"] == "COMPLETED", done
            assert done["output"] == {
                "device": "freezer-1",
                "setpoint_c": -25.0,
                "door_closed_by_us": True,
                "acknowledged_by": "ana",
            }
            cleared = alarms.wait_for("alarms/freezer-1/cleared")
            assert cleared == {"device": "freezer-1", "by": "ana", "setpoint_c": -25.0}

            # the device obeyed: its next readings say so
            reading = wait_reading(tmp_path, broker)
            assert reading["door_open"] is False and reading["setpoint_c"] == -25.0
    finally:
        alarms.stop()
        daemon.kill()


def wait_reading(tmp_path: Path, broker: Broker) -> dict[str, Any]:
    listener = Listener(broker, "devices/freezer-1/telemetry", tmp_path / "telemetry.txt")
    try:
        return listener.wait_for("devices/freezer-1/telemetry", timeout_s=10)
    finally:
        listener.stop()
