"""The payload codec: exact round trips for every JSON value a user can send."""

from __future__ import annotations

import enum
import json
import math
from collections import OrderedDict, namedtuple
from typing import Any

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edged.journal.codec import (
    EXT_BIG_INT,
    PayloadNotJSON,
    decode,
    decode_many,
    encode,
    encode_many,
)
from edged.journal.codec import _pack as codec_pack


def same(a: Any, b: Any) -> bool:
    """Equal with equal types all the way down (1 != 1.0 != True), NaN equal to NaN.

    Iterative, because the values may be nested deeper than the Python stack.
    """
    stack = [(a, b)]
    while stack:
        x, y = stack.pop()
        if type(x) is not type(y):
            return False
        if isinstance(x, dict):
            if list(x) != list(y):
                return False
            stack.extend((x[k], y[k]) for k in x)
        elif isinstance(x, list):
            if len(x) != len(y):
                return False
            stack.extend(zip(x, y, strict=True))
        elif isinstance(x, float):
            if not (x == y or (math.isnan(x) and math.isnan(y))):
                return False
            if math.copysign(1.0, x) != math.copysign(1.0, y):
                return False
        elif x != y:
            return False
    return True


# Strings with lone surrogates included, as json.loads("\"\\ud800\"") produces them.
texts = st.text(st.characters(codec=None, exclude_categories=()))
scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # unbounded: far outside msgpack's 64-bit range
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(texts, inner, max_size=5),
    max_leaves=40,
)


@given(json_values)
@settings(max_examples=400)
def test_round_trip_is_exact(value: Any) -> None:
    assert same(decode(encode(value)), value)


@given(st.lists(json_values, max_size=8))
def test_decode_many_matches_decode(values: list[Any]) -> None:
    blobs = [encode(v) for v in values]
    assert same(decode_many(blobs), [decode(b) for b in blobs])


@given(st.integers())
def test_ints_stay_ints_at_every_size(n: int) -> None:
    back = decode(encode(n))
    assert type(back) is int and back == n


def test_type_distinctions_survive() -> None:
    value = [1, 1.0, True, 0, 0.0, False, -0.0, None, "1", 2**64, 2**64 - 1, -(2**63), -(2**63) - 1]
    assert same(decode(encode(value)), value)


def test_big_ints_use_the_ext_type_and_small_ones_do_not() -> None:
    assert msgpack.unpackb(encode(2**64 - 1)) == 2**64 - 1
    ext = msgpack.unpackb(encode(2**64))
    assert isinstance(ext, msgpack.ExtType) and ext.code == EXT_BIG_INT


def test_values_from_json_loads_round_trip() -> None:
    text = '{"s": "\\ud800x\\udfff", "n": 123456789012345678901234567890, "f": 1e308, "z": -0.0, "u": "\\u00e9\\ud83d\\ude00"}'
    value = json.loads(text)
    assert same(decode(encode(value)), value)
    assert decode(encode(value))["s"] == "\ud800x\udfff"


@pytest.mark.parametrize("depth", [10, 511, 512, 1023, 1024, 1025, 1026, 3000])
def test_deep_nesting_round_trips(depth: int) -> None:
    value: Any = "leaf"
    for i in range(depth):
        value = [value, i] if i % 2 else {"k": value, "n": 2**80}
    assert same(decode(encode(value)), value)


def test_as_deep_as_json_allows() -> None:
    # Find the deepest array json.loads accepts here, then round trip it.
    depth = 100
    while True:
        try:
            json.loads("[" * (depth + 100) + "]" * (depth + 100))
        except RecursionError:
            break
        depth += 100
    value = json.loads("[" * depth + "]" * depth)
    assert same(decode(encode(value)), value)


@pytest.mark.parametrize("bad", [{1, 2}, object(), [1, {"a": complex(1, 2)}]])
def test_non_json_values_are_refused(bad: Any) -> None:
    with pytest.raises(PayloadNotJSON):
        encode(bad)


def _deep(depth: int) -> Any:
    value: Any = "leaf"
    for i in range(depth):
        value = [value, i] if i % 2 else {"k": value}
    return value


@given(st.lists(json_values, max_size=6), st.sampled_from([None, 0, 600, 1500]))
@settings(max_examples=150)
def test_encode_many_gives_what_encode_gives(values: list[Any], deep_at: int | None) -> None:
    """The one-call fast path: the same bytes, lone surrogates, big ints and depth included."""
    if deep_at is not None:  # a value msgpack cannot nest (packer or unpacker) joins the list
        values = [*values, _deep(deep_at)]
    assert encode_many(values) == [encode(v) for v in values]


def test_encode_many_refuses_what_encode_refuses() -> None:
    with pytest.raises(PayloadNotJSON):
        encode_many([{"a": 1}, {1, 2}])
    assert encode_many([{"a": 1}]) == [encode({"a": 1})]  # the packer is clean after the error


# What the packers wrote before they checked exact types only (``strict_types``): every
# subclass and tuple they took must still come out byte for byte the same.
def _old_default(obj: object) -> msgpack.ExtType:
    if isinstance(obj, int) and not isinstance(obj, bool):
        size = (obj.bit_length() + 8) // 8
        return msgpack.ExtType(EXT_BIG_INT, obj.to_bytes(size, "big", signed=True))
    raise TypeError(type(obj).__name__)


_OLD_STRICT = msgpack.Packer(default=_old_default)
_OLD_LENIENT = msgpack.Packer(default=_old_default, unicode_errors="surrogatepass")


def _old_pack(value: Any) -> bytes:
    try:
        blob: bytes = _OLD_STRICT.pack(value)
    except UnicodeEncodeError:
        blob = _OLD_LENIENT.pack(value)
    return blob


class _Int(int):
    pass


class _Color(enum.IntEnum):
    RED = 1
    HUGE = 2**70


class _Status(enum.StrEnum):
    DONE = "DONE"


class _Str(str):
    pass


class _Float(float):
    pass


class _Bytes(bytes):
    pass


class _List(list):  # type: ignore[type-arg]
    pass


class _Dict(dict):  # type: ignore[type-arg]
    pass


_Pair = namedtuple("_Pair", "a b")


def _ordered(items: dict[str, Any]) -> OrderedDict[str, Any]:
    od = OrderedDict(items)
    if od:
        od.move_to_end(next(iter(od)))  # its own order, no longer the dict's
    return od


odd_scalars = (
    scalars
    | st.integers().map(_Int)
    | st.sampled_from([_Color.RED, _Color.HUGE, _Status.DONE])
    | texts.map(_Str)
    | st.floats(allow_nan=True).map(_Float)
    | st.binary(max_size=8)
    | st.binary(max_size=8).map(bytearray)
    | st.binary(max_size=8).map(_Bytes)
    | st.binary(max_size=8).map(memoryview)
    | st.tuples(st.integers(0, 127), st.binary(max_size=4)).map(lambda t: msgpack.ExtType(*t))
)
odd_values = st.recursive(
    odd_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.lists(inner, max_size=4).map(tuple)
        | st.lists(inner, max_size=4).map(_List)
        | st.tuples(inner, inner).map(lambda t: _Pair(*t))
        | st.dictionaries(texts, inner, max_size=4)
        | st.dictionaries(texts, inner, max_size=4).map(_Dict)
        | st.dictionaries(texts, inner, max_size=4).map(_ordered)
    ),
    max_leaves=30,
)


@given(odd_values)
@settings(max_examples=300)
def test_exact_type_packing_writes_the_old_bytes(value: Any) -> None:
    assert codec_pack(value) == _old_pack(value)
