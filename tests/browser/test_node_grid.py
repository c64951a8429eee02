"""The node grid in real Chromium with 300 simulated lab PCs reporting every second: grouped,
filtered, searched and sorted, in English and Spanish, kept current by the stream's deltas."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from support.cluster import Cluster
from support.nodes import NodesInThread, SimulatedNodes, node_body

if TYPE_CHECKING:
    from browser.conftest import Dashboard

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

# 300 reporting: 200 free, 30 busy, 60 paused, 10 draining; 20 more registered once (offline).
MIX = ["free"] * 200 + ["busy"] * 30 + ["paused"] * 60 + ["draining"] * 10
SLOW_MS = 30_000


def lab(cluster: Cluster) -> SimulatedNodes:
    names = [f"lab-pc-{i:04d}" for i in range(len(MIX))]
    return SimulatedNodes(cluster.url, cluster.token, names, MIX)


def register_gone_pcs(cluster: Cluster) -> None:
    SimulatedNodes.named(cluster.url, cluster.token, "old-pc", 20, "free").register_blocking()


def test_a_lab_of_300_pcs_stays_readable_and_current(
    cluster: Cluster, dashboard: Dashboard
) -> None:
    cluster.start_coordinator()
    register_gone_pcs(cluster)
    with NodesInThread(lab(cluster)) as nodes:
        page = dashboard.open(cluster.url)
        expect(page.get_by_test_id("node-count")).to_have_text("320", timeout=SLOW_MS)
        offline = page.get_by_test_id("node-group-offline")
        expect(offline.locator("summary")).to_have_text("Offline (20)", timeout=SLOW_MS)
        paused = page.get_by_test_id("node-group-paused")
        expect(paused.locator("summary")).to_have_text("Paused (60)")
        # Large groups start folded: the page draws the 240 nodes that take work.
        expect(paused.get_by_test_id("node-card-lab-pc-0250")).to_have_count(0)
        expect(page.locator("[data-testid^=node-card-]")).to_have_count(240)

        paused.locator("summary").click()
        expect(paused.locator("[data-testid^=node-card-]")).to_have_count(60)
        expect(paused.get_by_test_id("node-card-lab-pc-0250")).to_have_attribute(
            "data-status", "paused"
        )

        page.get_by_test_id("node-filter").select_option("draining")
        expect(page.locator("[data-testid^=node-card-]")).to_have_count(10)
        expect(page.get_by_test_id("node-count")).to_have_text("10 of 320")

        page.get_by_test_id("node-filter").select_option("all")
        page.get_by_test_id("node-search").fill("lab-pc-004")
        expect(page.locator("[data-testid^=node-card-]")).to_have_count(10)
        page.get_by_test_id("node-search").fill("")

        page.get_by_test_id("node-sort").select_option("status")
        first = page.locator("[data-testid^=node-card-]").first
        expect(first).to_have_attribute("data-status", "busy")

        # A free PC whose user starts working pauses: the delta moves it into the group.
        name, session, _ = nodes.nodes[7]
        with cluster.client() as client:
            for _ in range(3):
                answer = client.post("/report", json=node_body(name, session, "paused", seq=7))
                assert answer.status_code == 200
        nodes.nodes[7] = (name, session, "paused")
        expect(paused.locator("summary")).to_have_text("Paused (61)", timeout=SLOW_MS)
        expect(paused.get_by_test_id("node-card-lab-pc-0007")).to_have_attribute(
            "data-status", "paused"
        )

        spanish = dashboard.open(cluster.url, locale="es-ES")
        expect(spanish.get_by_test_id("node-group-paused").locator("summary")).to_have_text(
            "En pausa (61)", timeout=SLOW_MS
        )
        expect(spanish.get_by_test_id("node-group-offline").locator("summary")).to_have_text(
            "Desconectados (20)"
        )
        expect(spanish.get_by_placeholder("Buscar nodos por nombre")).to_be_visible()
