"""What the command-line programs share: settings with one-line errors, logging, the heap."""

from __future__ import annotations

import contextlib
import gc
import logging
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from sd_common.settings import Settings

# A job's thousands of task messages live long enough to reach the oldest generation, so the
# collector's full passes kept re-scanning everything start-up made. Start-up objects are frozen
# out of its sight and young collections come less often; reference counting still frees all
# but cycles at once (benchmarks/OPTIMISATIONS.md has the measurements).
GC_YOUNG_THRESHOLD = 20_000


def settle_heap() -> None:
    """Once a program has started: collect, freeze what start-up made (`gc.freeze`, kept for
    the life of the process) and collect young objects less often (see GC_YOUNG_THRESHOLD)."""
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def fail(message: str) -> NoReturn:
    """Stop the program with one clear line on stderr."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def check_data_dir(folder: Path, fix: str = "set DATA_DIR", what: str = "DATA_DIR") -> None:
    """Stop with one line unless `folder` is (or can be made) a folder this user writes."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        why = "a file, not a folder" if isinstance(exc, FileExistsError) else exc.strerror or exc
        fail(
            f"cannot use {what} {folder} ({why}): it must be a folder this user can create "
            f"and write; {fix}."
        )


def check_database(path: Path, what: str) -> None:
    """Stop with one line if the SQLite file at `path` exists but SQLite cannot read it (a
    damaged file, or another program's under that name); a missing one is made at start."""
    import sqlite3  # only the programs that keep a database load SQLite (not sd-worker)

    if not path.exists():
        return
    try:
        with contextlib.closing(
            sqlite3.connect(f"{path.absolute().as_uri()}?mode=rw", uri=True)
        ) as db:
            db.execute("PRAGMA schema_version").fetchone()
    except sqlite3.Error as exc:
        fail(
            f"cannot read {what} {path} ({exc}): it is damaged, or not a database of "
            "Sistema Distribuido. Restore it from a backup, or move it away to start with an "
            "empty one (what it held is then forgotten)."
        )


MIN_PYTHON = (3, 11)


def check_python() -> None:
    """Stop with one line on a Python older than the programs need."""
    if sys.version_info < MIN_PYTHON:
        fail(
            f"Python {platform.python_version()} is too old: Sistema Distribuido needs Python "
            "3.11 or newer. Install one (Windows: winget install Python.Python.3.12; macOS: "
            "brew install python@3.12) and create the venv with it (py -3.12 -m venv .venv)."
        )


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment and .env, CLI flags (non-None) on top; bad values fail."""
    try:
        base = Settings()
        flags = {k: v for k, v in overrides.items() if v is not None}
        return Settings.model_validate({**base.model_dump(), **flags}) if flags else base
    except ValidationError as exc:
        problems = "; ".join(
            f"{str(e['loc'][0]).upper() if e['loc'] else 'setting'}={e.get('input')!r}: "
            + e["msg"].removeprefix("Value error, ")  # our validators' words, as they are
            for e in exc.errors()
        )
        fail(f"invalid setting: {problems} (see .env.example)")


def setup_logging(verbose: bool = False) -> None:
    """Plain, greppable log lines on stderr."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("aio_pika").setLevel(logging.WARNING)
    logging.getLogger("aiormq").setLevel(logging.WARNING)
