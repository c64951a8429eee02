"""The layout of the coordinator's DATA_DIR, which a worker may share (same machine, or a
shared mount): then the pool process reads inputs from it and writes results into it, and no
image bytes cross HTTP (SHARED_STORAGE, DESIGN departure noted in the README).

The coordinator writes a fresh random id into `DATA_DIR/storage-id` at every start and offers
`{"data_dir", "id"}` when a worker registers; a worker that reads the same id at that path sees
the same folder, not merely one with the same name on another machine.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from sd_common.backoff import compute_backoff

PROBE_NAME = "storage-id"
SHA256 = re.compile(r"^[0-9a-f]{64}$")
RESULT_NAME = re.compile(r"^[0-9a-f]{32}\.png$")


def inputs_dir(data_dir: Path) -> Path:
    """Where inputs are stored once, by sha256."""
    return data_dir / "blobs"


def results_dir(data_dir: Path) -> Path:
    """Where result images are stored, by task id."""
    return data_dir / "results"


def input_path(data_dir: Path, sha256: str) -> Path:
    """The file of input `sha256` (which must match SHA256)."""
    return inputs_dir(data_dir) / sha256[:2] / sha256


def result_name(task_id: str) -> str:
    """File name of a task's result image."""
    return f"{task_id}.png"


# Windows refuses to replace a file that another process holds open (an antivirus scanning the
# new file, a reader of the old one) with a sharing violation that passes within moments:
# retried after 0.01 s, 0.025 s, … up to 2 s, about 3.6 s in all.
WINDOWS_REPLACE_RETRIES = 7


def replace_file(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """`os.replace`: atomic on each platform (readers see the old file or the new one, never a
    part), retried on Windows while another process holds `dst` open for a moment."""
    if sys.platform == "win32":
        for attempt in range(WINDOWS_REPLACE_RETRIES):
            try:
                os.replace(src, dst)
                return
            except PermissionError:
                time.sleep(compute_backoff(attempt, base_s=0.01, cap_s=2.0, factor=2.5))
    os.replace(src, dst)


@contextlib.contextmanager
def atomic_file(path: Path | str) -> Iterator[BinaryIO]:
    """Write a file that readers see whole or not at all: a temporary sibling, renamed over
    `path` once written (removed if writing fails). Plain `os.path` strings: a pool process
    writes one per task, and pathlib's objects cost it ~7 µs of a 30 µs write."""
    folder, name = os.path.split(os.fspath(path))
    tmp = os.path.join(folder, f".{name}.{os.urandom(16).hex()}.tmp")
    try:
        with open(tmp, "wb") as f:
            yield f
        replace_file(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_new(path: str | os.PathLike[str], data: bytes, *, exclusive: bool = False) -> None:
    """Write `data` as the file `path`, removed if writing fails. For a fresh name that nobody
    reads before its writer says so (a worker's `.incoming-` result; only a re-run of the same
    call, after its pool broke, writes it again): no temporary sibling and rename, which cost a
    pool process more kernel time than the write itself. `exclusive`: FileExistsError if there
    is a file there already."""
    with open(path, "xb" if exclusive else "wb") as f:
        try:
            f.write(data)
        except BaseException:
            f.close()
            os.unlink(path)
            raise


def file_has_sha256(path: Path, sha256: str) -> bool:
    """True when the file at `path` exists and hashes to `sha256` (a file on disk may have been
    truncated by a crash or tampered with: only the hash is trusted)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError:
        return False
    return digest.hexdigest() == sha256


# Errors of a write that failed for want of space (EDQUOT: a quota; not on every platform).
DISK_FULL = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


def is_disk_full(exc: BaseException) -> bool:
    """A write that failed for want of space (a file, or SQLite's own "disk is full")."""
    if isinstance(exc, OSError):
        return exc.errno in DISK_FULL
    # sqlite3 is not imported here: pool processes import this module, and with SQLite loaded
    # their PNG encoding failed under POOL_MEMORY_MB=300 (tests/sd_worker/test_pool_limits).
    sqlite3 = sys.modules.get("sqlite3")
    return sqlite3 is not None and isinstance(exc, sqlite3.Error) and "disk is full" in str(exc)


# A full disk fails every write alike until it has room: it is logged at most this often.
DISK_FULL_SAY_S = 30.0


class Every:
    """`due()` is True on the first call, then again once `period_s` has passed since the last
    True; the calls in between are counted (`take_held`), for a line that says how many it
    stands for."""

    def __init__(self, period_s: float) -> None:
        self.period_s = period_s
        self.held = 0
        self._said_at: float | None = None

    def due(self) -> bool:
        now = time.monotonic()
        if self._said_at is not None and now - self._said_at < self.period_s:
            self.held += 1
            return False
        self._said_at = now
        return True

    def take_held(self) -> int:
        """The calls held since the last due one; counting starts again."""
        held, self.held = self.held, 0
        return held


INCOMING_PREFIX = ".incoming-"


def incoming_name(task_id: str) -> str:
    """A fresh name under which a worker that shares DATA_DIR writes a task's result: it
    becomes `result_name(task_id)` only when the coordinator accepts it for an unfinished task,
    so a late or duplicate result never replaces a stored one."""
    return f"{INCOMING_PREFIX}{task_id}-{os.urandom(16).hex()}.png"
