"""Where a file's result goes: its relative path with `.png` for its suffix (shared by the
coordinator's zip and the client's downloads)."""

from __future__ import annotations

from pathlib import PurePosixPath


def result_relpath(name: str, copy: int = 0) -> str:
    """`trip/day1/a.jpg` → `trip/day1/a.png`; copy 2 (the third) → `trip/day1/a-3.png`."""
    path = PurePosixPath(name)
    stem = path.stem or "result"
    if copy:
        stem = f"{stem}-{copy + 1}"
    return str(path.with_name(f"{stem}.png"))
