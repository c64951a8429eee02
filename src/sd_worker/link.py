"""How a worker reaches the coordinator's storage: over HTTP (`client.py`) or, for the
embedded local worker, in process."""

from __future__ import annotations

from typing import Protocol

from sd_common.messages import IngestAnswer, TaskOutcome


class Link(Protocol):
    """Inputs in, outcomes out. A refusal (a 4xx over HTTP) raises LinkRefused."""

    async def fetch_input(self, sha256: str) -> bytes: ...
    async def post_image(
        self, task_id: str, worker: str, png: bytes, duration_s: float = 0
    ) -> IngestAnswer: ...
    async def post_outcome(self, outcome: TaskOutcome) -> IngestAnswer: ...


class LinkRefused(Exception):
    """The coordinator refused what a Link asked: asking again cannot help."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"{status}: {detail}")
        self.status = status
        self.detail = detail
