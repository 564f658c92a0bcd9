"""The position store port: where account positions are cached between runs.

The store is a cache of state whose truth is the ledger (until the ledger
exists: the positions file or the demo seed). Each account record carries
the ledger sequence of the last fill it reflects (``version``); a record
behind the truth is rebuilt from the truth.

Adapters: ``portfolio.memory`` (the embedded default) and ``portfolio.redis``.
One contract test suite runs against both.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from portfolio.types import AccountId, PositionState

__all__ = ["AccountRecord", "PositionStore"]


@dataclass(frozen=True, slots=True)
class AccountRecord:
    """An account's positions and cash as of ledger sequence ``version``.

    ``positions`` is keyed by instrument symbol; ``cash`` by currency code.
    """

    account: AccountId
    base_currency: str
    version: int
    cash: Mapping[str, float] = field(default_factory=dict)
    positions: Mapping[str, PositionState] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for currency, amount in self.cash.items():
            if not math.isfinite(amount):
                raise ValueError(f"cash in {currency} must be finite, was {amount}")


class PositionStore(Protocol):
    """Cache of account records (port)."""

    async def start(self) -> None:
        """Connect; must not fail because the server is down (calls will raise)."""
        ...

    async def stop(self) -> None:
        """Release connections."""
        ...

    async def load(self) -> dict[AccountId, AccountRecord]:
        """Every stored record; raises ``StoreUnavailable``."""
        ...

    async def save(self, records: Sequence[AccountRecord]) -> None:
        """Replace the records of these accounts in one batch; raises ``StoreUnavailable``."""
        ...

    async def clear(self) -> None:
        """Remove every record and the sync mark (a full resync writes them again)."""
        ...

    async def read_sync_mark(self) -> str | None:
        """The store's sync mark, None when it has none; raises ``StoreUnavailable``.

        A store that lost its data (a restarted Redis without persistence, an
        emptied one) has lost its mark too, or another writer has replaced it
        after a resync: either way the reader must write every record again.
        """
        ...

    async def ensure_sync_mark(self, mark: str) -> str:
        """Set the sync mark to ``mark`` unless one is set; return the store's mark.

        Raises ``StoreUnavailable``.
        """
        ...
