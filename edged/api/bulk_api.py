"""Conductor's WorkflowBulkResource: pause, resume, terminate, retry, restart many workflows.

Theory of operation.  The body is a JSON array of workflow ids (at most
`MAX_BULK_IDS`, Conductor's ``MAX_REQUEST_ITEMS``; more is a 400 with
Conductor's message, and nothing is done).  Duplicate ids are acted on once.
Each id goes through the same `EngineAPI` method as the single-workflow
route, so each is durable when it succeeds; ids are processed
`BULK_CONCURRENCY` at a time, so their commits share the journal's group
commit instead of paying one fsync each in turn.

The answer is always 200 with Conductor's ``BulkResponse``:
``bulkSuccessfulResults`` (ids, in request order) and ``bulkErrorResults``
(id -> message) — one bad id never fails the others.  Only `EdgedError`
families count as per-id failures; anything else is a bug and becomes the
router's 500.  If the client goes away mid-request, ids already done stay
done (each one is its own durable op), the rest are not started.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import trio

from edged.api import shapes
from edged.api.engine_api import EngineAPI
from edged.api.messages import AnyResponse, Request, json_response
from edged.api.router import Router
from edged.api.shapes import InvalidRequest, bool_param
from edged.errors import EdgedError

Params = Mapping[str, str]
Action = Callable[[str], Awaitable[Any]]

MAX_BULK_IDS: Final = 1000
BULK_CONCURRENCY: Final = 16
MAX_ID_CHARS: Final = 1024


def add_bulk_routes(router: Router, engine: EngineAPI) -> None:
    api = _BulkApi(engine)
    router.add("PUT", "/api/workflow/bulk/pause", api.pause)
    router.add("PUT", "/api/workflow/bulk/resume", api.resume)
    router.add("POST", "/api/workflow/bulk/terminate", api.terminate)
    router.add("POST", "/api/workflow/bulk/retry", api.retry)
    router.add("POST", "/api/workflow/bulk/restart", api.restart)


def workflow_ids(body: bytes) -> list[str]:
    """The request's ids, checked, duplicates dropped (first one kept)."""
    value = shapes.parse_json(body)
    if not isinstance(value, list):
        raise InvalidRequest([("", "body must be a JSON array of workflow ids")])
    if len(value) > MAX_BULK_IDS:
        raise InvalidRequest(
            [
                (
                    "workflowIds",
                    f"Cannot process more than {MAX_BULK_IDS} workflows. Please use multiple requests.",
                )
            ]
        )
    faults = [
        (f"[{i}]", "must be a non-empty string of at most 1024 characters, valid Unicode")
        for i, item in enumerate(value)
        if not isinstance(item, str)
        or not item
        or len(item) > MAX_ID_CHARS
        or not shapes.is_unicode(item)
    ]
    if faults:
        raise InvalidRequest(faults[:20])
    return list(dict.fromkeys(value))


async def run_bulk(ids: list[str], action: Action) -> dict[str, Any]:
    """Apply ``action`` to every id, BULK_CONCURRENCY at a time; Conductor's BulkResponse."""
    errors: dict[str, str] = {}
    limiter = trio.CapacityLimiter(BULK_CONCURRENCY)

    async def one(workflow_id: str) -> None:
        async with limiter:
            try:
                await action(workflow_id)
            except EdgedError as exc:
                errors[workflow_id] = str(exc) or type(exc).__name__

    async with trio.open_nursery() as nursery:
        for workflow_id in ids:
            nursery.start_soon(one, workflow_id)
    return {
        "bulkErrorResults": {i: errors[i] for i in ids if i in errors},
        "bulkSuccessfulResults": [i for i in ids if i not in errors],
    }


class _BulkApi:
    def __init__(self, engine: EngineAPI) -> None:
        self.engine = engine

    async def _bulk(self, request: Request, action: Action) -> AnyResponse:
        return json_response(await run_bulk(workflow_ids(request.body), action))

    async def pause(self, request: Request, params: Params) -> AnyResponse:
        return await self._bulk(request, self.engine.pause)

    async def resume(self, request: Request, params: Params) -> AnyResponse:
        return await self._bulk(request, self.engine.resume)

    async def terminate(self, request: Request, params: Params) -> AnyResponse:
        reason = request.query_value("reason")

        async def terminate(workflow_id: str) -> None:
            await self.engine.terminate(workflow_id, reason)

        return await self._bulk(request, terminate)

    async def retry(self, request: Request, params: Params) -> AnyResponse:
        async def retry(workflow_id: str) -> None:
            await self.engine.retry(workflow_id, resume_subworkflow_tasks=False)

        return await self._bulk(request, retry)

    async def restart(self, request: Request, params: Params) -> AnyResponse:
        latest = bool_param(request, "useLatestDefinitions", False)

        async def restart(workflow_id: str) -> None:
            await self.engine.restart(workflow_id, use_latest_definitions=latest)

        return await self._bulk(request, restart)
