"""A small HTTP/1.1 server: h11 for the protocol, Trio for the bytes.

Theory of operation.  ``serve_http`` binds the listeners, reports the bound
(host, port) through ``task_status`` and runs one accept loop per listener;
every accepted connection gets one task in the server's nursery, so cancelling
``serve_http`` cancels every connection with it (each closes its socket on the
way out).  A connection loops over one request/response cycle at a time:

1. **idle**: wait up to ``idle_timeout_s`` for the first byte of the next
   request (keep-alive).  Silence closes the connection without a word.
2. **head**: from the first byte, the whole request head must arrive within
   ``header_timeout_s`` (slowloris) and fit in ``max_header_bytes`` (h11's
   ``max_incomplete_event_size``; 431 otherwise).
3. **body**: a declared Content-Length above ``max_body_bytes`` is refused
   with 413 before a byte of body is read; chunked bodies are counted while they
   stream and refused the moment they pass the limit.  The body must arrive
   within ``body_timeout_s``.
4. **respond**: the application gets one complete ``Request`` and returns a
   ``Response`` (sent with Content-Length, in one write) or a
   ``StreamingResponse`` (chunked; sent while the connection is watched, so
   the peer closing it ends the stream at once).  An exception from the application is
   logged and becomes a generic 500: tracebacks never reach the client.
5. **next**: when both sides are DONE and neither asked to close, h11 starts
   the next cycle; pipelined requests already in h11's buffer are served in
   order without another read.

"The peer did it wrong" (malformed request, oversized, too slow) gets a JSON
error with ``Connection: close``; then we half-close and drain briefly
(lingering close) so the client reads the error instead of a TCP reset.
"We did it wrong" inside a connection is logged and ends only that connection.
Above ``max_connections`` a new connection gets 503 and is closed: the stated
behaviour at the limit is "reject new", so clients learn it at once.
"""

from __future__ import annotations

import bisect
import errno
import hmac
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import trio

from edged.api.messages import AnyResponse, Request, StreamingResponse, error_response
from edged.api.wire import HttpConnection, HttpLimits, PeerGone, Rejected

log = logging.getLogger("edged.api.http")

Handler = Callable[[Request], Awaitable[AnyResponse]]

# accept() fails with these when the process or the kernel is out of
# descriptors or buffers; back off instead of spinning or crashing.
_ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.ENOBUFS})
_ACCEPT_BACKOFF_S = 0.1

# Upper bounds (s) of the request-latency buckets in HttpStatistics (/metrics).
LATENCY_BOUNDS_S: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip

# At most one "request rejected" log line per interval (the rest are counted).
_REJECT_LOG_INTERVAL_S = 10.0

# Served without the bearer token (GET/HEAD only).
_OPEN_PATHS = frozenset({"/health", "/health/live"})


@dataclass(slots=True)
class HttpStatistics:
    """Counters since the App was made; ``App.statistics()`` returns a copy."""

    connections_open: int = 0
    connections_accepted: int = 0
    connections_refused: int = 0
    requests: int = 0
    rejected_requests: int = 0
    unauthorized: int = 0
    app_errors: int = 0
    responses: dict[int, int] = field(default_factory=dict)  # status code -> responses sent
    # Time from a complete request to its response being ready (a stream's body and
    # the send not included), per bucket of LATENCY_BOUNDS_S (then +Inf), and in total.
    latency_counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BOUNDS_S) + 1))
    latency_sum_s: float = 0.0


