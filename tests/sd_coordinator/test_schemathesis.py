"""Schemathesis against the coordinator's own OpenAPI, in-process: no input makes it answer 5xx."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi

from sd_common import result_frames
from sd_coordinator.app import create_app
from support.api import make_settings

TOKEN = "schemathesis-token"
EXAMPLES_PER_OPERATION = 30

# Schemathesis parametrizes at collection time, so the app exists at import; nothing starts until
# the first generated request, when Schemathesis enters the app's lifespan itself. (Its lazy
# from_fixture loader does not work with this pytest version: it writes the private `_nodeid`.)
DATA_DIR = Path(tempfile.mkdtemp(prefix="sd-fuzz-"))
atexit.register(shutil.rmtree, DATA_DIR, ignore_errors=True)
# Embedded, with a cluster token that every request sends, so worker endpoints are reached too.
APP = create_app(make_settings(DATA_DIR, cluster_token=TOKEN, max_upload_mb=1))

# POST /result-images takes raw frames (sd_common.result_frames): fuzz it with raw bytes.
schemathesis.serializer.alias(result_frames.MEDIA_TYPE, "application/octet-stream")
schema = schemathesis.openapi.from_dict(APP.openapi())
schema.app = APP
schema.config.generation.update(max_examples=EXAMPLES_PER_OPERATION, deterministic=True)
schema = schema.exclude(path="/events")  # an endless stream
schema = schema.exclude(path="/academico/events")  # likewise


@pytest.fixture(scope="module", autouse=True)
def stop_the_app_afterwards() -> Iterator[None]:
    """Stop the app (and its local worker's process pool) when this module is done."""
    yield
    asgi.shutdown_lifespans()  # Schemathesis would otherwise stop it only at interpreter exit


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION, derandomize=True, deadline=None, database=None,
    suppress_health_check=list(HealthCheck),
)  # fmt: skip
def test_no_generated_request_makes_the_coordinator_answer_5xx(case: schemathesis.Case) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {TOKEN}"}, checks=[not_a_server_error]
    )


def test_the_fuzzed_schema_covers_every_route_but_the_event_stream() -> None:
    fuzzed = {op.ok().path for op in schema.get_all_operations()}
    assert {"/upload", "/task", "/register", "/report", "/working", "/result-image", "/results",
            "/blobs/{sha256}", "/result/{filename}", "/inputs/{sha256}", "/jobs/{job_id}",
            "/queue_size", "/tps", "/workers"} <= fuzzed  # fmt: skip
    assert "/events" not in fuzzed and "/events" in APP.openapi()["paths"]
