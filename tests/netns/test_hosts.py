"""Workers on hosts of their own (network namespaces), over links with 40 ms round trip, some
cut, healed or slowed in the middle of jobs; no host sees the coordinator's DATA_DIR."""

from __future__ import annotations

import io
import signal
import time
from collections import Counter
from typing import Any

import pytest
from PIL import Image, ImageFilter, ImageOps

from support.images import decode, same_pixels, sample_image
from support.netns import HostCluster

pytestmark = pytest.mark.e2e

HOSTS = ("h1", "h2", "h3")


def noise_png(size: int = 700, seed: int = 0) -> bytes:
    """An incompressible PNG (about 3 bytes a pixel): its transfers show on the links."""
    bands = [Image.effect_noise((size, size), 60 + seed + i) for i in range(3)]
    out = io.BytesIO()
    Image.merge("RGB", bands).save(out, "PNG")
    return out.getvalue()


def start(hosts: HostCluster, *names: str) -> None:
    hosts.start_coordinator()
    hosts.add_hosts(*names)
    for name in names:
        hosts.start_host_worker(name)
    hosts.wait_consuming(*names)


def pool_naps(hosts: HostCluster, copies: int, seconds: float) -> str:
    return str(hosts.submit_task("pool_nap", {"seconds": seconds}, copies)["job_id"])


def thumbnails(hosts: HostCluster, name: str, seed: int) -> str:
    return str(
        hosts.upload([(name, noise_png(seed=seed))], ops="thumbnail:64", copies=200)["job_id"]
    )


def by_worker(job: dict[str, Any]) -> Counter[str]:
    return Counter(t["worker"] for t in job["tasks"] if t["state"] == "done")


def timed_job(hosts: HostCluster, job_id: str, timeout_s: float = 180) -> tuple[dict, float]:
    started = time.monotonic()
    job = hosts.wait_job(job_id, timeout_s)
    return job, time.monotonic() - started


def test_a_job_spreads_over_three_hosts_with_results_equal_to_pillows(hosts: HostCluster) -> None:
    start(hosts, *HOSTS)
    images = [("uno.jpg", sample_image(seed=1)), ("dos.png", sample_image(fmt="PNG", seed=2))]
    job = hosts.wait_job(
        hosts.upload(images, ops="grayscale,blur:1.5,thumbnail:200", copies=30)["job_id"]
    )

    assert (job["state"], job["done"], job["failed"]) == ("done", 60, 0), job
    assert set(by_worker(job)) == set(HOSTS), by_worker(job)
    # Every report crossed the link: its round trip includes the 40 ms.
    hosts.wait_until(
        lambda: all((hosts.worker(name).get("rtt_ms") or 0) >= 40 for name in HOSTS),
        10,
        "every host's report round trip to include the link's 40 ms",
    )
    expected = {}
    for name, data in images:
        image = ImageOps.grayscale(Image.open(io.BytesIO(data)).convert("RGB"))
        image = image.filter(ImageFilter.GaussianBlur(1.5))
        image.thumbnail((200, 200))
        expected[name] = image
    with hosts.client() as client:
        for task in job["tasks"]:
            got = client.get(f"/result/{task['result']}")
            assert got.status_code == 200
            assert same_pixels(decode(got.content), expected[task["filename"]])
    # No host saw the coordinator's files: each fetched the inputs it used into its own cache.
    for name in HOSTS:
        used = {t["input"] for t in job["tasks"] if t["worker"] == name}
        cached = {f.name for f in (hosts.root / name / "worker-cache" / name).iterdir()}
        assert cached == used, (name, cached, used)


def test_each_input_crosses_each_hosts_link_once(hosts: HostCluster) -> None:
    start(hosts, *HOSTS)
    data = noise_png()
    before = {name: host.tx_bytes() for name, host in hosts.hosts.items()}
    job = hosts.wait_job(
        hosts.upload([("noise.png", data)], ops="thumbnail:32", copies=60)["job_id"]
    )
    assert (job["state"], job["done"]) == ("done", 60)

    tasks = by_worker(job)
    assert max(tasks.values()) >= 5, tasks
    for name, host in hosts.hosts.items():
        received = host.tx_bytes() - before[name]
        if tasks[name]:
            # The input once, plus small task messages and HTTP/AMQP traffic.
            assert len(data) <= received < len(data) * 1.3 + 300_000, (name, received, tasks)


