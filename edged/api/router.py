"""A tiny router: method + path pattern -> handler, and exceptions -> Conductor errors.

Theory of operation.  A pattern such as ``/api/workflow/{workflowId}/pause`` is
split into segments, each a literal or a ``{param}``.  A request path is split
the same way *before* percent-decoding, so an id containing ``%2F`` stays one
segment.  When several patterns match one path the most specific wins, the way
Spring picks among Conductor's controllers: segments are compared left to
right and a literal beats a parameter (so ``/api/tasks/{id}/{status}/signal``
wins over ``/api/tasks/{id}/{ref}/{status}`` for ``.../COMPLETED/signal``).
A path that matches no pattern gets 404; one that matches only under other
methods gets 405 with ``Allow``.  HEAD is served by the GET handler (the
server drops the body).

Exceptions leave handlers through ``error_for``, which follows Conductor's
ApplicationExceptionMapper and ValidationExceptionMapper (ErrorResponse JSON):

- ``BadInput`` -> 400; its ``faults`` (path, message) pairs become
  ``validationErrors``.
- ``NotFound`` -> 404, ``Conflict`` -> 409.
- ``JournalFull`` -> 507 Insufficient Storage, not retryable.  Chosen over 503
  because a full disk does not heal in seconds: clients and proxies retry a
  503 automatically, which would only hammer a full journal, while 507 says
  precisely what is wrong.  ``code`` is ``JOURNAL_FULL``.
- ``JournalError`` -> 503, retryable (a busy or failed write; nothing applied).
- anything else -> 500 with a generic message; the traceback goes to the log.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from edged.api.messages import AnyResponse, Request, Response, error_response
from edged.errors import BadInput, Conflict, JournalError, JournalFull, NotFound

log = logging.getLogger("edged.api.router")

RouteHandler = Callable[[Request, Mapping[str, str]], Awaitable[AnyResponse]]

_Segment = str | None  # a literal, or None for a parameter


@dataclass(frozen=True, slots=True)
class _Route:
    method: str
    pattern: str
    segments: tuple[_Segment, ...]
    params: tuple[str, ...]
    handler: RouteHandler

    @property
    def specificity(self) -> tuple[int, ...]:
        # Lower sorts first: 0 for a literal, 1 for a parameter, left to right.
        return tuple(0 if s is not None else 1 for s in self.segments)

    def match(self, parts: list[str]) -> dict[str, str] | None:
        values: list[str] = []
        for want, got in zip(self.segments, parts, strict=True):
            if want is None:
                if not got:
                    return None  # a parameter never matches an empty segment
                values.append(got)
            elif want != got:
                return None
        return dict(zip(self.params, values, strict=True))


def _split(path: str) -> list[str]:
    return path.split("/")[1:] if path.startswith("/") else [path]


def _compile(method: str, pattern: str, handler: RouteHandler) -> _Route:
    if not pattern.startswith("/"):
        raise ValueError(f"route pattern must start with '/': {pattern!r}")
    segments: list[_Segment] = []
    params: list[str] = []
    for part in _split(pattern):
        if part.startswith("{") and part.endswith("}"):
            params.append(part[1:-1])
            segments.append(None)
        else:
            segments.append(part)
    return _Route(method.upper(), pattern, tuple(segments), tuple(params), handler)


class Router:
    """Routes requests to handlers ``async (request, params) -> response``."""

    def __init__(self) -> None:
        # Routes grouped by segment count: a path only ever meets its own group.
        self._by_length: dict[int, list[_Route]] = {}

    def add(self, method: str, pattern: str, handler: RouteHandler) -> None:
        route = _compile(method, pattern, handler)
        group = self._by_length.setdefault(len(route.segments), [])
        for existing in group:
            if existing.method == route.method and existing.segments == route.segments:
                raise ValueError(f"duplicate route {method} {pattern}")
        group.append(route)
        group.sort(key=lambda r: r.specificity)

    def route(self, method: str, pattern: str) -> Callable[[RouteHandler], RouteHandler]:
        """Decorator form of ``add``."""

        def register(handler: RouteHandler) -> RouteHandler:
            self.add(method, pattern, handler)
            return handler

        return register

    def routes(self) -> list[tuple[str, str]]:
        return [(r.method, r.pattern) for g in self._by_length.values() for r in g]

    async def __call__(self, request: Request) -> AnyResponse:
        try:
            parts = [unquote(p, errors="strict") for p in _split(request.path)]
        except UnicodeDecodeError:
            return error_response(400, "request path is not valid UTF-8 after percent-decoding")
        method = "GET" if request.method == "HEAD" else request.method
        allowed: set[str] = set()
        for route in self._by_length.get(len(parts), ()):
            params = route.match(parts)
            if params is None:
                continue
            if route.method != method:
                allowed.add(route.method)
                continue
            try:
                return await route.handler(request, params)
            except Exception as exc:
                return error_for(exc, request)
        if allowed:
            if "GET" in allowed:
                allowed.add("HEAD")
            return error_response(
                405,
                f"method {request.method} not allowed for {request.path}",
                headers=(("allow", ", ".join(sorted(allowed))),),
            )
        return error_response(404, f"no such resource: {request.path}")


def faults_of(exc: BaseException) -> list[tuple[str, str]]:
    """The (path, message) pairs a BadInput carries in ``faults``, if any.

    Accepts pairs, ``{"path", "message"}`` dicts, or objects with ``path`` and
    ``message`` attributes, since other parts of edged build them differently.
    """
    raw = getattr(exc, "faults", None)
    if not isinstance(raw, Iterable) or isinstance(raw, str | bytes):
        return []
    faults: list[tuple[str, str]] = []
    for item in raw:
        if isinstance(item, tuple) and len(item) == 2:
            faults.append((str(item[0]), str(item[1])))
        elif isinstance(item, Mapping):
            faults.append((str(item.get("path", "")), str(item.get("message", ""))))
        else:
            faults.append((str(getattr(item, "path", "")), str(getattr(item, "message", item))))
    return faults


def error_for(exc: Exception, request: Request) -> Response:
    """Map an exception from a handler to Conductor's ErrorResponse."""
    message = str(exc) or type(exc).__name__
    if isinstance(exc, BadInput):
        faults = faults_of(exc)
        if faults and not str(exc):
            message = "Validation failed, check below errors for detail."
        return error_response(400, message, validation_errors=faults)
    if isinstance(exc, NotFound):
        return error_response(404, message)
    if isinstance(exc, Conflict):
        return error_response(409, message)
    if isinstance(exc, JournalFull):
        log.error("journal full during %s %s: %s", request.method, request.path, exc)
        return error_response(507, message, code="JOURNAL_FULL")
    if isinstance(exc, JournalError):
        log.error("journal error during %s %s: %s", request.method, request.path, exc)
        return error_response(503, message, retryable=True)
    # A bug, or an EdgedError family the API has no status for: log it all.
    log.exception("handler failed for %s %s", request.method, request.path)
    return error_response(500, "internal server error")
