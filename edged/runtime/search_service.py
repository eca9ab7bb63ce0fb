"""Search and listing of executions for the API: journal rows -> Conductor's result shapes.

Theory of operation.  Searches read the journal (a read connection in a
worker thread, `Journal.search_executions`), never the engine's in-memory
maps: the journal holds every committed execution, live or long finished,
and a reply never shows state that is not durable yet.  Rows become
Conductor's ``WorkflowSummary`` (``/search``) or ``Workflow`` without tasks
(``/search-v2``) here; the task search's (``/api/tasks/search[-v2]``) tasks
become ``TaskSummary`` or Conductor's ``Task``.

``WorkflowSummary`` follows Conductor's constructor: times as
``yyyy-MM-ddTHH:mm:ss.SSSZ`` strings in UTC, ``input``/``output`` as JSON
text (Conductor's ``summary-input-output-json-serialization`` mode; its
default ``Map.toString()`` form is not parseable), ``executionTime`` =
end - start for ended executions, ``failedReferenceTaskNames`` joined by
commas.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final

from edged.core.views import task_json, workflow_json
from edged.journal import Journal
from edged.journal.rows import ExecutionRow
from edged.journal.search import Condition, ExecutionQuery, SortKey
from edged.runtime.rows import _from_rows

JsonDict = dict[str, Any]

# /running/{name} answers a plain list; it is cut here (a gateway with more
# running executions of one workflow than this has other problems).
MAX_RUNNING_IDS: Final = 10_000


def _time(ms: int | None) -> str | None:
    if not ms:
        return None
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return str(value)


def summary_json(row: ExecutionRow) -> JsonDict:
    doc = row.doc if isinstance(row.doc, dict) else {}
    input_text = _json_text(doc.get("input"))
    output_text = _json_text(doc.get("output"))
    failed = doc.get("failedRefs") or []
    return {
        "workflowType": row.name,
        "version": row.version,
        "workflowId": row.workflow_id,
        "correlationId": row.correlation_id,
        "startTime": _time(row.created_ms),
        "updateTime": _time(row.updated_ms),
        "endTime": _time(row.ended_ms),
        "status": row.status,
        "input": input_text,
        "output": output_text,
        "reasonForIncompletion": doc.get("reason"),
        "executionTime": (row.ended_ms - row.created_ms) if row.ended_ms else 0,
        "event": None,
        "failedReferenceTaskNames": ",".join(str(r) for r in failed),
        "externalInputPayloadStoragePath": None,
        "externalOutputPayloadStoragePath": None,
        "priority": int(doc.get("priority") or 0),
        "inputSize": len(input_text or ""),
        "outputSize": len(output_text or ""),
    }


def task_summary_json(task: JsonDict) -> JsonDict:
    """Conductor's ``TaskSummary`` of a task's Conductor JSON (`task_json`): times
    and input/output as in ``WorkflowSummary``."""
    input_text = _json_text(task["inputData"])
    output_text = _json_text(task["outputData"])
    start, end = task["startTime"], task["endTime"]
    return {
        "workflowId": task["workflowInstanceId"],
        "workflowType": task["workflowType"],
        "correlationId": task["correlationId"],
        "scheduledTime": _time(task["scheduledTime"]),
        "startTime": _time(start),
        "updateTime": _time(task["updateTime"]),
        "endTime": _time(end),
        "status": task["status"],
        "reasonForIncompletion": task["reasonForIncompletion"],
        "executionTime": (end - start) if end and start else 0,
        "queueWaitTime": task["queueWaitTime"],
        "taskDefName": task["taskDefName"],
        "taskType": task["taskType"],
        "input": input_text,
        "output": output_text,
        "taskId": task["taskId"],
        "externalInputPayloadStoragePath": None,
        "externalOutputPayloadStoragePath": None,
        "workflowPriority": task["workflowPriority"],
        "domain": task["domain"],
    }


async def search_workflows(journal: Journal, query: ExecutionQuery, *, full: bool) -> JsonDict:
    """``SearchResult`` of ``WorkflowSummary`` (or, `full`, ``Workflow`` without
    tasks); for a `per_task` query, of ``TaskSummary`` (or ``Task``)."""
    page = await journal.search_executions(query)
    if query.per_task:
        tasks = []
        for row, task_row in zip(page.rows, page.tasks, strict=True):
            wf = _from_rows(row, [task_row])
            tasks.append(task_json(wf, wf.tasks[0]))
        found = tasks if full else [task_summary_json(t) for t in tasks]
        return {"totalHits": page.total_hits, "results": found}
    if full:
        results = [workflow_json(_from_rows(row, []), include_tasks=False) for row in page.rows]
    else:
        results = [summary_json(row) for row in page.rows]
    out: JsonDict = {"totalHits": page.total_hits, "results": results}
    if page.truncated:
        out["truncated"] = True  # edged's: the free-text scan stopped at its row cap
    return out


async def running_workflow_ids(
    journal: Journal, name: str, version: int, start_ms: int | None, end_ms: int | None
) -> list[str]:
    conditions = [Condition("workflowType", "=", (name,)), Condition("version", "=", (version,))]
    if start_ms and end_ms:
        # Conductor's getWorkflows(name, version, start, end): by start time, any status.
        conditions += [
            Condition("startTime", ">=", (start_ms,)),
            Condition("startTime", "<=", (end_ms,)),
        ]
    else:
        conditions.append(Condition("status", "IN", ("RUNNING", "PAUSED")))
    query = ExecutionQuery(
        conditions=tuple(conditions),
        sort=(SortKey("startTime", False),),
        size=MAX_RUNNING_IDS,
    )
    page = await journal.search_executions(query)
    return [row.workflow_id for row in page.rows]
