"""The payment-rail port: where withdrawals leave the ledger.

A rail dedupes on ``transfer_id``: sending the same transfer twice moves
money once. The ledger still never re-sends blindly: after a timeout or a
crash it asks ``status`` first, and sends only a transfer the rail has
never seen.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Protocol

__all__ = ["PaymentRail", "RailStatus"]


class RailStatus(StrEnum):
    NOT_FOUND = "not_found"  # the rail never received it: safe to send
    PENDING = "pending"  # received, outcome not known yet
    SETTLED = "settled"
    REJECTED = "rejected"


class PaymentRail(Protocol):
    """A bank or payment network (port)."""

    async def send(
        self, transfer_id: str, account_id: str, amount_minor: int, currency: str
    ) -> RailStatus:
        """Ask the rail to pay out; returns SETTLED, REJECTED or PENDING.

        Raises ``RailError`` with ``is_unknown=True`` when the outcome is
        unknown (a timeout): the caller must then ask ``status``.
        """
        ...

    async def status(self, transfer_id: str) -> RailStatus:
        """What the rail knows of ``transfer_id``; raises ``RailError`` when unreachable."""
        ...
