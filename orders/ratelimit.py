"""The per-account submit rate limit: a token bucket per account, time injected.

Each account's bucket holds up to ``burst`` tokens and refills at
``rate_per_s``; a submit takes one token or is denied (never queued) with
the time until the next token, which becomes ``Retry-After``. Arithmetic is
in integers: one token is ``NS_PER_S`` units and the bucket gains
``rate_per_s`` units per nanosecond, so no float rounding creeps in. At most
``max_accounts`` buckets are kept; the least recently used goes first (a
forgotten account starts with a full bucket again).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Final

from orders.types import AccountId

__all__ = ["SubmitRateLimiter"]

_UNITS_PER_TOKEN: Final = 1_000_000_000


class SubmitRateLimiter:
    """Token buckets keyed by account; see the module docstring."""

    def __init__(self, rate_per_s: int, burst: int, *, max_accounts: int) -> None:
        if rate_per_s <= 0 or burst <= 0 or max_accounts <= 0:
            raise ValueError(
                f"rate_per_s, burst and max_accounts must be positive, were "
                f"{rate_per_s}, {burst}, {max_accounts}"
            )
        self._rate = rate_per_s
        self._capacity = burst * _UNITS_PER_TOKEN
        self._max_accounts = max_accounts
        # account -> (units in the bucket, time of that level in ns)
        self._buckets: OrderedDict[AccountId, tuple[int, int]] = OrderedDict()

    def try_acquire(self, account_id: AccountId, now_ns: int) -> int:
        """Take a token for ``account_id``: return 0, or the ns until one is available."""
        level, since_ns = self._buckets.pop(account_id, (self._capacity, now_ns))
        level = min(self._capacity, level + max(0, now_ns - since_ns) * self._rate)
        if level >= _UNITS_PER_TOKEN:
            self._remember(account_id, level - _UNITS_PER_TOKEN, now_ns)
            return 0
        self._remember(account_id, level, now_ns)
        missing = _UNITS_PER_TOKEN - level
        return -(-missing // self._rate)  # ceiling division: never early

    def _remember(self, account_id: AccountId, level: int, now_ns: int) -> None:
        self._buckets[account_id] = (level, now_ns)
        if len(self._buckets) > self._max_accounts:
            self._buckets.popitem(last=False)
