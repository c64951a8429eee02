"""End to end: the console scripts as processes on the real broker, results checked by pixel."""

from __future__ import annotations

import io
import shutil

import pytest
from PIL import Image, ImageFilter, ImageOps

from support.cluster import Cluster
from support.images import decode, same_pixels, sample_image

pytestmark = pytest.mark.e2e


def pillow_reference(data: bytes) -> Image.Image:
    """grayscale,blur:1.5,thumbnail:200 done by hand with Pillow."""
    image = Image.open(io.BytesIO(data))
    image = ImageOps.exif_transpose(image).convert("RGB")
    image = ImageOps.grayscale(image).filter(ImageFilter.GaussianBlur(1.5))
    image.thumbnail((200, 200))
    return image


@pytest.mark.parametrize("public_api", [False, True], ids=["beneath aio-pika", "public API"])
def test_two_workers_process_an_upload_pixel_for_pixel(cluster: Cluster, public_api: bool) -> None:
    # RABBIT_PUBLIC_API: the coordinator publishes and the workers consume through aio-pika's
    # public API only; the results must be the same.
    cluster.env["RABBIT_PUBLIC_API"] = str(public_api).lower()
    cluster.start_coordinator()
    # alfa sees the coordinator's DATA_DIR and writes results there; beta sends them over HTTP.
    cluster.start_worker("alfa")
    cluster.start_worker("beta", SHARED_STORAGE="off")
    images = [("uno.jpg", sample_image(seed=1)), ("dos.png", sample_image(fmt="PNG", seed=2))]

    sent = cluster.upload(images, ops="grayscale,blur:1.5,thumbnail:200", copies=20)
    assert sent["tasks"] == 40
    job = cluster.wait_job(sent["job_id"])

    assert job["state"] == "done", job
    assert (job["done"], job["failed"], job["total"]) == (40, 0, 40)
    expected = {name: pillow_reference(data) for name, data in images}
    with cluster.client() as client:
        for task in job["tasks"]:
            response = client.get(f"/result/{task['result']}")
            assert response.status_code == 200
            assert response.headers["content-type"] == "image/png"
            assert same_pixels(decode(response.content), expected[task["filename"]])
    assert {t["worker"] for t in job["tasks"]} == {"alfa", "beta"}
    # Only the worker without shared storage fetched the inputs into a cache of its own.
    assert not (cluster.root / "alfa" / "worker-cache" / "alfa").exists()
    assert len(list((cluster.root / "beta" / "worker-cache" / "beta").iterdir())) >= 1


def test_a_worker_that_stops_seeing_the_shared_data_dir_falls_back_to_http(
    cluster: Cluster,
) -> None:
    cluster.start_coordinator()
    cluster.start_worker("epsilon")
    data = sample_image(seed=6)
    first = cluster.wait_job(cluster.upload([("a.jpg", data)], ops="invert")["job_id"])
    assert first["state"] == "done"
    # Someone clears the coordinator's results folder under the running worker: the pool's
    # write fails, and the result must still arrive, over HTTP.
    shutil.rmtree(cluster.results_dir)
    second = cluster.wait_job(cluster.upload([("b.jpg", data)], ops="flip")["job_id"])
    assert second["state"] == "done", second
    log = cluster.logs["epsilon"].read_text()
    assert "is visible here" in log and "stopped writing results into" in log, log
    with cluster.client() as client:
        got = client.get(f"/result/{second['tasks'][0]['result']}")
    assert got.status_code == 200
    assert same_pixels(decode(got.content), ImageOps.flip(Image.open(io.BytesIO(data))))


def test_custom_tasks_run_and_report_output(cluster: Cluster) -> None:
    cluster.start_coordinator()
    cluster.start_worker("gamma")
    with cluster.client() as client:
        sent = client.post("/task", json={"type": "primes", "payload": {"below": 100}, "copies": 3})
        assert sent.status_code == 202, sent.text
    job = cluster.wait_job(sent.json()["job_id"])
    assert job["state"] == "done"
    assert [t["output"] for t in job["tasks"]] == [{"below": 100, "primes": 25}] * 3


def test_copies_of_one_image_move_its_bytes_to_a_node_once(cluster: Cluster) -> None:
    cluster.start_coordinator()
    cluster.start_worker("delta", SHARED_STORAGE="off")  # fetches inputs over HTTP
    sent = cluster.upload([("uno.jpg", sample_image(seed=3))], ops="invert", copies=50)
    assert cluster.wait_job(sent["job_id"])["done"] == 50
    cache = cluster.root / "delta" / "worker-cache" / "delta"
    assert len([p for p in cache.iterdir() if not p.name.startswith(".")]) == 1


def test_embedded_mode_runs_a_job_without_rabbitmq(embedded_cluster: Cluster) -> None:
    embedded_cluster.start_coordinator()
    workers = embedded_cluster.client().get("/workers").json()
    local = [w for w in workers.values() if w["is_local"]]
    assert len(local) == 1 and local[0]["alive"]

    data = sample_image(seed=4)
    sent = embedded_cluster.upload([("foto.jpg", data)], ops="grayscale,blur:1.5,thumbnail:200")
    job = embedded_cluster.wait_job(sent["job_id"])

    assert job["state"] == "done"
    result = embedded_cluster.client().get(f"/result/{job['tasks'][0]['result']}")
    assert same_pixels(decode(result.content), pillow_reference(data))


def test_job_zip_holds_every_result(embedded_cluster: Cluster) -> None:
    import zipfile

    embedded_cluster.start_coordinator()
    sent = embedded_cluster.upload([("a.jpg", sample_image(seed=5))], ops="flip", copies=3)
    job = embedded_cluster.wait_job(sent["job_id"])
    with embedded_cluster.client() as client:
        response = client.get(f"/jobs/{job['job_id']}/zip")
        assert response.status_code == 200
        archive = zipfile.ZipFile(io.BytesIO(response.content))
        assert archive.namelist() == ["0001_a.png", "0002_a.png", "0003_a.png"]
        first = client.get(f"/result/{job['tasks'][0]['result']}").content
        assert archive.read("0001_a.png") == first
