"""Test images made in code, and pixel comparison against Pillow's own result."""

from __future__ import annotations

import io

from PIL import Image, ImageChops


def sample_image(width: int = 320, height: int = 240, fmt: str = "JPEG", seed: int = 0) -> bytes:
    """A colourful, noisy image encoded as `fmt`."""
    red = Image.linear_gradient("L").resize((width, height))
    green = Image.effect_noise((width, height), 40 + seed)
    blue = Image.radial_gradient("L").resize((width, height))
    image = Image.merge("RGB", (red, green, blue))
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def same_pixels(a: Image.Image, b: Image.Image) -> bool:
    """True when both images have the same mode, size and every pixel."""
    return a.mode == b.mode and a.size == b.size and ImageChops.difference(a, b).getbbox() is None


def decode(data: bytes) -> Image.Image:
    """Decode and load an image."""
    image = Image.open(io.BytesIO(data))
    image.load()
    return image
