"""PacketReader behaves like paho's own reader: same callbacks, return codes and paho state.

Every test feeds one byte stream, cut into chunks, to two paho clients: one reading with
paho's own ``_packet_read`` (the reference) and one with a ``PacketReader`` installed (the
fast path, or with the shape check failed, the buffered recv alone). Sans-I/O: the socket is
a list of chunks; no broker.
"""

# paho is untyped; every call on it here would need its own ignore
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import itertools
import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import edged_mqtt.client  # noqa: F401  (installs FastProperties, as the daemon runs)
from edged_mqtt import fastread
from edged_mqtt.fastread import PacketReader

AGAIN = MQTTErrorCode.MQTT_ERR_AGAIN


def vbi(n: int) -> bytes:
    out = bytearray()
    while True:
        n, byte = divmod(n, 128)
        out.append(byte | (128 if n else 0))
        if not n:
            return bytes(out)


def packet(header: int, body: bytes) -> bytes:
    return bytes((header,)) + vbi(len(body)) + body


def publish(
    topic: bytes,
    payload: bytes,
    *,
    v5: bool,
    qos: int = 1,
    mid: int = 1,
    retain: bool = False,
    dup: bool = False,
    props: bytes | None = None,
) -> bytes:
    body = struct.pack("!H", len(topic)) + topic
    if qos:
        body += struct.pack("!H", mid)
    if v5:
        body += b"\x00" if props is None else props
    header = 0x30 | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
    return packet(header, body + payload)


def user_props() -> bytes:
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = [("edged-task-id", "t-1"), ("k", "v")]
    props.ContentType = "application/json"
    props.MessageExpiryInterval = 60
    packed: bytes = props.pack()
    return packed


def puback(mid: int, tail: bytes = b"") -> bytes:
    return packet(0x40, struct.pack("!H", mid) + tail)


# Packets both readers must treat alike, by protocol. Each may end the connection (a
# malformed one does): scenarios are built from these plus the ones that must not.
def valid_packets(v5: bool) -> list[bytes]:
    out = [
        publish(b"a/b", b"hello", v5=v5, qos=0),
        publish(b"a/b", b"q1", v5=v5, qos=1, mid=7),
        publish(b"r", b"kept", v5=v5, qos=1, mid=8, retain=True),
        publish(b"d", b"again", v5=v5, qos=1, mid=9, dup=True),
        publish(b"e", b"", v5=v5, qos=1, mid=10),
        publish(b"big", bytes(range(256)) * 80, v5=v5, qos=1, mid=11),  # 3 length bytes
        publish(b"\xff\xfe", b"bad utf-8 topic", v5=v5, qos=1, mid=12),
        publish(b"q2", b"two", v5=v5, qos=2, mid=13),
        puback(1),
        puback(2),
        puback(999),  # not ours: ignored
        packet(0xD0, b""),  # PINGRESP
        packet(0x90, b"\x00\x05" + (b"\x00" if v5 else b"") + b"\x01"),  # SUBACK
    ]
    if v5:
        out += [
            publish(b"p", b"with props", v5=v5, qos=1, mid=14, props=user_props()),
            publish(b"", b"alias only", v5=v5, qos=0),
            puback(3, b"\x10"),  # No matching subscribers
            puback(4, b"\x87"),  # Not authorized
            puback(5, b"\x00\x00"),  # reason + empty properties
        ]
    return out


