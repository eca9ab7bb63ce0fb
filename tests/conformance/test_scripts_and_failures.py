"""JsonJQTransformSpec, the rest of LambdaAndTerminateTaskSpec, and FailureWorkflowSpec.

The failure workflow's input is what Conductor's WorkflowExecutor builds when
it starts one: workflowId, reason, failureStatus, failureTaskId (the task that
failed the workflow, a TERMINATE counting as one) and failedWorkflow.
"""

from __future__ import annotations

from typing import Any

import trio
from harness import Conductor

Json = dict[str, Any]

JQ_FILES = (
    "simple_json_jq_transform_integration_test.json",
    "sequential_json_jq_transform_integration_test.json",
    "json_jq_transform_result_integration_test.json",
)
TERMINATE_FILES = (
    "failure_workflow_for_terminate_task_workflow.json",
    "terminate_task_completed_workflow_integration_test.json",
    "terminate_task_failed_workflow_integration.json",
    "simple_lambda_workflow_integration_test.json",
    "terminate_task_parent_workflow.json",
    "terminate_task_sub_workflow.json",
    "test_task_failed_parent_workflow.json",
    "test_task_failed_sub_workflow.json",
)
GOOD_JQ_INPUT = {"in1": {"array": ["a", "b"]}, "in2": {"array": ["c", "d"]}}


def kinds(wf: Json) -> list[tuple[str, str]]:
    return [(t["taskType"], t["status"]) for t in wf["tasks"]]


# ------------------------------------------------------------------ JSON_JQ


async def test_jq_transform_succeeds(conductor: Conductor) -> None:
    c = conductor
    c.register(*JQ_FILES)
    with trio.fail_after(20):
        wf = await c.workflow(await c.start("test_json_jq_transform_wf", GOOD_JQ_INPUT))
        assert wf["status"] == "COMPLETED"
        assert kinds(wf) == [("JSON_JQ_TRANSFORM", "COMPLETED")]
        out = wf["tasks"][0]["outputData"]
        assert out["result"] == {"out": ["a", "b", "c", "d"]}
        assert out["resultList"] == [{"out": ["a", "b", "c", "d"]}]


async def test_jq_transform_fails_with_jq_message(conductor: Conductor) -> None:
    c = conductor
    c.register(*JQ_FILES)
    with trio.fail_after(20):
        wf = await c.workflow(await c.start("test_json_jq_transform_wf", {"in1": "a", "in2": "b"}))
        assert wf["status"] == "FAILED"
        assert kinds(wf) == [("JSON_JQ_TRANSFORM", "FAILED")]
        # jq's own wording (Conductor's jackson-jq: 'Cannot index string with string "array"')
        assert wf["tasks"][0]["reasonForIncompletion"].startswith("Cannot index string with string")
        assert '"array"' in wf["tasks"][0]["reasonForIncompletion"]


async def test_rerun_failed_jq_with_new_input(conductor: Conductor) -> None:
    c = conductor
    c.register(*JQ_FILES)
    with trio.fail_after(20):
        wf_id = await c.start("test_json_jq_transform_wf", {"in1": "a", "in2": "b"})
        wf = await c.workflow(wf_id)
        assert wf["status"] == "FAILED"
        await c.admin(
            "rerun",
            wf_id,
            {
                "reRunFromWorkflowId": wf_id,
                "reRunFromTaskId": wf["tasks"][0]["taskId"],
                "taskInput": {
                    "input": GOOD_JQ_INPUT,
                    "queryExpression": ".input as $_ | { out: ($_.in1.array + $_.in2.array) }",
                },
            },
        )
        wf = await c.wait_status(wf_id, "COMPLETED")
        assert kinds(wf) == [("JSON_JQ_TRANSFORM", "COMPLETED")]
        assert wf["tasks"][0]["outputData"]["result"] == {"out": ["a", "b", "c", "d"]}


async def test_sequential_jq_with_nested_objects(conductor: Conductor) -> None:
    c = conductor
    c.register(*JQ_FILES)
    request_transform = '{name: (.body.name + " you are " + .body.title) }'
    wf_input = {
        "method": "POST",
        "body": {"name": "Beary Beariston", "title": "the Brown Bear"},
        "requestTransform": request_transform,
        "responseTransform": '{result: "reply: " + .response.body.message}',
    }
    with trio.fail_after(20):
        wf = await c.workflow(await c.start("sequential_json_jq_transform_wf", wf_input))
        assert wf["status"] == "COMPLETED"
        assert kinds(wf) == [("JSON_JQ_TRANSFORM", "COMPLETED")] * 2
        first = wf["tasks"][0]["outputData"]["result"]
        assert first["method"] == "POST"
        assert first["requestTransform"] == request_transform
        assert first["responseTransform"] == wf_input["responseTransform"]
        assert wf["tasks"][1]["outputData"]["result"] == {
            "name": "Beary Beariston you are the Brown Bear"
        }


