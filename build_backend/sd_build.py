"""PEP 517 build backend: setuptools, after building the dashboard (web/) into the package.

`pip install .`, `pip wheel .` and `python -m build` run `npm ci` (when web/node_modules is
missing or older than the lock file) and `npm run build`, which writes web/ into
src/sd_coordinator/static, so the wheel and the sdist carry the dashboard. Without npm they use
assets built before (an sdist carries them, so its wheel needs no Node.js), and stop with a
clear message when there are none. Editable installs are left alone: scripts/start.sh and
scripts/test.sh build web/ for them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403  (every hook this module does not change)

WEB = Path("web")
STATIC = Path("src", "sd_coordinator", "static")
NODE_HINT = (
    "Install Node.js 20.19+ with npm (Debian: apt-get install nodejs npm; others: "
    "https://nodejs.org) and build again, or build from an sdist, which carries the dashboard."
)


def _npm(npm: str, *args: str) -> None:
    command = [npm, *args]
    print(f"sd_build: {' '.join(command)} (in {WEB})", file=sys.stderr, flush=True)
    try:
        subprocess.run(command, cwd=WEB, check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(
            f"error: building the dashboard failed: `npm {' '.join(args)}` in {WEB.resolve()} "
            f"({exc}; its output is above). {NODE_HINT}"
        ) from exc


def build_dashboard() -> None:
    """Build web/ into the package with npm when both are here; else require built assets."""
    npm = shutil.which("npm")
    if npm and (WEB / "package.json").is_file():
        installed = WEB / "node_modules" / ".package-lock.json"
        lock = WEB / "package-lock.json"
        if not installed.is_file() or lock.stat().st_mtime > installed.stat().st_mtime:
            _npm(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
        _npm(npm, "run", "build")
        # setuptools copies package data into build/lib and never removes what is no longer
        # there: yesterday's hashed bundles would ship in the wheel beside today's.
        shutil.rmtree(Path("build", "lib", "sd_coordinator", "static"), ignore_errors=True)
    elif (STATIC / "index.html").is_file():
        why = "npm not found" if (WEB / "package.json").is_file() else f"no {WEB}/ (an sdist)"
        print(f"sd_build: {why}; using the dashboard already built in {STATIC}", file=sys.stderr)
    else:
        raise SystemExit(
            "error: cannot build Sistema Distribuido without its dashboard: npm was not found "
            f"and {STATIC} holds no built dashboard (index.html). {NODE_HINT}"
        )


def build_wheel(
    wheel_directory: str,
    config_settings: dict[str, Any] | None = None,
    metadata_directory: str | None = None,
) -> str:
    """setuptools' wheel, with the dashboard built into it first."""
    build_dashboard()
    return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory: str, config_settings: dict[str, Any] | None = None) -> str:
    """setuptools' sdist, with the dashboard built into it first."""
    build_dashboard()
    return _setuptools.build_sdist(sdist_directory, config_settings)
