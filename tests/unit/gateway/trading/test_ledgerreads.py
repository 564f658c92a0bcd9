"""The ledger route's query and body: validation, and exact decimal strings per asset."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.refdata import load_master
from gateway.trading.ledgerreads import LedgerQuery, ledger_body, ledger_query
from ledger.money import Asset
from ledger.store import EntryPage, StoredEntry
from orders.problems import Problem
from orders.types import AccountId

MASTER = load_master()


def query(text: str) -> LedgerQuery | Problem:
    return ledger_query(text, MASTER, limit_default=50, limit_max=200)


def entry(asset: str, amount: int, balance: int) -> StoredEntry:
    return StoredEntry(
        9, 0, "t-9", "fill", Asset(asset), amount, balance, 1_700_000_000 * 10**9 + 50_000_000
    )


def test_an_empty_query_is_every_asset_from_the_newest_at_the_default_page_size():
    assert query("") == LedgerQuery(None, None, 50)


def test_a_query_names_an_asset_a_cursor_and_a_page_size():
    assert query("asset=inst:AAPL&cursor=12:3&limit=7") == LedgerQuery(
        Asset("inst:AAPL"), "12:3", 7
    )


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("asset=cash:usd", "asset"),
        ("asset=inst:", "asset"),
        ("asset=stock:AAPL", "asset"),
        ("limit=", "limit"),
        ("limit=1e3", "limit"),
        ("limit=9999999", "limit"),
        ("cursor=", "cursor"),
        ("cursor=" + "1" * 65, "cursor"),
        ("asset=cash:USD&asset=cash:EUR", "asset"),
        ("account_id=ACC-1", "account_id"),
    ],
)
def test_a_bad_query_names_its_parameter(text, field):
    problem = query(text)

    assert isinstance(problem, Problem)
    assert (problem.code, problem.extensions["field"]) == ("query_param_invalid", field)


def test_amounts_keep_their_currencys_minor_digits_and_positions_their_units():
    page = EntryPage(
        [
            entry("cash:USD", -250_000, 1_000_050),
            entry("cash:JPY", 150_000, 150_000),
            entry("inst:AAPL", -10, 5),
        ],
        "9:0",
    )

    body: Any = ledger_body(AccountId("ACC-1"), page, MASTER)

    assert [(e["asset"], e["amount"], e["balance"]) for e in body["data"]] == [
        ("cash:USD", "-2500.00", "10000.50"),
        ("cash:JPY", "150000", "150000"),
        ("inst:AAPL", "-10", "5"),
    ]
    assert body["next_cursor"] == "9:0"
    assert body["data"][0]["posted_at"] == "2023-11-14T22:13:20.050000000Z"
