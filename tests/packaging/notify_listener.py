"""A stand-in for systemd's side of the notify protocol, for tests.

`NotifyListener` binds a real unix datagram socket in a temporary folder; a
daemon started with `env()` sends its READY=1 / STATUS= / WATCHDOG=1 /
STOPPING=1 datagrams there.  Every datagram is kept with its arrival time
(time.monotonic()), so tests can check order and intervals.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Notification:
    at_s: float  # time.monotonic() on arrival
    fields: dict[str, str]


@dataclass
class NotifyListener:
    path: Path
    received: list[Notification] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))

    def close(self) -> None:
        self.sock.close()

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("WATCHDOG_USEC", None)
        env.pop("WATCHDOG_PID", None)
        env["NOTIFY_SOCKET"] = str(self.path)
        env.update(extra)
        return env

    def receive(self, timeout_s: float) -> Notification | None:
        self.sock.settimeout(max(timeout_s, 0.001))
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return None
        fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
        note = Notification(time.monotonic(), fields)
        self.received.append(note)
        return note

    def wait_for(self, key: str, value: str | None = None, timeout_s: float = 15.0) -> Notification:
        """The next datagram with `key` (and `value`), keeping all others; AssertionError on timeout."""
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            note = self.receive(left)
            if note is not None and key in note.fields and value in (None, note.fields[key]):
                return note
        seen = [n.fields for n in self.received]
        raise AssertionError(f"no {key}={value or '*'} within {timeout_s} s; got {seen}")

    def collect(self, duration_s: float) -> list[Notification]:
        """Everything that arrives within `duration_s`."""
        got: list[Notification] = []
        deadline = time.monotonic() + duration_s
        while (left := deadline - time.monotonic()) > 0:
            note = self.receive(left)
            if note is not None:
                got.append(note)
        return got

    def statuses(self) -> list[str]:
        return [n.fields["STATUS"] for n in self.received if "STATUS" in n.fields]
