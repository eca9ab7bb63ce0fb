"""CloudEvents codec: byte-exact encodings, both modes, mode detection, malformed input."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edged_mqtt.cloudevents import (
    STRUCTURED_CONTENT_TYPE,
    CloudEvent,
    CloudEventError,
    decode_binary,
    decode_message,
    decode_structured,
    encode_binary,
    encode_structured,
)

EVENT = CloudEvent(
    id="e-1",
    source="/edged/gw-1",
    type="sh.keptn.event.backup.triggered",
    data={"n": 1, "txt": "é"},
    time="2026-11-27T16:00:00Z",
    extensions={"shkeptncontext": "ctx", "retry": 2, "urgent": True},
)


def test_structured_is_byte_exact() -> None:
    assert (
        encode_structured(EVENT)
        == (
            '{"specversion":"1.0","id":"e-1","source":"/edged/gw-1",'
            '"type":"sh.keptn.event.backup.triggered","time":"2026-11-27T16:00:00Z",'
            '"retry":2,"shkeptncontext":"ctx","urgent":true,"data":{"n":1,"txt":"é"}}'
        ).encode()
    )
    assert decode_structured(encode_structured(EVENT)) == EVENT


def test_structured_bytes_data_travels_as_base64() -> None:
    event = CloudEvent(id="1", source="s", type="t", data=b"\x00\xff")
    raw = encode_structured(event)
    assert raw == b'{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"AP8="}'
    assert decode_message(raw, STRUCTURED_CONTENT_TYPE) == event


def test_binary_is_exact_and_round_trips() -> None:
    msg = encode_binary(EVENT)
    assert msg.payload == '{"n":1,"txt":"é"}'.encode()
    assert msg.content_type == "application/json"
    assert msg.user_properties == (
        ("specversion", "1.0"),
        ("id", "e-1"),
        ("source", "/edged/gw-1"),
        ("type", "sh.keptn.event.backup.triggered"),
        ("time", "2026-11-27T16:00:00Z"),
        ("retry", "2"),
        ("shkeptncontext", "ctx"),
        ("urgent", "true"),
    )
    back = decode_message(msg.payload, msg.content_type, msg.user_properties)
    assert back is not None
    assert back.data == EVENT.data
    assert back.datacontenttype == "application/json"
    # binary mode carries extensions as strings (their canonical form)
    assert back.extensions == {"shkeptncontext": "ctx", "retry": "2", "urgent": "true"}


def test_binary_accepts_ce_prefix_and_ignores_other_properties() -> None:
    props = [("ce_specversion", "1.0"), ("ce_id", "x"), ("ce_source", "s"), ("type", "t")]
    props += [("Trace-Id", "abc"), ("ce_shkeptncontext", "c")]
    event = decode_message(b"hello", "text/plain", props)
    assert event == CloudEvent(
        id="x",
        source="s",
        type="t",
        data="hello",
        datacontenttype="text/plain",
        extensions={"shkeptncontext": "c"},
    )
    octets = decode_binary(b"\x01\x02", None, props[:4])
    assert octets.data == b"\x01\x02"


def test_mode_detection() -> None:
    structured = encode_structured(EVENT)
    # MQTT 3.1.1: no content type, a JSON object with specversion
    assert decode_message(structured) == EVENT
    # plain messages are not CloudEvents: None, no error
    assert decode_message(b'{"temperature_c": -3}') is None
    assert decode_message(b"not json at all") is None
    assert decode_message(b"{broken") is None
    assert decode_message(b'{"a":1}', "application/json", [("trace", "1")]) is None


@pytest.mark.parametrize(
    ("payload", "content_type", "props", "match"),
    [
        (b"{", STRUCTURED_CONTENT_TYPE, (), "not JSON"),
        (b"[1]", STRUCTURED_CONTENT_TYPE, (), "JSON object"),
        (b'{"specversion":"1.0","source":"s","type":"t"}', STRUCTURED_CONTENT_TYPE, (), "id"),
        (b'{"specversion":"0.3","id":"1","source":"s","type":"t"}', None, (), "specversion"),
        (b'{"specversion":"1.0","id":"","source":"s","type":"t"}', None, (), "non-empty"),
        (b'{"specversion":"1.0","id":7,"source":"s","type":"t"}', None, (), "string"),
        (
            b'{"specversion":"1.0","id":"1","source":"s","type":"t","data":1,"data_base64":"AA=="}',
            None,
            (),
            "not both",
        ),
        (
            b'{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"%%%"}',
            None,
            (),
            "base64",
        ),
        (b'{"specversion":"1.0","id":"1","id":"2","source":"s","type":"t"}', None, (), "dupl"),
        (b'{"specversion":"1.0","id":"1","source":"s","type":"t","Bad-Name":1}', None, (), "name"),
        (b'{"specversion":"1.0","id":"1","source":"s","type":"t","x":1.5}', None, (), "integer"),
        (b'{"specversion":"1.0","id":"1","source":"s","type":"t","x":{}}', None, (), "integer"),
        (b"{}", "application/cloudevents+avro", (), "format"),
        (b"\xff\xfe", STRUCTURED_CONTENT_TYPE, (), "not JSON"),
        (b"[" * 100_000, STRUCTURED_CONTENT_TYPE, (), "not JSON"),
        (b"{", "application/json", [("specversion", "1.0"), ("id", "1")], "source"),
        (
            b"{",
            "application/json",
            [("specversion", "1.0"), ("id", "1"), ("source", "s"), ("type", "t")],
            "not JSON",
        ),
        (
            b"",
            None,
            [("specversion", "1.0"), ("id", "1"), ("ce_id", "2"), ("source", "s"), ("type", "t")],
            "twice",
        ),
        (b"", None, [("ce_specversion", "1.0"), ("ce_Bad", "1")], "name"),
        (
            b"\xff",
            "text/plain",
            [("specversion", "1.0"), ("id", "1"), ("source", "s"), ("type", "t")],
            "UTF-8",
        ),
    ],
)
def test_malformed_claims_raise_clear_errors(
    payload: bytes, content_type: str | None, props: Any, match: str
) -> None:
    with pytest.raises(CloudEventError, match=match):
        decode_message(payload, content_type, props)


def test_event_constructor_checks() -> None:
    with pytest.raises(CloudEventError, match="shadows"):
        CloudEvent(id="1", source="s", type="t", extensions={"data": "x"})
    with pytest.raises(CloudEventError, match="string, integer or boolean"):
        CloudEvent(id="1", source="s", type="t", extensions={"x": 1.5})  # type: ignore[dict-item]
    with pytest.raises(CloudEventError, match="not JSON"):
        encode_structured(CloudEvent(id="1", source="s", type="t", data={"x": float("nan")}))
    with pytest.raises(CloudEventError, match="longer"):
        CloudEvent(id="1" * 5000, source="s", type="t")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=150, deadline=None)
@given(
    data=_json | st.binary(max_size=20),
    ext=st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9]{0,8}", fullmatch=True).filter(
            lambda n: (
                n not in {"id", "source", "type", "specversion", "subject", "time"}
                and n not in {"dataschema", "datacontenttype", "data"}
            )
        ),
        st.text(max_size=6) | st.integers(),
        max_size=4,
    ),
)
def test_structured_round_trip(data: Any, ext: dict[str, Any]) -> None:
    event = CloudEvent(id="i", source="s", type="t", data=data, extensions=ext)
    raw = encode_structured(event)
    assert decode_message(raw, STRUCTURED_CONTENT_TYPE) == event
    assert json.loads(raw)["specversion"] == "1.0"


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=200), st.sampled_from([None, STRUCTURED_CONTENT_TYPE, "application/json"])
)
def test_arbitrary_bytes_never_escape_as_other_errors(payload: bytes, ctype: str | None) -> None:
    with contextlib.suppress(CloudEventError):
        decode_message(
            payload, ctype, [("specversion", "1.0")] if ctype == "application/json" else []
        )
