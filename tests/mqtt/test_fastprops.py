"""FastProperties behaves like paho's Properties: same attributes, bytes and exceptions."""

# paho's Properties is untyped; every call on it here would need its own ignore
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edged_mqtt import fastprops
from edged_mqtt.fastprops import FastProperties

PUB = PacketTypes.PUBLISH

# One valid value for every property, on a packet type it applies to.
EVERY_PROPERTY: dict[str, tuple[int, Any]] = {
    "PayloadFormatIndicator": (PUB, 1),
    "MessageExpiryInterval": (PUB, 3600),
    "ContentType": (PUB, "application/json"),
    "ResponseTopic": (PUB, "reply/to"),
    "CorrelationData": (PUB, b"\x00corr\xff"),
    "SubscriptionIdentifier": (PUB, [1, 127, 128, 16384, 268435455]),
    "SessionExpiryInterval": (PacketTypes.CONNECT, 0xFFFFFFFF),
    "AssignedClientIdentifier": (PacketTypes.CONNACK, "auto-1"),
    "ServerKeepAlive": (PacketTypes.CONNACK, 60),
    "AuthenticationMethod": (PacketTypes.AUTH, "SCRAM"),
    "AuthenticationData": (PacketTypes.AUTH, b"\x01\x02"),
    "RequestProblemInformation": (PacketTypes.CONNECT, 0),
    "WillDelayInterval": (PacketTypes.WILLMESSAGE, 5),
    "RequestResponseInformation": (PacketTypes.CONNECT, 1),
    "ResponseInformation": (PacketTypes.CONNACK, "resp"),
    "ServerReference": (PacketTypes.DISCONNECT, "other:1883"),
    "ReasonString": (PacketTypes.PUBACK, "späť ✓"),
    "ReceiveMaximum": (PacketTypes.CONNACK, 65535),
    "TopicAliasMaximum": (PacketTypes.CONNECT, 0),
    "TopicAlias": (PUB, 1),
    "MaximumQoS": (PacketTypes.CONNACK, 1),
    "RetainAvailable": (PacketTypes.CONNACK, 0),
    "UserProperty": (PUB, [("a", "1"), ("a", "2"), ("", "")]),
    "MaximumPacketSize": (PacketTypes.CONNACK, 268435455),
    "WildcardSubscriptionAvailable": (PacketTypes.CONNACK, 1),
    "SubscriptionIdentifierAvailable": (PacketTypes.CONNACK, 0),
    "SharedSubscriptionAvailable": (PacketTypes.CONNACK, 1),
}

CLASSES: list[Callable[[int], Properties]] = [Properties, FastProperties]


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except Exception as exc:
        return "error", (type(exc), str(exc))


def state(props: Properties) -> dict[str, Any]:
    return dict(vars(props))


def both(packet_type: int, attrs: dict[str, Any]) -> list[Any]:
    """Build with each class; return (outcome of setting, pack, state, str, json, isEmpty)."""
    results = []
    for cls in CLASSES:
        props = cls(packet_type)

        def fill(props: Properties = props) -> None:
            for name, value in attrs.items():
                setattr(props, name, value)

        results.append(
            (
                outcome(fill),
                outcome(props.pack),
                state(props),
                str(props),
                props.json(),
                props.isEmpty(),
            )
        )
    return results


def unpack_both(packet_type: int, data: bytes | bytearray, *, prefill: bool = False) -> list[Any]:
    results = []
    for cls in CLASSES:
        props = cls(packet_type)
        if prefill:  # unpack clears what was there
            props.UserProperty = ("old", "1")
            if packet_type == PUB:
                props.ContentType = "old"

        def run(props: Properties = props) -> int:
            _, n = props.unpack(data)
            return int(n)

        results.append((outcome(run), state(props)))
    return results


def test_the_tables_cover_every_paho_property() -> None:
    names = {name.replace(" ", "") for name in Properties(PUB).names}
    assert names == set(EVERY_PROPERTY)


def test_the_shape_check_passed_and_install_patches_only_the_decoders() -> None:
    assert fastprops._SHAPE_ERROR is None
    assert fastprops.install()
    assert _packet.Properties is FastProperties  # type: ignore[attr-defined]
    assert type(fastprops.new_properties(PUB)) is FastProperties
    assert isinstance(FastProperties(PUB), Properties)


