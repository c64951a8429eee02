"""check_broker turns each way RabbitMQ cannot be used into one line that says what to check."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest

from sd_common import topology
from sd_common.settings import Settings
from sd_common.topology import BrokerUnavailable, check_broker
from support.cluster import console_script, free_port


def settings_for(port: int) -> Settings:
    return Settings(_env_file=None, rabbit_host="127.0.0.1", rabbit_port=port)  # type: ignore[call-arg]


def test_nothing_listening_says_so_and_names_the_port() -> None:
    port = free_port()
    with pytest.raises(BrokerUnavailable) as caught:
        asyncio.run(check_broker(settings_for(port)))
    message = str(caught.value)
    assert f"cannot reach RabbitMQ at amqp://guest@127.0.0.1:{port}/" in message
    assert "connection refused: nothing listens" in message, message


def test_a_port_that_takes_the_connection_and_never_answers_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A firewall that swallows packets, or another service on RabbitMQ's port.
    monkeypatch.setattr(topology, "CONNECT_TIMEOUT_S", 1)  # 10 s by default
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        with pytest.raises(BrokerUnavailable) as caught:
            asyncio.run(check_broker(settings_for(port)))
    message = str(caught.value)
    assert "()" not in message, message
    assert "no answer within 1 s" in message, message


def test_an_unknown_host_says_so() -> None:
    settings = Settings(_env_file=None, rabbit_host="no-such-host.invalid")  # type: ignore[call-arg]
    with pytest.raises(BrokerUnavailable) as caught:
        asyncio.run(check_broker(settings))
    assert "(unknown host (" in str(caught.value), caught.value


@pytest.fixture
def user_without_permissions(rabbitmq: None) -> Iterator[tuple[str, str]]:
    """A RabbitMQ user that may log in to "/" and use no queue there."""
    name, password = f"sdtest-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    rabbitmqctl("add_user", name, password)
    try:
        rabbitmqctl("set_permissions", "-p", "/", name, "^$", "^$", "^$")
        yield name, password
    finally:
        rabbitmqctl("delete_user", name)


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True, timeout=120)


def test_a_user_without_permissions_on_the_queue_is_told_the_command_that_gives_them(
    user_without_permissions: tuple[str, str], queue_name: str
) -> None:
    user, password = user_without_permissions
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        rabbit_host="127.0.0.1",
        rabbit_user=user,
        rabbit_pass=password,
        queue_name=queue_name,
    )
    with pytest.raises(BrokerUnavailable) as caught:
        asyncio.run(check_broker(settings))
    message = str(caught.value)
    assert f"refused user {user!r} the queue {queue_name!r}" in message, message
    assert f"rabbitmqctl set_permissions -p / {user} '.*' '.*' '.*'" in message, message


def test_a_queue_of_that_name_made_otherwise_is_named_with_the_settings_to_fix(
    queue_name: str,
) -> None:
    async def scenario() -> None:
        connection = await aio_pika.connect(host="127.0.0.1")
        async with connection:
            channel = await connection.channel()
            await channel.declare_queue(queue_name, durable=True)  # a classic queue
        settings = Settings(_env_file=None, rabbit_host="127.0.0.1", queue_name=queue_name)  # type: ignore[call-arg]
        await check_broker(settings)

    with pytest.raises(BrokerUnavailable) as caught:
        asyncio.run(scenario())
    message = str(caught.value)
    assert f"a queue {queue_name!r}" in message and "other arguments" in message, message
    assert "QUEUE_NAME" in message


def test_a_coordinator_whose_user_may_not_use_the_queue_says_so_in_one_line(
    user_without_permissions: tuple[str, str], queue_name: str, tmp_path: Path
) -> None:
    user, password = user_without_permissions
    env = {
        **os.environ,
        "RABBIT_HOST": "127.0.0.1",
        "RABBIT_USER": user,
        "RABBIT_PASS": password,
        "QUEUE_NAME": queue_name,
        "CLUSTER_TOKEN": "t",
        "DATA_DIR": str(tmp_path),
        "COORDINATOR_PORT": str(free_port()),
    }
    result = subprocess.run(
        [console_script("sd-coordinator"), "--host", "127.0.0.1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: RabbitMQ refused user"), result.stderr
