"""Loading the instrument master: the packaged demo universe or a configured file."""

from __future__ import annotations

import datetime as dt
from importlib import resources
from pathlib import Path

from gateway.errors import SettingsError
from pricing.errors import ReferenceDataError
from pricing.instruments import Instrument, InstrumentMaster, InstrumentType, parse_instrument_csv

__all__ = ["instrument_json", "load_master"]

_KEY = "TICKGATE_FEED_INSTRUMENTS_FILE"


def load_master(path: Path | None = None) -> InstrumentMaster:
    """Parse the master from ``path``, or the one shipped in ``pricing/data``.

    A file that cannot be read or parsed raises ``SettingsError`` naming
    ``TICKGATE_FEED_INSTRUMENTS_FILE``.
    """
    if path is None:
        text = resources.files("pricing").joinpath("data/instruments.csv").read_text("utf-8")
        return parse_instrument_csv(text)
    try:
        return parse_instrument_csv(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise SettingsError(_KEY, f"cannot read {path}: {e}") from e
    except ReferenceDataError as e:
        raise SettingsError(_KEY, f"{path}: {e}") from e


def instrument_json(instrument: Instrument) -> dict[str, object]:
    """The public JSON form of an instrument (CLI listing and ``/v1/instruments``)."""
    i = instrument
    return {
        "id": i.instrument_id,
        "symbol": i.symbol,
        "type": i.type.value,
        "currency": i.currency,
        "tick_size": str(i.tick_size),
        "lot_size": str(i.lot_size),
        "multiplier": str(i.multiplier),
        "sector": i.sector,
        "underlying": i.underlying,
        "option_type": i.option_type.value if i.option_type else None,
        "strike": str(i.strike) if i.strike is not None else None,
        "expiry": i.expiry.isoformat() if i.expiry else None,
        "expires_at": _utc_iso(i.expires_at),
        "base_currency": i.base_currency,
        "dividend_yield": i.dividend_yield if i.type is InstrumentType.EQUITY else None,
    }


def _utc_iso(moment: dt.datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%SZ")
