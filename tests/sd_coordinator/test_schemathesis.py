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
# Schemathesis calls the app as http://testserver: a host name this coordinator must answer.
APP = create_app(
    make_settings(DATA_DIR, cluster_token=TOKEN, max_upload_mb=1, allowed_hosts=["testserver"])
)

schema = schemathesis.openapi.from_dict(APP.openapi())
schema.app = APP
schema.config.generation.update(max_examples=EXAMPLES_PER_OPERATION, deterministic=True)
schema = schema.exclude(path="/events")  # an endless stream
schema = schema.exclude(path="/academico/events")  # likewise
WORKER_PATHS = {"/register", "/report", "/working", "/results", "/blobs/{sha256}"}


@pytest.fixture(scope="module", autouse=True)
def stop_the_app_afterwards() -> Iterator[None]:
    """Stop the app (and its local worker's process pool) when this module is done."""
    yield
    asgi.shutdown_lifespans()  # Schemathesis would otherwise stop it only at interpreter exit


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_generated_request_makes_the_coordinator_answer_5xx(case: schemathesis.Case) -> None:
    response = case.call_and_validate(
        headers={"Authorization": f"Bearer {TOKEN}"}, checks=[not_a_server_error]
    )
    assert response.status_code != 401 and "ALLOWED_HOSTS" not in response.text


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_generated_request_without_the_token_answers_5xx(case: schemathesis.Case) -> None:
    response = case.call_and_validate(checks=[not_a_server_error])
    # (Schemathesis also tries methods a path does not have: those answer 404 or 405.)
    if case.path in WORKER_PATHS and case.method.upper() == case.operation.method.upper():
        assert response.status_code == 401, (case.path, response.text)


def test_the_frames_body_is_described_as_binary_any_tool_can_send() -> None:
    results = APP.openapi()["paths"]["/results"]["post"]
    schema = results["requestBody"]["content"]["application/octet-stream"]["schema"]
    assert schema["format"] == "binary"
    header = schema["x-frame-header"]
    assert {"task_id", "worker", "size", "error", "output", "result"} <= set(header["properties"])
    answers = results["responses"]["200"]["content"]["application/json"]["schema"]
    assert answers["$ref"].endswith("/IngestAnswers")


def test_the_fuzzed_schema_covers_every_route_but_the_event_stream() -> None:
    fuzzed = {op.ok().path for op in schema.get_all_operations()}
    user_paths = {
        "/upload",
        "/task",
        "/result/{filename}",
        "/inputs/{sha256}",
        "/jobs/{job_id}",
        "/jobs/{job_id}/zip",
        "/queue_size",
        "/tps",
        "/workers",
    }
    assert user_paths | WORKER_PATHS <= fuzzed
    assert "/events" not in fuzzed and "/events" in APP.openapi()["paths"]
