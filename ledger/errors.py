"""Exceptions raised by the ledger package.

::

    LedgerError
     +-- StoreUnavailable      the database cannot be reached or failed (retriable)
     +-- StaleState            an account changed since the batch read it (retriable: re-execute)
     +-- DuplicateTransfer     a transfer id of the batch exists already (retriable: re-filter)
     +-- UnbalancedTransaction a transaction's entries do not sum to zero per asset
     +-- FloorViolation        a posting would take an account below its floor
     +-- MigrationError        the schema cannot be brought to the code's version
     +-- RailError             the payment rail failed; ``is_unknown`` when the outcome is unknown
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "DuplicateTransfer",
    "FloorViolation",
    "LedgerError",
    "MigrationError",
    "RailError",
    "StaleState",
    "StoreUnavailable",
    "UnbalancedTransaction",
]


class LedgerError(Exception):
    """Root of every error raised by ``ledger``."""

    retriable: ClassVar[bool] = False


class StoreUnavailable(LedgerError):
    """The store could not be reached, or the database failed; nothing was committed."""

    retriable: ClassVar[bool] = True


class StaleState(LedgerError):
    """An account's version moved since the batch was executed against it."""

    retriable: ClassVar[bool] = True

    def __init__(self, account: str, expected: int, actual: int) -> None:
        super().__init__(f"account {account} is at version {actual}, expected {expected}")
        self.account = account
        self.expected = expected
        self.actual = actual


class DuplicateTransfer(LedgerError):
    """A transfer id of the batch was committed before (a redelivery raced the batch)."""

    retriable: ClassVar[bool] = True

    def __init__(self, detail: str) -> None:
        super().__init__(f"a transfer id exists already: {detail}")
        self.detail = detail


class UnbalancedTransaction(LedgerError):
    """A transaction's entries do not sum to zero for some asset."""

    def __init__(self, transfer_id: str, asset: str, total: int) -> None:
        super().__init__(f"transaction {transfer_id} sums to {total} in {asset}, must be 0")
        self.transfer_id = transfer_id
        self.asset = asset
        self.total = total


class FloorViolation(LedgerError):
    """The database refused a batch because an account would fall below its floor."""

    def __init__(self, detail: str) -> None:
        super().__init__(f"an account would fall below its floor: {detail}")
        self.detail = detail


class MigrationError(LedgerError):
    """The schema is newer than the code, or a migration failed."""


class RailError(LedgerError):
    """The payment rail failed. ``is_unknown``: the transfer may or may not have happened."""

    retriable: ClassVar[bool] = True

    def __init__(self, message: str, *, is_unknown: bool) -> None:
        super().__init__(message)
        self.is_unknown = is_unknown
