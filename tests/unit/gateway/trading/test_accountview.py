"""Pre-trade risk's view of live state: exact decimals from the engine's floats and the book."""

from __future__ import annotations

from decimal import Decimal

from gateway.refdata import load_master
from gateway.trading.accountview import EngineAccountView
from orders.types import AccountId
from portfolio.fx import FxTable
from portfolio.positions import PositionBook
from portfolio.types import PositionState
from portfolio.valuation import InstrumentTerms
from pricing.pricebook import PriceBook
from tests.builders import make_batch

MASTER = load_master()
FX = FxTable(MASTER)
TERMS = InstrumentTerms.from_master(MASTER, FX.currencies, {})


def view_with(
    cash: dict[str, float], positions: dict[str, float]
) -> tuple[EngineAccountView, PriceBook]:
    book = PositionBook(
        FX.currencies,
        currency_ix=TERMS.currency_ix,
        multiplier=TERMS.multiplier,
        is_margined=TERMS.is_margined,
    )
    row = book.add_account(AccountId("A"), "EUR", cash)
    for symbol, quantity in positions.items():
        book.set_position(
            row, MASTER.symbol_index[symbol], PositionState(quantity=quantity, avg_cost=1.0)
        )
    prices = PriceBook(MASTER.ref_price, stale_after_ns=10**18)
    return EngineAccountView(book, prices, MASTER), prices


async def test_cash_is_rounded_to_each_currency_minor_unit():
    # Float sums leave tails: 0.1 + 0.2 is 0.30000000000000004.
    view, _ = view_with({"USD": 0.1 + 0.2, "JPY": 1500.4}, {})

    snapshot = await view.account(AccountId("A"))

    assert snapshot is not None
    assert snapshot.cash == {"USD": Decimal("0.30"), "JPY": Decimal("1500")}
    assert snapshot.base_currency == "EUR"


async def test_positions_are_by_symbol_and_flat_ones_are_left_out():
    view, _ = view_with({}, {"AAPL": 150.0, "MSFT": 0.0, "SAP": -20.0})

    snapshot = await view.account(AccountId("A"))

    assert snapshot is not None
    assert snapshot.positions == {"AAPL": Decimal(150), "SAP": Decimal(-20)}


async def test_an_unknown_account_is_none():
    view, _ = view_with({}, {})

    assert await view.account(AccountId("nobody")) is None


async def test_a_quote_is_on_the_tick_grid_and_none_before_any_price():
    view, prices = view_with({}, {})
    aapl = MASTER.symbol_index["AAPL"]

    before = await view.quote("AAPL")
    prices.apply(make_batch([aapl], bid=[272.5], ask=[272.52]))
    after = await view.quote("AAPL")

    assert before is None
    assert after is not None
    assert (after.bid, after.ask, after.last) == (Decimal("272.50"), Decimal("272.52"), None)
    assert after.reference_price == Decimal("272.51")


async def test_an_unknown_symbol_has_no_quote():
    view, _ = view_with({}, {})

    assert await view.quote("NOPE") is None
