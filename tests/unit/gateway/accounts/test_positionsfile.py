"""The positions file: account records as JSON lines."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from gateway.accounts.positionsfile import load_positions_file
from gateway.app import build_gateway
from gateway.errors import SettingsError
from portfolio.store import AccountRecord
from portfolio.types import AccountId, PositionState
from tests.builders import make_settings

KEY = "TICKGATE_PORTFOLIO_POSITIONS_FILE"

FULL_LINE = (
    '{"account": "ACC-1", "base_currency": "USD", "version": 12,'
    ' "cash": {"USD": 250000.0, "EUR": -1200.5},'
    ' "positions": {"AAPL": {"quantity": 100, "avg_cost": 190.5, "realised_pnl": 12.25,'
    ' "commission": 1.5, "day_open_quantity": 80, "day_trade_value": 3810.0},'
    ' "MSFT": {"quantity": -40, "avg_cost": 410.0}}}'
)


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "positions.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_a_full_line_becomes_an_account_record(tmp_path: Path) -> None:
    path = write(tmp_path, FULL_LINE)

    records = load_positions_file(path)

    assert records == {
        AccountId("ACC-1"): AccountRecord(
            account=AccountId("ACC-1"),
            base_currency="USD",
            version=12,
            cash={"USD": 250000.0, "EUR": -1200.5},
            positions={
                "AAPL": PositionState(100.0, 190.5, 12.25, 1.5, 80.0, 3810.0),
                "MSFT": PositionState(-40.0, 410.0, 0.0, 0.0, -40.0, 0.0),
            },
        )
    }


def test_numbers_are_read_as_floats(tmp_path: Path) -> None:
    path = write(tmp_path, FULL_LINE)

    record = load_positions_file(path)[AccountId("ACC-1")]

    assert type(record.positions["AAPL"].quantity) is float
    assert type(record.cash["USD"]) is float


def test_day_open_quantity_defaults_to_the_quantity(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"account": "A", "base_currency": "USD", "positions": {"X": {"quantity": -7.5}}}',
    )

    state = load_positions_file(path)[AccountId("A")].positions["X"]

    assert state.day_open_quantity == -7.5


def test_other_position_fields_default_to_zero(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"account": "A", "base_currency": "USD", "positions": {"X": {"quantity": 3}}}',
    )

    state = load_positions_file(path)[AccountId("A")].positions["X"]

    assert (state.avg_cost, state.realised_pnl, state.commission, state.day_trade_value) == (
        0.0,
        0.0,
        0.0,
        0.0,
    )


def test_an_account_without_cash_or_positions_has_empty_ones(tmp_path: Path) -> None:
    path = write(tmp_path, '{"account": "A", "base_currency": "EUR", "version": 3}')

    record = load_positions_file(path)[AccountId("A")]

    assert (record.cash, record.positions) == ({}, {})


def test_each_line_is_one_account_keyed_by_its_id(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"account": "A", "base_currency": "USD", "version": 1}',
        '{"account": "B", "base_currency": "GBP", "version": 2}',
        '{"account": "C", "base_currency": "JPY", "version": 3}',
    )

    records = load_positions_file(path)

    assert {a: (r.base_currency, r.version) for a, r in records.items()} == {
        "A": ("USD", 1),
        "B": ("GBP", 2),
        "C": ("JPY", 3),
    }


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "",
        '{"account": "A", "base_currency": "USD"}',
        "   ",
        '{"account": "B", "base_currency": "USD"}',
    )

    records = load_positions_file(path)

    assert sorted(records) == ["A", "B"]


def test_an_empty_file_holds_no_accounts(tmp_path: Path) -> None:
    path = write(tmp_path)

    records = load_positions_file(path)

    assert records == {}


def test_a_file_with_crlf_line_endings_loads(tmp_path: Path) -> None:
    path = tmp_path / "positions.jsonl"
    path.write_bytes(
        b'{"account": "A", "base_currency": "USD"}\r\n{"account": "B", "base_currency": "USD"}\r\n'
    )

    records = load_positions_file(path)

    assert sorted(records) == ["A", "B"]


def test_a_line_separator_inside_a_json_string_does_not_split_the_line(tmp_path: Path) -> None:
    # JSON allows U+2028 unescaped in strings (orjson writes it raw); JSON lines
    # are separated by "\n" only.
    path = write(tmp_path, '{"account": "A\u2028B", "base_currency": "USD"}')

    records = load_positions_file(path)

    assert list(records) == ["A\u2028B"]


# --- errors name the setting, the file and the line ---------------------------


def test_bad_json_raises_naming_the_setting_and_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"account": "A", "base_currency": "USD"}',
        '{"account": "B", "base_currency": ',
    )

    with pytest.raises(SettingsError) as caught:
        load_positions_file(path)

    assert caught.value.key == KEY
    assert f"{path} line 2:" in str(caught.value)


def test_a_line_that_is_not_an_object_raises_naming_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, '["A", "USD"]')

    with pytest.raises(SettingsError) as caught:
        load_positions_file(path)

    assert caught.value.key == KEY
    assert f"{path} line 1:" in str(caught.value)


def test_a_missing_account_field_raises_naming_the_setting_and_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"account": "A", "base_currency": "USD"}',
        '{"account": "B", "base_currency": "USD"}',
        '{"base_currency": "USD", "version": 4}',
    )

    with pytest.raises(SettingsError) as caught:
        load_positions_file(path)

    assert caught.value.key == KEY
    assert f"{path} line 3:" in str(caught.value)
    assert "account" in caught.value.message


def test_a_missing_base_currency_raises_naming_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, '{"account": "A"}')

    with pytest.raises(SettingsError) as caught:
        load_positions_file(path)

    assert f"{path} line 1:" in str(caught.value)


def test_a_position_without_quantity_raises_naming_the_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"account": "A", "base_currency": "USD", "positions": {"X": {"avg_cost": 1.0}}}',
    )

    with pytest.raises(SettingsError) as caught:
        load_positions_file(path)

    assert f"{path} line 1:" in str(caught.value)


def test_a_repeated_account_raises_naming_the_line_of_the_repeat(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '{"account": "A", "base_currency": "USD"}',
        '{"account": "B", "base_currency": "USD"}',
        "",
        '{"account": "A", "base_currency": "EUR"}',
    )

    with pytest.raises(SettingsError) as caught:
        load_positions_file(path)

    assert caught.value.key == KEY
    assert f"{path} line 4: account A repeats" in str(caught.value)


def test_a_missing_file_raises_naming_the_setting_and_the_file(tmp_path: Path) -> None:
    path = tmp_path / "absent.jsonl"

    with pytest.raises(SettingsError) as caught:
        load_positions_file(path)

    assert caught.value.key == KEY
    assert f"cannot read {path}" in str(caught.value)


def test_a_directory_in_place_of_the_file_raises_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError) as caught:
        load_positions_file(tmp_path)

    assert caught.value.key == KEY
    assert f"cannot read {tmp_path}" in str(caught.value)


def test_a_file_that_is_not_utf8_raises_naming_the_setting(tmp_path: Path) -> None:
    path = tmp_path / "positions.jsonl"
    path.write_bytes(b'{"account": "\xff\xfe", "base_currency": "USD"}\n')

    with pytest.raises(SettingsError) as caught:
        load_positions_file(path)

    assert caught.value.key == KEY
    assert f"cannot read {path}" in str(caught.value)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"account": "A", "base_currency": "USD", "version": 1.9}', "version"),
        ('{"account": "A", "base_currency": "USD", "version": true}', "version"),
        ('{"account": "A", "base_currency": "USD", "version": -1}', "version"),
        ('{"account": "A", "base_currency": "USD", "cash": {"USD": "100"}}', "cash USD"),
        (
            '{"account": "A", "base_currency": "USD", "positions": {"X": {"quantity": "nan"}}}',
            "quantity",
        ),
        (
            '{"account": "A", "base_currency": "USD", "positions": {"X": {"quantity": 1e999}}}',
            "line 1",
        ),
        ('{"account": "", "base_currency": "USD"}', "account"),
        ('{"account": "A", "base_currency": "USD", "positions": []}', "positions"),
    ],
)
def test_ill_typed_values_are_refused_naming_the_field_and_line(
    tmp_path: Path, line: str, problem: str
) -> None:
    path = write(tmp_path, line)

    with pytest.raises(SettingsError) as raised:
        load_positions_file(path)

    assert raised.value.key == KEY
    assert "line 1" in raised.value.message
    assert problem in raised.value.message


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"positions": {"NOPE": {"quantity": 1}}}, "unknown instrument 'NOPE'"),
        ({"base_currency": "CHF"}, "unknown base currency 'CHF'"),
        ({"cash": {"XXX": 5.0}}, "unknown cash currency 'XXX'"),
    ],
)
def test_gateway_refuses_a_file_naming_what_the_master_lacks(
    tmp_path: Path, fields: dict[str, object], named: str
) -> None:
    record = {"account": "ACC-9", "base_currency": "USD", "positions": {}} | fields
    path = write(tmp_path, orjson.dumps(record).decode())
    settings = make_settings(tmp_path, portfolio={"positions_file": path})

    with pytest.raises(SettingsError) as caught:
        build_gateway(settings)

    assert caught.value.key == KEY
    assert f"account ACC-9: {named}" in str(caught.value)
