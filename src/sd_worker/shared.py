"""The coordinator's DATA_DIR, when this worker sees it too (SHARED_STORAGE=auto).

Then the pool process reads each input straight from the coordinator's blobs/ and writes its
result straight into results/; the worker only reports the file's name. No image bytes cross
the pool's pipe or HTTP, which on one machine is most of what the cluster costs over a bare
process pool (benchmarks/REPORT.md, figure (a)).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from sd_common import storage
from sd_worker.lru import SingleFlightLRU

log = logging.getLogger("sd.worker.shared")

MAX_VERIFIED = 100_000


class SharedStorage:
    """The coordinator's DATA_DIR seen from here; inputs are hashed once before first use."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.results_dir = storage.results_dir(data_dir)
        # A job's first deliveries all name the same input: it is hashed once, not per task.
        self._verified: SingleFlightLRU[str, Path | None] = SingleFlightLRU(MAX_VERIFIED)

    @classmethod
    def probe(cls, offer: Any) -> SharedStorage | None:
        """The shared DATA_DIR if the coordinator's offer (`{"data_dir", "id"}` from POST
        /register) names a folder this process sees, holding that id, with results/ writable."""
        if not isinstance(offer, dict):
            return None
        data_dir, storage_id = offer.get("data_dir"), offer.get("id")
        if not isinstance(data_dir, str) or not isinstance(storage_id, str) or not storage_id:
            return None
        folder = Path(data_dir)
        try:
            seen = (folder / storage.PROBE_NAME).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            return None
        results = storage.results_dir(folder)
        if seen != storage_id or not os.access(results, os.W_OK | os.X_OK):
            return None
        return cls(folder)

    async def input_path(self, sha256: str) -> Path | None:
        """The coordinator's file of input `sha256` once it hashed right here, else None (not
        there, or not what its name says: fetch it over HTTP instead)."""
        return await self._verified.get(sha256, lambda: self._check(sha256))

    async def _check(self, sha256: str) -> Path | None:
        if not storage.SHA256.match(sha256):
            return None
        path = storage.input_path(self.data_dir, sha256)
        if not await asyncio.to_thread(storage.file_has_sha256, path, sha256):
            return None
        return path

    def forget(self, sha256: str) -> None:
        """The file vanished: check it again before its next use."""
        self._verified.forget(sha256)
