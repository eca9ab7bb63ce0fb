"""Human-readable text for the CLI: executions, lists, history events, progress.

Pure functions from Conductor's JSON shapes (Workflow, WorkflowSummary, the
stream's event documents) to text; nothing here does I/O, so every format is
tested without a daemon.  Times print in local time to the millisecond.
"""

from __future__ import annotations

import json
import time
from typing import Any

__all__ = [
    "Progress",
    "event_lines",
    "execution_text",
    "summary_table",
]


def _clock(ms: Any, *, date: bool = False) -> str:
    if not isinstance(ms, int | float) or isinstance(ms, bool) or ms <= 0:
        return "-"
    seconds = ms / 1000
    stamp = time.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S", time.localtime(seconds))
    return f"{stamp}.{int(ms) % 1000:03d}"


def _duration(start: Any, end: Any) -> str:
    if not isinstance(start, int | float) or not start:
        return "-"
    if not isinstance(end, int | float) or not end:
        return "-"
    seconds = max(0.0, (end - start) / 1000)
    return f"{seconds:.2f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _compact(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    out = []
    for row in [header, *rows]:
        out.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return out


def execution_text(wf: dict[str, Any]) -> str:
    """`edged get`: a header, input/output/reason, and the tasks as a table."""
    name = wf.get("workflowName") or wf.get("workflowType") or "?"
    end = wf.get("endTime") or (time.time() * 1000 if wf.get("status") == "RUNNING" else None)
    lines = [
        f"{name} v{wf.get('workflowVersion', '?')}  {wf.get('workflowId', '?')}  "
        f"{wf.get('status', '?')}  ({_duration(wf.get('startTime') or wf.get('createTime'), end)})",
        f"started   {_clock(wf.get('startTime') or wf.get('createTime'), date=True)}",
    ]
    if wf.get("correlationId"):
        lines.append(f"correlation {wf['correlationId']}")
    lines.append(f"input     {_compact(wf.get('input') or {})}")
    if wf.get("output"):
        lines.append(f"output    {_compact(wf.get('output'))}")
    if wf.get("reasonForIncompletion"):
        lines.append(f"reason    {wf['reasonForIncompletion']}")
    tasks = [t for t in wf.get("tasks") or [] if isinstance(t, dict)]
    if tasks:
        rows = []
        for task in tasks:
            ended = task.get("endTime") or (
                time.time() * 1000 if task.get("status") == "IN_PROGRESS" else None
            )
            rows.append(
                [
                    str(task.get("referenceTaskName", "?")),
                    str(task.get("taskType", "?")),
                    str(task.get("status", "?")),
                    _duration(task.get("startTime") or task.get("scheduledTime"), ended),
                    str(task.get("reasonForIncompletion") or ""),
                ]
            )
        lines.append("")
        lines += _table(["TASK", "TYPE", "STATUS", "TIME", "REASON"], rows)
    return "\n".join(lines)


def summary_table(results: list[dict[str, Any]], total: int | None) -> str:
    """`edged list`: one row per WorkflowSummary (or Workflow)."""
    rows = []
    for wf in results:
        start = wf.get("startTime")
        if isinstance(start, str):  # WorkflowSummary carries ISO-ish strings
            start_text = start
            duration = f"{wf.get('executionTime', 0) / 1000:.2f} s" if wf.get("endTime") else "-"
        else:
            start_text = _clock(start, date=True)
            duration = _duration(start, wf.get("endTime"))
        rows.append(
            [
                str(wf.get("workflowId", "?")),
                str(wf.get("workflowType") or wf.get("workflowName") or "?"),
                str(wf.get("version") or wf.get("workflowVersion") or ""),
                str(wf.get("status", "?")),
                start_text,
                duration,
            ]
        )
    lines = _table(["ID", "NAME", "VER", "STATUS", "STARTED", "DURATION"], rows)
    if total is not None and total > len(results):
        lines.append(f"({len(results)} of {total} shown)")
    return "\n".join(lines)


def event_lines(doc: dict[str, Any], *, with_workflow: bool = False) -> list[str]:
    """One stream event (the SSE data document) as log lines."""
    kind = str(doc.get("kind", "?"))
    data = doc.get("data") if isinstance(doc.get("data"), dict) else {}
    assert isinstance(data, dict)
    prefix = _clock(doc.get("atMs"))
    if with_workflow:
        prefix += f"  {doc.get('workflowName') or '?'}/{str(doc.get('workflowId', '?'))[:8]}"
    ref = data.get("ref")
    reason = f"  ({data['reason']})" if data.get("reason") else ""
    match kind:
        case "WorkflowStarted":
            return [f"{prefix}  workflow started: {data.get('name')} v{data.get('version')}"]
        case "WorkflowStatusChanged":
            return [f"{prefix}  workflow {data.get('status')}{reason}"]
        case "TaskScheduled":
            what = data.get("type")
            if data.get("name") and data.get("name") != ref:
                what = f"{what} {data.get('name')}"
            retry = " (retry)" if data.get("retryOf") else ""
            return [f"{prefix}  [{ref}] scheduled {what}{retry}"]
        case "TaskStatusChanged":
            worker = f" by {data['workerId']}" if data.get("workerId") else ""
            return [f"{prefix}  [{ref}] {data.get('status')}{worker}{reason}"]
        case "TaskLogged":
            return [f"{prefix}  [{ref}] | {line}" for line in data.get("logs") or []]
        case _:
            body = {k: v for k, v in data.items() if k != "ref"}
            where = f" [{ref}]" if ref else ""
            return [f"{prefix} {where} {kind} {_compact(body)}".replace("  ", " ", 1)]


class Progress:
    """The `--wait` progress line: counts tasks from stream events."""

    def __init__(self, workflow_id: str) -> None:
        self.workflow_id = workflow_id
        self.started = time.monotonic()
        self.status = "RUNNING"
        self.scheduled: set[str] = set()
        self.done: set[str] = set()
        self.last = ""

    def update(self, doc: dict[str, Any]) -> None:
        data = doc.get("data") if isinstance(doc.get("data"), dict) else {}
        assert isinstance(data, dict)
        kind = doc.get("kind")
        task_id = str(data.get("taskId", ""))
        if kind == "TaskScheduled":
            self.scheduled.add(task_id)
            self.last = f"{data.get('ref')} scheduled"
        elif kind == "TaskStatusChanged":
            if data.get("status") not in ("IN_PROGRESS", "SCHEDULED"):
                self.done.add(task_id)
            self.last = f"{data.get('ref')} {data.get('status')}"
        elif kind == "WorkflowStatusChanged":
            self.status = str(data.get("status"))

    def line(self) -> str:
        elapsed = time.monotonic() - self.started
        return (
            f"{self.workflow_id[:8]} {self.status} {elapsed:5.1f} s  "
            f"tasks {len(self.done)}/{len(self.scheduled)} done  {self.last}"
        ).rstrip()
