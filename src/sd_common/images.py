"""Check untrusted image bytes before anything trusts them: at upload and again on the worker."""

from __future__ import annotations

import io
import re
import warnings
from dataclasses import dataclass

from PIL import Image, ImageFile

ALLOWED_FORMATS = frozenset({"JPEG", "PNG", "GIF", "BMP", "TIFF", "WEBP"})

# Phone cameras write multi-picture JPEGs, which Pillow reports as MPO; they are JPEGs to users.
_FORMAT_ALIASES = {"MPO": "JPEG"}

ORIENTATION_TAG = 0x0112
UNSUPPORTED_MEDIA_TYPE = 415
CONTENT_TOO_LARGE = 413


class ImageRejected(ValueError):
    """Bytes that are not an image we accept; `status_code` is the HTTP status that fits."""

    def __init__(self, message: str, status_code: int = UNSUPPORTED_MEDIA_TYPE) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


@dataclass(frozen=True)
class ImageInfo:
    """What the header (and, when decoded, the pixels) of an accepted image says."""

    format: str
    width: int
    height: int
    mode: str
    orientation: int = 1  # EXIF orientation: 5 to 8 turn the image a quarter when upright

    @property
    def upright_size(self) -> tuple[int, int]:
        """(width, height) once the EXIF orientation is applied, as the worker does first."""
        if self.orientation in (5, 6, 7, 8):
            return self.height, self.width
        return self.width, self.height


def _too_large(width: int, height: int, max_pixels: int) -> ImageRejected:
    return ImageRejected(
        f"image is {width}×{height} = {width * height} pixels; at most {max_pixels} allowed",
        CONTENT_TOO_LARGE,
    )


def _bomb(exc: Exception, max_pixels: int) -> ImageRejected:
    # Pillow's own text cites its global limit, not ours; keep only the pixel count it found.
    found = re.search(r"\((\d+) pixels\)", str(exc))
    claimed = f"{int(found[1])} pixels" if found else "more pixels than Pillow allows"
    return ImageRejected(
        f"image dimensions are too large (a decompression bomb?): it claims {claimed}; at most "
        f"{max_pixels} allowed",
        CONTENT_TOO_LARGE,
    )


def _open(data: bytes, max_pixels: int, full_decode: bool) -> tuple[Image.Image, str]:
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        # With it on, Pillow pads truncated files with grey instead of failing; a worker would
        # then store a half-grey "result" as success.
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES must stay False")
    if not data:
        raise ImageRejected("empty file; expected an image")
    supported = ", ".join(sorted(ALLOWED_FORMATS))
    # Pillow only warns between MAX_IMAGE_PIXELS and twice that; a bomb must be an error here.
    # catch_warnings restores the filters on exit, so code outside this call sees no change.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            # Restricting the plugins keeps parsers we never use away from untrusted bytes.
            img = Image.open(io.BytesIO(data), formats=sorted(ALLOWED_FORMATS))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise _bomb(exc, max_pixels) from None
        except Image.UnidentifiedImageError:
            raise ImageRejected(f"not a supported image; expected one of {supported}") from None
        except Exception as exc:
            # Plugins raise many exception types on malformed headers; all mean "corrupt".
            raise ImageRejected(f"corrupt image header: {exc}") from None
        image_format = _FORMAT_ALIASES.get(img.format or "", img.format or "")
        if image_format not in ALLOWED_FORMATS:
            raise ImageRejected(f"{image_format} images are not supported; expected {supported}")
        width, height = img.size
        if width < 1 or height < 1:
            raise ImageRejected(f"image has no pixels ({width}×{height})")
        # Checked from the header, before a single pixel is decoded.
        if width * height > max_pixels:
            raise _too_large(width, height, max_pixels)
        if full_decode:
            try:
                img.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
                raise _bomb(exc, max_pixels) from None
            except MemoryError:  # the image is fine; this process could not hold it
                raise
            except Exception as exc:
                raise ImageRejected(f"truncated or corrupt {image_format} image: {exc}") from None
            # Frames decoded on load (GIF, TIFF) can be larger than the header claimed.
            if img.width * img.height > max_pixels:
                raise _too_large(img.width, img.height, max_pixels)
    return img, image_format


def inspect_image(data: bytes, max_pixels: int, *, full_decode: bool = True) -> ImageInfo:
    """Describe the image in data, raising ImageRejected (415 or 413) if it is not acceptable."""
    img, image_format = _open(data, max_pixels, full_decode)
    with img:
        try:
            orientation = int(img.getexif().get(ORIENTATION_TAG, 1))
        except Exception:  # a malformed EXIF block: the worker will refuse it, not us
            orientation = 1
        return ImageInfo(image_format, img.width, img.height, img.mode, orientation)


def open_checked(data: bytes, max_pixels: int) -> Image.Image:
    """Open, check and fully decode the image in data (first frame), or raise ImageRejected."""
    img, _ = _open(data, max_pixels, full_decode=True)
    return img