@pytest.mark.parametrize("name", sorted(EVERY_PROPERTY))
def test_every_property_packs_and_unpacks_the_same(name: str) -> None:
    packet_type, value = EVERY_PROPERTY[name]
    slow, fast = both(packet_type, {name: value})
    assert slow == fast
    assert slow[0][0] == "ok"
    packed = slow[1][1]
    for tail in (b"", b"payload after the properties"):
        slow_u, fast_u = unpack_both(packet_type, packed + tail)
        assert slow_u == fast_u
        assert slow_u[0] == ("ok", len(packed))


def test_all_properties_of_a_packet_type_at_once() -> None:
    by_type: dict[int, dict[str, Any]] = {}
    for name, (packet_type, value) in EVERY_PROPERTY.items():
        by_type.setdefault(packet_type, {})[name] = value
    for packet_type, attrs in by_type.items():
        slow, fast = both(packet_type, attrs)
        assert slow == fast
        packed = slow[1][1]
        assert unpack_both(packet_type, packed)[0] == unpack_both(packet_type, packed)[1]
        assert (
            unpack_both(packet_type, packed, prefill=True)[0]
            == (unpack_both(packet_type, packed, prefill=True)[1])
        )


def test_pack_follows_pahos_order_whatever_order_properties_were_set_in() -> None:
    # pack() walks only the properties set, sorted into paho's order
    names = [n for n, (t, _) in EVERY_PROPERTY.items() if t == PUB]
    for order in (names, names[::-1], names[1::2] + names[::2]):
        slow, fast = both(PUB, {name: EVERY_PROPERTY[name][1] for name in order})
        assert slow == fast
        assert slow[1][0] == "ok"


@pytest.mark.parametrize(
    "attrs",
    [
        {"ContentType": "x" * 65536},  # past a two-byte length: struct.error in both
        {"UserProperty": [("k", "v" * 70000)]},
        {"ResponseTopic": "ünïcode/tøpic"},
        {"UserProperty": [("k", b"raw bytes"), ("ü", "ß")]},
        {"ContentType": 5},  # not text: TypeError from pack in both
        {"UserProperty": [("k", 5)]},
    ],
)
def test_string_properties_pack_and_fail_like_paho(attrs: dict[str, Any]) -> None:
    slow, fast = both(PUB, attrs)
    assert slow == fast


def test_multiple_values_accumulate_like_paho() -> None:
    for cls_results in [
        both(PUB, {"UserProperty": ("a", "1")}),
        both(PUB, {"User Property": [("a", "1")]}),
        both(PUB, {"SubscriptionIdentifier": 5}),
    ]:
        assert cls_results[0] == cls_results[1]
    results = []
    for cls in CLASSES:
        props = cls(PUB)
        props.UserProperty = ("a", "1")
        props.UserProperty = [("b", "2"), ("c", "3")]
        props.SubscriptionIdentifier = 1
        props.SubscriptionIdentifier = [2, 3]
        props.ContentType = "x"
        props.ContentType = "y"  # single-valued: replaced
        results.append((state(props), props.pack()))
    assert results[0] == results[1]


@pytest.mark.parametrize(
    ("packet_type", "attrs"),
    [
        (PUB, {"NoSuchProperty": 1}),
        (PUB, {"ServerKeepAlive": 5}),  # not for PUBLISH
        (PacketTypes.CONNACK, {"ReceiveMaximum": 0}),
        (PacketTypes.CONNACK, {"ReceiveMaximum": 65536}),
        (PUB, {"TopicAlias": 0}),
        (PacketTypes.CONNECT, {"TopicAliasMaximum": -1}),
        (PacketTypes.CONNECT, {"TopicAliasMaximum": 65536}),
        (PacketTypes.CONNACK, {"MaximumPacketSize": 0}),
        (PUB, {"SubscriptionIdentifier": 268435456}),
        (PUB, {"PayloadFormatIndicator": 2}),
        (PacketTypes.CONNECT, {"RequestProblemInformation": 3}),
        (PacketTypes.CONNACK, {"ReceiveMaximum": "10"}),  # TypeError from the comparison
        (PacketTypes.CONNACK, {"ReceiveMaximum": [0]}),  # lists skip the range checks
        (PUB, {"ContentType": 5}),  # accepted, fails in pack
        (PacketTypes.CONNACK, {"MaximumQoS": 300}),  # accepted, fails in pack
        (PacketTypes.CONNACK, {"ServerKeepAlive": 70000}),  # struct.error in pack
        (PUB, {"MessageExpiryInterval": -1}),
        (PUB, {"UserProperty": [("only-one",)]}),
        (PUB, {"UserProperty": [("k", 5)]}),
        (PUB, {"CorrelationData": "str, not bytes"}),
        (PUB, {"SubscriptionIdentifier": -5}),
    ],
)
def test_bad_values_fail_the_same_way(packet_type: int, attrs: dict[str, Any]) -> None:
    slow, fast = both(packet_type, attrs)
    assert slow == fast
    assert "error" in (slow[0][0], slow[1][0])


