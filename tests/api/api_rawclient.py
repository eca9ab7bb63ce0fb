"""A deliberately dumb HTTP/1.1 client over raw Trio sockets, for what httpx cannot send.

Malformed, oversized, slow and pipelined requests need byte-level control; the
responses are parsed just enough to check status, headers and body.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class RawConnection:
    stream: trio.abc.Stream
    buffer: bytearray = field(default_factory=bytearray)

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _fill(self) -> bool:
        data = await self.stream.receive_some(65536)
        self.buffer += data
        return bool(data)

    async def _read_until(self, marker: bytes) -> bytes:
        while (end := self.buffer.find(marker)) < 0:
            if not await self._fill():
                raise EOFError(f"closed before {marker!r}; got {bytes(self.buffer)!r}")
        chunk = bytes(self.buffer[:end])
        del self.buffer[: end + len(marker)]
        return chunk

    async def _read_exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            if not await self._fill():
                raise EOFError("closed inside a body")
        chunk = bytes(self.buffer[:size])
        del self.buffer[:size]
        return chunk

    async def read_response(self, *, head_only: bool = False) -> RawResponse:
        head = (await self._read_until(b"\r\n\r\n")).decode("latin-1")
        status_line, *lines = head.split("\r\n")
        status = int(status_line.split(" ")[1])
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if head_only or status in (204, 304):
            return RawResponse(status, headers, b"")
        if "content-length" in headers:
            body = await self._read_exactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int(await self._read_until(b"\r\n"), 16):
                body += await self._read_exactly(size)
                await self._read_until(b"\r\n")
            await self._read_until(b"\r\n")
        else:
            while await self._fill():
                pass
            body, self.buffer = bytes(self.buffer), bytearray()
        return RawResponse(status, headers, body)

    async def at_eof(self) -> bool:
        """True when the server has closed (after any buffered bytes)."""
        if self.buffer:
            return False
        try:
            return not await self._fill()
        except trio.BrokenResourceError:
            return True  # a reset is a close too

    async def aclose(self) -> None:
        await self.stream.aclose()


async def connect(address: tuple[str, int]) -> RawConnection:
    return RawConnection(await trio.open_tcp_stream(*address))


def get(path: str, *extra_headers: str, method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test", *extra_headers, "", ""]
    return "\r\n".join(lines).encode()


RawConnect = Callable[[tuple[str, int]], Awaitable[RawConnection]]
StartServer = Callable[..., Awaitable[tuple[str, int]]]
