"""Fuzzing the API over real loopback HTTP: bad input earns a 4xx, never a 5xx or a dead server.

The server runs in its own thread (its own ``trio.run``) for the whole module,
so Hypothesis can drive hundreds of requests through one live server with a
plain synchronous client; every request has a client-side timeout.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from functools import partial
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import trio
from api_fakes import FakeEngine
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edged.api.conductor import conductor_routes
from edged.api.http import App, HttpLimits, serve_http

TIMEOUT_S = 5

ROUTES = [
    ("POST", "/api/metadata/workflow"),
    ("PUT", "/api/metadata/workflow"),
    ("GET", "/api/metadata/workflow/{p}"),
    ("DELETE", "/api/metadata/workflow/{p}/{p}"),
    ("POST", "/api/metadata/taskdefs"),
    ("PUT", "/api/metadata/taskdefs"),
    ("GET", "/api/metadata/taskdefs/{p}"),
    ("DELETE", "/api/metadata/taskdefs/{p}"),
    ("POST", "/api/workflow"),
    ("POST", "/api/workflow/{p}"),
    ("GET", "/api/workflow/{p}"),
    ("DELETE", "/api/workflow/{p}"),
    ("DELETE", "/api/workflow/{p}/remove"),
    ("PUT", "/api/workflow/{p}/pause"),
    ("PUT", "/api/workflow/{p}/resume"),
    ("POST", "/api/workflow/{p}/retry"),
    ("POST", "/api/workflow/{p}/restart"),
    ("POST", "/api/workflow/{p}/rerun"),
    ("PUT", "/api/workflow/{p}/skiptask/{p}"),
    ("GET", "/api/workflow/{p}/correlated/{p}"),
    ("POST", "/api/tasks"),
    ("GET", "/api/tasks/{p}"),
    ("POST", "/api/tasks/{p}/{p}/{p}"),
    ("POST", "/api/tasks/{p}/{p}/{p}/sync"),
    ("POST", "/api/tasks/{p}/{p}/signal"),
    ("POST", "/api/tasks/{p}/{p}/signal/sync"),
]

QUERY_NAMES = [
    "version",
    "priority",
    "correlationId",
    "includeTasks",
    "includeClosed",
    "overwrite",
    "reason",
    "workerid",
    "returnStrategy",
    "useLatestDefinitions",
    "resumeSubworkflowTasks",
    "archiveWorkflow",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["name", "version", "input", "taskId", "status", "workflowInstanceId", "logs", "x"]
            )
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=20,
)
path_params = st.text(min_size=1, max_size=16).map(lambda s: quote(s, safe=""))
# A few ids that exist, so the fuzz also reaches past the "not found" answers.
known_params = st.sampled_from(["wf-1", "task-1", "wait", "COMPLETED", "fuzzed", "1"])
queries = st.dictionaries(st.sampled_from(QUERY_NAMES), st.text(max_size=12), max_size=3)


@pytest.fixture(scope="module")
def live_server() -> Iterator[str]:
    engine = FakeEngine()
    app = App(conductor_routes(engine))
    started = threading.Event()
    state: dict[str, Any] = {}

    async def main() -> None:
        limits = HttpLimits(header_timeout_s=2, body_timeout_s=2)
        async with trio.open_nursery() as nursery:
            state["address"] = await nursery.start(
                partial(serve_http, app, "127.0.0.1", 0, limits=limits)
            )
            state["cancel"] = nursery.cancel_scope.cancel
            state["token"] = trio.lowlevel.current_trio_token()
            started.set()

    thread = threading.Thread(target=trio.run, args=(main,), daemon=True)
    thread.start()
    assert started.wait(TIMEOUT_S)
    host, port = state["address"]
    base = f"http://{host}:{port}"
    with httpx.Client(base_url=base, timeout=TIMEOUT_S) as client:
        definition = {"name": "fuzzed", "version": 1, "tasks": []}
        assert client.post("/api/metadata/workflow", json=definition).status_code == 200
        assert client.post("/api/workflow/fuzzed", json={}).text == "wf-1"
    yield base
    trio.from_thread.run_sync(state["cancel"], trio_token=state["token"])
    thread.join(TIMEOUT_S)
    assert not thread.is_alive()


@pytest.fixture(scope="module")
def client(live_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=live_server, timeout=TIMEOUT_S) as client:
        yield client


def fill(template: str, params: list[str]) -> str:
    parts = template.split("{p}")
    return parts[0] + "".join(p + rest for p, rest in zip(params, parts[1:], strict=False))


def assert_client_error_or_success(resp: httpx.Response) -> None:
    assert resp.status_code < 500, (resp.request.method, resp.request.url, resp.text)
    if resp.status_code >= 400:
        body = resp.json()
        assert body["status"] == resp.status_code and isinstance(body["message"], str)


FUZZ_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ_SETTINGS
@given(
    route=st.sampled_from(ROUTES),
    params=st.lists(path_params | known_params, min_size=3, max_size=3),
    query=queries,
    body=json_values,
)
def test_random_json_bodies_get_no_5xx(
    client: httpx.Client,
    route: tuple[str, str],
    params: list[str],
    query: dict[str, str],
    body: Any,
) -> None:
    method, template = route
    content = json.dumps(body).encode()
    resp = client.request(method, fill(template, params), params=query, content=content)
    assert_client_error_or_success(resp)


@FUZZ_SETTINGS
@given(
    route=st.sampled_from(ROUTES),
    params=st.lists(known_params, min_size=3, max_size=3),
    body=st.binary(max_size=200),
)
def test_random_byte_bodies_get_no_5xx(
    client: httpx.Client, route: tuple[str, str], params: list[str], body: bytes
) -> None:
    method, template = route
    resp = client.request(method, fill(template, params), content=body)
    assert_client_error_or_success(resp)


def exchange_raw(address: tuple[str, int], data: bytes) -> bytes:
    with socket.create_connection(address, timeout=TIMEOUT_S) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)  # EOF: the server must answer what it has
        except OSError:
            pass  # the server may already have answered and closed
        received = b""
        try:
            while chunk := sock.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass
        return received


request_lines = st.sampled_from(
    [b"GET /health HTTP/1.1\r\n", b"POST /api/tasks HTTP/1.1\r\n", b"", b"GET / HTTP/1.0\r\n"]
)
header_lines = st.lists(
    st.sampled_from(
        [
            b"Host: x\r\n",
            b"Content-Length: 5\r\n",
            b"Content-Length: -1\r\n",
            b"Transfer-Encoding: chunked\r\n",
            b"Connection: close\r\n",
            b"Expect: 100-continue\r\n",
            b": novalue\r\n",
        ]
    )
    | st.binary(max_size=30),
    max_size=5,
)


@FUZZ_SETTINGS
@given(line=request_lines, headers=header_lines, tail=st.binary(max_size=100))
def test_random_request_bytes_never_crash_the_server(
    live_server: str, line: bytes, headers: list[bytes], tail: bytes
) -> None:
    host, port = live_server.removeprefix("http://").rsplit(":", 1)
    address = (host, int(port))
    reply = exchange_raw(address, line + b"".join(headers) + b"\r\n" + tail)
    for status_line in [ln for ln in reply.split(b"\r\n") if ln.startswith(b"HTTP/1.1 ")]:
        status = int(status_line.split(b" ")[1])
        assert status < 500 or status in (501, 505), reply
    health = exchange_raw(address, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert health.startswith(b"HTTP/1.1 200 "), health
