"""A coordinator whose user API listens beyond loopback without API_TOKEN says so at start."""

from __future__ import annotations

import pytest

from support.cluster import Cluster

pytestmark = pytest.mark.e2e


def test_listening_beyond_loopback_without_api_token_warns_at_start(
    embedded_cluster: Cluster,
) -> None:
    embedded_cluster.start_coordinator(COORDINATOR_BIND="0.0.0.0")
    log = embedded_cluster.logs["coordinator"].read_text()
    assert "WARNING" in log and "without API_TOKEN" in log and "docs/security.md" in log, log


@pytest.mark.parametrize("env", [{}, {"COORDINATOR_BIND": "0.0.0.0", "API_TOKEN": "secret"}])
def test_loopback_or_a_token_starts_without_the_warning(
    embedded_cluster: Cluster, env: dict[str, str]
) -> None:
    embedded_cluster.start_coordinator(**env)
    assert "without API_TOKEN" not in embedded_cluster.logs["coordinator"].read_text()
