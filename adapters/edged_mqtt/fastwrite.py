"""paho's write path for PUBLISH (QoS 0/1) and PUBACK at a fraction of the CPU, same state.

Why: paho's ``publish()`` goes through ``_mid_generate``, ``_send_publish`` (an ``_easy_log``
call that logs nothing, a bytearray grown piece by piece with ``struct`` and a Python loop for
the remaining length), ``_packet_queue`` and ``_call_socket_register_write``, taking three
locks; its ``ack()`` goes through ``_send_puback``, ``_send_command_with_mid`` and
``_packet_queue`` again. In the MQTT echo that is ~25 paho calls per echoed message.

Theory of operation. ``publish(paho, ...)`` and ``ack(paho, ...)`` are paho's ``publish`` and
``ack`` for one client, called with the client. When the call is the usual one (connected,
QoS 0 or 1, a non-empty topic without wildcards, a bytes payload, no topic alias, paho not
logging, paho driven by an external loop, the in-flight window not full, the mid paho would
pick not in use), they do paho's bookkeeping in paho's order: the next mid into ``_last_mid``;
for QoS 1 an ``MQTTMessage`` with paho's fields into ``_out_messages`` (state
``wait_for_puback``) and one more ``_inflight_messages``; the packet, with paho's bytes, as
paho's dict at the end of ``_out_packet``; ``_call_socket_register_write`` when paho has not
registered write interest; ``info.rc`` success. Anything else goes to paho's own method
unchanged, before any state has been touched, so paho's errors, queueing (window full), logs
and ``MQTT_ERR_NO_CONN`` handling are paho's. What paho does later with that state (writing
the packets in ``loop_write``, ``on_publish`` after the write for QoS 0, PUBACK handling in
paho or ``fastread``, ``_messages_reconnect_reset`` re-sending with DUP) reads the same
fields, so it cannot tell which path wrote them. Not replicated because unobservable here:
the locks (``MqttClient`` never uses paho from two threads at once; ``connect()`` runs in a
worker thread only while nothing else touches paho) and the packet's type (bytes, not
bytearray: paho's own PUBACK is bytes too, and the writer only slices it). One thing is
replaced: the message info's ``threading.Condition`` is a ``LazyCondition`` that builds the
real one on first use (paho's PUBACK handling and ``wait_for_publish`` still get one; with
``fastread`` nothing ever asks), since building it cost as much as the rest of the publish.

``SHAPE_ERROR`` is None when paho has the shape this was written against and a self-test
(both paths on two probe clients, bytes and state compared) agrees; otherwise ``publish``
and ``ack`` are paho's own methods and the reason is logged at debug. Checked in full, with
Hypothesis, by ``tests/mqtt/test_fastwrite.py``.

Cost (callgrind instructions, PYTHONHASHSEED=0, difference between 3,000 and 1,000 pairs of
one QoS 1 publish + one manual PUBACK, on a probe client whose register-write callback and
send are no-ops): publish + ack alone (less the loop's own 6.3k) MQTT 5 with one user
property 93.9k -> 55.6k, MQTT 3.1.1 64.7k -> 26.9k; with paho's ``loop_write`` of both
packets 122.4k -> 84.0k and 93.8k -> 55.4k. Most of what is left on MQTT 5 is the user
property's ``FastProperties.pack()`` (~28.7k); paho's ``loop_write`` of the two packets is
~23k (a leaner one measured ~15k: not done, it is not the larger part).
"""

from __future__ import annotations

import logging
import struct
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt
from paho.mqtt import client as _client
from paho.mqtt.client import Client, MQTTMessage, MQTTMessageInfo
from paho.mqtt.enums import (
    CallbackAPIVersion,
    MQTTErrorCode,
    MQTTProtocolVersion,
    _ConnectionState,
)
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

log = logging.getLogger("edged.mqtt")

