"""paho's read path for PUBLISH and PUBACK at a fraction of the CPU, same behaviour.

Why: paho reads a packet with three ``_sock_recv`` calls (type byte, length bytes, body)
through a dict of partial state, decodes a PUBLISH with f-string ``struct`` formats, builds an
``MQTTMessage`` (with its ``MQTTMessageInfo`` and ``threading.Condition``), two ``ReasonCode``
objects and a ``Properties`` per PUBACK, takes four locks per packet and, after every PUBACK,
rescans every in-flight message for one it queued. In the MQTT echo that was ~17% of the
daemon's main thread.

Theory of operation. ``PacketReader`` owns the receive buffer of one connection and replaces
two methods of one paho ``Client``:

- ``_sock_recv`` (always): paho's small reads are served from one large recv() into the
  buffer, one syscall per burst instead of three per packet.
- ``_packet_read`` (only when ``check_shape()`` found paho as this module expects it): when
  paho has no packet half-read and a whole packet is in the buffer, and that packet is a
  PUBLISH at QoS 0 or 1 or a PUBACK without properties, and paho would not log it, the
  packet is framed and decoded here and handed to the reader's own callbacks, followed by
  paho's bookkeeping in paho's order (the PUBACK for an automatic-ack QoS 1 message; on a
  PUBACK, the message leaves ``_out_messages``, its info is marked published, the in-flight
  count drops and queued messages are sent). Everything else (other packet types, QoS 2, a
  packet split across reads, anything paho would call malformed) is left in the buffer for
  paho's own ``_packet_read``, so paho's errors, logs and state changes are paho's.

Equivalence the fast path relies on (``tests/mqtt/test_fastread.py`` feeds the same packets
through both paths): the decoders below accept exactly what paho's accept and return the
same fields, and decline everything else. Skipped work is unobservable to this client: the
``MQTTMessage`` (its callbacks read the fields), the ``Condition`` notified when a PUBACK
marks a message published (no thread waits on it), the per-packet debug logs (the fast path is
off while paho has a logger or ``on_log``), topic-filtered callbacks (off while any is
registered), and the rescan after a PUBACK when every message in ``_out_messages`` is counted
in flight (paho only queues a message when the in-flight count is at its maximum, so a
queued message means more messages than the count). PUBACK reason codes are shared objects,
one per code: treat them as read-only.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

import paho.mqtt
from paho.mqtt import _packet
from paho.mqtt import client as _client
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger("edged.mqtt")

RECV_CHUNK = 65536
_AGAIN = MQTTErrorCode.MQTT_ERR_AGAIN
_OK = MQTTErrorCode.MQTT_ERR_SUCCESS
_CONN_LOST = MQTTErrorCode.MQTT_ERR_CONN_LOST
_PUBLISH = 0x30
_PUBACK = 0x40

# (topic bytes, payload, qos, retain, mid, dup, properties)
PublishFields = tuple[bytes, bytes, int, bool, int, bool, Properties | None]
OnPublish = Callable[[bytes, bytes, int, bool, int, bool, Properties | None], None]
OnPuback = Callable[[int, ReasonCode], None]

_PUBACK_REASONS: dict[int, ReasonCode] = {}  # identifier -> paho's ReasonCode for it


def decode_publish(header: int, body: bytes, v5: bool) -> PublishFields | None:
    """paho's ``decode_publish`` for QoS 0 and 1; None when paho would refuse the packet
    or the QoS is 2 or 3 (then paho's own code handles it)."""
    qos = (header & 0x06) >> 1
    if qos > 1:
        return None
    size = len(body)
    if size < 2:
        return None
    end = 2 + ((body[0] << 8) | body[1])
    if end > size or (end == 2 and not v5):
        return None
    topic = body[2:end]
    mid = 0
    if qos:
        if end + 2 > size:
            return None
        mid = (body[end] << 8) | body[end + 1]
        end += 2
    properties = None
    if v5:
        # the name paho's decoder calls: FastProperties once fastprops is installed
        properties = _packet.Properties(PacketTypes.PUBLISH)  # type: ignore[attr-defined,no-untyped-call]
        if end < size and body[end] == 0:
            end += 1
        else:
            try:
                _props, props_len = properties.unpack(body[end:])  # type: ignore[no-untyped-call]
            except Exception:
                return None
            end += props_len
    return topic, body[end:], qos, bool(header & 0x01), mid, bool(header & 0x08), properties


def decode_puback(body: bytes, v5: bool) -> tuple[int, ReasonCode] | None:
    """paho's ``decode_puback`` without properties: (mid, reason code); None when paho would
    refuse the packet or it carries properties (then paho's own code handles it)."""
    size = len(body)
    if size != 2 and not (v5 and size == 3):
        return None
    mid = (body[0] << 8) | body[1]
    code = body[2] if size == 3 else -1
    reason = _PUBACK_REASONS.get(code)
    if reason is None:
        try:
            reason = ReasonCode(PacketTypes.PUBACK)
            if code >= 0:
                reason.unpack(body[2:])
        except Exception:
            return None
        _PUBACK_REASONS[code] = reason
    return mid, reason


class PacketReader:
    """One connection's receive buffer, and the fast path for PUBLISH and PUBACK."""

    def __init__(
        self,
        paho: Client,
        on_publish: OnPublish,
        on_puback: OnPuback,
        on_want_write: Callable[[], None],
    ) -> None:
        self._paho = paho
        self._on_publish = on_publish
        self._on_puback = on_puback
        self._on_want_write = on_want_write
        self._buf, self._pos = b"", 0  # bytes received that nobody has read yet
        self._v5 = paho._protocol == MQTTProtocolVersion.MQTTv5
        paho._sock_recv = self.recv  # type: ignore[method-assign]
        self.fast = SHAPE_ERROR is None
        if self.fast:
            paho._packet_read = self.packet_read  # type: ignore[method-assign]

    def reset(self) -> None:
        """Forget buffered bytes (a new connection)."""
        self._buf, self._pos = b"", 0

    def buffered(self) -> bool:
        """Received bytes are waiting to be read."""
        return self._pos < len(self._buf)

    def _fill(self) -> bytes:
        sock = self._paho._sock
        if sock is None:
            raise ConnectionError("socket is None")
        try:
            data: bytes = sock.recv(RECV_CHUNK)
        except ssl.SSLWantReadError as err:
            raise BlockingIOError() from err
        except ssl.SSLWantWriteError as err:
            self._on_want_write()
            raise BlockingIOError() from err
        self._buf, self._pos = data, 0
        return data

    def recv(self, bufsize: int) -> bytes:
        """paho's ``_sock_recv``: serve paho's small reads from one large recv()."""
        pos, buf = self._pos, self._buf
        if pos >= len(buf):
            buf, pos = self._fill(), 0
            if len(buf) <= bufsize:
                self._buf = b""
                return buf  # also b"" at end of stream: paho sees the connection lost
        out = buf[pos : pos + bufsize]
        self._pos = pos + len(out)
        return out

    def packet_read(self) -> MQTTErrorCode:
        """paho's ``_packet_read``, framing and handling PUBLISH and PUBACK here."""
        paho = self._paho
        if paho._in_packet["command"] or paho._logger is not None or paho.on_log is not None:
            return Client._packet_read(paho)
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            try:
                buf, pos = self._fill(), 0
            except BlockingIOError:
                return _AGAIN
            except TimeoutError as err:
                paho._easy_log(_client.MQTT_LOG_ERR, "timeout on socket: %s", err)
                return _CONN_LOST
            except OSError as err:
                paho._easy_log(_client.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
                return _CONN_LOST
            if not buf:
                return _CONN_LOST
        size = len(buf)
        header = buf[pos]
        kind = header & 0xF0
        if (kind != _PUBLISH and kind != _PUBACK) or pos + 1 >= size:
            return Client._packet_read(paho)
        start, length, shift = pos + 1, 0, 0
        while True:  # remaining length: at most 4 bytes, else paho's reader refuses it
            byte = buf[start]
            start += 1
            length |= (byte & 127) << shift
            if byte < 128:
                break
            shift += 7
            if shift == 28 or start >= size:
                return Client._packet_read(paho)
        end = start + length
        if end > size:
            return Client._packet_read(paho)  # the rest is still on its way
        body = buf[start:end]
        rc = _OK
        if kind == _PUBLISH:
            if paho._on_message_filtered._root._children:
                return Client._packet_read(paho)
            fields = decode_publish(header, body, self._v5)
            if fields is None:
                return Client._packet_read(paho)
            self._pos = end
            self._on_publish(*fields)
            if fields[2] == 1 and not paho._manual_ack:
                rc = paho._send_puback(fields[4])
        else:
            acked = decode_puback(body, self._v5)
            if acked is None:
                return Client._packet_read(paho)
            self._pos = end
            rc = self._puback(*acked)
        with paho._msgtime_mutex:
            paho._last_bytes_received = _client.time_func()
        return rc

    def _puback(self, mid: int, reason: ReasonCode) -> MQTTErrorCode:
        """paho's ``_handle_pubackcomp`` + ``_do_on_publish`` for a PUBACK."""
        paho = self._paho
        out = paho._out_messages
        if mid not in out:
            return _OK
        self._on_puback(mid, reason)
        msg = out.pop(mid)
        # paho's _set_as_published() without its Condition: notify() wakes threads blocked
        # in wait_for_publish(), and no thread can be: MqttClient never hands the info out
        msg.info._published = True
        if msg.qos > 0:
            paho._inflight_messages -= 1
            # paho rescans for queued messages; there is none unless more are out than counted
            if paho._max_inflight_messages > 0 and len(out) > paho._inflight_messages:
                return paho._update_inflight()
        return _OK


def _self_test() -> None:
    """The decoders agree with paho's on a few packets (more in tests/mqtt/test_fastread.py)."""
    for v5, protocol in ((True, MQTTProtocolVersion.MQTTv5), (False, MQTTProtocolVersion.MQTTv311)):
        props = b"\x00" if v5 else b""
        for header, body in (
            (0x30, b"\x00\x03a/b" + props + b"x"),
            (0x3B, b"\x00\x01t\x12\x34" + props + b"payload"),
        ):
            ours = decode_publish(header, body, v5)
            theirs = _packet.decode_publish(header, body, protocol)
            if ours is None or ours[:6] != (
                theirs.topic,
                theirs.payload,
                theirs.qos,
                theirs.retain,
                theirs.mid,
                theirs.dup,
            ):
                raise ValueError(f"decode_publish differs on {body!r}")
        for body in (b"\x12\x34", b"\x00\x01\x10") if v5 else (b"\x12\x34",):
            acked = decode_puback(body, v5)
            ref = _packet.decode_puback(0x40, body, protocol)
            if acked is None or acked != (ref.mid, ref.reason) or str(acked[1]) != str(ref.reason):
                raise ValueError(f"decode_puback differs on {body!r}")


def check_shape() -> str | None:
    """None when paho looks like the paho this module copies; else the reason why not."""
    version = getattr(paho.mqtt, "__version__", "")
    if not version.startswith("2."):
        return f"paho-mqtt {version!r} is not 2.x"
    for name in ("_packet_read", "_send_puback", "_update_inflight", "_easy_log", "loop_read"):
        if not callable(getattr(Client, name, None)):
            return f"paho Client.{name} is missing"
    for name in ("decode_publish", "decode_puback", "Properties"):
        if not hasattr(_packet, name):
            return f"paho.mqtt._packet.{name} is missing"
    for name in ("MQTT_LOG_ERR", "time_func", "MQTTMessageInfo"):
        if not hasattr(_client, name):
            return f"paho.mqtt.client.{name} is missing"
    info = _client.MQTTMessageInfo(1)
    if info.is_published() or "_published" not in type(info).__slots__:
        return "paho MQTTMessageInfo has no _published flag"
    info._published = True
    if not info.is_published():
        return "paho MQTTMessageInfo.is_published() does not read _published"
    probe = Client(CallbackAPIVersion.VERSION2)
    try:
        for name in (
            "_in_packet",
            "_out_messages",
            "_inflight_messages",
            "_max_inflight_messages",
            "_manual_ack",
            "_protocol",
            "_msgtime_mutex",
            "_last_bytes_received",
            "_logger",
        ):
            if not hasattr(probe, name):
                return f"paho Client has no {name}"
        if probe._in_packet.get("command") != 0:
            return "paho Client._in_packet has no command 0"
        root = getattr(getattr(probe, "_on_message_filtered", None), "_root", None)
        if not isinstance(getattr(root, "_children", None), dict):
            return "paho Client._on_message_filtered is not a trie of dicts"
        _self_test()
    except Exception as exc:
        return f"self-test failed: {exc!r}"
    finally:
        del probe
    return None


SHAPE_ERROR = check_shape()
if SHAPE_ERROR is not None:
    log.debug("mqtt fast_read not used: %s", SHAPE_ERROR)