def malformed_packets(v5: bool) -> list[bytes]:
    out = [
        packet(0x32, b"\x00"),  # too short for a topic length
        packet(0x32, b"\x00\x09abc"),  # topic longer than the packet
        packet(0x32, b"\x00\x01t\x00"),  # QoS 1 without a whole packet id
        packet(0x36, b"\x00\x01t\x00\x01x"),  # QoS 3
        packet(0x40, b"\x00"),  # PUBACK too short
        b"\x30\xff\xff\xff\xff\x01",  # five length bytes
        packet(0x00, b""),  # reserved packet type
    ]
    if v5:
        out += [
            puback(6, b"\x05"),  # not a PUBACK reason code
            puback(6, b"\x00\x03\x7f\x7f\x7f"),  # unknown property
            publish(b"t", b"x", v5=True, qos=0, props=b"\x05\x7f\x7f\x7f\x7f\x7f"),
            publish(b"t", b"", v5=True, qos=0, props=b""),  # no property length
        ]
    else:
        out += [
            publish(b"", b"empty topic", v5=False, qos=0),
            puback(6, b"\x00"),  # 3.1.1 PUBACK is exactly 2 bytes
            puback(6, b"\x00\x00\x00"),
        ]
    return out


class ChunkSocket:
    """recv() serves what has 'arrived'; ``arrive()`` lets the next chunk in."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = list(chunks)
        self.ready = b""

    def arrive(self) -> bool:
        if not self.chunks:
            return False
        self.ready += self.chunks.pop(0)
        return True

    def recv(self, n: int) -> bytes:
        if not self.ready:
            raise BlockingIOError
        out, self.ready = self.ready[:n], self.ready[n:]
        return out

    def fileno(self) -> int:
        return -1

    def close(self) -> None:
        pass


class Harness:
    """One paho client, with or without a PacketReader, recording what it observed."""

    def __init__(self, chunks: list[bytes], *, v5: bool, manual_ack: bool, reader: bool) -> None:
        protocol = MQTTProtocolVersion.MQTTv5 if v5 else MQTTProtocolVersion.MQTTv311
        self.paho = p = Client(
            CallbackAPIVersion.VERSION2, protocol=protocol, manual_ack=manual_ack
        )
        self.events: list[Any] = []
        self.sock = ChunkSocket(chunks)
        p.on_socket_register_write = lambda *args: None
        p.on_message = lambda client, userdata, msg: self.on_publish(
            msg._topic,
            bytes(msg.payload),
            msg.qos,
            bool(msg.retain),
            msg.mid,
            bool(msg.dup),
            msg.properties,
        )
        p.on_publish = lambda client, userdata, mid, reason, props: self.on_puback(mid, reason)
        p.max_inflight_messages_set(2)
        p._sock = self.sock  # type: ignore[assignment]
        # mids 1..4: two in flight, two queued behind them
        self.infos = [p.publish(f"out/{i}", f"o{i}".encode(), qos=1) for i in range(4)]
        if reader:
            self.reader = PacketReader(p, self.on_publish, self.on_puback, lambda: None)

    def on_publish(self, *fields: Any) -> None:
        props = fields[6]
        self.events.append(("publish", *fields[:6], None if props is None else vars(props)))

    def on_puback(self, mid: int, reason: Any) -> None:
        self.events.append(("puback", mid, reason.value, str(reason)))
        if mid == 1:  # what the outbox does: publish from the PUBACK callback
            self.paho.publish("from/callback", b"cb", qos=1)

    def run(self) -> list[Any]:
        rcs: list[int] = []
        for _ in range(100_000):
            rc = self.paho._packet_read()
            if rc == AGAIN:
                if not self.sock.arrive():
                    break
                continue
            rcs.append(int(rc))
            if rc > 0:
                break
        p = self.paho
        return [
            rcs,
            self.events,
            [(m.mid, m.state, m.dup) for m in p._out_messages.values()],
            p._inflight_messages,
            [bytes(pkt["packet"]) for pkt in p._out_packet],
            {k: v for k, v in p._in_packet.items() if k != "packet"},
            bytes(p._in_packet["packet"]),
            [info.is_published() for info in self.infos],
        ]


def compare(chunks: list[bytes], *, v5: bool, manual_ack: bool = True) -> list[Any]:
    reference = Harness(chunks, v5=v5, manual_ack=manual_ack, reader=False).run()
    fast = Harness(chunks, v5=v5, manual_ack=manual_ack, reader=True).run()
    assert fast == reference
    return reference


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


PROTOCOLS = [pytest.param(True, id="v5"), pytest.param(False, id="v311")]


def test_the_shape_check_passed() -> None:
    assert fastread.SHAPE_ERROR is None
    harness = Harness([], v5=True, manual_ack=True, reader=True)
    assert harness.reader.fast
    assert harness.paho._packet_read == harness.reader.packet_read


@pytest.mark.parametrize("v5", PROTOCOLS)
@pytest.mark.parametrize("manual_ack", [True, False])
def test_every_valid_packet_at_once_and_byte_by_byte(v5: bool, manual_ack: bool) -> None:
    stream = b"".join(valid_packets(v5))
    whole = compare([stream], v5=v5, manual_ack=manual_ack)
    assert all(rc == 0 for rc in whole[0])
    assert len(whole[0]) == len(valid_packets(v5))
    bytewise = compare([bytes((b,)) for b in stream], v5=v5, manual_ack=manual_ack)
    assert bytewise == whole


@pytest.mark.parametrize("v5", PROTOCOLS)
def test_the_fast_path_handles_the_common_packets(
    v5: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    slow_calls: list[int] = []
    original = Client._packet_read

    def counting(self: Client) -> MQTTErrorCode:
        slow_calls.append(1)
        return original(self)

    monkeypatch.setattr(Client, "_packet_read", counting)
    common = [publish(b"a", b"x", v5=v5, qos=q, mid=20 + q) for q in (0, 1)] + [
        puback(1),
        puback(2),
    ]
    harness = Harness([b"".join(common)], v5=v5, manual_ack=True, reader=True)
    rcs = harness.run()[0]
    assert rcs == [0, 0, 0, 0]
    assert slow_calls == []


@pytest.mark.parametrize(
    ("v5", "index"),
    [(v5, i) for v5 in (True, False) for i in range(len(malformed_packets(v5)))],
)
def test_malformed_packets_end_the_connection_alike(v5: bool, index: int) -> None:
    good = valid_packets(v5)[:2]
    result = compare([b"".join([*good, malformed_packets(v5)[index], *good])], v5=v5)
    assert result[0][-1] > 0  # paho's error, after the good packets before it
    assert len(result[0]) == 3


@pytest.mark.parametrize("v5", PROTOCOLS)
def test_a_packet_cut_short_waits_for_the_rest(v5: bool) -> None:
    stream = publish(b"t", b"payload", v5=v5, mid=5) + puback(1)
    for cut in range(1, len(stream)):
        result = compare([stream[:cut], stream[cut:]], v5=v5)
        assert result[0] == [0, 0]


def test_without_the_shape_the_reader_only_buffers(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastread, "SHAPE_ERROR", "pretend paho changed")
    harness = Harness([b"".join(valid_packets(True))], v5=True, manual_ack=True, reader=True)
    assert not harness.reader.fast
    assert "_packet_read" not in vars(harness.paho)
    reference = Harness([b"".join(valid_packets(True))], v5=True, manual_ack=True, reader=False)
    assert harness.run() == reference.run()


@settings(max_examples=150, deadline=None)
@given(
    v5=st.booleans(),
    manual_ack=st.booleans(),
    picks=st.lists(st.integers(0, 100), min_size=1, max_size=12),
    bad=st.one_of(st.none(), st.integers(0, 100)),
    cuts=st.lists(st.integers(0, 10**6), max_size=8),
)
def test_any_mix_of_packets_cut_anywhere(
    v5: bool, manual_ack: bool, picks: list[int], bad: int | None, cuts: list[int]
) -> None:
    pool = valid_packets(v5)
    packets = [pool[i % len(pool)] for i in picks]
    if bad is not None:
        malformed = malformed_packets(v5)
        packets.insert(bad % (len(packets) + 1), malformed[bad % len(malformed)])
    compare(split(b"".join(packets), cuts), v5=v5, manual_ack=manual_ack)
