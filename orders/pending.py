"""Pending reservations: what accepted commands will take once the ledger posts them.

Between the API's 202 and the ledger's first event about a command, the
live portfolio state does not show the command yet; without this book two
quick orders could each pass a buying-power check that only one of them
fits. Each accepted order or withdrawal reserves here (cash per currency,
and the order's quantity per symbol and side) in the same event-loop step
as the check that allowed it; the reservation is released when the ledger's
event about the transfer arrives (``release``), when the submit failed, or
after ``ttl_ns`` if no event ever comes. The ledger's own check is the law:
this one is advisory and per process.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from dataclasses import dataclass
from decimal import Decimal

from orders.types import AccountId, Side, TransferId

__all__ = ["PendingBook", "Reservation"]

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Reservation:
    """Cash (in ``currency``) and, for an order, the quantity a command may take."""

    transfer_id: TransferId
    account_id: AccountId
    currency: str
    cash: Decimal
    symbol: str | None = None
    side: Side | None = None
    quantity: Decimal = _ZERO


class PendingBook:
    """Reservations by transfer id, with running sums; see the module docstring."""

    def __init__(self, ttl_ns: int) -> None:
        if ttl_ns <= 0:
            raise ValueError(f"ttl_ns must be positive, was {ttl_ns}")
        self._ttl_ns = ttl_ns
        # Insertion order is expiry order: every entry lives ttl_ns from its reservation.
        self._entries: OrderedDict[TransferId, tuple[Reservation, int]] = OrderedDict()
        self._cash: defaultdict[tuple[AccountId, str], Decimal] = defaultdict(Decimal)
        self._quantity: defaultdict[tuple[AccountId, str, Side], Decimal] = defaultdict(Decimal)

    def __len__(self) -> int:
        return len(self._entries)

    def reserve(self, reservation: Reservation, now_ns: int) -> None:
        """Add ``reservation`` (a second one for the same transfer replaces the first)."""
        self.release(reservation.transfer_id)
        self._entries[reservation.transfer_id] = (reservation, now_ns + self._ttl_ns)
        self._add(reservation, 1)

    def release(self, transfer_id: TransferId) -> bool:
        """Drop the reservation of ``transfer_id``; return whether there was one."""
        entry = self._entries.pop(transfer_id, None)
        if entry is None:
            return False
        self._add(entry[0], -1)
        return True

    def cash(self, account_id: AccountId, currency: str, now_ns: int) -> Decimal:
        """Return the cash reserved in ``currency`` by the account's pending commands."""
        self._expire(now_ns)
        return self._cash.get((account_id, currency), _ZERO)

    def quantity(self, account_id: AccountId, symbol: str, side: Side, now_ns: int) -> Decimal:
        """Return the quantity of the account's pending orders in ``symbol`` on ``side``."""
        self._expire(now_ns)
        return self._quantity.get((account_id, symbol, side), _ZERO)

    def _add(self, r: Reservation, sign: int) -> None:
        cash_key = (r.account_id, r.currency)
        self._cash[cash_key] += sign * r.cash
        if not self._cash[cash_key]:
            del self._cash[cash_key]
        if r.symbol is not None and r.side is not None:
            quantity_key = (r.account_id, r.symbol, r.side)
            self._quantity[quantity_key] += sign * r.quantity
            if not self._quantity[quantity_key]:
                del self._quantity[quantity_key]

    def _expire(self, now_ns: int) -> None:
        while self._entries:
            transfer_id, (_, expires_at_ns) = next(iter(self._entries.items()))
            if expires_at_ns > now_ns:
                return
            self.release(transfer_id)
