"""The one back-off rule for retries: exponential, capped, optionally jittered, never sooner
than the provider's `retry_after`.

Used by the broadcast rows (retry schedule per delivery), webhook events that could not be
applied yet, and single messages that retry inside their worker.
"""

from __future__ import annotations

import random


def backoff_seconds(
    attempt: int, *, first: float, cap: float, retry_after: float | None = None, jitter: float = 0.0
) -> float:
    """Seconds to wait before try number `attempt + 1`: `first` after the first failed try, then
    doubling up to `cap`. `jitter` spreads the wait by ±that fraction, so many rows that failed
    together do not all come back in the same second. A provider's `retry_after` is a floor."""
    delay = min(cap, first * 2.0 ** max(0, attempt - 1))
    if jitter:
        delay *= 1.0 - jitter + random.random() * 2.0 * jitter
    return max(delay, retry_after or 0.0)
