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
        lines = path.read_text(encoding="utf-8").splitlines()
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
    for symbol, fields in dict(obj.get("positions", {})).items():
        quantity = float(fields["quantity"])
        positions[str(symbol)] = PositionState(
            quantity=quantity,
            avg_cost=float(fields.get("avg_cost", 0.0)),
            realised_pnl=float(fields.get("realised_pnl", 0.0)),
            commission=float(fields.get("commission", 0.0)),
            day_open_quantity=float(fields.get("day_open_quantity", quantity)),
            day_trade_value=float(fields.get("day_trade_value", 0.0)),
        )
    return AccountRecord(
        account=AccountId(str(obj["account"])),
        base_currency=str(obj["base_currency"]),
        version=int(obj.get("version", 0)),
        cash={str(c): float(a) for c, a in dict(obj.get("cash", {})).items()},
        positions=positions,
    )
