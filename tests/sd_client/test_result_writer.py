"""sd-submit's ResultWriter: results written in groups in a thread, each reported once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sd_client.client import Task
from sd_client.submit import ResultWriter


def task(name: str) -> Task:
    return Task.of({"task_id": name, "state": "done", "filename": name, "result": "r"})


def test_every_result_is_written_or_reported_once_even_while_a_group_is_writing(
    tmp_path: Path,
) -> None:
    (tmp_path / "blocked").write_bytes(b"a file where a folder should be")
    reported: dict[str, OSError | None] = {}

    async def run() -> None:
        writer = ResultWriter(tmp_path, lambda t, e: reported.setdefault(t.task_id, e), held=4)
        for i in range(10):  # more than `held`: put waits for earlier groups to be written
            await writer.put(task(f"trip/{i}.jpg"), bytes([i]) * 10)
        await writer.put(task("blocked/x.jpg"), b"lost")
        await writer.put(task("trip/last.jpg"), b"last")
        await writer.drain()

    asyncio.run(run())
    names = [f"trip/{i}.jpg" for i in range(10)] + ["blocked/x.jpg", "trip/last.jpg"]
    assert sorted(reported) == sorted(names)
    assert isinstance(reported.pop("blocked/x.jpg"), OSError)
    assert set(reported.values()) == {None}
    assert [(tmp_path / f"trip/{i}.png").read_bytes() for i in range(10)] == [
        bytes([i]) * 10 for i in range(10)
    ]
    assert (tmp_path / "trip/last.png").read_bytes() == b"last"
    assert sorted(p.name for p in (tmp_path / "trip").iterdir()) == sorted(
        [f"{i}.png" for i in range(10)] + ["last.png"]
    ), "no partial files are left"
