"""amqps: the coordinator and a worker reach RabbitMQ over TLS with client certificates.

Needs the broker's TLS listener on 127.0.0.1:5671 with the test certificates in
/var/lib/rabbitmq/sd-tls (SD_TLS_DIR), which `scripts/rabbitmq-tls-setup.sh` sets up (CI runs it
before the suite; docs/tls.md)."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
from pathlib import Path

import aiormq
import pytest
from PIL import Image, ImageOps

from sd_common import topology
from sd_common.settings import Settings
from support.cluster import Cluster, console_script, free_port
from support.images import decode, same_pixels, sample_image

TLS_DIR = Path(os.environ.get("SD_TLS_DIR", "/var/lib/rabbitmq/sd-tls"))
TLS_PORT = 5671


def tls_listening() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", TLS_PORT), timeout=1):
            return True
    except OSError:
        return False


needs_tls_listener = pytest.mark.skipif(
    not tls_listening(),
    reason="no RabbitMQ TLS listener on 127.0.0.1:5671: run scripts/rabbitmq-tls-setup.sh as root",
)


def tls_env(*, client_cert: bool = True) -> dict[str, str]:
    env = {
        "RABBIT_TLS": "true",
        "RABBIT_PORT": str(TLS_PORT),
        "RABBIT_CA_FILE": str(TLS_DIR / "ca.pem"),
    }
    if client_cert:
        env |= {
            "RABBIT_CERT_FILE": str(TLS_DIR / "client.pem"),
            "RABBIT_KEY_FILE": str(TLS_DIR / "client.key"),
        }
    return env


def tls_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "rabbit_host": "127.0.0.1",
        "rabbit_tls": True,
        "rabbit_port": TLS_PORT,
        "rabbit_ca_file": TLS_DIR / "ca.pem",
        "rabbit_cert_file": TLS_DIR / "client.pem",
        "rabbit_key_file": TLS_DIR / "client.key",
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.mark.e2e
@needs_tls_listener
def test_a_job_runs_end_to_end_over_amqps(tmp_path: Path, queue_name: str) -> None:
    cluster = Cluster(tmp_path, queue=queue_name, **tls_env())
    try:
        cluster.start_coordinator()
        cluster.start_worker("tls-worker")
        image = sample_image(seed=7)
        sent = cluster.upload([("tls.jpg", image)], ops="grayscale", copies=3)
        job = cluster.wait_job(sent["job_id"])
        assert (job["state"], job["done"]) == ("done", 3), job
        expected = ImageOps.grayscale(ImageOps.exif_transpose(Image.open(io.BytesIO(image))))
        with cluster.client() as client:
            for task in job["tasks"]:
                assert task["worker"] == "tls-worker"
                result = client.get(f"/result/{task['result']}")
                assert same_pixels(decode(result.content), expected)
        log = cluster.logs["coordinator"].read_text()
        assert f"amqps://guest@127.0.0.1:{TLS_PORT}/" in log, log
    finally:
        cluster.stop()


async def connect_and_close(settings: Settings) -> None:
    connection = await topology.connect(settings, "sd-test tls")
    await connection.close()


@needs_tls_listener
async def test_the_client_certificate_and_ca_from_settings_open_an_amqps_connection() -> None:
    await connect_and_close(tls_settings())


@needs_tls_listener
async def test_the_broker_refuses_a_client_without_a_certificate() -> None:
    with pytest.raises(aiormq.exceptions.AMQPConnectionError):
        await asyncio.wait_for(
            connect_and_close(tls_settings(rabbit_cert_file=None, rabbit_key_file=None)), 30
        )


@needs_tls_listener
async def test_a_broker_certificate_not_signed_by_a_trusted_ca_is_refused() -> None:
    # Without RABBIT_CA_FILE only the system's CAs are trusted, and none signed the test broker.
    with pytest.raises(aiormq.exceptions.AMQPConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
        await asyncio.wait_for(connect_and_close(tls_settings(rabbit_ca_file=None)), 30)


def test_a_missing_certificate_file_stops_the_coordinator_with_one_clear_line(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "nowhere" / "ca.pem"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RABBIT_")}
    done = subprocess.run(
        [console_script("sd-coordinator"), "--port", str(free_port()), "--host", "127.0.0.1"],
        env={
            **env,
            "RABBIT_HOST": "127.0.0.1",
            "RABBIT_TLS": "true",
            "RABBIT_CA_FILE": str(missing),
            "DATA_DIR": str(tmp_path / "data"),
        },
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        f"error: invalid setting: RABBIT_CA_FILE='{missing}': Path does not point to a file "
        "(see .env.example)"
    ]


def test_rabbit_tls_alone_selects_the_amqps_port() -> None:
    assert Settings(_env_file=None, rabbit_tls=True).rabbit_port == TLS_PORT  # type: ignore[call-arg]
    assert Settings(_env_file=None, rabbit_tls=True, rabbit_port=5999).rabbit_port == 5999  # type: ignore[call-arg]
    assert Settings(_env_file=None).rabbit_port == 5672  # type: ignore[call-arg]
