"""The account routes of the order API: the ledger's balances and positions, read directly.

Their route specs join the order routes in the listener's OpenAPI document
(``API_OPENAPI``), and ``balances_body`` / ``positions_body`` build their
answers from the ledger store's records, as exact decimal strings.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Final

from ledger.money import from_minor, from_units, is_cash_asset
from ledger.store import StoredClient
from orders import problems
from orders.api import READ_SCOPE
from orders.openapi import ORDER_SCHEMAS, openapi_document
from orders.routes import ORDER_ROUTES, Parameter, RouteSpec, Success
from pricing.instruments import InstrumentMaster

__all__ = ["ACCOUNT_ROUTES", "API_OPENAPI", "balances_body", "positions_body"]

_ACCOUNT_ID: Final = Parameter("account_id", "path", "The account.", {"type": "string"})
_READ_PROBLEMS: Final = (
    problems.TOKEN_MISSING,
    problems.TOKEN_INVALID,
    problems.TOKEN_EXPIRED,
    problems.INSUFFICIENT_SCOPE,
    problems.ACCOUNT_FORBIDDEN,
    problems.ACCOUNT_NOT_FOUND,
    problems.STATE_UNAVAILABLE,
)
ACCOUNT_ROUTES: Final = (
    RouteSpec(
        operation="get_balances",
        method="GET",
        path="/v1/accounts/{account_id}/balances",
        summary="An account's cash balances in the ledger",
        description="Per currency: the posted balance, what pending reservations hold, and "
        "what is available (balance minus pending). Exact decimal strings.",
        scope=READ_SCOPE,
        parameters=(_ACCOUNT_ID,),
        success=(Success(200, "The balances.", "Balances"),),
        problems=_READ_PROBLEMS,
    ),
    RouteSpec(
        operation="get_positions",
        method="GET",
        path="/v1/accounts/{account_id}/positions",
        summary="An account's positions in the ledger",
        description="Per instrument: quantity, average cost, realised P&L and commission, "
        "exact, as of the ledger's last posting to the account (`ledger_seq`).",
        scope=READ_SCOPE,
        parameters=(_ACCOUNT_ID,),
        success=(Success(200, "The positions.", "Positions"),),
        problems=_READ_PROBLEMS,
    ),
)
_DECIMAL: Final = {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]+)?$"}
_ACCOUNT_SCHEMAS: Final = {
    "Balances": {
        "type": "object",
        "required": ["account_id", "base_currency", "ledger_seq", "balances"],
        "properties": {
            "account_id": {"type": "string"},
            "base_currency": {"type": "string"},
            "ledger_seq": {"type": "integer"},
            "balances": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["currency", "balance", "pending", "available"],
                    "properties": {
                        "currency": {"type": "string"},
                        "balance": _DECIMAL,
                        "pending": _DECIMAL,
                        "available": _DECIMAL,
                    },
                },
            },
        },
    },
    "Positions": {
        "type": "object",
        "required": ["account_id", "ledger_seq", "positions"],
        "properties": {
            "account_id": {"type": "string"},
            "ledger_seq": {"type": "integer"},
            "positions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["symbol", "quantity", "avg_cost", "realised_pnl", "commission"],
                    "properties": {
                        "symbol": {"type": "string"},
                        "quantity": _DECIMAL,
                        "avg_cost": _DECIMAL,
                        "realised_pnl": _DECIMAL,
                        "commission": _DECIMAL,
                    },
                },
            },
        },
    },
}
API_OPENAPI: Final = openapi_document(
    (*ORDER_ROUTES, *ACCOUNT_ROUTES), {**ORDER_SCHEMAS, **_ACCOUNT_SCHEMAS}
)
"""The OpenAPI 3.1 document of this listener: the order routes and the account routes."""


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
