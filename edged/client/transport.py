"""The CLI's HTTP client: the stdlib's http.client, JSON bodies, Server-Sent Events.

Theory of operation.  `Client` sends one request per connection (no pooling:
a CLI makes a handful) with a bounded timeout, and turns every outcome into
either a decoded body or one of four exceptions the CLI maps to exit codes:

- `Unreachable`: no TCP connection, a reset, or no answer in time (exit 3);
- `ApiError` with ``status`` 404: not found (exit 4);
- `ApiError` with 400: the server refused our input (exit 2);
- `ApiError` with anything else (401, 409, 5xx...): exit 5.

Conductor's ErrorResponse ``message`` (and its ``validationErrors``) become the
error text, so the user sees the server's reason, not a status line.

`SseParser` is sans-I/O: it takes bytes as they come and returns complete
events (``id``, ``event``, ``data``), following the HTML living standard's
rules (comment lines, ``data`` lines joined with newlines, CRLF/LF/CR).
`Client.events` runs it over a streaming GET and stops when the response
ends; the caller resumes with the last id it saw.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from edged.errors import EdgedError

__all__ = ["ApiError", "Client", "SseEvent", "SseParser", "Unreachable", "path_quote"]

_MAX_BODY_BYTES = 64 * 1024 * 1024
_MAX_SSE_LINE_BYTES = 16 * 1024 * 1024


class Unreachable(EdgedError):
    """The server could not be reached or did not answer in time."""


class ApiError(EdgedError):
    """The server answered with an error status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class SseEvent:
    event: str
    data: str
    id: str | None


class SseParser:
    """Bytes in, events out (sans-I/O)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer known to hold no line end
        self._data: list[str] = []
        self._event = ""
        self._id: str | None = None
        self.last_id: str | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        buffer = self._buffer
        buffer += chunk
        events: list[SseEvent] = []
        start = 0
        while True:
            cut = _line_end(buffer, max(start, self._scanned))
            if cut is None:
                break
            end, skip = cut
            event = self._line(bytes(buffer[start:end]).decode("utf-8", errors="replace"))
            start = end + skip
            self._scanned = 0
            if event is not None:
                events.append(event)
        del buffer[:start]
        # a lone CR at the very end may still be half of a CRLF: rescan it
        self._scanned = max(0, len(buffer) - 1)
        if len(buffer) > _MAX_SSE_LINE_BYTES:
            raise ApiError(502, "event stream line too long")
        return events

    def _line(self, line: str) -> SseEvent | None:
        if not line:
            if not self._data and not self._event:
                return None
            event = SseEvent(self._event or "message", "\n".join(self._data), self._id)
            self._data, self._event = [], ""
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = self.last_id = value
        return None


def _line_end(buffer: bytearray, start: int) -> tuple[int, int] | None:
    """(index, terminator length) of the first line end from `start`; None if incomplete."""
    lf, cr = buffer.find(b"\n", start), buffer.find(b"\r", start)
    if cr == -1 or (lf != -1 and lf < cr):
        return None if lf == -1 else (lf, 1)
    if cr + 1 == len(buffer):
        return None  # a CR at the end may be half of CRLF
    return cr, 2 if buffer[cr + 1] == 0x0A else 1


def path_quote(segment: str) -> str:
    """One path segment, percent-encoded (ids with '/' stay one segment)."""
    return quote(segment, safe="")


class Client:
    def __init__(self, server: str, *, token: str | None = None, timeout_s: float = 10.0) -> None:
        parts = urlsplit(server if "://" in server else f"http://{server}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"--server {server!r}: expected http://HOST:PORT")
        self.scheme = parts.scheme
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base = parts.path.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self.server = f"{parts.scheme}://{parts.netloc}{self.base}"

    def _connection(self, timeout_s: float | None) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=timeout_s)

    def _headers(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"accept": "application/json", "user-agent": "edged-cli"}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        headers.update(extra or {})
        return headers

    def _open(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        url = self.base + path
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        data = None
        extra = dict(headers or {})
        if body is not None:
            data = json.dumps(body).encode()
            extra["content-type"] = "application/json"
        conn = self._connection(self.timeout_s if timeout_s is None else timeout_s)
        try:
            conn.request(method, url, body=data, headers=self._headers(extra))
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise Unreachable(f"cannot reach {self.server}: {_reason(exc)}") from None
        if response.status >= 400:
            try:
                raw = response.read(_MAX_BODY_BYTES)
            except (OSError, http.client.HTTPException):
                raw = b""
            conn.close()
            raise ApiError(response.status, _error_message(response.status, raw))
        return conn, response

    def call(
        self,
        method: str,
        path: str,
        *,
        query: dict[str, Any] | None = None,
        body: Any = None,
    ) -> Any:
        """The decoded JSON body (a str for text/plain, None for an empty body)."""
        conn, response = self._open(method, path, query=query, body=body)
        try:
            raw = response.read(_MAX_BODY_BYTES + 1)
        except (OSError, http.client.HTTPException) as exc:
            raise Unreachable(f"{self.server}: reply cut off: {_reason(exc)}") from None
        finally:
            conn.close()
        if len(raw) > _MAX_BODY_BYTES:
            raise ApiError(502, f"reply larger than {_MAX_BODY_BYTES} bytes")
        if not raw:
            return None
        if "json" in (response.getheader("content-type") or ""):
            try:
                return json.loads(raw)
            except ValueError:
                raise ApiError(502, "the server sent malformed JSON") from None
        return raw.decode("utf-8", errors="replace")

    def events(
        self,
        path: str,
        *,
        last_id: str | None = None,
        query: dict[str, Any] | None = None,
        read_timeout_s: float = 60.0,
    ) -> Iterator[SseEvent]:
        """Events of one SSE response until it ends.  The server sends keep-alives,
        so silence longer than `read_timeout_s` raises `Unreachable` (timed out)."""
        headers = {"accept": "text/event-stream"}
        if last_id is not None:
            headers["last-event-id"] = last_id
        conn, response = self._open(
            "GET", path, query=query, headers=headers, timeout_s=read_timeout_s
        )
        parser = SseParser()
        try:
            while True:
                try:
                    chunk = response.read1(65536)
                except (OSError, http.client.HTTPException) as exc:
                    raise Unreachable(f"{self.server}: stream broken: {_reason(exc)}") from None
                if not chunk:
                    return
                yield from parser.feed(chunk)
        finally:
            conn.close()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


def _error_message(status: int, raw: bytes) -> str:
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = None
    if isinstance(doc, dict) and isinstance(doc.get("message"), str):
        message = str(doc["message"])
        faults = doc.get("validationErrors") or []
        details = [
            f"{f.get('path')}: {f.get('message')}" if f.get("path") else str(f.get("message"))
            for f in faults
            if isinstance(f, dict)
        ]
        if details:
            message += "\n  " + "\n  ".join(details)
        return message
    text = raw.decode("utf-8", errors="replace").strip()[:200]
    return f"HTTP {status}" + (f": {text}" if text else "")
