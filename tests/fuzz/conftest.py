"""A real `edged run` subprocess on a free loopback port, shared by the fuzz tests.

The daemon is started once per module with a data dir in a temporary folder;
the fixture waits for `/health`, and at teardown sends SIGTERM and checks the
daemon exits 0 (a clean shutdown even after being fuzzed).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

START_TIMEOUT_S = 15


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def daemon_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("edged-fuzz")
    (root / "defs").mkdir()
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "edged.cli",
        "run",
        "--data-dir",
        str(root / "data"),
        "--listen",
        f"127.0.0.1:{port}",
        "--defs",
        str(root / "defs"),
    ]
    log = (root / "daemon.log").open("wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError((root / "daemon.log").read_text(errors="replace"))
        time.sleep(0.05)
    try:
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
            log.close()
        assert code == 0, (root / "daemon.log").read_text(errors="replace")[-3000:]
