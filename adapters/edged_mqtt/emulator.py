"""An emulated MQTT temperature sensor (a freezer probe), for examples, tests and HIL runs.

Theory of operation: ``SensorModel`` is pure and deterministic for a seed: the temperature
relaxes toward the setpoint when the door is closed and toward the room when it is open, plus
a slow drift and Gaussian noise. ``run_emulator`` wires it to a broker through MqttClient:

- ``devices/<id>/status``: retained ``{"state": "online"}`` after every (re)connection, and
  the last will, retained ``{"state": "offline"}``, if the connection dies without DISCONNECT;
  a clean stop publishes ``offline`` itself.
- ``devices/<id>/telemetry``: one JSON reading every ``period_s`` at QoS 1.
- ``devices/<id>/cmd``: ``{"cmd": "set_setpoint", "value": -18}``, ``{"cmd": "door", "open":
  true}``, ``{"cmd": "ping"}``. Each command is answered on the MQTT 5 response topic, with the
  request's correlation data, when the request carries one. Malformed commands are counted,
  logged and ignored; they never stop the emulator.

CLI: ``python -m edged_mqtt.emulator --broker mqtt://127.0.0.1:1883 --device freezer-1``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import random
import sys
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import trio
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edged_mqtt.client import MqttClient, open_mqtt_client
from edged_mqtt.inbox import MqttMessage
from edged_mqtt.settings import MqttSettings, WillMessage, settings_from_url

log = logging.getLogger("edged.mqtt.emulator")

ROOM_C = 21.0
ONLINE = json.dumps({"state": "online"}).encode()
OFFLINE = json.dumps({"state": "offline"}).encode()


@dataclass(slots=True)
class SensorModel:
    device_id: str
    setpoint_c: float = -18.0
    temperature_c: float = -18.0
    door_open: bool = False
    drift_c_per_s: float = 0.0
    noise_c: float = 0.1
    closed_rate_per_s: float = 0.02  # fraction of the gap to the setpoint closed per second
    open_rate_per_s: float = 0.05  # fraction of the gap to the room gained per second
    seed: int = 0
    seq: int = 0
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def step(self, dt_s: float, at_ms: int) -> dict[str, Any]:
        """Advance the model by ``dt_s`` and return the reading published as JSON."""
        target, rate = (
            (ROOM_C, self.open_rate_per_s)
            if self.door_open
            else (self.setpoint_c, self.closed_rate_per_s)
        )
        self.temperature_c += (target - self.temperature_c) * (1 - math.exp(-rate * dt_s))
        self.temperature_c += self.drift_c_per_s * dt_s
        self.seq += 1
        measured = self.temperature_c + self._rng.gauss(0.0, self.noise_c)
        return {
            "device": self.device_id,
            "seq": self.seq,
            "at_ms": at_ms,
            "temperature_c": round(measured, 3),
            "setpoint_c": self.setpoint_c,
            "door_open": self.door_open,
        }

    def apply(self, command: Any) -> dict[str, Any]:
        """Apply a decoded command; return the reply. Raises ValueError when malformed."""
        if not isinstance(command, dict) or not isinstance(command.get("cmd"), str):
            raise ValueError('a command is a JSON object with a string "cmd"')
        name = command["cmd"]
        if name == "ping":
            return {"cmd": "ping", "ok": True, "device": self.device_id, "seq": self.seq}
        if name == "set_setpoint":
            value = command.get("value")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError("set_setpoint needs a numeric value")
            if not math.isfinite(value) or not -60 <= value <= 30:
                raise ValueError("set_setpoint value out of range [-60, 30]")
            self.setpoint_c = float(value)
            return {"cmd": name, "ok": True, "setpoint_c": self.setpoint_c}
        if name == "door":
            if not isinstance(command.get("open"), bool):
                raise ValueError("door needs a boolean 'open'")
            self.door_open = command["open"]
            return {"cmd": name, "ok": True, "door_open": self.door_open}
        raise ValueError(f"unknown command {name!r}")


@dataclass(slots=True)
class Emulator:
    model: SensorModel
    client: MqttClient
    readings: int = 0
    commands: int = 0
    malformed: int = 0

    @property
    def topic_root(self) -> str:
        return f"devices/{self.model.device_id}"


def emulator_settings(base: MqttSettings, device_id: str) -> MqttSettings:
    """The device's own session: its client id, MQTT 5, and the offline last will."""
    will = WillMessage(f"devices/{device_id}/status", OFFLINE, qos=1, retain=True)
    return base.replace(client_id=f"emulator-{device_id}", protocol="5", will=will)


async def run_emulator(
    base: MqttSettings,
    device_id: str,
    *,
    period_s: float = 1.0,
    seed: int = 0,
    task_status: trio.TaskStatus[Emulator] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run the device until cancelled; ``nursery.start`` returns the Emulator once it is
    subscribed to its command topic."""
    model = SensorModel(device_id, seed=seed)
    async with open_mqtt_client(emulator_settings(base, device_id)) as client:
        emu = Emulator(model, client)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_announce_online, emu)
                await client.subscribe(f"{emu.topic_root}/cmd", 1)
                nursery.start_soon(_obey_commands, emu)
                task_status.started(emu)
                await _publish_telemetry(emu, period_s)
        finally:
            with trio.move_on_after(1.0) as scope:
                scope.shield = True
                if client.statistics().connected:
                    await client.publish(f"{emu.topic_root}/status", OFFLINE, retain=True)


async def _announce_online(emu: Emulator) -> None:
    # After every reconnection: the broker may have published our will in between.
    connection = 0
    while True:
        connection = await emu.client.wait_connected(after=connection)
        await emu.client.publish(f"{emu.topic_root}/status", ONLINE, qos=1, retain=True)


async def _publish_telemetry(emu: Emulator, period_s: float) -> None:
    while True:
        reading = emu.model.step(period_s, int(trio.current_time() * 1000))
        await emu.client.publish(f"{emu.topic_root}/telemetry", json.dumps(reading).encode())
        emu.readings += 1
        await trio.sleep(period_s)


async def _obey_commands(emu: Emulator) -> None:
    async for message in emu.client.messages():
        try:
            reply = emu.model.apply(json.loads(message.payload))
        except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
            emu.malformed += 1
            log.warning("emulator malformed_command device=%s error=%s", emu.model.device_id, exc)
            reply = {"ok": False, "error": str(exc)}
        else:
            emu.commands += 1
        await _answer(emu.client, message, reply)


async def _answer(client: MqttClient, request: MqttMessage, reply: dict[str, Any]) -> None:
    response_topic = getattr(request.properties, "ResponseTopic", None)
    if not response_topic:
        return
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    correlation = getattr(request.properties, "CorrelationData", None)
    if correlation is not None:
        props.CorrelationData = correlation
    await client.publish(response_topic, json.dumps(reply).encode(), qos=1, properties=props)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edged_mqtt.emulator", description=__doc__)
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="mqtt:// or mqtts://")
    parser.add_argument("--device", default="freezer-1", help="device id (topic level)")
    parser.add_argument("--period-s", type=float, default=1.0, help="seconds between readings")
    parser.add_argument("--seed", type=int, default=0, help="noise seed (deterministic)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    try:
        settings = settings_from_url(args.broker)
    except Exception as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: the clean stop already ran
        trio.run(
            partial(run_emulator, settings, args.device, period_s=args.period_s, seed=args.seed)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
