"""Worker hosts in network namespaces (tests/support/netns.py); skipped, with the reason, where
namespaces cannot be made (not root, no iproute2)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from support.netns import HostCluster, NamespacesUnavailable, probe

TESTS_DIR = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def namespaces() -> None:
    """Skip the module when this machine cannot make network namespaces."""
    try:
        probe()
    except NamespacesUnavailable as exc:
        pytest.skip(f"worker hosts in network namespaces: {exc}")


@pytest.fixture
def hosts(tmp_path: Path, queue_name: str, namespaces: None) -> Iterator[HostCluster]:
    """A coordinator on the real broker; hosts at 40 ms round trip, added by the test."""
    cluster = HostCluster(
        tmp_path,
        queue=queue_name,
        delay_ms=40,
        TASK_MODULES="support.nap_tasks",
        PYTHONPATH=os.pathsep.join(p for p in (str(TESTS_DIR), os.environ.get("PYTHONPATH")) if p),
    )
    try:
        yield cluster
    finally:
        cluster.stop()
