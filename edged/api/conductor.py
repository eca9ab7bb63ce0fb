"""Conductor's REST API on top of ``EngineAPI``: paths, parameters, status codes, media types.

Theory of operation.  ``conductor_routes(engine)`` returns a ``Router`` whose
handlers each do three things: read path and query parameters and the body
(through ``edged.api.shapes``, which raises 400s with paths), call one engine
method, and render the result the way conductor-oss's
``rest/.../controllers/*Resource.java`` does:

- a ``void`` controller method answers 200 with an empty body, except
  ``retry`` and ``restart`` which answer 204 (kept by Conductor for 2.x
  clients);
- methods declared ``produces = TEXT_PLAIN`` (start, rerun, task update)
  answer the id as ``text/plain``;
- ``GET /api/tasks/{taskId}`` answers 204 with no body when there is no such
  task (Conductor's 2.x compatibility), not 404;
- query parameters keep Conductor's names and defaults (``includeTasks``
  defaults to true for one workflow and false for correlated lists).

Beyond conductor-oss, two Orkes additions that SDKs use: ``overwrite`` on
``POST /api/metadata/workflow`` and ``/api/tasks/{workflowId}/{status}/signal``
(async: 200, empty) with ``/signal/sync`` (the workflow as JSON; only the
``TARGET_WORKFLOW`` return strategy is supported).
"""

from __future__ import annotations

from collections.abc import Mapping

from edged.api import shapes
from edged.api.bulk_api import add_bulk_routes
from edged.api.engine_api import EngineAPI
from edged.api.messages import AnyResponse, Request, empty_response, json_response, text_response
from edged.api.openapi import add_openapi_routes
from edged.api.read_api import add_read_routes
from edged.api.router import Router
from edged.api.shapes import InvalidRequest, bool_param, int_param
from edged.errors import NotFound

Params = Mapping[str, str]

_SIGNAL_RETURN_STRATEGIES = frozenset({"TARGET_WORKFLOW"})


def conductor_routes(engine: EngineAPI) -> Router:
    """A Router serving Conductor's REST API (and ``/health``) from ``engine``."""
    api = _ConductorApi(engine)
    router = Router()
    routes = [
        ("GET", "/health", api.health),
        # MetadataResource
        ("POST", "/api/metadata/workflow", api.create_workflow_def),
        ("PUT", "/api/metadata/workflow", api.update_workflow_defs),
        ("GET", "/api/metadata/workflow", api.list_workflow_defs),
        ("GET", "/api/metadata/workflow/{name}", api.get_workflow_def),
        ("DELETE", "/api/metadata/workflow/{name}/{version}", api.delete_workflow_def),
        ("POST", "/api/metadata/taskdefs", api.create_task_defs),
        ("PUT", "/api/metadata/taskdefs", api.update_task_def),
        ("GET", "/api/metadata/taskdefs", api.list_task_defs),
        ("GET", "/api/metadata/taskdefs/{tasktype}", api.get_task_def),
        ("DELETE", "/api/metadata/taskdefs/{tasktype}", api.delete_task_def),
        # WorkflowResource
        ("POST", "/api/workflow", api.start_workflow),
        ("POST", "/api/workflow/{name}", api.start_workflow_by_name),
        ("GET", "/api/workflow/{workflowId}", api.get_workflow),
        ("DELETE", "/api/workflow/{workflowId}", api.terminate),
        ("DELETE", "/api/workflow/{workflowId}/remove", api.remove_workflow),
        ("PUT", "/api/workflow/{workflowId}/pause", api.pause),
        ("PUT", "/api/workflow/{workflowId}/resume", api.resume),
        ("POST", "/api/workflow/{workflowId}/retry", api.retry),
        ("POST", "/api/workflow/{workflowId}/restart", api.restart),
        ("POST", "/api/workflow/{workflowId}/rerun", api.rerun),
        ("PUT", "/api/workflow/{workflowId}/skiptask/{taskReferenceName}", api.skip_task),
        ("GET", "/api/workflow/{name}/correlated/{correlationId}", api.find_correlated),
        # TaskResource
        ("POST", "/api/tasks", api.update_task),
        ("GET", "/api/tasks/{taskId}", api.get_task),
        ("POST", "/api/tasks/{workflowId}/{taskRefName}/{status}", api.update_task_by_ref),
        (
            "POST",
            "/api/tasks/{workflowId}/{taskRefName}/{status}/sync",
            api.update_task_by_ref_sync,
        ),
        ("POST", "/api/tasks/{workflowId}/{status}/signal", api.signal),
        ("POST", "/api/tasks/{workflowId}/{status}/signal/sync", api.signal_sync),
    ]
    for method, pattern, handler in routes:
        router.add(method, pattern, handler)
    add_read_routes(router, engine)  # status, running, search (read_api.py)
    add_bulk_routes(router, engine)  # WorkflowBulkResource (bulk_api.py)
    add_openapi_routes(router)  # /api-docs, /openapi.json (openapi.py)
    return router


