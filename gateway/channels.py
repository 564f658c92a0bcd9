"""Channel specs: how each channel's subscriptions are named and checked.

These are the session's view of a channel (pure validation); the fan-out
side of a channel lives in ``quotes.py``.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Final

from gateway.auth import Principal
from gateway.errors import ProtocolError

__all__ = ["QUOTES", "QuotesChannelSpec"]

QUOTES: Final = "quotes"
_SHOWN_UNKNOWN: Final = 20
_MAX_SYMBOL_CHARS: Final = 64


class QuotesChannelSpec:
    """``quotes``: keys are instrument symbols, named by a ``symbols`` list."""

    name = QUOTES
    is_public = True

    def __init__(self, symbols: Collection[str]) -> None:
        self._symbols = symbols

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

    def check_keys(self, keys: Sequence[str], principal: Principal | None) -> None:
        """Raise ``unknown_symbol`` listing the symbols the master lacks."""
        unknown = [k for k in keys if k not in self._symbols]
        if unknown:
            raise ProtocolError(
                "unknown_symbol",
                f"{len(unknown)} unknown symbol(s); nothing was subscribed",
                extra={"symbols": [s[:_MAX_SYMBOL_CHARS] for s in unknown[:_SHOWN_UNKNOWN]]},
            )
