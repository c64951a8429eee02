"""Folders that refuse writes even to root (`chattr +i`): a real PermissionError on disk."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def immutable(folder: Path) -> Iterator[None]:
    """While inside, creating or renaming files in `folder` fails with EPERM, for root too."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["chattr", "+i", str(folder)], check=True)
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
