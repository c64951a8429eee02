"""Versions: `--version` on both programs, the coordinator's in the API, each worker's as it
registers and reports, and a warning for a worker on another release line."""

from __future__ import annotations

import logging
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest

from sd_coordinator.snapshot import SnapshotCache
from support.api import asgi_client, make_settings, running_app
from support.cluster import console_script

INSTALLED = version("sistema-distribuido")


@pytest.mark.parametrize("program", ["sd-coordinator", "sd-worker", "sd-submit", "sd-academic"])
def test_every_program_prints_the_installed_version(program: str) -> None:
    done = subprocess.run(
        [console_script(program), "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{program} {INSTALLED}"


async def test_the_coordinator_gives_its_version_in_health_openapi_and_the_snapshot(
    tmp_path: Path,
) -> None:
    async with running_app(make_settings(tmp_path)) as app, asgi_client(app) as client:
        assert (await client.get("/health")).json()["version"] == INSTALLED
        assert (await client.get("/openapi.json")).json()["info"]["version"] == INSTALLED
        snapshot = await SnapshotCache(app.state.services).get()
        assert snapshot["version"] == INSTALLED
        # The embedded mode's own worker runs this very package.
        assert {w["version"] for w in snapshot["workers"].values()} == {INSTALLED}


async def test_a_workers_version_is_kept_from_registration_and_reports(tmp_path: Path) -> None:
    async with running_app(make_settings(tmp_path)) as app, asgi_client(app) as client:
        hello = {"name": "w1", "session": "s1", "version": "0.1.7"}
        assert (await client.post("/register", json=hello)).status_code == 200
        assert (await client.get("/workers")).json()["w1"]["version"] == "0.1.7"
        report = {**hello, "version": "0.1.8"}
        assert (await client.post("/report", json=report)).status_code == 200
        assert (await client.get("/workers")).json()["w1"]["version"] == "0.1.8"
        # A worker from before version reporting sends none.
        await client.post("/register", json={"name": "old", "session": "s2"})
        assert (await client.get("/workers")).json()["old"]["version"] is None


async def test_a_worker_on_another_release_line_is_logged_with_both_versions(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    major, minor = (int(part) for part in INSTALLED.split(".")[:2])
    same, other = f"{major}.{minor}.99", f"{major}.{minor + 1}.0"
    async with running_app(make_settings(tmp_path)) as app, asgi_client(app) as client:
        with caplog.at_level(logging.WARNING, logger="sd.coordinator"):
            await client.post("/register", json={"name": "same", "session": "a", "version": same})
            assert not [r for r in caplog.records if "same" in r.getMessage()]
            await client.post("/register", json={"name": "next", "session": "b", "version": other})
    warnings = [r.getMessage() for r in caplog.records if "'next'" in r.getMessage()]
    assert warnings == [
        f"worker 'next' runs version {other} and this coordinator {INSTALLED}: install the "
        "same release on both"
    ]
