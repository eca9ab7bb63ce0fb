"""Validation of Conductor TaskDefs and EventHandlers.

Theory of operation: a TaskDef is flat, so its check is a list of field rules
taken from Conductor's TaskDef.java (enums, minimums) plus its one cross-field
constraint, TaskTimeoutConstraint: when timeoutSeconds > 0,
responseTimeoutSeconds must not exceed it.  Event handlers get the shape
checks an engine needs before it can index them (name, event, actions).
"""

from __future__ import annotations

from typing import Any

from edged.defs.faults import Fault, child, type_name
from edged.defs.fields import FieldChecks

TASK_TIMEOUT_POLICIES = ("RETRY", "TIME_OUT_WF", "ALERT_ONLY")
RETRY_LOGICS = ("FIXED", "LINEAR_BACKOFF", "EXPONENTIAL_BACKOFF")
EVENT_ACTIONS = (
    "start_workflow",
    "complete_task",
    "fail_task",
    "terminate_workflow",
    "update_workflow_variables",
)


def validate_taskdef(doc: Any) -> list[Fault]:
    """Every fault of one TaskDef document."""
    checks = FieldChecks()
    check_taskdef(checks, doc, "", inline=False)
    return checks.faults


def check_taskdef(checks: FieldChecks, doc: Any, path: str, *, inline: bool) -> None:
    """Check a TaskDef; `inline` is one embedded in a WorkflowTask (`taskDefinition`).

    Conductor does not cascade bean validation into an inline taskDefinition
    (the field has no @Valid), so there only field types are checked: name is
    optional and the timeout constraint does not apply.
    """
    if not isinstance(doc, dict):
        checks.fault(path, f"a task definition must be an object, got {type_name(doc)}")
        return
    if not inline or "name" in doc:
        checks.name(doc, path, "task definition")
    checks.string(doc, "description", path)
    checks.integer(doc, "retryCount", path)
    timeout_s = checks.integer(doc, "timeoutSeconds", path)
    checks.integer(doc, "totalTimeoutSeconds", path)
    checks.choice(doc, "timeoutPolicy", path, TASK_TIMEOUT_POLICIES)
    checks.choice(doc, "retryLogic", path, RETRY_LOGICS)
    checks.integer(doc, "retryDelaySeconds", path)
    response_s = checks.integer(doc, "responseTimeoutSeconds", path, minimum=1)
    checks.integer(doc, "concurrentExecLimit", path)
    checks.integer(doc, "rateLimitPerFrequency", path)
    checks.integer(doc, "rateLimitFrequencyInSeconds", path)
    checks.integer(doc, "pollTimeoutSeconds", path)
    checks.integer(doc, "backoffScaleFactor", path, minimum=1)
    checks.strings(doc, "inputKeys", path)
    checks.strings(doc, "outputKeys", path)
    checks.mapping(doc, "inputTemplate", path)
    checks.string(doc, "isolationGroupId", path)
    checks.string(doc, "executionNameSpace", path)
    checks.email(doc, "ownerEmail", path)
    checks.boolean(doc, "enforceSchema", path)
    # Conductor's TaskTimeoutConstraint; an absent responseTimeoutSeconds means
    # its default of 3600 s, which a shorter timeoutSeconds also contradicts.
    if not inline and timeout_s is not None and timeout_s > 0:
        effective_s = response_s if response_s is not None else 3600
        if effective_s > timeout_s and "responseTimeoutSeconds" not in doc:
            checks.fault(
                child(path, "responseTimeoutSeconds"),
                f"defaults to 3600, which exceeds timeoutSeconds {timeout_s}; set it to at most {timeout_s}",
            )
        elif effective_s > timeout_s:
            checks.fault(
                child(path, "responseTimeoutSeconds"),
                f"must be <= timeoutSeconds ({effective_s} > {timeout_s})",
            )


def validate_event_handler(doc: Any) -> list[Fault]:
    """Every fault of one Conductor EventHandler document."""
    checks = FieldChecks()
    if not isinstance(doc, dict):
        checks.fault("", f"an event handler must be an object, got {type_name(doc)}")
        return checks.faults
    checks.name(doc, "", "event handler")
    checks.string(doc, "event", "", required="missing event (e.g. mqtt:sensors/door)")
    checks.string(doc, "condition", "")
    checks.string(doc, "evaluatorType", "")
    checks.boolean(doc, "active", "")
    actions = checks.array(doc, "actions", "")
    if "actions" in doc and actions is not None and not actions:
        checks.fault("actions", "must hold at least one action")
    for i, action in enumerate(actions or []):
        where = child("actions", i)
        if not isinstance(action, dict):
            checks.fault(where, f"an action must be an object, got {type_name(action)}")
            continue
        checks.choice(action, "action", where, EVENT_ACTIONS)
    return checks.faults