async def test_jq_results_drive_decisions(conductor: Conductor) -> None:
    c = conductor
    c.register(*JQ_FILES)
    with trio.fail_after(20):
        wf_id = await c.start("json_jq_transform_result_wf", {"requestedAction": "redeliver"})
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED", await c.shape(wf_id)
        assert kinds(wf) == [
            ("JSON_JQ_TRANSFORM", "COMPLETED"),
            ("DECISION", "COMPLETED"),
            ("JSON_JQ_TRANSFORM", "COMPLETED"),
            ("DECISION", "COMPLETED"),
        ]
        assert wf["tasks"][0]["outputData"]["result"] == "CREATE"
        assert wf["tasks"][1]["inputData"]["case"] == "CREATE"
        result = wf["tasks"][2]["outputData"]["result"]
        assert len(result) == 3 and "redeliver" in result
        assert wf["tasks"][3]["inputData"]["case"] == "true"


# ------------------------------------------------------- LAMBDA / TERMINATE


async def test_lambda(conductor: Conductor) -> None:
    c = conductor
    c.register(*TERMINATE_FILES)
    with trio.fail_after(20):
        wf = await c.workflow(await c.start("test_lambda_wf", {"a": 1}))
        assert wf["status"] == "COMPLETED"
        assert kinds(wf) == [("LAMBDA", "COMPLETED")]
        assert wf["tasks"][0]["outputData"] == {"result": {"testvalue": True}}
        assert wf["tasks"][0]["seq"] == 1


async def test_terminate_completed_reason_and_seq(conductor: Conductor) -> None:
    c = conductor
    c.register(*TERMINATE_FILES)
    with trio.fail_after(20):
        wf = await c.workflow(await c.start("test_terminate_task_wf", {"a": 1}))
        assert wf["status"] == "COMPLETED"
        assert "Workflow is COMPLETED by TERMINATE task" in wf["reasonForIncompletion"]
        assert [t["seq"] for t in wf["tasks"]] == [1, 2]
        assert wf["output"] == {"result": {"testvalue": True}}


async def test_terminate_failed_starts_the_failure_workflow(conductor: Conductor) -> None:
    c = conductor
    c.register(*TERMINATE_FILES)
    with trio.fail_after(20):
        wf_id = await c.start("test_terminate_task_failed_wf", {"a": 1}, correlationId="testId")
        wf = await c.workflow(wf_id)
        assert wf["status"] == "FAILED"
        assert wf["reasonForIncompletion"] == "Early exit in terminate"
        assert kinds(wf) == [("LAMBDA", "COMPLETED"), ("TERMINATE", "COMPLETED")]
        assert [t["seq"] for t in wf["tasks"]] == [1, 2]
        failure_id = wf["output"]["conductor.failure_workflow"]
        failure = await c.wait_status(failure_id, "COMPLETED")
        assert failure["correlationId"] == "testId"
        assert kinds(failure) == [("LAMBDA", "COMPLETED")]
        given = failure["input"]
        assert given["workflowId"] == wf_id
        assert given["failureTaskId"] == wf["tasks"][1]["taskId"]
        assert given["reason"] == "Early exit in terminate"
        assert given["failureStatus"] == "FAILED"
        assert given["failedWorkflow"]["workflowId"] == wf_id
        assert given["failedWorkflow"]["status"] == "FAILED"


