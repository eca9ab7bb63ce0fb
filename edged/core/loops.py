"""DO_WHILE: iterations, the loop condition, `items`, keepLastN.

Theory of operation
-------------------
The DO_WHILE task stays IN_PROGRESS for the whole loop.  Its output holds
`iteration` (the current one, from 1) and, per finished iteration, a map
`"<i>": {ref: output}` as Conductor's DoWhile does.  Body tasks carry the
loop's task id (`loop_id`) and the iteration, and their refs get the `__i`
suffix.  When the walk reaches the end of the body, the loop's `marker` is set
to the iteration; the next iteration begins only when the marker says the
body ended *and* every task of the iteration is terminal (a fork branch that
was not joined can still be running).  Then the condition is evaluated with
Conductor's bindings: the loop's resolved inputParameters, the loop's own
output under its ref, and each body task's newest output under its base ref.

`items` (a list in the loop's input) iterates over the list instead: the
current element and its index are in the loop's output as `item`/`index`,
and the loop ends after the last element (a loopCondition, if any, can end it
earlier).  `keepLastN` in the input removes older iterations' tasks and
outputs so a long-running loop stays bounded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from edged.core.model import Task, TaskStatus
from edged.core.navigate import first_task
from edged.core.views import ExpressionContext

if TYPE_CHECKING:
    from edged.core.decider import Scope, Transition


def start_loop(tr: Transition, wt: dict[str, Any], scope: Scope) -> None:
    loop = tr.new_task(wt, scope)
    loop.start_ms = tr.at_ms
    tr.set_status(loop, TaskStatus.IN_PROGRESS, None)
    items = _items(wt, loop)
    if items is not None and not items:
        loop.output = {"iteration": 0}
        tr.finish(loop, TaskStatus.COMPLETED, None)
        return
    begin_iteration(tr, loop, 1)


def _items(wt: dict[str, Any], loop: Task) -> list[Any] | None:
    params = wt.get("inputParameters") or {}
    if isinstance(params, dict) and "items" in params:
        items = loop.input.get("items")
        return items if isinstance(items, list) else []
    return None


def begin_iteration(tr: Transition, loop: Task, iteration: int) -> None:
    from edged.core.decider import Scope
    from edged.core.operators import schedule

    loop.output["iteration"] = iteration
    items = _items(loop.wt, loop)
    if items is not None:
        loop.output["item"] = items[iteration - 1]
        loop.output["index"] = iteration - 1
    tr.changed(loop)
    first = first_task(loop.wt.get("loopOver"))
    if first is None:
        loop.marker = iteration
        check_loop(tr, loop)
        return
    schedule(tr, first, Scope(loop.task_id, iteration, None))


def check_loop(tr: Transition, loop: Task) -> None:
    if loop.status.terminal:
        return
    iteration = int(loop.output.get("iteration", 1))
    if loop.marker != iteration:
        return
    members = [t for t in tr.wf.tasks if t.loop_id == loop.task_id and t.iteration == iteration]
    if any(not t.status.terminal for t in members):
        return
    loop.output[str(iteration)] = {t.base_ref: t.output for t in members if not t.retried}
    tr.changed(loop)
    try:
        go_on = _should_continue(tr, loop, iteration)
    except Exception as exc:  # a broken condition fails the loop, never the engine
        tr.finish(loop, TaskStatus.FAILED, f"Unable to evaluate the loop condition: {exc}")
        return
    if not go_on:
        tr.finish(loop, TaskStatus.COMPLETED, None)
        return
    # Conductor prunes as the next iteration begins, counting it among the N
    # kept (keep_last_n_example_3 ends with exactly N iterations per loop)
    _keep_last(tr, loop, iteration + 1)
    begin_iteration(tr, loop, iteration + 1)


def _should_continue(tr: Transition, loop: Task, iteration: int) -> bool:
    from edged.expr import eval_condition, resolve

    items = _items(loop.wt, loop)
    if items is not None and iteration >= len(items):
        return False
    condition = loop.wt.get("loopCondition")
    if not isinstance(condition, str) or not condition.strip():
        return items is not None
    params = loop.wt.get("inputParameters") or {}
    resolved = resolve(params, ExpressionContext(tr.wf), task_id=loop.task_id, env=tr.decider.env)
    bindings: dict[str, Any] = dict(resolved) if isinstance(resolved, dict) else {}
    bindings[loop.ref] = loop.output
    for task in tr.wf.tasks:
        if task.loop_id == loop.task_id and not task.retried:
            bindings[task.base_ref] = task.output
    return bool(eval_condition(condition, bindings))


def _keep_last(tr: Transition, loop: Task, iteration: int) -> None:
    keep = loop.input.get("keepLastN")
    if not isinstance(keep, int) or isinstance(keep, bool) or keep <= 0 or iteration <= keep:
        return
    drop_upto = iteration - keep
    doomed = {
        t.task_id for t in tr.wf.tasks if t.loop_id == loop.task_id and t.iteration <= drop_upto
    }
    if doomed:
        tr.wf.tasks = [t for t in tr.wf.tasks if t.task_id not in doomed]
        for task_id in doomed:
            tr.decision.changed.pop(task_id, None)
        tr.decision.removed.extend(sorted(doomed))
    for i in range(1, drop_upto + 1):
        loop.output.pop(str(i), None)
    tr.touch()
