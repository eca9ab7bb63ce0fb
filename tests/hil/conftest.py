"""HIL tests use the MQTT tests' real Mosquitto fixture (a free loopback port, stopped by PID)."""

from __future__ import annotations

from tests.mqtt.conftest import broker, broker_factory

__all__ = ["broker", "broker_factory"]
