"""The Python client against a real coordinator process (embedded mode, and on RabbitMQ)."""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from sd_client import Client, SdError
from sd_coordinator.transport import BATCH_MESSAGES_MIN
from support.broker import queue_counts
from support.cluster import Cluster
from support.images import decode, same_pixels, sample_image

pytestmark = pytest.mark.e2e


async def test_the_client_submits_paths_and_bytes_and_downloads_pillows_pixels(
    embedded_cluster: Cluster, tmp_path: Path
) -> None:
    embedded_cluster.start_coordinator()
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(sample_image(seed=7))
    raw = sample_image(fmt="PNG", seed=8)
    async with Client(embedded_cluster.url, embedded_cluster.token) as sd:
        job, answers = await sd.submit([photo, ("more/raw.png", raw)], ops="grayscale")
        assert [a.status for a in answers] == ["queued", "queued"]
        assert not job.open
        written = await sd.download(job.job_id, tmp_path / "out")
        assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in written) == [
            "more/raw.png",
            "photo.png",
        ]
        assert (await sd.wait(job.job_id)).state == "done"
    for name, data in (("photo.png", photo.read_bytes()), ("more/raw.png", raw)):
        result = Image.open(tmp_path / "out" / name)
        assert same_pixels(result, ImageOps.grayscale(decode(data)))


async def test_results_arrive_as_they_finish_while_the_job_still_grows(
    embedded_cluster: Cluster,
) -> None:
    embedded_cluster.start_coordinator()
    async with Client(embedded_cluster.url, embedded_cluster.token) as sd:
        job = await sd.create_job("grayscale,thumbnail:32")
        await sd.add_files(job.job_id, [("a.jpg", sample_image(seed=1))])
        feed = sd.finished(job.job_id, poll_s=0.05)
        first = await asyncio.wait_for(anext(feed), 30)
        # The first result came while the job is open: no second file has been sent yet.
        assert first.filename == "a.jpg" and first.state == "done"
        assert (await sd.job(job.job_id)).open
        await sd.add_files(job.job_id, [("b.jpg", sample_image(seed=2))])
        await sd.close_job(job.job_id)
        rest = [t.filename async for t in feed]
        assert rest == ["b.jpg"]
        png = await sd.result(first)
        assert Image.open(io.BytesIO(png)).size[0] <= 32


async def test_finished_results_bring_each_image_and_a_failure_without_one(
    embedded_cluster: Cluster,
) -> None:
    embedded_cluster.start_coordinator()
    photos = {f"{i}.jpg": sample_image(seed=i) for i in range(12)}
    cut = sample_image(seed=99)
    photos["cut.jpg"] = cut[: len(cut) // 2]  # its header passes; its pixels are missing
    async with Client(embedded_cluster.url, embedded_cluster.token) as sd:
        job, _ = await sd.submit(list(photos.items()), ops="grayscale")
        got = {t.filename: (t, png) async for t, png in sd.finished_results(job.job_id)}
    assert sorted(got) == sorted(photos)
    task, png = got.pop("cut.jpg")
    assert (task.state, png) == ("failed", None) and task.error
    for name, (task, png) in got.items():
        assert task.state == "done" and png is not None
        assert same_pixels(Image.open(io.BytesIO(png)), ImageOps.grayscale(decode(photos[name])))


async def test_a_job_is_cancelled_from_the_client_and_errors_carry_the_coordinators_detail(
    embedded_cluster: Cluster,
) -> None:
    embedded_cluster.start_coordinator()
    async with Client(embedded_cluster.url, embedded_cluster.token) as sd:
        job = await sd.create_job()
        await sd.add_files(
            job.job_id, [(f"{i}.png", sample_image(fmt="PNG", seed=i)) for i in range(5)]
        )
        cancelled = await sd.cancel(job.job_id)
        assert cancelled.state == "cancelled" and cancelled.finished
        assert cancelled.done + cancelled.cancelled == 5
        with pytest.raises(SdError) as refused:
            await sd.add_files(job.job_id, [("x.png", sample_image(fmt="PNG"))])
        assert refused.value.status == 409
        assert refused.value.detail == f"job {job.job_id} was cancelled; it takes no more files"
        with pytest.raises(SdError) as unknown:
            await sd.job("0123456789abcdef0123456789abcdef")
        assert unknown.value.status == 404


def test_the_readmes_example_runs_as_written(embedded_cluster: Cluster, tmp_path: Path) -> None:
    embedded_cluster.start_coordinator()
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    example = readme.split("## From Python", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    assert len(example.strip().splitlines()) <= 14  # about ten lines of code
    photo = sample_image(seed=1)
    (tmp_path / "a.jpg").write_bytes(photo)
    (tmp_path / "b.png").write_bytes(sample_image(fmt="PNG", seed=2))
    (tmp_path / "c.jpg").write_bytes(b"not an image at all")
    script = example.replace("http://127.0.0.1:8000", embedded_cluster.url)
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "not a supported image" in lines[0]
    assert sorted(lines[1:]) == ["a.jpg done out/a.png", "b.png done out/b.png"]
    reference = ImageOps.grayscale(decode(photo))
    reference.thumbnail((256, 256))
    assert same_pixels(Image.open(tmp_path / "out" / "a.png"), reference)


async def test_a_batch_into_an_open_job_goes_several_tasks_a_message_on_rabbitmq(
    cluster: Cluster,
) -> None:
    cluster.start_coordinator()  # no worker yet: the batch's messages wait in the queue
    assert cluster.queue is not None
    count = BATCH_MESSAGES_MIN * 8
    photos = {f"set/p{i:02d}.jpg": sample_image(seed=100 + i) for i in range(count)}
    async with Client(cluster.url, cluster.token) as sd:
        job = await sd.create_job("grayscale")
        answers = await sd.add_files(job.job_id, list(photos.items()))
        assert {a.status for a in answers} == {"queued"}
        # 64 tasks, at least BATCH_MESSAGES_MIN messages: eight tasks a message.
        assert (await queue_counts(cluster.queue))[0] == BATCH_MESSAGES_MIN
        await sd.close_job(job.job_id)
        cluster.start_worker("alfa")
        done = await sd.wait(job.job_id, poll_s=0.1)
        assert (done.state, done.done) == ("done", len(photos))
        tasks = [t async for t in sd.tasks(job.job_id)]
        assert sorted(t.filename for t in tasks) == sorted(photos)
        for task in tasks[::BATCH_MESSAGES_MIN]:
            result = Image.open(io.BytesIO(await sd.result(task)))
            assert same_pixels(result, ImageOps.grayscale(decode(photos[task.filename])))
