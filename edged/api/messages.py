"""Request and response values exchanged between the HTTP server and the application.

Theory of operation: the server (``edged.api.http``) turns h11 events into one
immutable ``Request`` whose body has already been read in full (bounded by
``HttpLimits.max_body_bytes``), hands it to the application, and writes back
whatever the application returns:

- ``Response``: status, headers and a complete body; the server adds
  ``Content-Length`` so keep-alive works without chunking.
- ``StreamingResponse``: status, headers and an async iterator of byte chunks;
  the server sends it chunked (close-delimited for HTTP/1.0 clients).  This is
  the shape Server-Sent Events will use.

Errors use Conductor's ``ErrorResponse`` JSON shape everywhere (the server's own
400/401/413/431/503 as well as the router's mapped exceptions), so one client
decoder handles every failure: ``status``, ``code``, ``message``, ``instance``,
``retryable`` and ``validationErrors`` (a list of ``{"path", "message"}``).
"""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

JSON_CONTENT_TYPE = "application/json"
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"

# Conductor fills ErrorResponse.instance with the server id; the host name is
# what its Utils.getServerId() falls back to.  Computed once: gethostname() is a
# syscall and errors can be frequent under fuzzing or attack.
_INSTANCE = socket.gethostname()


@dataclass(frozen=True, slots=True)
class Request:
    """One complete HTTP request: the body is already read and size-checked."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: tuple[tuple[str, str], ...]
    body: bytes
    client: tuple[str, int] | None = None

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                return value
        return None

    def query_value(self, name: str) -> str | None:
        """The first value of query parameter ``name``, or None when absent."""
        values = self.query.get(name)
        return values[0] if values else None


@dataclass(frozen=True, slots=True)
class Response:
    """A complete response; the server adds Content-Length from ``body``."""

    status: int
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        for key, value in self.headers:
            if key.lower() == wanted:
                return value
        return None


@dataclass(frozen=True, slots=True)
class StreamingResponse:
    """A response whose body is produced chunk by chunk (for example SSE).

    The server iterates ``chunks`` and sends each non-empty chunk as it comes;
    when the client goes away the iteration is abandoned and the iterator's
    ``aclose()`` is called so producers can release what they hold.
    """

    status: int
    chunks: AsyncIterator[bytes]
    headers: tuple[tuple[str, str], ...] = field(default=())


AnyResponse = Response | StreamingResponse


def encode_json(obj: object) -> bytes:
    """Compact UTF-8 JSON, the encoding of every JSON body edged sends."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        # A lone surrogate (JSON allows "\ud800" in a payload and the journal keeps it)
        # has no UTF-8 form: send it escaped, which gives the client back the same string.
        return json.dumps(obj, separators=(",", ":")).encode()


def json_response(obj: object, status: int = 200) -> Response:
    return Response(status, (("content-type", JSON_CONTENT_TYPE),), encode_json(obj))


def text_response(text: str, status: int = 200) -> Response:
    return Response(status, (("content-type", TEXT_CONTENT_TYPE),), text.encode())


def empty_response(status: int = 200) -> Response:
    """What Spring sends for a ``void`` controller method: no body, no type."""
    return Response(status)


# Conductor's ApplicationException.Code names, extended with the HTTP-level
# failures the server itself produces.
ERROR_CODES: Mapping[int, str] = {
    400: "INVALID_INPUT",
    401: "UNAUTHORIZED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    408: "REQUEST_TIMEOUT",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    431: "HEADERS_TOO_LARGE",
    500: "INTERNAL_ERROR",
    503: "BACKEND_ERROR",
    507: "STORAGE_FULL",
}


def error_body(
    status: int,
    message: str,
    *,
    code: str | None = None,
    retryable: bool = False,
    validation_errors: Iterable[tuple[str, str]] = (),
) -> dict[str, Any]:
    """Conductor's ErrorResponse as a dict."""
    return {
        "status": status,
        "code": code or ERROR_CODES.get(status, "ERROR"),
        "message": message,
        "instance": _INSTANCE,
        "retryable": retryable,
        "validationErrors": [{"path": p, "message": m} for p, m in validation_errors],
    }


def error_response(
    status: int,
    message: str,
    *,
    code: str | None = None,
    retryable: bool = False,
    validation_errors: Iterable[tuple[str, str]] = (),
    headers: tuple[tuple[str, str], ...] = (),
) -> Response:
    body = error_body(
        status, message, code=code, retryable=retryable, validation_errors=validation_errors
    )
    return Response(status, (("content-type", JSON_CONTENT_TYPE), *headers), encode_json(body))
