"""Schemathesis fuzzes a real `edged run` from the OpenAPI document it serves: no 5xx, no hang.

Valid requests' responses must also match the document (status code, media
type, schema), so the document cannot drift from what the daemon answers.

Every operation of ``/api-docs`` gets generated requests, valid ones
(``POSITIVE``: shaped by the schemas, so they reach the engine) and invalid
ones (``NEGATIVE``: wrong types, missing fields, out-of-range values), each
with a client timeout.  Operations with a ``{workflowId}`` are also driven
with the id of a real, running execution, so pause/resume/terminate/retry and
friends act on something.  Server-Sent Events routes are asked with
``follow=false`` and read only to their status line.

The bound is explicit: `EXAMPLES` per operation and mode, `TIMEOUT_S` per
request; at the end the daemon must still answer ``/health`` and a search,
and must not have logged a handler failure.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from read_daemon import make_daemon, start
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

# Generation, not the daemon, is the cost (~20 ms per negative case): these keep
# the whole run near 25 s of CPU (55 operations) on this 2-core machine.
# EDGED_FUZZ_SCALE=20 multiplies them for a deeper run by hand (not in CI).
SCALE = max(1, int(os.environ.get("EDGED_FUZZ_SCALE", "1")))
EXAMPLES = {GenerationMode.POSITIVE: 6 * SCALE, GenerationMode.NEGATIVE: 4 * SCALE}
EXAMPLES_WITH_REAL_ID = 4 * SCALE
# A long poll may legitimately wait up to 5 s (its documented maximum); more is a hang.
TIMEOUT_S = 8.0
_SSE = "text/event-stream"
CONFORMANCE = [status_code_conformance, content_type_conformance, response_schema_conformance]
# 503 is these routes' documented answer: not ready; stream subscriptions full (a
# closed stream's slot is freed at its next keep-alive, so a deep run fills them).
_MAY_SHED = frozenset({"/health/ready", "/api/events", "/api/workflow/{workflowId}/events"})


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    d = make_daemon(tmp_path_factory.mktemp("fuzz"))
    yield d
    d.kill()


def _streams(operation: Any) -> bool:
    responses = operation.definition.raw.get("responses", {})
    return any(_SSE in (r.get("content") or {}) for r in responses.values())


def _fuzz_operation(
    operation: Any,
    mode: GenerationMode,
    base_url: str,
    session: requests.Session,
    examples: int,
    **fixed: Any,
) -> list[str]:
    failures: list[str] = []
    streaming = _streams(operation)

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    def run(case: Any) -> None:
        if streaming:
            case.query = {**(case.query or {}), "follow": "false"}
        timeout = (case.query or {}).get("timeout")
        if "/poll/" in operation.path and isinstance(timeout, int) and timeout > 200:
            case.query["timeout"] = 200  # keep valid long polls short (invalid ones are 400s)
        started = time.monotonic()
        try:
            if streaming:  # only the status line and headers: the body may be endless
                raw = session.request(
                    **case.as_transport_kwargs(base_url=base_url), timeout=TIMEOUT_S, stream=True
                )
                status, text = raw.status_code, ""
                raw.close()
            else:
                resp = case.call(base_url=base_url, session=session, timeout=TIMEOUT_S)
                status, text = resp.status_code, resp.text
        except requests.Timeout:
            failures.append(f"{case.as_curl_command()} hung for more than {TIMEOUT_S} s")
            return
        if status >= 500 and not (status == 503 and operation.path in _MAY_SHED):
            failures.append(f"{status} from {case.as_curl_command()}: {text[:300]}")
        elif mode == GenerationMode.POSITIVE and not streaming:
            # the document must also tell the truth about what comes back
            try:
                case.validate_response(resp, checks=CONFORMANCE)
            except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup
                failures.append(f"{case.as_curl_command()}: {str(exc)[:400]}")
        assert time.monotonic() - started < TIMEOUT_S + 1

    try:
        run()
    except Unsatisfiable:
        # an operation with no parameters and no body has no invalid form
        assert mode == GenerationMode.NEGATIVE, operation.label
    return failures


def test_no_5xx_and_no_hang(daemon: Any) -> None:
    with daemon.client() as http:
        doc = http.get("/api-docs").json()
    schema = schemathesis.openapi.from_dict(doc)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 40
    failures: list[str] = []
    with requests.Session() as session:
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                failures += _fuzz_operation(operation, mode, daemon.url, session, EXAMPLES[mode])
            if "{workflowId}" in operation.path:
                # a fresh execution each time: earlier cases may have ended or removed one
                with daemon.client() as http:
                    running = start(http, "rd_wait", {"fuzz": operation.label})
                failures += _fuzz_operation(
                    operation,
                    GenerationMode.POSITIVE,
                    daemon.url,
                    session,
                    EXAMPLES_WITH_REAL_ID,
                    path_parameters={"workflowId": running},
                )
    assert not failures, "\n".join(failures[:20])
    # still serving, and nothing blew up inside a handler
    with httpx.Client(base_url=daemon.url, timeout=TIMEOUT_S) as http:
        assert http.get("/health").status_code == 200
        assert http.get("/api/workflow/search", params={"size": 1}).status_code == 200
    assert daemon.proc.poll() is None
    assert "handler failed" not in daemon.output()
