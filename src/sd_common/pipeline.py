"""Parse and validate an `ops` pipeline string such as `grayscale,blur:2,thumbnail:256`.

Both the coordinator (to answer 422 at upload) and the worker (before trusting a message) use
this module, so it must stay free of Pillow: validating a request should not import an imaging
library. The Pillow side of each op lives in `sd_worker.ops`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

MAX_OPS_CHARS = 500
MAX_STEPS = 20

# Plain decimal notation only: float() alone would also accept "nan", "inf", "1_0" and
# non-ASCII digits, none of which a user means as an argument.
_FLOAT_RE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_INT_RE = re.compile(r"[+-]?[0-9]+")


class PipelineError(ValueError):
    """An `ops` string that cannot be run; `step` is the offending step text ("" if global)."""

    def __init__(self, message: str, step: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.step = step


@dataclass(frozen=True)
class Step:
    """One parsed step: the canonical op name and its argument (None for ops without one)."""

    name: str
    arg: float | int | None = None


@dataclass(frozen=True)
class OpSpec:
    """What an op is called, what argument it takes and what it does."""

    name: str
    arg: str | None
    arg_type: type[int] | type[float] | None
    default: float | int | None
    min: float | int | None
    max: float | int | None
    description_en: str
    description_es: str


def _plain(name: str, en: str, es: str) -> OpSpec:
    return OpSpec(name, None, None, None, None, None, en, es)


def _with_arg(
    name: str,
    arg: str,
    arg_type: type[int] | type[float],
    bounds: tuple[float, float, float],
    en: str,
    es: str,
) -> OpSpec:
    default, low, high = (arg_type(v) for v in bounds)
    return OpSpec(name, arg, arg_type, default, low, high, en, es)


_SPECS = (
    _plain(
        "grayscale",
        "Convert to grayscale (ImageOps.grayscale).",
        "Convierte a escala de grises (ImageOps.grayscale).",
    ),
    _with_arg(
        "blur",
        "radius",
        float,
        (2, 0, 100),
        "Gaussian blur with this radius in pixels.",
        "Desenfoque gaussiano con este radio en píxeles.",
    ),
    _plain("sharpen", "Sharpen (ImageFilter.SHARPEN).", "Enfoca (ImageFilter.SHARPEN)."),
    _plain(
        "edges", "Find edges (ImageFilter.FIND_EDGES).", "Detecta bordes (ImageFilter.FIND_EDGES)."
    ),
    _plain(
        "contour", "Trace contours (ImageFilter.CONTOUR).", "Traza contornos (ImageFilter.CONTOUR)."
    ),
    _plain("emboss", "Emboss (ImageFilter.EMBOSS).", "Relieve (ImageFilter.EMBOSS)."),
    _plain(
        "invert", "Invert colours (ImageOps.invert).", "Invierte los colores (ImageOps.invert)."
    ),
    _plain(
        "sepia",
        "Sepia tone: grayscale, then ImageOps.colorize from #2e1f0f (shadows) "
        "through #704214 (sepia) to #fdf5e6 (highlights).",
        "Tono sepia: escala de grises y luego ImageOps.colorize de #2e1f0f (sombras) "
        "pasando por #704214 (sepia) a #fdf5e6 (luces).",
    ),
    _plain(
        "autocontrast",
        "Stretch contrast to the full range (ImageOps.autocontrast).",
        "Estira el contraste a todo el rango (ImageOps.autocontrast).",
    ),
    _plain(
        "equalize",
        "Equalize the histogram (ImageOps.equalize).",
        "Ecualiza el histograma (ImageOps.equalize).",
    ),
    _with_arg(
        "thumbnail",
        "size",
        int,
        (256, 1, 10000),
        "Shrink to fit a size×size box, keeping the aspect ratio (never enlarges).",
        "Reduce para caber en un cuadro de tamaño×tamaño, conservando la proporción "
        "(nunca amplía).",
    ),
    _with_arg(
        "rotate",
        "degrees",
        float,
        (90, -360, 360),
        "Rotate counter-clockwise by this many degrees, enlarging the canvas to fit.",
        "Gira en sentido antihorario estos grados, ampliando el lienzo para que quepa.",
    ),
    _plain(
        "flip", "Flip top to bottom (ImageOps.flip).", "Voltea de arriba abajo (ImageOps.flip)."
    ),
    _plain(
        "mirror",
        "Mirror left to right (ImageOps.mirror).",
        "Refleja de izquierda a derecha (ImageOps.mirror).",
    ),
    _with_arg(
        "brightness",
        "factor",
        float,
        (1.5, 0, 10),
        "Change brightness: 0 is black, 1 the original, above 1 brighter.",
        "Cambia el brillo: 0 es negro, 1 el original, más de 1 más claro.",
    ),
    _with_arg(
        "contrast",
        "factor",
        float,
        (1.5, 0, 10),
        "Change contrast: 0 is solid grey, 1 the original, above 1 stronger.",
        "Cambia el contraste: 0 es gris uniforme, 1 el original, más de 1 más fuerte.",
    ),
)

OPS: dict[str, OpSpec] = {spec.name: spec for spec in _SPECS}

# "bw" is the name the seed used; it keeps working and is normalized away.
ALIASES: dict[str, str] = {"bw": "grayscale"}


def _arg_rule(spec: OpSpec) -> str:
    kind = "a whole number" if spec.arg_type is int else "a number"
    return f"{spec.name} takes {kind} ({spec.arg}) from {spec.min:g} to {spec.max:g}"


def _parse_arg(spec: OpSpec, text: str) -> float | int:
    pattern = _INT_RE if spec.arg_type is int else _FLOAT_RE
    if not pattern.fullmatch(text):
        raise ValueError(text)
    value: float | int = int(text) if spec.arg_type is int else float(text)
    assert spec.min is not None and spec.max is not None
    # An over-long exponent such as 1e999 parses to inf, which no range check should meet.
    if not math.isfinite(value) or not spec.min <= value <= spec.max:
        raise ValueError(text)
    return value


def _parse_step(index: int, text: str) -> Step:
    def fail(reason: str) -> PipelineError:
        return PipelineError(f'step {index} "{text}": {reason}', step=text)

    if not text:
        raise fail("empty step (two commas in a row, or a comma at an end)")
    raw_name, has_arg, raw_arg = text.partition(":")
    name = raw_name.strip().lower()
    name = ALIASES.get(name, name)
    spec = OPS.get(name)
    if spec is None:
        raise fail(f'unknown operation "{raw_name.strip()}"; known: {", ".join(sorted(OPS))}')
    arg_text = raw_arg.strip()
    if spec.arg_type is None:
        if has_arg:
            raise fail(f"{name} takes no argument")
        return Step(name)
    if not arg_text:
        if has_arg:
            raise fail(_arg_rule(spec))
        return Step(name, spec.default)
    try:
        return Step(name, _parse_arg(spec, arg_text))
    except ValueError:
        raise fail(_arg_rule(spec)) from None


def parse_pipeline(ops: str) -> tuple[Step, ...]:
    """Parse and validate an `ops` string into steps, raising PipelineError on any problem."""
    if not isinstance(ops, str):
        raise PipelineError(f"ops must be a string, not {type(ops).__name__}")
    if len(ops) > MAX_OPS_CHARS:
        raise PipelineError(f"ops is {len(ops)} characters long; at most {MAX_OPS_CHARS}")
    if not ops.strip():
        raise PipelineError("ops is empty; give at least one step, e.g. grayscale")
    parts = [part.strip() for part in ops.split(",")]
    if len(parts) > MAX_STEPS:
        raise PipelineError(f"ops has {len(parts)} steps; at most {MAX_STEPS}")
    return tuple(_parse_step(index, part) for index, part in enumerate(parts, start=1))


def _format_arg(value: float | int) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    # repr() is the shortest text that parses back to the same float.
    return repr(value)


def format_pipeline(steps: Iterable[Step]) -> str:
    """Give the canonical `ops` string for steps, so parse(format(parse(x))) == parse(x)."""
    return ",".join(
        step.name if step.arg is None else f"{step.name}:{_format_arg(step.arg)}" for step in steps
    )


def catalog() -> list[dict[str, Any]]:
    """Describe every op, JSON-ready, for the dashboard's pipeline editor."""
    return [
        {
            "name": spec.name,
            "arg": spec.arg,
            "type": spec.arg_type.__name__ if spec.arg_type else None,
            "default": spec.default,
            "min": spec.min,
            "max": spec.max,
            "description_en": spec.description_en,
            "description_es": spec.description_es,
        }
        for spec in OPS.values()
    ]


