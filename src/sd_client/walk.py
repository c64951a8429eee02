"""What `sd-submit` sends: image files found in the paths given, named by their relative path."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sd_common.result_names import clean_name, result_relpath

NOT_WALKED = "a folder (use --recursive)"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"})


@dataclass(frozen=True)
class Source:
    """An image file to send: its path on disk, its name in the job, its size."""

    path: Path
    name: str
    size: int


@dataclass(frozen=True)
class Skipped:
    """A path not sent, and why; `problem` when it was meant to be processed (an image that
    cannot be read, say), not merely something other than an image."""

    path: str
    reason: str
    problem: bool = False


def _candidates(root: Path, recursive: bool, skipped: list[Skipped]) -> list[tuple[Path, str]]:
    """(path, name) of the files under a folder; names start with the folder's own name."""
    found: list[tuple[Path, str]] = []
    prefix = root.resolve().name or "files"

    def error(exc: OSError) -> None:
        skipped.append(Skipped(str(exc.filename), f"unreadable folder: {exc.strerror}", True))

    for folder, dirs, names in os.walk(root, onerror=error):
        dirs.sort()
        here = Path(folder)
        if not recursive:
            for d in dirs:
                skipped.append(Skipped(str(here / d), NOT_WALKED))
            dirs.clear()
        for name in sorted(names):
            path = here / name
            found.append((path, f"{prefix}/{path.relative_to(root).as_posix()}"))
    return found


def walk(paths: list[str], recursive: bool) -> tuple[list[Source], list[Skipped]]:
    """Image files in `paths` (files, or folders walked), and what was left out and why."""
    skipped: list[Skipped] = []
    candidates: list[tuple[Path, str]] = []
    for given in paths:
        path = Path(given)
        if path.is_dir():
            candidates += _candidates(path, recursive, skipped)
        elif path.exists():
            candidates.append((path, path.name))
        else:
            skipped.append(Skipped(given, "no such file or folder", True))
    sources: list[Source] = []
    names: dict[str, str] = {}  # result path → the file that takes it
    for path, raw_name in candidates:
        if path.suffix.lower() not in IMAGE_SUFFIXES:
            skipped.append(Skipped(str(path), "not an image (by its suffix)"))
            continue
        try:
            raw_name.encode()
        except UnicodeEncodeError:
            skipped.append(Skipped(str(path), "its name is not valid UTF-8", True))
            continue
        try:
            size = path.stat().st_size
            if not os.access(path, os.R_OK):
                raise PermissionError(13, "Permission denied")
        except OSError as exc:
            skipped.append(Skipped(str(path), f"unreadable: {exc.strerror}", True))
            continue
        if size == 0:
            skipped.append(Skipped(str(path), "empty file", True))
            continue
        name = clean_name(raw_name)
        target = result_relpath(name)
        if target in names:
            skipped.append(
                Skipped(
                    str(path), f"its result {target} would overwrite that of {names[target]}", True
                )
            )
            continue
        names[target] = str(path)
        sources.append(Source(path, name, size))
    return sources, skipped
