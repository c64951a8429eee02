"""Settings read from the environment: the names users set, their defaults and their limits."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sd_common.settings import Settings


def test_pillow_blocks_max_is_read_from_pillows_own_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PILLOW_BLOCKS_MAX", raising=False)
    assert Settings(_env_file=None).pillow_blocks_max == 0
    monkeypatch.setenv("PILLOW_BLOCKS_MAX", "4")
    assert Settings(_env_file=None).pillow_blocks_max == 4
    monkeypatch.setenv("PILLOW_BLOCKS_MAX", "-1")
    with pytest.raises(ValidationError, match="pillow_blocks_max"):
        Settings(_env_file=None)
