"""One sd-coordinator per DATA_DIR: a second one refuses in one line, and the folder is free
again as soon as the first has stopped, however it stopped."""

from __future__ import annotations

import signal
import subprocess

import pytest

from support.cluster import Cluster, console_script, free_port

pytestmark = pytest.mark.e2e


def second_coordinator(cluster: Cluster) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [console_script("sd-coordinator"), "--port", str(free_port())],
        env={**cluster.env, "DATA_DIR": str(cluster.root / "coordinator")},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_second_coordinator_on_the_same_data_dir_refuses_and_the_first_serves_on(
    embedded_cluster: Cluster,
) -> None:
    embedded_cluster.start_coordinator()
    pid = embedded_cluster.procs["coordinator"].pid
    second = second_coordinator(embedded_cluster)
    assert second.returncode == 2, second.stderr
    assert "Traceback" not in second.stderr
    assert f"is in use by another sd-coordinator (pid {pid})" in second.stderr, second.stderr
    with embedded_cluster.client() as client:
        assert client.get("/health").status_code == 200


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
def test_the_data_dir_is_free_again_once_its_coordinator_has_ended(
    embedded_cluster: Cluster, sig: int
) -> None:
    embedded_cluster.start_coordinator()
    embedded_cluster.kill("coordinator", sig)
    embedded_cluster.start_coordinator()  # the same DATA_DIR
