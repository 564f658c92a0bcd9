"""Incremental engine updates equal a full revaluation, and every moved account is reported.

A seeded session drives the small market of ``market.py`` for hundreds of
steps: quote and trade batches on random instruments (FX pairs and the
options' underlying included), staleness refreshes with the feed up or down,
and fills that add to, reduce, flip or open positions. ``now_ns`` given to
the engine is fixed, so an engine built from scratch on the same PriceBook
and PositionBook must agree with the one updated step by step.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

from portfolio.engine import TOTAL_FIELDS, AccountTotals, PortfolioChange, PortfolioEngine
from portfolio.types import AccountId, Fill
from pricing.instruments import CURRENCIES
from pricing.pricebook import TickBatch
from tests.builders import NS
from tests.reference.portfolio import RefAccount
from tests.unit.portfolio.market import (
    AAA,
    BBB,
    CALL,
    EEE,
    EURUSD,
    GBPUSD,
    MASTER,
    NOW_NS,
    PLAIN,
    PUT,
    USDJPY,
    held,
    new_book,
    new_engine,
    new_prices,
    quote,
)

STEPS = 300
ACCOUNTS = 40
# Most positions are in BBB and JJJ, few in each other instrument: a tick then
# touches either a large share of the book or a small one, so both the
# engine's incremental update and its choice of an exact re-sum are exercised.
HOLDING_WEIGHTS = np.array([1, 25, 1, 25, 1, 1, 1, 1, 1, 1]) / 58
CHECK_EVERY = 20
FX_PAIRS = (EURUSD, GBPUSD, USDJPY)


class RandomSession:
    """Accounts, prices and fills drawn from one seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.prices = new_prices()  # no prices yet: everything starts unpriced
        self.book = new_book([self.random_account() for _ in range(ACCOUNTS)])
        self.engine = new_engine(self.prices, self.book)
        self.ts_ns = NOW_NS
        self.seq = 0

    def random_account(self) -> RefAccount:
        rng = self.rng
        currencies = rng.choice(CURRENCIES, size=int(rng.integers(0, 3)), replace=False)
        cash = {str(c): float(rng.normal(0.0, 1e5)) for c in currencies}
        instruments = rng.choice(
            len(MASTER), size=int(rng.integers(0, 6)), replace=False, p=HOLDING_WEIGHTS
        )
        positions = [
            (int(ix), held(float(rng.integers(-50, 51)), self.price_near(int(ix))))
            for ix in instruments
        ]
        return RefAccount(str(rng.choice(CURRENCIES)), cash, positions)

    def price_near(self, ix: int) -> float:
        return float(MASTER.ref_price[ix] * np.exp(self.rng.normal(0.0, 0.03)))

    def step(self) -> PortfolioChange:
        self.ts_ns += int(self.rng.integers(1, 3 * NS))
        action = self.rng.random()
        if action < 0.65:
            return self.engine.on_prices_changed(self.ticks(), NOW_NS)
        if action < 0.8:
            is_feed_up = bool(self.rng.random() < 0.8)
            flipped = self.prices.refresh_staleness(self.ts_ns, is_feed_up=is_feed_up)
            return self.engine.on_prices_changed(flipped, NOW_NS)
        return self.engine.apply_fills([self.fill() for _ in range(int(self.rng.integers(1, 4)))])

    def ticks(self) -> np.ndarray:
        rng = self.rng
        k = int(rng.integers(1, 3))
        # Mostly plain instruments; now and then an option's own quote, which
        # must not move its model mark.
        ix = np.where(rng.random(k) < 0.9, rng.choice(PLAIN, size=k), rng.choice([CALL, PUT], k))
        mid = np.array([self.price_near(int(i)) for i in ix])
        is_trade = rng.random(k) < 0.3
        half_spread = mid * 1e-4
        bid = np.where(is_trade, np.nan, mid - half_spread)
        ask = np.where(is_trade, np.nan, mid + half_spread)
        last = np.where(is_trade, mid, np.nan)
        if rng.random() < 0.03:  # a zero quote on an FX pair: its rate goes missing
            ix[0], bid[0], ask[0], last[0] = rng.choice(FX_PAIRS), 0.0, 0.0, np.nan
        ts = [self.ts_ns] * k
        batch = TickBatch.from_columns(ix, bid, ask, last, np.where(is_trade, 1.0, np.nan), ts, ts)
        return self.prices.apply(batch).changed_ix

    def fill(self) -> Fill:
        rng = self.rng
        self.seq += 1
        account = self.book.accounts[int(rng.integers(0, self.book.size_n))]
        ix = int(rng.choice(len(MASTER), p=HOLDING_WEIGHTS))
        return Fill(
            AccountId(account),
            ix,
            float(rng.integers(1, 40)) * float(rng.choice([-1, 1])),
            self.price_near(ix),
            ledger_seq=self.seq,
            commission=float(rng.uniform(0, 5)),
            commission_currency=str(rng.choice(CURRENCIES)),
            commission_fx=float(rng.uniform(0.5, 2.0)),
        )

    def totals(self, engine: PortfolioEngine | None = None) -> AccountTotals:
        return (engine or self.engine).totals(np.arange(self.book.size_n))


