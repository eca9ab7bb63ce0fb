"""The parts of an MQTT session that do no I/O: the paho client built from settings,
subscription packets and their answers, one-shot waiters, errors and statistics.

Theory of operation: ``build_paho`` turns ``MqttSettings`` into a paho ``Client`` set up for
an external event loop (callback API 2, no paho thread, paho's own reconnect logic unused)
with the persistent-session flags of the chosen protocol version. ``Waiter`` is the one-shot
rendezvous between a paho callback (PUBACK, SUBACK) and the Trio task awaiting it; it is
single-threaded because every paho callback that resolves one runs on the Trio thread.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import Generic, TypeVar

import trio
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edged.errors import BadInput, EdgedError
from edged_mqtt.settings import MqttSettings

T = TypeVar("T")


class MqttError(EdgedError):
    """An MQTT operation failed (the broker refused, or the client is closed)."""


class ClientClosed(MqttError):
    """The client was closed while the operation waited."""


class PublishRejected(MqttError):
    """The broker answered a publish with a failure reason code (MQTT 5), or paho refused it."""


class SubscribeRejected(MqttError):
    """The broker refused a subscription (SUBACK failure code)."""


class PayloadTooLarge(BadInput):
    """An outgoing payload is above ``max_payload_bytes``."""


@dataclass(frozen=True, slots=True)
class MqttStatistics:
    connected: bool
    connections: int  # accepted connections (CONNACK success) since the client started
    reconnects: int  # connections - 1, when > 0
    failed_attempts: int  # connection attempts that never got a CONNACK success
    published: int  # publishes acknowledged by the broker
    received: int  # messages queued for the application
    dropped: int  # received messages dropped at the buffer bound (or rejected)
    oversized: int  # received messages above max_payload_bytes, dropped
    in_flight: int  # QoS 1 publishes waiting for PUBACK
    buffered: int  # received messages not yet taken by the application
    read_wakeups: int = 0  # times the reader woke up to a readable socket (see read_batch_ms)


class Waiter(Generic[T]):
    """A one-shot result for one task: ``succeed``/``fail`` once, ``await wait()``."""

    def __init__(self) -> None:
        self._event = trio.Event()
        self._value: T | None = None
        self._error: BaseException | None = None

    def succeed(self, value: T) -> None:
        if not self._event.is_set():
            self._value = value
            self._event.set()

    def fail(self, error: BaseException) -> None:
        if not self._event.is_set():
            self._error = error
            self._event.set()

    async def wait(self) -> T:
        await self._event.wait()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value


class _ClosingSSLSocket(ssl.SSLSocket):
    """paho does not close the TLS socket when the handshake fails (a bad CA, a broker that
    is not TLS): close it here, or every failed attempt leaks a file descriptor."""

    def do_handshake(self, block: bool = False) -> None:
        try:
            super().do_handshake(block)
        except BaseException:
            self.close()
            raise


def build_paho(settings: MqttSettings) -> Client:
    v5 = settings.protocol == "5"
    client = Client(
        CallbackAPIVersion.VERSION2,
        client_id=settings.effective_client_id(),
        # 3.1.1 has no session expiry: clean_session=False keeps the session until the broker
        # expires it (mosquitto: persistent_client_expiration).
        clean_session=None if v5 else settings.clean_start,
        protocol=MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311,
        reconnect_on_failure=False,
        manual_ack=settings.manual_ack,
    )
    client.connect_timeout = settings.connect_timeout_s
    client.max_inflight_messages_set(settings.max_inflight)
    client.max_queued_messages_set(0)  # bounded by our in-flight semaphore instead
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls is not None:
        tls = settings.tls
        client.tls_set(
            ca_certs=tls.ca_file,
            certfile=tls.cert_file,
            keyfile=tls.key_file,
            cert_reqs=ssl.CERT_NONE if tls.insecure else ssl.CERT_REQUIRED,
        )
        if tls.insecure:
            client.tls_insecure_set(True)
        context = client._ssl_context
        if context is not None:
            context.sslsocket_class = _ClosingSSLSocket
    if settings.will is not None:
        will = settings.will
        client.will_set(will.topic, will.payload, will.qos, will.retain)
    return client


def subscribe_topics(
    filters: dict[str, int], protocol: str
) -> list[tuple[str, SubscribeOptions]] | list[tuple[str, int]]:
    if protocol == "5":
        return [(f, SubscribeOptions(qos=qos)) for f, qos in filters.items()]
    return list(filters.items())


def subscription_failures(filters: dict[str, int], codes: list[ReasonCode]) -> None:
    """Raise SubscribeRejected naming every filter the broker refused."""
    refused = [f"{f} ({code})" for f, code in zip(filters, codes, strict=False) if code.is_failure]
    if refused:
        raise SubscribeRejected("broker refused subscription: " + ", ".join(refused))
