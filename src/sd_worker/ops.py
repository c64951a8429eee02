"""Pure Pillow functions: each pipeline step is exactly the Pillow operation of that name."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterable

from PIL import Image, ImageEnhance, ImageFilter, ImageOps

from sd_common.images import ImageRejected, open_checked
from sd_common.pipeline import OPS, PipelineError, Step, check_step_size, parse_pipeline
from sd_common.storage import write_new

# The tones named in OPS["sepia"]: dark brown shadows, the classic sepia mid-tone (#704214),
# old-lace highlights.
SEPIA_BLACK = "#2e1f0f"
SEPIA_MID = "#704214"
SEPIA_WHITE = "#fdf5e6"

DEFAULT_MAX_PIXELS = 50_000_000


def _sepia(img: Image.Image) -> Image.Image:
    return ImageOps.colorize(
        ImageOps.grayscale(img), black=SEPIA_BLACK, white=SEPIA_WHITE, mid=SEPIA_MID
    )


def _thumbnail(img: Image.Image, size: float) -> Image.Image:
    # Image.thumbnail works in place; the caller's image stays untouched.
    result = img.copy()
    result.thumbnail((int(size), int(size)))
    return result


_PLAIN: dict[str, Callable[[Image.Image], Image.Image]] = {
    "grayscale": ImageOps.grayscale,
    "sharpen": lambda img: img.filter(ImageFilter.SHARPEN),
    "edges": lambda img: img.filter(ImageFilter.FIND_EDGES),
    "contour": lambda img: img.filter(ImageFilter.CONTOUR),
    "emboss": lambda img: img.filter(ImageFilter.EMBOSS),
    "invert": ImageOps.invert,
    "sepia": _sepia,
    "autocontrast": ImageOps.autocontrast,
    "equalize": ImageOps.equalize,
    "flip": ImageOps.flip,
    "mirror": ImageOps.mirror,
}

_WITH_ARG: dict[str, Callable[[Image.Image, float], Image.Image]] = {
    "blur": lambda img, radius: img.filter(ImageFilter.GaussianBlur(radius)),
    "thumbnail": _thumbnail,
    "rotate": lambda img, degrees: img.rotate(degrees, expand=True),
    "brightness": lambda img, factor: ImageEnhance.Brightness(img).enhance(factor),
    "contrast": lambda img, factor: ImageEnhance.Contrast(img).enhance(factor),
}


def normalize(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation and bring the image to "L" or "RGB", the modes every op takes."""
    try:
        # In place: an image without an orientation to apply is not copied.
        ImageOps.exif_transpose(img, in_place=True)
        upright = img
    except MemoryError:
        raise
    except Exception as exc:
        # The EXIF block is as untrusted as the pixels; a malformed one means a corrupt file.
        raise ImageRejected(f"corrupt EXIF data: {exc}") from None
    if upright.mode in ("L", "RGB"):
        return upright
    # Filters, invert, equalize and autocontrast reject P, RGBA, 1, I and other modes, so every
    # input is brought to RGB once. Alpha is dropped: results are opaque PNGs.
    try:
        return upright.convert("RGB")
    except ValueError as exc:
        raise ImageRejected(f"unsupported image mode {upright.mode}: {exc}") from None


def apply_step(img: Image.Image, step: Step, *, owned: bool = False) -> Image.Image:
    """Apply one parsed step to img, returning a new image; with `owned` (nobody else holds
    img), a step that Pillow does in place may change and return img itself."""
    plain = _PLAIN.get(step.name)
    if plain is not None:
        return plain(img)
    with_arg = _WITH_ARG.get(step.name)
    if with_arg is None:
        raise PipelineError(f'unknown operation "{step.name}"', step=step.name)
    arg = step.arg if step.arg is not None else OPS[step.name].default
    assert arg is not None
    if owned and step.name == "thumbnail":
        img.thumbnail((int(arg), int(arg)))  # _thumbnail without its copy
        return img
    return with_arg(img, arg)


def apply_pipeline(
    img: Image.Image, steps: Iterable[Step], max_pixels: int | None = None, *, owned: bool = False
) -> Image.Image:
    """Apply the steps in order, returning the result. With `max_pixels`, each step's output
    size is checked before it runs (PipelineError): a message from the broker is not trusted
    to have passed the coordinator's check. With `owned`, img may be changed in place; a new
    image made by a step is the pipeline's own either way."""
    for index, step in enumerate(steps, start=1):
        if max_pixels is not None:
            check_step_size(index, step, img.size, max_pixels)
        result = apply_step(img, step, owned=owned)
        owned = owned or result is not img
        img = result
    return img


def encode_png(img: Image.Image, compress_level: int = 1) -> bytes:
    """Encode img as PNG; lossless, so the level only trades size for time."""
    buffer = io.BytesIO()
    img.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def render(data: bytes, ops: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Check and decode image bytes, then run the `ops` pipeline on them.

    Raises PipelineError for bad ops and ImageRejected for bad input.
    """
    # Parse first: a bad pipeline is found without paying for a decode.
    steps = parse_pipeline(ops)
    # No name holds the decoded image: each step's input is freed as soon as its output is
    # made, so the allocator reuses its pages instead of faulting in fresh ones per task.
    return apply_pipeline(normalize(open_checked(data, max_pixels)), steps, max_pixels, owned=True)


def process_image(
    data: bytes,
    ops: str,
    png_compress_level: int = 1,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> bytes:
    """Run the `ops` pipeline on image bytes and return PNG bytes (the process-pool entry point).

    Raises PipelineError for bad ops and ImageRejected for bad input. Level 1 compression gives
    the same pixels as the default level 6 in about half the time, at a somewhat larger file.
    """
    return encode_png(render(data, ops, max_pixels), png_compress_level)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def process_image_file(
    path: str,
    ops: str,
    png_compress_level: int = 1,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> bytes:
    """`process_image` on the bytes of the file at `path` (a verified input in the worker's
    cache), so the pool process reads the input itself instead of receiving it pickled."""
    return process_image(_read(path), ops, png_compress_level, max_pixels)


def process_image_into(
    path: str,
    results_dir: str,
    name: str,
    ops: str,
    png_compress_level: int = 1,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> int:
    """`process_image_file`, writing the PNG as the new file `results_dir/name` (a fresh
    `.incoming-` name that the coordinator reads only once told) instead of returning it;
    returns its size in bytes. For a worker that shares the coordinator's DATA_DIR, so the
    result never crosses a pipe or HTTP."""
    png = process_image_file(path, ops, png_compress_level, max_pixels)
    write_new(os.path.join(results_dir, name), png)
    return len(png)
