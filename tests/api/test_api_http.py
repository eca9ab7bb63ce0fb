"""The HTTP server itself, over real loopback sockets (and memory streams for MockClock tests)."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator, Mapping
from functools import partial

import httpx
import pytest
import trio
import trio.lowlevel
import trio.testing
from api_rawclient import RawConnect, RawConnection, StartServer, connect, get

from edged.api.http import App, HttpLimits, serve_http, serve_http_connection
from edged.api.messages import (
    AnyResponse,
    Request,
    Response,
    StreamingResponse,
    json_response,
    text_response,
)
from edged.api.router import Router

LIMIT_S = 10


def echo_app(**app_options: str) -> tuple[App, dict[str, object]]:
    """A router with echo, failure and streaming endpoints; ``state`` sees inside."""
    router = Router()
    state: dict[str, object] = {"stream_closed": trio.Event(), "stream_gate": trio.Event()}

    async def echo(request: Request, params: Mapping[str, str]) -> AnyResponse:
        return json_response(
            {
                "method": request.method,
                "path": request.path,
                "query": dict(request.query),
                "body_bytes": len(request.body),
                "client_host": request.client[0] if request.client else None,
                "x_test": request.header("X-Test"),
            }
        )

    async def fixed(request: Request, params: Mapping[str, str]) -> AnyResponse:
        return text_response("the same for GET and HEAD")

    async def boom(request: Request, params: Mapping[str, str]) -> AnyResponse:
        raise RuntimeError("secret internals")

    async def bad_header(request: Request, params: Mapping[str, str]) -> AnyResponse:
        return Response(200, (("x-bad", "line\r\nbreak"),), b"nope")

    async def stream(request: Request, params: Mapping[str, str]) -> AnyResponse:
        async def chunks() -> AsyncIterator[bytes]:
            try:
                yield b"data: one\n\n"
                yield b""  # empty chunks are skipped, not sent as terminators
                yield b"data: two\n\n"
                if request.query_value("endless"):
                    await state["stream_gate"].wait()  # type: ignore[attr-defined]
                    while True:
                        yield b"data: more\n\n" * 1000
                        await trio.lowlevel.checkpoint()
            finally:
                state["stream_closed"].set()  # type: ignore[attr-defined]

        return StreamingResponse(200, chunks(), (("content-type", "text/event-stream"),))

    for method in ("GET", "POST", "PUT"):
        router.add(method, "/echo", echo)
    router.add("GET", "/health", echo)
    router.add("GET", "/fixed", fixed)
    router.add("GET", "/boom", boom)
    router.add("GET", "/bad-header", bad_header)
    router.add("GET", "/stream", stream)
    return App(router, **app_options), state  # type: ignore[arg-type]


async def read_all(conn: RawConnection) -> list[int]:
    statuses = []
    while not await conn.at_eof():
        statuses.append((await conn.read_response()).status)
    return statuses


async def test_keep_alive_serves_many_requests_on_one_connection(
    raw: RawConnect, start_server: StartServer
) -> None:
    with trio.fail_after(LIMIT_S):
        app, _ = echo_app()
        conn = await raw(await start_server(app))
        for i in range(5):
            await conn.send(get(f"/echo?i={i}"))
            resp = await conn.read_response()
            assert resp.status == 200 and resp.json()["query"] == {"i": [str(i)]}
        assert app.statistics().connections_accepted == 1
        assert app.statistics().requests == 5


async def test_pipelined_requests_are_answered_in_order(
    raw: RawConnect, start_server: StartServer
) -> None:
    with trio.fail_after(LIMIT_S):
        app, _ = echo_app()
        conn = await raw(await start_server(app))
        body = b'{"x": 1}'
        await conn.send(
            get("/echo?n=1")
            + b"POST /echo?n=2 HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\n"
            + body
            + get("/echo?n=3", method="HEAD")
            + get("/echo?n=4", "Connection: close")
        )
        first = await conn.read_response()
        second = await conn.read_response()
        third = await conn.read_response(head_only=True)
        fourth = await conn.read_response()
        assert first.json()["query"] == {"n": ["1"]}
        assert second.json()["body_bytes"] == 8
        assert third.body == b"" and int(third.headers["content-length"]) > 0
        assert fourth.json()["query"] == {"n": ["4"]}
        assert fourth.headers["connection"].lower() == "close"
        assert await conn.at_eof()


async def test_head_has_get_headers_and_no_body(start_server: StartServer) -> None:
    with trio.fail_after(LIMIT_S):
        app, _ = echo_app()
        host, port = await start_server(app)
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            got = await client.get("/fixed")
            head = await client.head("/fixed")
            assert head.status_code == 200 and head.content == b""
            assert head.headers["content-length"] == got.headers["content-length"]
            assert (await client.get("/health")).status_code == 200  # connection still in sync


async def test_http10_client_gets_answer_and_close(
    raw: RawConnect, start_server: StartServer
) -> None:
    with trio.fail_after(LIMIT_S):
        app, _ = echo_app()
        conn = await raw(await start_server(app))
        await conn.send(b"GET /echo HTTP/1.0\r\n\r\n")
        assert (await conn.read_response()).status == 200
        assert await conn.at_eof()


MALFORMED = [
    b"GARBAGE\r\n\r\n",
    b"GET\r\n\r\n",
    b"GET / HTTP/1.1\r\n\r\n",  # no Host
    b"GET / HTTP/1.1\r\nHost: a\r\nbad header line\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"\x00\x01\x02\xff\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
]


@pytest.mark.parametrize("request_bytes", MALFORMED)
async def test_malformed_requests_get_json_error_and_close(
    raw: RawConnect, start_server: StartServer, request_bytes: bytes
) -> None:
    with trio.fail_after(LIMIT_S):
        app, _ = echo_app()
        address = await start_server(app)
        conn = await raw(address)
        await conn.send(request_bytes)
        resp = await conn.read_response()
        assert resp.status in (400, 501, 505), resp
        assert resp.json()["status"] == resp.status
        assert "Traceback" not in resp.body.decode()
        assert await conn.at_eof()
        healthy = await raw(address)
        await healthy.send(get("/health"))
        assert (await healthy.read_response()).status == 200


@pytest.mark.parametrize("piece_bytes", [None, 1000])
async def test_oversized_head_gets_431(
    raw: RawConnect, start_server: StartServer, piece_bytes: int | None
) -> None:
    with trio.fail_after(LIMIT_S):
        app, _ = echo_app()
        conn = await raw(await start_server(app))
        data = get("/echo", "X-Big: " + "a" * 20_000)
        # All at once (a complete head, measured after parsing) or in pieces
        # (h11's max_incomplete_event_size trips while the head is incomplete).
        pieces = (
            [data]
            if piece_bytes is None
            else [data[i : i + piece_bytes] for i in range(0, len(data), piece_bytes)]
        )
        with contextlib.suppress(trio.BrokenResourceError):
            for piece in pieces:
                await conn.send(piece)
        resp = await conn.read_response()
        assert (resp.status, resp.json()["code"]) == (431, "HEADERS_TOO_LARGE")
        assert await conn.at_eof()


async def test_declared_oversized_body_is_refused_before_reading(
    raw: RawConnect, start_server: StartServer
) -> None:
    with trio.fail_after(LIMIT_S):
        app, _ = echo_app()
        conn = await raw(await start_server(app))
        # No body follows: a 413 can only arrive if the server did not wait for it.
        await conn.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1048577\r\n\r\n")
        resp = await conn.read_response()
        assert (resp.status, resp.json()["code"]) == (413, "PAYLOAD_TOO_LARGE")
        assert resp.headers["connection"] == "close"


async def test_chunked_body_is_cut_off_while_streaming(
    raw: RawConnect, start_server: StartServer
) -> None:
    with trio.fail_after(LIMIT_S):
        app, _ = echo_app()
        conn = await raw(await start_server(app))
        chunk = b"x" * 65536
        framed = b"10000\r\n" + chunk + b"\r\n"
        await conn.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        await conn.send(framed * 17)  # 1.06 MiB, never terminated
        resp = await conn.read_response()
        assert resp.status == 413
        assert app.statistics().requests == 0  # the handler never saw it


async def test_body_limit_boundary_and_httpx_upload(start_server: StartServer) -> None:
    with trio.fail_after(LIMIT_S):
        app, _ = echo_app()
        host, port = await start_server(app, limits=HttpLimits(max_body_bytes=1000))
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            ok = await client.post("/echo", content=b"a" * 1000)
            assert (ok.status_code, ok.json()["body_bytes"]) == (200, 1000)
            too_big = await client.post("/echo", content=b"a" * 1001)
            assert too_big.status_code == 413

            async def body() -> AsyncIterator[bytes]:
                for _ in range(3):
                    yield b"b" * 400

            assert (await client.post("/echo", content=body())).status_code == 413
            assert (await client.get("/health")).status_code == 200


async def test_expect_100_continue(raw: RawConnect, start_server: StartServer) -> None:
    with trio.fail_after(LIMIT_S):
        app, _ = echo_app()
        conn = await raw(await start_server(app))
        await conn.send(
            b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"
        )
        interim = await conn.read_response(head_only=True)
        assert interim.status == 100
        await conn.send(b"hello")
        assert (await conn.read_response()).json()["body_bytes"] == 5


# -- time limits, on a MockClock over memory streams -----------------------------------


async def _serve_memory(app: App, limits: HttpLimits, nursery: trio.Nursery) -> RawConnection:
    client, server = trio.testing.memory_stream_pair()
    nursery.start_soon(partial(serve_http_connection, app, server, limits=limits))
    return RawConnection(client)


async def test_slowloris_head_is_cut_at_header_timeout(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    with trio.fail_after(100):
        app, _ = echo_app()
        limits = HttpLimits(header_timeout_s=10, idle_timeout_s=1000)
        conn = await _serve_memory(app, limits, nursery)
        start = trio.current_time()
        await conn.send(b"GET /echo HTTP/1.1\r\n")
        # One header byte per second: each read is quick, the whole head is not.
        with pytest.raises(trio.BrokenResourceError):
            for _ in range(100):
                await trio.sleep(1)
                await conn.send(b"X")
        resp = await conn.read_response()
        assert (resp.status, resp.json()["code"]) == (408, "REQUEST_TIMEOUT")
        assert 10 <= trio.current_time() - start <= 12


async def test_slow_body_is_cut_at_body_timeout(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    with trio.fail_after(100):
        app, _ = echo_app()
        conn = await _serve_memory(app, HttpLimits(body_timeout_s=5), nursery)
        start = trio.current_time()
        await conn.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhalf!")
        resp = await conn.read_response()
        assert resp.status == 408
        assert 5 <= trio.current_time() - start <= 6


async def test_idle_keep_alive_connection_is_closed_silently(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    with trio.fail_after(100):
        app, _ = echo_app()
        conn = await _serve_memory(app, HttpLimits(idle_timeout_s=30), nursery)
        await conn.send(get("/echo"))
        assert (await conn.read_response()).status == 200
        start = trio.current_time()
        assert await conn.at_eof()
        assert 30 <= trio.current_time() - start <= 31


async def test_client_that_stops_reading_is_cut_at_send_timeout(
    autojump_clock: trio.testing.MockClock, nursery: trio.Nursery
) -> None:
    with trio.fail_after(100):
        app, state = echo_app()
        state["stream_gate"].set()  # type: ignore[attr-defined]
        # Lockstep streams: a send blocks until the other side reads.
        client, server = trio.testing.lockstep_stream_pair()
        nursery.start_soon(
            partial(serve_http_connection, app, server, limits=HttpLimits(send_timeout_s=7))
        )
        conn = RawConnection(client)
        await conn.send(get("/stream?endless=1"))
        await conn._read_until(b"data: two\n\n")
        start = trio.current_time()  # from here on the client reads nothing
        await state["stream_closed"].wait()  # type: ignore[attr-defined]
        assert 7 <= trio.current_time() - start <= 8


async def test_slowloris_over_a_real_socket(raw: RawConnect, start_server: StartServer) -> None:
    with trio.fail_after(LIMIT_S):
        app, _ = echo_app()
        limits = HttpLimits(header_timeout_s=0.2)
        conn = await raw(await start_server(app, limits=limits))
        start = trio.current_time()
        await conn.send(b"GET /echo HTTP/1.1\r\nHost: t\r\n")  # never finished
        assert (await conn.read_response()).status == 408
        assert trio.current_time() - start < 2


# -- application behaviour --------------------------------------------------------------


async def test_handler_failures_become_generic_500s(
    raw: RawConnect, start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    with trio.fail_after(LIMIT_S):
        app, _ = echo_app()
        conn = await raw(await start_server(app))
        await conn.send(get("/boom"))
        resp = await conn.read_response()
        assert (resp.status, resp.json()["message"]) == (500, "internal server error")
        assert b"secret" not in resp.body
        assert "secret internals" in caplog.text  # logged, not sent
        await conn.send(get("/bad-header"))
        resp = await conn.read_response()
        assert resp.status == 500 and "x-bad" not in resp.headers
        await conn.send(get("/echo"))  # the same connection still works
        assert (await conn.read_response()).status == 200


async def test_streaming_response_is_sent_chunked(start_server: StartServer) -> None:
    with trio.fail_after(LIMIT_S):
        app, state = echo_app()
        host, port = await start_server(app)
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            resp = await client.get("/stream")
            assert resp.headers["transfer-encoding"] == "chunked"
            assert resp.headers["content-type"] == "text/event-stream"
            assert resp.text == "data: one\n\ndata: two\n\n"
            assert state["stream_closed"].is_set()  # type: ignore[attr-defined]
            head = await client.head("/stream")
            assert head.status_code == 200 and head.content == b""
            assert (await client.get("/health")).status_code == 200


async def test_stream_producer_is_closed_when_client_leaves(
    raw: RawConnect, start_server: StartServer
) -> None:
    with trio.fail_after(LIMIT_S):
        app, state = echo_app()
        conn = await raw(await start_server(app))
        await conn.send(get("/stream?endless=1"))
        await conn._read_until(b"data: two\n\n")
        await conn.aclose()
        state["stream_gate"].set()  # type: ignore[attr-defined]
        await state["stream_closed"].wait()  # type: ignore[attr-defined]


async def test_bearer_token(start_server: StartServer) -> None:
    with trio.fail_after(LIMIT_S):
        app, _ = echo_app(auth_token="s3cret")
        host, port = await start_server(app)
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            assert (await client.get("/health")).status_code == 200
            assert (await client.head("/health")).status_code == 200
            for headers in (
                {},
                {"Authorization": "Bearer wrong"},
                {"Authorization": "s3cret"},
                {"X-Authorization": "wrong"},
            ):
                resp = await client.get("/echo", headers=headers)
                assert (resp.status_code, resp.json()["code"]) == (401, "UNAUTHORIZED")
                assert resp.headers["www-authenticate"].startswith("Bearer")
            for name, value in (
                ("Authorization", "Bearer s3cret"),
                ("Authorization", "bearer s3cret"),
                ("X-Authorization", "s3cret"),
            ):
                resp = await client.get("/echo", headers={name: value})
                assert resp.status_code == 200
        assert app.statistics().unauthorized == 4


async def test_concurrent_clients(start_server: StartServer) -> None:
    with trio.fail_after(LIMIT_S):
        app, _ = echo_app()
        host, port = await start_server(app)
        statuses: list[int] = []

        async def client_session(n: int) -> None:
            async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
                for i in range(10):
                    resp = await client.post("/echo", json={"n": n, "i": i})
                    statuses.append(resp.status_code)

        async with trio.open_nursery() as clients:
            for n in range(20):
                clients.start_soon(client_session, n)
        assert statuses == [200] * 200
        assert app.statistics().connections_accepted == 20


async def test_connections_above_the_cap_get_503(
    raw: RawConnect, start_server: StartServer
) -> None:
    with trio.fail_after(LIMIT_S):
        app, _ = echo_app()
        address = await start_server(app, limits=HttpLimits(max_connections=2))
        first, second = await raw(address), await raw(address)
        for conn in (first, second):
            await conn.send(get("/echo"))
            assert (await conn.read_response()).status == 200
        third = await raw(address)
        resp = await third.read_response()
        assert (resp.status, resp.json()["retryable"]) == (503, True)
        assert await third.at_eof()
        await first.aclose()
        # Let the server see the close: every task blocked for a moment means
        # its connection task has read EOF and finished.
        await trio.testing.wait_all_tasks_blocked(cushion=0.05)
        assert app.statistics().connections_open == 1
        fourth = await raw(address)
        await fourth.send(get("/echo"))
        assert (await fourth.read_response()).status == 200
        assert app.statistics().connections_refused == 1


async def test_ipv6_loopback(start_server: StartServer) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    with trio.fail_after(LIMIT_S):
        app, _ = echo_app()
        try:
            host, port = await start_server(app, host="::1")
        except OSError:
            pytest.skip("no IPv6 loopback on this machine")
        assert host == "::1" and port > 0
        async with httpx.AsyncClient(base_url=f"http://[::1]:{port}") as client:
            resp = await client.get("/echo")
            assert resp.json()["client_host"] == "::1"


async def test_cancellation_closes_listener_and_connections() -> None:
    with trio.fail_after(LIMIT_S):
        app, _ = echo_app()
        async with trio.open_nursery() as nursery:
            address = await nursery.start(serve_http, app, "127.0.0.1", 0)
            conn = await connect(address)
            await conn.send(get("/echo"))
            assert (await conn.read_response()).status == 200
            nursery.cancel_scope.cancel()
        assert await conn.at_eof()  # the idle keep-alive connection was closed
        await conn.aclose()
        with pytest.raises(OSError):
            await trio.open_tcp_stream(*address)


async def test_query_string_is_a_dict_of_lists(raw: RawConnect, start_server: StartServer) -> None:
    with trio.fail_after(LIMIT_S):
        app, _ = echo_app()
        conn = await raw(await start_server(app))
        await conn.send(get("/echo?a=1&a=2&b=&c=%20x", "X-Test: yes"))
        body = (await conn.read_response()).json()
        assert body["query"] == {"a": ["1", "2"], "b": [""], "c": [" x"]}
        assert body["x_test"] == "yes" and body["client_host"] == "127.0.0.1"


async def test_text_response_helper() -> None:
    resp = text_response("héllo", 201)
    assert (resp.status, resp.header("Content-Type"), resp.body) == (
        201,
        "text/plain; charset=utf-8",
        "héllo".encode(),
    )
