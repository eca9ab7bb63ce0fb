"""Property tests of the pure decider over random definitions and random event sequences.

Each example draws a small definition from the grammar in core_grammar, TaskDefs
with retries and timeouts, an input, a step budget, and then up to ~30 events
chosen from what the state makes plausible (core_driver.choose_event).  After
every step it checks:

- (i) the journal mirror (only what the decision reported, through the
  journal codec) reloads to a state equal to the live one;
- (b) delivering the same result / timer fire / child end again changes
  nothing and emits nothing;
- (c) a terminal execution absorbs every event but retry/restart/rerun;
- (d) task ids are unique and never name two different tasks;
- (e) every pending work task was dispatched (or waits for its delay timer),
  a terminal execution has no open task, a RUNNING one can still move;
- (f) decide never raises (hypothesis reports any exception) and a decision
  stays within its step budget (ContinueLater instead).

At the end, (ii) replaying the recorded events from the initial state gives
equal commands at every step and an equal final state.
"""

from __future__ import annotations

from typing import Any

from core_driver import (
    START_MS,
    Run,
    absorbable_events,
    choose_event,
    snapshot,
)
from core_grammar import definitions, taskdefs, workflow_inputs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edged.core import admin
from edged.core import events as ev
from edged.core.commands import ContinueLater
from edged.core.decider import Decider
from edged.core.model import Workflow

ADMIN_EVENTS = (
    ev.PauseRequested,
    ev.ResumeRequested,
    ev.TerminateRequested,
    ev.RetryRequested,
    ev.RestartRequested,
    ev.RerunRequested,
    ev.SkipTaskRequested,
)
REOPENING = (ev.RetryRequested, ev.RestartRequested, ev.RerunRequested)

PROPERTY_SETTINGS = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def state_diff(a: Workflow, b: Workflow) -> str:
    """A readable difference between two executions (first differing fields)."""
    lines = []
    for name in Workflow.__dataclass_fields__:
        if name != "tasks" and getattr(a, name) != getattr(b, name):
            lines.append(f"workflow.{name}: {getattr(a, name)!r} != {getattr(b, name)!r}")
    ta = {t.task_id: t for t in a.tasks}
    tb = {t.task_id: t for t in b.tasks}
    if list(ta) != list(tb):
        lines.append(f"task ids: {[t.ref for t in a.tasks]} != {[t.ref for t in b.tasks]}")
    for task_id in ta.keys() & tb.keys():
        x, y = ta[task_id], tb[task_id]
        for name in type(x).__dataclass_fields__:
            if getattr(x, name) != getattr(y, name):
                lines.append(f"task {x.ref}.{name}: {getattr(x, name)!r} != {getattr(y, name)!r}")
    return "\n".join(lines[:20])


def assert_same(a: Workflow, b: Workflow, what: str) -> None:
    assert a == b, f"{what}:\n{state_diff(a, b)}"


def check_duplicate(run: Run, event: ev.Event) -> None:
    """(b): the same delivery again yields no commands and no state change."""
    if isinstance(event, ev.TaskResultReceived) and event.status == "IN_PROGRESS":
        return  # a heartbeat: re-arming the same timers is its meaning
    if not isinstance(event, ev.TaskResultReceived | ev.TimerFired | ev.ChildWorkflowEnded):
        return
    copy = snapshot(run.wf)
    again = Decider(run.taskdefs.get, step_budget=run.step_budget).decide(copy, event)
    assert again.commands == [], f"duplicate {event} emitted {again.commands}"
    assert_same(copy, run.wf, f"duplicate {event} changed the state")


def check_absorbs(run: Run) -> None:
    """(c): a terminal execution ignores everything but retry/restart/rerun."""
    for event in absorbable_events(run):
        copy = snapshot(run.wf)
        decision = Decider(run.taskdefs.get).decide(copy, event)
        assert decision.commands == [], (
            f"{run.wf.status} workflow answered {event} with {decision.commands}"
        )
        assert decision.empty, f"{run.wf.status} workflow reported changes for {event}"
        assert_same(copy, run.wf, f"{run.wf.status} workflow changed on {event}")


