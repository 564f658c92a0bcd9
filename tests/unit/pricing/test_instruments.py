"""The shipped instrument master, the symbol index and CSV parsing errors."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from gateway.refdata import load_master
from pricing.errors import ReferenceDataError, UnknownInstrument
from pricing.instruments import (
    CSV_COLUMNS,
    CURRENCIES,
    Instrument,
    InstrumentMaster,
    InstrumentType,
    parse_instrument_csv,
)
from pricing.types import InstrumentId, Symbol

HEADER = ",".join(CSV_COLUMNS)
AAPL = "AAPL.XNAS,AAPL,equity,USD,0.01,1,1,technology,,,,,,272.50,0.26,17.23"
SAP = "SAP.XETR,SAP,equity,EUR,0.01,1,1,technology,,,,,,240.10,0.25,3"
ES = "ESZ6.XCME,ESZ6,future,USD,0.25,1,50,equity_index,,,,,,6000,0.18,5"
AAPL_CALL = (
    "AAPL261218C240.OPRA,AAPL261218C240,option,USD,0.01,1,100,technology,"
    "AAPL,C,240,2026-12-18,,33.56,0.29,0.7"
)


@pytest.fixture(scope="module")
def master() -> InstrumentMaster:
    return load_master()


def csv_text(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def equity(tick_size: str) -> Instrument:
    return Instrument(
        instrument_id=InstrumentId("X.XNAS"),
        symbol=Symbol("X"),
        type=InstrumentType.EQUITY,
        currency="USD",
        tick_size=Decimal(tick_size),
        lot_size=Decimal(1),
        multiplier=Decimal(1),
        sector="technology",
        ref_price=Decimal(100),
        volatility=0.3,
        weight=1.0,
    )


# --- the shipped master ----------------------------------------------------------------------


def test_shipped_master_has_at_least_500_instruments(master: InstrumentMaster) -> None:
    count = len(master)

    assert count >= 500


def test_shipped_master_has_equities_in_every_currency(master: InstrumentMaster) -> None:
    currencies = {i.currency for i in master if i.type is InstrumentType.EQUITY}

    assert currencies == set(CURRENCIES)


def test_shipped_futures_have_multiplier_above_one(master: InstrumentMaster) -> None:
    futures = [i for i in master if i.type is InstrumentType.FUTURE]

    small = [i.symbol for i in futures if not i.multiplier > 1]

    assert futures
    assert small == []


def test_shipped_equities_have_dividend_yields_of_listed_shares(master: InstrumentMaster) -> None:
    yields: dict[str, float] = {
        i.symbol: i.dividend_yield for i in master if i.type is InstrumentType.EQUITY
    }

    # SPY's trailing yield is about 1.2%; no listed share here yields 10% or more.
    assert 0.01 <= yields["SPY"] <= 0.015
    assert all(0.0 <= y < 0.1 for y in yields.values())
    assert sum(y > 0 for y in yields.values()) > len(yields) / 2


def test_shipped_non_equities_have_no_dividend_yield(master: InstrumentMaster) -> None:
    paying = [i.symbol for i in master if i.type is not InstrumentType.EQUITY and i.dividend_yield]

    assert paying == []


def test_shipped_fx_pairs_have_a_base_currency(master: InstrumentMaster) -> None:
    pairs = [i for i in master if i.type is InstrumentType.FX]

    missing = [i.symbol for i in pairs if not i.base_currency]

    assert pairs
    assert missing == []


def test_shipped_options_reference_a_listed_non_option_underlying(
    master: InstrumentMaster,
) -> None:
    options = [i for i in master if i.type is InstrumentType.OPTION]

    bad = [
        i.symbol
        for i in options
        if i.underlying is None
        or i.underlying not in master.symbol_index
        or master[master.ix(i.underlying)].type is InstrumentType.OPTION
    ]

    assert options
    assert bad == []


def test_shipped_options_have_strike_and_expiry(master: InstrumentMaster) -> None:
    options = [i for i in master if i.type is InstrumentType.OPTION]

    incomplete = [i.symbol for i in options if i.strike is None or i.expiry is None]

    assert options
    assert incomplete == []


# --- symbol index ----------------------------------------------------------------------------


def test_symbol_to_index_round_trips_for_every_instrument(master: InstrumentMaster) -> None:
    symbols = master.symbols

    round_tripped = [master[master.ix(symbol)].symbol for symbol in symbols]

    assert round_tripped == list(symbols)


def test_ix_of_unknown_symbol_raises_unknown_instrument(master: InstrumentMaster) -> None:
    with pytest.raises(UnknownInstrument) as caught:
        master.ix("NOPE")

    assert caught.value.symbol == "NOPE"


def test_membership_is_of_instruments_as_for_any_sequence() -> None:
    master = parse_instrument_csv(csv_text(AAPL, SAP))
    aapl = master[0]

    assert aapl in master
    assert master.index(aapl) == 0
    assert "AAPL" not in master  # type: ignore[comparison-overlap]  # what this test checks
    assert "AAPL" in master.symbol_index


def test_an_instrument_with_a_listed_symbol_but_other_terms_is_not_a_member() -> None:
    master = parse_instrument_csv(csv_text(AAPL, SAP))
    other = parse_instrument_csv(csv_text(AAPL.replace(",17.23", ",1")))[0]

    assert other.symbol == "AAPL"
    assert other not in master


def test_ix_or_missing_gives_minus_one_for_unknown_symbols() -> None:
    small = parse_instrument_csv(csv_text(AAPL, SAP, ES))

    ix = small.ix_or_missing(["ES", "ESZ6", "AAPL", "", "SAP"])

    assert ix.tolist() == [-1, 2, 0, -1, 1]


def test_underlying_ix_points_options_at_their_underlying_row() -> None:
    small = parse_instrument_csv(csv_text(SAP, AAPL, AAPL_CALL))

    underlying_ix = small.underlying_ix

    assert underlying_ix.tolist() == [-1, -1, 1]


# --- price decimals --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tick_size", "decimals"),
    [("0.01", 2), ("0.015625", 6), ("0.25", 2), ("0.0100", 2), ("1", 0), ("5", 0), ("5E-7", 7)],
)
def test_price_decimals_counts_places_of_the_tick_grid(tick_size: str, decimals: int) -> None:
    instrument = equity(tick_size)

    places = instrument.price_decimals

    assert places == decimals


# --- parse errors ----------------------------------------------------------------------------


def test_parse_valid_rows_builds_instruments_in_file_order() -> None:
    text = csv_text(AAPL, ES, AAPL_CALL)

    parsed = parse_instrument_csv(text)

    assert parsed.symbols == ("AAPL", "ESZ6", "AAPL261218C240")
    assert parsed[2].expiry == dt.date(2026, 12, 18)


def test_parse_wrong_header_raises_naming_line_one() -> None:
    text = csv_text(AAPL, header=HEADER.replace("tick_size", "tick"))

    with pytest.raises(ReferenceDataError, match="line 1:") as caught:
        parse_instrument_csv(text)

    assert caught.value.line == 1


def test_parse_unknown_type_raises_naming_its_line() -> None:
    text = csv_text(AAPL, SAP.replace(",equity,", ",bond,"))

    with pytest.raises(ReferenceDataError, match="line 3:") as caught:
        parse_instrument_csv(text)

    assert caught.value.line == 3


def test_parse_unknown_currency_raises_naming_its_line() -> None:
    text = csv_text(AAPL, ES, SAP.replace(",EUR,", ",CHF,"))

    with pytest.raises(ReferenceDataError, match="line 4: currency") as caught:
        parse_instrument_csv(text)

    assert caught.value.line == 4


@pytest.mark.parametrize("tick_size", ["0", "-0.01"])
def test_parse_non_positive_tick_size_raises_naming_its_line(tick_size: str) -> None:
    text = csv_text(AAPL.replace(",0.01,", f",{tick_size},"), SAP)

    with pytest.raises(ReferenceDataError, match="line 2: tick_size") as caught:
        parse_instrument_csv(text)

    assert caught.value.line == 2


def test_parse_duplicate_symbol_raises_naming_the_second_line() -> None:
    text = csv_text(AAPL, SAP, AAPL.replace("AAPL.XNAS", "AAPL.XNYS"))

    with pytest.raises(ReferenceDataError, match="line 4: duplicate symbol") as caught:
        parse_instrument_csv(text)

    assert caught.value.line == 4


def test_parse_option_with_missing_underlying_raises_naming_its_line() -> None:
    text = csv_text(SAP, AAPL_CALL)

    with pytest.raises(ReferenceDataError, match="line 3: underlying") as caught:
        parse_instrument_csv(text)

    assert caught.value.line == 3


def test_parse_option_on_an_option_raises_naming_its_line() -> None:
    option_on_option = AAPL_CALL.replace("AAPL261218C240", "OOPT").replace(
        ",AAPL,C,", ",AAPL261218C240,C,"
    )
    text = csv_text(AAPL, AAPL_CALL, option_on_option)

    with pytest.raises(ReferenceDataError, match="line 4: underlying") as caught:
        parse_instrument_csv(text)

    assert caught.value.line == 4


# --- dividend yields -------------------------------------------------------------------------


def test_parse_reads_an_equitys_dividend_yield_and_an_empty_one_as_zero() -> None:
    text = csv_text(AAPL + ",0.004", SAP + ",")

    parsed = parse_instrument_csv(text)

    assert [i.dividend_yield for i in parsed] == [0.004, 0.0]
    assert parsed.dividend_yield.tolist() == [0.004, 0.0]


def test_parse_a_file_without_the_dividend_yield_column_reads_every_yield_as_zero() -> None:
    text = csv_text(AAPL, AAPL_CALL, header=",".join(CSV_COLUMNS[:-1]))

    parsed = parse_instrument_csv(text)

    assert [i.dividend_yield for i in parsed] == [0.0, 0.0]


@pytest.mark.parametrize("raw", ["-0.01", "1", "1.5", "abc", "NaN", "inf"])
def test_parse_dividend_yield_outside_zero_to_one_raises_naming_its_line(raw: str) -> None:
    text = csv_text(SAP + ",", AAPL + f",{raw}")

    with pytest.raises(ReferenceDataError, match="line 3: dividend_yield must be within") as caught:
        parse_instrument_csv(text)

    assert caught.value.line == 3


@pytest.mark.parametrize("row", [ES, AAPL_CALL])
def test_parse_dividend_yield_on_a_non_equity_raises_naming_its_line(row: str) -> None:
    text = csv_text(AAPL, row + ",0.01")

    with pytest.raises(ReferenceDataError, match="line 3: dividend_yield must be empty") as caught:
        parse_instrument_csv(text)

    assert caught.value.line == 3
