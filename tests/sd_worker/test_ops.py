import io
import pickle
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import pytest
from PIL import Image, ImageChops, ImageEnhance, ImageFilter, ImageOps

from sd_common.images import ImageRejected
from sd_common.pipeline import OPS, PipelineError, Step, parse_pipeline
from sd_worker.ops import apply_pipeline, apply_step, process_image, process_image_into

Op = Callable[[Image.Image], Image.Image]


def thumbnail(size: int) -> Op:
    def reference(img: Image.Image) -> Image.Image:
        copy = img.copy()
        copy.thumbnail((size, size))
        return copy

    return reference


def sepia(img: Image.Image) -> Image.Image:
    gray = ImageOps.grayscale(img)
    return ImageOps.colorize(gray, black="#2e1f0f", white="#fdf5e6", mid="#704214")


# Pillow's own operation for each single-step `ops`, written here independently of sd_worker.ops.
REFERENCE: dict[str, Op] = {
    "grayscale": ImageOps.grayscale,
    "bw": ImageOps.grayscale,
    "blur": lambda img: img.filter(ImageFilter.GaussianBlur(2)),
    "blur:5.5": lambda img: img.filter(ImageFilter.GaussianBlur(5.5)),
    "blur:0": lambda img: img.filter(ImageFilter.GaussianBlur(0)),
    "sharpen": lambda img: img.filter(ImageFilter.SHARPEN),
    "edges": lambda img: img.filter(ImageFilter.FIND_EDGES),
    "contour": lambda img: img.filter(ImageFilter.CONTOUR),
    "emboss": lambda img: img.filter(ImageFilter.EMBOSS),
    "invert": ImageOps.invert,
    "sepia": sepia,
    "autocontrast": ImageOps.autocontrast,
    "equalize": ImageOps.equalize,
    "thumbnail": thumbnail(256),
    "thumbnail:20": thumbnail(20),
    "rotate": lambda img: img.rotate(90, expand=True),
    "rotate:33.3": lambda img: img.rotate(33.3, expand=True),
    "rotate:-45": lambda img: img.rotate(-45, expand=True),
    "flip": ImageOps.flip,
    "mirror": ImageOps.mirror,
    "brightness": lambda img: ImageEnhance.Brightness(img).enhance(1.5),
    "brightness:0.25": lambda img: ImageEnhance.Brightness(img).enhance(0.25),
    "contrast": lambda img: ImageEnhance.Contrast(img).enhance(1.5),
    "contrast:3": lambda img: ImageEnhance.Contrast(img).enhance(3),
}


