from decimal import Decimal

import pytest

from orders.amounts import DecimalTextError, decimals_of, is_multiple, parse_decimal_text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("100", Decimal(100)),
        ("187.25", Decimal("187.25")),
        ("0.00005", Decimal("0.00005")),
        ("007", Decimal(7)),
        ("0", Decimal(0)),
        ("999999999999999.999999999999", Decimal("999999999999999.999999999999")),
    ],
)
def test_plain_decimal_strings_parse_exactly(text, expected):
    assert parse_decimal_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1e3",
        "1E3",
        "NaN",
        "nan",
        "Infinity",
        "-1",
        "+1",
        " 1",
        "1 ",
        ".5",
        "5.",
        "1,5",
        "0x10",
        "1_000",
        "١٢",
        "1.2.3",
    ],
)
def test_malformed_decimal_strings_are_refused_as_malformed(text):
    with pytest.raises(DecimalTextError) as caught:
        parse_decimal_text(text)

    assert caught.value.is_range is False


@pytest.mark.parametrize("text", ["1" * 16, "1." + "1" * 13, "9" * 400])
def test_decimal_strings_with_too_many_digits_are_refused_as_out_of_range(text):
    with pytest.raises(DecimalTextError) as caught:
        parse_decimal_text(text)

    assert caught.value.is_range is True


def test_leading_zeros_do_not_count_as_integer_digits():
    assert parse_decimal_text("0" * 20 + "5") == Decimal(5)


@pytest.mark.parametrize(
    ("value", "places"), [("100", 0), ("1.50", 1), ("0.00005", 5), ("1E+2", 0), ("2.000", 0)]
)
def test_decimals_of_ignores_trailing_zeros(value, places):
    assert decimals_of(Decimal(value)) == places


@pytest.mark.parametrize(
    ("value", "step", "expected"),
    [
        ("187.25", "0.01", True),
        ("187.255", "0.01", False),
        ("7055.25", "0.25", True),
        ("7055.10", "0.25", False),
        ("3000", "1000", True),
        ("2500", "1000", False),
        ("1.0000005", "0.0000005", True),
        ("999999999999999.999999999999", "0.000000000001", True),
    ],
)
def test_is_multiple_is_exact(value, step, expected):
    assert is_multiple(Decimal(value), Decimal(step)) is expected
