"""The HTTP system task: Conductor's `HTTP` type, run in-process over `http_client`.

Theory of operation
-------------------
Registered at import as the executor of task type `HTTP`
(`register_type_executor`): an HTTP task with no binding and no `@task`
handler for its name runs here, on the event loop (no thread).

Input, as Conductor's HttpTask reads it: `http_request` is an object with
`uri` (required), `method` (required: GET PUT POST PATCH DELETE OPTIONS HEAD
TRACE), `headers` (name -> value; null values skipped), `body` (a string is
sent as is, anything else as JSON), `contentType` and `accept` (default
application/json), `connectionTimeOut` and `readTimeOut` (milliseconds,
default 3000 each, as Conductor).  Orkes' flat form (`uri`, `method`, ... at
the top of the task input) is accepted when `http_request` is absent.

Output: `response` = {statusCode, reasonPhrase, headers: {name: [values]},
body}; a body that is JSON is parsed, any other body is text (bytes that are
not UTF-8 are replaced), an empty body is null.  2xx -> COMPLETED.  Anything
else -> FAILED (retried per the TaskDef) with the response in the output and
a reason naming the status and the start of the body.  No response at all
(refused, unreachable, a timeout, a malformed or oversized response) ->
FAILED with the reason and `response` set to that reason, as Conductor does.
A missing or malformed `http_request` fails with Conductor's wording.

https verifies the server against the system's CA store (OpenSSL's
`SSL_CERT_FILE` / `SSL_CERT_DIR` point it elsewhere) and its host name.

Bounds: the response body is capped at `MAX_RESPONSE_BYTES` (the output goes
into the journal); the whole exchange is also bounded by the TaskDef's
timeouts (`TaskContext.timeout_s`), and a cancel closes the connection.
Not supported: Conductor's `asyncComplete`, `vipAddress`/`appName`
discovery, redirects and compressed responses.
"""

from __future__ import annotations

import json
import math
from http import HTTPStatus
from typing import Any

import trio

from edged.executors.http_client import HttpFailure, HttpLimits, HttpRequest, HttpResponse, fetch
from edged.handlers import TaskContext, TaskFailed
from edged.runtime.bindings import register_type_executor

REQUEST_PARAMETER_NAME = "http_request"
MISSING_REQUEST = (
    "Missing HTTP request. Task input MUST have a 'http_request' key with HttpTask.Input as "
    "value. See documentation for HttpTask for required input parameters"
)
MISSING_URI = "Missing HTTP URI.  See documentation for HttpTask for required input parameters"
NO_METHOD = "No HTTP method specified"
METHODS = frozenset({"GET", "PUT", "POST", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE"})
DEFAULT_TIMEOUT_MS = 3000  # Conductor's connectionTimeOut and readTimeOut defaults
MAX_TIMEOUT_MS = 600_000
MAX_RESPONSE_BYTES = 1024 * 1024
_REASON_BODY_CHARS = 300


def _timeout_s(spec: dict[str, Any], key: str) -> float:
    value = spec.get(key)
    if value is None:
        return DEFAULT_TIMEOUT_MS / 1000
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TaskFailed(f"{REQUEST_PARAMETER_NAME}.{key}: expected milliseconds, got {value!r}")
    return min(max(float(value), 1.0), MAX_TIMEOUT_MS) / 1000


def parse_request(task_input: dict[str, Any]) -> tuple[HttpRequest, HttpLimits]:
    """Conductor's HttpTask.Input from the task input; TaskFailed with its wording."""
    spec = task_input.get(REQUEST_PARAMETER_NAME)
    if spec is None and "uri" in task_input:
        spec = task_input  # the flat form
    if spec is None:
        raise TaskFailed(MISSING_REQUEST)
    if not isinstance(spec, dict):
        raise TaskFailed(f"{REQUEST_PARAMETER_NAME}: expected an object, got {type(spec).__name__}")
    uri = spec.get("uri")
    if not uri:
        raise TaskFailed(MISSING_URI)
    if not isinstance(uri, str):
        raise TaskFailed(f"{REQUEST_PARAMETER_NAME}.uri: expected a string")
    method = spec.get("method")
    if not method:
        raise TaskFailed(NO_METHOD)
    if not isinstance(method, str) or method.upper() not in METHODS:
        raise TaskFailed(
            f"{REQUEST_PARAMETER_NAME}.method: {method!r} is not one of {', '.join(sorted(METHODS))}"
        )
    raw_headers = spec.get("headers")
    raw_headers = {} if raw_headers is None else raw_headers
    if not isinstance(raw_headers, dict):
        raise TaskFailed(f"{REQUEST_PARAMETER_NAME}.headers: expected an object")
    content_type = str(spec.get("contentType") or "application/json")
    accept = str(spec.get("accept") or "application/json")
    headers = [("Accept", accept)]
    body = spec.get("body")
    data = b""
    if body is not None:
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        headers.append(("Content-Type", content_type))
    for name, value in raw_headers.items():
        if value is None:
            continue
        text = value if isinstance(value, str) else json.dumps(value)
        headers = [(k, v) for k, v in headers if k.lower() != str(name).lower()]
        headers.append((str(name), text))
    limits = HttpLimits(
        connect_timeout_s=_timeout_s(spec, "connectionTimeOut"),
        read_timeout_s=_timeout_s(spec, "readTimeOut"),
        max_response_bytes=MAX_RESPONSE_BYTES,
    )
    return HttpRequest(method.upper(), uri, headers, data), limits


def decode_body(raw: bytes) -> Any:
    """JSON when the body is JSON, else text; None when empty."""
    if not raw:
        return None
    text = raw.decode("utf-8", errors="replace")
    try:
        return json.loads(text, parse_constant=lambda name: name)
    except ValueError:
        return text


def response_output(resp: HttpResponse) -> dict[str, Any]:
    headers: dict[str, list[str]] = {}
    for name, value in resp.headers:
        headers.setdefault(name, []).append(value)
    try:
        phrase = HTTPStatus(resp.status).phrase
    except ValueError:
        phrase = resp.reason
    return {
        "statusCode": resp.status,
        "reasonPhrase": phrase,
        "headers": headers,
        "body": decode_body(resp.body),
    }


async def http_task(ctx: TaskContext) -> dict[str, Any]:
    request, limits = parse_request(ctx.input)
    overall_s = ctx.timeout_s() or math.inf
    try:
        with trio.fail_after(overall_s):
            resp = await fetch(request, limits)
    except trio.TooSlowError:
        reason = f"no complete response within the task's timeout ({overall_s:g} s)"
        raise TaskFailed(reason, output={"response": reason}) from None
    except HttpFailure as exc:
        reason = f"Failed to invoke HTTP task due to: {exc}"
        ctx.log(f"{request.method} {request.url}: {exc}")
        raise TaskFailed(reason, output={"response": str(exc)}) from None
    output = {"response": response_output(resp)}
    if 200 <= resp.status < 300:
        return output
    snippet = resp.body[:_REASON_BODY_CHARS].decode("utf-8", errors="replace")
    reason = f"HTTP {resp.status} {output['response']['reasonPhrase']}"
    raise TaskFailed(f"{reason}: {snippet}" if snippet else reason, output=output)


register_type_executor("HTTP", http_task)
