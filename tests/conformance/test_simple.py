"""SimpleWorkflowSpec and WorkflowAndTaskConfigurationSpec, ported.

Linear workflows of SIMPLE tasks: wiring of inputs and outputs, terminal
errors, retries from the task def, optional and permissive tasks, response
timeouts, input templates, and the restart/rerun/pause admin calls on them.
"""

from __future__ import annotations

import pytest
import trio
from harness import Conductor

from edged.errors import Conflict

LINEAR = "integration_test_wf"
INPUT = {"param1": "p1 value", "param2": "p2 value"}


@pytest.fixture
def linear(conductor: Conductor) -> Conductor:
    conductor.register(
        "simple_workflow_1_integration_test.json",
        "simple_workflow_with_resp_time_out_integration_test.json",
    )
    return conductor


async def test_simple_workflow_completion(linear: Conductor) -> None:
    with trio.fail_after(20):
        wf_id = await linear.start(LINEAR, INPUT, correlationId="unit_test_1")
        assert await linear.shape(wf_id) == [("integration_task_1", "t1", "SCHEDULED")]
        assert linear.polled("integration_task_1") != []
        await linear.complete(wf_id, "t1", {"op": "task1.done"})
        wf = await linear.workflow(wf_id)
        assert wf["status"] == "RUNNING"
        assert [(t["taskType"], t["status"]) for t in wf["tasks"]] == [
            ("integration_task_1", "COMPLETED"),
            ("integration_task_2", "SCHEDULED"),
        ]
        t1, t2 = wf["tasks"]
        assert t2["inputData"]["tp1"] == "p1 value"
        assert t2["inputData"]["tp2"] == "task1.done"
        # CPEWF_TASK_ID is the id of the task being scheduled
        assert t1["inputData"]["p3"] == t1["taskId"]
        assert t2["inputData"]["tp3"] == t2["taskId"]
        await linear.complete(wf_id, "t2", {"uuid": "u-1"})
        wf = await linear.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert wf["output"] == {"o1": "p1 value", "o2": "u-1", "o3": "task1.done"}
        assert wf["correlationId"] == "unit_test_1"


async def test_null_inputs_and_outputs_propagate(linear: Conductor) -> None:
    with trio.fail_after(20):
        wf_id = await linear.start(LINEAR, {"param1": "p1 value", "param2": None})
        wf = await linear.workflow(wf_id)
        assert wf["input"]["param2"] is None
        assert "someNullKey" in wf["tasks"][0]["inputData"]
        assert wf["tasks"][0]["inputData"]["someNullKey"] is None
        await linear.complete(wf_id, "t1", {"someOtherKey": {"a": 1, "A": None}, "someKey": None})
        t1 = (await linear.tasks(wf_id))[0]
        assert t1["status"] == "COMPLETED"
        assert "someKey" in t1["outputData"] and t1["outputData"]["someKey"] is None
        assert t1["outputData"]["someOtherKey"] == {"a": 1, "A": None}


async def test_terminal_error_fails_workflow_without_retry(linear: Conductor) -> None:
    with trio.fail_after(20):
        definition = dict(linear.engine.registry.workflow(LINEAR, 1))
        definition["outputParameters"] = {
            **definition["outputParameters"],
            "validationErrors": "${t1.output.ErrorMessage}",
        }
        linear.engine.registry.put_workflow(definition)
        wf_id = await linear.start(LINEAR, INPUT)
        with pytest.raises(Conflict):
            await linear.admin("restart", wf_id, use_latest_definitions=False)
        reason = "NON TRANSIENT ERROR OCCURRED: An integration point required to complete the task is down"
        t1 = await linear.update(
            wf_id,
            "t1",
            "FAILED_WITH_TERMINAL_ERROR",
            {"ErrorMessage": "There was a terminal error"},
            reason,
        )
        wf = await linear.workflow(wf_id)
        assert wf["status"] == "FAILED"
        assert (
            wf["reasonForIncompletion"]
            == f"Task {t1['taskId']} failed with status: FAILED and reason: '{reason}'"
        )
        # the workflow output is evaluated on failure too
        assert wf["output"]["o1"] == "p1 value"
        assert wf["output"]["validationErrors"] == "There was a terminal error"
        assert [(t["referenceTaskName"], t["retryCount"]) for t in wf["tasks"]] == [("t1", 0)]
        assert set(wf["failedReferenceTaskNames"]) == {"t1"}
        assert set(wf["failedTaskNames"]) == {"integration_task_1"}


