"""One HTTP/1.1 connection: h11's state machine plus the bytes, deadlines and limits.

Theory of operation.  ``HttpConnection`` owns one stream and one
``h11.Connection``.  h11 decides what the bytes mean; this class only moves
bytes and enforces time and size:

- ``receive_request`` returns the next complete ``Request`` (head and body),
  or None when the client closed or stayed idle past ``idle_timeout_s``.
  The peer's mistakes raise ``Rejected`` carrying the status to answer with
  (400 malformed, 408 too slow, 413 body too large, 431 head too large).
- ``send_response`` writes a ``Response`` in a single ``send_all`` or a
  ``StreamingResponse`` chunk by chunk, and tells the caller whether the
  connection may carry another request (keep-alive) or must close.
- ``reject`` answers a ``Rejected`` with a JSON error if h11 still allows a
  response, then half-closes and drains for ``linger_timeout_s`` so the
  client can read the error before the socket goes away (closing a socket
  with unread input sends a TCP reset, which can destroy the reply in flight).

Time: the caller runs its request loop inside ``deadlines``, one cancel scope
whose deadline moves with the phase: idle, head, body and send each have one;
the application (and a stream producer between chunks) has none, since its
time is its own business.  When the deadline fires, ``timed_out()`` says what
is owed: 408 after a slow head or body, silence after an idle or stuck send.
So every wait on the peer is bounded and no peer can hold a slot forever.

A dead or stalled peer raises ``PeerGone``: the only thing left is to close.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import h11
import trio

from edged.api.messages import AnyResponse, Request, Response, StreamingResponse, error_response
from edged.errors import EdgedError

log = logging.getLogger("edged.api.http")

# Responses that never carry a body (RFC 9110 6.4.1); h11 frames them as empty.
_BODYLESS_STATUSES = frozenset({204, 304})

_INTERNAL_ERROR = error_response(500, "internal server error")


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Every bound the server keeps; the behaviour at each is in ``edged.api.http``."""

    max_connections: int = 128
    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 1024 * 1024
    idle_timeout_s: float = 60.0
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    send_timeout_s: float = 30.0
    linger_timeout_s: float = 1.0
    receive_chunk_bytes: int = 64 * 1024