def check_refusal_is_noop(run: Run, event: ev.Event) -> None:
    """A request the precondition refuses would also change nothing if it slipped through."""
    copy = snapshot(run.wf)
    decision = Decider(run.taskdefs.get).decide(copy, event)
    assert decision.commands == [], f"refused {event} emitted {decision.commands}"
    assert_same(copy, run.wf, f"refused {event} changed the state")


def check_step(run: Run) -> None:
    decision = run.decisions[-1]
    assert_same(run.reload(), run.wf, f"reloaded state differs after {run.events[-1]}")  # (i)
    run.record_ids()  # (d)
    problems = run.unstuck_problems()  # (e)
    assert not problems, f"after {run.events[-1]}: {problems}"
    if any(isinstance(c, ContinueLater) for c in decision.commands):
        assert run.wf.deferred, "ContinueLater without deferred work"


def drive(data: st.DataObject, run: Run, max_steps: int) -> None:
    run.apply(ev.WorkflowStarted(START_MS))
    check_step(run)
    for _ in range(max_steps):
        event = choose_event(data, run)
        if isinstance(event, ADMIN_EVENTS) and admin.precondition(run.wf, event) is not None:
            check_refusal_is_noop(run, event)
            continue
        run.apply(event)
        check_step(run)
        check_duplicate(run, event)
        if run.wf.status.terminal:
            check_absorbs(run)


def replay(run: Run) -> None:
    """(ii): the same events from the same start give the same commands and state."""
    again = Run(run.definition, run.taskdefs, run.wf_input, step_budget=run.step_budget)
    for i, event in enumerate(run.events):
        decision = again.apply(event)
        assert decision.commands == run.decisions[i].commands, f"step {i} ({event}) commands differ"
        assert decision.history == run.decisions[i].history, f"step {i} ({event}) history differs"
    assert_same(again.wf, run.wf, "replayed state differs")


@PROPERTY_SETTINGS
@given(
    definition=definitions(),
    defs=taskdefs(),
    wf_input=workflow_inputs(),
    budget=st.sampled_from([4, 2000]),
    data=st.data(),
)
def test_random_executions_keep_the_invariants(
    definition: dict[str, Any],
    defs: dict[str, dict[str, Any]],
    wf_input: dict[str, Any],
    budget: int,
    data: st.DataObject,
) -> None:
    run = Run(definition, defs, wf_input, step_budget=budget)
    drive(data, run, data.draw(st.integers(1, 30), label="steps"))
    replay(run)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(definition=definitions(), defs=taskdefs(), wf_input=workflow_inputs())
def test_completing_every_task_ends_the_workflow(
    definition: dict[str, Any], defs: dict[str, dict[str, Any]], wf_input: dict[str, Any]
) -> None:
    """Happy path liveness: answer everything with success and the execution ends."""
    run = Run(definition, defs, wf_input)
    run.apply(ev.WorkflowStarted(START_MS))
    for _ in range(200):
        if run.wf.status.terminal:
            break
        at = run.at_ms + 1000
        pending = [
            t
            for t in run.wf.tasks
            if not t.status.terminal and t.task_type not in ("JOIN", "DO_WHILE")
        ]
        if pending:
            task = pending[0]
            if task.task_type in ("WAIT", "HUMAN"):
                run.apply(ev.TaskSignaled(at, task.ref, "COMPLETED", {"ok": True}))
            else:
                run.apply(ev.TaskResultReceived(at, task.task_id, "COMPLETED", {"ok": True}))
        elif run.wf.deferred:
            run.apply(ev.Continued(at))
        else:
            raise AssertionError(f"stuck: {[(t.ref, t.status.value) for t in run.wf.tasks]}")
        check_step(run)
    assert run.wf.status.terminal, "did not end within 200 steps"
    # only a TERMINATE task can end it other than COMPLETED when all work succeeds
    if run.wf.status.value != "COMPLETED":
        assert any(t.task_type == "TERMINATE" for t in run.wf.tasks), run.wf.reason
