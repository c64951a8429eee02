"""One sd-coordinator per DATA_DIR: two would share one database and one results folder, each
running its own queue (embedded) or its own rescues of the other's tasks. The lock is the
operating system's, on a file in DATA_DIR, so it goes with the process however it ends."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import BinaryIO

LOCK_NAME = "coordinator.lock"


class DataDirInUse(Exception):
    """Another process holds DATA_DIR; the message is its pid, when it could be read."""


def lock_data_dir(data_dir: Path) -> BinaryIO:
    """Hold DATA_DIR for this process until it exits (keep the file returned open), writing
    this process's pid into the lock file; DataDirInUse if another process holds it."""
    fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    lock = os.fdopen(fd, "r+b")
    try:
        _lock(lock)
    except OSError:
        holder = _holder(lock)
        lock.close()
        raise DataDirInUse(holder) from None
    lock.seek(0)
    lock.truncate()
    lock.write(f"{os.getpid()}\n".encode())
    lock.flush()
    return lock


def _lock(lock: BinaryIO) -> None:
    if sys.platform == "win32":
        import msvcrt

        lock.seek(0)
        msvcrt.locking(lock.fileno(), msvcrt.LK_NBLCK, 1)
    else:
        import fcntl

        fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)


def _holder(lock: BinaryIO) -> str:
    try:  # Windows refuses to read a locked byte: the holder stays unnamed there
        lock.seek(0)
        return lock.read(32).decode("ascii", errors="replace").strip()
    except OSError:
        return ""
