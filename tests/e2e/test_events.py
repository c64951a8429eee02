"""GET /events sends the cluster once, then only what changed: at 300 nodes a page does not
receive the whole listing every second."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from support.cluster import Cluster
from support.nodes import SimulatedNodes, node_body

pytestmark = pytest.mark.e2e


def events(cluster: Cluster) -> Iterator[tuple[str, dict[str, object], int]]:
    """(event name, data, size in bytes) of each event GET /events sends."""
    with cluster.client() as client, client.stream("GET", "/events") as answer:
        name = ""
        for line in answer.iter_lines():
            if line.startswith("event: "):
                name = line[len("event: ") :]
            elif line.startswith("data: "):
                yield name, json.loads(line[len("data: ") :]), len(line)


def test_the_event_stream_sends_the_cluster_once_then_what_changed(
    embedded_cluster: Cluster,
) -> None:
    cluster = embedded_cluster
    cluster.start_coordinator()
    nodes = SimulatedNodes.named(cluster.url, cluster.token, "lab-pc", 300, "paused")
    nodes.register_blocking()
    # Silent since they registered: all offline after three report intervals.
    with cluster.client() as client:
        cluster.wait_until(
            lambda: client.get("/cluster").json()["by_status"]["offline"] >= 300,
            20,
            "the lab PCs to turn offline",
        )
    stream = events(cluster)
    name, first, full = next(stream)
    assert name == "snapshot"
    assert len(first["workers"]) >= 300  # type: ignore[arg-type]

    sizes = []
    for _ in range(3):
        name, delta, size = next(stream)
        assert name == "delta"
        sizes.append(size)
    # Nothing changed: the deltas carry the clock and little else.
    assert max(sizes) < full / 50, (full, sizes)

    with cluster.client() as client:
        body = node_body("lab-pc-007", nodes.nodes[7][1], "free", seq=7)
        assert client.post("/report", json=body).status_code == 200
    for _ in range(3):
        name, delta, _size = next(stream)
        changed = delta["workers"]
        assert isinstance(changed, dict)
        if "lab-pc-007" in changed:
            assert changed["lab-pc-007"]["status"] == "free"
            assert changed["lab-pc-007"]["alive"] is True
            break
    else:
        raise AssertionError("the node that came back never showed in a delta")
    stream.close()
