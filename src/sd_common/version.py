"""The installed package's version, shown by `--version`, the API and the dashboard."""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "sistema-distribuido"


def package_version() -> str:
    """The version pip installed (package metadata); "unknown" when run from a bare tree."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "unknown"


def release_line(text: str | None) -> tuple[int, int] | None:
    """Major and minor of a version string ("0.1.0" -> (0, 1)); None if it has none."""
    match = re.match(r"(\d+)\.(\d+)", text or "")
    return (int(match[1]), int(match[2])) if match else None


VERSION = package_version()
