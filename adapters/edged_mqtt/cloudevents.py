"""CloudEvents 1.0 over MQTT: the JSON event format (structured mode) and MQTT 5 binary mode.

Theory of operation. Pure functions, no I/O and no paho: a message is (payload bytes, MQTT 5
Content Type or None, user properties as (name, value) pairs), and an event is a frozen
``CloudEvent``. Encoding is deterministic (fixed attribute order, sorted extensions, compact
JSON), so equal events give equal bytes and tests can compare them byte-exactly.

- Structured mode (MQTT 3.1.1 and 5): the payload is the JSON event format; Content Type
  ``application/cloudevents+json`` (implied on 3.1.1). ``data`` holds a JSON value, or
  ``data_base64`` holds bytes.
- Binary mode (MQTT 5 only): the payload is the data; ``datacontenttype`` travels as the
  MQTT Content Type, every other attribute as a user property named exactly as the attribute
  (the MQTT binding's rule). On decode a ``ce_`` prefix (the Kafka binding's habit, which some
  MQTT producers copy) is accepted too; the two spellings must agree.

``decode_message`` tells the modes apart as the binding says: a Content Type starting with
``application/cloudevents`` is structured; else user properties carrying ``specversion`` make
it binary; else, with no Content Type at all (3.1.1), a JSON object payload with
``specversion`` is structured. Anything else is not a CloudEvent: ``None``. A message that
claims to be one but breaks the spec (missing ``id``, bad JSON, wrong types, both ``data`` and
``data_base64``, bad attribute names, duplicate keys) raises ``CloudEventError`` with the
reason; callers count it, log it and dead-letter the message, never crash on it.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edged.errors import BadInput

STRUCTURED_CONTENT_TYPE = "application/cloudevents+json"
JSON_CONTENT_TYPE = "application/json"
SPEC_VERSION = "1.0"

_REQUIRED = ("id", "source", "type", "specversion")
_OPTIONAL = ("datacontenttype", "dataschema", "subject", "time")
_CONTEXT = frozenset(_REQUIRED + _OPTIONAL)
_RESERVED = frozenset({"data", "data_base64"})
# CloudEvents: attribute names are lower-case a-z and 0-9 only; the spec recommends at most
# 20 characters; we accept up to 64 so that no producer in the wild is refused for length.
_NAME = re.compile(r"[a-z0-9]{1,64}")
_MAX_ATTRIBUTES = 64
_MAX_ATTRIBUTE_CHARS = 4096

Extension = str | int | bool


class CloudEventError(BadInput):
    """The message claims to be a CloudEvent but is not a valid one."""


@dataclass(frozen=True, slots=True)
class CloudEvent:
    id: str
    source: str
    type: str
    data: Any = None  # a JSON value, str (text/*), bytes (anything else), or None
    datacontenttype: str | None = None
    subject: str | None = None
    time: str | None = None
    dataschema: str | None = None
    extensions: Mapping[str, Extension] = field(default_factory=dict)
    specversion: str = SPEC_VERSION

    def __post_init__(self) -> None:
        for name in _REQUIRED:
            value = getattr(self, name)
            if not isinstance(value, str) or not value:
                raise CloudEventError(f"CloudEvent attribute {name!r} must be a non-empty string")
        if self.specversion != SPEC_VERSION:
            raise CloudEventError(f"unsupported CloudEvents specversion {self.specversion!r}")
        for name in _OPTIONAL:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise CloudEventError(f"CloudEvent attribute {name!r} must be a non-empty string")
        if len(self.extensions) > _MAX_ATTRIBUTES:
            raise CloudEventError(f"more than {_MAX_ATTRIBUTES} extension attributes")
        for name, value in self.extensions.items():
            _check_name(name)
            if name in _CONTEXT or name in _RESERVED:
                raise CloudEventError(f"extension {name!r} shadows a context attribute")
            if isinstance(value, bool | int):
                continue
            if not isinstance(value, str):
                raise CloudEventError(
                    f"extension {name!r} must be a string, integer or boolean, got {type(value).__name__}"
                )
        for name in _REQUIRED + _OPTIONAL:
            value = getattr(self, name)
            if isinstance(value, str) and len(value) > _MAX_ATTRIBUTE_CHARS:
                raise CloudEventError(f"attribute {name!r} longer than {_MAX_ATTRIBUTE_CHARS}")

    def extension(self, name: str) -> Extension | None:
        return self.extensions.get(name)

    def data_json(self) -> Any:
        """``data`` as a JSON value: decoded from bytes/str when it is not one already."""
        if isinstance(self.data, bytes):
            return json.loads(self.data)
        return self.data


@dataclass(frozen=True, slots=True)
class BinaryMessage:
    """A CloudEvent as an MQTT 5 message in binary mode."""

    payload: bytes
    content_type: str | None
    user_properties: tuple[tuple[str, str], ...]


# ------------------------------------------------------------------------------- encode


def to_json_doc(event: CloudEvent) -> dict[str, Any]:
    """The JSON event format as a dict, attributes in a fixed order."""
    doc: dict[str, Any] = {
        "specversion": event.specversion,
        "id": event.id,
        "source": event.source,
        "type": event.type,
    }
    for name in _OPTIONAL:
        value = getattr(event, name)
        if value is not None:
            doc[name] = value
    for name in sorted(event.extensions):
        doc[name] = event.extensions[name]
    if isinstance(event.data, bytes):
        doc["data_base64"] = base64.b64encode(event.data).decode("ascii")
    elif event.data is not None:
        doc["data"] = event.data
    return doc


def encode_structured(event: CloudEvent) -> bytes:
    """The JSON event format, compact UTF-8 (Content Type ``STRUCTURED_CONTENT_TYPE``)."""
    try:
        text = json.dumps(
            to_json_doc(event), separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError) as exc:
        raise CloudEventError(f"CloudEvent data is not JSON: {exc}") from exc
    return text.encode("utf-8")


def encode_binary(event: CloudEvent) -> BinaryMessage:
    """MQTT 5 binary mode: data as payload, attributes as user properties."""
    data = event.data
    content_type = event.datacontenttype
    if data is None:
        payload = b""
    elif isinstance(data, bytes):
        payload = data
    elif isinstance(data, str) and content_type is not None and not _is_json(content_type):
        payload = data.encode("utf-8")
    else:
        content_type = content_type or JSON_CONTENT_TYPE
        try:
            payload = json.dumps(
                data, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise CloudEventError(f"CloudEvent data is not JSON: {exc}") from exc
    props: list[tuple[str, str]] = [
        ("specversion", event.specversion),
        ("id", event.id),
        ("source", event.source),
        ("type", event.type),
    ]
    for name in ("dataschema", "subject", "time"):
        value = getattr(event, name)
        if value is not None:
            props.append((name, value))
    for name in sorted(event.extensions):
        props.append((name, _canonical(event.extensions[name])))
    return BinaryMessage(payload, content_type, tuple(props))


# ------------------------------------------------------------------------------- decode


def decode_message(
    payload: bytes,
    content_type: str | None = None,
    user_properties: Iterable[tuple[str, str]] = (),
) -> CloudEvent | None:
    """The CloudEvent carried by an MQTT message; None if it does not claim to carry one."""
    props = list(user_properties)
    if content_type is not None and content_type.lower().startswith("application/cloudevents"):
        media = content_type.split(";", 1)[0].strip().lower()
        if media != STRUCTURED_CONTENT_TYPE:
            raise CloudEventError(f"unsupported CloudEvents event format {media!r}")
        return decode_structured(payload)
    if any(_strip_prefix(name) == "specversion" for name, _ in props):
        return decode_binary(payload, content_type, props)
    if content_type is None and payload[:1] in (b"{", b" ", b"\n", b"\t", b"\r"):
        try:
            doc = json.loads(payload)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None  # not JSON: an ordinary message
        if isinstance(doc, dict) and "specversion" in doc:
            return decode_structured(payload)  # again, strictly (duplicate keys...)
    return None


def decode_structured(payload: bytes) -> CloudEvent:
    return from_json_doc(_loads(payload))


def from_json_doc(doc: Any) -> CloudEvent:
    if not isinstance(doc, dict):
        raise CloudEventError("a structured CloudEvent is a JSON object")
    if len(doc) > _MAX_ATTRIBUTES + len(_CONTEXT) + 1:
        raise CloudEventError("too many CloudEvent attributes")
    if "data" in doc and "data_base64" in doc:
        raise CloudEventError("a CloudEvent has 'data' or 'data_base64', not both")
    fields: dict[str, Any] = {}
    extensions: dict[str, Extension] = {}
    for name, value in doc.items():
        if name in _CONTEXT:
            if not isinstance(value, str):
                raise CloudEventError(f"CloudEvent attribute {name!r} must be a string")
            fields[name] = value
        elif name == "data":
            fields["data"] = value
        elif name == "data_base64":
            if not isinstance(value, str):
                raise CloudEventError("data_base64 must be a string")
            try:
                fields["data"] = base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise CloudEventError(f"data_base64 is not base64: {exc}") from exc
        else:
            _check_name(name)
            if isinstance(value, float) or value is None or isinstance(value, dict | list):
                raise CloudEventError(f"extension {name!r} must be a string, integer or boolean")
            extensions[name] = value
    _require(fields)
    return CloudEvent(extensions=extensions, **fields)


def decode_binary(
    payload: bytes, content_type: str | None, user_properties: Iterable[tuple[str, str]]
) -> CloudEvent:
    fields: dict[str, Any] = {}
    extensions: dict[str, Extension] = {}
    count = 0
    for raw_name, value in user_properties:
        name = _strip_prefix(raw_name)
        if name is None:
            continue  # an ordinary user property, not a CloudEvents attribute
        count += 1
        if count > _MAX_ATTRIBUTES + len(_CONTEXT):
            raise CloudEventError("too many CloudEvent attributes")
        if not isinstance(value, str):
            raise CloudEventError(f"user property {raw_name!r} is not a string")
        target = fields if name in _CONTEXT else extensions
        if name in _RESERVED:
            raise CloudEventError(f"{name!r} cannot be a user property")
        if name not in _CONTEXT:
            _check_name(name)
        if name in target and target[name] != value:
            raise CloudEventError(f"attribute {name!r} given twice with different values")
        target[name] = value
    if content_type is not None:
        fields.setdefault("datacontenttype", content_type)
    _require(fields)
    ctype = fields.get("datacontenttype")
    data: Any
    if not payload:
        data = None
    elif ctype is not None and _is_json(ctype):
        data = _loads(payload)
    elif ctype is not None and ctype.lower().startswith("text/"):
        try:
            data = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CloudEventError(f"{ctype} data is not UTF-8: {exc}") from exc
    else:
        data = payload
    return CloudEvent(data=data, extensions=extensions, **fields)


# ------------------------------------------------------------------------------- helpers


def _strip_prefix(name: str) -> str | None:
    """The attribute a user property carries: ``ce_id`` and ``id`` -> ``id``; None when the
    property is not a CloudEvents attribute (upper case, dashes...)."""
    if name.startswith("ce_"):
        name = name[3:]
        if not _NAME.fullmatch(name):
            raise CloudEventError(f"bad CloudEvents attribute name {name!r}")
        return name
    return name if _NAME.fullmatch(name) else None


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise CloudEventError(
            f"bad CloudEvents attribute name {name!r} (lower-case letters and digits, 1-64)"
        )


def _require(fields: dict[str, Any]) -> None:
    missing = [name for name in _REQUIRED if name not in fields]
    if missing:
        raise CloudEventError(f"CloudEvent without {', '.join(missing)}")


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == JSON_CONTENT_TYPE or media.endswith("+json") or media == "text/json"


def _canonical(value: Extension) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for key, value in pairs:
        if key in doc:
            raise CloudEventError(f"duplicate JSON key {key!r}")
        doc[key] = value
    return doc


def _loads(payload: bytes) -> Any:
    try:
        return json.loads(payload, object_pairs_hook=_no_duplicates)
    except CloudEventError:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise CloudEventError(f"not JSON: {exc}") from exc