def test_a_host_that_leaves_mid_job_and_joins_again_takes_tasks_in_the_same_job(
    hosts: HostCluster,
) -> None:
    start(hosts, "h1", "h2")
    job_id = pool_naps(hosts, copies=1000, seconds=0.1)
    hosts.wait_until(lambda: by_worker(hosts.job(job_id))["h2"] >= 5, 60, "h2 to do tasks")
    assert hosts.send_signal("h2", signal.SIGTERM) == 0  # drains what it holds, then exits
    before = by_worker(hosts.job(job_id))["h2"]
    assert hosts.job(job_id)["state"] == "running"

    hosts.start_host_worker("h2")
    job = hosts.wait_job(job_id, 180)
    assert (job["state"], job["done"], job["failed"]) == ("done", 1000, 0)
    assert by_worker(job)["h2"] > before, (before, by_worker(job), hosts.log_tail())


def test_a_cut_link_costs_seconds_and_the_host_comes_back_by_itself(hosts: HostCluster) -> None:
    start(hosts, *HOSTS)
    reference, reference_s = timed_job(hosts, pool_naps(hosts, copies=300, seconds=0.1))
    assert reference["state"] == "done"

    job_id = pool_naps(hosts, copies=300, seconds=0.1)
    started = time.monotonic()
    hosts.wait_until(lambda: hosts.worker("h3").get("holding", 0) > 0, 30, "h3 to hold tasks")
    hosts.cut("h3")
    cut_at = time.monotonic()
    hosts.wait_until(lambda: hosts.worker("h3").get("alive") is False, 10, "h3 to show offline")
    offline_after_s = time.monotonic() - cut_at
    job = hosts.wait_job(job_id, 120)
    took_s = time.monotonic() - started

    assert offline_after_s < 6, offline_after_s  # a few report intervals
    assert (job["state"], job["done"], job["failed"]) == ("done", 300, 0)
    # Two thirds of the cores remain after the cut, and finding it offline takes ~3 s.
    assert took_s < reference_s * 1.5 + 8, (took_s, reference_s, hosts.log_tail())
    # By name if a report listed them before the cut, or as held by no live worker.
    assert any((t["rerun"] or "").startswith("host lost") for t in job["tasks"]), job["tasks"]

    hosts.heal("h3")
    hosts.wait_until(lambda: hosts.worker("h3").get("alive") is True, 60, "h3 back after heal")
    # Reports come back first; its AMQP connection follows once its side notices the old one
    # is gone (the broker dropped it after the heartbeat timeout) and reconnects.
    after_id = pool_naps(hosts, copies=1000, seconds=0.1)
    hosts.wait_until(lambda: by_worker(hosts.job(after_id))["h3"] > 0, 90, "h3 to take work")
    assert hosts.wait_job(after_id, 180)["state"] == "done"
    assert hosts.running("h3")
    again = hosts.job(job_id)
    assert (again["done"], again["failed"]) == (300, 0)  # h3's late results counted once


def test_a_host_behind_a_slow_link_does_not_slow_the_job_beyond_its_share(
    hosts: HostCluster,
) -> None:
    start(hosts, "h1", "h2")
    reference, reference_s = timed_job(hosts, thumbnails(hosts, "a.png", seed=1))
    assert reference["state"] == "done"
    hosts.add_hosts("h3")
    hosts.limit("h3", mbit=20)
    hosts.start_host_worker("h3")

    job, took_s = timed_job(hosts, thumbnails(hosts, "b.png", seed=2))
    assert (job["state"], job["done"]) == ("done", 200)
    # A third host can only help; at worst its slow link costs a little.
    assert took_s < reference_s * 1.2 + 2, (took_s, reference_s, by_worker(job))
