"""Settings read from the environment: the names users set, their defaults and their limits."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from sd_common.settings import Settings
from support.cluster import console_script


def test_pillow_blocks_max_is_read_from_pillows_own_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PILLOW_BLOCKS_MAX", raising=False)
    assert Settings(_env_file=None).pillow_blocks_max == 0
    monkeypatch.setenv("PILLOW_BLOCKS_MAX", "4")
    assert Settings(_env_file=None).pillow_blocks_max == 4
    monkeypatch.setenv("PILLOW_BLOCKS_MAX", "-1")
    with pytest.raises(ValidationError, match="pillow_blocks_max"):
        Settings(_env_file=None)


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [
        ("coordinator_ip", "100.64.0.1:8000", "alone: 100.64.0.1, and the port in COORDINATOR_"),
        ("coordinator_ip", "http://100.64.0.1:8000", "not a URL (the port in COORDINATOR_PORT)"),
        ("rabbit_host", "100.64.0.1:5672", "the port in RABBIT_PORT=5672"),
        ("rabbit_host", "amqp://guest@host/", "not a URL"),
    ],
)
def test_a_host_given_with_its_port_or_as_a_url_says_where_the_port_goes(
    field: str, value: str, words: str
) -> None:
    with pytest.raises(ValidationError, match=re.escape(words)):
        Settings(_env_file=None, **{field: value})


@pytest.mark.parametrize("value", ["fd7a:115c:a1e0::1", "lab-pc-3", "100.64.0.1"])
def test_an_ipv6_address_or_a_name_is_a_host_alone(value: str) -> None:
    assert Settings(_env_file=None, coordinator_ip=value, rabbit_host=value).rabbit_host == value


@pytest.mark.parametrize("name", ["a b", "lab/pc", "pc:1", ""])
def test_a_node_name_the_wire_would_refuse_is_refused_in_words(name: str) -> None:
    with pytest.raises(ValidationError, match="node_name"):
        Settings(_env_file=None, node_name=name)


def test_a_node_name_with_spaces_is_one_line_from_the_worker(tmp_path: Path) -> None:
    result = subprocess.run(
        [console_script("sd-worker"), "--async", "--name", "lab pc 3"],
        env={**os.environ, "RABBIT_HOST": "127.0.0.1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "NODE_NAME='lab pc 3': a node name is letters, digits" in result.stderr