def vbi(n: int) -> bytes:
    out = b""
    while True:
        digit, n = n % 128, n // 128
        out += bytes([digit | (0x80 if n else 0)])
        if not n:
            return out


def props_bytes(body: bytes) -> bytes:
    return vbi(len(body)) + body


def utf(s: bytes) -> bytes:
    return len(s).to_bytes(2, "big") + s


@pytest.mark.parametrize(
    ("packet_type", "data"),
    [
        (PUB, b""),  # no length at all
        (PUB, b"\x00"),
        (PUB, b"\x00rest"),
        (PUB, b"\x80\x80\x80\x80\x01"),  # length VBI five bytes long
        (PUB, b"\x80"),  # length VBI cut short
        (PUB, props_bytes(b"\x7f\x00")),  # unknown identifier
        (PUB, props_bytes(b"\x13\x00\x05")),  # Server Keep Alive: not for PUBLISH
        (PUB, props_bytes(b"\x03" + utf(b"a") + b"\x03" + utf(b"b"))),  # twice, single-valued
        (PUB, props_bytes(b"\x26" + utf(b"k") + utf(b"v")) + b"payload"),
        (PUB, props_bytes(b"\x26" + utf(b"k") + utf(b"v") + b"\x26" + utf(b"k") + utf(b"w"))),
        (PUB, props_bytes(b"\x0b\x01\x0b\x80\x01")),  # two subscription identifiers
        (PUB, props_bytes(b"\x0b\x00")),  # subscription identifier 0: out of range
        (PUB, props_bytes(b"\x03" + utf(b"ab"))[:-1]),  # string cut short
        (PUB, props_bytes(b"\x03\x00\x09ab")),  # string longer than the properties
        (PUB, props_bytes(b"\x03" + utf("\ud800".encode("utf-8", "surrogatepass")))),
        (PUB, props_bytes(b"\x03" + utf(b"a\x00b"))),
        (PUB, props_bytes(b"\x03" + utf("\ufeff".encode()))),
        (PUB, props_bytes(b"\x03" + utf(b"\xff\xfe"))),  # not UTF-8
        (PUB, props_bytes(b"\x09" + utf(b"\x00\x01"))),
        (PUB, props_bytes(b"\x09\x00\x05a")),  # binary longer than the properties
        (PUB, b"\x02\x02\x00\x00\x0e\x10payload"),  # expiry reads past the length, into payload
        (PUB, b"\x02\x02\x00"),  # ...and past the end
        (PUB, props_bytes(b"\x01\x02")),  # payload format 2
        (PacketTypes.CONNACK, props_bytes(b"\x21\x00\x00")),  # receive maximum 0
        (PacketTypes.CONNACK, props_bytes(b"\x21\x00\x14\x24\x01\x13\x00\x3c")),
        (PacketTypes.CONNACK, props_bytes(b"\x21")),  # value missing
        (PacketTypes.PUBACK, props_bytes(b"\x1f" + utf(b"why"))),
        (PUB, props_bytes(b"\x02" + b"\xff\xff\xff\xff")),
        (PUB, props_bytes(b"\x80\x80\x80\x80\x01")),  # identifier VBI too long
    ],
)
def test_unpack_agrees_on_good_and_malformed_input(packet_type: int, data: bytes) -> None:
    assert unpack_both(packet_type, data)[0] == unpack_both(packet_type, data)[1]
    slow, fast = unpack_both(packet_type, data, prefill=True)
    assert slow == fast
    slow_bytes, fast_bytes = unpack_both(packet_type, bytearray(data))
    assert slow_bytes == fast_bytes


@settings(max_examples=400, deadline=None)
@given(
    packet_type=st.sampled_from([PUB, PacketTypes.CONNACK, PacketTypes.PUBACK]),
    data=st.one_of(
        st.binary(max_size=40),
        st.builds(
            lambda body, tail: props_bytes(body) + tail,
            st.binary(max_size=30),
            st.binary(max_size=6),
        ),
        st.builds(
            lambda parts, tail: props_bytes(b"".join(parts)) + tail,
            st.lists(
                st.sampled_from(
                    [
                        b"\x01\x01",
                        b"\x02\x00\x00\x00\x10",
                        b"\x03" + utf(b"ct"),
                        b"\x0b\x05",
                        b"\x0b\x80\x01",
                        b"\x21\x00\x10",
                        b"\x26" + utf(b"k") + utf(b"v"),
                        b"\x1f" + utf(b"r"),
                        b"\x24\x01",
                        b"\x23\x00\x01",
                    ]
                ),
                max_size=5,
            ),
            st.binary(max_size=4),
        ),
    ),
)
def test_unpack_fuzz(packet_type: int, data: bytes) -> None:
    slow, fast = unpack_both(packet_type, data)
    assert slow == fast
    if slow[0][0] == "ok":
        repacked = [cls(packet_type) for cls in CLASSES]
        for props in repacked:
            props.unpack(data)
        assert repacked[0].pack() == repacked[1].pack()


