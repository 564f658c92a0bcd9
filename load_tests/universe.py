"""A synthetic instrument universe for benchmarks, in the instruments-file format.

The file is the CSV documented in docs/operations.md (``TICKGATE_FEED_
INSTRUMENTS_FILE``): equities in four currencies and eleven sectors, and
the FX pairs every currency needs against USD. Tick weights follow a
power law, as real activity does, so a few names tick far more often.
Seeded: the same arguments always write the same file.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path
from typing import Final

__all__ = ["COLUMNS", "write_universe"]

COLUMNS: Final = (
    "id",
    "symbol",
    "type",
    "currency",
    "tick_size",
    "lot_size",
    "multiplier",
    "sector",
    "underlying",
    "option_type",
    "strike",
    "expiry",
    "base_currency",
    "ref_price",
    "volatility",
    "weight",
)
_SECTORS: Final = (
    "technology",
    "financials",
    "health_care",
    "energy",
    "industrials",
    "consumer_staples",
    "consumer_discretionary",
    "materials",
    "utilities",
    "communication",
    "real_estate",
)
_FX: Final = (
    ("EURUSD", "USD", "EUR", 1.16),
    ("GBPUSD", "USD", "GBP", 1.31),
    ("USDJPY", "JPY", "USD", 155.0),
)


def write_universe(path: Path, instruments: int, *, seed: int = 7) -> list[str]:
    """Write ``instruments`` instruments to ``path``; return their symbols."""
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    for symbol, quote, base, price in _FX:
        rows.append(_row(symbol, "fx", quote, "fx", f"{price:.5f}", "0.08", "5", base=base))
    for k in range(instruments - len(rows)):
        currency = rng.choices(("USD", "EUR", "GBP", "JPY"), weights=(6, 2, 1, 1))[0]
        price = rng.lognormvariate(4.0, 0.8) * (100 if currency == "JPY" else 1)
        weight = 1.0 / (k + 1) ** 0.6  # power-law activity
        rows.append(
            _row(
                f"S{k:05d}",
                "equity",
                currency,
                _SECTORS[k % len(_SECTORS)],
                f"{price:.2f}",
                f"{rng.uniform(0.15, 0.6):.2f}",
                f"{weight * 100:.4f}",
            )
        )
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return [row["symbol"] for row in rows]


def _row(
    symbol: str,
    kind: str,
    currency: str,
    sector: str,
    price: str,
    volatility: str,
    weight: str,
    *,
    base: str = "",
) -> dict[str, str]:
    tick = "0.00001" if kind == "fx" else ("1" if currency == "JPY" else "0.01")
    return {
        "id": f"{symbol}.BENCH",
        "symbol": symbol,
        "type": kind,
        "currency": currency,
        "tick_size": tick,
        "lot_size": "1",
        "multiplier": "1",
        "sector": sector,
        "underlying": "",
        "option_type": "",
        "strike": "",
        "expiry": "",
        "base_currency": base,
        "ref_price": price,
        "volatility": volatility,
        "weight": weight,
    }
