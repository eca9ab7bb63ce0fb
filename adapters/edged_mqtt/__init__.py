"""MQTT adapter for edged: paho-mqtt driven from Trio, triggers, the outbox, an emulator.

The daemon loads this package for an ``mqtt:`` config section (or ``edged run --mqtt``) and
calls ``configure(section, cfg, defs)``; see service.py and DESIGN.md.
"""

from __future__ import annotations

from typing import Any


def configure(section: dict[str, Any], cfg: Any = None, defs: Any = None) -> Any:
    from edged_mqtt.service import configure as _configure

    return _configure(section, cfg, defs)
