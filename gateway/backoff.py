"""Exponential backoff with jitter for reconnecting sources."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Delays that double from ``initial_s`` up to ``max_s``, with "equal jitter".

    Each delay is half the current cap plus a uniform random part of the other
    half, so clients that failed together do not retry in lockstep, and none
    retries immediately.
    """

    def __init__(self, initial_s: float, max_s: float, rng: random.Random | None = None) -> None:
        if not 0 < initial_s <= max_s:
            raise ValueError(f"need 0 < initial_s <= max_s, were {initial_s} and {max_s}")
        self._initial_s = initial_s
        self._max_s = max_s
        self._rng = rng or random.Random()
        self.attempts = 0

    def next_delay_s(self) -> float:
        """Return the delay before the next attempt and count the attempt."""
        cap = min(self._max_s, self._initial_s * 2.0**self.attempts)
        self.attempts += 1
        return cap / 2 + self._rng.uniform(0, cap / 2)

    def reset(self) -> None:
        """Start over after a success."""
        self.attempts = 0
