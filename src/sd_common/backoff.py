"""The delay before each retry, for every retry loop of both programs (a pure function)."""

from __future__ import annotations

import random


def compute_backoff(
    attempt: int, *, base_s: float, cap_s: float, factor: float = 2.0, jitter: float = 0.0
) -> float:
    """Seconds to wait before retry number `attempt` (0 for the first): `base_s` grown by
    `factor` each attempt, at most `cap_s`, then spread by up to ±`jitter` (a fraction) so that
    the clients of one server that came back do not all retry at the same moment."""
    if attempt < 0:
        raise ValueError(f"attempt must be >= 0, not {attempt}")
    # The exponent stops at 64: no overflow however long a loop retries.
    delay = min(cap_s, base_s * factor ** min(attempt, 64))
    if jitter:
        delay *= random.uniform(1 - jitter, 1 + jitter)
    return delay
