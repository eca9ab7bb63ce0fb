"""Drive a running edged with the official conductor-python SDK, unchanged.

Run as a program (by tests/workers/test_conductor_sdk.py), never imported by
pytest: ``python sdk_worker.py URL COUNT DOMAIN|-``.  It

1. registers the task definition and a one-task workflow with the SDK's
   ``OrkesMetadataClient``;
2. starts COUNT executions with ``OrkesWorkflowClient`` (with
   ``taskToDomain`` when DOMAIN is given);
3. runs an SDK ``TaskHandler`` whose ``Worker`` (in the given domain) doubles
   ``n``, writes a log line through its TaskContext and returns a dict;
4. waits (bounded) until every execution has ended, stops the handler's
   processes and prints one JSON line: the workflow ids and their statuses.

Exit status 0 when all executions completed, 1 otherwise, 2 on a timeout.
"""

# no `from __future__ import annotations`: the SDK inspects real annotation types

import json
import sys
import time

from conductor.client.automator.task_handler import TaskHandler
from conductor.client.configuration.configuration import Configuration
from conductor.client.context.task_context import get_task_context
from conductor.client.http.models import StartWorkflowRequest, TaskDef
from conductor.client.http.models.workflow_def import WorkflowDef
from conductor.client.http.models.workflow_task import WorkflowTask
from conductor.client.orkes.orkes_metadata_client import OrkesMetadataClient
from conductor.client.orkes.orkes_workflow_client import OrkesWorkflowClient
from conductor.client.worker.worker import Worker

TASK = "sdk_double"
WORKFLOW = "sdk_doubling"
DEADLINE_S = 60.0


def double(n: int) -> dict[str, object]:
    # the SDK passes the task's inputData by parameter name
    get_task_context().add_log(f"doubling {n}")
    return {"doubled": n * 2, "worker": "sdk"}


def main() -> int:
    url, count, domain_arg = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    domain = None if domain_arg == "-" else domain_arg
    conf = Configuration(server_api_url=url + "/api")
    metadata = OrkesMetadataClient(conf)
    metadata.register_task_def(TaskDef(name=TASK, retry_count=0, response_timeout_seconds=30))
    metadata.register_workflow_def(
        WorkflowDef(
            name=WORKFLOW,
            version=1,
            tasks=[
                WorkflowTask(
                    name=TASK,
                    task_reference_name="d",
                    type="SIMPLE",
                    input_parameters={"n": "${workflow.input.n}"},
                )
            ],
            output_parameters={"doubled": "${d.output.doubled}"},
            schema_version=2,
            timeout_seconds=0,
        ),
        overwrite=True,
    )
    workflows = OrkesWorkflowClient(conf)
    ids = []
    for n in range(count):
        request = StartWorkflowRequest(name=WORKFLOW, version=1, input={"n": n})
        if domain is not None:
            request.task_to_domain = {TASK: domain}
        ids.append(workflows.start_workflow(request))
    worker = Worker(task_definition_name=TASK, execute_function=double, poll_interval=0.05)
    if domain is not None:
        worker.domain = domain
    statuses: dict[str, str] = {}
    handler = TaskHandler(workers=[worker], configuration=conf, scan_for_annotated_workers=False)
    try:
        handler.start_processes()
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            statuses = {wid: workflows.get_workflow(wid, include_tasks=False).status for wid in ids}
            if all(s not in ("RUNNING", "PAUSED") for s in statuses.values()):
                break
            time.sleep(0.1)
    finally:
        handler.stop_processes()
    print(json.dumps({"ids": ids, "statuses": statuses}), flush=True)
    if any(s in ("RUNNING", "PAUSED") for s in statuses.values()):
        return 2
    return 0 if all(s == "COMPLETED" for s in statuses.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
