"""Pre-trade checks, one behaviour each, on account and market state built in the test.

T0 is 2027-01-15 UTC. Limits: a 10% band, USD 1,000,000 notional, 1,000 units
per position unless a test says otherwise.
"""

from dataclasses import replace
from decimal import Decimal

import pytest

from orders.pending import PendingBook, Reservation
from orders.problems import Problem
from orders.requests import OrderRequest, PaymentRequest, validate_order, validate_payment
from orders.risk import AccountSnapshot, MarketQuote, check_order, check_payment
from orders.settings import RiskLimits
from orders.trading import TradingState
from orders.types import AccountId, PaymentKind, Side, TransferId
from tests.orderdoubles import ABSENT, T0, master, order_json, payment_json

D = Decimal
TRANSFER = TransferId("t-new")
LIMITS = RiskLimits(max_position_quantity=D(1_000))


def account(cash=None, positions=None) -> AccountSnapshot:
    return AccountSnapshot(
        account_id=AccountId("ACC-1"),
        base_currency="USD",
        cash={c: D(v) for c, v in (cash or {"USD": "1000000"}).items()},
        positions={s: D(q) for s, q in (positions or {}).items()},
    )


def quote(last="100.00", bid="99.99", ask="100.01", *, is_stale=False) -> MarketQuote:
    return MarketQuote(
        last=None if last is None else D(last),
        bid=None if bid is None else D(bid),
        ask=None if ask is None else D(ask),
        is_stale=is_stale,
    )


def order(**changes) -> OrderRequest:
    result = validate_order(order_json(**changes), master())
    assert isinstance(result, OrderRequest), result
    return result


def check(
    request: OrderRequest | None = None,
    snapshot: AccountSnapshot | None = None,
    market: MarketQuote | None = None,
    *,
    state=TradingState.ACTIVE,
    limits=LIMITS,
    pending: PendingBook | None = None,
    has_account=True,
    has_quote=True,
):
    return check_order(
        request or order(),
        TRANSFER,
        (snapshot or account()) if has_account else None,
        (market or quote()) if has_quote else None,
        state=state,
        limits=limits,
        pending=pending or PendingBook(10**12),
        now_ns=T0,
    )


def code(result) -> str | None:
    return result.code if isinstance(result, Problem) else None


def test_an_order_within_every_limit_is_allowed_and_reserves_its_notional():
    result = check(order(quantity="10", limit_price="100.00"))

    assert result == Reservation(
        TRANSFER, AccountId("ACC-1"), "USD", D("1000.00"), "AAPL", Side.BUY, D(10)
    )


def test_halted_trading_refuses_every_order():
    assert code(check(state=TradingState.HALTED)) == "trading_halted"


def test_an_unknown_account_is_refused():
    assert code(check(has_account=False)) == "unknown_account"


def test_reducing_accepts_a_sell_that_shrinks_a_long():
    result = check(
        order(side="sell", quantity="50"),
        account(positions={"AAPL": "100"}),
        state=TradingState.REDUCING,
    )

    assert isinstance(result, Reservation)


@pytest.mark.parametrize(
    ("side", "quantity", "position"),
    [("buy", "10", "100"), ("sell", "150", "100"), ("sell", "10", "0"), ("buy", "10", "0")],
    ids=["grows-long", "flips-to-short", "opens-short", "opens-long"],
)
def test_reducing_refuses_an_order_that_does_not_shrink_the_position(side, quantity, position):
    result = check(
        order(side=side, quantity=quantity),
        account(positions={"AAPL": position}),
        state=TradingState.REDUCING,
    )

    assert code(result) == "trading_reducing_only"


def test_reducing_counts_pending_orders_on_the_same_side():
    pending = PendingBook(10**12)
    pending.reserve(
        Reservation(TransferId("t-old"), AccountId("ACC-1"), "USD", D(0), "AAPL", Side.SELL, D(80)),
        T0,
    )

    result = check(
        order(side="sell", quantity="30"),
        account(positions={"AAPL": "100"}),
        state=TradingState.REDUCING,
        pending=pending,
    )

    assert code(result) == "trading_reducing_only"  # 100 - 80 - 30 = -10 would flip


