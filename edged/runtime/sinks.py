"""Event sinks for the EVENT task, and Conductor's event handlers.

A sink is registered by its prefix (`conductor`, later `mqtt`, ...) and
turns a published event into follow-up ops for the engine.  The built-in
`conductor` sink is Conductor's internal queue: the payload goes to every
active event handler whose `event` equals the sink name (e.g.
`conductor:my_workflow:my_event_ref` or `conductor:my_queue`), whose
`condition` (JavaScript over the payload, optional) is true; each handler's
actions become ops: `complete_task` / `fail_task` (a pending task by
workflowId + taskRefName, or by taskId) and `start_workflow`.  Action
parameters are resolved against the payload (`${workflowInstanceId}`...).

The engine acknowledges the outbox row of the publish after the follow-ups
are queued, so after a crash an event is delivered again at most until the
acknowledgement is journaled (at-least-once; actions are idempotent against
a task that already ended).
"""

from __future__ import annotations

import logging
from typing import Any

from edged.core import events as ev
from edged.core.commands import PublishEvent
from edged.errors import EdgedError
from edged.ids import new_execution_id
from edged.runtime.engine import Engine, Op, new_workflow
from edged.runtime.timers import now_ms

log = logging.getLogger("edged.sinks")


class ConductorSink:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.delivered = 0
        self.unmatched = 0

    def __call__(self, command: PublishEvent) -> list[Op]:
        return self.ops_for(command.sink, command.payload)

    def ops_for(self, event: str, payload: dict[str, Any]) -> list[Op]:
        """The ops of every active handler whose `event` is `event` and whose condition
        holds for `payload` (also used by adapters: MQTT messages for `mqtt:` handlers)."""
        from edged.expr import eval_condition, resolve

        ops: list[Op] = []
        matched = False
        for handler in self.engine.registry.event_handlers:
            if handler.get("active") is False or handler.get("event") != event:
                continue
            condition = handler.get("condition")
            try:
                if (
                    isinstance(condition, str)
                    and condition.strip()
                    and not eval_condition(condition, payload)
                ):
                    continue
            except EdgedError as exc:
                log.warning("event handler %s: condition failed: %s", handler.get("name"), exc)
                continue
            matched = True
            for action in handler.get("actions") or []:
                if not isinstance(action, dict):
                    continue
                kind = action.get("action")
                params = resolve(action.get(kind) or {}, payload)
                op = self._action(str(kind), params if isinstance(params, dict) else {})
                if op is not None:
                    ops.append(op)
        self.delivered += 1
        if not matched:
            self.unmatched += 1
        return ops

    def _action(self, kind: str, params: dict[str, Any]) -> Op | None:
        if kind in ("complete_task", "fail_task"):
            status = "COMPLETED" if kind == "complete_task" else "FAILED"
            workflow_id = params.get("workflowId")
            raw_output = params.get("output")
            output: dict[str, Any] = raw_output if isinstance(raw_output, dict) else {}
            if not isinstance(workflow_id, str):
                return None
            task_id = params.get("taskId")
            if isinstance(task_id, str) and task_id:
                return Op(
                    workflow_id,
                    ev.TaskResultReceived(
                        at_ms=now_ms(), task_id=task_id, status=status, output=output
                    ),
                )
            ref = params.get("taskRefName")
            if not isinstance(ref, str):
                return None
            return Op(
                workflow_id, ev.TaskSignaled(at_ms=now_ms(), ref=ref, status=status, output=output)
            )
        if kind == "start_workflow":
            name = params.get("name")
            if not isinstance(name, str):
                return None
            try:
                version = params.get("version")
                definition = self.engine.registry.workflow(
                    name, version if isinstance(version, int) else None
                )
            except EdgedError as exc:
                log.warning("event handler start_workflow: %s", exc)
                return None
            wf_input = params.get("input") if isinstance(params.get("input"), dict) else {}
            corr = params.get("correlationId")
            wf = new_workflow(
                definition,
                workflow_id=new_execution_id(),
                input=wf_input or {},
                correlation_id=corr if isinstance(corr, str) else None,
            )
            return Op(wf.workflow_id, create=wf)
        log.warning("event handler: unknown action %r", kind)
        return None
