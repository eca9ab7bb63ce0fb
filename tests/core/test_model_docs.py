"""Journal documents of tasks: the compact form, and the complete form older journals hold."""

from __future__ import annotations

from typing import Any

from edged.core.model import Task, TaskStatus, Workflow, WorkflowStatus
from edged.journal.codec import decode, encode


def _full_doc(task: Task) -> dict[str, Any]:
    """A task document as edged wrote it before defaults were left out."""
    return {
        "taskId": task.task_id,
        "seq": task.seq,
        "ref": task.ref,
        "type": task.task_type,
        "defName": task.def_name,
        "wt": task.wt,
        "status": task.status.value,
        "input": task.input,
        "output": task.output,
        "scheduledMs": task.scheduled_ms,
        "startMs": task.start_ms,
        "endMs": task.end_ms,
        "updateMs": task.update_ms,
        "retryCount": task.retry_count,
        "pollCount": task.poll_count,
        "iteration": task.iteration,
        "reason": task.reason,
        "workerId": task.worker_id,
        "callbackAfterS": task.callback_after_s,
        "startDelayS": task.start_delay_s,
        "retried": task.retried,
        "retriedTaskId": task.retried_task_id,
        "subWorkflowId": task.subworkflow_id,
        "taskdef": task.taskdef,
        "loopId": task.loop_id,
        "forkId": task.fork_id,
        "generation": task.generation,
        "logs": task.logs,
        "timers": task.timers,
        "marker": task.marker,
    }


def _fresh() -> Task:
    return Task(
        task_id="t-1",
        seq=1,
        ref="a",
        task_type="SIMPLE",
        def_name="a",
        wt={"name": "a", "taskReferenceName": "a"},
        status=TaskStatus.SCHEDULED,
        input={"n": 1},
        scheduled_ms=5,
        update_ms=5,
    )


def _busy() -> Task:
    task = _fresh()
    task.status = TaskStatus.FAILED
    task.output = {"n": 2}
    task.start_ms, task.end_ms, task.update_ms = 6, 7, 7
    task.retry_count, task.poll_count, task.iteration = 1, 2, 3
    task.reason, task.worker_id = "", "w"  # an empty reason is not a missing one
    task.callback_after_s, task.start_delay_s = 4, 5
    task.retried, task.retried_task_id, task.subworkflow_id = True, "t-0", "c-1"
    task.taskdef = {"name": "a", "retryCount": 0}
    task.loop_id, task.fork_id, task.generation, task.marker = "l-1", "f-1", 2, 1
    task.logs = [{"log": "x", "createdTime": 6}]
    task.timers = ["rt:t-1:2:6"]
    return task


def test_a_compact_document_round_trips() -> None:
    for task in (_fresh(), _busy()):
        assert Task.from_doc(decode(encode(task.to_doc()))) == task


def test_a_fresh_task_leaves_its_defaults_out() -> None:
    doc = _fresh().to_doc()
    assert set(doc) == {
        "taskId", "seq", "ref", "type", "defName", "wt", "status", "input", "scheduledMs",
        "updateMs",
    }  # fmt: skip
    assert _busy().to_doc().keys() == _full_doc(_busy()).keys()


def test_complete_documents_from_older_journals_still_read() -> None:
    for task in (_fresh(), _busy()):
        assert Task.from_doc(decode(encode(_full_doc(task)))) == task


def test_defaults_read_back_as_fresh_containers() -> None:
    one, two = Task.from_doc(_fresh().to_doc()), Task.from_doc(_fresh().to_doc())
    one.output["x"] = 1
    one.logs.append({"log": "y"})
    one.timers.append("k")
    assert (two.output, two.logs, two.timers) == ({}, [], [])


def _workflow(busy: bool) -> Workflow:
    wf = Workflow(
        workflow_id="w",
        definition={"name": "d", "tasks": []},
        status=WorkflowStatus.RUNNING,
        input={"n": 1},
        created_ms=1,
        updated_ms=2,
    )
    if busy:
        wf.output, wf.variables, wf.priority = {"o": 1}, {"v": 2}, 3
        wf.parent_task_id, wf.reason, wf.failed_refs = "pt", "", ["a"]
        wf.task_to_domain, wf.failure_workflow_id = {"*": "x"}, "fw"
        wf.next_seq, wf.deferred, wf.root_done, wf.last_event_id = 4, ["t1"], True, "e"
    return wf


def _full_workflow_doc(wf: Workflow) -> dict[str, Any]:
    """An execution document as edged wrote it before defaults were left out."""
    return {
        "definition": wf.definition,
        "input": wf.input,
        "output": wf.output,
        "variables": wf.variables,
        "priority": wf.priority,
        "parentTaskId": wf.parent_task_id,
        "reason": wf.reason,
        "failedRefs": wf.failed_refs,
        "taskToDomain": wf.task_to_domain,
        "failureWorkflowId": wf.failure_workflow_id,
        "nextSeq": wf.next_seq,
        "deferred": wf.deferred,
        "rootDone": wf.root_done,
        "lastEventId": wf.last_event_id,
    }


def _read_workflow(doc: dict[str, Any]) -> Workflow:
    return Workflow.from_doc(
        workflow_id="w", status="RUNNING", parent_id=None, correlation_id=None,
        idempotency_key=None, created_ms=1, updated_ms=2, ended_ms=None,
        doc=decode(encode(doc)), tasks=[],
    )  # fmt: skip


def test_workflow_documents_round_trip_compact_and_complete() -> None:
    for busy in (False, True):
        wf = _workflow(busy)
        assert _read_workflow(wf.to_doc()) == wf
        assert _read_workflow(_full_workflow_doc(wf)) == wf
    assert set(_workflow(False).to_doc()) == {"definition", "input", "output", "nextSeq"}
    assert _workflow(True).to_doc().keys() == _full_workflow_doc(_workflow(True)).keys()