async def test_failure_is_retried_per_task_def_then_fails(linear: Conductor) -> None:
    with trio.fail_after(20):
        wf_id = await linear.start(LINEAR, INPUT)
        await linear.fail(wf_id, "t1", "first")
        assert await linear.shape(wf_id) == [
            ("integration_task_1", "t1", "FAILED"),
            ("integration_task_1", "t1", "SCHEDULED"),
        ]
        tasks = await linear.tasks(wf_id)
        assert [t["retryCount"] for t in tasks] == [0, 1]
        assert tasks[1]["retriedTaskId"] == tasks[0]["taskId"]
        await linear.fail(wf_id, "t1", "second")
        wf = await linear.workflow(wf_id)
        assert wf["status"] == "FAILED"
        # then a retry of the workflow reschedules t1 and the rest runs
        await linear.admin("retry", wf_id, resume_subworkflow_tasks=False)
        assert await linear.status(wf_id) == "RUNNING"
        assert (await linear.shape(wf_id))[-1] == ("integration_task_1", "t1", "SCHEDULED")
        await linear.complete(wf_id, "t1", {"op": "x"})
        await linear.complete(wf_id, "t2", {"uuid": "y"})
        assert await linear.status(wf_id) == "COMPLETED"


async def test_response_timeout_retries_the_task(linear: Conductor) -> None:
    with trio.fail_after(20):
        wf_id = await linear.start("RTOWF", INPUT)
        assert await linear.shape(wf_id) == [("task_rt", "task_rt", "SCHEDULED")] or (
            (await linear.shape(wf_id))[0][2] == "SCHEDULED"
        )
        ref = (await linear.tasks(wf_id))[0]["referenceTaskName"]
        # as Conductor's testResponseTimeout: a worker polls and never answers
        # (an IN_PROGRESS update would put the task back in the queue instead)
        await linear.poll(wf_id, ref)
        await linear.advance(11)
        tasks = await linear.tasks(wf_id)
        assert [t["status"] for t in tasks] == ["TIMED_OUT", "SCHEDULED"]
        assert await linear.status(wf_id) == "RUNNING"
        await linear.complete(wf_id, ref, {"op": "task1.done"})
        await linear.complete(wf_id, "t2")
        assert await linear.status(wf_id) == "COMPLETED"


async def test_pause_holds_the_next_task_until_resume(linear: Conductor) -> None:
    with trio.fail_after(20):
        wf_id = await linear.start(LINEAR, INPUT)
        await linear.admin("pause", wf_id)
        assert await linear.status(wf_id) == "PAUSED"
        await linear.complete(wf_id, "t1", {"op": "done"})
        # Conductor: no new task is scheduled while paused
        assert await linear.shape(wf_id) == [("integration_task_1", "t1", "COMPLETED")]
        await linear.admin("resume", wf_id)
        assert await linear.shape(wf_id) == [
            ("integration_task_1", "t1", "COMPLETED"),
            ("integration_task_2", "t2", "SCHEDULED"),
        ]


async def test_terminate_then_restart_runs_from_the_start(linear: Conductor) -> None:
    with trio.fail_after(20):
        wf_id = await linear.start(LINEAR, INPUT)
        await linear.admin("terminate", wf_id, "testing")
        wf = await linear.workflow(wf_id)
        assert wf["status"] == "TERMINATED"
        assert wf["reasonForIncompletion"] == "testing"
        assert [t["status"] for t in wf["tasks"]] == ["CANCELED"]
        await linear.admin("restart", wf_id, use_latest_definitions=False)
        assert await linear.shape(wf_id) == [("integration_task_1", "t1", "SCHEDULED")]
        assert await linear.status(wf_id) == "RUNNING"


async def test_rerun_from_the_second_task(linear: Conductor) -> None:
    with trio.fail_after(20):
        wf_id = await linear.start(LINEAR, INPUT)
        await linear.complete(wf_id, "t1", {"op": "one"})
        await linear.complete(wf_id, "t2", {"uuid": "two"})
        t2 = (await linear.tasks(wf_id))[1]
        await linear.admin(
            "rerun", wf_id, {"reRunFromTaskId": t2["taskId"], "taskInput": {"tp1": "again"}}
        )
        wf = await linear.workflow(wf_id)
        assert wf["status"] == "RUNNING"
        assert [(t["referenceTaskName"], t["status"]) for t in wf["tasks"]] == [
            ("t1", "COMPLETED"),
            ("t2", "SCHEDULED"),
        ]
        assert wf["tasks"][1]["inputData"] == {"tp1": "again"}
        await linear.complete(wf_id, "t2", {"uuid": "three"})
        wf = await linear.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert wf["output"]["o2"] == "three"


@pytest.fixture
def configured(conductor: Conductor) -> Conductor:
    conductor.register(
        "simple_workflow_1_integration_test.json",
        "simple_workflow_1_input_template_integration_test.json",
        "simple_workflow_3_integration_test.json",
        "simple_workflow_with_optional_task_integration_test.json",
        "simple_workflow_with_permissive_task_integration_test.json",
        "simple_workflow_with_permissive_optional_task_integration_test.json",
    )
    return conductor


