"""A tiny upload whose pipeline would grow it past MAX_IMAGE_PIXELS is refused at upload (422),
and a worker refuses the same pipeline from a message that never passed the coordinator."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from sd_common.images import ImageRejected
from sd_common.pipeline import PipelineError
from sd_worker.ops import process_image
from support.api import asgi_client, detail_of, make_settings, running_app, stored


def png_of(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, height)).save(out, "PNG")
    return out.getvalue()


async def test_a_tiny_image_that_rotate_would_blow_up_is_refused_and_nothing_is_stored(
    tmp_path: Path,
) -> None:
    line = png_of(40_000, 1)
    assert len(line) < 300  # a few hundred bytes that a rotate:45 makes ~800 megapixels
    async with running_app(make_settings(tmp_path)) as app, asgi_client(app) as client:
        before = await stored(client, tmp_path)
        form = {"ops": "grayscale,rotate:45", "copies": "1000"}
        response = await client.post("/upload", files={"file": ("line.png", line)}, data=form)
        assert response.status_code == 422, response.text
        detail = detail_of(response)
        assert "line.png" in detail and 'step 2 "rotate:45"' in detail and "50000000" in detail
        assert await stored(client, tmp_path) == before

        shrunk = await client.post(
            "/upload", files={"file": ("line.png", line)}, data={"ops": "thumbnail:512,rotate:45"}
        )
        assert shrunk.status_code == 202, shrunk.text


def test_the_worker_checks_each_step_before_running_it() -> None:
    # As if a message on the broker skipped the coordinator's check.
    with pytest.raises(PipelineError, match=r'step 1 "rotate:45"'):
        process_image(png_of(4000, 1), "rotate:45", 1, 1_000_000)
    with pytest.raises((PipelineError, ImageRejected)):
        process_image(png_of(4000, 1), "grayscale,rotate:45,thumbnail:10", 1, 1_000_000)
