"""TLS to a real Mosquitto with a throw-away CA made by the openssl CLI."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from edged_mqtt.client import open_mqtt_client
from edged_mqtt.settings import TlsSettings
from tests.mqtt.conftest import Broker, free_port

DEADLINE_S = 10


def make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    key, crt = directory / f"{name}.key", directory / f"{name}.crt"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key,
            "-out",
            crt,
            "-days",
            "1",
            "-subj",
            f"/CN={name}",
        ],
        check=True,
        capture_output=True,
    )
    return key, crt


def make_server_cert(directory: Path, ca_key: Path, ca_crt: Path) -> tuple[Path, Path]:
    key, csr, crt = directory / "server.key", directory / "server.csr", directory / "server.crt"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")
    subprocess.run(
        [
            "openssl",
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            key,
            "-out",
            csr,
            "-subj",
            "/CN=127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            "openssl",
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            ca_crt,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-out",
            crt,
            "-days",
            "1",
            "-extfile",
            ext,
        ],
        check=True,
        capture_output=True,
    )
    return key, crt


@pytest.fixture
def tls_broker(tmp_path: Path, broker_factory: list[Broker]) -> Broker:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI is not installed: cannot make a test CA")
    ca_key, ca_crt = make_ca(tmp_path, "test-ca")
    key, crt = make_server_cert(tmp_path, ca_key, ca_crt)
    directory = tmp_path / "broker"
    directory.mkdir()
    b = Broker(
        directory,
        tls_port=free_port(),
        tls_files={"cafile": ca_crt, "certfile": crt, "keyfile": key},
    )
    broker_factory.append(b)
    b.start()
    return b


async def wait_until(predicate: Callable[[], bool]) -> None:
    while True:
        if predicate():
            return
        await trio.sleep(0.01)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
async def test_tls_round_trip_with_a_pinned_ca(tls_broker: Broker, protocol: str) -> None:
    with trio.fail_after(DEADLINE_S):
        s = tls_broker.tls_settings(client_id=f"tls-{protocol}", protocol=protocol)
        async with open_mqtt_client(s) as client:
            await client.subscribe("tls/#", 1)
            await client.publish("tls/x", b"secret")
            assert (await client.receive()).payload == b"secret"


async def test_tls_refuses_a_broker_signed_by_another_ca(
    tls_broker: Broker, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    _, other_ca = make_ca(other, "other-ca")
    s = tls_broker.tls_settings(client_id="tls-bad", tls=TlsSettings(ca_file=str(other_ca)))
    with trio.fail_after(DEADLINE_S):
        async with open_mqtt_client(s) as client:
            await wait_until(lambda: client.statistics().failed_attempts >= 2)
            assert client.statistics().connections == 0


async def test_tls_insecure_skips_verification(tls_broker: Broker) -> None:
    s = tls_broker.tls_settings(client_id="tls-insecure", tls=TlsSettings(insecure=True))
    with trio.fail_after(DEADLINE_S):
        async with open_mqtt_client(s) as client:
            await client.wait_connected()
            await client.publish("tls/y", b"ok")
