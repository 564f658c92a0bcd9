"""FxTable on the shipped instrument master: rates through USD, fail-closed statuses."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.refdata import load_master
from portfolio.errors import PortfolioError
from portfolio.fx import FxTable
from portfolio.types import Status
from pricing.instruments import CSV_COLUMNS, parse_instrument_csv
from tests.reference.portfolio import reference_rate, reference_usd_per

MASTER = load_master()
FX = FxTable(MASTER)
CURRENCIES = FX.currencies
PAIRS = {"EUR": "EURUSD", "GBP": "GBPUSD", "JPY": "USDJPY"}


def market(mids: dict[str, float], stale: frozenset[str] = frozenset()):
    """Mids (NaN elsewhere) and staleness flags (shape (M,)) for the named pairs."""
    mid = np.full(len(MASTER), np.nan)
    is_stale = np.zeros(len(MASTER), dtype=bool)
    for symbol, value in mids.items():
        mid[MASTER.ix(symbol)] = value
    for symbol in stale:
        is_stale[MASTER.ix(symbol)] = True
    return mid, is_stale


def rates(mids: dict[str, float], stale: frozenset[str] = frozenset()):
    usd_per, status = FX.usd_per(*market(mids, stale))
    return FX.matrix(usd_per, status)


ALL_PRICED = {"EURUSD": 1.25, "GBPUSD": 1.5, "USDJPY": 150.0}


def test_each_currency_is_priced_by_its_pair_against_usd_and_usd_by_none() -> None:
    pair_ix = dict(zip(CURRENCIES, FX.pair_ix.tolist(), strict=True))

    usd = pair_ix.pop("USD")

    assert usd == -1
    assert {c: MASTER.symbols[ix] for c, ix in pair_ix.items()} == PAIRS


def test_only_the_usd_based_pair_is_inverted() -> None:
    inverted = dict(zip(CURRENCIES, FX.is_inverted.tolist(), strict=True))

    assert inverted == {"USD": False, "EUR": False, "GBP": False, "JPY": True}


@settings(max_examples=100, deadline=None, database=None)
@given(
    eurusd=st.floats(0.5, 2.0),
    gbpusd=st.floats(0.5, 2.5),
    usdjpy=st.floats(50.0, 300.0),
    stale=st.frozensets(st.sampled_from(sorted(PAIRS.values()))),
)
def test_rate_matrix_matches_scalar_twin_from_pair_mids(eurusd, gbpusd, usdjpy, stale) -> None:
    mids = {"EURUSD": eurusd, "GBPUSD": gbpusd, "USDJPY": usdjpy}
    mid, is_stale = market(mids, stale)

    rate, status = rates(mids, stale)

    usd_per = reference_usd_per(MASTER, mid.tolist(), is_stale.tolist(), CURRENCIES)
    for a, source in enumerate(CURRENCIES):
        for b, target in enumerate(CURRENCIES):
            expected_rate, expected_status = reference_rate(usd_per, source, target)
            # One division against two: a couple of ulps apart.
            assert rate[a, b] == pytest.approx(expected_rate, rel=1e-14), (source, target)
            assert status[a, b] == expected_status, (source, target)


def test_cross_rates_by_hand() -> None:
    rate, _ = rates(ALL_PRICED)

    eur, gbp, jpy, usd = (CURRENCIES.index(c) for c in ("EUR", "GBP", "JPY", "USD"))
    # EUR -> GBP: 1.25 USD/EUR / 1.5 USD/GBP = 0.8333...; GBP -> JPY: 1.5 x 150 = 225.
    assert rate[eur, gbp] == pytest.approx(1.25 / 1.5, rel=1e-15)
    assert rate[gbp, jpy] == pytest.approx(225.0, rel=1e-15)
    assert rate[eur, usd] == 1.25


def test_inverted_usdjpy_gives_usd_per_jpy_as_its_reciprocal() -> None:
    usd_per, _ = FX.usd_per(*market(ALL_PRICED))
    rate, _ = rates(ALL_PRICED)

    jpy, usd = CURRENCIES.index("JPY"), CURRENCIES.index("USD")
    # USDJPY 150 quotes 150 JPY per USD: 1 JPY = 1/150 USD, 1 USD = 150 JPY.
    assert usd_per[jpy] == pytest.approx(1.0 / 150.0, rel=1e-15)
    assert rate[usd, jpy] == pytest.approx(150.0, rel=1e-15)
    assert rate[jpy, usd] == pytest.approx(1.0 / 150.0, rel=1e-15)


@pytest.mark.parametrize("missing", ["", *PAIRS.values()])
def test_diagonal_is_exactly_one_and_ok(missing: str) -> None:
    mids = {pair: mid for pair, mid in ALL_PRICED.items() if pair != missing}

    rate, status = rates(mids, stale=frozenset(PAIRS.values()))

    assert np.diag(rate).tolist() == [1.0] * len(CURRENCIES)
    assert np.diag(status).tolist() == [Status.OK] * len(CURRENCIES)


@pytest.mark.parametrize(("currency", "pair"), list(PAIRS.items()))
def test_missing_pair_mid_makes_every_rate_of_its_currency_nan_and_unpriced(
    currency: str, pair: str
) -> None:
    mids = {p: mid for p, mid in ALL_PRICED.items() if p != pair}

    rate, status = rates(mids)

    c = CURRENCIES.index(currency)
    off_diagonal = [o for o in range(len(CURRENCIES)) if o != c]
    for o in off_diagonal:
        assert math.isnan(rate[c, o])
        assert math.isnan(rate[o, c])
        assert status[c, o] == status[o, c] == Status.UNPRICED


@pytest.mark.parametrize(("currency", "pair"), list(PAIRS.items()))
def test_missing_pair_mid_leaves_rates_between_other_currencies_priced(
    currency: str, pair: str
) -> None:
    mids = {p: mid for p, mid in ALL_PRICED.items() if p != pair}

    rate, status = rates(mids)

    others = [i for i, c in enumerate(CURRENCIES) if c != currency]
    block = np.ix_(others, others)
    assert np.isfinite(rate[block]).all()
    assert (status[block] == Status.OK).all()


@pytest.mark.parametrize("pair", ["EURUSD", "USDJPY"])
def test_zero_pair_mid_is_unpriced_not_infinite(pair: str) -> None:
    usd_per, status = FX.usd_per(*market(ALL_PRICED | {pair: 0.0}))

    c = CURRENCIES.index(next(c for c, p in PAIRS.items() if p == pair))
    assert math.isnan(usd_per[c])
    assert status[c] == Status.UNPRICED


def test_stale_pair_marks_its_currency_stale_and_no_other() -> None:
    rate, status = rates(ALL_PRICED, stale=frozenset({"GBPUSD"}))

    gbp = CURRENCIES.index("GBP")
    others = [i for i, c in enumerate(CURRENCIES) if c != "GBP"]
    assert all(status[gbp, o] == status[o, gbp] == Status.STALE for o in others)
    assert (status[np.ix_(others, others)] == Status.OK).all()
    assert np.isfinite(rate).all()


def test_missing_pair_outranks_stale_pair() -> None:
    _, status = rates({"GBPUSD": 1.5, "USDJPY": 150.0}, stale=frozenset({"GBPUSD"}))

    eur, gbp = CURRENCIES.index("EUR"), CURRENCIES.index("GBP")
    assert status[eur, gbp] == Status.UNPRICED


def test_master_without_a_usd_pair_for_a_currency_is_refused() -> None:
    header = ",".join(CSV_COLUMNS)
    rows = [
        "EURUSD.FX,EURUSD,fx,USD,0.00001,1000,1,fx,,,,,EUR,1.1,0.07,1",
        "USDJPY.FX,USDJPY,fx,JPY,0.001,1000,1,fx,,,,,USD,150,0.1,1",
        "EURGBP.FX,EURGBP,fx,GBP,0.00001,1000,1,fx,,,,,EUR,0.88,0.06,1",
    ]
    master = parse_instrument_csv("\n".join([header, *rows]))

    with pytest.raises(PortfolioError, match="GBP"):
        FxTable(master)
