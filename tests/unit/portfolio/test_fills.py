"""Golden tests of the position lifecycle under the average-cost method.

Every expected number is worked by hand in the comment above it. The book
holds one account (base USD) and four instruments: a USD equity (m = 1), a
USD future (m = 50, margined), a EUR equity (m = 1) and a USD option
(m = 100).
"""

from __future__ import annotations

import numpy as np
import pytest

from portfolio.errors import PortfolioError
from portfolio.positions import PositionBook
from portfolio.types import AccountId, CashMovement, Fill, PositionState

CURRENCIES = ("USD", "EUR", "GBP", "JPY")
USD, EUR = 0, 1
STOCK, FUTURE, EUR_STOCK, OPTION = 0, 1, 2, 3
ACCOUNT = AccountId("ACC-1")


def new_book() -> PositionBook:
    book = PositionBook(
        CURRENCIES,
        currency_ix=np.array([USD, USD, EUR, USD]),
        multiplier=np.array([1.0, 50.0, 1.0, 100.0]),
        is_margined=np.array([False, True, False, False]),
    )
    book.add_account(ACCOUNT, "USD")
    return book


class Trader:
    """Applies fills with increasing ledger sequence numbers."""

    def __init__(self, book: PositionBook) -> None:
        self.book = book
        self.seq = 0

    def fill(self, instrument: int, quantity: float, price: float, **extra: object) -> None:
        self.seq += 1
        self.book.apply_fill(Fill(ACCOUNT, instrument, quantity, price, self.seq, **extra))


def position(book: PositionBook, instrument: int) -> PositionState:
    row = book.position_row(book.account_ix(ACCOUNT), instrument)
    assert row is not None
    return book.position_state(row)


def cash(book: PositionBook, currency: int) -> float:
    return float(book.cash[book.account_ix(ACCOUNT), currency])


def test_buy_on_flat_position_opens_long_at_fill_price() -> None:
    trader = Trader(new_book())

    trader.fill(STOCK, 100, 50.0)

    # Flat + buy 100 @ 50: q = 100, avg = 50, nothing realised.
    p = position(trader.book, STOCK)
    assert (p.quantity, p.avg_cost, p.realised_pnl) == (100, 50.0, 0.0)


def test_adding_to_long_moves_average_cost_to_weighted_average() -> None:
    trader = Trader(new_book())
    trader.fill(STOCK, 100, 50.0)

    trader.fill(STOCK, 50, 56.0)

    # (100 x 50 + 50 x 56) / 150 = (5000 + 2800) / 150 = 52; adding realises nothing.
    p = position(trader.book, STOCK)
    assert (p.quantity, p.avg_cost, p.realised_pnl) == (150, pytest.approx(52.0, rel=1e-15), 0.0)


def test_adding_to_short_moves_average_cost_to_weighted_average() -> None:
    trader = Trader(new_book())
    trader.fill(STOCK, -10, 20.0)

    trader.fill(STOCK, -30, 24.0)

    # (-10 x 20 - 30 x 24) / -40 = (200 + 720) / 40 = 23.
    p = position(trader.book, STOCK)
    assert (p.quantity, p.avg_cost, p.realised_pnl) == (-40, pytest.approx(23.0, rel=1e-15), 0.0)


def test_partial_reduce_realises_only_the_reduced_part_and_keeps_average_cost() -> None:
    trader = Trader(new_book())
    trader.fill(STOCK, 100, 50.0)

    trader.fill(STOCK, -40, 55.0)

    # Sell 40 of 100 @ 55 against avg 50: realised (55 - 50) x 40 = 200; 60 left at avg 50.
    p = position(trader.book, STOCK)
    assert (p.quantity, p.avg_cost, p.realised_pnl) == (60, 50.0, 200.0)


def test_closing_the_whole_position_goes_flat_with_zero_average_cost() -> None:
    trader = Trader(new_book())
    trader.fill(STOCK, 100, 50.0)

    trader.fill(STOCK, -100, 48.0)

    # Sell all 100 @ 48 against avg 50: realised (48 - 50) x 100 = -200; flat, avg 0.
    p = position(trader.book, STOCK)
    assert (p.quantity, p.avg_cost, p.realised_pnl) == (0, 0.0, -200.0)


def test_sell_larger_than_long_flips_to_short_opened_at_fill_price() -> None:
    trader = Trader(new_book())
    trader.fill(STOCK, 100, 50.0)

    trader.fill(STOCK, -150, 60.0)

    # Close 100 @ 60: realised (60 - 50) x 100 = 1000. Open the other 50 short @ 60.
    p = position(trader.book, STOCK)
    assert (p.quantity, p.avg_cost, p.realised_pnl) == (-50, 60.0, 1000.0)