class Rejected(EdgedError):
    """The peer sent something we refuse; answered with ``status`` and closed."""

    def __init__(self, status: int, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.retryable = retryable


class PeerGone(EdgedError):
    """The peer closed, reset or stopped reading; nothing more can be sent."""


class HttpConnection:
    """h11 plus one stream; see the module docstring."""

    def __init__(self, stream: trio.abc.Stream, limits: HttpLimits) -> None:
        self.stream = stream
        self.limits = limits
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
        self.head_only = False
        # One cancel scope for the connection's whole life, its deadline moved
        # per phase: far cheaper than a fresh scope around every read and write.
        # The caller runs the request loop inside it and asks ``timed_out()``.
        self.deadlines = trio.CancelScope()
        self.phase = "idle"

    def _enter_phase(self, phase: str, timeout_s: float) -> None:
        self.phase = phase
        self.deadlines.deadline = trio.current_time() + timeout_s

    def timed_out(self) -> Rejected | None:
        """After ``deadlines`` fired: the reply owed, if any (silence for idle and send)."""
        if self.deadlines.cancelled_caught and self.phase in ("head", "body"):
            return Rejected(408, f"request {self.phase} not received in time")
        return None

    async def receive_request(self, client: tuple[str, int] | None) -> Request | None:
        event = self._next_event()
        if event is h11.NEED_DATA and not self.conn.trailing_data[0]:
            # Idle keep-alive connection: silence is allowed, up to a point.
            self._enter_phase("idle", self.limits.idle_timeout_s)
            await self._receive_into_h11()
            event = self._next_event()
        if event is h11.NEED_DATA:
            # Only a head split across reads needs its own deadline; most
            # arrive whole, and every deadline change has a cost.
            self._enter_phase("head", self.limits.header_timeout_s)
            while event is h11.NEED_DATA:
                await self._receive_into_h11()
                event = self._next_event()
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):  # h11 yields only these two in IDLE
            raise Rejected(400, f"unexpected {type(event).__name__}")
        # h11 enforces max_incomplete_event_size only while a head is still
        # incomplete; a big head arriving in one read must be measured here.
        if _head_bytes(event) > self.limits.max_header_bytes:
            raise Rejected(431, "request head too large")
        if event.http_version not in (b"1.0", b"1.1"):
            raise Rejected(505, "only HTTP/1.0 and HTTP/1.1 are served")
        self.head_only = event.method == b"HEAD"
        body = await self._receive_body(event)
        # The application's own time is not bounded here.
        self.phase, self.deadlines.deadline = "app", math.inf
        return _to_request(event, body, client)

    async def send_response(self, request: Request, response: AnyResponse) -> bool:
        """Send ``response``; True when the connection can serve another request."""
        if isinstance(response, StreamingResponse):
            await self._send_stream(response)
        else:
            await self._send_full(response)
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
            return True
        return False

    async def reject(self, rejected: Rejected) -> None:
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            reply = error_response(
                rejected.status,
                rejected.message,
                retryable=rejected.retryable,
                headers=(("connection", "close"),),
            )
            # The peer may be gone, or h11 may forbid a reply now: then just close.
            # This runs outside ``deadlines``, so it brings its own time limit.
            with (
                trio.move_on_after(self.limits.send_timeout_s),
                contextlib.suppress(PeerGone, h11.LocalProtocolError),
            ):
                await self._send_full(reply)
        await self.linger_close()

    async def linger_close(self) -> None:
        try:
            with trio.move_on_after(self.limits.linger_timeout_s):
                if isinstance(self.stream, trio.abc.HalfCloseableStream):
                    await self.stream.send_eof()
                drained_bytes = 0
                budget_bytes = self.limits.max_body_bytes + self.limits.max_header_bytes
                while drained_bytes <= budget_bytes:
                    data = await self.stream.receive_some(self.limits.receive_chunk_bytes)
                    if not data:
                        break
                    drained_bytes += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(self.stream)

    async def close(self) -> None:
        await trio.aclose_forcefully(self.stream)

    # -- receiving ---------------------------------------------------------

    def _next_event(self) -> object:
        try:
            return self.conn.next_event()
        except h11.RemoteProtocolError as exc:
            status = exc.error_status_hint
            if status == 431:
                raise Rejected(431, "request head too large") from exc
            # h11's message may quote the peer's bytes: keep the echo short.
            raise Rejected(status, f"malformed request: {str(exc)[:120]}") from exc

    async def wait_peer_closed(self) -> None:
        """Return when the peer closes the connection (EOF or reset).

        For use while a response is being made (``App.watch_peer``).  Bytes
        that arrive meanwhile (a pipelined request) are handed to h11 for the
        next cycle; past ``max_header_bytes`` of them the watch stops reading.
        """
        while len(self.conn.trailing_data[0]) <= self.limits.max_header_bytes:
            try:
                data = await self.stream.receive_some(self.limits.receive_chunk_bytes)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            self.conn.receive_data(bytes(data))
        await trio.sleep_forever()

    async def _receive_into_h11(self) -> None:
        try:
            data = await self.stream.receive_some(self.limits.receive_chunk_bytes)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise PeerGone("connection lost while reading") from exc
        self.conn.receive_data(bytes(data))  # b"" tells h11 the peer closed

    async def _receive_body(self, head: h11.Request) -> bytes:
        limit = self.limits.max_body_bytes
        declared = _declared_length(head)
        if declared is not None and declared > limit:
            # Refuse before reading: the client told us the size up front.
            raise Rejected(413, f"request body of {declared} bytes exceeds {limit} bytes")
        if self.conn.client_is_waiting_for_100_continue:
            await self._send(self._emit(h11.InformationalResponse(status_code=100, headers=[])))
        body = bytearray()
        waited = False
        while True:
            event = self._next_event()
            if event is h11.NEED_DATA:
                if not waited:  # a body already in the buffer needs no deadline
                    self._enter_phase("body", self.limits.body_timeout_s)
                    waited = True
                await self._receive_into_h11()
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > limit:
                    raise Rejected(413, f"request body exceeds {limit} bytes")
            elif isinstance(event, h11.EndOfMessage):
                return bytes(body)
            else:
                raise PeerGone("connection closed inside a request body")

    # -- sending -----------------------------------------------------------

    def _emit(self, event: h11.Event) -> bytes:
        return self.conn.send(event) or b""

    async def _send(self, data: bytes, *, restore: bool = True) -> None:
        # A client that stops reading must not hold its slot: bound each write,
        # then restore the phase (a stream may idle between chunks for long).
        # A complete response skips the restore: the next phase is set anyway.
        phase, deadline = self.phase, self.deadlines.deadline
        self._enter_phase("send", self.limits.send_timeout_s)
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            raise PeerGone("connection lost while writing") from exc
        if restore:
            self.phase, self.deadlines.deadline = phase, deadline

    async def _send_full(self, response: Response) -> None:
        bodyless = response.status in _BODYLESS_STATUSES
        length = None if bodyless else len(response.body)
        head = _h11_head(response.status, response.headers, length)
        if head is None:
            response, bodyless = _INTERNAL_ERROR, False
            head = _h11_head(response.status, response.headers, len(response.body))
            assert head is not None
        data = self._emit(head)
        if response.body and not bodyless and not self.head_only:
            data += self._emit(h11.Data(data=response.body))
        data += self._emit(h11.EndOfMessage())
        # One write: head and body leave in one segment.
        await self._send(data, restore=False)

    async def _send_stream(self, response: StreamingResponse) -> None:
        chunks = response.chunks
        try:
            head = _h11_head(response.status, response.headers, None)
            if head is None:
                await self._send_full(_INTERNAL_ERROR)
                return
            await self._send(self._emit(head))
            if not self.head_only:
                try:
                    async for chunk in chunks:
                        if chunk:
                            await self._send(self._emit(h11.Data(data=chunk)))
                except PeerGone:
                    raise
                except Exception as exc:
                    # Headers are out; the only honest signal left is to end
                    # the connection without the terminating chunk.
                    log.exception("streaming response producer failed")
                    raise PeerGone("stream producer failed") from exc
            await self._send(self._emit(h11.EndOfMessage()))
        finally:
            aclose = getattr(chunks, "aclose", None)
            if aclose is not None:
                # Let the producer run its cleanup even while we are cancelled.
                with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                    await aclose()