def assert_totals_close(
    actual: AccountTotals, expected: AccountTotals, rows: np.ndarray | None = None
) -> None:
    # Running sums of differences round relative to the largest figures they
    # carry, not to a total that may cancel towards 0: rtol 1e-9 plus 1e-12 of
    # the account's largest total. Measured drift is ~1e-15 of that scale.
    rows = np.arange(expected.values.shape[0]) if rows is None else rows
    a, e = actual.values[rows], expected.values[rows]
    scale = np.nanmax(np.abs(e), axis=1, keepdims=True, initial=0.0)
    close = np.isclose(a, e, rtol=1e-9, atol=1e-12 * scale, equal_nan=True)
    assert close.all(), rows[np.argwhere(~close)[:, 0]]
    np.testing.assert_array_equal(actual.status[rows], expected.status[rows])
    np.testing.assert_array_equal(actual.unpriced[rows], expected.unpriced[rows])
    np.testing.assert_array_equal(actual.stale[rows], expected.stale[rows])


def assert_unlisted_unchanged(
    before: AccountTotals, after: AccountTotals, change: PortfolioChange
) -> None:
    # Unchanged up to rounding: an exact re-sum (which the engine may choose
    # over an incremental update) can move a total by a few ulps.
    unlisted = np.setdiff1d(np.arange(before.values.shape[0]), change.accounts)
    assert_totals_close(after, before, unlisted)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_incremental_updates_equal_a_freshly_built_engine(seed: int) -> None:
    session = RandomSession(seed)

    for step in range(1, STEPS + 1):
        session.step()

        if step % CHECK_EVERY == 0:
            fresh = new_engine(session.prices, session.book)
            assert_totals_close(session.totals(), session.totals(fresh))


@pytest.mark.parametrize("seed", [21, 22, 23])
def test_every_account_whose_totals_moved_is_reported(seed: int) -> None:
    session = RandomSession(seed)

    for _ in range(STEPS):
        before = session.totals()
        change = session.step()
        assert_unlisted_unchanged(before, session.totals(), change)


# --- which accounts a change lists, by hand ------------------------------------------------

# 0: AAA; 1: BBB; 2: EEE (EUR) in a USD account; 3: EUR cash only, EUR base;
# 4: a call on AAA; 5: USD cash in a JPY account.
LISTED_BOOK = [
    RefAccount("USD", {}, [(AAA, held(10, 95.0))]),
    RefAccount("USD", {}, [(BBB, held(10, 45.0))]),
    RefAccount("USD", {}, [(EEE, held(10, 75.0))]),
    RefAccount("EUR", {"EUR": 1_000.0}, []),
    RefAccount("USD", {}, [(CALL, held(2, 9.0))]),
    RefAccount("JPY", {"USD": 1_000.0}, []),
]
PRICED = {AAA: 100.0, BBB: 50.0, EEE: 80.0, EURUSD: 1.2, GBPUSD: 1.3, USDJPY: 150.0}


@pytest.mark.parametrize(
    ("instrument", "new_mid", "expected"),
    [
        (AAA, 101.0, [0, 4]),  # the stock and the option on it
        (BBB, 51.0, [1]),
        (EURUSD, 1.25, [2]),  # the EUR holder; the EUR-only account does not move
        (USDJPY, 151.0, [5]),  # USD cash of the JPY account
        (GBPUSD, 1.31, []),  # nobody holds GBP
    ],
)
def test_price_change_lists_exactly_the_accounts_it_moves(
    instrument: int, new_mid: float, expected: list[int]
) -> None:
    prices = new_prices()
    quote(prices, PRICED)
    engine = new_engine(prices, new_book(LISTED_BOOK))
    everyone = np.arange(len(LISTED_BOOK))
    before = engine.totals(everyone).values

    changed = quote(prices, {instrument: new_mid}, ts_ns=NOW_NS + NS)
    change = engine.on_prices_changed(changed, NOW_NS)

    moved = np.flatnonzero((engine.totals(everyone).values != before).any(axis=1))
    assert change.accounts.tolist() == expected
    assert moved.tolist() == expected


def test_fill_lists_only_the_filled_account() -> None:
    prices = new_prices()
    quote(prices, PRICED)
    engine = new_engine(prices, new_book(LISTED_BOOK))

    change = engine.apply_fills([Fill(AccountId("ACC-1"), AAA, 5, 100.5, ledger_seq=1)])

    assert change.accounts.tolist() == [1]


def test_time_decay_update_equals_a_full_revaluation_at_the_same_time() -> None:
    session = RandomSession(31)
    for _ in range(60):
        session.step()
    later_ns = NOW_NS + 3 * 86_400 * NS
    full = copy.deepcopy(session.engine)

    session.engine.revalue_options(later_ns)
    full.revalue_all(later_ns)

    assert_totals_close(session.totals(), session.totals(full))


