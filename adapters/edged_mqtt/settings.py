"""Settings of one MQTT connection, and ``mqtt://`` / ``mqtts://`` broker URLs.

Theory of operation: plain frozen values, checked when built (``MqttSettings.__post_init__``)
so a bad port or an empty client id fails at start-up with the field's name, not at the first
reconnect at 3 a.m. The client id is stable by default (derived from the host name) because a
persistent session is keyed by it: a new id on every start would orphan the broker's queue of
QoS 1 messages that arrived while the gateway was down.
"""

from __future__ import annotations

import dataclasses
import socket
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

from edged.errors import ConfigError

ProtocolVersion = Literal["5", "3.1.1"]


@dataclass(frozen=True, slots=True)
class TlsSettings:
    """TLS for the broker connection. ``insecure`` skips certificate checks (tests only)."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    insecure: bool = False

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ConfigError("mqtt.tls: cert_file and key_file go together")


@dataclass(frozen=True, slots=True)
class WillMessage:
    """The last will: published by the broker when the connection drops without DISCONNECT."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


@dataclass(frozen=True, slots=True)
class MqttSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    client_id: str = ""  # "" -> stable default, see default_client_id()
    protocol: ProtocolVersion = "5"
    username: str | None = None
    password: str | None = None
    tls: TlsSettings | None = None
    keepalive_s: int = 30
    # Persistent session: the broker keeps subscriptions and queued QoS 1 messages for this
    # long after the connection drops (MQTT 5; 3.1.1 keeps them until the broker's own limit).
    clean_start: bool = False
    session_expiry_s: int = 7 * 24 * 3600
    will: WillMessage | None = None
    connect_timeout_s: float = 10.0
    reconnect_base_s: float = 0.5
    reconnect_cap_s: float = 60.0
    # Bound on QoS 1 publishes awaiting PUBACK; publish() waits for a slot (back-pressure).
    max_inflight: int = 64
    # Per subscription; at the bound the oldest buffered message is dropped and counted.
    max_buffered_messages: int = 1000
    max_payload_bytes: int = 256 * 1024
    # Under load, read the socket at most once per this many ms: messages arriving meanwhile
    # wait in the socket buffer and are handled as one burst (one wake-up, one journal
    # batch) instead of one by one.  Only while traffic is dense (two or more messages per
    # window): sparser traffic, and a message after a quiet spell, is read at once, so this
    # only delays traffic faster than 2000/read_batch_ms messages/s, by at most twice this
    # long (a window doubles under heavy traffic).  0 reads every packet as it arrives.
    read_batch_ms: float = 5.0
    # When True the application acknowledges QoS 1 messages itself (client.ack) after its own
    # durable commit; when False paho sends PUBACK as soon as the message is read.
    manual_ack: bool = False

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError("mqtt.host is empty")
        if not 0 < self.port < 65536:
            raise ConfigError(f"mqtt.port {self.port} is not a TCP port")
        if self.protocol not in ("5", "3.1.1"):
            raise ConfigError(f"mqtt.protocol must be '5' or '3.1.1', got {self.protocol!r}")
        if self.keepalive_s < 0 or self.keepalive_s > 65535:
            raise ConfigError("mqtt.keepalive_s must be in [0, 65535]")
        if self.session_expiry_s < 0 or self.session_expiry_s > 0xFFFFFFFF:
            raise ConfigError("mqtt.session_expiry_s must be in [0, 2**32-1]")
        for name in ("max_inflight", "max_buffered_messages", "max_payload_bytes"):
            if getattr(self, name) < 1:
                raise ConfigError(f"mqtt.{name} must be >= 1")
        if not 0 <= self.read_batch_ms <= 1000:
            raise ConfigError("mqtt.read_batch_ms must be in [0, 1000]")
        if self.connect_timeout_s <= 0 or self.reconnect_base_s < 0 or self.reconnect_cap_s < 0:
            raise ConfigError("mqtt timeouts and delays must be positive")
        if self.password is not None and self.username is None:
            raise ConfigError("mqtt.password needs mqtt.username")

    def effective_client_id(self) -> str:
        return self.client_id or default_client_id()

    def replace(self, **changes: object) -> MqttSettings:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


def default_client_id() -> str:
    """A client id that survives restarts of the same gateway: ``edged-<hostname>``."""
    return f"edged-{socket.gethostname()}"[:64]


def settings_from_url(url: str, **overrides: object) -> MqttSettings:
    """Build settings from ``mqtt://[user[:password]@]host[:port]`` or ``mqtts://...``.

    ``mqtts`` turns TLS on with the system CA store (port 8883 unless given); keyword
    arguments override or add fields (``client_id=``, ``tls=TlsSettings(...)``, ...).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts"):
        raise ConfigError(f"broker URL {url!r}: scheme must be mqtt:// or mqtts://")
    if not parts.hostname:
        raise ConfigError(f"broker URL {url!r} has no host")
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"broker URL {url!r}: {exc}") from exc
    fields: dict[str, object] = {
        "host": parts.hostname,
        "port": port or (8883 if parts.scheme == "mqtts" else 1883),
    }
    if parts.username is not None:
        fields["username"] = unquote(parts.username)
    if parts.password is not None:
        fields["password"] = unquote(parts.password)
    if parts.scheme == "mqtts":
        fields["tls"] = TlsSettings()
    fields.update(overrides)
    return MqttSettings(**fields)  # type: ignore[arg-type]