def test_buy_larger_than_short_flips_to_long_and_realises_only_the_closed_part() -> None:
    trader = Trader(new_book())
    trader.fill(STOCK, -20, 30.0)

    trader.fill(STOCK, 50, 33.0)

    # Cover 20 @ 33 against a short at 30: realised (33 - 30) x -20 = -60. Long 30 @ 33.
    p = position(trader.book, STOCK)
    assert (p.quantity, p.avg_cost, p.realised_pnl) == (30, 33.0, -60.0)


def test_short_then_cover_below_entry_realises_a_gain() -> None:
    trader = Trader(new_book())
    trader.fill(STOCK, -30, 20.0)

    trader.fill(STOCK, 30, 18.0)

    # Short 30 @ 20, cover @ 18: realised (18 - 20) x -30 = +60; flat, avg 0.
    p = position(trader.book, STOCK)
    assert (p.quantity, p.avg_cost, p.realised_pnl) == (0, 0.0, 60.0)


def test_several_partial_fills_add_up_to_one_average_cost() -> None:
    trader = Trader(new_book())

    for quantity, price in ((10, 100.0), (20, 101.0), (70, 99.5)):
        trader.fill(STOCK, quantity, price)

    # (10 x 100 + 20 x 101 + 70 x 99.5) / 100 = (1000 + 2020 + 6965) / 100 = 99.85.
    p = position(trader.book, STOCK)
    assert p.quantity == 100
    assert p.avg_cost == pytest.approx(99.85, rel=1e-14)


def test_several_partial_reduces_realise_the_sum_of_their_parts() -> None:
    trader = Trader(new_book())
    trader.fill(STOCK, 100, 40.0)

    for quantity, price in ((-25, 44.0), (-25, 38.0), (-30, 41.0)):
        trader.fill(STOCK, quantity, price)

    # (44 - 40) x 25 + (38 - 40) x 25 + (41 - 40) x 30 = 100 - 50 + 30 = 80; 20 left @ 40.
    p = position(trader.book, STOCK)
    assert (p.quantity, p.avg_cost, p.realised_pnl) == (20, 40.0, 80.0)


def test_option_reduce_realises_with_the_contract_multiplier() -> None:
    trader = Trader(new_book())
    trader.fill(OPTION, 5, 3.20)

    trader.fill(OPTION, -2, 4.70)

    # (4.70 - 3.20) x 2 x 100 = 300.
    assert position(trader.book, OPTION).realised_pnl == pytest.approx(300.0, rel=1e-12)


def test_day_trade_value_sums_quantity_times_price_of_the_days_fills() -> None:
    trader = Trader(new_book())

    trader.fill(STOCK, 10, 100.0)
    trader.fill(STOCK, -4, 105.0)

    # 10 x 100 - 4 x 105 = 1000 - 420 = 580.
    assert position(trader.book, STOCK).day_trade_value == 580.0


def test_commission_in_another_currency_debits_that_currencys_cash() -> None:
    trader = Trader(new_book())

    trader.fill(STOCK, 10, 100.0, commission=5.0, commission_currency="EUR", commission_fx=1.2)

    # EUR cash pays the 5 EUR commission; USD cash pays only the notional 10 x 100.
    assert (cash(trader.book, EUR), cash(trader.book, USD)) == (-5.0, -1000.0)


def test_commission_in_another_currency_accrues_on_position_in_instrument_currency() -> None:
    trader = Trader(new_book())

    trader.fill(STOCK, 10, 100.0, commission=5.0, commission_currency="EUR", commission_fx=1.2)
    trader.fill(STOCK, 5, 101.0, commission=2.0)

    # 5 EUR x 1.2 USD/EUR = 6 USD, then 2 USD: 8 USD on the position; realised stays 0.
    p = position(trader.book, STOCK)
    assert (p.commission, p.realised_pnl) == (pytest.approx(8.0, rel=1e-15), 0.0)


def test_equity_round_trip_moves_notional_through_cash() -> None:
    trader = Trader(new_book())

    trader.fill(STOCK, 10, 100.0)
    trader.fill(STOCK, -10, 110.0)

    # -10 x 100 + 10 x 110 = +100, equal to the realised P&L.
    assert cash(trader.book, USD) == 100.0


def test_future_fill_moves_no_notional_through_cash() -> None:
    trader = Trader(new_book())

    trader.fill(FUTURE, 2, 7000.0)

    # Margined: opening 2 contracts (notional 2 x 7000 x 50 = 700,000) moves no cash.
    assert cash(trader.book, USD) == 0.0


def test_future_reduce_credits_realised_pnl_to_cash() -> None:
    trader = Trader(new_book())
    trader.fill(FUTURE, 2, 7000.0)

    trader.fill(FUTURE, -1, 7010.0)

    # (7010 - 7000) x 1 x 50 = 500 realised, credited to USD cash.
    assert (cash(trader.book, USD), position(trader.book, FUTURE).realised_pnl) == (500.0, 500.0)


