"""In-memory position store: the embedded default."""

from __future__ import annotations

from collections.abc import Sequence

from portfolio.store import AccountRecord
from portfolio.types import AccountId

__all__ = ["MemoryPositionStore"]


class MemoryPositionStore:
    """A dict of account records; lives as long as the process."""

    def __init__(self) -> None:
        self._records: dict[AccountId, AccountRecord] = {}
        self._sync_mark: str | None = None

    async def start(self) -> None:
        """Nothing to connect to."""

    async def stop(self) -> None:
        """Nothing to release."""

    async def load(self) -> dict[AccountId, AccountRecord]:
        """A copy of every record."""
        return dict(self._records)

    async def save(self, records: Sequence[AccountRecord]) -> None:
        """Replace the given records."""
        for record in records:
            self._records[record.account] = record

    async def clear(self) -> None:
        """Forget everything."""
        self._records.clear()
        self._sync_mark = None

    async def read_sync_mark(self) -> str | None:
        """The sync mark, None when none is set."""
        return self._sync_mark

    async def ensure_sync_mark(self, mark: str) -> str:
        """Set the sync mark unless one is set; return it."""
        if self._sync_mark is None:
            self._sync_mark = mark
        return self._sync_mark