@dataclass(slots=True)
class App:
    """What the server serves: a request handler and an optional bearer token.

    When ``auth_token`` is set, every request except ``GET``/``HEAD`` of
    ``/health`` and ``/health/live`` (probes that reveal no more than a TCP
    connect does; see ``edged.api.metrics_api``) must carry ``Authorization:
    Bearer <token>`` (or Orkes' ``X-Authorization: <token>``); others get a
    401 JSON error with ``WWW-Authenticate``.  Tokens are compared in constant
    time.
    """

    handler: Handler
    auth_token: str | None = None
    stats: HttpStatistics = field(default_factory=HttpStatistics)
    # Requests that may wait long before answering (a long poll): while their
    # handler runs the connection is watched, and the peer closing it cancels
    # the handler (so a waiter goes away with its client).  Off by default:
    # the watch costs a task per request.
    watch_peer: Callable[[Request], bool] | None = None

    def statistics(self) -> HttpStatistics:
        stats = self.stats
        return replace(
            stats, responses=dict(stats.responses), latency_counts=list(stats.latency_counts)
        )

    def is_authorized(self, request: Request) -> bool:
        if self.auth_token is None:
            return True
        if request.path in _OPEN_PATHS and request.method in ("GET", "HEAD"):
            return True
        expected = self.auth_token.encode()
        supplied = request.header("authorization")
        if supplied is not None:
            scheme, _, token = supplied.partition(" ")
            # compare_digest: the time taken must not reveal how much of a guess matched.
            return scheme.lower() == "bearer" and hmac.compare_digest(
                token.strip().encode(), expected
            )
        # Orkes SDKs send the bare token in X-Authorization; accept it too so
        # they work unchanged.
        orkes = request.header("x-authorization")
        return orkes is not None and hmac.compare_digest(orkes.strip().encode(), expected)


