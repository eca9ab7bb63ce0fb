"""Server-Sent Events: executions' history as it is journaled.

Routes (added to a Router by `add_stream_routes`):

- ``GET /api/workflow/{workflowId}/events``: one execution, from its first
  event (or after ``Last-Event-ID`` / ``?after=N``), live until its terminal
  status event, then an ``end`` event and the end of the response.  It sits
  beside Conductor's ``/api/workflow/{workflowId}`` resources because it is
  one more view of that resource.  ``?follow=false`` ends the response after
  what the journal holds now (an ``end`` event with the current status).
- ``GET /api/events[?name=WORKFLOW]``: every execution (or those of one
  workflow name), live; with ``Last-Event-ID`` / ``?after=N`` it first
  replays what the journal holds after that id.  It never ends by itself.

Each event is ``id: <journal history id>``, ``event: <kind>`` (WorkflowStarted,
TaskScheduled, TaskStatusChanged, TaskLogged, WorkflowStatusChanged, ...)
and ``data:`` one JSON object ``{"id", "workflowId", "workflowName", "atMs",
"kind", "data"}`` where ``data`` is the history body.  A comment line
(``: keep-alive``) goes out every ``keepalive_s`` of silence so proxies keep
the connection.  A client that closes its connection (EOF or reset) ends its
stream at once, however quiet: the server reads the socket while it streams
(``edged.api.http``) and cancels the body, whose ``aclose`` frees the slot.

Theory of operation: the handler subscribes to the `Feed` *before* reading
the journal.  Rows committed before the subscription are in the journal;
rows committed after it reach the subscription's buffer (the engine calls
the feed after each commit, in id order).  The stream replays the journal
page by page after the client's id, then serves the buffer, skipping ids it
already sent: no gap, no duplicate.  For one execution, when the journal says
it has ended, one more journal pass picks up rows committed between the
replay and that status read, and the stream ends.

Bounds: the feed's subscription limit (503 with ``retryable`` beyond it) and
its per-subscription buffer.  A client that reads slower than events arrive
fills its buffer and is cut off: it gets an ``cutoff`` event with the last id
it was sent and the response ends; reconnecting with that id resumes from the
journal.  The engine never waits for a stream.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

from edged.api.messages import (
    AnyResponse,
    Request,
    StreamingResponse,
    encode_json,
    error_response,
)
from edged.api.router import Router
from edged.errors import BadInput, NotFound
from edged.journal import TERMINAL_STATUSES, HistoryEvent, Journal
from edged.runtime.engine import Engine
from edged.runtime.feed import Feed, FeedEvent, FeedFull, Subscription

__all__ = ["SSE_CONTENT_TYPE", "add_stream_routes", "sse_frame"]

SSE_CONTENT_TYPE = "text/event-stream; charset=utf-8"
_HEADERS = (
    ("content-type", SSE_CONTENT_TYPE),
    ("cache-control", "no-cache"),
    ("x-accel-buffering", "no"),
)
_REPLAY_PAGE = 500
_KEEPALIVE = b": keep-alive\n\n"
_MAX_ID = 2**63 - 1


def add_stream_routes(
    router: Router,
    engine: Engine,
    *,
    buffer_events: int = 1024,
    max_clients: int = 64,
    keepalive_s: float = 15.0,
) -> Feed:
    """Serve the event streams of `engine`: a `Feed` (live) joins its listeners,
    its journal serves replays.  Keyword names match the config's ``streams:``."""
    feed = Feed(capacity=buffer_events, max_subscribers=max_clients)
    engine.listeners.append(feed)
    streams = _Streams(engine.journal, feed, keepalive_s)
    router.add("GET", "/api/workflow/{workflowId}/events", streams.execution)
    router.add("GET", "/api/events", streams.everything)
    return feed


def sse_frame(event: FeedEvent) -> bytes:
    """The event's SSE frame, encoded once however many streams send it."""
    if event.frame is None:
        event.frame = _encode_frame(event)
    return event.frame


def _encode_frame(event: FeedEvent) -> bytes:
    doc = {
        "id": event.id,
        "workflowId": event.workflow_id,
        "workflowName": event.name,
        "atMs": event.at_ms,
        "kind": event.kind,
        "data": event.body,
    }
    # encode_json never emits a raw newline, so one data line always suffices.
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        event.id,
        event.kind.encode(),
        encode_json(doc),
    )


def _control(kind: str, doc: dict[str, Any]) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (kind.encode(), encode_json(doc))


def _after_id(request: Request) -> int | None:
    raw = request.header("last-event-id")
    source = "Last-Event-ID"
    if raw is None:
        raw, source = request.query_value("after"), "after"
    if raw is None or raw.strip() == "":
        return None
    raw = raw.strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or int(raw) > _MAX_ID:
        raise BadInput(
            f"{source} must be a history event id (a non-negative integer), not {raw[:40]!r}"
        )
    return int(raw)


def _is_end(event: FeedEvent) -> bool:
    return event.kind == "WorkflowStatusChanged" and event.body.get("status") in TERMINAL_STATUSES


