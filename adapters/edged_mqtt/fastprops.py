"""paho's MQTT 5 ``Properties`` at a fraction of the CPU, same behaviour.

Why: paho builds a ``Properties`` for every PUBLISH and PUBACK it decodes, and the outbox
builds one for every message it sends. paho's class rebuilds its name and type tables in
every ``__init__`` and answers each lookup by scanning them (``list.index``, ``str.replace``
over all 27 names): ~80 us of CPU per echoed message, a tenth of the daemon's main thread.

``FastProperties`` subclasses paho's class and keeps its observable behaviour: the same
instance attributes (``packetType``, ``types``, ``names``, ``properties``, one per property
set), the same ``pack()`` bytes, the same ``unpack()`` result and the same exceptions for
bad names, values and malformed input. Only the lookups change: the tables are built once,
from a paho instance (so they follow paho's), and shared by every instance (paho never
mutates them; neither should callers). A PUBLISH with no properties (the common case)
unpacks without copying the rest of the packet.

``install()`` makes paho's packet decoders (``paho.mqtt._packet``, which calls the
``Properties`` name it imported) build ``FastProperties``. It refuses, logs at debug and
leaves paho alone when paho does not have the shape this module was written against
(version 2.x with ``paho.mqtt._packet``, the same tables, and a self-test comparing both
classes on a few property sets). ``new_properties`` then falls back to paho's class too.
Nothing else in paho changes: ``isinstance(x, Properties)`` still holds for both classes.
"""

from __future__ import annotations

import logging
import struct
from typing import Any

import paho.mqtt
from paho.mqtt import properties as _pp
from paho.mqtt.exception import MQTTException
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties, VariableByteIntegers

log = logging.getLogger("edged.mqtt")

_PRIVATE = frozenset(("packetType", "types", "names", "properties"))
_RANGE_1_65535 = frozenset(("ReceiveMaximum", "TopicAlias"))
_RANGE_0_65535 = frozenset(("TopicAliasMaximum",))
_RANGE_1_VBI = frozenset(("MaximumPacketSize", "SubscriptionIdentifier"))
_ZERO_OR_ONE = frozenset(
    ("RequestResponseInformation", "RequestProblemInformation", "PayloadFormatIndicator")
)
_CHECKED = _RANGE_1_65535 | _RANGE_0_65535 | _RANGE_1_VBI | _ZERO_OR_ONE
_TYPE_NAMES = [
    "Byte",
    "Two Byte Integer",
    "Four Byte Integer",
    "Variable Byte Integer",
    "Binary Data",
    "UTF-8 Encoded String",
    "UTF-8 String Pair",
]
_BYTE, _INT16, _INT32, _VBI, _BINARY, _UTF8, _PAIR = range(7)

# Tables, built from one paho instance with paho's own lookups (see _load_tables).
_TYPES: list[str] = []
_NAMES: dict[str, int] = {}
_PROPERTIES: dict[int, tuple[int, list[int]]] = {}
_IDENT: dict[str, int] = {}  # compressed name ("UserProperty") -> identifier
_CNAME: dict[int, str] = {}  # identifier -> compressed name
_NAME: dict[int, str] = {}  # identifier -> name ("User Property")
_MULTIPLE: frozenset[str] = frozenset()
_ORDER: list[tuple[str, int, int, bool, bytes]] = []  # pack order: paho's names order
_RANK: dict[str, int] = {}  # compressed name -> its index in _ORDER


def _load_tables() -> None:
    global _TYPES, _NAMES, _PROPERTIES, _MULTIPLE
    ref = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    if list(ref.types) != _TYPE_NAMES:
        raise ValueError(f"unexpected property types {ref.types!r}")
    _TYPES, _NAMES, _PROPERTIES = ref.types, ref.names, ref.properties
    for name in _NAMES:
        cname = name.replace(" ", "")
        ident = ref.getIdentFromName(cname)  # type: ignore[no-untyped-call]
        if ident != _NAMES[name] or ref.getNameFromIdent(ident) != name:  # type: ignore[no-untyped-call]
            raise ValueError(f"property {name!r} does not map to one identifier")
        _IDENT[cname] = ident
        _CNAME[ident] = cname
        _NAME[ident] = name
    if set(_PROPERTIES) != set(_CNAME):
        raise ValueError("property tables disagree")
    _MULTIPLE = frozenset(c for c in _IDENT if ref.allowsMultiple(c))  # type: ignore[no-untyped-call]
    _ORDER[:] = [
        (c, i, _PROPERTIES[i][0], c in _MULTIPLE, VariableByteIntegers.encode(i))  # type: ignore[no-untyped-call]
        for c, i in _IDENT.items()
    ]
    _RANK.clear()
    _RANK.update((entry[0], rank) for rank, entry in enumerate(_ORDER))


