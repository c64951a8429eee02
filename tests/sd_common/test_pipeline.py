import json
import os
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sd_common.pipeline import (
    ALIASES,
    MAX_OPS_CHARS,
    MAX_STEPS,
    OPS,
    PipelineError,
    Step,
    catalog,
    format_pipeline,
    parse_pipeline,
)


def test_parsing_does_not_import_pillow():
    code = "import sys, sd_common.pipeline; sys.exit('PIL' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    assert subprocess.run([sys.executable, "-c", code], env=env, check=False).returncode == 0


def test_example_pipeline_parses_into_steps():
    assert parse_pipeline("grayscale,blur:2,thumbnail:256") == (
        Step("grayscale"),
        Step("blur", 2.0),
        Step("thumbnail", 256),
    )


def test_seed_name_bw_is_normalized_to_grayscale():
    assert parse_pipeline("bw") == (Step("grayscale"),)
    assert format_pipeline(parse_pipeline("bw,invert")) == "grayscale,invert"


def test_whitespace_and_case_around_steps_are_tolerated():
    assert parse_pipeline("  Grayscale ,\tblur : 3 , INVERT ") == (
        Step("grayscale"),
        Step("blur", 3.0),
        Step("invert"),
    )


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ("blur", Step("blur", 2.0)),
        ("thumbnail", Step("thumbnail", 256)),
        ("rotate", Step("rotate", 90.0)),
        ("brightness", Step("brightness", 1.5)),
        ("contrast", Step("contrast", 1.5)),
    ],
)
def test_omitted_argument_takes_the_default(ops, expected):
    assert parse_pipeline(ops) == (expected,)


def test_argument_types_follow_the_spec():
    blur, thumbnail = parse_pipeline("blur:3,thumbnail:64")
    assert type(blur.arg) is float
    assert type(thumbnail.arg) is int


@pytest.mark.parametrize(
    "ops",
    [
        "blur:0",
        "blur:100",
        "rotate:-360",
        "rotate:360",
        "thumbnail:1",
        "thumbnail:10000",
        "brightness:0",
        "contrast:10",
        "blur:.5",
        "blur:1e1",
        "rotate:+45",
        "rotate:-0.0",
    ],
)
def test_arguments_at_and_inside_the_bounds_are_accepted(ops):
    assert len(parse_pipeline(ops)) == 1


def test_error_names_the_step_and_its_position():
    with pytest.raises(PipelineError) as caught:
        parse_pipeline("grayscale,blur:abc")
    assert str(caught.value) == 'step 2 "blur:abc": blur takes a number (radius) from 0 to 100'
    assert caught.value.step == "blur:abc"


@pytest.mark.parametrize(
    ("ops", "step", "reason"),
    [
        ("blur:nan", "blur:nan", "blur takes a number"),
        ("blur:inf", "blur:inf", "blur takes a number"),
        ("blur:1e999", "blur:1e999", "blur takes a number"),
        ("blur:-1", "blur:-1", "from 0 to 100"),
        ("blur:100.5", "blur:100.5", "from 0 to 100"),
        ("blur:", "blur:", "blur takes a number"),
        ("blur:1:2", "blur:1:2", "blur takes a number"),
        ("blur:1_0", "blur:1_0", "blur takes a number"),
        ("blur:٣", "blur:٣", "blur takes a number"),
        ("thumbnail:0", "thumbnail:0", "thumbnail takes a whole number (size) from 1 to 10000"),
        ("thumbnail:2.5", "thumbnail:2.5", "whole number"),
        ("thumbnail:10001", "thumbnail:10001", "whole number"),
        ("rotate:361", "rotate:361", "rotate takes a number (degrees) from -360 to 360"),
        ("brightness:10.01", "brightness:10.01", "from 0 to 10"),
        ("contrast:-0.1", "contrast:-0.1", "from 0 to 10"),
        ("invert:3", "invert:3", "invert takes no argument"),
        ("grayscale:", "grayscale:", "grayscale takes no argument"),
        ("grayscale,nope", "nope", 'unknown operation "nope"'),
        ("grayscale,,blur", "", "empty step"),
        ("grayscale,", "", "empty step"),
    ],
)
def test_bad_step_is_rejected_naming_the_step(ops, step, reason):
    with pytest.raises(PipelineError) as caught:
        parse_pipeline(ops)
    assert caught.value.step == step
    assert f'"{step}"' in str(caught.value)
    assert reason in str(caught.value)