class _Stream:
    """The response body: closes the subscription however the response ends."""

    def __init__(self, feed: Feed, sub: Subscription, body: AsyncIterator[bytes]) -> None:
        self._feed, self._sub, self._body = feed, sub, body

    def __aiter__(self) -> _Stream:
        return self

    async def __anext__(self) -> bytes:
        return await self._body.__anext__()

    async def aclose(self) -> None:
        self._feed.close(self._sub)
        aclose = getattr(self._body, "aclose", None)
        if aclose is not None:
            await aclose()


class _Streams:
    def __init__(self, journal: Journal, feed: Feed, keepalive_s: float) -> None:
        self.journal = journal
        self.feed = feed
        self.keepalive_s = keepalive_s

    def _open(self, **which: str | None) -> Subscription | AnyResponse:
        try:
            return self.feed.open(**which)
        except FeedFull as exc:
            return error_response(503, str(exc), retryable=True, headers=(("retry-after", "5"),))

    async def execution(self, request: Request, params: Mapping[str, str]) -> AnyResponse:
        workflow_id = params["workflowId"]
        after = _after_id(request)
        if await self.journal.load_execution(workflow_id) is None:
            raise NotFound(f"No such workflow: {workflow_id}")
        sub = self._open(workflow_id=workflow_id)
        if not isinstance(sub, Subscription):
            return sub
        follow = request.query_value("follow") not in ("false", "0")
        body = self._execution_body(sub, workflow_id, after or 0, follow)
        return StreamingResponse(200, _Stream(self.feed, sub, body), _HEADERS)

    async def everything(self, request: Request, params: Mapping[str, str]) -> AnyResponse:
        name = request.query_value("name")
        if name is not None and not name:
            raise BadInput("name must not be empty")
        after = _after_id(request)
        sub = self._open(name=name)
        if not isinstance(sub, Subscription):
            return sub
        body = self._everything_body(sub, name, after)
        return StreamingResponse(200, _Stream(self.feed, sub, body), _HEADERS)

    # -- bodies --------------------------------------------------------------

    async def _replay(
        self, workflow_id: str | None, name: str | None, after: int, sent: list[int]
    ) -> AsyncIterator[bytes]:
        """Journal rows after `after`, a page per chunk; `sent[0]` tracks the last id."""
        while True:
            page = await self.journal.history_named(
                workflow_id, name, after_id=after, limit=_REPLAY_PAGE
            )
            if not page:
                return
            yield b"".join(sse_frame(_feed_event(hid, n, h)) for hid, n, h in page)
            after = sent[0] = page[-1][0]
            if len(page) < _REPLAY_PAGE:
                return

    async def _live(self, sub: Subscription, sent: list[int]) -> AsyncIterator[bytes]:
        """Buffered then live events after `sent[0]`; stops after a terminal status event."""
        while True:
            events = await sub.take(self.keepalive_s)
            if not events:
                if sub.overflowed:
                    yield _control(
                        "cutoff",
                        {
                            "reason": f"client too slow: more than {sub.capacity} events behind",
                            "lastEventId": sent[0],
                        },
                    )
                    return
                yield _KEEPALIVE
                continue
            chunk: list[bytes] = []
            for event in events:
                if event.id <= sent[0]:
                    continue  # already replayed from the journal
                chunk.append(sse_frame(event))
                sent[0] = event.id
                if sub.workflow_id is not None and _is_end(event):
                    chunk.append(_control("end", _end_doc(event.workflow_id, event.body)))
                    yield b"".join(chunk)
                    return
            if chunk:
                yield b"".join(chunk)

    async def _execution_body(
        self, sub: Subscription, workflow_id: str, after: int, follow: bool
    ) -> AsyncIterator[bytes]:
        sent = [after]
        yield b"retry: 2000\n\n"
        async for chunk in self._replay(workflow_id, None, after, sent):
            yield chunk
        found = await self.journal.load_execution(workflow_id)
        status = found[0].status if found is not None else None
        if status is None or status in TERMINAL_STATUSES or not follow:
            # rows committed between the replay and the status read
            async for chunk in self._replay(workflow_id, None, sent[0], sent):
                yield chunk
            yield _control("end", _end_doc(workflow_id, {"status": status}))
            return
        async for chunk in self._live(sub, sent):
            yield chunk

    async def _everything_body(
        self, sub: Subscription, name: str | None, after: int | None
    ) -> AsyncIterator[bytes]:
        sent = [after or 0]
        yield b"retry: 2000\n\n"
        if after is not None:
            async for chunk in self._replay(None, name, after, sent):
                yield chunk
        async for chunk in self._live(sub, sent):
            yield chunk


def _feed_event(history_id: int, name: str | None, h: HistoryEvent) -> FeedEvent:
    return FeedEvent(history_id, h.workflow_id, name, h.at_ms, h.kind, h.body)


def _end_doc(workflow_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {"workflowId": workflow_id, "status": body.get("status")}
    if body.get("reason"):
        doc["reason"] = body["reason"]
    return doc
