"""The wheel as a user builds it from a clean clone: the dashboard is built into it, and it runs
installed alone in a fresh virtualenv. Slow (npm ci, a build, an install from PyPI)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import venv
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.cluster import free_port

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 900


def clean_clone(tmp_path: Path) -> Path:
    """A `git clone` of this repository's committed HEAD: no node_modules, no built dashboard."""
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True)
    assert not (clone / "src" / "sd_coordinator" / "static").exists()
    return clone


def run(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, check=False, **kwargs
    )


def test_a_wheel_from_a_clean_clone_serves_the_dashboard_installed_alone(tmp_path: Path) -> None:
    clone = clean_clone(tmp_path)
    dist = tmp_path / "dist"
    built = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(clone)])
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = dist.glob("sistema_distribuido-*.whl")

    fresh = tmp_path / "fresh"
    venv.create(fresh, with_pip=True)
    installed = run([str(fresh / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)])
    assert installed.returncode == 0, installed.stdout + installed.stderr
    coordinator = str(fresh / "bin" / "sd-coordinator")

    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("RABBIT_HOST", "PYTHONPATH")}
    data = tmp_path / "data"
    data.mkdir()
    with (tmp_path / "coordinator.log").open("wb") as log:
        proc = subprocess.Popen(
            [coordinator, "--port", str(port), "--data-dir", str(data)],
            cwd=data,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        page = fetch_when_up(f"http://127.0.0.1:{port}/", proc)
        assert page.status_code == 200
        assert '<div id="root"></div>' in page.text, page.text
        script = re.search(r'src="\./(assets/index-[\w-]+\.js)"', page.text)
        assert script, page.text
        bundle = httpx.get(f"http://127.0.0.1:{port}/{script[1]}")
        assert bundle.status_code == 200 and b"createRoot" in bundle.content
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    shown = run([coordinator, "--version"])
    assert shown.stdout.strip() == f"sd-coordinator {version('sistema-distribuido')}"


def fetch_when_up(url: str, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> httpx.Response:
    deadline = time.monotonic() + timeout_s
    while True:
        assert proc.poll() is None, f"sd-coordinator exited with {proc.returncode}"
        try:
            return httpx.get(url, timeout=5)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_building_without_npm_or_a_built_dashboard_fails_saying_so(tmp_path: Path) -> None:
    clone = clean_clone(tmp_path)
    no_node = {**os.environ, "PATH": str(tmp_path / "empty")}
    built = run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "-w",
            str(tmp_path / "dist"),
            str(clone),
        ],
        env=no_node,
    )
    assert built.returncode != 0
    output = built.stdout + built.stderr
    assert "npm was not found" in output, output
    assert "holds no built dashboard" in output and "Install Node.js 20.19+" in output
    assert not (tmp_path / "dist").exists() or not list((tmp_path / "dist").glob("*.whl"))
