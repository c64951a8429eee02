"""check_broker turns each way RabbitMQ cannot be used into one line that says what to check."""

from __future__ import annotations

import asyncio
import socket

import pytest

from sd_common.settings import Settings
from sd_common.topology import BrokerUnavailable, check_broker
from support.cluster import free_port


def settings_for(port: int) -> Settings:
    return Settings(_env_file=None, rabbit_host="127.0.0.1", rabbit_port=port)  # type: ignore[call-arg]


def test_nothing_listening_says_so_and_names_the_port() -> None:
    port = free_port()
    with pytest.raises(BrokerUnavailable) as caught:
        asyncio.run(check_broker(settings_for(port)))
    message = str(caught.value)
    assert f"cannot reach RabbitMQ at amqp://guest@127.0.0.1:{port}/" in message
    assert "connection refused: nothing listens" in message, message


def test_a_port_that_takes_the_connection_and_never_answers_says_so() -> None:
    # A firewall that swallows packets, or another service on RabbitMQ's port.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        port = silent.getsockname()[1]
        with pytest.raises(BrokerUnavailable) as caught:
            asyncio.run(check_broker(settings_for(port)))
    message = str(caught.value)
    assert "()" not in message, message
    assert "no answer within 10 s" in message, message


def test_an_unknown_host_says_so() -> None:
    settings = Settings(_env_file=None, rabbit_host="no-such-host.invalid")  # type: ignore[call-arg]
    with pytest.raises(BrokerUnavailable) as caught:
        asyncio.run(check_broker(settings))
    assert "(unknown host (" in str(caught.value), caught.value
