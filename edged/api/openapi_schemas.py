"""Component schemas of the OpenAPI document (``edged.api.openapi``): Conductor's model classes.

Theory of operation.  Plain data.  Request schemas say what the API's
checks (``edged.api.shapes``) accept, field by field, so a client generator
or a fuzzer produces requests that reach the engine; response schemas list
Conductor's fields and stay open (``additionalProperties``), as Conductor's
own are.  Keep a schema in step with the shape function it documents.
"""

from __future__ import annotations

from typing import Any, Final

JsonDict = dict[str, Any]

_STR: Final = {"type": "string"}
_NSTR: Final = {"type": "string", "nullable": True}
_INT: Final = {"type": "integer", "format": "int32"}
_LONG: Final = {"type": "integer", "format": "int64"}
_BOOL: Final = {"type": "boolean"}
_OBJ: Final = {"type": "object", "additionalProperties": True}
_NOBJ: Final = {"type": "object", "additionalProperties": True, "nullable": True}
_WORKFLOW_STATUS: Final = {
    "type": "string",
    "enum": ["RUNNING", "COMPLETED", "FAILED", "TIMED_OUT", "TERMINATED", "PAUSED"],
}


def _obj(required: list[str] | None = None, **props: JsonDict) -> JsonDict:
    schema: JsonDict = {"type": "object", "properties": props, "additionalProperties": True}
    if required:
        schema["required"] = required
    return schema


