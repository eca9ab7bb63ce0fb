#!/bin/sh
# A POSIX shell worker for edged's `command` binding (see README.md beside it).
#
# stdin: the task input as one JSON object, e.g. {"n":7,"fail_attempts":0}
# stdout: the task output as one JSON object
# stderr: each line becomes a task log line
# exit: 0 COMPLETED, 1 FAILED (retried per the TaskDef), 2 FAILED_WITH_TERMINAL_ERROR
#
# EDGED_TASK_ID and EDGED_ATTEMPT together are the idempotency key: after a
# crash the same task may run again with the same pair.
set -eu

input=$(cat)
# edged writes compact JSON ("key":value); a real worker would use jq.
field() { printf '%s' "$input" | sed -n "s/.*\"$1\":\(-\{0,1\}[0-9][0-9]*\).*/\1/p"; }
n=$(field n)
fail_attempts=$(field fail_attempts)

echo "checknumber: task ${EDGED_TASK_ID} attempt ${EDGED_ATTEMPT} of workflow ${EDGED_WORKFLOW_ID}" >&2
if [ -z "$n" ]; then
    echo "input has no integer n: $input" >&2
    exit 2
fi
if [ "$n" -lt 0 ]; then
    echo "n=$n is negative: no retry will change that" >&2
    exit 2
fi
if [ "${EDGED_ATTEMPT}" -lt "${fail_attempts:-0}" ]; then
    echo "attempt ${EDGED_ATTEMPT} fails on purpose (fail_attempts=${fail_attempts})" >&2
    exit 1
fi
if [ $((n % 2)) -eq 0 ]; then even=true; else even=false; fi
printf '{"n":%s,"even":%s,"attempt":%s}\n' "$n" "$even" "${EDGED_ATTEMPT}"