_OK = MQTTErrorCode.MQTT_ERR_SUCCESS
_V5 = MQTTProtocolVersion.MQTTv5
_CONNECTED = _ConnectionState.MQTT_CS_CONNECTED
_MAX_REMAINING = 268_435_455  # the largest remaining length MQTT can encode (4 bytes)
_H = struct.Struct("!H")
_HEAD_1 = struct.Struct("!BBH")  # command, 1-byte remaining length, topic length
_HEAD_2 = struct.Struct("!BBBH")  # command, 2-byte remaining length, topic length
_PUBACK = struct.Struct("!BBH")  # command, remaining length 2, mid
_NO_PROPERTIES = b"\x00"
# paho queues packets under these (enum members, not ints); None: check_shape() refuses
_PUBLISH: Any = getattr(_client, "PUBLISH", None)
_PUBACK_COMMAND: Any = getattr(_client, "PUBACK", None)
_WAIT_FOR_PUBACK: Any = getattr(_client, "mqtt_ms_wait_for_puback", None)
_new_message = MQTTMessage.__new__
_new_info = MQTTMessageInfo.__new__


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def publish(
    paho: Client,
    topic: str,
    payload: bytes,
    qos: int = 0,
    retain: bool = False,
    properties: Properties | None = None,
) -> MQTTMessageInfo:
    """``paho.publish(topic, payload, qos, retain, properties)``, same result and state."""
    if (
        paho._sock is None
        or paho._state is not _CONNECTED
        or paho._on_log is not None
        or paho._logger is not None
        or paho._sockpairW is not None
        or paho._on_socket_register_write is None
        or SHAPE_ERROR is not None
        or type(topic) is not str
        or not topic
        or type(qos) is not int
        or not 0 <= qos <= 1
        or type(retain) is not bool
        or not isinstance(payload, (bytes, bytearray))
    ):
        return paho.publish(topic, payload, qos, retain, properties)
    topic_bytes = topic.encode("utf-8")
    size = len(topic_bytes)
    if b"+" in topic_bytes or b"#" in topic_bytes or size > 65535:
        return paho.publish(topic, payload, qos, retain, properties)
    packed = b""
    if paho._protocol == _V5:
        if properties is None:
            packed = _NO_PROPERTIES
        elif not isinstance(properties, Properties) or "TopicAlias" in properties.__dict__:
            return paho.publish(topic, payload, qos, retain, properties)
        else:
            try:
                packed = properties.pack()  # type: ignore[no-untyped-call]
            except Exception:
                return paho.publish(topic, payload, qos, retain, properties)  # paho's error
    remaining = 2 + size + len(payload) + len(packed)
    mid = paho._last_mid + 1
    if mid == 65536:
        mid = 1
    out = paho._out_messages
    if qos:
        remaining += 2
        limit = paho._max_inflight_messages
        queued = paho._max_queued_messages
        if (
            (limit and paho._inflight_messages >= limit)  # paho queues it
            or (queued > 0 and len(out) >= queued)
            or mid in out
            or remaining > _MAX_REMAINING
        ):
            return paho.publish(topic, payload, qos, retain, properties)
    elif remaining > _MAX_REMAINING:
        return paho.publish(topic, payload, qos, retain, properties)

    # From here on, paho's publish() with nothing left to decide.
    paho._last_mid = mid
    if qos:
        # MQTTMessage(mid, topic) and publish()'s assignments, each field set once
        message = _new_message(MQTTMessage)
        message.mid = mid
        message._topic = topic_bytes
        message.info = info = _message_info(mid)
        message.timestamp = _client.time_func()
        message.payload = payload
        message.qos = qos
        message.retain = retain
        message.dup = False
        message.properties = properties
        out[mid] = message
        paho._inflight_messages += 1
        message.state = _WAIT_FOR_PUBACK
        if remaining < 128:
            head = _HEAD_1.pack(0x32 | retain, remaining, size)
        elif remaining < 16384:
            head = _HEAD_2.pack(0x32 | retain, (remaining & 127) | 128, remaining >> 7, size)
        else:
            head = bytes((0x32 | retain,)) + _remaining_length(remaining) + _H.pack(size)
        packet = b"".join((head, topic_bytes, _H.pack(mid), packed, payload))
    else:
        info = _message_info(mid)
        head = bytes((0x30 | retain,)) + _remaining_length(remaining) + _H.pack(size)
        packet = b"".join((head, topic_bytes, packed, payload))
    paho._out_packet.append(
        {
            "command": _PUBLISH,
            "mid": mid,
            "qos": qos,
            "pos": 0,
            "to_process": len(packet),
            "packet": packet,
            "info": info,
        }
    )
    if not paho._registered_write:
        _register_write(paho)
    info.rc = _OK
    return info


