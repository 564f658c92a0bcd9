"""Channel specs: how each channel's subscriptions are named and checked.

These are the session's view of a channel (pure validation); the fan-out
side of a channel lives in ``quotes.py``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Final

from gateway.auth import Principal
from gateway.errors import ProtocolError

__all__ = [
    "ORDERS",
    "PORTFOLIO",
    "QUOTES",
    "OrdersChannelSpec",
    "PortfolioChannelSpec",
    "QuotesChannelSpec",
]

QUOTES: Final = "quotes"
PORTFOLIO: Final = "portfolio"
ORDERS: Final = "orders"
_SHOWN_UNKNOWN: Final = 20
_MAX_SYMBOL_CHARS: Final = 64


class QuotesChannelSpec:
    """``quotes``: keys are instrument symbols, named by a ``symbols`` list.

    While quotes are open to anonymous clients (``is_open``) any token reads
    them too; otherwise a token needs ``quotes:read`` (or ``read``).
    """

    name = QUOTES
    is_public = True
    conflates = True

    def __init__(self, symbols: Collection[str], *, is_open: bool = True) -> None:
        self._symbols = symbols
        self._is_open = is_open

    def parse_keys(self, message: Mapping[str, object]) -> tuple[str, ...]:
        """Return the ``symbols`` of the message, deduplicated in order."""
        symbols = message.get("symbols")
        if (
            not isinstance(symbols, list)
            or not symbols
            or not all(isinstance(s, str) and s for s in symbols)
        ):
            raise ProtocolError("bad_request", "symbols must be a non-empty list of strings")
        return tuple(dict.fromkeys(symbols))

    def refused(self, keys: Sequence[str], principal: Principal | None) -> list[str]:
        """Every key when quotes are closed and the token lacks ``quotes:read``; else none."""
        if self._is_open or (principal is not None and principal.may_read_quotes()):
            return []
        return list(keys)

    def check_keys(self, keys: Sequence[str], principal: Principal | None) -> None:
        """Raise ``forbidden`` without the scope, then ``unknown_symbol`` for unknown symbols."""
        if self.refused(keys, principal):
            raise ProtocolError("forbidden", "the token lacks the quotes:read scope")
        unknown = [k for k in keys if k not in self._symbols]
        if unknown:
            raise ProtocolError(
                "unknown_symbol",
                f"{len(unknown)} unknown symbol(s); nothing was subscribed",
                extra={"symbols": [s[:_MAX_SYMBOL_CHARS] for s in unknown[:_SHOWN_UNKNOWN]]},
            )


class PortfolioChannelSpec:
    """``portfolio``: keys are account ids, named by ``account`` (or an ``accounts`` list).

    Only accounts in the token's ``accounts`` claim may be read, and only
    with the ``portfolio:read`` (or ``read``) scope; anything else is ``forbidden``, whether the
    account exists or not, so the error does not reveal which accounts exist.
    """

    name = PORTFOLIO
    is_public = False
    conflates = True

    def __init__(self, accounts: Collection[str]) -> None:
        self._accounts = accounts

    def parse_keys(self, message: Mapping[str, object]) -> tuple[str, ...]:
        """Return the account of ``account``, or the accounts of ``accounts``."""
        account = message.get("account")
        if isinstance(account, str) and account:
            return (account,)
        accounts = message.get("accounts")
        if (
            isinstance(accounts, list)
            and accounts
            and all(isinstance(a, str) and a for a in accounts)
        ):
            return tuple(dict.fromkeys(accounts))
        raise ProtocolError("bad_request", "account must be a non-empty string")

    def refused(self, keys: Sequence[str], principal: Principal | None) -> list[str]:
        """The accounts the token does not grant (with the ``portfolio:read`` scope)."""
        return [k for k in keys if principal is None or not principal.may_read_account(k)]

    def check_keys(self, keys: Sequence[str], principal: Principal | None) -> None:
        """Raise ``forbidden`` for accounts the token does not list, then ``unknown_account``."""
        refused = self.refused(keys, principal)
        if refused:
            raise ProtocolError(
                "forbidden",
                "the token does not grant these accounts",
                extra={"accounts": [k[:_MAX_SYMBOL_CHARS] for k in refused[:_SHOWN_UNKNOWN]]},
            )
        unknown = [k for k in keys if k not in self._accounts]
        if unknown:
            raise ProtocolError(
                "unknown_account",
                f"{len(unknown)} account(s) have no positions here",
                extra={"accounts": [k[:_MAX_SYMBOL_CHARS] for k in unknown[:_SHOWN_UNKNOWN]]},
            )


class OrdersChannelSpec(PortfolioChannelSpec):
    """``orders``: keys are account ids, read with ``orders:read`` (or ``read``)."""

    name = ORDERS
    conflates = False  # lossless: every event is delivered

    def refused(self, keys: Sequence[str], principal: Principal | None) -> list[str]:
        """The accounts the token does not grant (with the ``orders:read`` scope)."""
        return [k for k in keys if principal is None or not principal.may_read_orders(k)]
