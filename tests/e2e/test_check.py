"""`sd-worker --check` against a real coordinator and broker: one line per hop, the fix for
each failure, exit 1 when any hop fails."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from support.cluster import Cluster, console_script, free_port

pytestmark = pytest.mark.e2e


def check(cluster: Cluster, **env: str) -> tuple[int, dict[str, str]]:
    """Run `sd-worker --check`; its exit code and its lines by hop name."""
    done = subprocess.run(
        [console_script("sd-worker"), "--check", "--name", "newcomer"],
        env={**cluster.env, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cluster.root,
    )
    lines = {}
    for line in done.stdout.splitlines()[:-1]:
        status, rest = line.split(maxsplit=1)
        name = rest[:18].strip()
        lines[name] = f"{status} {rest[18:].strip()}"
    return done.returncode, lines


def test_every_hop_works_on_a_good_setup(cluster: Cluster) -> None:
    cluster.start_coordinator()
    code, hops = check(cluster)
    assert code == 0, hops
    for hop in (
        "disk",
        "tcp broker",
        "broker login",
        "work queue",
        "tcp coordinator",
        "coordinator",
        "cluster token",
        "clock",
        "seen as",
    ):
        assert hops[hop].startswith("ok"), (hop, hops)
    assert cluster.queue is not None and cluster.queue in hops["work queue"]


def test_each_broken_hop_is_named_with_its_fix(cluster: Cluster) -> None:
    cluster.start_coordinator()
    cluster.start_worker("taken")

    code, hops = check(cluster, CLUSTER_TOKEN="wrong")
    assert code == 1
    assert hops["cluster token"].startswith("FAIL") and "CLUSTER_TOKEN" in hops["cluster token"]

    code, hops = check(cluster, RABBIT_PASS="wrong")
    assert code == 1
    assert (
        hops["broker login"].startswith("FAIL") and "rabbitmqctl add_user" in (hops["broker login"])
    )
    assert hops["work queue"].startswith("skip")

    code, hops = check(cluster, COORDINATOR_PORT=str(free_port()))
    assert code == 1
    assert hops["tcp coordinator"].startswith("FAIL")
    assert "listens on 127.0.0.1 only" in hops["tcp coordinator"]
    assert hops["cluster token"].startswith("skip")

    code, hops = check(cluster, RABBIT_HOST="no-such-host.invalid")
    assert code == 1
    assert hops["dns broker"].startswith("FAIL") and "Tailscale IP" in hops["dns broker"]

    done = subprocess.run(
        [console_script("sd-worker"), "--check", "--name", "taken"],
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "already uses NODE_NAME='taken'" in done.stdout, done.stdout


def test_a_worker_refused_says_why_in_one_line_and_exits_or_retries_saying_so(
    cluster: Cluster,
) -> None:
    cluster.start_coordinator()
    cluster.start_worker("taken")

    def run(seconds: float, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                [console_script("sd-worker"), "--async", *args],
                env={**cluster.env, **env},
                capture_output=True,
                text=True,
                timeout=seconds,
                cwd=cluster.root,
            )
        except subprocess.TimeoutExpired as exc:
            out = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
            return subprocess.CompletedProcess(exc.cmd, -1, "", out)

    wrong_token = run(60, "--name", "w1", CLUSTER_TOKEN="wrong")
    assert wrong_token.returncode != 0
    assert "error: the coordinator refused this worker (401): set CLUSTER_TOKEN" in (
        wrong_token.stderr
    )

    wrong_pass = run(60, "--name", "w2", RABBIT_PASS="wrong")
    assert wrong_pass.returncode == 2
    assert wrong_pass.stderr.strip().splitlines()[-1].startswith("error: RabbitMQ at ")
    assert "refused user 'guest'" in wrong_pass.stderr

    # A live name may be freed soon (its worker stops): the newcomer keeps trying, and says so.
    in_use = run(8, "--name", "taken")
    assert in_use.returncode == -1
    assert "worker name 'taken' is in use by a live worker" in in_use.stderr
    assert "retrying in 2 s" in in_use.stderr


def test_a_worker_whose_data_dir_cannot_be_a_folder_says_so_in_one_line(
    cluster: Cluster, tmp_path: Path
) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    cluster.launch_worker("nowhere", DATA_DIR=str(tmp_path / "a-file"))
    code = cluster.send_signal("nowhere", 0, timeout_s=30)
    log = cluster.logs["nowhere"].read_text()
    assert code == 2 and "Traceback" not in log, log
    assert log.strip().splitlines()[-1].startswith("error: cannot use DATA_DIR"), log


def test_a_data_dir_on_a_full_disk_is_a_failed_hop(cluster: Cluster, small_disk: Path) -> None:
    cluster.start_coordinator()
    code, hops = check(cluster, DATA_DIR=str(small_disk / "worker"))
    assert code == 1, hops
    assert hops["disk"].startswith("FAIL 0.0 GB free for DATA_DIR"), hops
    assert "free space there" in hops["disk"]
    assert hops["seen as"].startswith("ok"), hops  # the other hops are still checked
