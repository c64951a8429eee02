"""Every step's output size is known before it runs, and equals what Pillow makes."""

from __future__ import annotations

import random

import pytest
from PIL import Image

from sd_common.pipeline import PipelineError, Step, check_sizes, parse_pipeline, step_size
from sd_worker.ops import apply_step


def test_predicted_sizes_equal_pillows_for_every_op() -> None:
    rng = random.Random(14)
    names = ["rotate", "thumbnail", "grayscale", "blur", "flip", "sepia", "contrast"]
    for _ in range(400):
        size = (rng.randint(1, 120), rng.randint(1, 120))
        name = rng.choice(names)
        arg: float | int | None = None
        if name == "rotate":
            arg = rng.choice([rng.uniform(-360, 360), rng.randint(-8, 8) * 45, 0.001])
        elif name == "thumbnail":
            arg = rng.randint(1, 150)
        elif name in ("blur", "contrast"):
            arg = 1.5
        step = Step(name, arg)
        made = apply_step(Image.new("RGB", size, "teal"), step)
        assert step_size(step, size) == made.size, (step, size)


def test_a_rotation_that_would_make_800_megapixels_of_a_40000x1_image_is_refused() -> None:
    with pytest.raises(PipelineError, match=r'step 2 "rotate:45".*28286×28285.*at most 50000000'):
        check_sizes(parse_pipeline("grayscale,rotate:45"), (40_000, 1), 50_000_000)


def test_a_thumbnail_first_keeps_the_same_rotation_within_the_limit() -> None:
    assert check_sizes(parse_pipeline("thumbnail:256,rotate:45"), (40_000, 1), 50_000) == (
        step_size(Step("rotate", 45.0), (256, 1))
    )