def _h11_head(
    status: int, headers: tuple[tuple[str, str], ...], length: int | None
) -> h11.Response | None:
    """The h11 head, or None when the handler's head is malformed.

    h11 validates headers when the event is constructed, so a bad header
    (non-Latin-1 text, CR/LF, status < 200) is caught here while h11's
    connection state is still clean and a 500 can be sent instead.
    """
    try:
        raw = [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        if length is not None:
            raw = [item for item in raw if item[0].lower() != b"content-length"]
            raw.append((b"content-length", str(length).encode()))
        return h11.Response(status_code=status, headers=raw, reason=_reason(status))
    except (UnicodeEncodeError, h11.LocalProtocolError):
        log.exception("handler produced an invalid response head (status %r)", status)
        return None


def _reason(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode()
    except ValueError:  # a status the stdlib does not know: the phrase is optional
        return b""


def _head_bytes(head: h11.Request) -> int:
    # Request line and header lines as sent, give or take optional whitespace.
    line = len(head.method) + len(head.target) + len(b"  HTTP/1.1\r\n")
    return line + sum(len(n) + len(v) + 4 for n, v in head.headers) + 2


def _declared_length(head: h11.Request) -> int | None:
    for name, value in head.headers:
        if name == b"content-length":
            return int(value)  # h11 has already checked it is all digits
    return None


def _to_request(head: h11.Request, body: bytes, client: tuple[str, int] | None) -> Request:
    target = head.target.decode("latin-1")
    if target.startswith(("http://", "https://")):  # absolute-form (RFC 9112 3.2.2)
        parts = urlsplit(target)
        path, query = parts.path or "/", parts.query
    else:
        path, _, query = target.partition("?")
    return Request(
        method=head.method.decode("latin-1"),
        path=path,
        query=parse_qs(query, keep_blank_values=True),
        headers=tuple((n.decode("latin-1"), v.decode("latin-1")) for n, v in head.headers),
        body=body,
        client=client,
    )
