"""The outbox's payload text is json.dumps(separators=(",", ":"), allow_nan=False)'s, errors
included, from a prebuilt C encoder (edged_mqtt.outbox._compact_json)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edged_mqtt.outbox import _compact_json, _encode_payload


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False)


def _outcome(fn: Any, value: Any) -> tuple[str, str]:
    try:
        return "ok", fn(value)
    except Exception as exc:
        return type(exc).__name__, str(exc)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        | st.tuples(inner, inner)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_same_text_and_errors_as_json_dumps(value: Any) -> None:
    assert _outcome(_compact_json, value) == _outcome(_dumps, value)


circular: list[Any] = []
circular.append(circular)


@pytest.mark.parametrize(
    "value",
    [{"x": object()}, {(1, 2): 3}, {"x": {1, 2}}, {"x": b"raw"}, circular, 1e400],
)
def test_non_json_values_fail_the_same_way(value: Any) -> None:
    assert _outcome(_compact_json, value) == _outcome(_dumps, value)
    assert _outcome(_compact_json, value)[0] != "ok"


def test_non_str_keys_are_converted_the_same_way() -> None:
    value = {7: 2, 2.5: None, True: "t", None: 0}
    assert _compact_json(value) == _dumps(value) == '{"7":2,"2.5":null,"true":"t","null":0}'


def test_payload_encoding() -> None:
    assert _encode_payload("é") == "é".encode()
    assert _encode_payload(None) == b""
    assert _encode_payload({"a": [1, "é"]}) == b'{"a":[1,"\\u00e9"]}'