def ack(paho: Client, mid: int, qos: int) -> MQTTErrorCode:
    """``paho.ack(mid, qos)``, same result and state."""
    if (
        paho._sock is None
        or paho._on_log is not None
        or paho._logger is not None
        or paho._sockpairW is not None
        or paho._on_socket_register_write is None
        or SHAPE_ERROR is not None
        or qos != 1
        or not paho._manual_ack
        or type(mid) is not int
        or not 0 <= mid <= 65535
    ):
        return paho.ack(mid, qos)
    paho._out_packet.append(
        {
            "command": _PUBACK_COMMAND,
            "mid": mid,
            "qos": 1,
            "pos": 0,
            "to_process": 4,
            "packet": _PUBACK.pack(0x40, 2, mid),
            "info": None,
        }
    )
    if not paho._registered_write:
        _register_write(paho)
    return _OK


def _message_info(mid: int) -> MQTTMessageInfo:
    """``MQTTMessageInfo(mid)`` with a ``LazyCondition``."""
    info = _new_info(MQTTMessageInfo)
    info.mid = mid
    info._published = False
    info._condition = LazyCondition()  # type: ignore[assignment]
    info.rc = _OK
    info._iterpos = 0
    return info


class LazyCondition:
    """A ``threading.Condition`` built on first use.

    paho gives every message info its own Condition, to wake threads in ``wait_for_publish``
    when a PUBACK arrives; building one costs as much as the rest of a fast publish, and
    here nothing ever uses it (``fastread`` marks infos published without it, and
    ``MqttClient`` never hands an info out). This stands in for it and builds the real one,
    once, under a lock, the first time paho (or anyone) enters, waits or notifies.
    """

    __slots__ = ("_real",)
    _real: threading.Condition

    def _condition(self) -> threading.Condition:
        try:
            return self._real
        except AttributeError:
            with _LAZY_LOCK:
                try:
                    return self._real
                except AttributeError:
                    self._real = real = threading.Condition()
                    return real

    def __enter__(self) -> bool:
        return self._condition().__enter__()

    def __exit__(self, *exc_info: Any) -> None:
        return self._condition().__exit__(*exc_info)

    def wait(self, timeout: float | None = None) -> bool:
        return self._condition().wait(timeout)

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        return self._condition().wait_for(predicate, timeout)

    def notify(self, n: int = 1) -> None:
        self._condition().notify(n)

    def notify_all(self) -> None:
        self._condition().notify_all()


_LAZY_LOCK = threading.Lock()


def _register_write(paho: Client) -> None:
    """paho's ``_call_socket_register_write`` (socket set, not yet registered) without
    its callback lock."""
    paho._registered_write = True
    try:
        paho._on_socket_register_write(paho, paho._userdata, paho._sock)  # type: ignore[arg-type,misc]
    except Exception as err:
        paho._easy_log(
            _client.MQTT_LOG_ERR, "Caught exception in on_socket_register_write: %s", err
        )
        if not paho.suppress_exceptions:
            raise


# --------------------------------------------------------------------- shape and self-test


class _ProbeSocket:
    def fileno(self) -> int:
        return -1

    def setblocking(self, flag: bool) -> None:
        pass

    def close(self) -> None:
        pass


def probe_client(
    protocol: MQTTProtocolVersion, *, max_inflight: int = 20, manual_ack: bool = True
) -> Client:
    """A paho client that looks connected to an external loop, writing nowhere."""
    client = Client(CallbackAPIVersion.VERSION2, protocol=protocol, manual_ack=manual_ack)
    client.max_inflight_messages_set(max_inflight)
    client.max_queued_messages_set(0)
    client.on_socket_register_write = lambda *args: None
    client._sock = _ProbeSocket()  # type: ignore[assignment]
    client._state = _CONNECTED
    return client