@pytest.mark.parametrize("ops", ["", "   ", "blur:" + "0" * MAX_OPS_CHARS])
def test_empty_or_overlong_ops_is_rejected_as_a_whole(ops):
    with pytest.raises(PipelineError) as caught:
        parse_pipeline(ops)
    assert caught.value.step == ""


def test_at_most_twenty_steps_are_accepted():
    assert len(parse_pipeline(",".join(["invert"] * MAX_STEPS))) == MAX_STEPS
    with pytest.raises(PipelineError, match="at most 20") as caught:
        parse_pipeline(",".join(["invert"] * (MAX_STEPS + 1)))
    assert caught.value.step == ""


def test_pipeline_error_is_a_value_error():
    with pytest.raises(ValueError):
        parse_pipeline("nope")


def test_non_string_ops_is_a_pipeline_error():
    with pytest.raises(PipelineError):
        parse_pipeline(None)  # type: ignore[arg-type]


def test_format_gives_the_canonical_string():
    steps = parse_pipeline(" BW , blur : 2.50 ,thumbnail, rotate:-0.25")
    assert format_pipeline(steps) == "grayscale,blur:2.5,thumbnail:256,rotate:-0.25"


def test_every_op_has_bilingual_descriptions_and_sane_bounds():
    for name, spec in OPS.items():
        assert spec.name == name
        assert spec.description_en and spec.description_es
        if spec.arg is None:
            assert spec.arg_type is None and spec.default is None
        else:
            assert spec.min is not None and spec.max is not None
            assert spec.min <= spec.default <= spec.max
    assert set(ALIASES.values()) <= set(OPS)


def test_catalog_is_json_ready_and_lists_every_op():
    entries = json.loads(json.dumps(catalog()))
    assert [entry["name"] for entry in entries] == list(OPS)
    keys = {"name", "arg", "type", "default", "min", "max", "description_en", "description_es"}
    assert all(set(entry) == keys for entry in entries)
    by_name = {entry["name"]: entry for entry in entries}
    thumbnail = {"arg": "size", "type": "int", "default": 256, "min": 1, "max": 10000}
    assert thumbnail.items() <= by_name["thumbnail"].items()
    assert by_name["blur"]["type"] == "float"
    assert by_name["invert"]["arg"] is None and by_name["invert"]["type"] is None


def _arg_text(spec, draw) -> str:
    if spec.arg_type is int:
        value = draw(st.integers(min_value=spec.min, max_value=spec.max))
        return str(value)
    value = draw(st.floats(min_value=spec.min, max_value=spec.max, allow_nan=False))
    return draw(st.sampled_from([repr(value), f"{value:.3f}", f"{value:e}"]))


@st.composite
def step_texts(draw) -> str:
    name = draw(st.sampled_from(sorted(OPS) + sorted(ALIASES)))
    spec = OPS[ALIASES.get(name, name)]
    text = name
    if spec.arg_type is not None and draw(st.booleans()):
        text = f"{name}:{_arg_text(spec, draw)}"
    pad = st.sampled_from(["", " ", "\t", "  "])
    return draw(pad) + text + draw(pad)


@given(st.lists(step_texts(), min_size=1, max_size=MAX_STEPS))
def test_format_then_parse_round_trips(texts):
    ops = ",".join(texts)
    if len(ops) > MAX_OPS_CHARS:
        return
    steps = parse_pipeline(ops)
    canonical = format_pipeline(steps)
    assert parse_pipeline(canonical) == steps
    assert format_pipeline(parse_pipeline(canonical)) == canonical


@given(st.text(max_size=60))
def test_any_text_either_parses_or_raises_pipeline_error(ops):
    try:
        steps = parse_pipeline(ops)
    except PipelineError as error:
        assert str(error)
    else:
        assert 1 <= len(steps) <= MAX_STEPS