def test_time_decay_update_lists_every_account_whose_totals_moved() -> None:
    session = RandomSession(32)
    for _ in range(60):
        session.step()
    before = session.totals()

    change = session.engine.revalue_options(NOW_NS + 86_400 * NS)

    assert_unlisted_unchanged(before, session.totals(), change)


@pytest.mark.parametrize("seed", [41, 42])
def test_change_lists_each_account_at_most_once(seed: int) -> None:
    session = RandomSession(seed)
    changes = [session.step() for _ in range(STEPS)]
    changes.append(session.engine.revalue_options(NOW_NS + 86_400 * NS))

    for change in changes:
        # PortfolioChange documents distinct account rows, in no particular order.
        assert np.unique(change.accounts).size == change.accounts.size


def test_fx_tick_repricing_a_pair_position_also_lists_holders_of_the_currency() -> None:
    # 0: long EURUSD (the only position, so the tick touches every position);
    # 1: 1,000 EUR cash in a USD account, no position at all.
    book = [
        RefAccount("USD", {}, [(EURUSD, held(10_000, 1.2))]),
        RefAccount("USD", {"EUR": 1_000.0}, []),
    ]
    prices = new_prices()
    quote(prices, PRICED)
    engine = new_engine(prices, new_book(book))

    change = engine.on_prices_changed(quote(prices, {EURUSD: 1.25}, ts_ns=NOW_NS + NS), NOW_NS)

    # Account 1's cash moved from 1,000 x 1.2 = 1,200 to 1,000 x 1.25 = 1,250 USD.
    assert engine.totals(np.array([1])).values[0, 0] == pytest.approx(1_250.0, rel=1e-12)
    assert sorted(change.accounts.tolist()) == [0, 1]


def test_full_revaluation_after_a_day_roll_rereads_the_book() -> None:
    # 100 AAA, 50 held overnight and 50 bought today for 4,000; mid 104, close 100.
    today = held(100, 90.0, day_open_quantity=50, day_trade_value=4_000.0)
    account = RefAccount("USD", {}, [(AAA, today)])
    prices = new_prices()
    quote(prices, PRICED | {AAA: 104.0})
    engine = new_engine(prices, new_book([account]))

    engine.start_day(NOW_NS)

    # Before the roll: 100 x 104 - 50 x 100 - 4,000 = 1,400. After it the day opens
    # with all 100 and no trades: 100 x (104 - 100) = 400.
    assert engine.totals(np.array([0])).values[0, TOTAL_FIELDS.index("day_pnl")] == 400.0


# --- the change lists every row whose values moved ----------------------------------------

ROW_SUMS = (
    ("market_value", "market_value"),
    ("unrealised_pnl", "unrealised_pnl"),
    ("day_pnl", "day_pnl"),
    ("net_exposure", "exposure"),
    ("gamma", "gamma"),
    ("vega", "vega"),
    ("theta", "theta"),
    ("rho", "rho"),
)


def rows_in_base(engine: PortfolioEngine, positions: np.ndarray) -> dict[int, dict[str, float]]:
    """What a client holds for these positions: each row's values times its ``fx_rate``."""
    values = engine.position_values(positions)
    rate, _ = engine.fx_to_base(positions)
    return {
        int(p): {field: float(getattr(values, field)[j] * rate[j]) for _, field in ROW_SUMS}
        for j, p in enumerate(positions.tolist())
    }


def assert_rows_sum_to_totals(engine: PortfolioEngine, rows: dict[int, dict[str, float]]) -> None:
    totals = dict(zip(TOTAL_FIELDS, engine.totals(np.array([0])).values[0].tolist(), strict=True))
    for total, field in ROW_SUMS:
        terms = [row[field] for row in rows.values()]
        assert totals[total] == pytest.approx(math.fsum(terms), rel=1e-12, abs=1e-9), total


def test_large_batch_lists_the_options_it_remarks_for_time() -> None:
    # 10 calls on AAA and 100 BBB; BBB ticks an hour later. The tick touches one
    # of the two positions, above the share where the engine revalues everything
    # at once, and that re-marks the call for the hour that passed: the call's
    # row moved too, so the change must list it.
    account = RefAccount("USD", {}, [(CALL, held(10, 8.0)), (BBB, held(100, 45.0))])
    prices = new_prices()
    quote(prices, PRICED)
    engine = new_engine(prices, new_book([account]))
    rows = rows_in_base(engine, np.arange(engine.book.size_p))
    later = NOW_NS + 3_600 * NS

    change = engine.on_prices_changed(quote(prices, {BBB: 51.0}, ts_ns=later), later)
    rows.update(rows_in_base(engine, change.positions))

    assert sorted(change.positions.tolist()) == [0, 1]
    assert_rows_sum_to_totals(engine, rows)
