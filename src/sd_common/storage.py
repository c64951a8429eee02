"""The layout of the coordinator's DATA_DIR, which a worker may share (same machine, or a
shared mount): then the pool process reads inputs from it and writes results into it, and no
image bytes cross HTTP (SHARED_STORAGE, DESIGN departure noted in the README).

The coordinator writes a fresh random id into `DATA_DIR/storage-id` at every start and offers
`{"data_dir", "id"}` when a worker registers; a worker that reads the same id at that path sees
the same folder, not merely one with the same name on another machine.
"""

from __future__ import annotations

import re
from pathlib import Path

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