class FastProperties(Properties):
    """paho's ``Properties`` with its tables built once (see the module docstring)."""

    def __init__(self, packetType: int) -> None:
        d = self.__dict__
        d["packetType"] = packetType
        d["types"] = _TYPES
        d["names"] = _NAMES
        d["properties"] = _PROPERTIES

    def allowsMultiple(self, compressedName: str) -> bool:
        return compressedName in _MULTIPLE

    def getIdentFromName(self, compressedName: str) -> int:
        return _IDENT.get(compressedName, -1)

    def getNameFromIdent(self, identifier: int) -> str | None:
        return _NAME.get(identifier)

    def __setattr__(self, name: str, value: Any) -> None:
        # paho's checks, in paho's order, with the same exception types and messages
        name = name.replace(" ", "")
        if name in _PRIVATE:
            object.__setattr__(self, name, value)
            return
        ident = _IDENT.get(name)
        if ident is None:
            raise MQTTException(f"Property name must be one of {self.names.keys()}")
        if self.packetType not in self.properties[ident][1]:
            raise MQTTException(
                f"Property {name} does not apply to packet type "
                f"{PacketTypes.Names[self.packetType]}"
            )
        if name in _CHECKED and not isinstance(value, list):
            if name in _RANGE_1_65535 and (value < 1 or value > 65535):
                raise MQTTException(f"{name} property value must be in the range 1-65535")
            elif name in _RANGE_0_65535 and (value < 0 or value > 65535):
                raise MQTTException(f"{name} property value must be in the range 0-65535")
            elif name in _RANGE_1_VBI and (value < 1 or value > 268435455):
                raise MQTTException(f"{name} property value must be in the range 1-268435455")
            elif name in _ZERO_OR_ONE and (value != 0 and value != 1):
                raise MQTTException(f"{name} property value must be 0 or 1")
        if name in _MULTIPLE:
            if not isinstance(value, list):
                value = [value]
            if hasattr(self, name):
                value = object.__getattribute__(self, name) + value
        object.__setattr__(self, name, value)

    def isEmpty(self) -> bool:
        return not any(key in _IDENT for key in self.__dict__)

    def clear(self) -> None:
        d = self.__dict__
        if any(key not in _PRIVATE for key in d):
            for cname in _IDENT:
                if hasattr(self, cname):
                    delattr(self, cname)

    def writeProperty(self, identifier: int, type: int, value: Any) -> bytes:
        return _write(VariableByteIntegers.encode(identifier), type, value)  # type: ignore[no-untyped-call]

    def pack(self) -> bytes:
        d = self.__dict__
        if len(d) == len(_PRIVATE):  # nothing set (the common case but for PUBLISH)
            return b"\x00"
        # only the properties set, in paho's order (its pack walks all 27 names)
        found = [_RANK[key] for key in d if key in _RANK]
        found.sort()
        parts = []
        for rank in found:
            cname, _ident, ptype, multiple, ident_bytes = _ORDER[rank]
            if multiple:
                for prop in d[cname]:
                    parts.append(_write(ident_bytes, ptype, prop))
            else:
                parts.append(_write(ident_bytes, ptype, d[cname]))
        buffer = b"".join(parts)
        n = len(buffer)
        if n < 128:
            return bytes((n,)) + buffer
        return VariableByteIntegers.encode(n) + buffer  # type: ignore[no-any-return,no-untyped-call]

    def readProperty(self, buffer: Any, type: int, propslen: int) -> tuple[Any, int]:
        if type == _BYTE:
            return buffer[0], 1
        if type == _INT16:
            return _pp.readInt16(buffer), 2  # type: ignore[no-untyped-call]
        if type == _INT32:
            return _pp.readInt32(buffer), 4  # type: ignore[no-untyped-call]
        if type == _VBI:
            return VariableByteIntegers.decode(buffer)  # type: ignore[no-any-return,no-untyped-call]
        if type == _BINARY:
            return _pp.readBytes(buffer, propslen)  # type: ignore[no-any-return,no-untyped-call]
        if type == _UTF8:
            return _pp.readUTF(buffer, propslen)  # type: ignore[no-any-return,no-untyped-call]
        if type == _PAIR:
            value, valuelen = _pp.readUTF(buffer, propslen)  # type: ignore[no-untyped-call]
            value1, valuelen1 = _pp.readUTF(buffer[valuelen:], propslen - valuelen)  # type: ignore[no-untyped-call]
            return (value, value1), valuelen + valuelen1
        raise UnboundLocalError("cannot access local variable 'value'")  # as paho's would

    def unpack(self, buffer: Any) -> tuple[FastProperties, int]:
        self.clear()
        if len(buffer) > 0 and buffer[0] == 0:
            return self, 1  # no properties: paho would copy the whole rest of the packet
        propslen, vbi_len = VariableByteIntegers.decode(buffer)  # type: ignore[no-untyped-call]
        buffer = buffer[vbi_len:]
        left = propslen
        while left > 0:
            identifier, id_len = VariableByteIntegers.decode(buffer)  # type: ignore[no-untyped-call]
            buffer = buffer[id_len:]
            left -= id_len
            attr_type = _PROPERTIES[identifier][0]
            value, valuelen = self.readProperty(buffer, attr_type, left)
            buffer = buffer[valuelen:]
            left -= valuelen
            cname = _CNAME[identifier]
            if cname not in _MULTIPLE and hasattr(self, cname):
                # paho's message names the builtin ``property``, not the property
                raise MQTTException(f"Property '{property}' must not exist more than once")
            self.__setattr__(cname, value)
        return self, propslen + vbi_len