async def serve_http(
    app: App,
    host: str,
    port: int,
    *,
    limits: HttpLimits = HttpLimits(),  # noqa: B008 - frozen, so sharing it is safe
    task_status: trio.TaskStatus[tuple[str, int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on host:port until cancelled; reports the bound (host, port).

    ``port=0`` picks a free port.  ``host`` may be an IPv4 or IPv6 literal or a
    name; a name resolving to several addresses gets one listener per address
    (with ``port=0`` each may get a different port; the first is reported).
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()
    server = _Server(app, limits)
    async with trio.open_nursery() as nursery:
        for listener in listeners:
            nursery.start_soon(server.accept_loop, listener)
        task_status.started((str(bound[0]), int(bound[1])))


async def serve_http_connection(
    app: App,
    stream: trio.abc.Stream,
    *,
    limits: HttpLimits = HttpLimits(),  # noqa: B008 - frozen, so sharing it is safe
    client: tuple[str, int] | None = None,
) -> None:
    """Serve one already-accepted connection until it closes (for tests and tunnels)."""
    await _Server(app, limits).serve_connection(stream, client)


class _Server:
    def __init__(self, app: App, limits: HttpLimits) -> None:
        self.app = app
        self.limits = limits
        self.refusing = 0
        # Rejections are logged at most once per interval (with how many were
        # not): a hostile peer must not be able to fill an SD card with logs.
        self.reject_log_at = -math.inf
        self.rejects_unlogged = 0

    async def accept_loop(self, listener: trio.SocketListener) -> None:
        stats = self.app.stats
        async with listener, trio.open_nursery() as nursery:
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    if exc.errno not in _ACCEPT_CAPACITY_ERRNOS:
                        raise
                    log.warning("accept failed (%s); backing off", errno.errorcode[exc.errno])
                    await trio.sleep(_ACCEPT_BACKOFF_S)
                    continue
                client = _peer_of(stream)
                if stats.connections_open >= self.limits.max_connections:
                    stats.connections_refused += 1
                    nursery.start_soon(self.refuse, stream)
                    continue
                stats.connections_open += 1
                stats.connections_accepted += 1
                nursery.start_soon(self.serve_counted, stream, client)

    async def serve_counted(
        self, stream: trio.SocketStream, client: tuple[str, int] | None
    ) -> None:
        try:
            await self.serve_connection(stream, client)
        finally:
            self.app.stats.connections_open -= 1

    async def refuse(self, stream: trio.SocketStream) -> None:
        # Refusals are bounded too: past the limit, drop without a reply.
        if self.refusing >= self.limits.max_connections:
            await trio.aclose_forcefully(stream)
            return
        self.refusing += 1
        try:
            wire = HttpConnection(stream, self.limits)
            await wire.reject(Rejected(503, "too many connections", retryable=True))
        finally:
            self.refusing -= 1

    async def serve_connection(
        self, stream: trio.abc.Stream, client: tuple[str, int] | None
    ) -> None:
        wire = HttpConnection(stream, self.limits)
        try:
            with wire.deadlines:
                while True:
                    request = await wire.receive_request(client)
                    if request is None:
                        break
                    stats = self.app.stats
                    stats.requests += 1
                    started = time.perf_counter()
                    if self.app.watch_peer is not None and self.app.watch_peer(request):
                        response = await self.respond_watching(wire, request)
                    else:
                        response = await self.respond(request)
                    status = response.status
                    stats.responses[status] = stats.responses.get(status, 0) + 1
                    elapsed_s = time.perf_counter() - started
                    stats.latency_counts[bisect.bisect_left(LATENCY_BOUNDS_S, elapsed_s)] += 1
                    stats.latency_sum_s += elapsed_s
                    if log.isEnabledFor(logging.DEBUG):
                        _log_request(request, status, elapsed_s)
                    if isinstance(response, StreamingResponse):
                        sent = await self.stream_watching(wire, request, response)
                    else:
                        sent = await wire.send_response(request, response)
                    if not sent:
                        break
            if (timeout := wire.timed_out()) is not None:
                raise timeout
        except Rejected as rejected:
            stats = self.app.stats
            stats.rejected_requests += 1
            stats.responses[rejected.status] = stats.responses.get(rejected.status, 0) + 1
            self.log_rejection(rejected, client)
            await wire.reject(rejected)
        except PeerGone:
            pass
        except Exception:
            # A bug of ours: end this connection, keep the server.
            log.exception("HTTP connection from %s failed", client)
        finally:
            # Also on cancellation (server shutdown): the socket never leaks.
            await wire.close()

    async def respond_watching(self, wire: HttpConnection, request: Request) -> AnyResponse:
        """``respond``, cancelled if the peer closes the connection meanwhile."""
        response: AnyResponse | None = None
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                await wire.wait_peer_closed()
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            response = await self.respond(request)
            nursery.cancel_scope.cancel()
        if response is None:
            raise PeerGone("client closed the connection while its request was served")
        return response

    async def stream_watching(
        self, wire: HttpConnection, request: Request, response: StreamingResponse
    ) -> bool:
        """Send a streaming response, ended as soon as the peer closes the connection.

        A stream may idle for long between chunks (SSE): without the watch a
        vanished client would hold its producer (an SSE subscriber slot) until
        a write failed.  Cancelling the send runs the producer's ``aclose``.
        """
        sent: bool | None = None
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                await wire.wait_peer_closed()
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            sent = await wire.send_response(request, response)
            nursery.cancel_scope.cancel()
        if sent is None:
            raise PeerGone("client closed the connection during a streaming response")
        return sent

    def log_rejection(self, rejected: Rejected, client: tuple[str, int] | None) -> None:
        now = time.monotonic()
        if now - self.reject_log_at < _REJECT_LOG_INTERVAL_S:
            self.rejects_unlogged += 1
            return
        self.reject_log_at = now
        fields = {"client": _client_text(client), "status": rejected.status}
        fields["reason"] = rejected.message
        fields["not_logged_before"] = self.rejects_unlogged
        self.rejects_unlogged = 0
        log.info("request rejected", extra={"fields": fields})

    async def respond(self, request: Request) -> AnyResponse:
        if not self.app.is_authorized(request):
            self.app.stats.unauthorized += 1
            return error_response(
                401,
                "missing or wrong bearer token",
                headers=(("www-authenticate", 'Bearer realm="edged"'),),
            )
        try:
            return await self.app.handler(request)
        except Exception:
            self.app.stats.app_errors += 1
            log.exception("handler failed for %s %s", request.method, request.path)
            return error_response(500, "internal server error")


def _client_text(client: tuple[str, int] | None) -> str:
    return f"{client[0]}:{client[1]}" if client else "-"


def _log_request(request: Request, status: int, elapsed_s: float) -> None:
    # Debug level: one line per request is too much for an SD card at info.
    log.debug(
        "request",
        extra={
            "fields": {
                "method": request.method,
                "path": request.path,
                "status": status,
                "duration_ms": round(elapsed_s * 1000, 3),
                "client": _client_text(request.client),
            }
        },
    )


def _peer_of(stream: trio.SocketStream) -> tuple[str, int] | None:
    try:
        peer = stream.socket.getpeername()
    except OSError:  # the peer already left
        return None
    return (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None


__all__ = [
    "LATENCY_BOUNDS_S",
    "App",
    "Handler",
    "HttpLimits",
    "HttpStatistics",
    "serve_http",
    "serve_http_connection",
]