async def test_optional_task_ends_completed_with_errors(configured: Conductor) -> None:
    with trio.fail_after(20):
        wf_id = await configured.start("optional_task_wf", INPUT)
        assert await configured.shape(wf_id) == [("task_optional", "t1", "SCHEDULED")]
        await configured.fail(wf_id, "t1", "NETWORK ERROR")
        assert await configured.shape(wf_id) == [
            ("task_optional", "t1", "FAILED"),
            ("task_optional", "t1", "SCHEDULED"),
        ]
        # polled and never answered: task_optional times out after 5 s (policy RETRY, retries used up)
        await configured.poll(wf_id, "t1")
        await configured.advance(6)
        assert await configured.shape(wf_id) == [
            ("task_optional", "t1", "FAILED"),
            ("task_optional", "t1", "COMPLETED_WITH_ERRORS"),
            ("integration_task_2", "t2", "SCHEDULED"),
        ]
        assert await configured.status(wf_id) == "RUNNING"
        await configured.complete(wf_id, "t2")
        assert await configured.status(wf_id) == "COMPLETED"


async def test_input_template_fills_missing_workflow_input(configured: Conductor) -> None:
    with trio.fail_after(20):
        wf_id = await configured.start(
            "integration_test_template_wf", {"param3": "external string"}
        )
        await configured.complete(wf_id, "t1", {"op": "task1.done"})
        wf = await configured.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert wf["output"] == {
            "output": "task1.done",
            "param3": "external string",
            "param2": ["list", "of", "strings"],
            "param1": {"nested_object": {"nested_key": "nested_value"}},
        }


async def test_task_timeout_retries_then_times_the_workflow_out(configured: Conductor) -> None:
    with trio.fail_after(20):
        configured.taskdef(
            "integration_task_1",
            retryCount=1,
            timeoutSeconds=1,
            responseTimeoutSeconds=1,
            retryDelaySeconds=0,
            timeoutPolicy="RETRY",
        )
        wf_id = await configured.start(LINEAR, {**INPUT, "failureWfName": "FanInOutTest"})
        await configured.poll(wf_id, "t1")
        await configured.advance(3)
        assert await configured.shape(wf_id) == [
            ("integration_task_1", "t1", "TIMED_OUT"),
            ("integration_task_1", "t1", "SCHEDULED"),
        ]
        await configured.poll(wf_id, "t1")
        await configured.advance(3)
        assert await configured.shape(wf_id) == [
            ("integration_task_1", "t1", "TIMED_OUT"),
            ("integration_task_1", "t1", "TIMED_OUT"),
        ]
        assert await configured.status(wf_id) == "TIMED_OUT"


async def test_workflow_timeout_cancels_tasks_and_retry_resumes(configured: Conductor) -> None:
    with trio.fail_after(20):
        definition = dict(configured.engine.registry.workflow("integration_test_wf3", 1))
        definition.update(timeoutPolicy="TIME_OUT_WF", timeoutSeconds=5)
        configured.engine.registry.put_workflow(definition)
        wf_id = await configured.start("integration_test_wf3", INPUT)
        await configured.poll(wf_id, "t1")
        await configured.advance(6)
        wf = await configured.workflow(wf_id)
        assert wf["status"] == "TIMED_OUT"
        assert await configured.shape(wf_id) == [("integration_task_1", "t1", "CANCELED")]
        await configured.admin("retry", wf_id, resume_subworkflow_tasks=False)
        assert await configured.status(wf_id) == "RUNNING"
        assert await configured.shape(wf_id) == [
            ("integration_task_1", "t1", "CANCELED"),
            ("integration_task_1", "t1", "SCHEDULED"),
        ]
        for ref in ("t1", "t2", "t3"):
            await configured.complete(wf_id, ref)
        assert await configured.status(wf_id) == "COMPLETED"


async def test_permissive_task_fails_the_workflow_at_its_end(configured: Conductor) -> None:
    with trio.fail_after(20):
        wf_id = await configured.start("permissive_task_wf", INPUT)
        await configured.fail(wf_id, "t1", "one")
        await configured.fail(wf_id, "t1", "two")  # retryCount 1 on the WorkflowTask
        # permissive: the failure does not stop the workflow; t2 runs
        assert await configured.shape(wf_id) == [
            ("task_permissive", "t1", "FAILED"),
            ("task_permissive", "t1", "FAILED"),
            ("integration_task_2", "t2", "SCHEDULED"),
        ]
        await configured.complete(wf_id, "t2")
        wf = await configured.workflow(wf_id)
        assert wf["status"] == "FAILED"
        assert set(wf["failedReferenceTaskNames"]) == {"t1"}


async def test_permissive_optional_task_completes_with_errors(configured: Conductor) -> None:
    with trio.fail_after(20):
        wf_id = await configured.start("permissive_optional_task_wf", INPUT)
        await configured.fail(wf_id, "t1", "one")
        await configured.fail(wf_id, "t1", "two")
        assert await configured.shape(wf_id) == [
            ("task_optional", "t1", "FAILED"),
            ("task_optional", "t1", "COMPLETED_WITH_ERRORS"),
            ("integration_task_2", "t2", "SCHEDULED"),
        ]
        await configured.complete(wf_id, "t2")
        assert await configured.status(wf_id) == "COMPLETED"
