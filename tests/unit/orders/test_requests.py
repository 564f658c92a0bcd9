"""The request schemas and their validation: one test per problem code (and its field)."""

from decimal import Decimal
from typing import Any

import pytest

from orders.problems import Problem
from orders.requests import (
    ORDER_SCHEMA,
    OrderRequest,
    PaymentRequest,
    validate_order,
    validate_payment,
    validate_trading_state,
)
from orders.trading import TradingState
from orders.types import OrderType, PaymentKind, Side, TimeInForce
from tests.orderdoubles import ABSENT, master, order_json, payment_json


def order_problem(**changes) -> tuple[str, object]:
    result = validate_order(order_json(**changes), master())
    assert isinstance(result, Problem), result
    return result.code, result.extensions.get("field")


def payment_problem(**changes) -> tuple[str, object]:
    result = validate_payment(payment_json(**changes))
    assert isinstance(result, Problem), result
    return result.code, result.extensions.get("field")


def test_a_valid_limit_order_validates_into_typed_values():
    result = validate_order(order_json(client_order_id="c-1"), master())

    assert isinstance(result, OrderRequest)
    assert (result.symbol, result.side, result.quantity) == ("AAPL", Side.BUY, Decimal(10))
    assert (result.order_type, result.limit_price) == (OrderType.LIMIT, Decimal("100.00"))
    assert (result.time_in_force, result.client_order_id) == (TimeInForce.DAY, "c-1")
    assert result.instrument.currency == "USD"


def test_a_market_order_without_limit_price_validates():
    result = validate_order(order_json(type="market", limit_price=ABSENT), master())

    assert isinstance(result, OrderRequest)
    assert result.limit_price is None


def test_optional_fields_may_be_null():
    result = validate_order(
        order_json(type="market", limit_price=None, client_order_id=None), master()
    )

    assert isinstance(result, OrderRequest)
    assert result.client_order_id is None


def test_body_that_is_not_an_object_is_body_not_object():
    result = validate_order(["AAPL"], master())

    assert isinstance(result, Problem)
    assert result.code == "body_not_object"


def test_unknown_field_is_unknown_field():
    assert order_problem(stop_price="1") == ("unknown_field", "/stop_price")


def test_missing_required_field_is_missing_field():
    assert order_problem(side=ABSENT) == ("missing_field", "/side")


def test_null_in_a_required_field_is_wrong_type():
    assert order_problem(symbol=None) == ("wrong_type", "/symbol")


@pytest.mark.parametrize("value", [True, ["10"], {"v": "10"}])
def test_a_decimal_field_of_another_json_type_is_wrong_type(value):
    assert order_problem(quantity=value) == ("wrong_type", "/quantity")


@pytest.mark.parametrize("value", [10, Decimal("10.5"), Decimal("1E+3")])
def test_a_json_number_for_a_decimal_is_decimal_not_string(value):
    assert order_problem(quantity=value) == ("decimal_not_string", "/quantity")


@pytest.mark.parametrize("value", ["1e3", "NaN", "Infinity", "-5", "10 ", "", "0x10"])
def test_a_malformed_decimal_string_is_invalid_decimal(value):
    assert order_problem(quantity=value) == ("invalid_decimal", "/quantity")


@pytest.mark.parametrize("value", ["1" * 16, "1." + "0" * 13, "9" * 5000])
def test_a_huge_or_too_precise_decimal_is_decimal_out_of_range(value):
    assert order_problem(limit_price=value) == ("decimal_out_of_range", "/limit_price")


@pytest.mark.parametrize(
    ("field", "value"), [("side", "BUY"), ("type", "stop"), ("time_in_force", "fok")]
)
def test_an_enum_value_outside_the_set_is_invalid_value(field, value):
    assert order_problem(**{field: value}) == ("invalid_value", f"/{field}")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("account_id", "ACC 1"),
        ("account_id", "x" * 65),
        ("symbol", "AA PL"),
        ("client_order_id", "has space"),
        ("client_order_id", ""),
    ],
)
def test_a_string_outside_its_pattern_or_length_is_invalid_value(field, value):
    assert order_problem(**{field: value}) == ("invalid_value", f"/{field}")


def test_a_symbol_not_in_the_master_is_unknown_symbol():
    assert order_problem(symbol="NOPE") == ("unknown_symbol", "/symbol")


@pytest.mark.parametrize("field", ["quantity", "limit_price"])
def test_zero_is_not_positive(field):
    assert order_problem(**{field: "0"}) == ("not_positive", f"/{field}")


