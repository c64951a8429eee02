"""compute_backoff: the delay before each retry of every retry loop."""

from __future__ import annotations

import pytest

from sd_common.backoff import compute_backoff


def test_delays_grow_by_the_factor_up_to_the_cap() -> None:
    delays = [compute_backoff(n, base_s=0.2, cap_s=5.0, factor=2.5) for n in range(7)]
    assert delays == pytest.approx([0.2, 0.5, 1.25, 3.125, 5.0, 5.0, 5.0])


def test_a_loop_retrying_for_ever_stays_at_the_cap() -> None:
    assert compute_backoff(10_000, base_s=0.01, cap_s=2.0) == 2.0


def test_jitter_spreads_each_delay_within_its_fraction() -> None:
    delays = {compute_backoff(1, base_s=1.0, cap_s=10.0, jitter=0.2) for _ in range(200)}
    assert all(1.6 <= d <= 2.4 for d in delays)
    assert len(delays) > 100  # not one fixed value


def test_a_negative_attempt_is_refused() -> None:
    with pytest.raises(ValueError, match="attempt"):
        compute_backoff(-1, base_s=1.0, cap_s=2.0)
