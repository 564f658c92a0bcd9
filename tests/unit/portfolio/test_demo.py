"""Seeded demo accounts on the shipped master, and their round trip through the PositionBook."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from gateway.refdata import load_master
from portfolio.demo import demo_account_id, demo_records
from portfolio.fx import FxTable
from portfolio.positions import PositionBook
from portfolio.records import load_records, record_of
from portfolio.store import AccountRecord
from portfolio.types import AccountId, PositionState
from portfolio.valuation import InstrumentTerms
from pricing.instruments import parse_instrument_csv

MASTER = load_master()
COUNT = 120
SEED = 7
RECORDS = demo_records(MASTER, count=COUNT, seed=SEED)


def book_like_the_gateway() -> PositionBook:
    fx = FxTable(MASTER)
    terms = InstrumentTerms.from_master(MASTER, fx.currencies, {"USD": 0.04})
    return PositionBook(
        fx.currencies,
        currency_ix=terms.currency_ix,
        multiplier=terms.multiplier,
        is_margined=terms.is_margined,
    )


def holders_of(kind: str) -> int:
    return sum(
        any(MASTER[MASTER.ix(symbol)].type.value == kind for symbol in record.positions)
        for record in RECORDS
    )


def test_same_seed_gives_the_same_accounts() -> None:
    again = demo_records(MASTER, count=COUNT, seed=SEED)

    assert again == RECORDS


def test_another_seed_gives_other_accounts() -> None:
    other = demo_records(MASTER, count=COUNT, seed=SEED + 1)

    assert other != RECORDS


def test_account_ids_count_from_demo_0001() -> None:
    ids = [record.account for record in RECORDS]

    assert ids == [f"DEMO-{n:04d}" for n in range(1, COUNT + 1)]
    assert demo_account_id(12) == "DEMO-0012"


def test_base_currencies_are_usd_eur_gbp_and_jpy() -> None:
    bases = {record.base_currency for record in RECORDS}

    assert bases == {"USD", "EUR", "GBP", "JPY"}


def test_accounts_start_at_version_zero() -> None:
    assert {record.version for record in RECORDS} == {0}


def test_every_symbol_is_in_the_master() -> None:
    symbols = {symbol for record in RECORDS for symbol in record.positions}

    assert all(symbol in MASTER.symbol_index for symbol in symbols)


def test_quantities_are_non_zero_whole_lots() -> None:
    for record in RECORDS:
        for symbol, state in record.positions.items():
            lots = state.quantity / float(MASTER.lot_size[MASTER.ix(symbol)])
            assert lots != 0, (record.account, symbol)
            assert lots == round(lots), (record.account, symbol, state.quantity)


def test_costs_are_positive_and_on_the_tick_grid() -> None:
    for record in RECORDS:
        for symbol, state in record.positions.items():
            ticks = state.avg_cost / float(MASTER.tick_size[MASTER.ix(symbol)])
            assert state.avg_cost > 0
            assert ticks == pytest.approx(round(ticks), abs=1e-6), (symbol, state.avg_cost)


def test_positions_were_opened_before_today() -> None:
    # Day P&L starts at zero: the day opened with the current quantity, no fills today.
    for record in RECORDS:
        for state in record.positions.values():
            assert state.day_open_quantity == state.quantity
            assert (state.day_trade_value, state.realised_pnl, state.commission) == (0, 0, 0)


@pytest.mark.parametrize("kind", ["equity", "future", "fx", "option"])
def test_some_accounts_hold_each_kind_of_instrument(kind: str) -> None:
    assert holders_of(kind) > 0


def test_not_every_account_holds_derivatives() -> None:
    assert holders_of("option") < COUNT
    assert holders_of("future") < COUNT


def test_every_account_has_cash_in_its_base_currency() -> None:
    for record in RECORDS:
        assert math.isfinite(record.cash[record.base_currency])


def test_records_round_trip_through_the_position_book() -> None:
    book = book_like_the_gateway()

    load_records(book, RECORDS, MASTER.symbol_index)

    rows = [record_of(book, MASTER.symbols, n) for n in range(book.size_n)]
    assert rows == RECORDS


def test_round_trip_keeps_a_fill_version_and_foreign_cash() -> None:
    record = AccountRecord(
        AccountId("ACC-9"),
        "GBP",
        version=41,
        cash={"GBP": 1_000.5, "JPY": -20_000.0},
        positions={"EURUSD": PositionState(quantity=-30_000.0, avg_cost=1.1712)},
    )
    book = book_like_the_gateway()

    load_records(book, [record], MASTER.symbol_index)

    assert record_of(book, MASTER.symbols, 0) == record


def test_loading_a_position_in_an_unknown_symbol_is_refused() -> None:
    record = dataclasses.replace(RECORDS[0], positions={"NOPE": PositionState(1.0, 1.0)})

    with pytest.raises(ValueError, match="NOPE"):
        load_records(book_like_the_gateway(), [record], MASTER.symbol_index)


def test_every_demo_position_lands_on_its_instrument_row() -> None:
    book = book_like_the_gateway()

    load_records(book, RECORDS, MASTER.symbol_index)

    expected = sorted(
        (n, MASTER.ix(symbol)) for n, record in enumerate(RECORDS) for symbol in record.positions
    )
    actual = sorted(zip(book.pos_account.tolist(), book.pos_instrument.tolist(), strict=True))
    assert actual == expected
    assert np.isfinite(book.cash).all()


def test_a_master_without_futures_options_or_fx_gets_usd_equity_accounts() -> None:
    # A load-test universe or a site's own file need not have every kind, and
    # a currency without an FX pair cannot be valued in USD.
    header = (
        "id,symbol,type,currency,tick_size,lot_size,multiplier,sector,underlying,"
        "option_type,strike,expiry,base_currency,ref_price,volatility,weight"
    )
    rows = [
        f"U{n}.X,U{n},equity,USD,0.01,1,1,technology,,,,,,{10 + n}.00,0.2,{n + 1}"
        for n in range(30)
    ] + [f"E{n}.X,E{n},equity,EUR,0.01,1,1,financials,,,,,,{20 + n}.00,0.2,5" for n in range(5)]
    master = parse_instrument_csv("\n".join([header, *rows]) + "\n")

    records = demo_records(master, count=50, seed=SEED)

    assert len(records) == 50
    assert all(record.base_currency == "USD" for record in records)
    assert all(set(record.cash) == {"USD"} for record in records)
    held = {symbol for record in records for symbol in record.positions}
    assert held
    assert all(symbol.startswith("U") for symbol in held)