def test_a_quantity_off_the_lot_size_is_quantity_not_lot_multiple():
    # 7203 trades in lots of 100 in the master.
    assert order_problem(symbol="7203", quantity="150", limit_price="2500") == (
        "quantity_not_lot_multiple",
        "/quantity",
    )


def test_a_fractional_quantity_of_a_one_lot_instrument_is_quantity_not_lot_multiple():
    assert order_problem(quantity="10.5") == ("quantity_not_lot_multiple", "/quantity")


def test_a_price_off_the_tick_grid_is_price_off_tick():
    assert order_problem(limit_price="100.005") == ("price_off_tick", "/limit_price")


def test_a_price_on_a_quarter_tick_grid_passes():
    result = validate_order(
        order_json(symbol="ESZ6", quantity="1", limit_price="7055.25"), master()
    )

    assert isinstance(result, OrderRequest)


def test_a_limit_order_without_a_price_is_limit_price_required():
    assert order_problem(limit_price=ABSENT) == ("limit_price_required", "/limit_price")


def test_a_market_order_with_a_price_is_limit_price_forbidden():
    assert order_problem(type="market") == ("limit_price_forbidden", "/limit_price")


def test_fields_are_checked_in_schema_order():
    # Two bad fields: the first in schema order is reported.
    assert order_problem(side="x", account_id="bad id")[0] == "invalid_value"
    assert order_problem(side="x", account_id="bad id")[1] == "/account_id"


def test_a_valid_payment_validates_into_typed_values():
    result = validate_payment(payment_json(kind="withdrawal", reference="wire 42"))

    assert isinstance(result, PaymentRequest)
    assert (result.kind, result.amount, result.currency) == (
        PaymentKind.WITHDRAWAL,
        Decimal("2500.00"),
        "USD",
    )
    assert result.reference == "wire 42"


@pytest.mark.parametrize(
    ("currency", "amount"), [("JPY", "2500"), ("USD", "0.01"), ("BHD", "1.005"), ("EUR", "3.10")]
)
def test_amounts_within_the_currency_minor_unit_pass(currency, amount):
    assert isinstance(
        validate_payment(payment_json(currency=currency, amount=amount)), PaymentRequest
    )


@pytest.mark.parametrize(
    ("currency", "amount"), [("JPY", "2500.5"), ("USD", "1.005"), ("GBP", "0.001")]
)
def test_amounts_finer_than_the_minor_unit_are_too_many_decimals(currency, amount):
    assert payment_problem(currency=currency, amount=amount) == ("too_many_decimals", "/amount")


def test_an_unknown_iso_code_is_unknown_currency():
    assert payment_problem(currency="XYZ") == ("unknown_currency", "/currency")


@pytest.mark.parametrize("currency", ["usd", "US", "USDT"])
def test_a_currency_that_is_not_three_capitals_is_invalid_value(currency):
    assert payment_problem(currency=currency) == ("invalid_value", "/currency")


def test_a_zero_amount_is_not_positive():
    assert payment_problem(amount="0.00") == ("not_positive", "/amount")


def test_a_float_amount_is_decimal_not_string():
    assert payment_problem(amount=Decimal("2500.0")) == ("decimal_not_string", "/amount")


def test_a_reference_with_a_control_character_is_invalid_value():
    assert payment_problem(reference="a\nb") == ("invalid_value", "/reference")


def test_a_trading_state_request_validates():
    result = validate_trading_state({"state": "REDUCING", "reason": "vol spike"})

    assert not isinstance(result, Problem)
    assert (result.state, result.reason) == (TradingState.REDUCING, "vol spike")


def test_a_trading_state_outside_the_set_is_invalid_value():
    result = validate_trading_state({"state": "halted", "reason": "x"})

    assert isinstance(result, Problem)
    assert result.code == "invalid_value"


def test_the_json_schema_is_closed_and_requires_what_validation_requires():
    schema: Any = ORDER_SCHEMA.json_schema()

    assert schema["additionalProperties"] is False
    assert schema["required"] == [
        "account_id",
        "symbol",
        "side",
        "quantity",
        "type",
        "time_in_force",
    ]
    assert schema["properties"]["limit_price"]["type"] == ["string", "null"]
    assert schema["properties"]["quantity"]["pattern"] == r"^[0-9]+(\.[0-9]+)?$"


def test_the_schema_example_validates():
    assert isinstance(validate_order(dict(ORDER_SCHEMA.example), master()), OrderRequest)