def test_a_blocked_symbol_is_not_tradable():
    limits = replace(LIMITS, blocked_symbols=frozenset({"AAPL"}))

    assert code(check(limits=limits)) == "instrument_not_tradable"


def test_an_instrument_past_its_expiry_is_not_tradable():
    # AAPL261218C240 expired on 2026-12-18, before T0.
    request = order(symbol="AAPL261218C240", quantity="1", limit_price="33.00")

    assert code(check(request, market=quote("33.00", "32.90", "33.10"))) == (
        "instrument_not_tradable"
    )


def test_an_instrument_without_a_quote_has_no_reference_price():
    assert code(check(has_quote=False)) == "no_reference_price"


def test_a_one_sided_quote_without_a_last_price_has_no_reference_price():
    assert code(check(market=quote(last=None, bid="99.00", ask=None))) == "no_reference_price"


def test_a_stale_price_is_refused():
    assert code(check(market=quote(is_stale=True))) == "reference_price_stale"


@pytest.mark.parametrize(
    ("limit_price", "expected"),
    [
        ("110.00", None),
        ("90.00", None),
        ("110.01", "price_outside_band"),
        ("89.99", "price_outside_band"),
    ],
)
def test_a_limit_price_beyond_the_band_around_the_last_price_is_refused(limit_price, expected):
    assert code(check(order(limit_price=limit_price, quantity="1"))) == expected


def test_without_a_last_price_the_band_is_around_the_mid():
    # mid of 90 / 110 is 100: 110.01 is 10.01% away.
    result = check(order(limit_price="110.01", quantity="1"), market=quote(None, "90.00", "110.00"))

    assert code(result) == "price_outside_band"


def test_an_order_over_the_notional_limit_is_refused():
    big = replace(LIMITS, max_position_quantity=D(100_000))
    request = order(quantity="10001", limit_price="100.00")  # USD 1,000,100

    assert code(check(request, limits=big)) == "notional_limit_exceeded"


def test_the_notional_counts_the_contract_multiplier():
    # ESH7: multiplier 50. 3 x 7118.50 x 50 = USD 1,067,775 > 1,000,000.
    request = order(symbol="ESH7", quantity="3", limit_price="7118.50")

    assert code(check(request, market=quote("7118.50", "7118.25", "7118.75"))) == (
        "notional_limit_exceeded"
    )


def test_an_order_in_a_currency_without_a_notional_limit_is_refused():
    limits = replace(LIMITS, max_order_notional={"USD": D(1_000_000)})
    request = order(symbol="ASML", quantity="1", limit_price="902.30")

    result = check(
        request, account(cash={"EUR": "10000"}), quote("902.30", None, None), limits=limits
    )

    assert code(result) == "notional_limit_exceeded"


def test_an_order_beyond_the_position_limit_counting_pending_buys_is_refused():
    pending = PendingBook(10**12)
    pending.reserve(
        Reservation(
            TransferId("t-old"), AccountId("ACC-1"), "USD", D(5000), "AAPL", Side.BUY, D(50)
        ),
        T0,
    )

    result = check(
        order(quantity="60", limit_price="100.00"),
        account(positions={"AAPL": "900"}),
        pending=pending,
    )

    assert code(result) == "position_limit_exceeded"  # 900 + 50 + 60 = 1010 > 1000


def test_a_per_symbol_position_limit_overrides_the_default():
    limits = replace(LIMITS, position_limits={"AAPL": D(5)})

    assert code(check(order(quantity="6"), limits=limits)) == "position_limit_exceeded"


def test_an_order_reducing_a_position_above_the_limit_is_allowed():
    result = check(order(side="sell", quantity="100"), account(positions={"AAPL": "5000"}))

    assert isinstance(result, Reservation)


def test_a_buy_in_a_currency_the_account_does_not_hold_is_refused_without_fx():
    # ASML trades in EUR; the account holds only USD (its base currency).
    request = order(symbol="ASML", quantity="1", limit_price="902.30")

    result = check(request, account(cash={"USD": "1000000"}), quote("902.30"))

    assert code(result) == "currency_not_held"


