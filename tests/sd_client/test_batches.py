"""How sd-submit and the client split files into upload batches."""

from __future__ import annotations

from sd_client.client import FIRST_BATCH_FILES, batch_files


def test_the_first_batches_are_small_then_double_up_to_the_coordinators_limit() -> None:
    assert FIRST_BATCH_FILES == 8
    assert [batch_files(sent, 100) for sent in range(6)] == [8, 16, 32, 64, 100, 100]
    assert batch_files(10_000, 100) == 100
    assert batch_files(0, 5) == 5, "never more than the coordinator takes"
