"""DO_WHILE beyond DoWhileSpec: keepLastN, SWITCH and dynamic forks in the body,
`items`, and the e2e DoWhileTests / DoWhileEdgeCasesTests fixtures.

The e2e tests run against a live Conductor with workers and sleeps; here the
worker is the harness and time is moved with `advance`.  HTTP tasks are work
tasks (the test completes them), so no network is involved.
"""

from __future__ import annotations

from typing import Any

import trio
from harness import Conductor

Json = dict[str, Any]


def by_ref(wf: Json) -> dict[str, Json]:
    return {t["referenceTaskName"]: t for t in wf["tasks"]}


async def waiting(c: Conductor, wf_id: str, task_type: str) -> Json:
    for task in (await c.workflow(wf_id))["tasks"]:
        if task["taskType"] == task_type and task["status"] in ("SCHEDULED", "IN_PROGRESS"):
            return task
    raise AssertionError(f"no open {task_type} in {await c.shape(wf_id)}")


DEMO_SCRIPT_ERROR = "TypeError: cannot read property 'iteration' of undefined"


async def test_cleanup_demo_script_cannot_see_the_loop(conductor: Conductor) -> None:
    """do_while_cleanup_demo (no spec): its INLINE reads `$.do_while_loop_ref`, but an
    INLINE's `$` is its own input (Conductor's evaluator binds only that), so the
    first body task fails and the workflow with it, on Conductor as here."""
    c = conductor
    c.register("do_while_cleanup_demo.json")
    with trio.fail_after(20):
        wf_id = await c.start("do_while_cleanup_demo", {"max_iterations": 7})
        wf = await c.workflow(wf_id)
        assert wf["status"] == "FAILED"
        assert [(t["taskType"], t["status"]) for t in wf["tasks"]] == [
            ("DO_WHILE", "CANCELED"),
            ("INLINE", "FAILED"),
        ]
        assert DEMO_SCRIPT_ERROR in wf["tasks"][1]["reasonForIncompletion"]


async def test_timeline_demo_script_cannot_see_the_loop(conductor: Conductor) -> None:
    """do_while_timeline_ui_demo (no spec): same mistake in the SWITCH's default case."""
    c = conductor
    c.register("do_while_timeline_ui_demo.json")
    with trio.fail_after(20):
        wf_id = await c.start("do_while_timeline_ui_demo", {})
        wf = await c.workflow(wf_id)
        assert wf["status"] == "FAILED"
        assert [(t["taskType"], t["status"]) for t in wf["tasks"]] == [
            ("DO_WHILE", "CANCELED"),
            ("SWITCH", "COMPLETED"),
            ("INLINE", "FAILED"),
        ]
        assert wf["tasks"][1]["outputData"]["evaluationResult"] == ["default"]
        assert DEMO_SCRIPT_ERROR in wf["tasks"][2]["reasonForIncompletion"]


async def test_keep_last_n_in_two_forked_loops(conductor: Conductor) -> None:
    """DoWhileTests.testKeepLstN3: 18 tasks remain (4 + 2 iterations kept)."""
    c = conductor
    c.register("e2e/do_while_keep_last_n_fix.json")
    with trio.fail_after(20):
        wf_id = await c.start("keep_last_n_example_3", {"batch": [[1, 2], [3, 4]]})
        for _ in range(5):
            await c.complete(
                wf_id, "simple_ref_1__" + str(await _iteration(c, wf_id, "do_while_ref"))
            )
            await c.complete(
                wf_id, "simple_ref__" + str(await _iteration(c, wf_id, "do_while_ref_1"))
            )
            await c.complete(
                wf_id, "simple_ref_2__" + str(await _iteration(c, wf_id, "do_while_ref"))
            )
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert len(wf["tasks"]) == 18
        refs = by_ref(wf)
        assert "simple_ref__1" not in refs and "simple_ref__2" in refs
        assert "simple_ref_1__3" not in refs and "simple_ref_1__4" in refs


async def _iteration(c: Conductor, wf_id: str, loop_ref: str) -> int:
    return int(by_ref(await c.workflow(wf_id))[loop_ref]["iteration"])


async def test_items_loop_over_dynamic_forks_of_sub_workflows(conductor: Conductor) -> None:
    """keep_last_n_example: `items` drives the loop; each item forks WAIT children."""
    c = conductor
    c.register("e2e/do_while_keep_last_n_fix.json")
    with trio.fail_after(30):
        batch = [["a", "b"], ["c"], ["d", "e"]]
        wf_id = await c.start("keep_last_n_example", {"batch": batch})
        for _ in batch:
            await c.advance(2)
        wf = await c.wait_status(wf_id, "COMPLETED")
        loop = wf["tasks"][0]
        assert loop["outputData"]["iteration"] == 3
        assert loop["iteration"] == 3
        # keepLastN 2: only the last two iterations' tasks and outputs remain
        assert sorted({t["iteration"] for t in wf["tasks"][1:]}) == [2, 3]
        assert sorted(k for k in loop["outputData"] if k.isdigit()) == ["2", "3"]
        prep = by_ref(wf)["dynamic_fork_prep_ref__3"]
        assert prep["inputData"]["urls"] == ["d", "e"]
        assert prep["outputData"]["result"] == [{"value": "d"}, {"value": "e"}]


