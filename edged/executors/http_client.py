"""A small HTTP/1.1 client: h11's state machine over a Trio TCP (or TLS) stream.

Theory of operation
-------------------
`fetch(request, limits)` makes ONE request on ONE new connection
(`Connection: close`; no pooling, no redirects, no decompression: the
HTTP task asks for what it names and reports what came back).  h11 decides
what the bytes mean; this module only moves them and keeps the bounds:

- connect (DNS, TCP, TLS handshake) within `connect_timeout_s`;
- every wait for the server's bytes within `read_timeout_s` (as a Java
  socket read timeout: the time between bytes, not the whole response);
  sending the request is bounded by the same timeout;
- at most `max_response_bytes` of body and `max_header_bytes` of head.

Every failure is an `HttpFailure` whose message says which of these went
wrong (refused, unreachable, timed out connecting, timed out reading,
malformed response, too large, closed early).  h11's `RemoteProtocolError`
is the server's fault ("malformed response"); `LocalProtocolError` is ours
or the caller's (a header with a newline).  The stream is closed forcefully
on every path, so a cancel (task timeout, workflow terminated) costs nothing.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import h11
import trio

from edged.errors import EdgedError

_CHUNK = 65536
_DEFAULT_PORTS = {"http": 80, "https": 443}


class HttpFailure(EdgedError):
    """The request did not produce a complete response."""


@dataclass(frozen=True, slots=True)
class HttpLimits:
    connect_timeout_s: float = 3.0
    read_timeout_s: float = 3.0
    max_response_bytes: int = 1024 * 1024
    max_header_bytes: int = 64 * 1024


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]  # as received (original case, repeats kept)
    body: bytes


@dataclass(frozen=True, slots=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query: the request target

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == _DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def parse_url(url: str) -> _Target:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise HttpFailure(f"invalid uri {url!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise HttpFailure(f"invalid uri {url!r}: only http:// and https:// are supported")
    if not parts.hostname:
        raise HttpFailure(f"invalid uri {url!r}: no host")
    if any(c in url for c in "\r\n\t "):
        raise HttpFailure(f"invalid uri {url!r}: whitespace is not allowed")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return _Target(scheme, parts.hostname, port or _DEFAULT_PORTS[scheme], path)


async def _connect(target: _Target, limits: HttpLimits) -> trio.abc.Stream:
    where = f"{target.host}:{target.port}"
    ms = round(limits.connect_timeout_s * 1000)
    stream: trio.abc.Stream | None = None
    try:
        with trio.fail_after(limits.connect_timeout_s):
            stream = await trio.open_tcp_stream(target.host, target.port)
            if target.scheme == "https":
                tls = trio.SSLStream(
                    stream,
                    ssl.create_default_context(),
                    server_hostname=target.host,
                    https_compatible=True,
                )
                stream = tls
                await tls.do_handshake()
            return stream
    except trio.TooSlowError:
        if stream is not None:
            await trio.aclose_forcefully(stream)
        raise HttpFailure(f"connecting to {where} timed out after {ms} ms") from None
    except (OSError, trio.BrokenResourceError) as exc:
        if stream is not None:
            await trio.aclose_forcefully(stream)
        cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
        text = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
        raise HttpFailure(f"cannot connect to {where}: {text}") from None


async def fetch(request: HttpRequest, limits: HttpLimits | None = None) -> HttpResponse:
    limits = limits or HttpLimits()
    target = parse_url(request.url)
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=limits.max_header_bytes)
    headers = [("Host", target.host_header)]
    headers += [(k, v) for k, v in request.headers if k.lower() not in ("host", "content-length")]
    headers += [("Content-Length", str(len(request.body))), ("Connection", "close")]
    try:
        head = conn.send(h11.Request(method=request.method, target=target.path, headers=headers))
        out = head + (conn.send(h11.Data(data=request.body)) or b"") if request.body else head
        out += conn.send(h11.EndOfMessage()) or b""
    except h11.LocalProtocolError as exc:
        raise HttpFailure(f"cannot send this request: {exc}") from None
    stream = await _connect(target, limits)
    try:
        return await _exchange(stream, conn, out, limits)
    finally:
        await trio.aclose_forcefully(stream)


async def _exchange(
    stream: trio.abc.Stream, conn: h11.Connection, out: bytes, limits: HttpLimits
) -> HttpResponse:
    ms = round(limits.read_timeout_s * 1000)
    try:
        with trio.fail_after(limits.read_timeout_s):
            await stream.send_all(out)
    except trio.TooSlowError:
        raise HttpFailure(f"sending the request timed out after {ms} ms") from None
    except trio.BrokenResourceError:
        pass  # the server may have answered (and closed) early: read what it said
    response: h11.Response | None = None
    body = bytearray()
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            raise _malformed(exc, response, limits) from None
        if event is h11.NEED_DATA:
            try:
                with trio.fail_after(limits.read_timeout_s):
                    data = await stream.receive_some(_CHUNK)
            except trio.TooSlowError:
                raise HttpFailure(f"read timed out after {ms} ms") from None
            except trio.BrokenResourceError as exc:
                raise HttpFailure(
                    f"connection broken while reading: {exc.__cause__ or exc}"
                ) from None
            try:
                conn.receive_data(bytes(data))
            except h11.RemoteProtocolError as exc:
                raise _malformed(exc, response, limits) from None
        elif isinstance(event, h11.Response):
            response = event
        elif isinstance(event, h11.Data):
            body += event.data
            if len(body) > limits.max_response_bytes:
                raise HttpFailure(
                    f"response body exceeds {limits.max_response_bytes} bytes"
                ) from None
        elif isinstance(event, h11.EndOfMessage):
            assert response is not None
            return HttpResponse(
                status=response.status_code,
                reason=response.reason.decode("latin-1"),
                headers=[
                    (k.decode("latin-1"), v.decode("latin-1"))
                    for k, v in response.headers.raw_items()
                ],
                body=bytes(body),
            )
        elif isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            raise HttpFailure("the server closed the connection before a complete response")
        # h11.InformationalResponse (100 Continue, ...) is skipped


def _malformed(
    exc: h11.RemoteProtocolError, response: h11.Response | None, limits: HttpLimits
) -> HttpFailure:
    if exc.error_status_hint == 431:
        return HttpFailure(f"response head exceeds {limits.max_header_bytes} bytes")
    if "ConnectionClosed" in str(exc):
        when = "without answering" if response is None else "in the middle of the response"
        return HttpFailure(f"the server closed the connection {when}")
    return HttpFailure(f"malformed response: {exc}")
