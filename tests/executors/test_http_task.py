"""The HTTP system task against a real local HTTP server (and hostile ones)."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest
import trio
import trustme
from executor_support import context
from http_test_server import http_test_server

from edged.executors.http_client import HttpFailure, parse_url
from edged.executors.http_task import MISSING_REQUEST, MISSING_URI, NO_METHOD, http_task
from edged.handlers import TaskFailed
from edged.runtime.bindings import default_executors


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    with http_test_server() as url:
        yield url


async def call(task_input: dict[str, Any], taskdef: dict[str, Any] | None = None) -> Any:
    with trio.fail_after(20):
        return await http_task(context(task_input, taskdef=taskdef))


async def failure(task_input: dict[str, Any], taskdef: dict[str, Any] | None = None) -> TaskFailed:
    with trio.fail_after(20), pytest.raises(TaskFailed) as info:
        await http_task(context(task_input, taskdef=taskdef))
    assert not info.value.terminal  # every HTTP failure is retried per the TaskDef
    return info.value


def test_registered_for_the_http_type() -> None:
    assert default_executors.types["HTTP"] is http_task


async def test_post_json_body_headers_and_conductor_output_shape(server: str) -> None:
    out = await call(
        {
            "http_request": {
                "uri": f"{server}/echo?x=1",
                "method": "POST",
                "headers": {"X-Token": "abc", "X-Skip": None, "X-Num": 5},
                "body": {"temp": -12.5, "door": "open"},
            }
        }
    )
    resp = out["response"]
    assert resp["statusCode"] == 200 and resp["reasonPhrase"] == "OK"
    assert resp["headers"]["Content-Type"] == ["application/json"]
    assert resp["headers"]["X-Multi"] == ["a", "b"]
    echo = resp["body"]
    assert echo["method"] == "POST" and echo["path"] == "/echo?x=1"
    assert echo["headers"]["x-token"] == "abc" and echo["headers"]["x-num"] == "5"
    assert "x-skip" not in echo["headers"]
    assert echo["headers"]["content-type"] == "application/json"
    assert echo["headers"]["accept"] == "application/json"
    assert echo["headers"]["host"] == server.removeprefix("http://")
    assert echo["body"] == '{"temp": -12.5, "door": "open"}'


async def test_flat_inputs_string_body_and_content_type(server: str) -> None:
    out = await call(
        {
            "uri": f"{server}/echo",
            "method": "put",
            "body": "raw text",
            "contentType": "text/plain",
            "accept": "text/plain",
        }
    )
    echo = out["response"]["body"]
    assert echo["method"] == "PUT" and echo["body"] == "raw text"
    assert echo["headers"]["content-type"] == "text/plain"
    assert echo["headers"]["accept"] == "text/plain"


async def test_text_and_empty_bodies(server: str) -> None:
    out = await call({"http_request": {"uri": f"{server}/text", "method": "GET"}})
    assert out["response"]["body"] == "plain words"
    out = await call({"http_request": {"uri": f"{server}/empty", "method": "DELETE"}})
    assert out["response"]["statusCode"] == 204 and out["response"]["body"] is None
    out = await call({"http_request": {"uri": f"{server}/echo", "method": "HEAD"}})
    assert out["response"]["statusCode"] == 200 and out["response"]["body"] is None


@pytest.mark.parametrize("code", [301, 404, 500, 503])
async def test_non_2xx_fails_with_the_response_in_the_output(server: str, code: int) -> None:
    exc = await failure({"http_request": {"uri": f"{server}/status/{code}", "method": "GET"}})
    assert exc.reason.startswith(f"HTTP {code} ")
    assert f"status {code} on purpose" in exc.reason
    assert exc.output["response"]["statusCode"] == code
    assert exc.output["response"]["body"] == {"error": f"status {code} on purpose"}


async def test_read_timeout_waiting_for_the_head(server: str) -> None:
    started = time.monotonic()
    exc = await failure(
        {
            "http_request": {
                "uri": f"{server}/slow-head?ms=3000",
                "method": "GET",
                "readTimeOut": 300,
            }
        }
    )
    assert exc.reason == "Failed to invoke HTTP task due to: read timed out after 300 ms"
    assert exc.output == {"response": "read timed out after 300 ms"}
    assert time.monotonic() - started < 2


async def test_read_timeout_in_the_middle_of_the_body(server: str) -> None:
    exc = await failure(
        {"http_request": {"uri": f"{server}/slow-body", "method": "GET", "readTimeOut": 300}}
    )
    assert exc.reason.endswith("read timed out after 300 ms")


async def test_a_slow_but_timely_answer_completes(server: str) -> None:
    out = await call(
        {
            "http_request": {
                "uri": f"{server}/slow-head?ms=200",
                "method": "GET",
                "readTimeOut": 2000,
            }
        }
    )
    assert out["response"]["body"] == {"slow": True}


async def test_the_taskdef_timeout_bounds_the_whole_exchange(server: str) -> None:
    exc = await failure(
        {
            "http_request": {
                "uri": f"{server}/slow-head?ms=3000",
                "method": "GET",
                "readTimeOut": 9000,
            }
        },
        taskdef={"timeoutSeconds": 1},
    )
    assert exc.reason == "no complete response within the task's timeout (1 s)"


async def test_huge_response_is_cut_off(server: str) -> None:
    exc = await failure({"http_request": {"uri": f"{server}/huge", "method": "GET"}})
    assert exc.reason.endswith("response body exceeds 1048576 bytes")


async def test_huge_head_is_refused(server: str) -> None:
    exc = await failure({"http_request": {"uri": f"{server}/huge-head", "method": "GET"}})
    assert exc.reason.endswith("response head exceeds 65536 bytes"), exc.reason


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/garbage", "malformed response: illegal status line"),
        ("/close", "the server closed the connection without answering"),
        ("/slow-body?", "read timed out"),
    ],
)
async def test_garbage_or_no_answer(server: str, path: str, expected: str) -> None:
    exc = await failure(
        {"http_request": {"uri": f"{server}{path}", "method": "GET", "readTimeOut": 200}}
    )
    assert expected in exc.reason, exc.reason


async def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    exc = await failure({"http_request": {"uri": f"http://127.0.0.1:{port}/", "method": "GET"}})
    assert exc.reason.startswith(
        f"Failed to invoke HTTP task due to: cannot connect to 127.0.0.1:{port}"
    )


async def test_connect_timeout() -> None:
    # a listener that never accepts, with its backlog full: further SYNs are dropped
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = []
        try:
            for _ in range(4):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                fillers.append(s)
            started = time.monotonic()
            exc = await failure(
                {
                    "http_request": {
                        "uri": f"http://127.0.0.1:{port}/",
                        "method": "GET",
                        "connectionTimeOut": 300,
                        "readTimeOut": 300,
                    }
                }
            )
        finally:
            for s in fillers:
                s.close()
    # with the backlog full the SYN is dropped (connect times out); should the kernel
    # accept it anyway, nobody answers and the read times out: bounded either way
    assert exc.reason.endswith(
        (f"connecting to 127.0.0.1:{port} timed out after 300 ms", "read timed out after 300 ms")
    ), exc.reason
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(
    ("task_input", "expected"),
    [
        ({}, MISSING_REQUEST),
        ({"http_request": {"method": "GET"}}, MISSING_URI),
        ({"http_request": {"uri": "http://127.0.0.1:1/"}}, NO_METHOD),
        ({"http_request": "GET /"}, "http_request: expected an object, got str"),
        (
            {"http_request": {"uri": "http://127.0.0.1:1/", "method": "FETCH"}},
            "method: 'FETCH' is not one of",
        ),
        ({"http_request": {"uri": 5, "method": "GET"}}, "uri: expected a string"),
        (
            {"http_request": {"uri": "ftp://127.0.0.1/", "method": "GET"}},
            "only http:// and https://",
        ),
        ({"http_request": {"uri": "http:///nohost", "method": "GET"}}, "no host"),
        ({"http_request": {"uri": "http://127.0.0.1:99999/", "method": "GET"}}, "invalid uri"),
        (
            {"http_request": {"uri": "http://127.0.0.1:1/", "method": "GET", "headers": []}},
            "headers: expected",
        ),
        (
            {
                "http_request": {
                    "uri": "http://127.0.0.1:1/",
                    "method": "GET",
                    "headers": {"A": "b\r\nX: y"},
                }
            },
            "cannot send this request",
        ),
        (
            {
                "http_request": {
                    "uri": "http://127.0.0.1:1/",
                    "method": "GET",
                    "readTimeOut": "soon",
                }
            },
            "readTimeOut: expected milliseconds",
        ),
    ],
)
async def test_malformed_requests(task_input: dict[str, Any], expected: str) -> None:
    exc = await failure(task_input)
    assert expected in exc.reason, exc.reason


def test_parse_url() -> None:
    t = parse_url("https://[::1]:8443/a/b?c=d")
    assert (t.scheme, t.host, t.port, t.path, t.host_header) == (
        "https",
        "::1",
        8443,
        "/a/b?c=d",
        "[::1]:8443",
    )
    assert parse_url("http://example.com").path == "/"
    assert parse_url("http://example.com:80/").host_header == "example.com"
    with pytest.raises(HttpFailure, match="whitespace"):
        parse_url("http://example.com/a b")


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """An https server whose certificate (for 127.0.0.1) a throwaway CA signed;
    yields (base URL, the CA's PEM file)."""
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    ca_file = tmp_path_factory.mktemp("tls") / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    with http_test_server(tls=server_ctx) as url:
        yield url, str(ca_file)


async def test_https_with_a_trusted_ca(
    tls_server: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, ca_file = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", ca_file)  # OpenSSL's default verify paths read it
    out = await call({"http_request": {"uri": f"{url}/echo", "method": "GET"}})
    assert out["response"]["statusCode"] == 200
    assert out["response"]["body"]["headers"]["host"] == url.removeprefix("https://")


async def test_https_with_an_untrusted_certificate_fails(
    tls_server: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = tls_server
    monkeypatch.setenv("SSL_CERT_FILE", "/nonexistent-ca.pem")
    exc = await failure({"http_request": {"uri": f"{url}/echo", "method": "GET"}})
    assert "cannot connect to 127.0.0.1" in exc.reason
    assert "CERTIFICATE_VERIFY_FAILED" in exc.reason or "certificate verify failed" in exc.reason
