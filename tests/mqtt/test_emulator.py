"""The emulated freezer probe: pure model, in-process against mosquitto, and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from functools import partial

import pytest
import trio
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edged_mqtt.client import MqttClient, open_mqtt_client
from edged_mqtt.emulator import SensorModel, run_emulator
from tests.mqtt.conftest import Broker

DEADLINE_S = 10


def test_model_is_deterministic_for_a_seed_and_follows_the_door() -> None:
    a = SensorModel("f", seed=7)
    b = SensorModel("f", seed=7)
    assert [a.step(1.0, i) for i in range(20)] == [b.step(1.0, i) for i in range(20)]
    a.apply({"cmd": "door", "open": True})
    warm = [a.step(10.0, 0)["temperature_c"] for _ in range(10)]
    assert warm[-1] > warm[0] + 10
    a.apply({"cmd": "door", "open": False})
    a.apply({"cmd": "set_setpoint", "value": -25})
    cold = [a.step(60.0, 0)["temperature_c"] for _ in range(30)]
    assert cold[-1] == pytest.approx(-25, abs=1.0)


@pytest.mark.parametrize(
    "bad",
    [
        [],
        {"cmd": 3},
        {"cmd": "nope"},
        {"cmd": "set_setpoint"},
        {"cmd": "set_setpoint", "value": True},
        {"cmd": "set_setpoint", "value": 1e9},
        {"cmd": "door", "open": "yes"},
    ],
)
def test_model_rejects_malformed_commands(bad: object) -> None:
    with pytest.raises(ValueError):
        SensorModel("f").apply(bad)


async def request(
    client: MqttClient, topic: str, payload: bytes, correlation: bytes
) -> dict[str, object]:
    props = Properties(PacketTypes.PUBLISH)
    props.ResponseTopic = "test/replies"
    props.CorrelationData = correlation
    await client.publish(topic, payload, properties=props)
    while True:
        reply = await client.receive()
        if reply.topic == "test/replies":
            assert reply.properties.CorrelationData == correlation
            decoded: dict[str, object] = json.loads(reply.payload)
            return decoded


async def test_emulator_publishes_obeys_and_answers_pings(broker: Broker) -> None:
    with trio.fail_after(DEADLINE_S):
        async with trio.open_nursery() as nursery:
            emu = await nursery.start(partial(run_emulator, broker.settings(), "f1", period_s=0.02))
            async with open_mqtt_client(broker.settings(client_id="ctl")) as ctl:
                await ctl.subscribe("devices/f1/status", 1)
                await ctl.subscribe("devices/f1/telemetry", 1)
                await ctl.subscribe("test/replies", 1)
                status = await ctl.receive()
                assert status.topic == "devices/f1/status" and status.retain
                assert json.loads(status.payload) == {"state": "online"}
                while not (m := await ctl.receive()).topic.endswith("/telemetry"):
                    pass
                reading = json.loads(m.payload)
                assert reading["device"] == "f1" and isinstance(reading["temperature_c"], float)

                pong = await request(ctl, "devices/f1/cmd", b'{"cmd": "ping"}', b"c-1")
                assert pong["ok"] is True and pong["cmd"] == "ping"
                ack = await request(
                    ctl, "devices/f1/cmd", b'{"cmd": "set_setpoint", "value": -22}', b"c-2"
                )
                assert ack == {"cmd": "set_setpoint", "ok": True, "setpoint_c": -22.0}
                bad = await request(ctl, "devices/f1/cmd", b"\xff not json", b"c-3")
                assert bad["ok"] is False
                await request(ctl, "devices/f1/cmd", b'{"cmd": "door", "open": true}', b"c-4")
                while True:
                    m = await ctl.receive()
                    if m.topic.endswith("telemetry") and json.loads(m.payload)["door_open"]:
                        assert json.loads(m.payload)["setpoint_c"] == -22.0
                        break
                assert emu.malformed == 1 and emu.commands == 3 and emu.readings > 0
                nursery.cancel_scope.cancel()


async def test_cli_emulator_leaves_its_last_will_when_killed(broker: Broker) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "edged_mqtt.emulator",
            "--broker",
            f"mqtt://127.0.0.1:{broker.port}",
            "--device",
            "cli-1",
            "--period-s",
            "0.05",
            "--seed",
            "3",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        with trio.fail_after(DEADLINE_S):
            async with open_mqtt_client(broker.settings(client_id="watch")) as watch:
                await watch.subscribe("devices/cli-1/#", 1)
                states = []
                while len(states) < 1 or states[-1] != "online":
                    m = await watch.receive()
                    if m.topic.endswith("/status"):
                        states.append(json.loads(m.payload)["state"])
                while not (await watch.receive()).topic.endswith("/telemetry"):
                    pass
                proc.send_signal(signal.SIGKILL)  # a power cut: no DISCONNECT, the will fires
                while True:
                    m = await watch.receive()
                    if m.topic.endswith("/status"):
                        assert json.loads(m.payload) == {"state": "offline"}
                        break
    finally:
        with trio.CancelScope(shield=True):
            proc.kill()
            await proc.wait()
