"""Retry delays: pure functions of the attempt number and a random draw (tests pass the draw)."""

from __future__ import annotations

import msgspec

DEFAULT_BASE = 1.0
DEFAULT_FACTOR = 2.0
DEFAULT_MAX_DELAY = 3600.0
DEFAULT_JITTER = 0.2


class RetryPolicy(msgspec.Struct, frozen=True, kw_only=True):
    """Exponential backoff with jitter: base * factor**(attempt-1), capped, then +/- jitter."""

    base: float = DEFAULT_BASE
    factor: float = DEFAULT_FACTOR
    max_delay: float = DEFAULT_MAX_DELAY
    # a fraction of the delay, spread evenly both ways, so retries of a burst do not align
    jitter: float = DEFAULT_JITTER

    def __post_init__(self) -> None:
        if self.base < 0 or self.factor < 1 or self.max_delay < 0 or not 0 <= self.jitter <= 1:
            raise ValueError("RetryPolicy needs base >= 0, factor >= 1, max_delay >= 0, 0 <= jitter <= 1")

    def delay(self, attempt: int, draw: float) -> float:
        """Seconds before retrying after failed attempt `attempt` (1-based); `draw` in [0, 1)."""
        return exponential(attempt, draw, self)


def exponential(attempt: int, draw: float, policy: RetryPolicy) -> float:
    exponent = min(max(attempt - 1, 0), 64)  # beyond 2**64 every delay is capped anyway
    raw = min(policy.max_delay, policy.base * policy.factor**exponent)
    return max(0.0, raw * (1 + policy.jitter * (2 * draw - 1)))


DEFAULT_POLICY = RetryPolicy()
