"""The daemon's ``mqtt:`` config section: checked once, at start, into plain values.

Theory of operation: config.py keeps the section raw (it knows no adapter); this module turns
it into ``MqttSettings`` for the connection plus the adapter's own options (outbox bounds,
dead-letter topic, config-file trigger rules), raising ``ConfigError`` naming the key on the
first fault, before the journal is opened. ``url`` (also given by ``edged run --mqtt``) sets
host, port and TLS; the other keys (credentials, TLS files, client id...) still apply.

Example::

    mqtt:
      url: mqtts://broker.local:8883      # or host: / port:
      client_id: gateway-7                # stable: the persistent session is keyed by it
      username: edged
      password: secret
      tls: {ca: /etc/edged/ca.pem, cert: /etc/edged/gw.pem, key: /etc/edged/gw.key}
      keepalive_s: 30
      reconnect_min_s: 0.5                # backoff: capped exponential with full jitter
      reconnect_max_s: 60
      session_expiry_s: 604800
      clean_start: false
      max_payload_bytes: 262144
      read_batch_ms: 5                    # under load, read at most once per 5 ms (0: off)
      outbox: {max_messages: 10000, max_bytes: 16777216}
      dead_letter_topic: edged/dead-letter  # "" turns it off
      triggers: [...]                        # rules, as in a definition's triggers block
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edged.errors import ConfigError
from edged_mqtt.settings import MqttSettings, TlsSettings, settings_from_url

_KEYS: dict[str, type | tuple[type, ...]] = {
    "url": str,
    "host": str,
    "port": int,
    "client_id": str,
    "protocol": (str, int, float),
    "username": str,
    "password": str,
    "tls": dict,
    "keepalive_s": int,
    "session_expiry_s": int,
    "clean_start": bool,
    "max_inflight": int,
    "max_buffered_messages": int,
    "max_payload_bytes": int,
    "outbox": dict,
    "dead_letter_topic": str,
    "triggers": list,
    "max_concurrent_messages": int,
    "reconnect_min_s": (int, float),
    "reconnect_max_s": (int, float),
    "read_batch_ms": (int, float),
}
_TLS_KEYS = {"ca": str, "cert": str, "key": str, "insecure": bool}
_OUTBOX_KEYS = {"max_messages": int, "max_bytes": int}


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    """Bound on undelivered publishes held for the broker (count and payload bytes)."""

    max_messages: int = 10_000
    max_bytes: int = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class AdapterOptions:
    settings: MqttSettings
    outbox: OutboxLimits = OutboxLimits()
    dead_letter_topic: str = "edged/dead-letter"
    triggers: list[dict[str, Any]] = field(default_factory=list)
    # messages whose callbacks run at the same time (each holds its QoS 1 ack until done)
    max_concurrent_messages: int = 256


_DEFAULT_OUTBOX = OutboxLimits()


def _check(prefix: str, raw: dict[str, Any], spec: dict[str, Any]) -> None:
    for key, value in raw.items():
        if key not in spec:
            raise ConfigError(f"{prefix}{key}: unknown key")
        want = spec[key]
        if value is None:
            continue
        if (want is int or (isinstance(want, tuple) and int in want)) and isinstance(value, bool):
            raise ConfigError(f"{prefix}{key}: expected a number, got a boolean")
        if not isinstance(value, want):
            raise ConfigError(f"{prefix}{key}: wrong type {type(value).__name__}")


def parse_options(section: dict[str, Any]) -> AdapterOptions:
    """The ``mqtt:`` section -> AdapterOptions; ConfigError names the faulty key."""
    if not isinstance(section, dict):
        raise ConfigError("mqtt: expected a mapping")
    _check("mqtt.", section, _KEYS)
    fields: dict[str, Any] = {
        "manual_ack": True,  # triggers ack only after the start is in the journal
    }
    for key in ("client_id", "username", "password", "keepalive_s", "session_expiry_s"):
        if section.get(key) is not None:
            fields[key] = section[key]
    for key in ("max_inflight", "max_buffered_messages", "max_payload_bytes"):
        if section.get(key) is not None:
            fields[key] = section[key]
    if section.get("reconnect_min_s") is not None:
        fields["reconnect_base_s"] = float(section["reconnect_min_s"])
    if section.get("reconnect_max_s") is not None:
        fields["reconnect_cap_s"] = float(section["reconnect_max_s"])
    if section.get("read_batch_ms") is not None:
        fields["read_batch_ms"] = float(section["read_batch_ms"])
    if section.get("clean_start") is not None:
        fields["clean_start"] = section["clean_start"]
    if section.get("protocol") is not None:
        proto = str(section["protocol"])
        fields["protocol"] = "3.1.1" if proto in ("3.1.1", "311", "4") else proto
    tls_raw = section.get("tls")
    if tls_raw is not None:
        _check("mqtt.tls.", tls_raw, _TLS_KEYS)
        fields["tls"] = TlsSettings(
            ca_file=tls_raw.get("ca"),
            cert_file=tls_raw.get("cert"),
            key_file=tls_raw.get("key"),
            insecure=bool(tls_raw.get("insecure", False)),
        )
    url = section.get("url")
    if url:
        settings = settings_from_url(url, **fields)
        if "tls" in fields and url.startswith("mqtt://"):
            raise ConfigError("mqtt.tls is set but the url is mqtt:// (use mqtts://)")
    else:
        if section.get("host") is not None:
            fields["host"] = section["host"]
        if section.get("port") is not None:
            fields["port"] = section["port"]
        settings = MqttSettings(**fields)
    outbox_raw = section.get("outbox") or {}
    _check("mqtt.outbox.", outbox_raw, _OUTBOX_KEYS)
    outbox = OutboxLimits(
        max_messages=outbox_raw.get("max_messages", _DEFAULT_OUTBOX.max_messages),
        max_bytes=outbox_raw.get("max_bytes", _DEFAULT_OUTBOX.max_bytes),
    )
    if outbox.max_messages < 1 or outbox.max_bytes < 1:
        raise ConfigError("mqtt.outbox: limits must be >= 1")
    dead = section.get("dead_letter_topic")
    max_concurrent = section.get("max_concurrent_messages") or 256
    if max_concurrent < 1:
        raise ConfigError("mqtt.max_concurrent_messages must be >= 1")
    return AdapterOptions(
        settings=settings,
        outbox=outbox,
        dead_letter_topic="edged/dead-letter" if dead is None else dead,
        triggers=list(section.get("triggers") or []),
        max_concurrent_messages=max_concurrent,
    )
