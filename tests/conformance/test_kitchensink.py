"""kitchensink.json run to completion down both DECISION cases.

It mixes SIMPLE, EVENT (conductor sink), DYNAMIC, DECISION, FORK_JOIN with
SUB_WORKFLOW branches, FORK_JOIN_DYNAMIC, two JOINs and HTTP.  The test plays
every worker (HTTP is a work task here, answered by the test: no network),
walking into children, until the workflow ends.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from harness import Conductor

Json = dict[str, Any]

ES_HITS = {"response": {"body": {"hits": [{"status": "COMPLETED", "workflowId": "w1"}]}}}


def output_for(ref: str) -> Json:
    if ref == "task_1":
        return {"mod": 5, "oddEven": 1}
    if ref == "task_4":
        return {
            "dynamicTasks": [
                {"name": "task_10", "taskReferenceName": "dyn_a", "type": "SIMPLE"},
                {"name": "task_11", "taskReferenceName": "dyn_b", "type": "SIMPLE"},
            ],
            "inputs": {"dyn_a": {"n": 1}, "dyn_b": {"n": 2}},
        }
    if ref == "get_es_1":
        return ES_HITS
    return {"done": ref}


async def play_until_done(c: Conductor, wf_id: str, odd_even: int) -> list[str]:
    """Complete open work tasks in the workflow and its children; refs in order."""
    answered: list[str] = []
    for _ in range(40):
        queue = [wf_id]
        progressed = False
        while queue:
            current = queue.pop()
            for task in await c.tasks(current):
                if task.get("subWorkflowId"):
                    queue.append(task["subWorkflowId"])
                if task["status"] != "SCHEDULED":
                    continue
                ref = task["referenceTaskName"]
                out = output_for(ref)
                if ref == "task_2":
                    out = {"oddEven": odd_even, "mod": 3}
                await c.complete(current, ref, out)
                answered.append(ref)
                progressed = True
        if (await c.workflow(wf_id))["status"] != "RUNNING":
            return answered
        assert progressed, await c.shape(wf_id)
    raise AssertionError("kitchensink did not finish")


@pytest.mark.parametrize("odd_even", [0, 1])
async def test_kitchensink_runs_to_completion(conductor: Conductor, odd_even: int) -> None:
    c = conductor
    c.register("kitchensink/kitchensink.json", "kitchensink/sub_flow_1.json")
    with trio.fail_after(30):
        wf_id = await c.start("kitchensink", {"task2Name": "task_5", "mod": 5, "oddEven": odd_even})
        answered = await play_until_done(c, wf_id, odd_even)
        wf = await c.workflow(wf_id)
        assert wf["status"] == "COMPLETED", await c.shape(wf_id)
        types = [t["taskType"] for t in wf["tasks"]]
        assert types[:4] == ["task_1", "EVENT", "task_5", "DECISION"]
        assert wf["tasks"][2]["referenceTaskName"] == "task_2"  # DYNAMIC ran as task_5
        assert wf["tasks"][3]["outputData"]["caseOutput"] == [str(odd_even)]
        if odd_even:
            assert {"task_10", "task_11", "task_5", "task_6"} <= set(answered)
            assert types.count("SUB_WORKFLOW") == 2
        else:
            assert {"task_4", "dyn_a", "dyn_b"} <= set(answered)
            refs = {t["referenceTaskName"]: t for t in wf["tasks"]}
            assert refs["dyn_b"]["inputData"] == {"n": 2}
            assert refs["join1"]["status"] == "COMPLETED"
        assert types[-2:] == ["HTTP", "task_30"]
        # `..status` is a JSONPath deep scan: every status under get_es_1's output
        assert wf["output"]["statues"] == ["COMPLETED"]
        assert wf["output"]["workflowIds"] == ["w1"]