class _ConductorApi:
    def __init__(self, engine: EngineAPI) -> None:
        self.engine = engine

    async def health(self, request: Request, params: Params) -> AnyResponse:
        report = await self.engine.health()
        return json_response(report, 200 if report.get("healthy") else 503)

    # -- metadata ----------------------------------------------------------

    async def create_workflow_def(self, request: Request, params: Params) -> AnyResponse:
        definition = shapes.json_object(request.body)
        overwrite = bool_param(request, "overwrite", False)
        await self.engine.register_workflow_defs([definition], overwrite=overwrite)
        return empty_response()

    async def update_workflow_defs(self, request: Request, params: Params) -> AnyResponse:
        definitions = shapes.json_object_list(request.body)
        await self.engine.register_workflow_defs(definitions, overwrite=True)
        return empty_response()

    async def list_workflow_defs(self, request: Request, params: Params) -> AnyResponse:
        return json_response(await self.engine.list_workflow_defs())

    async def get_workflow_def(self, request: Request, params: Params) -> AnyResponse:
        version = int_param(request, "version", None)
        return json_response(await self.engine.get_workflow_def(params["name"], version))

    async def delete_workflow_def(self, request: Request, params: Params) -> AnyResponse:
        version = shapes.int_value("version", params["version"])
        await self.engine.delete_workflow_def(params["name"], version)
        return empty_response()

    async def create_task_defs(self, request: Request, params: Params) -> AnyResponse:
        await self.engine.register_task_defs(shapes.json_object_list(request.body))
        return empty_response()

    async def update_task_def(self, request: Request, params: Params) -> AnyResponse:
        await self.engine.register_task_defs([shapes.json_object(request.body)])
        return empty_response()

    async def list_task_defs(self, request: Request, params: Params) -> AnyResponse:
        return json_response(await self.engine.list_task_defs())

    async def get_task_def(self, request: Request, params: Params) -> AnyResponse:
        return json_response(await self.engine.get_task_def(params["tasktype"]))

    async def delete_task_def(self, request: Request, params: Params) -> AnyResponse:
        await self.engine.delete_task_def(params["tasktype"])
        return empty_response()

    # -- workflows ---------------------------------------------------------

    async def start_workflow(self, request: Request, params: Params) -> AnyResponse:
        start = shapes.start_workflow_request(request.body)
        return text_response(await self.engine.start_workflow(start))

    async def start_workflow_by_name(self, request: Request, params: Params) -> AnyResponse:
        # Conductor folds the path and query into a StartWorkflowRequest; so do we.
        start = {
            "name": params["name"],
            "version": int_param(request, "version", None),
            "correlationId": request.query_value("correlationId"),
            "input": shapes.json_object(request.body, default={}),
            "taskToDomain": {},
            "workflowDef": None,
            "priority": int_param(request, "priority", 0, low=0, high=99),
            "idempotencyKey": None,
            "idempotencyStrategy": None,
        }
        return text_response(await self.engine.start_workflow(start))

    async def get_workflow(self, request: Request, params: Params) -> AnyResponse:
        include_tasks = bool_param(request, "includeTasks", True)
        workflow = await self.engine.get_workflow(params["workflowId"], include_tasks=include_tasks)
        return json_response(workflow)

    async def terminate(self, request: Request, params: Params) -> AnyResponse:
        await self.engine.terminate(params["workflowId"], request.query_value("reason"))
        return empty_response()

    async def remove_workflow(self, request: Request, params: Params) -> AnyResponse:
        # archiveWorkflow is accepted for compatibility; edged has no archive.
        bool_param(request, "archiveWorkflow", True)
        await self.engine.remove_workflow(params["workflowId"])
        return empty_response()

    async def pause(self, request: Request, params: Params) -> AnyResponse:
        await self.engine.pause(params["workflowId"])
        return empty_response()

    async def resume(self, request: Request, params: Params) -> AnyResponse:
        await self.engine.resume(params["workflowId"])
        return empty_response()

    async def retry(self, request: Request, params: Params) -> AnyResponse:
        resume = bool_param(request, "resumeSubworkflowTasks", False)
        await self.engine.retry(params["workflowId"], resume_subworkflow_tasks=resume)
        return empty_response(204)

    async def restart(self, request: Request, params: Params) -> AnyResponse:
        latest = bool_param(request, "useLatestDefinitions", False)
        await self.engine.restart(params["workflowId"], use_latest_definitions=latest)
        return empty_response(204)

    async def rerun(self, request: Request, params: Params) -> AnyResponse:
        rerun = shapes.rerun_request(request.body)
        return text_response(await self.engine.rerun(params["workflowId"], rerun))

    async def skip_task(self, request: Request, params: Params) -> AnyResponse:
        skip = shapes.skip_task_request(request.body)
        await self.engine.skip_task(params["workflowId"], params["taskReferenceName"], skip)
        return empty_response()

    async def find_correlated(self, request: Request, params: Params) -> AnyResponse:
        workflows = await self.engine.find_correlated(
            params["name"],
            params["correlationId"],
            include_closed=bool_param(request, "includeClosed", False),
            include_tasks=bool_param(request, "includeTasks", False),
        )
        return json_response(workflows)

    # -- tasks -------------------------------------------------------------

    async def update_task(self, request: Request, params: Params) -> AnyResponse:
        result = shapes.task_result(request.body)
        await self.engine.update_task(result)
        return text_response(str(result["taskId"]))

    async def get_task(self, request: Request, params: Params) -> AnyResponse:
        try:
            task = await self.engine.get_task(params["taskId"])
        except NotFound:
            return empty_response(204)  # Conductor's answer for "no such task"
        return json_response(task)

    async def _update_by_ref(self, request: Request, params: Params) -> str | None:
        status = shapes.task_status(params["status"])
        output = shapes.json_object(request.body, default={})
        return await self.engine.complete_task_by_ref(
            params["workflowId"],
            params["taskRefName"],
            status,
            output,
            request.query_value("workerid"),
        )

    async def update_task_by_ref(self, request: Request, params: Params) -> AnyResponse:
        task_id = await self._update_by_ref(request, params)
        return text_response(task_id or "")

    async def update_task_by_ref_sync(self, request: Request, params: Params) -> AnyResponse:
        await self._update_by_ref(request, params)
        workflow = await self.engine.get_workflow(params["workflowId"], include_tasks=True)
        return json_response(workflow)

    async def signal(self, request: Request, params: Params) -> AnyResponse:
        status = shapes.task_status(params["status"])
        output = shapes.json_object(request.body, default={})
        await self.engine.signal(params["workflowId"], status, output)
        return empty_response()

    async def signal_sync(self, request: Request, params: Params) -> AnyResponse:
        strategy = request.query_value("returnStrategy") or "TARGET_WORKFLOW"
        if strategy not in _SIGNAL_RETURN_STRATEGIES:
            raise InvalidRequest(
                [("returnStrategy", f"{strategy!r} is not supported; use TARGET_WORKFLOW")]
            )
        status = shapes.task_status(params["status"])
        output = shapes.json_object(request.body, default={})
        workflow = await self.engine.signal(params["workflowId"], status, output)
        if workflow is None:
            workflow = await self.engine.get_workflow(params["workflowId"], include_tasks=True)
        return json_response(workflow)