def _write(ident_bytes: bytes, ptype: int, value: Any) -> bytes:
    """paho's ``writeProperty`` body, with the identifier already encoded."""
    if ptype == _PAIR:
        return ident_bytes + _utf(value[0]) + _utf(value[1])
    if ptype == _UTF8:
        return ident_bytes + _utf(value)
    if ptype == _BYTE:
        return ident_bytes + bytes([value])
    if ptype == _INT16:
        return ident_bytes + _pp.writeInt16(value)  # type: ignore[no-any-return,no-untyped-call]
    if ptype == _INT32:
        return ident_bytes + _pp.writeInt32(value)  # type: ignore[no-any-return,no-untyped-call]
    if ptype == _VBI:
        return ident_bytes + VariableByteIntegers.encode(value)  # type: ignore[no-any-return,no-untyped-call]
    if ptype == _BINARY:
        return ident_bytes + _pp.writeBytes(value)  # type: ignore[no-any-return,no-untyped-call]
    return ident_bytes


_pack_length = struct.Struct("!H").pack


def _utf(data: Any) -> bytes:
    """paho's ``writeUTF``: the same bytes and the same errors (TypeError for what is
    neither bytes nor str, struct.error past 65,535 bytes), without its two calls."""
    raw: bytes = data if isinstance(data, bytes) else bytes(data, "utf-8")
    return _pack_length(len(raw)) + raw


# A few property sets both classes must agree on before install() swaps them.
def _self_test() -> None:
    pub = PacketTypes.PUBLISH
    samples: list[tuple[int, dict[str, Any]]] = [
        (pub, {}),
        (pub, {"UserProperty": [("edged-task-id", "t-1"), ("k", "v")], "ContentType": "a/b"}),
        (pub, {"MessageExpiryInterval": 300, "SubscriptionIdentifier": [1, 200000]}),
        (pub, {"ResponseTopic": "r/t", "CorrelationData": b"\x00\x01", "TopicAlias": 7}),
        (PacketTypes.CONNACK, {"ReceiveMaximum": 20, "MaximumQoS": 1, "ServerKeepAlive": 60}),
    ]
    for packet_type, attrs in samples:
        slow = Properties(packet_type)  # type: ignore[no-untyped-call]
        fast = FastProperties(packet_type)
        for name, value in attrs.items():
            setattr(slow, name, value)
            setattr(fast, name, value)
        packed = slow.pack()  # type: ignore[no-untyped-call]
        if fast.pack() != packed or vars(fast) != vars(slow):
            raise ValueError(f"pack differs for {attrs!r}")
        back_slow, n_slow = Properties(packet_type).unpack(packed + b"tail")  # type: ignore[no-untyped-call]
        back_fast, n_fast = FastProperties(packet_type).unpack(packed + b"tail")
        if n_fast != n_slow or vars(back_fast) != vars(back_slow):
            raise ValueError(f"unpack differs for {attrs!r}")


def _check_shape() -> str | None:
    """None when paho looks like the paho this module copies; else the reason why not."""
    version = getattr(paho.mqtt, "__version__", "")
    if not version.startswith("2."):
        return f"paho-mqtt {version!r} is not 2.x"
    try:
        from paho.mqtt import _packet
    except ImportError:
        return "paho.mqtt._packet is missing"
    if _packet.Properties not in (Properties, FastProperties):  # type: ignore[attr-defined]
        return "paho.mqtt._packet.Properties is not paho's Properties"
    for name in ("readInt16", "readInt32", "readUTF", "readBytes", "writeInt16", "writeInt32"):
        if not callable(getattr(_pp, name, None)):
            return f"paho.mqtt.properties.{name} is missing"
    try:
        _load_tables()
        _self_test()
    except Exception as exc:
        return f"self-test failed: {exc!r}"
    return None


_SHAPE_ERROR = _check_shape()


def new_properties(packet_type: int) -> Properties:
    """An empty ``Properties`` for ``packet_type``: the fast class when paho has the shape
    it expects, else paho's own."""
    if _SHAPE_ERROR is None:
        return FastProperties(packet_type)
    return Properties(packet_type)  # type: ignore[no-untyped-call]


def install() -> bool:
    """Make paho's packet decoders build ``FastProperties``. Idempotent; False (and paho
    untouched) when paho is not the shape this module expects."""
    if _SHAPE_ERROR is not None:
        log.debug("mqtt fast_properties not installed: %s", _SHAPE_ERROR)
        return False
    from paho.mqtt import _packet

    _packet.Properties = FastProperties  # type: ignore[attr-defined]
    return True


def uninstall() -> None:
    """Give paho's decoders their own class back (for tests)."""
    from paho.mqtt import _packet

    if _packet.Properties is FastProperties:  # type: ignore[attr-defined]
        _packet.Properties = Properties  # type: ignore[attr-defined]