Size = tuple[int, int]


def _rotated_size(size: Size, degrees: float) -> Size:
    # Pillow's Image.rotate(degrees, expand=True), without the pixels.
    w, h = size
    angle = degrees % 360.0
    if angle in (0, 180):
        return w, h
    if angle in (90, 270):
        return h, w
    radians = -math.radians(angle)
    cos, sin = round(math.cos(radians), 15), round(math.sin(radians), 15)
    cx, cy = w / 2, h / 2
    tx = cos * -cx + sin * -cy + cx
    ty = -sin * -cx + cos * -cy + cy
    xs = [cos * x + sin * y + tx for x, y in ((0, 0), (w, 0), (w, h), (0, h))]
    ys = [-sin * x + cos * y + ty for x, y in ((0, 0), (w, 0), (w, h), (0, h))]
    return (math.ceil(max(xs)) - math.floor(min(xs)), math.ceil(max(ys)) - math.floor(min(ys)))


def _thumbnail_size(size: Size, box: float) -> Size:
    # Pillow's Image.thumbnail((box, box)): fits the box, keeps the aspect, never enlarges.
    w, h = size
    x = y = math.floor(box)
    if x >= w and y >= h:
        return w, h

    def round_aspect(number: float, key: Callable[[int], float]) -> int:
        return max(min(math.floor(number), math.ceil(number), key=key), 1)

    aspect = w / h
    if x / y >= aspect:
        return round_aspect(y * aspect, key=lambda n: abs(aspect - n / y)), y
    return x, round_aspect(x / aspect, key=lambda n: 0 if n == 0 else abs(aspect - x / n))


def step_size(step: Step, size: Size) -> Size:
    """The (width, height) that `step` makes of an image of `size`."""
    if step.name == "rotate":
        return _rotated_size(size, float(step.arg if step.arg is not None else 0))
    if step.name == "thumbnail":
        return _thumbnail_size(size, float(step.arg if step.arg is not None else 1))
    return size  # every other step keeps the size


def check_step_size(index: int, step: Step, size: Size, max_pixels: int) -> Size:
    """`step_size`, or PipelineError if that image would have more than `max_pixels` pixels."""
    width, height = step_size(step, size)
    if width * height > max_pixels:
        text = format_pipeline([step])
        raise PipelineError(
            f'step {index} "{text}" would make a {width}×{height} image ({width * height} '
            f"pixels) of a {size[0]}×{size[1]} one; at most {max_pixels} pixels allowed",
            step=text,
        )
    return width, height


def check_sizes(steps: Iterable[Step], size: Size, max_pixels: int) -> Size:
    """The final size of the pipeline on an image of `size`, every step's output checked
    against `max_pixels` before anything runs (PipelineError naming the first too large)."""
    for index, step in enumerate(steps, start=1):
        size = check_step_size(index, step, size, max_pixels)
    return size
