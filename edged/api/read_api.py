"""Conductor's read routes beyond one workflow: status summary, running ids, search.

Theory of operation.  Each handler reads and checks its parameters, calls one
`EngineAPI` method and renders Conductor's shape:

- ``GET /api/workflow/{workflowId}/status`` -> ``WorkflowStatus``
  (``workflowId``, ``correlationId``, ``status``, and ``output`` /
  ``variables`` only when ``includeOutput`` / ``includeVariables`` are true).
- ``GET /api/workflow/running/{name}`` -> a JSON list of ids; ``version``
  defaults to 1 as in Conductor's controller; ``startTime`` and ``endTime``
  (epoch ms, both non-zero) switch to "started in that window, any status".
- ``GET /api/workflow/search`` -> ``SearchResult<WorkflowSummary>`` and
  ``GET /api/workflow/search-v2`` -> ``SearchResult<Workflow>``, with
  ``start`` (0), ``size`` (100), ``sort``, ``freeText`` (``*``) and
  ``query`` parsed by `edged.api.search_query` (faults are 400s naming the
  parameter and, for ``query``, the character position).
- ``GET /api/workflow/search-by-tasks`` (``WorkflowSummary``) and
  ``/search-by-tasks-v2`` (``Workflow``): the same parameters, paging and
  sort, but executions are found by their tasks: ``query`` also knows
  ``taskId``, ``taskType``, ``taskDefName``, ``referenceTaskName``,
  ``workerId`` and ``status`` (the task's), and ``freeText`` looks at task
  names, types, ids and reasons; one task must match all of them.
- ``GET /api/tasks/search`` (``TaskSummary``) and ``/api/tasks/search-v2``
  (Conductor's ``Task``): the matching tasks themselves, the same query,
  sorted by their executions' keys (then by ``seq`` within an execution).
"""

from __future__ import annotations

from collections.abc import Mapping

from edged.api.engine_api import EngineAPI
from edged.api.messages import AnyResponse, Request, json_response
from edged.api.router import Router
from edged.api.search_query import search_request
from edged.api.shapes import InvalidRequest, bool_param, int_param

Params = Mapping[str, str]

_MAX_EPOCH_MS = 2**53  # beyond any date a client means; keeps SQLite integers safe


def add_read_routes(router: Router, engine: EngineAPI) -> None:
    api = _ReadApi(engine)
    router.add("GET", "/api/workflow/{workflowId}/status", api.status)
    router.add("GET", "/api/workflow/running/{name}", api.running)
    router.add("GET", "/api/workflow/search", api.search)
    router.add("GET", "/api/workflow/search-v2", api.search_v2)
    router.add("GET", "/api/workflow/search-by-tasks", api.search_by_tasks)
    router.add("GET", "/api/workflow/search-by-tasks-v2", api.search_by_tasks_v2)
    router.add("GET", "/api/tasks/search", api.search_tasks)
    router.add("GET", "/api/tasks/search-v2", api.search_tasks_v2)


def epoch_ms_param(request: Request, name: str) -> int | None:
    """A ``Long`` query parameter holding epoch milliseconds (None when absent)."""
    value = request.query_value(name)
    if value is None or value.strip() == "":
        return None
    text = value.strip()
    digits = text[1:] if text[:1] in ("-", "+") else text
    if not (digits.isascii() and digits.isdecimal()) or len(digits) > 19:
        raise InvalidRequest([(name, f"must be epoch milliseconds, not {value!r}")])
    number = int(text)
    if not 0 <= number <= _MAX_EPOCH_MS:
        raise InvalidRequest([(name, f"must be between 0 and {_MAX_EPOCH_MS}, not {number}")])
    return number


class _ReadApi:
    def __init__(self, engine: EngineAPI) -> None:
        self.engine = engine

    async def status(self, request: Request, params: Params) -> AnyResponse:
        include_output = bool_param(request, "includeOutput", False)
        include_variables = bool_param(request, "includeVariables", False)
        wf = await self.engine.get_workflow(params["workflowId"], include_tasks=False)
        return json_response(
            {
                "workflowId": wf.get("workflowId"),
                "correlationId": wf.get("correlationId"),
                "output": wf.get("output") if include_output else None,
                "variables": wf.get("variables") if include_variables else None,
                "status": wf.get("status"),
            }
        )

    async def running(self, request: Request, params: Params) -> AnyResponse:
        version = int_param(request, "version", 1)
        assert version is not None
        start_ms = epoch_ms_param(request, "startTime")
        end_ms = epoch_ms_param(request, "endTime")
        ids = await self.engine.running_workflow_ids(params["name"], version, start_ms, end_ms)
        return json_response(ids)

    async def _search(
        self, request: Request, *, full: bool, by_tasks: bool = False, per_task: bool = False
    ) -> AnyResponse:
        start = int_param(request, "start", 0)
        size = int_param(request, "size", 100)
        assert start is not None and size is not None
        query = search_request(
            query=request.query_value("query"),
            free_text=request.query_value("freeText"),
            sort=list(request.query.get("sort", [])),
            start=start,
            size=size,
            by_tasks=by_tasks,
            per_task=per_task,
        )
        return json_response(await self.engine.search_workflows(query, full=full))

    async def search(self, request: Request, params: Params) -> AnyResponse:
        return await self._search(request, full=False)

    async def search_v2(self, request: Request, params: Params) -> AnyResponse:
        return await self._search(request, full=True)

    async def search_by_tasks(self, request: Request, params: Params) -> AnyResponse:
        return await self._search(request, full=False, by_tasks=True)

    async def search_by_tasks_v2(self, request: Request, params: Params) -> AnyResponse:
        return await self._search(request, full=True, by_tasks=True)

    async def search_tasks(self, request: Request, params: Params) -> AnyResponse:
        return await self._search(request, full=False, per_task=True)

    async def search_tasks_v2(self, request: Request, params: Params) -> AnyResponse:
        return await self._search(request, full=True, per_task=True)
