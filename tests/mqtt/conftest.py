"""A real Mosquitto broker for the MQTT adapter tests.

``broker`` starts ``mosquitto -c <conf>`` on a free loopback port with persistence in
tmp_path (so a restart keeps sessions and queued messages), waits until the port accepts
connections, and stops it by PID at the end. ``Broker.stop()``/``start()``/``kill()`` let a
test take the broker away under load. Tests are skipped, with the reason, when the
``mosquitto`` binary is missing (``scripts/test.sh`` installs it).
"""

from __future__ import annotations

import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from edged_mqtt.settings import MqttSettings, TlsSettings

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Broker:
    directory: Path
    port: int = field(default_factory=free_port)
    tls_port: int | None = None
    tls_files: dict[str, Path] | None = None  # cafile, certfile, keyfile
    process: subprocess.Popen[bytes] | None = None
    extra_conf: str = ""

    @property
    def log_path(self) -> Path:
        return self.directory / "mosquitto.log"

    def write_conf(self) -> Path:
        lines = [
            f"user {getpass.getuser()}",  # as root, mosquitto would switch to 'mosquitto'
            "allow_anonymous true",
            "set_tcp_nodelay true",
            "max_queued_messages 100000",
            "persistence true",
            f"persistence_location {self.directory}/",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            f"listener {self.port} 127.0.0.1",
        ]
        if self.tls_port is not None and self.tls_files is not None:
            lines += [
                f"listener {self.tls_port} 127.0.0.1",
                f"cafile {self.tls_files['cafile']}",
                f"certfile {self.tls_files['certfile']}",
                f"keyfile {self.tls_files['keyfile']}",
            ]
            if "require_certificate" in self.tls_files:
                lines.append("require_certificate true")
        conf = self.directory / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n" + self.extra_conf)
        return conf

    def start(self) -> None:
        assert self.process is None, "broker already running"
        conf = self.write_conf()
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                log = self.log_path.read_text() if self.log_path.exists() else ""
                self.process = None
                raise RuntimeError(f"mosquitto exited at start: {err}\n{log}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.01)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {START_TIMEOUT_S}s")

    def _signal(self, signum: int) -> None:
        if self.process is None:
            return
        process, self.process = self.process, None
        if process.poll() is None:
            os.kill(process.pid, signum)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
        if process.stderr:
            process.stderr.close()

    def stop(self) -> None:
        """SIGTERM: mosquitto saves its persistence file and exits."""
        self._signal(signal.SIGTERM)

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    def settings(self, **changes: object) -> MqttSettings:
        fields: dict[str, object] = {
            "host": "127.0.0.1",
            "port": self.port,
            "reconnect_base_s": 0.02,
            "reconnect_cap_s": 0.2,
            "connect_timeout_s": 3.0,
        }
        fields.update(changes)
        return MqttSettings(**fields)  # type: ignore[arg-type]

    def tls_settings(self, **changes: object) -> MqttSettings:
        assert self.tls_port is not None and self.tls_files is not None
        tls = TlsSettings(ca_file=str(self.tls_files["cafile"]))
        fields: dict[str, object] = {"port": self.tls_port, "tls": tls}
        fields.update(changes)
        return self.settings(**fields)


def _require_mosquitto() -> None:
    if shutil.which("mosquitto") is None:
        pytest.skip(
            "mosquitto is not installed (apt-get install mosquitto; scripts/test.sh does it)"
        )


@pytest.fixture
def broker_factory(tmp_path: Path) -> Iterator[list[Broker]]:
    """A list to append Brokers to; every one is stopped at the end. Not started."""
    _require_mosquitto()
    brokers: list[Broker] = []
    yield brokers
    for b in brokers:
        b.kill()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    _require_mosquitto()
    directory = tmp_path / "broker"
    directory.mkdir()
    b = Broker(directory)
    b.start()
    try:
        yield b
    finally:
        b.kill()