async def test_items_loop_over_an_empty_list_completes_at_once(conductor: Conductor) -> None:
    c = conductor
    c.register("e2e/do_while_keep_last_n_fix.json")
    with trio.fail_after(20):
        wf_id = await c.start("keep_last_n_example", {"batch": []})
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        assert [(t["taskType"], t["status"]) for t in wf["tasks"]] == [("DO_WHILE", "COMPLETED")]
        assert wf["tasks"][0]["outputData"]["iteration"] == 0


async def test_condition_is_not_evaluated_before_the_body_ends(conductor: Conductor) -> None:
    """DoWhileTests.testDoWhileScriptIsNotEvaledEarlyWhenSyncSystemTaskInside."""
    c = conductor
    c.register("e2e/do_while_early_script_eval_wf.json")
    with trio.fail_after(20):
        wf_id = await c.start(
            "DoWhileEarlyEvalScript", {"namespace_id": "namespace_spa_sAPhRsGAGAbYNUSNZN3Jts"}
        )
        await c.complete(wf_id, "reserve_token_ref", {"token_id": "2WdNxfi5p4lGPzbZD3IpDvruaWs"})
        await c.complete(wf_id, "acquire_token_ref", {"acquired_at": 1697058745255})
        await c.complete(
            wf_id,
            "predictions_start_daily_bq_export_pipeline__1",
            {"pipeline_uid": "2WdNxykVDIDX9XpU5mtPtF0bZJi", "namespace_enabled": True},
        )
        refs = by_ref(await c.workflow(wf_id))
        assert refs["if_terminate_condition__1"]["status"] == "COMPLETED"
        assert refs["predictions_daily_bq_export_pipeline_loop"]["status"] == "IN_PROGRESS"
        long_running = "predictions_get_daily_bq_export_pipeline_status_long_running__1"
        assert refs[long_running]["status"] == "SCHEDULED"
        await c.complete(wf_id, long_running)
        await c.complete(wf_id, "predictions_process_daily_bq_export_pipeline_results__1")
        refs = by_ref(await c.workflow(wf_id))
        assert refs["predictions_daily_bq_export_pipeline_loop"]["status"] == "COMPLETED"
        assert refs["return_token_ref"]["status"] == "SCHEDULED"
        await c.complete(wf_id, "return_token_ref")
        assert await c.status(wf_id) == "COMPLETED"


async def test_waits_in_the_body_keep_their_order(conductor: Conductor) -> None:
    """DoWhileTests.testDoWhileSetVariableFix (do-while-set-variable-fix)."""
    c = conductor
    c.register("e2e/do_while_early_script_eval_wf.json")
    with trio.fail_after(20):
        wf_id = await c.start("do-while-set-variable-fix", {})
        await c.advance(3)
        await c.advance(3)
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED", await c.shape(wf_id)
        tasks = wf["tasks"]
        assert len(tasks) == 8
        assert tasks[5]["referenceTaskName"] == "wait_ref_1__1"
        # Conductor asserts ">": its next decide runs later; edged schedules
        # the next iteration in the same transition that ends the WAIT.
        assert tasks[6]["startTime"] >= tasks[5]["endTime"]
        assert tasks[7]["startTime"] >= tasks[5]["endTime"]


async def test_wait_and_switch_ten_iterations(conductor: Conductor) -> None:
    """DoWhileEdgeCasesTests.testVialtoDoWhile (do_while_wait_switch_iteration_test)."""
    c = conductor
    c.register("e2e/do_while_wait_switch_iteration_test.json")
    with trio.fail_after(30):
        wf_id = await c.start("do_while_wait_switch_iteration_test", {})
        for i in range(10):
            http = await waiting(c, wf_id, "HTTP")
            await c.complete(wf_id, http["referenceTaskName"], {"response": {"statusCode": 200}})
            wait = await waiting(c, wf_id, "WAIT")
            await c.complete(wf_id, wait["referenceTaskName"], {"result": "b" if i < 9 else "a"})
            http = await waiting(c, wf_id, "HTTP")
            await c.complete(wf_id, http["referenceTaskName"])
        http = await waiting(c, wf_id, "HTTP")
        assert http["referenceTaskName"] == "http_ref_3"
        await c.complete(wf_id, "http_ref_3")
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED"
        loop = by_ref(wf)["do_while_ref"]
        assert loop["outputData"]["iteration"] == 10
        # the INLINE saw the loop's output while its iteration ran
        assert by_ref(wf)["inline_sample_ref__3"]["outputData"]["result"]["iteration"] == 3


async def test_switch_loop_stops_itself_after_26_iterations(conductor: Conductor) -> None:
    """DoWhileEdgeCasesTests.testVialtoDoWhile3 (do_while_keep_last_n_switch_test)."""
    c = conductor
    c.register("e2e/do_while_keep_last_n_switch_test.json")
    with trio.fail_after(20):
        wf_id = await c.start("do_while_keep_last_n_switch_test", {})
        wf = await c.wait_status(wf_id, "COMPLETED")
        loop = by_ref(wf)["do_while_ref"]
        assert loop["outputData"]["iteration"] == 26
        assert sorted({t["iteration"] for t in wf["tasks"][1:]}) == [24, 25, 26]


async def test_stackoverflower_999_iterations(conductor: Conductor) -> None:
    """DoWhileEdgeCasesTests.testStackoverflower."""
    c = conductor
    c.register("e2e/stackoverflower.json")
    with trio.fail_after(30):
        wf_id = await c.start("stackoverflower", {"n": 999})
        wf = await c.wait_status(wf_id, "COMPLETED")
        assert by_ref(wf)["loop_ref"]["outputData"]["iteration"] == 999
        assert len(wf["tasks"]) == 1000
