"""The benchmark's inputs and the bare Pillow work the baselines run (identical to our pipeline).

Every baseline function is a plain top-level Pillow function, so a bare process pool and Celery
run exactly the steps `sd_worker.ops.process_image` runs for `grayscale` and `thumbnail:128`:
decode fully, apply the EXIF orientation, the operation, PNG at the given zlib level.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageOps

GRAY_OPS = "grayscale"
THUMB_SIZE = 128
THUMB_OPS = f"thumbnail:{THUMB_SIZE}"
OUR_PNG_LEVEL = 1  # PNG_COMPRESS_LEVEL's default


def make_photo(width: int, height: int, seed: int = 0) -> bytes:
    """A photo-like JPEG (quality 90): smooth gradients, shapes, blur and mild sensor noise."""
    red = Image.linear_gradient("L").resize((width, height))
    green = Image.radial_gradient("L").resize((width, height))
    blue = Image.effect_noise((width // 8, height // 8), 60).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    image = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(image)
    rnd = random.Random(seed)
    for _ in range(40):
        x, y = rnd.randrange(width), rnd.randrange(height)
        w, h = rnd.randrange(20, width // 4), rnd.randrange(20, height // 4)
        draw.ellipse((x, y, x + w, y + h), fill=tuple(rnd.randrange(256) for _ in range(3)))
    image = image.filter(ImageFilter.GaussianBlur(2))
    noise = Image.effect_noise((width, height), 8 + seed).convert("RGB")
    image = Image.blend(image, noise, 0.05)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def _decoded(source: bytes | str) -> Image.Image:
    # The system's steps without their checks, each in place as the system does them: a copy
    # here would be work the system does not do, and would flatter it.
    img = Image.open(io.BytesIO(source) if isinstance(source, bytes) else source)
    img.load()
    ImageOps.exif_transpose(img, in_place=True)
    return img if img.mode in ("L", "RGB") else img.convert("RGB")


def _grayscale(img: Image.Image) -> Image.Image:
    return ImageOps.grayscale(img)


def _thumbnail(img: Image.Image) -> Image.Image:
    img.thumbnail((THUMB_SIZE, THUMB_SIZE))
    return img


def _png(img: Image.Image, level: int) -> bytes:
    out = io.BytesIO()
    img.save(out, format="PNG", compress_level=level)
    return out.getvalue()


# -- bytes in, bytes out (image bytes travel with the task) ---------------------------------


def gray_bytes(data: bytes, level: int = OUR_PNG_LEVEL) -> bytes:
    """1080p JPEG bytes → grayscale PNG bytes."""
    return _png(_grayscale(_decoded(data)), level)


def thumb_bytes(data: bytes, level: int = OUR_PNG_LEVEL) -> bytes:
    """JPEG bytes → 128 px thumbnail PNG bytes."""
    return _png(_thumbnail(_decoded(data)), level)


# -- file path in, file path out (the task names files on a shared disk) ---------------------


def gray_path(src: str, dst: str, level: int = OUR_PNG_LEVEL) -> str:
    """Grayscale the JPEG at `src` into the PNG file `dst`."""
    _grayscale(_decoded(src)).save(dst, format="PNG", compress_level=level)
    return dst


def thumb_path(src: str, dst: str, level: int = OUR_PNG_LEVEL) -> str:
    """Thumbnail the JPEG at `src` into the PNG file `dst`."""
    _thumbnail(_decoded(src)).save(dst, format="PNG", compress_level=level)
    return dst


def gray_natural(src: str, dst: str) -> str:
    """What a Celery user naturally writes: open, grayscale, `save()` with Pillow's defaults."""
    ImageOps.grayscale(Image.open(src)).save(dst)
    return dst


# -- the Pillow work alone: bytes in memory, decode → operation → PNG, nothing else -----------


def gray_alone(data: bytes, level: int) -> bytes:
    """Decode, grayscale, PNG: the least Pillow work that gives the system's pixels for these
    inputs (upright RGB JPEGs, so no EXIF or mode step has anything to do)."""
    return _png(ImageOps.grayscale(Image.open(io.BytesIO(data))), level)


def thumb_alone(data: bytes, level: int) -> bytes:
    """Decode fully, thumbnail in place, PNG. Fully: `thumbnail` on a JPEG not yet loaded
    decodes it at a reduced scale (`draft`), which gives other pixels than the system's."""
    img = Image.open(io.BytesIO(data))
    img.load()
    img.thumbnail((THUMB_SIZE, THUMB_SIZE))
    return _png(img, level)


def noop() -> None:
    """Nothing: measures a task system's own cost."""


def warm() -> int:
    """A trivial call that makes a pool start its processes."""
    return 1


def keep_pillow_blocks(blocks: int) -> None:
    """Pool initializer: keep up to `blocks` freed image memory blocks for the next image, as
    PILLOW_BLOCKS_MAX does (0, none kept, is Pillow's default and our pool processes')."""
    Image.core.set_blocks_max(blocks)


def same_pixels(a: bytes | Path, b: bytes | Path) -> bool:
    """True when two encoded images decode to the same mode, size and pixels."""
    images = []
    for item in (a, b):
        img = Image.open(io.BytesIO(item) if isinstance(item, bytes) else item)
        img.load()
        images.append(img)
    first, second = images
    return (
        first.mode == second.mode
        and first.size == second.size
        and ImageChops.difference(first, second).getbbox() is None
    )
