"""A real worker tells the coordinator the version it runs."""

from __future__ import annotations

from importlib.metadata import version

import pytest

from support.cluster import Cluster

pytestmark = pytest.mark.e2e


def test_a_worker_on_the_broker_reports_its_version(cluster: Cluster) -> None:
    cluster.start_coordinator()
    cluster.start_worker("versionado")
    installed = version("sistema-distribuido")
    snapshot = cluster.snapshot()
    assert snapshot["version"] == installed
    assert snapshot["workers"]["versionado"]["version"] == installed