SCHEMAS: Final[dict[str, JsonDict]] = {
    "ErrorResponse": _obj(
        ["status", "message"],
        status=_INT,
        code=_NSTR,
        message=_STR,
        instance=_NSTR,
        retryable=_BOOL,
        validationErrors={
            "type": "array",
            "items": _obj(path=_NSTR, message=_NSTR, invalidValue={"nullable": True}),
        },
    ),
    "Health": _obj(["healthy"], healthy=_BOOL),
    "WorkflowTask": _obj(
        ["name", "taskReferenceName"],
        name=_STR,
        taskReferenceName=_STR,
        type=_STR,
        inputParameters=_OBJ,
        optional=_BOOL,
    ),
    "WorkflowDef": _obj(
        ["name", "tasks"],
        name={"type": "string", "minLength": 1},
        description=_NSTR,
        version=_INT,
        tasks={"type": "array", "items": {"$ref": "#/components/schemas/WorkflowTask"}},
        inputParameters={"type": "array", "items": _STR},
        outputParameters=_OBJ,
        schemaVersion=_INT,
        restartable=_BOOL,
        ownerEmail=_NSTR,
        timeoutPolicy={"type": "string", "enum": ["TIME_OUT_WF", "ALERT_ONLY"]},
        timeoutSeconds=_LONG,
        failureWorkflow=_NSTR,
    ),
    "TaskDef": _obj(
        ["name"],
        name={"type": "string", "minLength": 1},
        description=_NSTR,
        retryCount=_INT,
        timeoutSeconds=_LONG,
        responseTimeoutSeconds=_LONG,
        retryLogic={"type": "string", "enum": ["FIXED", "EXPONENTIAL_BACKOFF", "LINEAR_BACKOFF"]},
        retryDelaySeconds=_INT,
        timeoutPolicy={"type": "string", "enum": ["RETRY", "TIME_OUT_WF", "ALERT_ONLY"]},
        concurrentExecLimit={"type": "integer", "format": "int32", "nullable": True},
        rateLimitPerFrequency={"type": "integer", "format": "int32", "nullable": True},
        rateLimitFrequencyInSeconds={"type": "integer", "format": "int32", "nullable": True},
        ownerEmail=_NSTR,
    ),
    "StartWorkflowRequest": _obj(
        ["name"],
        name={"type": "string", "minLength": 1},
        version={"type": "integer", "format": "int32", "nullable": True},
        correlationId=_NSTR,
        input=_NOBJ,
        taskToDomain={"type": "object", "additionalProperties": _STR, "nullable": True},
        workflowDef={"allOf": [{"$ref": "#/components/schemas/WorkflowDef"}], "nullable": True},
        priority={"type": "integer", "minimum": 0, "maximum": 99, "nullable": True},
        idempotencyKey=_NSTR,
        idempotencyStrategy={
            "type": "string",
            "enum": ["FAIL", "RETURN_EXISTING", "FAIL_ON_RUNNING"],
            "nullable": True,
        },
    ),
    "RerunWorkflowRequest": _obj(
        reRunFromWorkflowId=_NSTR,
        workflowInput=_NOBJ,
        reRunFromTaskId=_NSTR,
        taskInput=_NOBJ,
        correlationId=_NSTR,
    ),
    "SkipTaskRequest": _obj(taskInput=_NOBJ, taskOutput=_NOBJ),
    "TaskResultStatus": {
        "type": "string",
        "enum": ["IN_PROGRESS", "FAILED", "FAILED_WITH_TERMINAL_ERROR", "COMPLETED"],
    },
    "TaskExecLog": _obj(log=_STR, taskId=_NSTR, createdTime=_LONG),
    "TaskResult": _obj(
        ["workflowInstanceId", "taskId", "status"],
        workflowInstanceId={"type": "string", "minLength": 1},
        taskId={"type": "string", "minLength": 1},
        status={"$ref": "#/components/schemas/TaskResultStatus"},
        outputData=_NOBJ,
        reasonForIncompletion=_NSTR,
        callbackAfterSeconds={"type": "integer", "format": "int64", "minimum": 0},
        logs={"type": "array", "items": {"$ref": "#/components/schemas/TaskExecLog"}},
        workerId=_NSTR,
        extendLease=_BOOL,
    ),
    "PollData": _obj(queueName=_STR, domain=_NSTR, workerId=_NSTR, lastPollTime=_LONG),
    "Task": _obj(
        taskId=_STR,
        taskType=_STR,
        status=_STR,
        referenceTaskName=_STR,
        workflowInstanceId=_STR,
        inputData=_OBJ,
        outputData=_OBJ,
        retryCount=_INT,
        seq=_INT,
    ),
    "Workflow": _obj(
        workflowId=_STR,
        workflowName=_STR,
        workflowVersion=_INT,
        status=_WORKFLOW_STATUS,
        correlationId=_NSTR,
        input=_OBJ,
        output=_OBJ,
        variables=_OBJ,
        reasonForIncompletion=_NSTR,
        createTime=_LONG,
        updateTime=_LONG,
        endTime=_LONG,
        tasks={"type": "array", "items": {"$ref": "#/components/schemas/Task"}},
    ),
    "WorkflowStatus": _obj(
        ["workflowId", "status"],
        workflowId=_STR,
        correlationId=_NSTR,
        output=_NOBJ,
        variables=_NOBJ,
        status=_WORKFLOW_STATUS,
    ),
    "WorkflowSummary": _obj(
        workflowType=_STR,
        version=_INT,
        workflowId=_STR,
        correlationId=_NSTR,
        startTime=_NSTR,
        updateTime=_NSTR,
        endTime=_NSTR,
        status=_WORKFLOW_STATUS,
        input=_NSTR,
        output=_NSTR,
        reasonForIncompletion=_NSTR,
        executionTime=_LONG,
        event=_NSTR,
        failedReferenceTaskNames=_STR,
        priority=_INT,
        inputSize=_LONG,
        outputSize=_LONG,
    ),
    "SearchResultWorkflowSummary": _obj(
        ["totalHits", "results"],
        totalHits=_LONG,
        results={"type": "array", "items": {"$ref": "#/components/schemas/WorkflowSummary"}},
        truncated={"type": "boolean", "description": "edged: the free-text scan hit its row cap"},
    ),
    "SearchResultWorkflow": _obj(
        ["totalHits", "results"],
        totalHits=_LONG,
        results={"type": "array", "items": {"$ref": "#/components/schemas/Workflow"}},
        truncated={"type": "boolean", "description": "edged: the free-text scan hit its row cap"},
    ),
    "TaskSummary": _obj(
        workflowId=_STR,
        workflowType=_STR,
        correlationId=_NSTR,
        scheduledTime=_NSTR,
        startTime=_NSTR,
        updateTime=_NSTR,
        endTime=_NSTR,
        status=_STR,
        reasonForIncompletion=_NSTR,
        executionTime=_LONG,
        queueWaitTime=_LONG,
        taskDefName=_STR,
        taskType=_STR,
        input=_NSTR,
        output=_NSTR,
        taskId=_STR,
        workflowPriority=_INT,
        domain=_NSTR,
    ),
    "SearchResultTaskSummary": _obj(
        ["totalHits", "results"],
        totalHits=_LONG,
        results={"type": "array", "items": {"$ref": "#/components/schemas/TaskSummary"}},
    ),
    "SearchResultTask": _obj(
        ["totalHits", "results"],
        totalHits=_LONG,
        results={"type": "array", "items": {"$ref": "#/components/schemas/Task"}},
    ),
    "WorkflowIds": {
        "type": "array",
        "maxItems": 1000,
        "items": {"type": "string", "minLength": 1, "maxLength": 1024},
    },
    "BulkResponse": _obj(
        ["bulkErrorResults", "bulkSuccessfulResults"],
        bulkErrorResults={"type": "object", "additionalProperties": _STR},
        bulkSuccessfulResults={"type": "array", "items": _STR},
    ),
}
