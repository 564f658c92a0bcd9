"""The simulated bank: the embedded payment rail, with latency and failures on purpose.

- ``latency_ms``: each call takes this long.
- ``failure_rate``: a share of transfers the bank rejects (``insufficient_funds_at_bank``).
- ``lost_reply_rate``: a share of sends that time out although the bank
  took the transfer: it becomes visible (and settled or rejected) only
  ``settle_after_ms`` later, so the ledger must query to find out.
- ``path``: a SQLite file that keeps the bank's transfers across restarts
  (a real bank does not forget what it was sent); in memory when None.

Decisions are drawn from ``random.Random(seed)``, so a run replays.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import time
from dataclasses import dataclass

from ledger.errors import RailError
from ledger.rail import RailStatus

__all__ = ["BankSettings", "SimulatedBank"]


@dataclass(frozen=True, slots=True)
class BankSettings:
    latency_ms: float = 0.0
    failure_rate: float = 0.0
    lost_reply_rate: float = 0.0
    settle_after_ms: float = 50.0
    seed: int = 0


class SimulatedBank:
    """A payment rail that dedupes on transfer id (see the module docstring)."""

    def __init__(self, settings: BankSettings, path: str | None = None) -> None:
        self._settings = settings
        self._rng = random.Random(settings.seed)
        self._path = path or ":memory:"
        self._conn: sqlite3.Connection | None = None
        self.sends = 0

    @property
    def _db(self) -> sqlite3.Connection:
        # Opened on first use: a bank built into an app that never starts holds nothing.
        if self._conn is None:
            conn = sqlite3.connect(self._path, isolation_level=None)
            conn.execute(
                "CREATE TABLE IF NOT EXISTS transfers (transfer_id TEXT PRIMARY KEY, "
                "account_id TEXT, amount_minor INTEGER, currency TEXT, status TEXT, "
                "visible_at_s REAL)"
            )
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def send(
        self, transfer_id: str, account_id: str, amount_minor: int, currency: str
    ) -> RailStatus:
        await self._delay()
        self.sends += 1
        existing = self._lookup(transfer_id)
        if existing is not None:
            return existing
        s = self._settings
        status = RailStatus.REJECTED if self._rng.random() < s.failure_rate else RailStatus.SETTLED
        lost = self._rng.random() < s.lost_reply_rate
        visible_at_s = time.time() + (s.settle_after_ms / 1000 if lost else 0.0)
        self._db.execute(
            "INSERT INTO transfers VALUES (?, ?, ?, ?, ?, ?)",
            (transfer_id, account_id, amount_minor, currency, status.value, visible_at_s),
        )
        if lost:
            raise RailError(f"bank timed out on {transfer_id}", is_unknown=True)
        return status

    async def status(self, transfer_id: str) -> RailStatus:
        await self._delay()
        return self._lookup(transfer_id) or RailStatus.NOT_FOUND

    def _lookup(self, transfer_id: str) -> RailStatus | None:
        row = self._db.execute(
            "SELECT status, visible_at_s FROM transfers WHERE transfer_id = ?", (transfer_id,)
        ).fetchone()
        if row is None:
            return None
        status, visible_at_s = row
        if time.time() < visible_at_s:
            return RailStatus.PENDING
        return RailStatus(status)

    def payouts(self) -> dict[str, tuple[int, str]]:
        """Settled transfers: transfer id -> (amount, currency). For reconciliation and tests."""
        return {
            t: (a, c)
            for t, a, c in self._db.execute(
                "SELECT transfer_id, amount_minor, currency FROM transfers WHERE status = ?",
                (RailStatus.SETTLED.value,),
            )
        }

    async def _delay(self) -> None:
        if self._settings.latency_ms > 0:
            await asyncio.sleep(self._settings.latency_ms / 1000)
