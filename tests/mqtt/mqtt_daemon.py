"""Helpers for tests that run a real ``edged run`` against a real Mosquitto.

``mqtt_daemon(...)`` builds a ``Daemon`` (tests/integration/daemon_harness.py) whose config has an
``mqtt:`` section pointing at the test broker; ``pub`` publishes with ``mosquitto_pub`` (MQTT 5,
QoS 1, optional PUBLISH properties); ``first_message`` waits (bounded) for one message with
``mosquitto_sub``; ``start_emulator`` runs the device emulator as a subprocess and waits until
it obeys commands (its first reading is published after it subscribed to its command topic).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration.daemon_harness import Daemon, handler_config, write_defs
from tests.mqtt.conftest import Broker

CLIENT_ID = "edged-test"
REPLY_ROOT = f"edged/{CLIENT_ID}/replies"

needs_clients = pytest.mark.skipif(
    shutil.which("mosquitto_pub") is None or shutil.which("mosquitto_sub") is None,
    reason="mosquitto-clients is not installed (scripts/test.sh installs it)",
)


def mqtt_daemon(
    tmp_path: Path,
    broker: Broker,
    *docs: dict[str, Any],
    taskdefs: list[dict[str, Any]] | None = None,
    **config: Any,
) -> Daemon:
    mqtt = {"url": f"mqtt://127.0.0.1:{broker.port}", "client_id": CLIENT_ID}
    mqtt.update(config.pop("mqtt", {}))
    return Daemon(
        data_dir=tmp_path / "data",
        defs_dir=write_defs(tmp_path / "defs", *docs, taskdefs=taskdefs),
        config=handler_config(tmp_path / "edged.yaml", mqtt=mqtt, **config),
    )


def pub(broker: Broker, topic: str, payload: bytes | str, *props: tuple[str, str]) -> None:
    args = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port), "-V", "mqttv5"]
    args += ["-q", "1", "-t", topic, "-s"]
    for name, value in props:
        args += ["-D", "publish", name, value]
    data = payload.encode() if isinstance(payload, str) else payload
    subprocess.run(args, input=data, check=True, timeout=10, capture_output=True)


def first_message(broker: Broker, topic: str, timeout_s: int = 10) -> str:
    out = subprocess.run(
        [
            "mosquitto_sub",
            "-h",
            "127.0.0.1",
            "-p",
            str(broker.port),
            "-V",
            "mqttv5",
            "-t",
            topic,
            "-C",
            "1",
            "-W",
            str(timeout_s),
        ],
        capture_output=True,
        timeout=timeout_s + 5,
        check=False,
    )
    assert out.returncode == 0, f"no message on {topic} within {timeout_s} s: {out.stderr!r}"
    return out.stdout.decode()


@contextmanager
def start_emulator(
    broker: Broker, device: str = "freezer-1", *extra: str
) -> Iterator[subprocess.Popen[bytes]]:
    args = [sys.executable, "-m", "edged_mqtt.emulator", "--broker"]
    args += [f"mqtt://127.0.0.1:{broker.port}", "--device", device, "--period-s", "0.2", *extra]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        first_message(broker, f"devices/{device}/telemetry")
        yield proc
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
