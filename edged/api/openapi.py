"""The OpenAPI 3 document of everything the daemon's HTTP API serves, at ``/api-docs``.

Theory of operation.  The document is data: `OPERATIONS` lists every
(method, path) with its parameters, request body and responses, written
compactly with `_op`; the schemas it names live in
``edged.api.openapi_schemas``.  Path parameters are derived from the path
pattern (strings unless an operation says otherwise), so a pattern cannot
disagree with its own parameters.

``add_openapi_routes(router)`` serves the document at ``GET /api-docs``
(Conductor's springdoc path) and ``GET /openapi.json``.  The handler looks at
the router's route table *when asked*, so routes other modules add after it
(metrics, streams, worker protocol) are seen too: any served route missing
from the document is listed under ``x-edged-undocumented`` (and logged once),
which the tests require to be empty.  The check runs in both directions in
the tests: documented operations that nothing serves are a failure as well.

The document is built once per route table (cached by the table's size) and
served as pre-encoded bytes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

from edged import __version__
from edged.api.messages import AnyResponse, Request, Response, encode_json
from edged.api.openapi_schemas import SCHEMAS
from edged.api.router import Router

log = logging.getLogger("edged.api.openapi")

JsonDict = dict[str, Any]
Params = Mapping[str, str]

_PARAM = re.compile(r"{([^}]+)}")


def _ref(name: str) -> JsonDict:
    return {"$ref": f"#/components/schemas/{name}"}


def _schema(spec: str | JsonDict) -> JsonDict:
    """``"Workflow"`` -> a $ref, ``"[Workflow]"`` -> an array of them, dicts pass through."""
    if isinstance(spec, dict):
        return spec
    if spec.startswith("[") and spec.endswith("]"):
        return {"type": "array", "items": _schema(spec[1:-1])}
    if spec in ("string", "integer", "boolean", "object"):
        return {"type": spec}
    return _ref(spec)


def q(
    name: str, kind: str | JsonDict = "string", *, required: bool = False, **extra: Any
) -> JsonDict:
    """A query parameter."""
    schema = dict(_schema(kind), **extra)
    return {"name": name, "in": "query", "required": required, "schema": schema}


_BOOL = "boolean"
_TEXT = ("text/plain", "string")
_JSON_ANY = ("application/json", "object")
_EMPTY = None
_SSE = ("text/event-stream", "string")


def _op(
    method: str,
    path: str,
    tag: str,
    summary: str,
    *,
    query: tuple[JsonDict, ...] = (),
    body: str | JsonDict | None = None,
    body_required: bool = True,
    ok: tuple[str, str | JsonDict] | None = _JSON_ANY,
    status: int = 200,
    path_types: Mapping[str, JsonDict] | None = None,
    extra_responses: Mapping[str, JsonDict] | None = None,
) -> tuple[str, str, JsonDict]:
    params: list[JsonDict] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": dict((path_types or {}).get(name, {"type": "string", "minLength": 1})),
        }
        for name in _PARAM.findall(path)
    ]
    params += list(query)
    ok_response: JsonDict = {"description": "OK"}
    if ok is not None:
        media, schema = ok
        ok_response["content"] = {media: {"schema": _schema(schema)}}
    responses: JsonDict = {str(status): ok_response}
    responses.update(extra_responses or {})
    responses["default"] = {
        "description": "Conductor's ErrorResponse (400 bad input, 404, 409, 413, 503, 507)",
        "content": {"application/json": {"schema": _ref("ErrorResponse")}},
    }
    operation: JsonDict = {
        "tags": [tag],
        "summary": summary,
        "operationId": _operation_id(method, path),
        "parameters": params,
        "responses": responses,
    }
    if body is not None:
        operation["requestBody"] = {
            "required": body_required,
            "content": {"application/json": {"schema": _schema(body)}},
        }
    return method, path, operation


def _operation_id(method: str, path: str) -> str:
    words = re.findall(r"[A-Za-z0-9]+", path.replace("{", "by_"))
    return method.lower() + "".join(w[:1].upper() + w[1:] for w in words)


_STATUS_PATH = {"status": _ref("TaskResultStatus")}
_VERSION_PATH = {"version": {"type": "integer", "format": "int32"}}
_EPOCH_MS = {"type": "integer", "format": "int64", "minimum": 0}
_SEARCH_QUERY = (
    q("start", "integer", minimum=0, default=0),
    q("size", "integer", minimum=0, maximum=1000, default=100),
    q("sort", description="field[:ASC|DESC], several joined by ';', e.g. startTime:DESC"),
    q("freeText", default="*", description="terms matched in ids, input and output"),
    q(
        "query",
        description="e.g. workflowType IN (a,b) AND status IN (RUNNING) AND startTime > 1700000000000",
    ),
)
_TASK_SEARCH_QUERY = (
    *_SEARCH_QUERY[:3],
    q(
        "freeText",
        default="*",
        description="terms matched in one task's name, reference name, type, id and reason",
    ),
    q(
        "query",
        description="execution fields (workflowType, workflowId, correlationId, version,"
        " startTime, updateTime, endTime) and task fields (taskId, taskType, taskDefName,"
        " referenceTaskName, workerId, status: the task's), one task matching all;"
        " e.g. taskDefName = send_mail AND status IN (FAILED, TIMED_OUT)",
    ),
)
_NO_CONTENT = {"204": {"description": "no such task"}}

OPERATIONS: list[tuple[str, str, JsonDict]] = [
    _op("GET", "/health", "health", "Liveness and journal health", ok=("application/json", "Health")),
    # -- MetadataResource
    _op("POST", "/api/metadata/workflow", "metadata", "Register a workflow definition",
        query=(q("overwrite", _BOOL, default=False),), body="WorkflowDef", ok=_EMPTY),
    _op("PUT", "/api/metadata/workflow", "metadata", "Create or update workflow definitions",
        body="[WorkflowDef]", ok=_EMPTY),
    _op("GET", "/api/metadata/workflow", "metadata", "Every version of every workflow definition",
        ok=("application/json", "[WorkflowDef]")),
    _op("GET", "/api/metadata/workflow/{name}", "metadata", "One workflow definition (latest by default)",
        query=(q("version", "integer", format="int32"),), ok=("application/json", "WorkflowDef")),
    _op("DELETE", "/api/metadata/workflow/{name}/{version}", "metadata", "Remove a workflow definition",
        path_types=_VERSION_PATH, ok=_EMPTY),
    _op("POST", "/api/metadata/taskdefs", "metadata", "Register task definitions",
        body="[TaskDef]", ok=_EMPTY),
    _op("PUT", "/api/metadata/taskdefs", "metadata", "Update a task definition",
        body="TaskDef", ok=_EMPTY),
    _op("GET", "/api/metadata/taskdefs", "metadata", "Every task definition",
        ok=("application/json", "[TaskDef]")),
    _op("GET", "/api/metadata/taskdefs/{tasktype}", "metadata", "One task definition",
        ok=("application/json", "TaskDef")),
    _op("DELETE", "/api/metadata/taskdefs/{tasktype}", "metadata", "Remove a task definition", ok=_EMPTY),
    # -- WorkflowResource
    _op("POST", "/api/workflow", "workflow", "Start a workflow (StartWorkflowRequest); answers its id",
        body="StartWorkflowRequest", ok=_TEXT),
    _op("POST", "/api/workflow/{name}", "workflow", "Start a workflow by name; the body is its input",
        query=(q("version", "integer", format="int32"), q("correlationId"),
               q("priority", "integer", minimum=0, maximum=99, default=0)),
        body="object", body_required=False, ok=_TEXT),
    _op("GET", "/api/workflow/{workflowId}", "workflow", "One execution",
        query=(q("includeTasks", _BOOL, default=True),), ok=("application/json", "Workflow")),
    _op("DELETE", "/api/workflow/{workflowId}", "workflow", "Terminate an execution",
        query=(q("reason"),), ok=_EMPTY),
    _op("DELETE", "/api/workflow/{workflowId}/remove", "workflow", "Remove an ended execution",
        query=(q("archiveWorkflow", _BOOL, default=True),), ok=_EMPTY),
    _op("PUT", "/api/workflow/{workflowId}/pause", "workflow", "Pause", ok=_EMPTY),
    _op("PUT", "/api/workflow/{workflowId}/resume", "workflow", "Resume", ok=_EMPTY),
    _op("POST", "/api/workflow/{workflowId}/retry", "workflow", "Retry the last failed task",
        query=(q("resumeSubworkflowTasks", _BOOL, default=False),), ok=_EMPTY, status=204),
    _op("POST", "/api/workflow/{workflowId}/restart", "workflow", "Restart from the beginning",
        query=(q("useLatestDefinitions", _BOOL, default=False),), ok=_EMPTY, status=204),
    _op("POST", "/api/workflow/{workflowId}/rerun", "workflow", "Rerun from a task",
        body="RerunWorkflowRequest", ok=_TEXT),
    _op("PUT", "/api/workflow/{workflowId}/skiptask/{taskReferenceName}", "workflow",
        "Skip a task of a running execution", body="SkipTaskRequest", body_required=False, ok=_EMPTY),
    _op("GET", "/api/workflow/{name}/correlated/{correlationId}", "workflow",
        "Executions of a workflow with a correlation id",
        query=(q("includeClosed", _BOOL, default=False), q("includeTasks", _BOOL, default=False)),
        ok=("application/json", "[Workflow]")),
    _op("GET", "/api/workflow/{workflowId}/status", "workflow", "Status summary of one execution",
        query=(q("includeOutput", _BOOL, default=False), q("includeVariables", _BOOL, default=False)),
        ok=("application/json", "WorkflowStatus")),
    _op("GET", "/api/workflow/running/{name}", "workflow", "Ids of running executions of a workflow",
        query=(q("version", "integer", format="int32", default=1), q("startTime", _EPOCH_MS),
               q("endTime", _EPOCH_MS)),
        ok=("application/json", "[string]")),
    _op("GET", "/api/workflow/search", "workflow", "Search executions (WorkflowSummary results)",
        query=_SEARCH_QUERY, ok=("application/json", "SearchResultWorkflowSummary")),
    _op("GET", "/api/workflow/search-v2", "workflow", "Search executions (Workflow results)",
        query=_SEARCH_QUERY, ok=("application/json", "SearchResultWorkflow")),
    _op("GET", "/api/workflow/search-by-tasks", "workflow",
        "Search executions by their tasks (WorkflowSummary results)",
        query=_TASK_SEARCH_QUERY, ok=("application/json", "SearchResultWorkflowSummary")),
    _op("GET", "/api/workflow/search-by-tasks-v2", "workflow",
        "Search executions by their tasks (Workflow results)",
        query=_TASK_SEARCH_QUERY, ok=("application/json", "SearchResultWorkflow")),
    # -- WorkflowBulkResource
    _op("PUT", "/api/workflow/bulk/pause", "workflow-bulk", "Pause many executions",
        body="WorkflowIds", ok=("application/json", "BulkResponse")),
    _op("PUT", "/api/workflow/bulk/resume", "workflow-bulk", "Resume many executions",
        body="WorkflowIds", ok=("application/json", "BulkResponse")),
    _op("POST", "/api/workflow/bulk/terminate", "workflow-bulk", "Terminate many executions",
        query=(q("reason"),), body="WorkflowIds", ok=("application/json", "BulkResponse")),
    _op("POST", "/api/workflow/bulk/retry", "workflow-bulk", "Retry many executions",
        body="WorkflowIds", ok=("application/json", "BulkResponse")),
    _op("POST", "/api/workflow/bulk/restart", "workflow-bulk", "Restart many executions",
        query=(q("useLatestDefinitions", _BOOL, default=False),), body="WorkflowIds",
        ok=("application/json", "BulkResponse")),
    # -- TaskResource
    _op("POST", "/api/tasks", "task", "Update a task (TaskResult); answers the task id",
        body="TaskResult", ok=_TEXT),
    _op("GET", "/api/tasks/search", "task", "Search tasks (TaskSummary results)",
        query=_TASK_SEARCH_QUERY, ok=("application/json", "SearchResultTaskSummary")),
    _op("GET", "/api/tasks/search-v2", "task", "Search tasks (Task results)",
        query=_TASK_SEARCH_QUERY, ok=("application/json", "SearchResultTask")),
    _op("GET", "/api/tasks/{taskId}", "task", "One task (204 when there is none)",
        ok=("application/json", "Task"), extra_responses=_NO_CONTENT),
    _op("POST", "/api/tasks/{workflowId}/{taskRefName}/{status}", "task",
        "Update a pending task by reference name; the body is its output",
        query=(q("workerid"),), body="object", body_required=False, path_types=_STATUS_PATH, ok=_TEXT),
    _op("POST", "/api/tasks/{workflowId}/{taskRefName}/{status}/sync", "task",
        "Update a pending task by reference name; answers the workflow",
        query=(q("workerid"),), body="object", body_required=False, path_types=_STATUS_PATH,
        ok=("application/json", "Workflow")),
    _op("POST", "/api/tasks/{workflowId}/{status}/signal", "task",
        "Complete the execution's pending WAIT/HUMAN task", body="object", body_required=False,
        path_types=_STATUS_PATH, ok=_EMPTY),
    _op("POST", "/api/tasks/{workflowId}/{status}/signal/sync", "task",
        "Complete the pending WAIT/HUMAN task; answers the workflow",
        query=(q("returnStrategy", {"type": "string", "enum": ["TARGET_WORKFLOW"]}),),
        body="object", body_required=False, path_types=_STATUS_PATH,
        ok=("application/json", "Workflow")),
    # -- worker protocol (tasks_api.py)
    _op("GET", "/api/tasks/poll/{taskType}", "task",
        "Poll one task (up to 100 ms); 204 with no body when none",
        query=(q("workerid"), q("domain")), ok=("application/json", "Task"),
        extra_responses={"204": {"description": "nothing queued"}}),
    _op("GET", "/api/tasks/poll/batch/{taskType}", "task",
        "Long poll up to `count` tasks, waiting up to `timeout` ms (at most 5000)",
        query=(q("workerid"), q("domain"), q("count", "integer", minimum=1, maximum=1000, default=1),
               q("timeout", "integer", minimum=0, maximum=5000, default=100)),
        ok=("application/json", "[Task]")),
    _op("POST", "/api/tasks/update-v2", "task",
        "Update a task; answers the next task of its type for that worker (204: none)",
        body="TaskResult", ok=("application/json", "Task"),
        extra_responses={"204": {"description": "nothing queued"}}),
    _op("POST", "/api/tasks/{taskId}/log", "task", "Add a log line to a task (the body)",
        body={"type": "string", "minLength": 1}, ok=_EMPTY),
    _op("GET", "/api/tasks/{taskId}/log", "task", "A task's log lines",
        ok=("application/json", "[TaskExecLog]")),
    _op("GET", "/api/tasks/queue/sizes", "task", "Queued tasks by queue name",
        query=(q("taskType", {"type": "array", "items": {"type": "string"}}),),
        ok=("application/json", {"type": "object", "additionalProperties": {"type": "integer"}})),
    _op("GET", "/api/tasks/queue/size", "task", "Queued tasks of one type (and domain)",
        query=(q("taskType", required=True, minLength=1), q("domain")),
        ok=("application/json", "integer")),
    _op("GET", "/api/tasks/queue/all", "task", "Every queue's size",
        ok=("application/json", {"type": "object", "additionalProperties": {"type": "integer"}})),
    _op("GET", "/api/tasks/queue/all/verbose", "task", "Every queue's size and handed-out tasks"),
    _op("GET", "/api/tasks/queue/polldata", "task", "Last poll per queue of a task type",
        query=(q("taskType", required=True, minLength=1),), ok=("application/json", "[PollData]")),
    _op("GET", "/api/tasks/queue/polldata/all", "task", "Last poll of every queue",
        ok=("application/json", "[PollData]")),
    # -- observability (metrics_api.py)
    _op("GET", "/metrics", "observability", "Prometheus metrics",
        ok=("text/plain; version=0.0.4", "string")),
    _op("GET", "/health/live", "observability", "Liveness: the event loop answers",
        ok=("application/json", "object")),
    _op("GET", "/health/ready", "observability", "Readiness: recovered, not stopping, journal writable",
        ok=("application/json", "object"),
        extra_responses={"503": {"description": "not ready (starting, stopping, journal: ...)"}}),
    # -- Server-Sent Events (streams.py)
    _op("GET", "/api/workflow/{workflowId}/events", "streams",
        "One execution's history as Server-Sent Events, live until it ends",
        query=(q("after", _EPOCH_MS), q("follow", _BOOL, default=True)),
        ok=_SSE),
    _op("GET", "/api/events", "streams", "Every execution's history as Server-Sent Events, live",
        query=(q("name", minLength=1), q("after", _EPOCH_MS)), ok=_SSE),
    # -- this document
    _op("GET", "/api-docs", "docs", "This OpenAPI document"),
    _op("GET", "/openapi.json", "docs", "This OpenAPI document"),
]  # fmt: skip


def document(extra: list[tuple[str, str, JsonDict]] | None = None) -> JsonDict:
    """The OpenAPI document of `OPERATIONS` (plus ``extra``)."""
    paths: dict[str, JsonDict] = {}
    for method, path, operation in [*OPERATIONS, *(extra or [])]:
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "edged",
            "version": __version__,
            "description": "Conductor's REST API as edged serves it, plus edged's own routes.",
        },
        "paths": paths,
        "components": {"schemas": SCHEMAS},
    }


def documented(doc: JsonDict) -> set[tuple[str, str]]:
    return {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}


def undocumented(router: Router, doc: JsonDict) -> list[str]:
    """``"METHOD /pattern"`` of every route the router serves that ``doc`` does not describe."""
    have = documented(doc)
    return sorted(f"{m} {p}" for m, p in router.routes() if (m, p) not in have)


def add_openapi_routes(router: Router) -> None:
    cache: dict[int, bytes] = {}

    async def serve(request: Request, params: Params) -> AnyResponse:
        routes = len(router.routes())
        body = cache.get(routes)
        if body is None:
            doc = document()
            missing = undocumented(router, doc)
            if missing:
                log.warning("routes missing from the OpenAPI document: %s", ", ".join(missing))
                doc["x-edged-undocumented"] = missing
            cache.clear()
            body = cache[routes] = encode_json(doc)
        return Response(200, (("content-type", "application/json"),), body)

    router.add("GET", "/api-docs", serve)
    router.add("GET", "/openapi.json", serve)
