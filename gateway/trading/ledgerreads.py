"""The account routes of the order API: the ledger's balances and positions, read directly.

Their route specs (``orders.routes.ACCOUNT_ROUTES``) are in the listener's
OpenAPI document (``API_OPENAPI``); ``balances_body`` / ``positions_body``
build their answers from the ledger store's records, as exact decimal
strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from ledger.money import from_minor, from_units, is_cash_asset
from ledger.store import StoredClient
from orders.openapi import openapi_document
from orders.routes import API_ROUTES
from pricing.instruments import InstrumentMaster

__all__ = ["API_OPENAPI", "balances_body", "positions_body"]

API_OPENAPI: Final = openapi_document(API_ROUTES)
"""The OpenAPI 3.1 document of the API listener: the order routes and the account routes."""


def balances_body(client: StoredClient) -> Mapping[str, object]:
    """``GET /v1/accounts/{id}/balances``: cash per currency, posted, pending and available."""
    return {
        "account_id": client.account_id,
        "base_currency": client.base_currency,
        "ledger_seq": client.last_seq,
        "balances": [
            {
                "currency": currency,
                "balance": _money(balance.balance, currency),
                "pending": _money(balance.pending, currency),
                "available": _money(balance.available, currency),
            }
            for asset, balance in sorted(client.balances.items())
            if is_cash_asset(asset)
            for currency in (asset.removeprefix("cash:"),)
        ],
    }


def positions_body(client: StoredClient, master: InstrumentMaster) -> Mapping[str, object]:
    """``GET /v1/accounts/{id}/positions``: every open position, exact."""
    return {
        "account_id": client.account_id,
        "ledger_seq": client.last_seq,
        "positions": [
            {
                "symbol": symbol,
                "quantity": _text(from_units(position.quantity_units, master[master.ix(symbol)])),
                "avg_cost": _text(position.avg_cost),
                "realised_pnl": _text(position.realised_pnl),
                "commission": _text(position.commission),
            }
            for symbol, position in sorted(client.positions.items())
            if position.quantity_units != 0
        ],
    }


def _text(value: Decimal) -> str:
    # Plain notation without trailing zeros ("2500", "0.5"), never an exponent.
    return format(value.normalize(), "f") if value else "0"


def _money(amount_minor: int, currency: str) -> str:
    # With the currency's minor-unit decimals ("2500.00", "150000" for JPY).
    return format(from_minor(amount_minor, currency), "f")
