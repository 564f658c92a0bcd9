from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orders.commands import (
    CancelOrder,
    SubmitOrder,
    SubmitPayment,
    command_from_wire,
    command_to_wire,
)
from orders.errors import CommandDecodeError
from orders.types import (
    AccountId,
    IdempotencyKey,
    OrderType,
    PaymentKind,
    PrincipalId,
    Side,
    TimeInForce,
    TraceId,
    order_id_for,
    payment_id_for,
    transfer_id_for,
)

TRANSFER = transfer_id_for(PrincipalId("svc-oms"), IdempotencyKey("key-1"))
HEAD = (TRANSFER, TraceId("ab" * 16), PrincipalId("svc-oms"), AccountId("DEMO-0001"), 17)


def make_order(**changes):
    fields = {
        "order_id": order_id_for(TRANSFER),
        "symbol": "AAPL",
        "side": Side.BUY,
        "quantity": Decimal("100"),
        "order_type": OrderType.LIMIT,
        "limit_price": Decimal("187.25"),
        "time_in_force": TimeInForce.DAY,
        "client_order_id": None,
    } | changes
    return SubmitOrder(*HEAD, **fields)


def test_transfer_id_is_deterministic_per_principal_and_key():
    first = transfer_id_for(PrincipalId("svc"), IdempotencyKey("k"))

    assert first == transfer_id_for(PrincipalId("svc"), IdempotencyKey("k"))
    assert first != transfer_id_for(PrincipalId("svc2"), IdempotencyKey("k"))
    assert first != transfer_id_for(PrincipalId("svc"), IdempotencyKey("k2"))


def test_transfer_id_separates_principal_from_key():
    assert transfer_id_for(PrincipalId("a"), IdempotencyKey("bc")) != transfer_id_for(
        PrincipalId("ab"), IdempotencyKey("c")
    )


def test_order_and_payment_ids_name_their_transfer():
    assert order_id_for(TRANSFER) == f"ord_{TRANSFER}"
    assert payment_id_for(TRANSFER) == f"pay_{TRANSFER}"


@pytest.mark.parametrize(
    "command",
    [
        make_order(),
        make_order(order_type=OrderType.MARKET, limit_price=None, client_order_id="c-1"),
        SubmitPayment(
            *HEAD,
            payment_id=payment_id_for(TRANSFER),
            kind=PaymentKind.WITHDRAWAL,
            amount=Decimal("2500.00"),
            currency="USD",
            reference="rent",
        ),
        CancelOrder(*HEAD, order_id=order_id_for(TRANSFER)),
    ],
)
def test_every_command_survives_the_wire(command):
    assert command_from_wire(command_to_wire(command)) == command


def test_decimals_travel_as_plain_strings_never_exponents():
    wire = command_to_wire(make_order(quantity=Decimal("1E+2"), limit_price=Decimal("0.0000005")))

    assert wire["quantity"] == "100"
    assert wire["limit_price"] == "0.0000005"


@given(st.decimals(allow_nan=False, allow_infinity=False, places=7, min_value=0, max_value=10**9))
def test_limit_price_round_trips_exactly(price):
    command = make_order(limit_price=price)

    assert command_from_wire(command_to_wire(command)).limit_price == price


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"v": 2}, "unsupported_version"),
        ({"v": True}, "bad_field"),
        ({"type": "order.amend"}, "bad_field"),
        ({"side": "short"}, "bad_field"),
        ({"quantity": 100}, "bad_field"),
        ({"quantity": "lots"}, "bad_field"),
        ({"quantity": "NaN"}, "bad_field"),
        ({"ts_accepted": "17"}, "bad_field"),
    ],
)
def test_malformed_fields_are_refused_with_a_reason(change, reason):
    wire = command_to_wire(make_order()) | change

    with pytest.raises(CommandDecodeError) as caught:
        command_from_wire(wire)

    assert caught.value.reason == reason


def test_a_missing_field_is_named():
    wire = command_to_wire(make_order())
    del wire["symbol"]

    with pytest.raises(CommandDecodeError, match="symbol") as caught:
        command_from_wire(wire)

    assert caught.value.reason == "missing_field"


def test_a_non_object_is_refused():
    with pytest.raises(CommandDecodeError) as caught:
        command_from_wire([1, 2])

    assert caught.value.reason == "not_an_object"