def noisy_rgb(size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A photo-like test image: two gradients and noise, not square so rotations show."""
    gradient = Image.linear_gradient("L").resize(size)
    noise = Image.effect_noise(size, 64)
    return Image.merge("RGB", (gradient, gradient.transpose(Image.Transpose.ROTATE_180), noise))


def encode(img: Image.Image, image_format: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    img.save(buffer, format=image_format, **params)
    return buffer.getvalue()


def rgba() -> Image.Image:
    img = noisy_rgb().convert("RGBA")
    img.putalpha(Image.linear_gradient("L").resize(img.size))
    return img


INPUTS: dict[str, Callable[[], bytes]] = {
    "png-rgb": lambda: encode(noisy_rgb(), "PNG"),
    "jpeg-rgb": lambda: encode(noisy_rgb(), "JPEG", quality=90),
    "png-rgba": lambda: encode(rgba(), "PNG"),
    "png-p": lambda: encode(noisy_rgb().convert("P"), "PNG"),
    "gif-p": lambda: encode(noisy_rgb(), "GIF"),
    "png-l": lambda: encode(noisy_rgb().convert("L"), "PNG"),
}


def pillow_decode(data: bytes) -> Image.Image:
    """The input as the worker must see it: upright, in "L" or "RGB"."""
    img = Image.open(io.BytesIO(data))
    img.load()
    img = ImageOps.exif_transpose(img)
    return img if img.mode in ("L", "RGB") else img.convert("RGB")


def decode_result(result: bytes) -> Image.Image:
    assert result.startswith(b"\x89PNG\r\n\x1a\n")
    img = Image.open(io.BytesIO(result))
    assert img.format == "PNG"
    img.load()
    return img


def assert_same_pixels(actual: Image.Image, expected: Image.Image) -> None:
    assert (actual.mode, actual.size) == (expected.mode, expected.size)
    assert ImageChops.difference(actual, expected).getbbox() is None


def test_every_op_has_a_reference_case():
    assert {parse_pipeline(ops)[0].name for ops in REFERENCE} == set(OPS)


@pytest.mark.parametrize("input_kind", sorted(INPUTS))
@pytest.mark.parametrize("ops", sorted(REFERENCE))
def test_each_op_equals_pillows_own_operation(ops, input_kind):
    data = INPUTS[input_kind]()
    expected = REFERENCE[ops](pillow_decode(data))
    assert_same_pixels(decode_result(process_image(data, ops)), expected)


@pytest.mark.parametrize(
    ("ops", "reference"),
    [
        (
            "grayscale,blur:2,thumbnail:32",
            [ImageOps.grayscale, REFERENCE["blur"], thumbnail(32)],
        ),
        (
            " rotate:45 , sepia,contrast:2,mirror",
            [
                lambda img: img.rotate(45, expand=True),
                sepia,
                lambda img: ImageEnhance.Contrast(img).enhance(2),
                ImageOps.mirror,
            ],
        ),
        ("bw,invert,equalize", [ImageOps.grayscale, ImageOps.invert, ImageOps.equalize]),
        (
            "edges,edges,flip,brightness",
            [REFERENCE["edges"], REFERENCE["edges"], ImageOps.flip, REFERENCE["brightness"]],
        ),
    ],
)
def test_multi_step_pipeline_equals_pillow_operations_in_order(ops, reference):
    data = INPUTS["jpeg-rgb"]()
    expected = pillow_decode(data)
    for operation in reference:
        expected = operation(expected)
    assert_same_pixels(decode_result(process_image(data, ops)), expected)


def test_exif_orientation_is_applied_before_the_pipeline():
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    data = encode(noisy_rgb(), "JPEG", exif=exif)
    plain = Image.open(io.BytesIO(data))
    expected = ImageOps.invert(plain.transpose(Image.Transpose.ROTATE_270))
    result = decode_result(process_image(data, "invert"))
    assert result.size == (48, 64)
    assert_same_pixels(result, expected)


def test_a_result_written_in_place_is_the_same_png_and_leaves_no_temporary_file(tmp_path):
    data = INPUTS["jpeg-rgb"]()
    source = tmp_path / "input"
    source.write_bytes(data)
    results = tmp_path / "results"
    results.mkdir()

    size = process_image_into(str(source), str(results), "r.png", "grayscale,blur:1")

    written = (results / "r.png").read_bytes()
    assert written == process_image(data, "grayscale,blur:1") and size == len(written)
    with pytest.raises(ImageRejected):
        process_image_into(str(source), str(results), "bad.png", "grayscale", 1, 10)
    assert sorted(p.name for p in results.iterdir()) == ["r.png"]
    # A call run again (its pool broke under it) writes its file again, whole.
    assert process_image_into(str(source), str(results), "r.png", "grayscale,blur:1") == size
    assert (results / "r.png").read_bytes() == written


def test_compress_level_changes_size_not_pixels():
    data = INPUTS["png-rgb"]()
    fast = process_image(data, "blur:1", png_compress_level=1)
    small = process_image(data, "blur:1", png_compress_level=9)
    assert fast != small
    assert_same_pixels(decode_result(fast), decode_result(small))


def test_bad_ops_is_a_pipeline_error_found_before_decoding():
    with pytest.raises(PipelineError, match='"blur:abc"'):
        process_image(b"not even an image", "grayscale,blur:abc")


@pytest.mark.parametrize(
    ("data", "max_pixels", "status_code"),
    [
        (b"", 50_000_000, 415),
        (b"plain text, not an image", 50_000_000, 415),
        (encode(Image.new("RGB", (16, 16)), "ICO"), 50_000_000, 415),
        (encode(Image.new("RGB", (64, 48)), "PNG"), 1000, 413),
    ],
    ids=["empty", "text", "ico", "too-many-pixels"],
)
def test_bad_input_is_image_rejected(data, max_pixels, status_code):
    with pytest.raises(ImageRejected) as caught:
        process_image(data, "grayscale", max_pixels=max_pixels)
    assert caught.value.status_code == status_code


def test_truncated_jpeg_is_image_rejected():
    data = encode(noisy_rgb((256, 256)), "JPEG")
    with pytest.raises(ImageRejected) as caught:
        process_image(data[: len(data) // 2], "grayscale")
    assert caught.value.status_code == 415


def test_apply_pipeline_leaves_the_input_image_untouched():
    img = noisy_rgb()
    before = img.tobytes()
    result = apply_pipeline(img, parse_pipeline("thumbnail:8,invert"))
    assert result.size == (8, 6)
    assert img.tobytes() == before


def test_apply_step_without_an_argument_uses_the_default():
    img = noisy_rgb()
    assert_same_pixels(apply_step(img, Step("blur")), REFERENCE["blur"](img))


def test_apply_step_rejects_an_unknown_operation():
    with pytest.raises(PipelineError):
        apply_step(noisy_rgb(), Step("melt"))


def test_process_image_runs_in_a_process_pool():
    data = INPUTS["png-rgb"]()
    pickle.dumps(process_image)
    with ProcessPoolExecutor(max_workers=1) as pool:
        result = pool.submit(process_image, data, "grayscale").result(timeout=60)
    assert_same_pixels(decode_result(result), ImageOps.grayscale(pillow_decode(data)))


def test_a_pipeline_leaves_the_callers_image_untouched_unless_it_is_handed_over():
    img = noisy_rgb()
    before = img.copy()
    steps = parse_pipeline("thumbnail:16,thumbnail:8")
    result = apply_pipeline(img, steps)
    assert result.size == (8, 6) and result is not img
    assert_same_pixels(img, before)
    # Handed over (as the worker does with the image it decoded): no copy is made.
    assert apply_pipeline(img, steps, owned=True) is img and img.size == (8, 6)