def test_a_buy_in_a_foreign_currency_the_account_holds_reserves_that_currency():
    request = order(symbol="ASML", quantity="2", limit_price="902.30")

    result = check(request, account(cash={"USD": "0", "EUR": "5000"}), quote("902.30"))

    assert isinstance(result, Reservation)
    assert (result.currency, result.cash) == ("EUR", D("1804.60"))


def test_a_buy_beyond_the_cash_is_insufficient_buying_power():
    result = check(order(quantity="11", limit_price="100.00"), account(cash={"USD": "1000"}))

    assert code(result) == "insufficient_buying_power"


def test_buying_power_counts_pending_reservations():
    pending = PendingBook(10**12)
    pending.reserve(Reservation(TransferId("t-old"), AccountId("ACC-1"), "USD", D(1500)), T0)

    result = check(order(quantity="10"), account(cash={"USD": "2000"}), pending=pending)

    assert code(result) == "insufficient_buying_power"  # 2000 - 1500 < 1000


def test_a_market_buy_is_priced_at_the_ask():
    # 10 x ask 100.50 = 1005 > 1004 cash; at the last price (100) it would fit.
    request = order(type="market", limit_price=ABSENT, quantity="10")

    result = check(request, account(cash={"USD": "1004"}), quote("100.00", "99.50", "100.50"))

    assert code(result) == "insufficient_buying_power"


def test_a_sell_that_reduces_a_long_needs_no_cash():
    result = check(
        order(side="sell", quantity="10"), account(cash={"USD": "0"}, positions={"AAPL": "10"})
    )

    assert isinstance(result, Reservation)
    assert result.cash == 0


def test_the_part_of_a_sell_that_opens_a_short_is_secured_in_full():
    # Long 4, sell 10: 6 open a short at 100 = 600 needed, 599 available.
    result = check(
        order(side="sell", quantity="10"), account(cash={"USD": "599"}, positions={"AAPL": "4"})
    )

    assert code(result) == "insufficient_buying_power"


def payment(**changes) -> PaymentRequest:
    result = validate_payment(payment_json(**changes))
    assert isinstance(result, PaymentRequest), result
    return result


def check_pay(request, snapshot=None, pending=None, *, has_account=True):
    return check_payment(
        request,
        TRANSFER,
        (snapshot or account()) if has_account else None,
        pending=pending or PendingBook(10**12),
        now_ns=T0,
    )


def test_a_deposit_to_a_known_account_is_allowed_without_a_reservation():
    result = check_pay(payment(kind="deposit"))

    assert isinstance(result, Reservation)
    assert result.cash == 0


def test_a_payment_to_an_unknown_account_is_refused():
    assert code(check_pay(payment(), has_account=False)) == "unknown_account"


def test_a_withdrawal_within_the_cash_reserves_its_amount():
    result = check_pay(payment(kind="withdrawal", amount="2500.00"), account(cash={"USD": "2500"}))

    assert isinstance(result, Reservation)
    assert (result.currency, result.cash) == ("USD", D("2500.00"))


def test_a_withdrawal_beyond_the_cash_is_insufficient_funds():
    result = check_pay(payment(kind="withdrawal", amount="2500.01"), account(cash={"USD": "2500"}))

    assert code(result) == "insufficient_funds"


def test_a_withdrawal_counts_pending_reservations():
    pending = PendingBook(10**12)
    pending.reserve(Reservation(TransferId("t-old"), AccountId("ACC-1"), "USD", D(2000)), T0)

    result = check_pay(
        payment(kind="withdrawal", amount="600.00"), account(cash={"USD": "2500"}), pending
    )

    assert code(result) == "insufficient_funds"


def test_a_withdrawal_in_a_currency_not_held_is_insufficient_funds():
    result = check_pay(payment(kind="withdrawal", currency="JPY", amount="1"))

    assert code(result) == "insufficient_funds"
    assert payment(kind="withdrawal").kind is PaymentKind.WITHDRAWAL