def test_helpers_agree() -> None:
    slow, fast = Properties(PUB), FastProperties(PUB)
    for name in [*EVERY_PROPERTY, "User Property", "Nope", ""]:
        assert slow.getIdentFromName(name) == fast.getIdentFromName(name)
        assert slow.allowsMultiple(name) == fast.allowsMultiple(name)
    for ident in range(-1, 60):
        assert slow.getNameFromIdent(ident) == fast.getNameFromIdent(ident)
    for ident, (ptype, _) in slow.properties.items():
        for value in (0, 1, 300, "s", b"b", ("k", "v")):
            args = (ident, ptype, value)
            assert outcome(partial(slow.writeProperty, *args)) == outcome(
                partial(fast.writeProperty, *args)
            )
    slow.UserProperty = ("a", "b")
    fast.UserProperty = ("a", "b")
    slow.clear()
    fast.clear()
    assert state(slow) == state(fast)
    assert slow.isEmpty() and fast.isEmpty()


def decode_all(installed: bool) -> list[Any]:
    v5 = MQTTProtocolVersion.MQTTv5
    user = props_bytes(b"\x26" + utf(b"k") + utf(b"v") + b"\x03" + utf(b"text/plain"))
    packets: list[tuple[Callable[..., Any], int, bytes]] = [
        (_packet.decode_publish, 0x32, utf(b"bench/in") + b"\x00\x05" + b"\x00" + b"{}"),
        (_packet.decode_publish, 0x32, utf(b"bench/in") + b"\x00\x05" + user + b"{}"),
        (_packet.decode_publish, 0x30, utf(b"t") + user[:-2]),  # malformed
        (_packet.decode_puback, 0x40, b"\x00\x05"),
        (_packet.decode_puback, 0x40, b"\x00\x05\x10"),
        (_packet.decode_puback, 0x40, b"\x00\x05\x00" + props_bytes(b"\x1f" + utf(b"ok"))),
        (_packet.decode_puback, 0x40, b"\x00\x05\x00\x7f"),  # malformed
        (_packet.decode_connack, 0x20, b"\x00\x00" + props_bytes(b"\x21\x00\x14\x24\x01")),
        (_packet.decode_suback, 0x90, b"\x00\x01\x00\x01"),
    ]
    if installed:
        fastprops.install()
    else:
        fastprops.uninstall()
    try:
        out = []
        for decode, header, data in packets:
            result = outcome(partial(decode, header, data, v5))
            if result[0] == "ok":
                fields = result[1]._asdict()
                for key, value in fields.items():
                    if isinstance(value, Properties):
                        fields[key] = (state(value), value.pack())
                    elif hasattr(value, "value") and hasattr(value, "packetType"):
                        fields[key] = (value.packetType, value.value)
                result = ("ok", fields)
            out.append(result)
        return out
    finally:
        fastprops.install()


def test_paho_decoders_give_the_same_packets_with_either_class() -> None:
    assert decode_all(installed=False) == decode_all(installed=True)


def test_install_refuses_when_paho_is_not_the_expected_shape(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fastprops.uninstall()
    try:
        monkeypatch.setattr(fastprops, "_SHAPE_ERROR", "paho-mqtt '3.0' is not 2.x")
        assert not fastprops.install()
        assert _packet.Properties is Properties  # type: ignore[attr-defined]
        assert type(fastprops.new_properties(PUB)) is Properties
    finally:
        monkeypatch.undo()
        fastprops.install()


def test_shape_check_reports_a_foreign_decoder_class(monkeypatch: pytest.MonkeyPatch) -> None:
    class Other(Properties):
        pass

    monkeypatch.setattr(_packet, "Properties", Other)
    assert "not paho's Properties" in (fastprops._check_shape() or "")
    monkeypatch.setattr(fastprops.paho.mqtt, "__version__", "3.0.0")
    assert "not 2.x" in (fastprops._check_shape() or "")
