"""EventTaskSpec, the EVENT -> event handler round trip (SQSEventQueueE2ESpec's
fixtures), and SignalTaskSpec's signal into a child's WAIT.

edged has no SQS: the test routes the `sqs:` sink prefix to edged's built-in
`conductor` sink, which hands the payload to every active handler whose
`event` equals the sink text -- exactly what the SQS queue round trip does in
Conductor (publish, the handler's queue listener matches, actions run).
"""

from __future__ import annotations

from typing import Any

import trio
from harness import Conductor

Json = dict[str, Any]


def kinds(wf: Json) -> list[tuple[str, str]]:
    return [(t["taskType"], t["status"]) for t in wf["tasks"]]


async def test_event_task_publishes_then_the_workflow_goes_on(conductor: Conductor) -> None:
    c = conductor
    c.register("event_workflow_integration_test.json")
    with trio.fail_after(20):
        wf_id = await c.start("test_event_workflow", {})
        wf = await c.workflow(wf_id)
        # Conductor shows the EVENT SCHEDULED until its async system-task
        # worker runs; edged publishes it in the deciding step (README).
        assert wf["status"] == "RUNNING"
        assert kinds(wf) == [("EVENT", "COMPLETED"), ("integration_task_1", "SCHEDULED")]
        out = wf["tasks"][0]["outputData"]
        assert out["event_produced"] == "conductor:test_event_workflow:wait0"
        assert out["workflowInstanceId"] == wf_id
        await c.complete(wf_id, "t1")
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert kinds(wf)[1] == ("integration_task_1", "COMPLETED")


async def test_event_handler_completes_the_wait(conductor: Conductor) -> None:
    c = conductor
    c.register("sqs-test-workflow.json", "sqs-complete-wait-event-handler.json")
    c.engine.sinks["sqs"] = c.engine.sinks["conductor"]
    with trio.fail_after(20):
        wf_id = await c.start("sqs_test_workflow", {})
        wf = await c.wait_status(wf_id, "COMPLETED")
        assert kinds(wf) == [("EVENT", "COMPLETED"), ("WAIT", "COMPLETED")]
        assert wf["tasks"][0]["outputData"]["event_produced"] == "sqs:conductor-test-sqs-COMPLETED"
        waited = wf["tasks"][1]["outputData"]
        assert waited["eventReceived"] is True
        assert waited["completedBy"] == "event_handler"


async def test_inactive_handler_leaves_the_wait_waiting(conductor: Conductor) -> None:
    c = conductor
    c.register("sqs-test-workflow.json", "sqs-complete-wait-event-handler.json")
    c.engine.sinks["sqs"] = c.engine.sinks["conductor"]
    for handler in c.engine.registry.event_handlers:
        handler["active"] = False
    with trio.fail_after(20):
        wf_id = await c.start("sqs_test_workflow", {})
        assert kinds(await c.workflow(wf_id)) == [("EVENT", "COMPLETED"), ("WAIT", "IN_PROGRESS")]


async def test_signal_into_a_child_wait_completes_both(conductor: Conductor) -> None:
    c = conductor
    c.register(
        "signal_sub_wf_parent_integration_test.json", "signal_sub_wf_child_integration_test.json"
    )
    with trio.fail_after(20):
        wf_id = await c.start("signal_sub_wf_parent", {})
        wf = await c.workflow(wf_id)
        assert kinds(wf) == [("SUB_WORKFLOW", "IN_PROGRESS")]
        child_id = wf["tasks"][0]["subWorkflowId"]
        assert kinds(await c.workflow(child_id)) == [("WAIT", "IN_PROGRESS")]
        await c.admin("signal", child_id, "COMPLETED", {"signal": "go"})
        child = await c.wait_status(child_id, "COMPLETED")
        assert child["tasks"][0]["outputData"] == {"signal": "go"}
        wf = await c.wait_status(wf_id, "COMPLETED")
        assert kinds(wf) == [("SUB_WORKFLOW", "COMPLETED")]


async def test_signal_failed_into_a_child_fails_the_parent(conductor: Conductor) -> None:
    c = conductor
    c.register(
        "signal_sub_wf_parent_integration_test.json", "signal_sub_wf_child_integration_test.json"
    )
    with trio.fail_after(20):
        wf_id = await c.start("signal_sub_wf_parent", {})
        child_id = (await c.workflow(wf_id))["tasks"][0]["subWorkflowId"]
        await c.admin("signal", child_id, "FAILED", {})
        await c.wait_status(child_id, "FAILED")
        wf = await c.wait_status(wf_id, "FAILED")
        assert kinds(wf) == [("SUB_WORKFLOW", "FAILED")]
