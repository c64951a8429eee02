"""The worker's result batching against a stand-in coordinator (aiohttp.web on loopback)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web

from sd_common import result_frames
from sd_common.messages import IngestAnswer, TaskOutcome
from sd_worker import client as client_module
from sd_worker.client import CoordinatorClient, CoordinatorRejected
from support.api import make_settings, png_bytes
from support.cluster import free_port


class FakeCoordinator:
    """Answers result posts like the coordinator and remembers what it got."""

    def __init__(self) -> None:
        self.requests: list[int] = []  # outcomes in each request
        self.transfer_encodings: list[str | None] = []
        self.stored: dict[str, bytes | object] = {}
        self.app = web.Application()
        self.app.router.add_post("/results", self.results)

    def _store(self, header: result_frames.ResultHeader, png: bytes) -> dict[str, object]:
        if header.error == "refuse":
            return {"task_id": header.task_id, "error": "unknown task", "status": 404}
        duplicate = header.task_id in self.stored
        self.stored.setdefault(header.task_id, png if header.size is not None else header.output)
        return {"task_id": header.task_id, "stored": True, "duplicate": duplicate}

    async def results(self, request: web.Request) -> web.Response:
        assert request.content_type == result_frames.MEDIA_TYPE
        self.transfer_encodings.append(request.headers.get("Transfer-Encoding"))
        decoded = result_frames.decode(await request.read())
        self.requests.append(len(decoded))
        return web.json_response({"answers": [self._store(h, png) for h, png in decoded]})


async def serve(
    fake: FakeCoordinator, tmp_path: Path, **options: Any
) -> AsyncIterator[CoordinatorClient]:
    runner = web.AppRunner(fake.app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    client = CoordinatorClient(make_settings(tmp_path, coordinator_port=port), **options)
    await client.start()
    try:
        yield client
    finally:
        await client.stop()
        await runner.cleanup()


@pytest_asyncio.fixture
async def batching(tmp_path: Path) -> AsyncIterator[tuple[FakeCoordinator, CoordinatorClient]]:
    fake = FakeCoordinator()
    async for client in serve(fake, tmp_path):
        yield fake, client


async def post_many(client: CoordinatorClient, count: int) -> dict[str, bytes]:
    images = {uuid.uuid4().hex: png_bytes(colour=(i, 0, 0)) for i in range(count)}
    answers = await asyncio.gather(
        *(client.post_image(t, "w1", png, duration_s=0.1) for t, png in images.items())
    )
    assert [a.task_id for a in answers] == list(images)
    assert all(a.stored and not a.duplicate for a in answers)
    return images


async def test_results_ready_together_travel_in_few_requests(
    batching: tuple[FakeCoordinator, CoordinatorClient],
) -> None:
    fake, client = batching
    images = await post_many(client, 20)
    assert fake.stored == images
    assert sum(fake.requests) == 20 and len(fake.requests) < 20
    # Small batches: one body with its length.
    assert set(fake.transfer_encodings) == {None}


async def test_a_large_batch_streams_its_images_without_joining_them(
    batching: tuple[FakeCoordinator, CoordinatorClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    fake, client = batching
    monkeypatch.setattr(client_module, "JOIN_MAX", 1)
    images = await post_many(client, 5)
    assert fake.stored == images
    assert set(fake.transfer_encodings) == {"chunked"}


async def test_images_outputs_and_failures_share_a_request_and_each_gets_its_answer(
    batching: tuple[FakeCoordinator, CoordinatorClient],
) -> None:
    fake, client = batching
    image, output, failure, refused = (uuid.uuid4().hex for _ in range(4))
    png = png_bytes()
    answers = await asyncio.gather(
        client.post_image(image, "w1", png),
        client.post_outcome(TaskOutcome(task_id=output, worker="w1", output={"n": 1})),
        client.post_outcome(TaskOutcome(task_id=failure, worker="w1", error="boom")),
        client.post_outcome(TaskOutcome(task_id=refused, worker="w1", error="refuse")),
        return_exceptions=True,
    )
    assert [a.task_id for a in answers[:3] if isinstance(a, IngestAnswer)] == [
        image,
        output,
        failure,
    ]
    assert isinstance(answers[3], CoordinatorRejected) and answers[3].status == 404
    assert fake.stored == {image: png, output: {"n": 1}, failure: None}
    assert len(fake.requests) < 4


async def linger_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, keep_busy: int, window: int = 0
) -> bool:
    """Post one result while 4 deliveries are in flight; True if it went out at once."""
    monkeypatch.setattr(client_module, "LINGER_S", 30.0)  # a lingering batch would time out
    clients = serve(
        FakeCoordinator(),
        tmp_path,
        tasks_in_flight=lambda: 4,
        keep_busy=keep_busy,
        window=lambda: window,
    )
    async with contextlib.aclosing(clients):  # stops the client and the server on return
        client = await anext(clients)
        try:
            await asyncio.wait_for(client.post_image(uuid.uuid4().hex, "w1", png_bytes()), 3)
            return True
        except TimeoutError:
            return False


async def test_a_batch_lingers_while_the_pool_has_enough_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 4 in flight, 1 finished: 3 still keep a pool of capacity 2 busy, so the batch waits.
    assert await linger_once(tmp_path, monkeypatch, keep_busy=2) is False


async def test_a_batch_goes_at_once_when_waiting_would_starve_the_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A waiting result holds its prefetch slot: with 3 tasks left for a pool of capacity 4,
    # holding it would keep the pool's next task from being delivered.
    assert await linger_once(tmp_path, monkeypatch, keep_busy=4) is True


async def test_a_batch_goes_once_it_holds_half_of_the_workers_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A worker with a small share (beside others, at a job's end) holds few deliveries: a batch
    # that kept most of them waiting would leave no task to arrive while it is stored and acked.
    assert await linger_once(tmp_path, monkeypatch, keep_busy=2, window=2) is True
    assert await linger_once(tmp_path, monkeypatch, keep_busy=2, window=64) is False


async def test_a_lingering_batch_goes_once_the_deliveries_it_waited_for_are_settled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The end of a job: a result waits while the deliveries of the batch just answered are
    # still finishing (acks), so they count as unfinished. Once they are settled, nothing is
    # left to join the batch: it must go then, not after LINGER_S (a 0.5 s stall per job).
    monkeypatch.setattr(client_module, "LINGER_S", 30.0)
    in_flight = {"a", "b", "c", "d", "e"}
    clients = serve(
        FakeCoordinator(), tmp_path, tasks_in_flight=lambda: len(in_flight), keep_busy=4
    )
    async with contextlib.aclosing(clients):
        client = await anext(clients)
        posted = asyncio.create_task(client.post_image(uuid.uuid4().hex, "w1", png_bytes()))
        await asyncio.sleep(0.3)
        assert not posted.done(), "4 unfinished deliveries keep a pool of capacity 4 busy"
        for delivery in ("b", "c", "d", "e"):
            in_flight.discard(delivery)
            client.in_flight_changed()
        answer = await asyncio.wait_for(posted, 3)
        assert answer.stored