async def test_terminate_in_a_fork_cancels_the_child(conductor: Conductor) -> None:
    c = conductor
    c.register(*TERMINATE_FILES)
    with trio.fail_after(20):
        wf_id = await c.start("test_terminate_task_parent_wf", {"a": 1})
        wf = await c.workflow(wf_id)
        assert wf["status"] == "RUNNING"
        assert kinds(wf) == [
            ("FORK", "COMPLETED"),
            ("LAMBDA", "COMPLETED"),
            ("LAMBDA", "COMPLETED"),
            ("JOIN", "IN_PROGRESS"),
            ("SUB_WORKFLOW", "IN_PROGRESS"),
            ("WAIT", "IN_PROGRESS"),
        ]
        assert [t["referenceTaskName"] for t in wf["tasks"][1:3]] == ["lambdaTask1", "lambdaTask2"]
        assert [t["seq"] for t in wf["tasks"]] == [1, 2, 3, 4, 5, 6]
        child_id = wf["tasks"][4]["subWorkflowId"]
        child = await c.workflow(child_id)
        assert child["status"] == "RUNNING"
        assert kinds(child) == [("integration_task_3", "SCHEDULED")]
        await c.complete(wf_id, wf["tasks"][5]["referenceTaskName"])
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert "Workflow is COMPLETED by TERMINATE task" in wf["reasonForIncompletion"]
        assert kinds(wf) == [
            ("FORK", "COMPLETED"),
            ("LAMBDA", "COMPLETED"),
            ("LAMBDA", "COMPLETED"),
            ("JOIN", "CANCELED"),
            ("SUB_WORKFLOW", "CANCELED"),
            ("WAIT", "COMPLETED"),
            ("TERMINATE", "COMPLETED"),
        ]
        assert wf["tasks"][6]["seq"] == 7
        child = await c.wait_status(child_id, "TERMINATED")
        assert (
            "Parent workflow has been terminated with reason: Workflow is COMPLETED by TERMINATE task"
            in child["reasonForIncompletion"]
        )
        assert kinds(child) == [("integration_task_3", "CANCELED")]


async def test_failed_child_fails_parent_with_failure_workflow(conductor: Conductor) -> None:
    c = conductor
    c.register(*TERMINATE_FILES)
    with trio.fail_after(20):
        wf_id = await c.start("test_task_failed_parent_wf", {"a": 1})
        wf = await c.wait_status(wf_id, "FAILED")
        assert kinds(wf) == [("LAMBDA", "COMPLETED"), ("SUB_WORKFLOW", "FAILED")]
        assert wf["tasks"][0]["referenceTaskName"] == "lambdaTask1"
        child = await c.workflow(wf["tasks"][1]["subWorkflowId"])
        assert child["status"] == "FAILED"
        assert "Workflow is FAILED by TERMINATE task" in child["reasonForIncompletion"]
        assert kinds(child) == [("LAMBDA", "COMPLETED"), ("TERMINATE", "COMPLETED")]
        failure = await c.wait_status(wf["output"]["conductor.failure_workflow"], "COMPLETED")
        assert failure["correlationId"] == wf["correlationId"]
        assert failure["input"]["workflowId"] == wf_id
        assert failure["input"]["failureTaskId"] == wf["tasks"][1]["taskId"]
        assert kinds(failure) == [("LAMBDA", "COMPLETED")]


# ------------------------------------------- TERMINATE with TERMINATED status


async def test_terminate_with_terminated_status(conductor: Conductor) -> None:
    """terminate_task_terminated_status_test (fixture only): nothing after it runs."""
    c = conductor
    c.register("terminate_task_terminated_status_test.json")
    with trio.fail_after(20):
        wf = await c.workflow(await c.start("test_terminate_task_terminated", {"a": 1}))
        assert wf["status"] == "TERMINATED"
        assert wf["reasonForIncompletion"] == "Early exit with TERMINATED status"
        assert kinds(wf) == [("LAMBDA", "COMPLETED"), ("TERMINATE", "COMPLETED")]
        # A LAMBDA's script is a function body (Conductor wraps it in
        # `function scriptFun(){...}`): `e();` without `return` yields null.
        assert wf["output"] == {"result": None}


async def test_terminate_with_terminated_status_inside_a_loop(conductor: Conductor) -> None:
    """..._in_do_while_test: the first iteration's TERMINATE ends the loop and the workflow."""
    c = conductor
    c.register("terminate_task_terminated_status_in_do_while_test.json")
    with trio.fail_after(20):
        wf = await c.workflow(await c.start("test_terminate_task_terminated_in_do_while", {}))
        assert wf["status"] == "TERMINATED"
        assert wf["reasonForIncompletion"] == (
            "Workflow terminated by TERMINATE task in DO_WHILE loop"
        )
        assert kinds(wf) == [
            ("DO_WHILE", "CANCELED"),
            ("LAMBDA", "COMPLETED"),
            ("TERMINATE", "COMPLETED"),
        ]
        assert [t["iteration"] for t in wf["tasks"][1:]] == [1, 1]
