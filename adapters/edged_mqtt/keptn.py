"""The Keptn task lifecycle over CloudEvents, as a pure state machine.

Theory of operation. edged hands a work task to event-driven workers by publishing
``sh.keptn.event.<task>.triggered``; each worker that takes it answers
``sh.keptn.event.<task>.started``, optionally ``.status.changed`` (progress and log lines),
and ``.finished`` with ``data.result`` (pass | warning | fail) and ``data.status``
(succeeded | errored | aborted). Every answer names the triggered event in its
``triggeredid`` extension and carries the ``shkeptncontext`` of the execution (Keptn's
conventions, keptn/spec cloudevents.md); a worker is identified by its CloudEvents
``source``.

``KeptnTask`` is one (task id, attempt): ``triggered_event()`` builds the event to publish,
``on_event(event, now_ms)`` and ``on_tick(now_ms)`` take what happened and return an
``Outcome`` (nothing, a progress line, or the task's result). States:

    WAITING --started/finished--> RUNNING --every started worker finished--> DONE
    WAITING --start_timeout_s passes with no worker--> DONE (FAILED, "nobody started")

Guarantees:

- Idempotent: the triggered id is ``uuid5(task id, attempt)``, so re-publishing after a
  daemon restart sends the same event (workers dedupe it) while a retry (next attempt) is a
  new one; answers whose ``triggeredid`` is another attempt's are ignored. Answers are
  deduplicated by CloudEvents id, and a worker's second ``.started``/``.finished`` is a no-op.
- Out of order: a ``.finished`` before its ``.started`` counts as both (the worker started).
- Keptn's rule: the task is done when every worker that started has finished; the outcome
  is decided once (DONE absorbs every later event).
- Bounded: at most ``MAX_WORKERS`` workers and ``MAX_EVENTS`` distinct answers per task;
  beyond that answers are ignored with a count.

Results onto Conductor task statuses (the worst worker wins: fail > warning > pass;
aborted > errored > succeeded):

- ``status: aborted`` -> FAILED_WITH_TERMINAL_ERROR: the work was deliberately stopped, a
  retry would undo that decision. (CANCELED is not a status a worker can report.)
- ``status: errored`` -> FAILED (retryable per the TaskDef): the worker could not do it.
- ``result: fail`` -> FAILED: the work ran and its verdict is negative; in Keptn a failed
  task stops its sequence, as a FAILED task stops a workflow.
- ``result: warning`` -> COMPLETED with ``output.result == "warning"``: in Keptn a warning
  lets the sequence go on. COMPLETED_WITH_ERRORS is Conductor's mark for an optional task
  that failed, not a verdict a worker gives, so it is not used.
- ``result: pass`` -> COMPLETED.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from typing import Any

from edged_mqtt.cloudevents import CloudEvent

KEPTN_PREFIX = "sh.keptn.event."
KEPTN_SPEC_VERSION = "0.2.4"
NAMESPACE = uuid.UUID("6b1f4a54-1c1e-4f0e-9d43-0f7d8a3e2b11")  # edged's Keptn ids
MAX_WORKERS = 64
MAX_EVENTS = 1024

_RESULTS = ("pass", "warning", "fail")
_STATUSES = ("succeeded", "errored", "aborted")


class Phase(enum.Enum):
    WAITING = "WAITING"
    RUNNING = "RUNNING"
    DONE = "DONE"


class Kind(enum.Enum):
    TRIGGERED = "triggered"
    STARTED = "started"
    STATUS_CHANGED = "status.changed"
    FINISHED = "finished"


def event_type(task: str, kind: Kind) -> str:
    return f"{KEPTN_PREFIX}{task}.{kind.value}"


def parse_type(ce_type: str) -> tuple[str, Kind] | None:
    """``sh.keptn.event.backup.status.changed`` -> ("backup", STATUS_CHANGED); None if not
    a Keptn task event."""
    if not ce_type.startswith(KEPTN_PREFIX):
        return None
    rest = ce_type[len(KEPTN_PREFIX) :]
    for kind in (Kind.STATUS_CHANGED, Kind.TRIGGERED, Kind.STARTED, Kind.FINISHED):
        suffix = "." + kind.value
        if rest.endswith(suffix) and len(rest) > len(suffix):
            return rest[: -len(suffix)], kind
    return None


def triggered_id(task_id: str, attempt: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{task_id}\0{attempt}"))


def keptn_context(workflow_id: str) -> str:
    """The execution's shkeptncontext: its id when that is a UUID, else one derived from it."""
    try:
        return str(uuid.UUID(workflow_id))
    except ValueError:
        return str(uuid.uuid5(NAMESPACE, workflow_id))


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one input changed: ``log`` lines to attach, and ``status`` once decided."""

    status: str | None = None  # COMPLETED, FAILED, FAILED_WITH_TERMINAL_ERROR
    output: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    log: tuple[str, ...] = ()
    ignored: str | None = None  # why the input changed nothing (counted by the caller)


NOTHING = Outcome()


@dataclass(slots=True)
class _Worker:
    started_ms: int
    finished: dict[str, Any] | None = None


@dataclass(slots=True)
class KeptnTask:
    task: str  # the Keptn task name (the event type's middle part)
    task_id: str
    attempt: int
    workflow_id: str
    source: str  # our CloudEvents source, e.g. "edged/<node>"
    created_ms: int
    start_timeout_s: float = 60.0
    phase: Phase = Phase.WAITING
    workers: dict[str, _Worker] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    ignored: int = 0
    outcome: Outcome | None = None

    @property
    def triggered_id(self) -> str:
        return triggered_id(self.task_id, self.attempt)

    @property
    def deadline_ms(self) -> int | None:
        """When ``on_tick`` fails the task if nobody has started; None once someone has."""
        if self.phase is not Phase.WAITING:
            return None
        return self.created_ms + int(self.start_timeout_s * 1000)

    def triggered_event(self, data: dict[str, Any], time: str | None = None) -> CloudEvent:
        """The ``.triggered`` event: the same bytes for the same (task id, attempt)."""
        body = dict(data)
        body.setdefault("project", "edged")
        body.setdefault("stage", "edge")
        body.setdefault("service", self.task)
        return CloudEvent(
            id=self.triggered_id,
            source=self.source,
            type=event_type(self.task, Kind.TRIGGERED),
            datacontenttype="application/json",
            time=time,
            data=body,
            extensions={
                "shkeptncontext": keptn_context(self.workflow_id),
                "shkeptnspecversion": KEPTN_SPEC_VERSION,
            },
        )

    # -------------------------------------------------------------------- inputs

    def on_event(self, event: CloudEvent, now_ms: int) -> Outcome:
        if self.phase is Phase.DONE:
            return self._ignore("task already decided")
        parsed = parse_type(event.type)
        if parsed is None or parsed[0] != self.task:
            return self._ignore(f"not a {self.task} task event: {event.type}")
        kind = parsed[1]
        if kind is Kind.TRIGGERED:
            return self._ignore("a triggered event is ours, not an answer")
        if event.extension("triggeredid") != self.triggered_id:
            return self._ignore("answers another triggered event (attempt)")
        if event.id in self.seen:
            return self._ignore("duplicate event id")
        if len(self.seen) >= MAX_EVENTS:
            return self._ignore(f"more than {MAX_EVENTS} answers")
        worker = self.workers.get(event.source)
        if worker is None:
            if len(self.workers) >= MAX_WORKERS:
                return self._ignore(f"more than {MAX_WORKERS} workers")
            # out of order: status.changed or finished before started imply started
            worker = self.workers[event.source] = _Worker(started_ms=now_ms)
        self.seen.add(event.id)
        self.phase = Phase.RUNNING
        data = event.data if isinstance(event.data, dict) else {}
        if kind is Kind.STARTED:
            return Outcome(log=(f"{event.source}: started",))
        if kind is Kind.STATUS_CHANGED:
            message = data.get("message")
            text = message if isinstance(message, str) else str(data.get("status", "progress"))
            return Outcome(log=(f"{event.source}: {text}"[:4096],))
        if worker.finished is not None:
            return self._ignore("worker already finished")
        worker.finished = _finished(data)
        line = f"{event.source}: finished {worker.finished['result']}/{worker.finished['status']}"
        if all(w.finished is not None for w in self.workers.values()):
            return self._decide(log=(line,))
        return Outcome(log=(line,))

    def on_tick(self, now_ms: int) -> Outcome:
        deadline = self.deadline_ms
        if deadline is None or now_ms < deadline:
            return NOTHING
        self.phase = Phase.DONE
        self.outcome = Outcome(
            status="FAILED",
            reason=f"no worker started {self.task} within {self.start_timeout_s:g} s "
            f"(triggered id {self.triggered_id})",
            output={"triggeredid": self.triggered_id},
        )
        return self.outcome

    # -------------------------------------------------------------------- helpers

    def _ignore(self, why: str) -> Outcome:
        self.ignored += 1
        return Outcome(ignored=why)

    def _decide(self, log: tuple[str, ...]) -> Outcome:
        finished = {src: w.finished for src, w in sorted(self.workers.items())}
        results = [f["result"] for f in finished.values() if f is not None]
        statuses = [f["status"] for f in finished.values() if f is not None]
        result = max(results, key=_RESULTS.index)
        status = max(statuses, key=_STATUSES.index)
        output: dict[str, Any] = {}
        for f in finished.values():
            assert f is not None
            output.update(f["data"])
        messages = [f"{src}: {f['message']}" for src, f in finished.items() if f and f["message"]]
        output.update(
            result=result,
            status=status,
            triggeredid=self.triggered_id,
            workers={
                src: {k: f[k] for k in ("result", "status", "message")}
                for src, f in finished.items()
                if f is not None
            },
        )
        if messages:
            output["message"] = "; ".join(messages)
        if status == "aborted":
            verdict, reason = "FAILED_WITH_TERMINAL_ERROR", "aborted by a worker"
        elif status == "errored":
            verdict, reason = "FAILED", "a worker errored"
        elif result == "fail":
            verdict, reason = "FAILED", "a worker's result is fail"
        else:
            verdict, reason = "COMPLETED", ""
        if messages and verdict != "COMPLETED":
            reason = f"{reason}: {'; '.join(messages)}"
        self.phase = Phase.DONE
        self.outcome = Outcome(status=verdict, output=output, reason=reason[:4096] or None, log=log)
        return self.outcome


def _finished(data: dict[str, Any]) -> dict[str, Any]:
    """A worker's verdict; unknown or missing values are read as the worst case (a worker
    that cannot say what happened did not succeed)."""
    result = data.get("result")
    status = data.get("status")
    message = data.get("message")
    rest = {
        k: v
        for k, v in data.items()
        if k not in ("result", "status", "message", "project", "stage", "service", "labels")
    }
    return {
        "result": result if result in _RESULTS else "fail",
        "status": status if status in _STATUSES else "errored",
        "message": message[:1024] if isinstance(message, str) else "",
        "data": rest,
    }


def answer(
    triggered: CloudEvent,
    kind: Kind,
    *,
    source: str,
    event_id: str,
    data: dict[str, Any] | None = None,
) -> CloudEvent:
    """A worker's answer to ``triggered`` (used by the worker helper and by tests)."""
    parsed = parse_type(triggered.type)
    if parsed is None or parsed[1] is not Kind.TRIGGERED:
        raise ValueError(f"not a Keptn triggered event: {triggered.type}")
    body: dict[str, Any] = {}
    if isinstance(triggered.data, dict):
        body = {k: v for k, v in triggered.data.items() if k in ("project", "stage", "service")}
    body.update(data or {})
    extensions: dict[str, str] = {
        "triggeredid": triggered.id,
        "shkeptnspecversion": KEPTN_SPEC_VERSION,
    }
    context = triggered.extension("shkeptncontext")
    if isinstance(context, str) and context:
        extensions["shkeptncontext"] = context
    return CloudEvent(
        id=event_id,
        source=source,
        type=event_type(parsed[0], kind),
        datacontenttype="application/json",
        data=body,
        extensions=extensions,
    )
