"""A file's name in a job and where its result goes: its relative path, then `.png` for its
suffix (shared by the coordinator, its zip and the client)."""

from __future__ import annotations

from pathlib import PurePosixPath


def result_relpath(name: str, copy: int = 0) -> str:
    """`trip/day1/a.jpg` → `trip/day1/a.png`; copy 2 (the third) → `trip/day1/a-3.png`."""
    path = PurePosixPath(name)
    stem = path.stem or "result"
    if copy:
        stem = f"{stem}-{copy + 1}"
    return str(path.with_name(f"{stem}.png"))


MAX_NAME_CHARS = 1000


def clean_name(name: str | None) -> str:
    """A file's name in a job: its relative path with `/` separators, without empty, `.` or
    `..` parts and unprintable characters (`trip/day1/a.jpg`)."""
    raw = (name or "").replace("\\", "/")
    parts = ["".join(c for c in p if c.isprintable()) for p in raw.split("/")]
    kept = [p for p in parts if p not in ("", ".", "..")]
    return "/".join(kept)[:MAX_NAME_CHARS] or "image"
