"""The account routes of the order API: the ledger's balances, positions and entries.

Their route specs (``orders.routes.ACCOUNT_ROUTES``) are in the listener's
OpenAPI document (``API_OPENAPI``); ``balances_body`` / ``positions_body`` /
``ledger_body`` build their answers from the ledger store's records, as
exact decimal strings, and ``ledger_query`` validates the query of
``GET /v1/accounts/{id}/ledger``. No I/O here: the HTTP adapter
(``gateway.http.orderapi``) reads the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final
from urllib.parse import parse_qs

from ledger.money import (
    MINOR_DIGITS,
    Asset,
    cash_asset,
    from_minor,
    from_units,
    instrument_asset,
    is_cash_asset,
)
from ledger.store import EntryPage, StoredClient
from orders import problems
from orders.openapi import openapi_document
from orders.problems import Problem
from orders.responses import rfc3339
from orders.routes import API_ROUTES
from orders.types import AccountId
from pricing.instruments import InstrumentMaster

__all__ = [
    "API_OPENAPI",
    "LedgerQuery",
    "balances_body",
    "ledger_body",
    "ledger_query",
    "positions_body",
]

_LEDGER_PARAMS: Final = frozenset({"asset", "cursor", "limit"})
_MAX_CURSOR_LENGTH: Final = 64

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


@dataclass(frozen=True, slots=True)
class LedgerQuery:
    """The validated query of ``GET /v1/accounts/{id}/ledger``."""

    asset: Asset | None
    cursor: str | None
    limit: int


def ledger_query(
    query: str, master: InstrumentMaster, *, limit_default: int, limit_max: int
) -> LedgerQuery | Problem:
    """Validate the query string: ``asset`` (held or not), ``cursor``, ``limit``."""
    try:
        values = parse_qs(query, keep_blank_values=True, max_num_fields=8)
    except ValueError as e:
        return problems.QUERY_PARAM_INVALID(f"the query string is malformed: {e}")
    for name, found in sorted(values.items()):
        if name not in _LEDGER_PARAMS:
            return problems.QUERY_PARAM_INVALID(f"unknown query parameter {name!r:.40}", field=name)
        if len(found) > 1:
            return problems.QUERY_PARAM_INVALID(
                f"query parameter {name!r:.40} appears twice", field=name
            )
    asset_text = values.get("asset", [None])[0]
    asset = None if asset_text is None else _asset(asset_text, master)
    if isinstance(asset, Problem):
        return asset
    cursor = values.get("cursor", [None])[0]
    if cursor is not None and not 1 <= len(cursor) <= _MAX_CURSOR_LENGTH:
        return problems.QUERY_PARAM_INVALID("cursor is not one this API handed out", field="cursor")
    limit = limit_default
    limit_text = values.get("limit", [None])[0]
    if limit_text is not None:
        if not (limit_text.isascii() and limit_text.isdigit() and len(limit_text) <= 6) or not (
            1 <= int(limit_text) <= limit_max
        ):
            return problems.QUERY_PARAM_INVALID(
                f"limit must be an integer from 1 to {limit_max}, was {limit_text!r:.20}",
                field="limit",
            )
        limit = int(limit_text)
    return LedgerQuery(asset, cursor, limit)


def _asset(text: str, master: InstrumentMaster) -> Asset | Problem:
    kind, _, name = text.partition(":")
    if kind == "cash" and name in MINOR_DIGITS:
        return cash_asset(name)
    if kind == "inst" and name in master.symbol_index:
        return instrument_asset(name)
    return problems.QUERY_PARAM_INVALID(
        f"asset must be cash:<currency> or inst:<symbol> of a known one, was {text!r:.40}",
        field="asset",
    )


def ledger_body(
    account_id: AccountId, page: EntryPage, master: InstrumentMaster
) -> Mapping[str, object]:
    """``GET /v1/accounts/{id}/ledger``: one page of entries with running balances."""
    return {
        "account_id": account_id,
        "data": [
            {
                "seq": entry.seq,
                "leg": entry.leg,
                "transfer_id": entry.transfer_id,
                "kind": entry.kind,
                "asset": entry.asset,
                "amount": _quantity(entry.amount, entry.asset, master),
                "balance": _quantity(entry.balance_after, entry.asset, master),
                "posted_at": rfc3339(entry.ts_posted),
            }
            for entry in page.entries
        ],
        "next_cursor": page.next_cursor,
    }


def _quantity(amount: int, asset: Asset, master: InstrumentMaster) -> str:
    # Cash with its currency's minor digits ("-2500.00"); a position in whole units ("10").
    kind, _, name = asset.partition(":")
    if kind == "cash":
        return _money(amount, name)
    return format(from_units(amount, master[master.ix(name)]), "f")


def _text(value: Decimal) -> str:
    # Plain notation without trailing zeros ("2500", "0.5"), never an exponent.
    return format(value.normalize(), "f") if value else "0"


def _money(amount_minor: int, currency: str) -> str:
    # With the currency's minor-unit decimals ("2500.00", "150000" for JPY).
    return format(from_minor(amount_minor, currency), "f")
