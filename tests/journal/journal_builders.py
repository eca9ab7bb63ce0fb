"""Builders shared by the journal tests: small, valid rows with predictable ids."""

from __future__ import annotations

from typing import Any

from edged.journal import Batch, ExecutionRow, HistoryEvent, TaskRow


def execution(
    workflow_id: str,
    *,
    status: str = "RUNNING",
    name: str = "freezer_alarm",
    created_ms: int = 1_000,
    ended_ms: int | None = None,
    correlation_id: str | None = None,
    idempotency_key: str | None = None,
    doc: Any = None,
) -> ExecutionRow:
    return ExecutionRow(
        workflow_id=workflow_id,
        name=name,
        version=1,
        status=status,
        parent_id=None,
        correlation_id=correlation_id,
        idempotency_key=idempotency_key,
        created_ms=created_ms,
        updated_ms=created_ms,
        ended_ms=ended_ms,
        doc={"input": {"celsius": -12.5}} if doc is None else doc,
    )


def task(workflow_id: str, seq: int, status: str = "SCHEDULED") -> TaskRow:
    return TaskRow(
        task_id=f"{workflow_id}/t{seq}",
        workflow_id=workflow_id,
        seq=seq,
        status=status,
        doc={"taskType": "SIMPLE", "seq": seq},
    )


def event(workflow_id: str, kind: str = "TaskScheduled", at_ms: int = 1_000) -> HistoryEvent:
    return HistoryEvent(workflow_id=workflow_id, at_ms=at_ms, kind=kind, body={"k": kind})


def transition(workflow_id: str, seq: int = 0) -> Batch:
    """What one engine step typically writes: execution + task snapshot + two events."""
    return Batch(
        executions=[execution(workflow_id)],
        tasks=[task(workflow_id, seq)],
        history=[event(workflow_id, "WorkflowStarted"), event(workflow_id)],
    )
