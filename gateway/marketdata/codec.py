"""Decoding JSON tick records into ``TickBatch`` rows.

The canonical record (the ``md.ticks`` value format, docs/operations.md) is::

    {"symbol": "AAPL", "ts_event": 1763700000000000000,
     "bid": 189.51, "ask": 189.53, "last": 189.52, "size": 100, "seq": 42}

``bid`` and ``ask`` travel together; ``last`` and ``size`` are optional; a
record carries a quote, a trade or both. A vendor feed maps its own field
names and timestamp unit onto these (``TickFields``).

Decoding checks structure only (JSON, an object, field types); value rules
(unknown symbol, negative, crossed) belong to ``PriceBook.validate``, so both
paths count rejections by the same reasons.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import numpy as np
import orjson

from pricing.pricebook import TickBatch

__all__ = ["CANONICAL_FIELDS", "DecodeError", "TickDecoder", "TickFields", "TickRows"]

_TS_UNIT_NS: Final = {"ns": 1, "us": 1_000, "ms": 1_000_000, "s": 1_000_000_000}
_NAN: Final = math.nan
_INT64_MIN: Final = -(2**63)
_INT64_MAX: Final = 2**63 - 1


class DecodeError(Exception):
    """A record that cannot be a tick; ``reason`` is ``bad_json`` or ``bad_record``."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class TickFields:
    """The record's name for each tick field, and its timestamp unit."""

    symbol: str = "symbol"
    bid: str = "bid"
    ask: str = "ask"
    last: str = "last"
    size: str = "size"
    ts_event: str = "ts_event"
    seq: str = "seq"
    ts_unit: str = "ns"

    def __post_init__(self) -> None:
        if self.ts_unit not in _TS_UNIT_NS:
            raise ValueError(f"ts_unit must be one of {sorted(_TS_UNIT_NS)}, was {self.ts_unit!r}")


CANONICAL_FIELDS: Final = TickFields()


class TickRows:
    """Decoded ticks accumulating into one batch."""

    __slots__ = ("_rows",)

    def __init__(self) -> None:
        self._rows: list[tuple[int, float, float, float, float, int, int, int]] = []

    def __len__(self) -> int:
        return len(self._rows)

    def append(self, row: tuple[int, float, float, float, float, int, int, int]) -> None:
        """Add one decoded row (see ``TickDecoder.decode``)."""
        self._rows.append(row)

    def to_batch(self) -> TickBatch:
        """Return the rows as a ``TickBatch`` and start over."""
        rows, self._rows = self._rows, []
        if not rows:
            return TickBatch.empty()
        ix, bid, ask, last, size, ts_event, ts_recv, seq = zip(*rows, strict=True)
        return TickBatch.from_columns(
            instrument_ix=np.array(ix, dtype=np.int64),
            bid=np.array(bid, dtype=np.float64),
            ask=np.array(ask, dtype=np.float64),
            last=np.array(last, dtype=np.float64),
            size=np.array(size, dtype=np.float64),
            ts_event=np.array(ts_event, dtype=np.int64),
            ts_recv=np.array(ts_recv, dtype=np.int64),
            source_seq=np.array(seq, dtype=np.int64),
        )


class TickDecoder:
    """Turn JSON records into rows ``(ix, bid, ask, last, size, ts_event, ts_recv, seq)``."""

    def __init__(self, symbol_index: Mapping[str, int], fields: TickFields = CANONICAL_FIELDS):
        self._index = symbol_index
        self._f = fields
        self._ts_scale = _TS_UNIT_NS[fields.ts_unit]

    @staticmethod
    def parse(raw: bytes | str) -> object:
        """Parse JSON; raise ``DecodeError("bad_json")``."""
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise DecodeError("bad_json", str(e)) from None

    def is_tick(self, obj: object) -> bool:
        """Whether ``obj`` looks like a tick (an object naming a symbol), not a control message."""
        return isinstance(obj, dict) and self._f.symbol in obj

    def decode(
        self, obj: object, ts_recv_ns: int, *, key_symbol: str | None = None, seq: int = -1
    ) -> tuple[int, float, float, float, float, int, int, int]:
        """Decode one parsed record; ``key_symbol`` is the symbol its transport key names.

        Raises ``DecodeError("bad_record")`` when a field is missing or of the
        wrong type. An unknown symbol decodes to index -1, which the
        PriceBook rejects as ``unknown_instrument``.
        """
        f = self._f
        if not isinstance(obj, dict):
            raise DecodeError(
                "bad_record", f"record must be a JSON object, was {type(obj).__name__}"
            )
        symbol = obj.get(f.symbol, key_symbol)
        if not isinstance(symbol, str) or not symbol:
            raise DecodeError("bad_record", f"{f.symbol} must be a non-empty string")
        if key_symbol is not None and symbol != key_symbol:
            raise DecodeError("bad_record", f"{f.symbol} {symbol!r} differs from the key")
        ts_event = obj.get(f.ts_event)
        if isinstance(ts_event, bool) or not isinstance(ts_event, int | float):
            raise DecodeError("bad_record", f"{f.ts_event} must be a number")
        ts_event_ns = _int64(ts_event * self._ts_scale, f.ts_event)
        record_seq = obj.get(f.seq, seq)
        if isinstance(record_seq, bool) or not isinstance(record_seq, int):
            raise DecodeError("bad_record", f"{f.seq} must be an integer")
        _int64(record_seq, f.seq)
        return (
            self._index.get(symbol, -1),
            _number(obj, f.bid),
            _number(obj, f.ask),
            _number(obj, f.last),
            _number(obj, f.size),
            ts_event_ns,
            ts_recv_ns,
            record_seq,
        )

    def symbol_of(self, obj: object) -> str | None:
        """The symbol a record names, if any (for logs and dead letters)."""
        if isinstance(obj, dict):
            symbol = obj.get(self._f.symbol)
            return symbol if isinstance(symbol, str) else None
        return None

    def seq_of(self, obj: object) -> int | None:
        """The feed sequence number a record carries, if any."""
        if isinstance(obj, dict):
            seq = obj.get(self._f.seq)
            if isinstance(seq, int) and not isinstance(seq, bool):
                return seq
        return None


def _int64(value: float, name: str) -> int:
    if isinstance(value, float) and not math.isfinite(value):
        raise DecodeError("bad_record", f"{name} must be finite")
    number = int(value)
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise DecodeError("bad_record", f"{name} is out of the 64-bit range")
    return number


def _number(obj: Mapping[str, object], name: str) -> float:
    value = obj.get(name)
    if value is None:
        return _NAN
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DecodeError("bad_record", f"{name} must be a number or null, was {value!r}")
    return float(value)
