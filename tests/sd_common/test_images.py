import io
import struct
import warnings
import zlib

import pytest
from PIL import Image, ImageFile

from sd_common.images import (
    ALLOWED_FORMATS,
    ImageInfo,
    ImageRejected,
    inspect_image,
    open_checked,
)

MAX_PIXELS = 50_000_000


def noisy_rgb(size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A photo-like test image: two gradients and noise, so codecs have real work to do."""
    gradient = Image.linear_gradient("L").resize(size)
    noise = Image.effect_noise(size, 64)
    return Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.ROTATE_180), noise))


def encode(img: Image.Image, image_format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=image_format, **params)
    return buffer.getvalue()


def png_claiming(width: int, height: int) -> bytes:
    """A small PNG whose header claims width×height; only the IHDR chunk is rewritten."""
    data = bytearray(encode(Image.new("L", (1, 1)), "PNG"))
    ihdr = bytes(data[12:16]) + struct.pack(">II", width, height) + bytes(data[24:29])
    data[12:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(ihdr))
    return bytes(data)


def rejected(data: bytes, max_pixels: int = MAX_PIXELS) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        inspect_image(data, max_pixels)
    return caught.value


@pytest.mark.parametrize(
    ("image_format", "mode"),
    [
        ("JPEG", "RGB"),
        ("PNG", "RGB"),
        ("GIF", "P"),
        ("BMP", "RGB"),
        ("TIFF", "RGB"),
        ("WEBP", "RGB"),
    ],
)
def test_every_allowed_format_is_accepted(image_format, mode):
    data = encode(noisy_rgb(), image_format)
    assert inspect_image(data, MAX_PIXELS) == ImageInfo(image_format, 64, 48, mode)
    assert inspect_image(data, MAX_PIXELS, full_decode=False).format == image_format
    assert image_format in ALLOWED_FORMATS


def test_multi_picture_jpeg_from_a_camera_counts_as_jpeg():
    data = encode(noisy_rgb(), "MPO", save_all=True, append_images=[noisy_rgb()])
    assert inspect_image(data, MAX_PIXELS).format == "JPEG"


def test_open_checked_returns_the_decoded_image():
    original = noisy_rgb()
    img = open_checked(encode(original, "PNG"), MAX_PIXELS)
    assert (img.mode, img.size) == ("RGB", (64, 48))
    assert img.tobytes() == original.tobytes()


def test_empty_data_is_unsupported_media():
    error = rejected(b"")
    assert error.status_code == 415
    assert "empty" in str(error)


def test_text_file_is_unsupported_media():
    error = rejected(b"hello, this is plainly not an image\n" * 20)
    assert error.status_code == 415
    assert "not a supported image" in str(error)


@pytest.mark.parametrize(
    "data",
    [
        encode(Image.new("RGB", (16, 16)), "ICO"),
        b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n",
        encode(Image.new("RGB", (8, 8)), "PPM"),
    ],
    ids=["ico", "pdf", "ppm"],
)
def test_unsupported_format_is_unsupported_media(data):
    error = rejected(data)
    assert error.status_code == 415
    assert "JPEG" in str(error)


@pytest.mark.parametrize("image_format", ["JPEG", "PNG"])
def test_truncated_image_is_rejected_when_decoded(image_format):
    data = encode(noisy_rgb((256, 256)), image_format)
    truncated = data[: len(data) // 2]
    error = rejected(truncated)
    assert error.status_code == 415
    assert "truncated or corrupt" in str(error)
    # The header alone is intact, which is all a cheap check looks at.
    assert inspect_image(truncated, MAX_PIXELS, full_decode=False).width == 256
    with pytest.raises(ImageRejected):
        open_checked(truncated, MAX_PIXELS)


def test_corrupt_header_is_unsupported_media():
    data = bytearray(encode(noisy_rgb(), "PNG"))
    data[20] ^= 0xFF  # inside IHDR, so its CRC no longer matches
    assert rejected(bytes(data)).status_code == 415


def test_more_pixels_than_allowed_is_too_large():
    error = rejected(encode(noisy_rgb(), "PNG"), max_pixels=64 * 48 - 1)
    assert error.status_code == 413
    assert "64×48" in str(error)
    assert inspect_image(encode(noisy_rgb(), "PNG"), 64 * 48).width == 64


def test_header_claiming_huge_dimensions_is_too_large_before_any_decode():
    # The pixel data is a single byte: only the header check can answer 413 rather than 415.
    error = rejected(png_claiming(40_000, 40_000))
    assert error.status_code == 413


@pytest.mark.parametrize("side", [10_000, 100_000])
def test_pillow_decompression_bomb_is_too_large_even_under_our_limit(side):
    # 10_000² only draws Pillow's warning, 100_000² its error; both must be a 413, and the
    # warning must not stay an error for code outside the check.
    filters_before = list(warnings.filters)
    error = rejected(png_claiming(side, side), max_pixels=side * side)
    assert error.status_code == 413
    assert warnings.filters == filters_before


def test_loading_truncated_images_must_stay_disabled(monkeypatch):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        inspect_image(encode(noisy_rgb(), "PNG"), MAX_PIXELS)


def test_image_rejected_is_a_value_error_with_a_status_code():
    error = ImageRejected("nope")
    assert isinstance(error, ValueError)
    assert error.status_code == 415
