"""The positions file: account records as JSON lines (the truth until the ledger exists).

One JSON object per line::

    {"account": "ACC-1", "base_currency": "USD", "version": 12,
     "cash": {"USD": 250000.0},
     "positions": {"AAPL": {"quantity": 100, "avg_cost": 190.5}}}

Position fields default to 0 (``realised_pnl``, ``commission``,
``day_trade_value``); ``day_open_quantity`` defaults to ``quantity``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import orjson

from gateway.errors import SettingsError
from portfolio.store import AccountRecord
from portfolio.types import AccountId, PositionState

__all__ = ["load_positions_file"]

_KEY: Final = "TICKGATE_PORTFOLIO_POSITIONS_FILE"


def load_positions_file(path: Path) -> dict[AccountId, AccountRecord]:
    """Parse the file; errors name the setting, the file and the line."""
    try:
        # Lines end at "\n" only: str.splitlines() would also split at
        # separators such as U+2028 that JSON allows inside strings.
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as e:
        raise SettingsError(_KEY, f"cannot read {path}: {e}") from e
    records: dict[AccountId, AccountRecord] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = _record(orjson.loads(line))
        except (orjson.JSONDecodeError, ValueError, TypeError, KeyError) as e:
            raise SettingsError(_KEY, f"{path} line {number}: {e}") from e
        if record.account in records:
            raise SettingsError(_KEY, f"{path} line {number}: account {record.account} repeats")
        records[record.account] = record
    return records


def _record(obj: object) -> AccountRecord:
    if not isinstance(obj, dict):
        raise ValueError("each line must be a JSON object")
    positions = {}
    for symbol, fields in _object(obj.get("positions", {}), "positions").items():
        fields = _object(fields, f"position {symbol}")
        quantity = _number(fields["quantity"], "quantity")
        positions[symbol] = PositionState(
            quantity=quantity,
            avg_cost=_number(fields.get("avg_cost", 0.0), "avg_cost"),
            realised_pnl=_number(fields.get("realised_pnl", 0.0), "realised_pnl"),
            commission=_number(fields.get("commission", 0.0), "commission"),
            day_open_quantity=_number(
                fields.get("day_open_quantity", quantity), "day_open_quantity"
            ),
            day_trade_value=_number(fields.get("day_trade_value", 0.0), "day_trade_value"),
        )
    version = obj.get("version", 0)
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ValueError(f"version must be a non-negative integer, was {version!r}")
    account, base = obj["account"], obj["base_currency"]
    if not isinstance(account, str) or not account or not isinstance(base, str):
        raise ValueError("account and base_currency must be non-empty strings")
    return AccountRecord(
        account=AccountId(account),
        base_currency=base,
        version=version,
        cash={c: _number(a, f"cash {c}") for c, a in _object(obj.get("cash", {}), "cash").items()},
        positions=positions,
    )


def _object(value: object, name: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be a JSON object")
    return value


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a number, was {value!r}")
    return float(value)
