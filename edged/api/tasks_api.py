"""Conductor's worker protocol routes (TaskResource): poll, batch poll, update-v2, logs, queues.

Theory of operation.  ``add_task_routes(router, engine, workers)`` adds the
TaskResource routes that workers and their SDKs use beyond the plain task
update (which ``edged.api.conductor`` serves through ``EngineAPI``).  Each
handler reads Conductor's parameter names and defaults and answers the way
TaskResource does:

- ``GET /api/tasks/poll/{taskType}`` (``workerid``, ``domain``): one Task, or
  204 with an empty body when nothing is queued within 100 ms;
- ``GET /api/tasks/poll/batch/{taskType}`` (``count`` = 1, ``timeout`` = 100
  ms, at most 5000, ``workerid``, ``domain``): a JSON list, maybe empty;
- ``POST /api/tasks/update-v2`` (a TaskResult): applies it, then answers
  with the next task of the same type for that worker, or 204;
- ``POST /api/tasks/{taskId}/log`` (the line as the body, a JSON string or
  plain text) and ``GET /api/tasks/{taskId}/log`` (TaskExecLog list);
- ``GET /api/tasks/queue/sizes?taskType=a&taskType=b`` ({queue: size}; a
  queue name is ``taskType`` or ``domain:taskType``), ``/queue/size``
  (``taskType``, ``domain``: a number), ``/queue/all`` and
  ``/queue/all/verbose``, ``/queue/polldata?taskType=`` and
  ``/queue/polldata/all``.

The engine side (long-poll waiters, journaling a poll, domains) lives in
``edged.runtime.worker_service`` behind the ``WorkerAPI`` protocol below.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

import trio

from edged.api import shapes
from edged.api.engine_api import EngineAPI
from edged.api.messages import AnyResponse, Request, empty_response, json_response
from edged.api.router import Router
from edged.api.shapes import InvalidRequest, int_param

Params = Mapping[str, str]
JsonDict = dict[str, Any]

MAX_LOG_BYTES = 64 * 1024
SINGLE_POLL_TIMEOUT_MS = 100  # ExecutionService.POLLING_TIMEOUT_IN_MS


class WorkerAPI(Protocol):
    """What the worker routes need from the engine side (``WorkerService``)."""

    async def poll(
        self,
        task_type: str,
        *,
        worker_id: str | None,
        domain: str | None,
        count: int,
        timeout_ms: int,
    ) -> list[JsonDict]: ...

    async def check_result(self, result: JsonDict) -> None:
        """NotFound unless the result names a known workflow and task."""
        ...

    async def next_task(self, result: JsonDict) -> JsonDict | None: ...

    async def add_log(self, task_id: str, line: str) -> None: ...

    async def logs(self, task_id: str) -> list[JsonDict]: ...

    def queue_sizes(self, names: list[str]) -> dict[str, int]: ...

    def queue_size(self, task_type: str, domain: str | None) -> int: ...

    def all_queues(self) -> dict[str, int]: ...

    def all_queues_verbose(self) -> dict[str, dict[str, dict[str, int]]]: ...

    def poll_data(self, task_type: str | None) -> list[JsonDict]: ...


def add_task_routes(router: Router, engine: EngineAPI, workers: WorkerAPI) -> None:
    api = _TasksApi(engine, workers)
    for method, pattern, handler in [
        ("GET", "/api/tasks/poll/{taskType}", api.poll),
        ("GET", "/api/tasks/poll/batch/{taskType}", api.batch_poll),
        ("POST", "/api/tasks/update-v2", api.update_v2),
        ("POST", "/api/tasks/{taskId}/log", api.add_log),
        ("GET", "/api/tasks/{taskId}/log", api.logs),
        ("GET", "/api/tasks/queue/sizes", api.queue_sizes),
        ("GET", "/api/tasks/queue/size", api.queue_size),
        ("GET", "/api/tasks/queue/all", api.all_queues),
        ("GET", "/api/tasks/queue/all/verbose", api.all_queues_verbose),
        ("GET", "/api/tasks/queue/polldata", api.poll_data),
        ("GET", "/api/tasks/queue/polldata/all", api.all_poll_data),
    ]:
        router.add(method, pattern, handler)


def is_poll(request: Request) -> bool:
    """Requests that may wait (long poll): the server cancels them if the client leaves
    (``App.watch_peer``), so an abandoned poll takes no task."""
    return request.path.startswith("/api/tasks/poll/")


def _task_type(params: Params) -> str:
    task_type = params["taskType"]
    if not task_type.strip():
        raise InvalidRequest([("taskType", "must not be blank")])
    return task_type


class _TasksApi:
    def __init__(self, engine: EngineAPI, workers: WorkerAPI) -> None:
        self.engine = engine
        self.workers = workers

    async def poll(self, request: Request, params: Params) -> AnyResponse:
        tasks = await self.workers.poll(
            _task_type(params),
            worker_id=request.query_value("workerid"),
            domain=request.query_value("domain"),
            count=1,
            timeout_ms=SINGLE_POLL_TIMEOUT_MS,
        )
        return json_response(tasks[0]) if tasks else empty_response(204)

    async def batch_poll(self, request: Request, params: Params) -> AnyResponse:
        count = int_param(request, "count", 1, low=1, high=1000)
        timeout_ms = int_param(request, "timeout", SINGLE_POLL_TIMEOUT_MS, low=0, high=None)
        tasks = await self.workers.poll(
            _task_type(params),
            worker_id=request.query_value("workerid"),
            domain=request.query_value("domain"),
            count=count if count is not None else 1,
            timeout_ms=timeout_ms if timeout_ms is not None else SINGLE_POLL_TIMEOUT_MS,
        )
        return json_response(tasks)

    async def update_v2(self, request: Request, params: Params) -> AnyResponse:
        result = shapes.task_result(request.body)
        if result.get("extendLease"):
            await self.engine.update_task(result)
            return empty_response(204)
        # Checked first, then the update and the next poll go to the engine together
        # and share one group commit.  Should that commit fail, both fail: the next
        # task goes back to the head of its queue and the worker gets the error.
        await self.workers.check_result(result)
        found: list[JsonDict | None] = []

        async def next_task() -> None:
            found.append(await self.workers.next_task(result))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(next_task)
            await self.engine.update_task(result)
        nxt = found[0] if found else None
        return json_response(nxt) if nxt is not None else empty_response(204)

    async def add_log(self, request: Request, params: Params) -> AnyResponse:
        if len(request.body) > MAX_LOG_BYTES:
            raise InvalidRequest([("body", f"a log line is at most {MAX_LOG_BYTES} bytes")])
        try:
            text = request.body.decode()
        except UnicodeDecodeError:
            raise InvalidRequest([("body", "must be UTF-8 text")]) from None
        line = text
        if text.startswith('"'):  # the SDKs send the line as a JSON string
            try:
                decoded = json.loads(text)
            except ValueError:
                decoded = None
            if isinstance(decoded, str):
                line = decoded
        if not line:
            raise InvalidRequest([("body", "the log line is empty")])
        await self.workers.add_log(params["taskId"], line)
        return empty_response()

    async def logs(self, request: Request, params: Params) -> AnyResponse:
        return json_response(await self.workers.logs(params["taskId"]))

    async def queue_sizes(self, request: Request, params: Params) -> AnyResponse:
        names = [n for n in request.query.get("taskType", []) if n]
        if len(names) > 1000:
            raise InvalidRequest([("taskType", "at most 1000 task types per request")])
        return json_response(self.workers.queue_sizes(names))

    async def queue_size(self, request: Request, params: Params) -> AnyResponse:
        task_type = request.query_value("taskType")
        if not task_type:
            raise InvalidRequest([("taskType", "is required")])
        size = self.workers.queue_size(task_type, request.query_value("domain"))
        return json_response(size)

    async def all_queues(self, request: Request, params: Params) -> AnyResponse:
        return json_response(self.workers.all_queues())

    async def all_queues_verbose(self, request: Request, params: Params) -> AnyResponse:
        return json_response(self.workers.all_queues_verbose())

    async def poll_data(self, request: Request, params: Params) -> AnyResponse:
        task_type = request.query_value("taskType")
        if not task_type:
            raise InvalidRequest([("taskType", "is required")])
        return json_response(self.workers.poll_data(task_type))

    async def all_poll_data(self, request: Request, params: Params) -> AnyResponse:
        return json_response(self.workers.poll_data(None))


__all__ = ["WorkerAPI", "add_task_routes", "is_poll"]
