"""The router alone: matching, specificity, 404/405, error mapping (no sockets needed)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from edged.api.messages import AnyResponse, Request, Response, json_response
from edged.api.router import Router, faults_of
from edged.errors import BadInput

LIMIT_S = 5


def request(method: str, path: str) -> Request:
    return Request(method=method, path=path, query={}, headers=(), body=b"")


def named(name: str) -> Any:
    async def handler(req: Request, params: Mapping[str, str]) -> AnyResponse:
        return json_response({"route": name, "params": dict(params)})

    return handler


def decoded(resp: AnyResponse) -> Any:
    assert isinstance(resp, Response)
    return json.loads(resp.body)


@pytest.fixture
def router() -> Router:
    r = Router()
    r.add("POST", "/api/tasks/{workflowId}/{taskRefName}/{status}", named("by_ref"))
    r.add("POST", "/api/tasks/{workflowId}/{status}/signal", named("signal"))
    r.add("GET", "/api/workflow/{workflowId}", named("get"))
    r.add("DELETE", "/api/workflow/{workflowId}", named("terminate"))
    r.add("PUT", "/api/workflow/{workflowId}/pause", named("pause"))
    return r


async def test_literal_segments_beat_parameters(router: Router) -> None:
    with trio.fail_after(LIMIT_S):
        got = decoded(await router(request("POST", "/api/tasks/wf/COMPLETED/signal")))
        assert got == {"route": "signal", "params": {"workflowId": "wf", "status": "COMPLETED"}}
        got = decoded(await router(request("POST", "/api/tasks/wf/ref/COMPLETED")))
        assert got["route"] == "by_ref"


async def test_segments_are_split_before_percent_decoding(router: Router) -> None:
    with trio.fail_after(LIMIT_S):
        got = decoded(await router(request("GET", "/api/workflow/a%2Fb%20c")))
        assert got["params"] == {"workflowId": "a/b c"}
        resp = await router(request("GET", "/api/workflow/%ff"))
        assert resp.status == 400
        # An empty segment never fills a parameter.
        assert (await router(request("GET", "/api/workflow/"))).status == 404


async def test_404_and_405(router: Router) -> None:
    with trio.fail_after(LIMIT_S):
        assert (await router(request("GET", "/nowhere"))).status == 404
        resp = await router(request("POST", "/api/workflow/x"))
        assert resp.status == 405
        assert isinstance(resp, Response)
        assert resp.header("Allow") == "DELETE, GET, HEAD"
        assert decoded(await router(request("HEAD", "/api/workflow/x")))["route"] == "get"


def test_duplicate_and_malformed_routes_are_refused(router: Router) -> None:
    with pytest.raises(ValueError, match="duplicate"):
        router.add("GET", "/api/workflow/{other}", named("again"))
    with pytest.raises(ValueError, match="start with"):
        router.add("GET", "api/x", named("x"))


class Fault:
    path = "tasks[3].type"
    message = 'unknown task type "HTTTP"'


def test_faults_come_in_several_shapes() -> None:
    exc = BadInput("bad")
    exc.faults = [("a", "m1"), {"path": "b", "message": "m2"}, Fault()]  # type: ignore[attr-defined]
    assert faults_of(exc) == [
        ("a", "m1"),
        ("b", "m2"),
        ("tasks[3].type", 'unknown task type "HTTTP"'),
    ]
    assert faults_of(BadInput("no faults")) == []


@given(segments=st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=6))
def test_any_path_gets_a_json_answer(segments: list[str]) -> None:
    router = Router()
    router.add("GET", "/api/workflow/{workflowId}", named("get"))
    path = "/" + "/".join(quote(s, safe="") for s in segments)

    async def check() -> None:
        with trio.fail_after(LIMIT_S):
            resp = await router(request("GET", path))
            assert resp.status in (200, 404)
            body = decoded(resp)
            if resp.status == 200:
                assert body["params"]["workflowId"] == segments[2]
            else:
                assert body["code"] == "NOT_FOUND"

    trio.run(check)
