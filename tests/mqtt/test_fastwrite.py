"""fastwrite.publish/ack behave like paho's publish/ack: same packets, results and paho state.

Most tests run every operation on two paho clients that look connected to an external loop:
one through paho's own method (the reference), one through fastwrite; then compare what
paho would read later (``fastwrite.paho_state``: mids, messages, in-flight count, queued
packets), the return values or exceptions, the register-write callbacks and the bytes
``loop_write`` sends. Sans-I/O: no socket. The last tests go through a real Mosquitto.
"""

# paho is untyped; every call on it here would need its own ignore
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt import client as paho_client
from paho.mqtt.client import Client
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.enums import _ConnectionState as ConnectionState
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import edged_mqtt.client  # noqa: F401  (installs FastProperties, as the daemon runs)
from edged_mqtt import fastwrite
from edged_mqtt.client import open_mqtt_client
from edged_mqtt.fastprops import new_properties
from tests.mqtt.conftest import Broker

V5, V311 = MQTTProtocolVersion.MQTTv5, MQTTProtocolVersion.MQTTv311
PROTOCOLS = [pytest.param(V5, id="v5"), pytest.param(V311, id="v311")]
DEADLINE_S = 10


@pytest.fixture(autouse=True)
def fixed_clock(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """paho stamps messages with time_func(): the same stamp on both sides (not in the
    tests with a broker, where paho's keepalive needs the real clock)."""
    if "broker" not in request.fixturenames:
        monkeypatch.setattr(paho_client, "time_func", lambda: 1234.5)


def make_properties(kind: str) -> Properties | None:
    props: Properties = new_properties(PacketTypes.PUBLISH)
    if kind == "none":
        return None
    if kind == "empty":
        return props
    if kind == "user":
        props.UserProperty = [("edged-task-id", "t-1"), ("ключ", "值")]
    elif kind == "content":
        props.ContentType = "application/json"
        props.MessageExpiryInterval = 60
        props.PayloadFormatIndicator = 1
    elif kind == "response":
        props.ResponseTopic = "reply/to"
        props.CorrelationData = b"\x00\x01corr"
        props.UserProperty = [("k", "v")]
    elif kind == "paho":  # paho's own class, as a caller may build it
        props = Properties(PacketTypes.PUBLISH)
        props.UserProperty = [("k", "v")]
        props.ContentType = "text/plain"
    elif kind == "alias":  # topic aliases: declined
        props.TopicAlias = 3
    elif kind == "big":  # properties needing a 2-byte length
        props.UserProperty = [(f"k{i}", "v" * 20) for i in range(10)]
    else:
        raise AssertionError(kind)
    return props


PROPERTY_KINDS = ["none", "empty", "user", "content", "response", "paho", "alias", "big"]


class Side:
    """One paho client and what it showed the outside world."""

    def __init__(self, protocol: MQTTProtocolVersion, fast: bool, **kwargs: Any) -> None:
        self.fast = fast
        self.paho = p = fastwrite.probe_client(protocol, **kwargs)
        self.registered: list[int] = []
        self.sent = bytearray()
        self.logs: list[str] = []
        self.slow_calls: list[str] = []
        p.on_socket_register_write = lambda *args: self.registered.append(len(p._out_packet))
        p._sock_send = self._send
        p._host, p._port = "broker.invalid", 1883  # reconnect() "connects" to a _ProbeSocket
        p._create_socket = lambda: fastwrite._ProbeSocket()
        if fast:  # count fallbacks to paho's own methods
            p.publish = self._counting(p.publish, "publish")
            p.ack = self._counting(p.ack, "ack")

    def _counting(self, method: Callable[..., Any], name: str) -> Callable[..., Any]:
        def counted(*args: Any) -> Any:
            self.slow_calls.append(name)
            return method(*args)

        return counted

    def _send(self, data: bytes | bytearray) -> int:
        self.sent += data
        return len(data)

    def call(self, name: str, *args: Any) -> Any:
        if name not in ("publish", "ack"):
            return getattr(self, name)(*args)
        try:
            if name == "ack":
                return fastwrite.ack(self.paho, *args) if self.fast else self.paho.ack(*args)
            if self.fast:
                info = fastwrite.publish(self.paho, *args)
            else:
                info = self.paho.publish(*args)
            return ("info", info.rc, info.mid, info._published)
        except Exception as exc:  # paho's errors, on both sides alike
            return ("raised", type(exc), str(exc))

    # the rest of the world, done by paho's own code on both sides
    def write(self) -> Any:
        return self.paho.loop_write()

    def puback(self, mid: int) -> Any:
        p = self.paho
        p._in_packet["command"] = 0x40
        p._in_packet["packet"] = struct.pack("!H", mid)
        return p._handle_pubackcomp("PUBACK")

    def lose(self) -> None:
        self.paho._sock_close()

    def reconnect(self) -> tuple[Any, Any]:
        p = self.paho
        rc = p.reconnect()
        p._in_packet["command"] = 0x20
        p._in_packet["packet"] = b"\x00\x00\x00" if p._protocol == V5 else b"\x00\x00"
        return rc, p._handle_connack()

    def log(self, on: bool) -> None:
        self.paho.on_log = (lambda c, u, level, buf: self.logs.append(buf)) if on else None

    def window(self, size: int) -> None:
        self.paho._max_inflight_messages = size

    def observed(self) -> list[Any]:
        p = self.paho
        return [
            fastwrite.paho_state(p),
            [m.timestamp for m in p._out_messages.values()],
            [pkt["packet"][:1] for pkt in p._out_packet],
            p.want_write(),
            self.registered,
            bytes(self.sent),
            self.logs,
        ]


class Pair:
    def __init__(self, protocol: MQTTProtocolVersion, **kwargs: Any) -> None:
        self.reference = Side(protocol, fast=False, **kwargs)
        self.fast = Side(protocol, fast=True, **kwargs)

    def do(self, name: str, *args: Any) -> Any:
        expected = self.reference.call(name, *args)
        got = self.fast.call(name, *args)
        assert got == expected, (name, args)
        assert self.fast.observed() == self.reference.observed(), (name, args)
        return got


def publish_args(
    topic: str = "a/b",
    payload: bytes = b"x",
    qos: int = 1,
    retain: bool = False,
    props: str = "none",
) -> tuple[Any, ...]:
    return topic, payload, qos, retain, make_properties(props)


def test_the_shape_check_passed() -> None:
    assert fastwrite.SHAPE_ERROR is None


@pytest.mark.parametrize(
    ("protocol", "expected"),
    [
        (V311, b"\x32\x09\x00\x03a/b\x00\x01hi"),
        (V5, b"\x32\x0a\x00\x03a/b\x00\x01\x00hi"),
    ],
)
def test_a_known_packet(protocol: MQTTProtocolVersion, expected: bytes) -> None:
    side = Side(protocol, fast=True)
    side.call("publish", "a/b", b"hi", 1, False, None)
    assert side.paho._out_packet[0]["packet"] == expected
    assert side.slow_calls == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("props", [k for k in PROPERTY_KINDS if k != "alias"])
@pytest.mark.parametrize("qos", [0, 1])
@pytest.mark.parametrize(
    ("topic", "size"),
    [
        ("a/b", 0),  # empty payload
        ("edged/echo/out", 50),  # remaining length in 1 byte
        ("über/温度/🙂", 200),  # unicode topic, 2 bytes
        ("big", 20_000),  # 3 bytes
        ("huge", 2_100_000),  # 4 bytes
    ],
)
def test_the_same_packets_and_state_as_paho(
    protocol: MQTTProtocolVersion, props: str, qos: int, topic: str, size: int
) -> None:
    pair = Pair(protocol)
    payload = bytes(range(256)) * (size // 256) + b"p" * (size % 256)
    for retain in (False, True):
        pair.do("publish", *publish_args(topic, payload, qos, retain, props))
    pair.do("ack", 7, 1)
    pair.do("write")
    assert pair.fast.slow_calls == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_mids_wrap_like_pahos(protocol: MQTTProtocolVersion) -> None:
    pair = Pair(protocol, max_inflight=0)
    for side in (pair.reference, pair.fast):
        side.paho._last_mid = 65534
    for _ in range(3):
        pair.do("publish", *publish_args())
    assert [m for m in pair.fast.paho._out_messages] == [65535, 1, 2]
    assert pair.fast.slow_calls == []


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_declines_and_paho_decides(protocol: MQTTProtocolVersion) -> None:
    pair = Pair(protocol, max_inflight=0)  # no window: paho queues none of these
    declined = [
        ("publish", *publish_args(qos=2)),
        ("publish", *publish_args(props="alias")),  # (5 only)
        ("publish", *publish_args(topic="")),  # paho: a topic alias (5) or ValueError
        ("publish", *publish_args(topic="a/+")),  # ValueError
        ("publish", *publish_args(topic="a/#")),
        ("publish", *publish_args(topic="t" * 65536)),
        ("publish", "a", "text payload", 1, False, None),  # paho encodes it
        ("publish", "a", None, 1, False, None),
        ("publish", "a", b"x", 3, False, None),  # ValueError
        ("publish", "a", b"x", 1, 1, None),  # retain not a bool
        ("publish", "a", b"x", 1, False, {"no": "Properties"}),  # (5 only) AttributeError
        ("ack", 5, 2),  # PUBCOMP
        ("ack", 5, 0),
        ("ack", 70000, 1),  # struct.error
    ]
    for op in declined:
        pair.do(*op)
    publishes = 11 if protocol == V5 else 9  # 3.1.1 sends no properties: kept, not packed
    assert pair.fast.slow_calls == ["publish"] * publishes + ["ack"] * 3
    for mid in sorted(pair.fast.paho._out_messages):
        pair.do("puback", mid)
    pair.do("write")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_a_full_window_and_logging_are_pahos(protocol: MQTTProtocolVersion) -> None:
    pair = Pair(protocol, max_inflight=2)
    for _ in range(3):  # the window (2) is full after two: paho queues the third ...
        pair.do("publish", *publish_args())
    assert pair.fast.slow_calls == ["publish"]
    pair.do("publish", *publish_args(qos=0))  # ... but sends QoS 0
    pair.do("log", True)
    pair.do("ack", 9, 1)
    pair.do("publish", *publish_args(qos=0))
    pair.do("log", False)
    assert pair.fast.slow_calls == ["publish", "ack", "publish"]
    for mid in sorted(pair.fast.paho._out_messages):
        pair.do("puback", mid)  # paho sends what it queued
    pair.do("write")


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_declines_when_not_connected_or_not_an_external_loop(
    protocol: MQTTProtocolVersion,
) -> None:
    pair = Pair(protocol)
    pair.do("lose")
    pair.do("publish", *publish_args())  # paho: MQTT_ERR_NO_CONN, kept for the reconnect
    pair.do("publish", *publish_args(qos=0))
    pair.do("ack", 3, 1)
    assert pair.fast.slow_calls == ["publish", "publish", "ack"]
    pair.do("reconnect")
    pair.do("write")
    for side in (pair.reference, pair.fast):
        side.paho._state = ConnectionState.MQTT_CS_CONNECTING
    pair.do("publish", *publish_args())
    for side in (pair.reference, pair.fast):
        side.paho._state = ConnectionState.MQTT_CS_CONNECTED
        side.paho.on_socket_register_write = None  # paho would write at once itself
    pair.do("publish", *publish_args())
    pair.do("ack", 3, 1)
    assert pair.fast.slow_calls[3:] == ["publish", "publish", "ack"]


def test_manual_ack_off_is_pahos() -> None:
    pair = Pair(V5, manual_ack=False)
    pair.do("ack", 4, 1)
    assert pair.fast.slow_calls == ["ack"]


def test_a_broken_shape_leaves_everything_to_paho(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastwrite, "SHAPE_ERROR", "pretend paho changed")
    pair = Pair(V5)
    pair.do("publish", *publish_args())
    pair.do("ack", 1, 1)
    assert pair.fast.slow_calls == ["publish", "ack"]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_in_flight_messages_are_resent_with_dup_after_a_reconnect(
    protocol: MQTTProtocolVersion,
) -> None:
    pair = Pair(protocol, max_inflight=3)
    for i in range(5):  # three in flight, two queued
        pair.do("publish", *publish_args(topic=f"t/{i}", props="user"))
    pair.do("write")
    pair.do("lose")
    pair.do("reconnect")
    states = [(m.mid, m.dup, m.state) for m in pair.fast.paho._out_messages.values()]
    assert [dup for _, dup, _ in states] == [True, True, True, False, False]
    pair.do("write")
    sent = bytes(pair.fast.sent)
    assert sent.count(b"\x3a") >= 3  # PUBLISH, DUP, QoS 1
    for mid in range(1, 6):
        pair.do("puback", mid)
    pair.do("write")
    assert pair.fast.paho._out_messages == {}


@pytest.mark.parametrize("qos", [0, 1])
def test_threads_waiting_for_publish_wake_like_with_pahos_info(qos: int) -> None:
    side = Side(V5, fast=True)
    infos = [fastwrite.publish(side.paho, f"w/{i}", b"x", qos, False, None) for i in range(2)]
    assert all(isinstance(info._condition, fastwrite.LazyCondition) for info in infos)
    woke: list[int] = []

    def wait(i: int) -> None:
        infos[i].wait_for_publish(5.0)
        woke.append(i)

    waiters = [threading.Thread(target=wait, args=(i,)) for i in range(2)]
    for waiter in waiters:
        waiter.start()
    deadline = time.monotonic() + 5.0
    while True:  # until both wait on their own condition, built when they began to wait
        conditions = [getattr(info._condition, "_real", None) for info in infos]
        if all(c is not None and len(c._waiters) == 1 for c in conditions):
            break
        assert time.monotonic() < deadline
        time.sleep(0.001)
    if qos:
        side.puback(infos[1].mid)  # paho's PUBACK handling notifies the condition
        side.puback(infos[0].mid)
    else:
        side.write()  # paho marks QoS 0 published once written
    for waiter in waiters:
        waiter.join(5.0)
    assert sorted(woke) == [0, 1]
    assert all(info.is_published() for info in infos)


TOPICS = st.one_of(
    st.sampled_from(["a/b", "edged/x", "ü/温度/🙂", "a/b", "t", "", "a/+", "#"]),
    st.text(st.characters(blacklist_characters="+#"), min_size=1, max_size=20),
)  # "", "a/+" and "#" are paho's: ValueError, or on MQTT 5 "" is a topic alias
PUBLISH = st.tuples(
    st.just("publish"),
    TOPICS,
    st.one_of(st.binary(max_size=300), st.sampled_from([b"x" * 16_400, b"y" * 123])),
    st.sampled_from([1, 1, 1, 0, 1, 2]),
    st.booleans(),
    st.sampled_from(PROPERTY_KINDS),
)
ACK = st.tuples(st.just("ack"), st.integers(0, 65535), st.sampled_from([1, 1, 1, 0, 2]))
OPS = st.one_of(  # the usual calls several times as often as the rest
    PUBLISH,
    PUBLISH,
    PUBLISH,
    ACK,
    ACK,
    st.tuples(st.just("puback"), st.integers(1, 12)),
    st.tuples(st.just("puback"), st.integers(1, 12)),
    st.tuples(st.just("write")),
    st.tuples(st.just("lose")),
    st.tuples(st.just("reconnect")),
    st.tuples(st.just("log"), st.booleans()),
    st.tuples(st.just("window"), st.sampled_from([0, 1, 2, 5, 20])),
)


def expand(op: tuple[Any, ...]) -> Iterator[Any]:
    if op[0] == "publish":
        yield from (op[0], *publish_args(*op[1:]))
    else:
        yield from op


@settings(max_examples=200, deadline=None)
@given(
    v5=st.booleans(),
    manual_ack=st.sampled_from([True, True, True, False]),
    ops=st.lists(OPS, min_size=1, max_size=30),
)
def test_any_sequence_leaves_paho_in_the_same_state(
    v5: bool, manual_ack: bool, ops: list[tuple[Any, ...]]
) -> None:
    pair = Pair(V5 if v5 else V311, max_inflight=5, manual_ack=manual_ack)
    for op in ops:
        pair.do(*expand(op))
    pair.do("write")


# ------------------------------------------------------------------ through Mosquitto


@pytest.fixture
def slow_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Client, str]]:
    """Every call of paho's own publish/ack (fastwrite's fallbacks), by client."""
    calls: list[tuple[Client, str]] = []
    for name in ("publish", "ack"):
        original = getattr(Client, name)

        def counted(self: Client, *args: Any, _o: Any = original, _n: str = name) -> Any:
            calls.append((self, _n))
            return _o(self, *args)

        monkeypatch.setattr(Client, name, counted)
    return calls


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_in_flight_publishes_survive_a_reconnect(
    broker: Broker, protocol: str, slow_calls: list[tuple[Client, str]]
) -> None:
    with trio.fail_after(DEADLINE_S):
        async with (
            open_mqtt_client(
                broker.settings(client_id=f"fw-s-{protocol}", protocol=protocol)
            ) as sub,
            open_mqtt_client(
                broker.settings(client_id=f"fw-p-{protocol}", protocol=protocol)
            ) as pub,
        ):
            await sub.subscribe("fw/#", 1)
            n = await pub.wait_connected()
            written: list[bytes] = []
            send = pub._paho._sock_send

            def recording(data: bytes | bytearray) -> int:
                written.append(bytes(data))
                sent: int = send(data)
                return sent

            pub._paho._sock_send = recording
            done: list[BaseException | None] = []
            all_done = trio.Event()

            def finished(error: BaseException | None) -> None:
                done.append(error)
                if len(done) == 10:
                    all_done.set()

            for i in range(10):  # no checkpoint in between: none is written yet
                pub.publish_then_nowait(f"fw/{i}", f"m{i}".encode(), 1, False, None, finished)
            assert len(pub._paho._out_messages) == 10
            pub.drop_connection()
            await pub.wait_connected(after=n)
            got: set[bytes] = set()
            while len(got) < 10:
                got.add((await sub.receive()).payload)
            assert got == {f"m{i}".encode() for i in range(10)}
            await all_done.wait()  # the reader task calls back after each PUBACK
            assert done == [None] * 10
            resent = [data for data in written if data[:1] == b"\x3a"]  # PUBLISH DUP QoS 1
            assert len(resent) == 10
            assert pub._paho._out_messages == {}
            assert [name for client, name in slow_calls if client is pub._paho] == []


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_manual_acks_reach_the_broker(
    broker: Broker, protocol: str, slow_calls: list[tuple[Client, str]]
) -> None:
    with trio.fail_after(DEADLINE_S):
        sub_settings = broker.settings(
            client_id=f"fw-ack-{protocol}", protocol=protocol, manual_ack=True
        )
        pub_settings = broker.settings(client_id=f"fw-ack-pub-{protocol}", protocol=protocol)
        async with open_mqtt_client(sub_settings) as sub, open_mqtt_client(pub_settings) as pub:
            await sub.subscribe("fwack/#", 1)
            for i in range(5):
                await pub.publish(f"fwack/{i}", f"a{i}".encode())
            for i in range(5):
                message = await sub.receive()
                assert message.payload == f"a{i}".encode()
                assert sub.ack(message)
            await sub.publish("sync", b"")  # flushes the PUBACKs on the same socket
            n = await sub.wait_connected()
            sub.drop_connection()
            await sub.wait_connected(after=n)
            await pub.publish("fwack/after", b"after")
            assert (await sub.receive()).payload == b"after"  # nothing redelivered first
            assert [1 for client, name in slow_calls if client is sub._paho and name == "ack"] == []
