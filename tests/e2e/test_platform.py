"""What a node tells the dashboard about its platform: its operating system, on its card."""

from __future__ import annotations

import platform

import psutil
import pytest

from support.cluster import Cluster

pytestmark = pytest.mark.e2e


def this_os() -> str:
    """The name this Linux machine gives itself (/etc/os-release), read here independently."""
    return platform.freedesktop_os_release()["PRETTY_NAME"]


def test_a_worker_reports_its_operating_system_for_its_card(cluster: Cluster) -> None:
    cluster.start_coordinator()
    cluster.start_worker("lab-pc")
    assert cluster.worker("lab-pc")["os"] == this_os()


def test_the_embedded_local_worker_reports_its_operating_system(embedded_cluster: Cluster) -> None:
    embedded_cluster.start_coordinator()
    with embedded_cluster.client() as client:
        embedded_cluster.wait_until(
            lambda: any(w["is_local"] for w in client.get("/workers").json().values()),
            20,
            "the local worker to register",
        )
        workers = client.get("/workers").json()
    assert [w["os"] for w in workers.values() if w["is_local"]] == [this_os()]


@pytest.mark.parametrize("portable", [False, True], ids=["linux-default", "portable"])
def test_the_runtime_chosen_at_start_is_logged_and_is_the_one_running(
    cluster: Cluster, portable: bool
) -> None:
    cluster.start_coordinator()
    cluster.start_worker("runtime", PORTABLE_RUNTIME=str(portable).lower())
    log = cluster.logs["runtime"].read_text()
    pool = psutil.Process(cluster.procs["runtime"].pid).children(recursive=True)
    commands = [" ".join(p.cmdline()) for p in pool]
    if portable:
        assert "spawn, concurrent.futures (portable)" in log, log
        assert "event loop asyncio." in log and "stop signals through signal.signal" in log, log
        assert sum("multiprocessing.spawn" in c for c in commands) >= 1, commands
        assert not any("forkserver" in c for c in commands), commands
    else:
        assert "forkserver, driven by the event loop (Linux fast path)" in log, log
        assert "event loop uvloop." in log and "stop signals through loop" in log, log
        assert any("forkserver" in c for c in commands), commands
