"""Exceptions raised by the portfolio package.

::

    PortfolioError
     +-- UnknownAccount        an account the position book does not hold
     +-- StoreUnavailable      the position store cannot be reached (retriable)
"""

from __future__ import annotations

from typing import ClassVar

__all__ = ["PortfolioError", "StoreUnavailable", "UnknownAccount"]


class PortfolioError(Exception):
    """Root of every error raised by ``portfolio``."""

    retriable: ClassVar[bool] = False


class UnknownAccount(PortfolioError, KeyError):
    """The account is not in the position book."""

    def __init__(self, account: str) -> None:
        super().__init__(f"unknown account {account!r}")
        self.account = account


class StoreUnavailable(PortfolioError):
    """The position store cannot be reached; the caller retries."""

    retriable: ClassVar[bool] = True
