"""Fixtures for the API tests: a real server on a loopback port around a FakeEngine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial

import httpx
import pytest
import trio
from api_fakes import FakeEngine
from api_rawclient import RawConnect, RawConnection, StartServer, connect

from edged.api.conductor import conductor_routes
from edged.api.http import App, HttpLimits, serve_http


@pytest.fixture
def engine() -> FakeEngine:
    return FakeEngine()


@pytest.fixture
def start_server(nursery: trio.Nursery) -> StartServer:
    """Start ``serve_http`` for an App in the test's nursery; returns (host, port)."""

    async def start(
        app: App, *, host: str = "127.0.0.1", limits: HttpLimits | None = None
    ) -> tuple[str, int]:
        serve = partial(serve_http, app, host, 0, limits=limits or HttpLimits())
        address: tuple[str, int] = await nursery.start(serve)
        return address

    return start


@pytest.fixture
async def conductor(
    start_server: StartServer, engine: FakeEngine
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to the Conductor routes over loopback."""
    host, port = await start_server(App(conductor_routes(engine)))
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}", timeout=5) as client:
        yield client


@pytest.fixture
async def raw() -> AsyncIterator[RawConnect]:
    """Open raw client connections that are closed when the test ends."""
    opened: list[RawConnection] = []

    async def open_connection(address: tuple[str, int]) -> RawConnection:
        conn = await connect(address)
        opened.append(conn)
        return conn

    yield open_connection
    for conn in opened:
        await conn.aclose()