def test_future_flip_credits_only_the_closed_part_to_cash() -> None:
    trader = Trader(new_book())
    trader.fill(FUTURE, 2, 7000.0)

    trader.fill(FUTURE, -3, 6990.0)

    # Close 2 @ 6990: (6990 - 7000) x 2 x 50 = -1000 to cash; short 1 @ 6990 opened.
    p = position(trader.book, FUTURE)
    assert (cash(trader.book, USD), p.quantity, p.avg_cost) == (-1000.0, -1, 6990.0)


def test_foreign_equity_notional_moves_cash_in_its_own_currency() -> None:
    trader = Trader(new_book())

    trader.fill(EUR_STOCK, 20, 80.0)

    # 20 x 80 = 1600 EUR out of EUR cash; USD cash untouched.
    assert (cash(trader.book, EUR), cash(trader.book, USD)) == (-1600.0, 0.0)


def test_fill_advances_the_account_version_to_its_ledger_seq() -> None:
    book = new_book()

    book.apply_fill(Fill(ACCOUNT, STOCK, 1, 10.0, ledger_seq=42))

    assert int(book.version[book.account_ix(ACCOUNT)]) == 42


def test_replayed_fill_changes_nothing_and_returns_none() -> None:
    book = new_book()
    book.apply_fill(Fill(ACCOUNT, STOCK, 10, 100.0, ledger_seq=7))
    before = (position(book, STOCK), book.cash.copy(), book.version.copy())

    results = [
        book.apply_fill(Fill(ACCOUNT, STOCK, 10, 100.0, ledger_seq=7)),
        book.apply_fill(Fill(ACCOUNT, STOCK, -5, 120.0, ledger_seq=3)),
    ]

    assert results == [None, None]
    assert position(book, STOCK) == before[0]
    np.testing.assert_array_equal(book.cash, before[1])
    np.testing.assert_array_equal(book.version, before[2])


def test_fill_with_unknown_commission_currency_raises_and_changes_nothing() -> None:
    book = new_book()
    fill = Fill(ACCOUNT, STOCK, 10, 100.0, ledger_seq=1, commission=1.0, commission_currency="CHF")

    with pytest.raises(PortfolioError, match="CHF"):
        book.apply_fill(fill)

    assert book.size_p == 0
    assert not book.cash.any()
    assert int(book.version[0]) == 0


@pytest.mark.parametrize(
    ("quantity", "price", "commission"),
    [(0.0, 10.0, 0.0), (float("nan"), 10.0, 0.0), (1.0, -1.0, 0.0), (1.0, 10.0, -0.5)],
)
def test_fill_with_invalid_values_is_refused(
    quantity: float, price: float, commission: float
) -> None:
    with pytest.raises(ValueError, match="must be"):
        Fill(ACCOUNT, STOCK, quantity, price, 1, commission=commission)


# --- cash movements (settled payments) -------------------------------------------------


def test_a_deposit_adds_cash_in_its_currency_and_moves_the_version() -> None:
    book = new_book()

    row = book.apply_cash(CashMovement(ACCOUNT, "EUR", 2500.0, ledger_seq=4))

    assert row == book.account_ix(ACCOUNT)
    assert (cash(book, EUR), cash(book, USD)) == (2500.0, 0.0)
    assert book.version[row] == 4


def test_a_withdrawal_takes_cash_out() -> None:
    book = new_book()
    book.apply_cash(CashMovement(ACCOUNT, "USD", 1000.0, ledger_seq=1))

    book.apply_cash(CashMovement(ACCOUNT, "USD", -250.5, ledger_seq=2))

    assert cash(book, USD) == 749.5


def test_a_cash_movement_at_or_below_the_version_is_a_replay() -> None:
    book = new_book()
    trader = Trader(book)
    trader.fill(STOCK, 10, 5.0)  # version 1, cash -50

    replay = book.apply_cash(CashMovement(ACCOUNT, "USD", 100.0, ledger_seq=1))

    assert replay is None
    assert cash(book, USD) == -50.0


def test_a_cash_movement_in_an_unknown_currency_changes_nothing() -> None:
    book = new_book()

    with pytest.raises(PortfolioError, match="CHF"):
        book.apply_cash(CashMovement(ACCOUNT, "CHF", 1.0, ledger_seq=1))

    assert book.version[book.account_ix(ACCOUNT)] == 0


@pytest.mark.parametrize("amount", [0.0, float("nan"), float("inf")])
def test_a_cash_movement_must_move_a_finite_amount(amount: float) -> None:
    with pytest.raises(ValueError, match="amount"):
        CashMovement(ACCOUNT, "USD", amount, ledger_seq=1)