def paho_state(paho: Client) -> list[Any]:
    """What a later paho call reads of the state ``publish``/``ack`` write."""
    return [
        paho._last_mid,
        paho._inflight_messages,
        paho._registered_write,
        [
            (
                mid,
                m.mid,
                m._topic,
                m.payload,
                m.qos,
                m.retain,
                m.dup,
                m.state,
                m.properties,
                m.info.mid,
                m.info.rc,
                m.info._published,
                type(m.timestamp),
            )
            for mid, m in paho._out_messages.items()
        ],
        [
            (
                pkt["command"],
                type(pkt["command"]),
                pkt["mid"],
                pkt["qos"],
                pkt["pos"],
                pkt["to_process"],
                bytes(pkt["packet"]),
                None if pkt["info"] is None else (pkt["info"].mid, pkt["info"].rc),
            )
            for pkt in paho._out_packet
        ],
    ]


def _self_test() -> None:
    """Both paths agree on a few calls (many more in tests/mqtt/test_fastwrite.py)."""
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    props.UserProperty = [("k", "v")]
    props.ContentType = "application/json"
    for protocol in (_V5, MQTTProtocolVersion.MQTTv311):
        theirs, ours = (
            probe_client(protocol, max_inflight=2),
            probe_client(protocol, max_inflight=2),
        )
        for topic, payload, qos, retain, prop in (
            ("a/b", b"x", 1, False, None),
            ("t", b"y" * 200, 1, True, props),
            ("z", b"", 0, False, props),
        ):
            ref = theirs.publish(topic, payload, qos, retain, prop)
            got = publish(ours, topic, payload, qos, retain, prop)
            if (got.rc, got.mid) != (ref.rc, ref.mid):
                raise ValueError(f"publish returned {got} where paho returned {ref}")
        if ack(ours, 300, 1) != theirs.ack(300, 1):
            raise ValueError("ack returned differently")
        if paho_state(ours) != paho_state(theirs):
            raise ValueError(f"paho state differs for {protocol!r}")
        for client in (theirs, ours):
            client._sock = None


def check_shape() -> str | None:
    """None when paho looks like the paho this module copies; else the reason why not."""
    version = getattr(paho.mqtt, "__version__", "")
    if not version.startswith("2."):
        return f"paho-mqtt {version!r} is not 2.x"
    for name in ("publish", "ack", "_call_socket_register_write", "_packet_write"):
        if not callable(getattr(Client, name, None)):
            return f"paho Client.{name} is missing"
    for name in ("time_func", "mqtt_ms_wait_for_puback", "PUBLISH", "PUBACK", "MQTT_LOG_ERR"):
        if not hasattr(_client, name):
            return f"paho.mqtt.client.{name} is missing"
    fields = {"_topic", "dup", "info", "mid", "payload", "properties", "qos", "retain"}
    if set(getattr(MQTTMessage, "__slots__", ())) != fields | {"state", "timestamp"}:
        return "paho MQTTMessage has other fields"
    info_fields = {"_condition", "_iterpos", "_published", "mid", "rc"}
    if set(getattr(MQTTMessageInfo, "__slots__", ())) != info_fields:
        return "paho MQTTMessageInfo has other fields"
    try:
        probe = probe_client(_V5)
        for name in (
            "_last_mid",
            "_out_messages",
            "_out_packet",
            "_inflight_messages",
            "_max_inflight_messages",
            "_max_queued_messages",
            "_registered_write",
            "_sockpairW",
            "_on_socket_register_write",
            "_on_log",
            "_userdata",
            "suppress_exceptions",
            "_state",
            "_logger",
            "_manual_ack",
            "_protocol",
        ):
            if not hasattr(probe, name):
                return f"paho Client has no {name}"
        probe._sock = None
        del probe
        _self_test()
    except Exception as exc:
        return f"self-test failed: {exc!r}"
    return None


SHAPE_ERROR: str | None = None
SHAPE_ERROR = check_shape()
if SHAPE_ERROR is not None:
    log.debug("mqtt fast_write not used: %s", SHAPE_ERROR)
