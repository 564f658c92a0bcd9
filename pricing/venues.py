"""Trading venues: when each one's trading day ends, in its own time zone.

An instrument id is ``<SYMBOL>.<VENUE>``: an ISO 10383 market identifier
code (``XNAS``), ``OPRA`` for US listed options, ``FX`` for spot FX. An
instrument that expires (an option, a future) expires at its venue's close
on its expiry date, in the venue's time zone, so the instant in UTC follows
that zone's daylight saving time: a 16:00 New York expiry is 21:00 UTC in
December and 20:00 UTC in late March.

The closes are those of each venue's regular trading day: the equity
markets' closing auctions, the end of the CME Globex and Eurex trading days,
and 17:00 New York for spot FX, where the FX market's day ends. A future's
last trading time on its expiry day can be earlier (equity index futures
settle on the opening quotation); the close is used for every instrument of
the venue, and only options' values depend on it.

Time zones come from the IANA database through ``zoneinfo`` (the system's,
or the ``tzdata`` package where the system has none).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final
from zoneinfo import ZoneInfo

__all__ = ["VENUES", "Venue", "venue_code"]


@dataclass(frozen=True, slots=True)
class Venue:
    """A venue's regular close: ``close`` local time in ``time_zone`` (an IANA name)."""

    code: str
    name: str
    time_zone: str
    close: dt.time

    def close_on(self, day: dt.date) -> dt.datetime:
        """The close on ``day`` as an aware datetime in UTC."""
        local = dt.datetime.combine(day, self.close, tzinfo=ZoneInfo(self.time_zone))
        return local.astimezone(dt.UTC)


def _venues(*venues: Venue) -> Mapping[str, Venue]:
    return MappingProxyType({v.code: v for v in venues})


_NEW_YORK, _CHICAGO = "America/New_York", "America/Chicago"

VENUES: Final = _venues(
    Venue("XNYS", "New York Stock Exchange", _NEW_YORK, dt.time(16, 0)),
    Venue("XNAS", "Nasdaq", _NEW_YORK, dt.time(16, 0)),
    Venue("ARCX", "NYSE Arca", _NEW_YORK, dt.time(16, 0)),
    Venue("OPRA", "US listed options", _NEW_YORK, dt.time(16, 0)),
    # The CME Group exchanges share the Globex trading day, which ends at
    # 16:00 Chicago time (17:00 New York) for every product listed here.
    Venue("XCME", "Chicago Mercantile Exchange", _CHICAGO, dt.time(16, 0)),
    Venue("XCBT", "Chicago Board of Trade", _CHICAGO, dt.time(16, 0)),
    Venue("XNYM", "New York Mercantile Exchange", _CHICAGO, dt.time(16, 0)),
    Venue("XCEC", "Commodity Exchange (COMEX)", _CHICAGO, dt.time(16, 0)),
    Venue("XEUR", "Eurex", "Europe/Berlin", dt.time(22, 0)),
    Venue("IFEU", "ICE Futures Europe", "Europe/London", dt.time(21, 0)),
    Venue("XLON", "London Stock Exchange", "Europe/London", dt.time(16, 30)),
    Venue("XETR", "Xetra", "Europe/Berlin", dt.time(17, 30)),
    Venue("XPAR", "Euronext Paris", "Europe/Paris", dt.time(17, 30)),
    Venue("XAMS", "Euronext Amsterdam", "Europe/Amsterdam", dt.time(17, 30)),
    Venue("XMIL", "Borsa Italiana", "Europe/Rome", dt.time(17, 30)),
    Venue("XMAD", "Bolsa de Madrid", "Europe/Madrid", dt.time(17, 30)),
    Venue("XTKS", "Tokyo Stock Exchange", "Asia/Tokyo", dt.time(15, 30)),
    Venue("FX", "spot FX", _NEW_YORK, dt.time(17, 0)),
)
"""Every venue tickgate knows, by code."""


def venue_code(instrument_id: str) -> str:
    """The venue part of ``<SYMBOL>.<VENUE>`` (``BRK.B.XNYS`` -> ``XNYS``); empty if none."""
    _, dot, code = instrument_id.rpartition(".")
    return code if dot else ""
