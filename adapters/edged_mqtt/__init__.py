"""MQTT adapter for edged: paho-mqtt driven from Trio, plus a device emulator."""
